/**
 * Ledger conformance: fencing and durable steps. A write by an owner whose fence is old, or whose
 * lease ran out, is rejected with `StaleLeaseError` and changes nothing; batches answer per item;
 * a step commits once per (job, stepKey). Each test gets a fresh store.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StaleLeaseError } from '../../src/ledger/errors.js';
import type { Store } from '../../src/ledger/store.js';
import type { Job } from '../../src/ledger/types.js';
import { backends, sleep, type TestStore } from '../helpers/backends.js';
import {
  allEvents,
  assertSameJob,
  assertStale,
  claimOne,
  eventsFor,
  okValue,
  plain,
  rejectsWith,
  runningJob,
  submitJob,
  uniq,
} from './conformance-helpers.js';

/** Every owner operation with `fence` on `job` is rejected as stale, and nothing changes. */
async function assertAllStale(store: Store, jobId: string, fence: number): Promise<void> {
  const before = await store.get(jobId);
  const eventsBefore = await allEvents(store);
  const lease = { jobId, fence };
  assertStale((await store.start([lease]))[0], jobId, fence);
  assertStale((await store.heartbeat([{ ...lease, progress: { stale: true } }]))[0], jobId, fence);
  assertStale((await store.complete([{ ...lease, output: 'stale' }]))[0], jobId, fence);
  assertStale(
    (
      await store.fail([{ ...lease, error: { code: 'handler_error', message: 'stale' }, retryable: false }])
    )[0],
    jobId,
    fence,
  );
  assertStale((await store.release([lease]))[0], jobId, fence);
  assertStale((await store.confirmCancel([lease]))[0], jobId, fence);
  const err = await rejectsWith(
    store.putStep({ ...lease, stepKey: 'stale-step', result: 'stale' }),
    StaleLeaseError,
    'stale_lease',
  );
  assert.equal(err.jobId, jobId);
  assert.equal(err.fence, fence);
  assertSameJob(await store.get(jobId), before);
  assert.deepEqual(plain(await allEvents(store)), plain(eventsBefore), 'no event was written');
  assert.equal(await store.getStep(jobId, 'stale-step'), undefined);
}

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    beforeEach(async () => {
      t = await backend.create();
    });
    afterEach(async () => {
      await t.cleanup();
    });

    /** A job that worker A ran under fence 1 until its lease ran out, now re-claimed and run by B under fence 2. */
    async function takenOver(): Promise<{ job: Job; old: Job; current: Job }> {
      const job = await submitJob(t.store, { maxAttempts: 5 });
      const old = await runningJob(t.store, job.queue, uniq('a'), { leaseMs: 50 });
      await sleep(120);
      assert.deepEqual(await t.store.reap(), { requeued: 1, dead: 0, cancelled: 0, expired: 0 });
      // B names its own lease length: this test is about A's fence, not about B's lease running out.
      const current = await runningJob(t.store, job.queue, uniq('b'), { leaseMs: 60_000 });
      assert.equal(old.fence, 1);
      assert.equal(current.fence, 2);
      assert.equal(current.attempt, 2);
      return { job, old, current };
    }

    it('rejects every owner operation of a superseded owner, and changes nothing', async () => {
      const { job, old, current } = await takenOver();
      await assertAllStale(t.store, job.id, old.fence);
      // A fence from the future is no better.
      await assertAllStale(t.store, job.id, current.fence + 1);
      // With a cancel pending, the superseded owner still cannot confirm it; the current owner can.
      assert.equal((await t.store.cancel(job.id)).cancelRequested, true);
      const pending = await t.store.get(job.id);
      assertStale((await t.store.confirmCancel([{ jobId: job.id, fence: old.fence }]))[0], job.id, old.fence);
      assertSameJob(await t.store.get(job.id), pending);
      const beat = okValue((await t.store.heartbeat([{ jobId: job.id, fence: current.fence }]))[0], job.id);
      assert.equal(beat.cancelRequested, true);
      const done = okValue(
        (await t.store.confirmCancel([{ jobId: job.id, fence: current.fence }]))[0],
        job.id,
      );
      assert.equal(done.state, 'cancelled');
      assert.equal((await t.store.get(job.id))?.state, 'cancelled');
    });

    it('rejects an owner whose lease ran out before the reaper came, then the reaper requeues', async () => {
      const job = await submitJob(t.store, { maxAttempts: 5 });
      const running = await runningJob(t.store, job.queue, uniq('a'), { leaseMs: 50 });
      await sleep(120);
      await assertAllStale(t.store, job.id, running.fence);
      const stored = await t.store.get(job.id);
      assert.equal(stored?.state, 'running');
      assert.equal(stored?.fence, 1);
      assert.equal(stored?.leaseExpiresAt, running.leaseExpiresAt);

      assert.deepEqual(await t.store.reap(), { requeued: 1, dead: 0, cancelled: 0, expired: 0 });
      const requeued = await t.store.get(job.id);
      assert.equal(requeued?.state, 'queued');
      assert.equal(requeued?.reason, 'lease_expired');
      assert.equal((await claimOne(t.store, { workerId: uniq('b'), queues: [job.queue] })).fence, 2);
    });

    it('a cancel asked of an owner whose lease ran out ends the job cancelled exactly once', async () => {
      // The port leaves open whether confirmCancel after the lease ran out is accepted (the owner
      // stopped, as asked) or stale (the reaper cancels instead); either way the job ends cancelled once.
      const job = await submitJob(t.store);
      const running = await runningJob(t.store, job.queue, uniq('a'), { leaseMs: 50 });
      assert.equal((await t.store.cancel(job.id)).cancelRequested, true);
      await sleep(120);
      const [outcome] = await t.store.confirmCancel([{ jobId: job.id, fence: running.fence }]);
      assert.ok(outcome);
      if (outcome.ok) {
        assert.equal(outcome.value.state, 'cancelled');
        assert.deepEqual(await t.store.reap(), { requeued: 0, dead: 0, cancelled: 0, expired: 0 });
      } else {
        assertStale(outcome, job.id, running.fence);
        assert.deepEqual(await t.store.reap(), { requeued: 0, dead: 0, cancelled: 1, expired: 0 });
      }
      const stored = await t.store.get(job.id);
      assert.equal(stored?.state, 'cancelled');
      assert.equal(stored?.reason, 'cancel_requested');
      assert.deepEqual(
        (await eventsFor(t.store, job.id)).map((e) => e.type),
        ['job.queued', 'job.leased', 'job.running', 'job.cancel_requested', 'job.cancelled'],
      );
    });

    it('rejects start of a leased job whose lease ran out', async () => {
      const job = await submitJob(t.store);
      const leased = await claimOne(t.store, { workerId: uniq('a'), queues: [job.queue], leaseMs: 50 });
      await sleep(120);
      const before = await t.store.get(job.id);
      assertStale((await t.store.start([{ jobId: job.id, fence: leased.fence }]))[0], job.id, leased.fence);
      assertSameJob(await t.store.get(job.id), before);
      assert.equal(before?.state, 'leased');
    });

    it('answers a batch per item, in input order: the stale item fails, the valid one commits', async () => {
      const a = uniq('a');
      const staleJob = await submitJob(t.store, { maxAttempts: 5 });
      const validJob = await submitJob(t.store);
      const stale = await runningJob(t.store, staleJob.queue, a, { leaseMs: 50 });
      const valid = await runningJob(t.store, validJob.queue, a, { leaseMs: 60_000 });
      await sleep(120);
      assert.deepEqual(await t.store.reap(), { requeued: 1, dead: 0, cancelled: 0, expired: 0 });
      const taken = await runningJob(t.store, staleJob.queue, uniq('b'), { leaseMs: 60_000 });

      const beats = await t.store.heartbeat([
        { jobId: validJob.id, fence: valid.fence },
        { jobId: staleJob.id, fence: stale.fence },
      ]);
      assert.equal(beats.length, 2);
      assert.equal(okValue(beats[0], validJob.id).cancelRequested, false);
      assertStale(beats[1], staleJob.id, stale.fence);

      const outcomes = await t.store.complete([
        { jobId: staleJob.id, fence: stale.fence, output: 'stale' },
        { jobId: validJob.id, fence: valid.fence, output: 'valid' },
      ]);
      assert.equal(outcomes.length, 2);
      assertStale(outcomes[0], staleJob.id, stale.fence);
      assert.equal(okValue(outcomes[1], validJob.id).state, 'succeeded');
      const done = await t.store.get(validJob.id);
      assert.equal(done?.state, 'succeeded');
      assert.equal(done?.output, 'valid');

      const takenNow = await t.store.get(staleJob.id);
      assert.equal(takenNow?.state, 'running');
      assert.equal(takenNow?.fence, taken.fence);
      assert.equal(takenNow?.output, undefined);
      assert.equal((await eventsFor(t.store, staleJob.id)).at(-1)?.type, 'job.running');
      assert.equal((await eventsFor(t.store, validJob.id)).at(-1)?.type, 'job.succeeded');
    });

    describe('steps', () => {
      it('commits a step once per key; a second put returns the first result', async () => {
        const job = await submitJob(t.store);
        const running = await runningJob(t.store, job.queue, uniq('a'));
        const t0 = await t.store.now();
        const first = await t.store.putStep({
          jobId: job.id,
          fence: running.fence,
          stepKey: 'charge',
          result: { id: 1 },
        });
        const t1 = await t.store.now();
        assert.equal(first.created, true);
        assert.deepEqual(
          { ...first.step, createdAt: 0 },
          { jobId: job.id, stepKey: 'charge', result: { id: 1 }, fence: 1, attempt: 1, createdAt: 0 },
        );
        assert.ok(first.step.createdAt >= t0 - 1 && first.step.createdAt <= t1 + 1);

        const second = await t.store.putStep({
          jobId: job.id,
          fence: running.fence,
          stepKey: 'charge',
          result: { id: 2 },
        });
        assert.equal(second.created, false);
        assert.deepEqual(plain(second.step), plain(first.step));
        assert.deepEqual(plain(await t.store.getStep(job.id, 'charge')), plain(first.step));
        assert.deepEqual(plain(await t.store.listSteps(job.id)), [plain(first.step)]);
        assert.equal(await t.store.getStep(job.id, 'other'), undefined);

        const stepEvents = (await eventsFor(t.store, job.id)).filter((e) => e.type === 'step.committed');
        assert.equal(stepEvents.length, 1);
        assert.equal(stepEvents[0]?.tenant, job.tenant);
        assert.equal(stepEvents[0]?.correlationId, job.correlationId);
        assert.equal((await t.store.get(job.id))?.state, 'running');
      });

      it('replays a committed step on a later attempt instead of committing again', async () => {
        const job = await submitJob(t.store, { backoff: { baseMs: 0, maxMs: 0 } });
        const first = await runningJob(t.store, job.queue, uniq('a'));
        await t.store.putStep({ jobId: job.id, fence: first.fence, stepKey: 'upload', result: 'blob:1' });
        const failed = okValue(
          (
            await t.store.fail([
              { jobId: job.id, fence: first.fence, error: { code: 'boom', message: 'crashed' } },
            ])
          )[0],
        );
        assert.equal(failed.state, 'queued');

        const second = await runningJob(t.store, job.queue, uniq('b'));
        assert.equal(second.fence, 2);
        assert.equal(second.attempt, 2);
        const replay = await t.store.getStep(job.id, 'upload');
        assert.equal(replay?.result, 'blob:1');
        assert.equal(replay?.fence, 1);
        assert.equal(replay?.attempt, 1);
        const again = await t.store.putStep({
          jobId: job.id,
          fence: second.fence,
          stepKey: 'upload',
          result: 'blob:2',
        });
        assert.equal(again.created, false);
        assert.equal(again.step.result, 'blob:1');
        const next = await t.store.putStep({
          jobId: job.id,
          fence: second.fence,
          stepKey: 'notify',
          result: true,
        });
        assert.equal(next.created, true);
        assert.equal(next.step.fence, 2);
        assert.equal(next.step.attempt, 2);
        assert.deepEqual((await t.store.listSteps(job.id)).map((s) => [s.stepKey, s.result]).sort(), [
          ['notify', true],
          ['upload', 'blob:1'],
        ]);
        const stepEvents = (await eventsFor(t.store, job.id)).filter((e) => e.type === 'step.committed');
        assert.equal(stepEvents.length, 2);
      });

      it('a superseded owner cannot commit a step', async () => {
        const { job, old, current } = await takenOver();
        const eventsBefore = await allEvents(t.store);
        const err = await rejectsWith(
          t.store.putStep({ jobId: job.id, fence: old.fence, stepKey: 'side-effect', result: 'from A' }),
          StaleLeaseError,
          'stale_lease',
        );
        assert.equal(err.fence, old.fence);
        assert.equal(await t.store.getStep(job.id, 'side-effect'), undefined);
        assert.deepEqual(await t.store.listSteps(job.id), []);
        assert.deepEqual(plain(await allEvents(t.store)), plain(eventsBefore));
        const mine = await t.store.putStep({
          jobId: job.id,
          fence: current.fence,
          stepKey: 'side-effect',
          result: 'from B',
        });
        assert.equal(mine.created, true);
        assert.equal(mine.step.result, 'from B');
      });
    });
  });
}
