/**
 * `quotas.<tenant>.maxRunning` of the applied config reaches the worker's claims: with a ceiling of
 * 1 for acme, a worker of concurrency 4 never runs two acme jobs at once (checked from the outbox
 * history), while another tenant's jobs run beside them. SQLite; the ledger's enforcement across
 * workers is the conformance suite's (conformance-max-running).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensureControlIdentity, ensureInitialConfig, inProcessSource } from '../../src/cli/control-setup.js';
import { startWorker } from '../../src/cli/runtime.js';
import { Admission } from '../../src/control/admission.js';
import { backends, tempDir } from '../helpers/backends.js';
import { allEvents } from '../ledger/conformance-helpers.js';
import { silent, task, waitForState } from './helpers.js';

describe('maxRunning from the config', () => {
  it("a tenant's ceiling holds in the worker's claims; other tenants run beside it", async () => {
    const t = await (backends().find((b) => b.dialect === 'sqlite') ?? assert.fail('sqlite')).create();
    const tmp = tempDir('bulkhead-max-running-');
    let stop: ((graceMs: number) => Promise<void>) | undefined;
    try {
      const config = ensureControlIdentity(join(tmp.dir, 'keys')).service(t.store);
      await ensureInitialConfig(config, t.store);
      const def = await task('exec.sleep.inline');
      await config.publish({
        document: { quotas: { acme: { maxRunning: 1 } } },
        taskSchemas: [{ name: def.name, version: def.version, input: def.inputJsonSchema }],
        by: 'test',
      });
      const w = await startWorker({
        store: t.store,
        tasks: [def],
        concurrency: 4,
        logger: silent,
        tuning: { pollIntervalMs: 20, reapIntervalMs: 200 },
        config: {
          source: (id) => inProcessSource(config, id, []),
          publicKeyPem: config.key.publicPem,
          deploymentId: config.deploymentId,
        },
      });
      stop = w.stop;
      const admission = new Admission(t.store, { key: config.key, deploymentId: config.deploymentId });
      const jobs = [];
      for (const tenant of ['acme', 'acme', 'acme', 'globex', 'globex']) {
        const [r] = await admission.submit({ tenant, keyId: `k-${tenant}`, roles: ['submitter'] }, [
          { task: def.name, input: { ms: 150 } },
        ]);
        assert.ok(r);
        jobs.push(r.job);
      }
      for (const j of jobs)
        assert.equal((await waitForState(t.store, j.id, ['succeeded', 'dead'])).state, 'succeeded');

      // Replay the history: how many of each tenant's jobs ran at once, at most.
      const running = new Map<string, number>();
      const peak = new Map<string, number>();
      for (const e of await allEvents(t.store)) {
        if (e.jobId === null) continue;
        const delta = e.type === 'job.running' ? 1 : e.type === 'job.succeeded' ? -1 : 0;
        if (delta === 0) continue;
        const n = (running.get(e.tenant) ?? 0) + delta;
        running.set(e.tenant, n);
        peak.set(e.tenant, Math.max(peak.get(e.tenant) ?? 0, n));
      }
      assert.equal(peak.get('acme'), 1, 'acme never ran two at once');
      assert.equal(peak.get('globex'), 2, 'globex, without a ceiling, ran both at once');
    } finally {
      await stop?.(2000);
      await t.cleanup();
      tmp.remove();
    }
  });
});
