/**
 * Ledger conformance: concurrent claimers on separate connections (separate Store instances) never
 * lease one job twice, and every job completes exactly once. Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Store } from '../../src/ledger/store.js';
import { backends, type TestStore } from '../helpers/backends.js';
import { allEvents, allJobs, okValue, uniq } from './conformance-helpers.js';

const JOBS = 3000;
const CLAIMERS = 4;
const BATCH = 25;

/** Claim, start and complete in batches until the queue is empty; returns the ids this claimer completed. */
async function drain(store: Store, workerId: string, queue: string): Promise<string[]> {
  const done: string[] = [];
  for (;;) {
    const leased = await store.claim({ workerId, queues: [queue], limit: BATCH, leaseMs: 120_000 });
    if (leased.length === 0) return done;
    assert.ok(leased.length <= BATCH);
    for (const job of leased) {
      assert.equal(job.state, 'leased');
      assert.equal(job.workerId, workerId);
      assert.equal(job.fence, 1, `job ${job.id} was leased before`);
    }
    const leases = leased.map((j) => ({ jobId: j.id, fence: j.fence }));
    const started = await store.start(leases);
    started.forEach((o, i) => {
      assert.equal(okValue(o, leases[i]?.jobId).state, 'running');
    });
    const completed = await store.complete(leases.map((l) => ({ ...l, output: { by: workerId } })));
    completed.forEach((o, i) => {
      assert.equal(okValue(o, leases[i]?.jobId).state, 'succeeded');
    });
    done.push(...leased.map((j) => j.id));
  }
}

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    it(`${CLAIMERS} claimers on separate connections complete ${JOBS} jobs, each exactly once`, async () => {
      const tenant = uniq('tenant');
      const queue = uniq('q');
      const ids: string[] = [];
      for (let offset = 0; offset < JOBS; offset += 1000) {
        const results = await t.store.submitMany(
          Array.from({ length: Math.min(1000, JOBS - offset) }, (_, i) => ({
            tenant,
            task: 'noop',
            queue,
            input: { i: offset + i },
          })),
        );
        ids.push(...results.map((r) => r.job.id));
      }
      assert.equal(new Set(ids).size, JOBS);

      const stores = await Promise.all(Array.from({ length: CLAIMERS }, () => t.reopen({ poolSize: 3 })));
      const workers = stores.map(() => uniq('w'));
      const perClaimer = await Promise.all(stores.map((s, i) => drain(s, workers[i] ?? 'w', queue)));

      const all = perClaimer.flat();
      assert.equal(all.length, JOBS, 'completions add up to the number of jobs');
      assert.equal(new Set(all).size, JOBS, 'no job was completed by two claimers');
      assert.deepEqual([...all].sort(), [...ids].sort());

      const owner = new Map<string, string>();
      perClaimer.forEach((claimed, i) => {
        for (const id of claimed) owner.set(id, workers[i] ?? '');
      });
      const jobs = await allJobs(t.store, { tenant });
      assert.equal(jobs.length, JOBS);
      for (const job of jobs) {
        assert.equal(job.state, 'succeeded', `job ${job.id} is ${job.state}`);
        assert.equal(job.fence, 1);
        assert.equal(job.attempt, 1);
        assert.deepEqual(job.output, { by: owner.get(job.id) });
      }

      const idSet = new Set(ids);
      const typeCounts = new Map<string, number>();
      const leasedBy = new Map<string, number>();
      for (const e of await allEvents(t.store)) {
        if (e.jobId === null || !idSet.has(e.jobId)) continue;
        typeCounts.set(e.type, (typeCounts.get(e.type) ?? 0) + 1);
        if (e.type === 'job.leased') leasedBy.set(e.jobId, (leasedBy.get(e.jobId) ?? 0) + 1);
      }
      assert.deepEqual(Object.fromEntries([...typeCounts].sort()), {
        'job.leased': JOBS,
        'job.queued': JOBS,
        'job.running': JOBS,
        'job.succeeded': JOBS,
      });
      assert.equal(leasedBy.size, JOBS);
      assert.ok(
        [...leasedBy.values()].every((n) => n === 1),
        'every job was leased exactly once',
      );
    });
  });
}
