/**
 * Ledger conformance: `maxRunning` at claim time. A tenant's leased + running jobs, in every queue,
 * never exceed the ceiling the claimers pass, however many claimers race with batches; checked from
 * the ledger's own history (the outbox in seq order). Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Store } from '../../src/ledger/store.js';
import type { ClaimOptions, OutboxEvent } from '../../src/ledger/types.js';
import { backends, sleep, type TestStore } from '../helpers/backends.js';
import { allEvents, okValue, rejectsInvalid, uniq } from './conformance-helpers.js';

/** Events that move a job out of `leased`/`running` (it stops counting against `maxRunning`). */
const LEAVES = new Set([
  'job.succeeded',
  'job.failed',
  'job.queued',
  'job.dead',
  'job.cancelled',
  'job.expired',
]);

/** The highest number of leased-or-running jobs each tenant had, replaying the outbox in seq order. */
function peakRunning(events: OutboxEvent[]): Map<string, number> {
  const holding = new Set<string>();
  const now = new Map<string, number>();
  const peak = new Map<string, number>();
  for (const e of events) {
    if (e.jobId === null) continue;
    if (e.type === 'job.leased') {
      holding.add(e.jobId);
      const n = (now.get(e.tenant) ?? 0) + 1;
      now.set(e.tenant, n);
      peak.set(e.tenant, Math.max(n, peak.get(e.tenant) ?? 0));
    } else if (LEAVES.has(e.type) && holding.delete(e.jobId)) {
      now.set(e.tenant, (now.get(e.tenant) ?? 0) - 1);
    }
  }
  return peak;
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

    const submitN = async (tenant: string, queue: string, n: number) =>
      (
        await t.store.submitMany(
          Array.from({ length: n }, (_, i) => ({ tenant, task: 'mr.task', queue, input: { i } })),
        )
      ).map((r) => r.job);
    const claim = (queues: string[], limit: number, extra: Partial<ClaimOptions> = {}) =>
      t.store.claim({ workerId: uniq('w'), queues, limit, ...extra });

    it('gives a tenant at most its room, counting leased and running jobs in every queue', async () => {
      const tenant = uniq('tenant');
      const [q1, q2] = [uniq('q'), uniq('q')];
      await submitN(tenant, q1, 5);
      await submitN(tenant, q2, 5);
      const maxRunning = { [tenant]: 3 };
      const first = await claim([q1], 2, { maxRunning });
      assert.equal(first.length, 2);
      okValue((await t.store.start([{ jobId: first[0]!.id, fence: first[0]!.fence }]))[0]);
      // One leased and one running in q1: room for one more, taken from q2.
      assert.equal((await claim([q2], 5, { maxRunning })).length, 1);
      assert.equal((await claim([q1, q2], 5, { maxRunning })).length, 0, 'at the ceiling');
      okValue((await t.store.release([{ jobId: first[1]!.id, fence: first[1]!.fence }]))[0]);
      const again = await claim([q1, q2], 5, { maxRunning });
      assert.equal(again.length, 1, 'a released job frees its place');
    });

    it('counts the jobs of one claim across its queues', async () => {
      const tenant = uniq('tenant');
      const [q1, q2] = [uniq('q'), uniq('q')];
      await submitN(tenant, q1, 2);
      await submitN(tenant, q2, 2);
      const claimed = await claim([q1, q2], 4, { maxRunning: { [tenant]: 3 } });
      assert.deepEqual(
        claimed.map((j) => j.queue),
        [q1, q1, q2],
      );
    });

    it('applies defaultMaxRunning to tenants not named, 0 to none, and serves others meanwhile', async () => {
      const [a, b, c] = [uniq('tenant'), uniq('tenant'), uniq('tenant')];
      const queue = uniq('q');
      for (const tenant of [a, b, c]) await submitN(tenant, queue, 4);
      const claimed = await claim([queue], 12, { maxRunning: { [a]: 0, [b]: 3 }, defaultMaxRunning: 1 });
      const per = (tenant: string) => claimed.filter((j) => j.tenant === tenant).length;
      assert.deepEqual([per(a), per(b), per(c)], [0, 3, 1]);
      // Without limits the same claimer takes what is left.
      assert.equal((await claim([queue], 12)).length, 8);
    });

    it('refuses bad limits before writing anything', async () => {
      const queue = uniq('q');
      await rejectsInvalid(claim([queue], 1, { maxRunning: { t: -1 } }), "claim.maxRunning['t']");
      await rejectsInvalid(claim([queue], 1, { maxRunning: { t: 1.5 } }), "claim.maxRunning['t']");
      await rejectsInvalid(
        claim([queue], 1, { maxRunning: { 'bad name': 1 } }),
        "claim.maxRunning['bad name']",
      );
      await rejectsInvalid(claim([queue], 1, { defaultMaxRunning: Number.NaN }), 'claim.defaultMaxRunning');
    });

    it('4 concurrent claimers with batches never take a tenant over its ceiling', async () => {
      const queue = uniq('q');
      const [a, b, c] = [uniq('tenant'), uniq('tenant'), uniq('tenant')];
      const limits = { [a]: 3, [b]: 5 }; // c has none
      for (const tenant of [a, b, c]) await submitN(tenant, queue, 100);
      const fromSeq = await t.store.outboxHead();
      const stores = await Promise.all(Array.from({ length: 4 }, () => t.reopen({ poolSize: 3 })));
      // Meanwhile a submitter keeps putting new jobs of a and b at the head of their line (rising
      // priority), so concurrent claimers see different heads: only the per-tenant serialisation
      // keeps their counts and claims from adding up past the ceiling.
      const fed = 150;
      let feeding = true;
      const feeder = (async () => {
        for (let p = 1; p <= fed; p++) {
          await t.store.submit({ tenant: p % 2 ? a : b, task: 'mr.task', queue, input: { p }, priority: p });
        }
        feeding = false;
      })();
      let done = 0;
      const work = async (store: Store, i: number) => {
        const workerId = `mr-${i}`;
        while (feeding || done < 300 + fed) {
          const batch = await store.claim({
            workerId,
            queues: [queue],
            limit: 4,
            maxRunning: limits,
            start: {},
          });
          if (batch.length === 0) {
            await sleep(2);
            continue;
          }
          // Hold the jobs for a moment (other claimers run meanwhile), then finish them one by one.
          await sleep(1 + (i % 3));
          for (const job of batch) {
            okValue((await store.complete([{ jobId: job.id, fence: job.fence }]))[0], job.id);
            done++;
          }
        }
      };
      await Promise.all([feeder, ...stores.map(work)]);
      assert.equal(done, 300 + fed, 'every job ran once');
      const peak = peakRunning(await allEvents(t.store, fromSeq));
      assert.ok((peak.get(a) ?? 0) <= 3, `tenant a peaked at ${peak.get(a)} running, over its 3`);
      assert.ok((peak.get(b) ?? 0) <= 5, `tenant b peaked at ${peak.get(b)} running, over its 5`);
      assert.ok((peak.get(c) ?? 0) > 0, 'the unlimited tenant ran too');
    });
  });
}
