/**
 * The crash battery, CI form: real worker processes SIGKILLed at seeded random moments while they
 * run jobs whose durable steps write to an external store (DESIGN.md §10: 0 jobs lost, 0 duplicate
 * committed step effects, stale owners' writes always rejected). One run per backend: a SQLite
 * ledger file, and a throwaway PostgreSQL database when BULKHEAD_TEST_PG_URL is set. The long form
 * is `npm run test:faults`. BULKHEAD_FAULTS_SEED replays a seed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pgAdminUrl } from '../helpers/pg-scratch.js';
import { createFaultEnv } from './env.js';
import { killAll, problems, randomSeed, runScenario } from './harness.js';

after(killAll);

const seed = Number(process.env.BULKHEAD_FAULTS_SEED ?? randomSeed());
const backends: ('sqlite' | 'postgres')[] = pgAdminUrl ? ['sqlite', 'postgres'] : ['sqlite'];

for (const backend of backends) {
  describe(`kill -9 of workers on ${backend}`, () => {
    it('60 SIGKILLs mid-run: every job succeeds once, no step effect twice, no stale write accepted', async (t) => {
      const env = await createFaultEnv(backend);
      let failed = true;
      try {
        const r = await runScenario({
          backend,
          ledgerUrl: env.ledgerUrl,
          effectsUrl: env.effectsUrl,
          logDir: env.logDir,
          workers: 3,
          concurrency: 4,
          jobs: 300,
          steps: 4,
          maxSleepMs: 40,
          leaseMs: 1000,
          fault: { kind: 'kill', count: 60 },
          seed,
          drainTimeoutMs: 90_000,
          log: (l) => t.diagnostic(l),
        });
        const f = r.figures;
        assert.deepEqual(problems(r), []);
        assert.equal(f.faults, 60);
        assert.equal(f.succeeded, f.jobs);
        assert.equal(f.lost, 0);
        assert.equal(f.duplicates, 0);
        assert.equal(f.staleAccepted, 0);
        assert.equal(f.crashes, 0);
        // The kills must have hit work in flight, not idle workers.
        assert.ok(f.faultsMidJob > 0, `no kill landed mid-job (seed ${seed})`);
        failed = false;
      } finally {
        await env.cleanup({ keepLogs: failed });
      }
    });
  });
}
