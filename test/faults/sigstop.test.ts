/**
 * Stale owners, CI form: a worker is paused with SIGSTOP past its lease (lease 500 ms, pause 1 s)
 * while another keeps running, then resumed with SIGCONT; 100 pauses in all (50 per backend when
 * PostgreSQL is on, else 100 on SQLite). The paused worker's handlers wake up mid-step and try their
 * external writes with a fence whose lease is gone: none may be accepted over a newer owner's write,
 * none may stick, the ledger must refuse its commits, and every job must still succeed exactly once.
 * BULKHEAD_FAULTS_SEED replays a seed.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pgAdminUrl } from '../helpers/pg-scratch.js';
import { createFaultEnv } from './env.js';
import { killAll, problems, randomSeed, runScenario } from './harness.js';

after(killAll);

const seed = Number(process.env.BULKHEAD_FAULTS_SEED ?? randomSeed());
const backends: ('sqlite' | 'postgres')[] = pgAdminUrl ? ['sqlite', 'postgres'] : ['sqlite'];
const pausesEach = 100 / backends.length;

for (const backend of backends) {
  describe(`SIGSTOP of a worker past its lease on ${backend}`, () => {
    it(`${pausesEach} pauses: the woken owner's writes never stick, every job succeeds once`, async (t) => {
      const env = await createFaultEnv(backend);
      let failed = true;
      try {
        const r = await runScenario({
          backend,
          ledgerUrl: env.ledgerUrl,
          effectsUrl: env.effectsUrl,
          logDir: env.logDir,
          workers: 2,
          concurrency: 6,
          // A short backlog leaves the running worker free slots, so it takes over the paused
          // worker's jobs (and writes their keys with a newer fence) before the pause ends.
          jobs: pausesEach * 10,
          backlog: 8,
          steps: 4,
          maxSleepMs: 60,
          leaseMs: 500,
          fault: { kind: 'stop', count: pausesEach, pauseMs: 1000 },
          jitterMs: 150,
          seed,
          drainTimeoutMs: 90_000,
          log: (l) => t.diagnostic(l),
        });
        const f = r.figures;
        const rep = r.report;
        t.diagnostic(
          `post-resume writes of paused owners: ${rep.postResumeWrites} (${rep.postResumeRejected} rejected, ${rep.postResumeSuperseded} accepted before any newer owner wrote, then overwritten)`,
        );
        assert.deepEqual(problems(r), []);
        assert.equal(f.faults, pausesEach);
        assert.equal(f.succeeded, f.jobs);
        assert.equal(f.duplicates, 0);
        assert.equal(f.staleAccepted, 0);
        assert.equal(f.effectMismatches, 0);
        // Every post-resume write was refused or overwritten by a newer owner (problems() names any
        // that stuck); and the scenario did exercise the path.
        assert.equal(rep.postResumeWrites, rep.postResumeRejected + rep.postResumeSuperseded);
        assert.ok(f.faultsMidJob > 0, `no pause caught a lease (seed ${seed})`);
        assert.ok(rep.postResumeWrites > 0, `no paused owner tried a write after resuming (seed ${seed})`);
        failed = false;
      } finally {
        await env.cleanup({ keepLogs: failed });
      }
    });
  });
}
