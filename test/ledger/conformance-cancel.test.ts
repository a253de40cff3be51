/**
 * Ledger conformance: cancellation (at once when not running, through the owner when it is), terminal
 * jobs, and tenant isolation of cancel and get. Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobNotFoundError, JobStateConflictError } from '../../src/ledger/errors.js';
import { backends, type TestStore } from '../helpers/backends.js';
import {
  assertSameJob,
  claimOne,
  counts,
  eventsFor,
  okValue,
  plain,
  rejectsWith,
  runningJob,
  submitJob,
  uniq,
} from './conformance-helpers.js';

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    it('cancels a queued job at once', async () => {
      const job = await submitJob(t.store);
      const cancelled = await t.store.cancel(job.id);
      assert.equal(cancelled.state, 'cancelled');
      assert.equal(cancelled.reason, 'cancel_requested');
      assertSameJob(await t.store.get(job.id), cancelled);
      assert.deepEqual(
        (await eventsFor(t.store, job.id)).map((e) => [e.type, e.data.from]),
        [
          ['job.queued', 'submitted'],
          ['job.cancelled', 'queued'],
        ],
      );
      assert.deepEqual(await t.store.claim({ workerId: uniq('w'), queues: [job.queue], limit: 10 }), []);
    });

    it('cancels a job awaiting approval at once', async () => {
      const job = await submitJob(t.store, { requiresApproval: true });
      const cancelled = await t.store.cancel(job.id, { tenant: job.tenant });
      assert.equal(cancelled.state, 'cancelled');
      assert.equal(cancelled.reason, 'cancel_requested');
      assert.deepEqual(
        (await eventsFor(t.store, job.id)).map((e) => e.type),
        ['job.awaiting_approval', 'job.cancelled'],
      );
    });

    it('asks the owner of a running job, who learns it on heartbeat and confirms', async () => {
      const job = await submitJob(t.store);
      const running = await runningJob(t.store, job.queue, uniq('w'));
      const requested = await t.store.cancel(job.id);
      assert.equal(requested.state, 'running');
      assert.equal(requested.cancelRequested, true);
      assert.equal(requested.fence, running.fence);
      const stored = await t.store.get(job.id);
      assert.equal(stored?.state, 'running');
      assert.equal(stored?.cancelRequested, true);

      const beat = okValue((await t.store.heartbeat([{ jobId: job.id, fence: running.fence }]))[0], job.id);
      assert.equal(beat.cancelRequested, true);

      const confirmed = okValue(
        (await t.store.confirmCancel([{ jobId: job.id, fence: running.fence }]))[0],
        job.id,
      );
      assert.equal(confirmed.state, 'cancelled');
      const stored2 = await t.store.get(job.id);
      assert.equal(stored2?.state, 'cancelled');
      assert.equal(stored2?.reason, 'cancel_requested');
      assert.deepEqual(
        (await eventsFor(t.store, job.id)).map((e) => e.type),
        ['job.queued', 'job.leased', 'job.running', 'job.cancel_requested', 'job.cancelled'],
      );
    });

    it('cancels a leased job at once and fences off its holder', async () => {
      const job = await submitJob(t.store);
      const leased = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue] });
      const cancelled = await t.store.cancel(job.id);
      assert.equal(cancelled.state, 'cancelled');
      assert.equal(cancelled.reason, 'cancel_requested');
      assert.ok(cancelled.fence > leased.fence, 'the fence moved on');
      // The holder never started: its start is refused and nothing changes.
      const [start] = await t.store.start([{ jobId: job.id, fence: leased.fence }]);
      assert.equal(start?.ok, false);
      assert.equal((start as { error: Error & { code?: string } }).error.code, 'stale_lease');
      assert.equal((await t.store.get(job.id))?.state, 'cancelled');
      assert.deepEqual(
        (await eventsFor(t.store, job.id)).map((e) => e.type),
        ['job.queued', 'job.leased', 'job.cancelled'],
      );
    });

    it('refuses to cancel a terminal job and changes nothing', async () => {
      const job = await submitJob(t.store);
      const running = await runningJob(t.store, job.queue, uniq('w'));
      okValue((await t.store.complete([{ jobId: job.id, fence: running.fence, output: 'ok' }]))[0]);
      const before = await t.store.get(job.id);
      const eventsBefore = await eventsFor(t.store, job.id);
      const err = await rejectsWith(t.store.cancel(job.id), JobStateConflictError, 'job_state_conflict');
      assert.equal(err.jobId, job.id);
      assert.equal(err.state, 'succeeded');
      assertSameJob(await t.store.get(job.id), before);
      assert.deepEqual(plain(await eventsFor(t.store, job.id)), plain(eventsBefore));

      const other = await submitJob(t.store);
      await t.store.cancel(other.id);
      const otherBefore = await t.store.get(other.id);
      const again = await rejectsWith(t.store.cancel(other.id), JobStateConflictError, 'job_state_conflict');
      assert.equal(again.state, 'cancelled');
      assertSameJob(await t.store.get(other.id), otherBefore);
    });

    it('does not find an unknown job, nor another tenant’s', async () => {
      const before = await counts(t.store);
      const unknown = await rejectsWith(t.store.cancel('no-such-job'), JobNotFoundError, 'job_not_found');
      assert.equal(unknown.jobId, 'no-such-job');
      assert.equal(await t.store.get('no-such-job'), undefined);

      const job = await submitJob(t.store, { tenant: uniq('owner') });
      const snapshot = await t.store.get(job.id);
      const afterSubmit = await counts(t.store);
      assert.deepEqual(afterSubmit, { jobs: before.jobs + 1, events: before.events + 1 });
      await rejectsWith(
        t.store.cancel(job.id, { tenant: uniq('intruder') }),
        JobNotFoundError,
        'job_not_found',
      );
      assert.equal(await t.store.get(job.id, { tenant: uniq('intruder') }), undefined);
      assertSameJob(await t.store.get(job.id, { tenant: job.tenant }), snapshot);
      assert.deepEqual(await counts(t.store), afterSubmit);
      assert.equal((await t.store.list({ tenant: uniq('intruder') })).jobs.length, 0);
    });
  });
}
