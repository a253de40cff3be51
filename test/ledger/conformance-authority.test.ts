/**
 * Ledger conformance: the authority transitions. A lease holder refuses an attempt whose authority
 * record does not verify (`leased|running -> blocked`, invalid_authority: the attempt is not counted,
 * the lease ends, stale holders are refused); an admin readmits such a job with a new record
 * (`blocked -> queued`, readmitted), and nothing else can be readmitted. Admission may choose the
 * job id. Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobNotFoundError, JobStateConflictError } from '../../src/ledger/errors.js';
import { newJobId } from '../../src/ledger/ids.js';
import { backends, type TestStore } from '../helpers/backends.js';
import {
  assertStale,
  claimOne,
  counts,
  eventsFor,
  okValue,
  rejectsInvalid,
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

    it('takes the job id admission chose', async () => {
      const id = newJobId();
      const job = await submitJob(t.store, { id, authority: { signed: 'for', id } });
      assert.equal(job.id, id);
      assert.deepEqual((await t.store.get(id))?.authority, { signed: 'for', id });
    });

    it('a running attempt refused for invalid authority is blocked, not counted, and fenced off', async () => {
      const job = await submitJob(t.store, { maxAttempts: 1 });
      const worker = uniq('w');
      const running = await runningJob(t.store, job.queue, worker);
      assert.equal(running.attempt, 1);
      const [refused] = await t.store.refuseAuthority([
        { jobId: job.id, fence: running.fence, message: 'signature does not verify' },
      ]);
      assert.equal(okValue(refused, job.id).state, 'blocked');
      const blocked = await t.store.get(job.id);
      assert.equal(blocked?.state, 'blocked');
      assert.equal(blocked?.reason, 'invalid_authority');
      assert.equal(blocked?.attempt, 0, 'the refused attempt is given back');
      assert.equal(blocked?.workerId, undefined);
      assert.equal(blocked?.leaseExpiresAt, undefined);
      assert.deepEqual(blocked?.error, { code: 'invalid_authority', message: 'signature does not verify' });
      // The holder can commit nothing more, and nothing claims a blocked job.
      assertStale(
        (await t.store.complete([{ jobId: job.id, fence: running.fence }]))[0],
        job.id,
        running.fence,
      );
      assert.deepEqual(await t.store.claim({ workerId: worker, queues: [job.queue], limit: 5 }), []);
      const last = (await eventsFor(t.store, job.id)).pop();
      assert.equal(last?.type, 'job.blocked');
      assert.deepEqual(
        { from: last?.data.from, to: last?.data.to, reason: last?.data.reason },
        { from: 'running', to: 'blocked', reason: 'invalid_authority' },
      );
      // The unblock of another hold does not release it.
      assert.equal(await t.store.unblock({ reason: 'evidence_unavailable' }), 0);
      assert.equal((await t.store.get(job.id))?.state, 'blocked');
    });

    it('a leased attempt may be refused too; a stale fence is refused and changes nothing', async () => {
      const job = await submitJob(t.store);
      const leased = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue] });
      const before = await counts(t.store);
      assertStale(
        (await t.store.refuseAuthority([{ jobId: job.id, fence: leased.fence + 1, message: 'x' }]))[0],
        job.id,
        leased.fence + 1,
      );
      assert.deepEqual(await counts(t.store), before);
      const [ok] = await t.store.refuseAuthority([
        { jobId: job.id, fence: leased.fence, message: 'no record' },
      ]);
      assert.equal(okValue(ok).state, 'blocked');
      const last = (await eventsFor(t.store, job.id)).pop();
      assert.equal(last?.data.from, 'leased');
    });

    it('readmit: a job blocked for invalid authority is queued again with the new record', async () => {
      const job = await submitJob(t.store, { tenant: 'acme', authority: { v: 'old' } });
      const running = await runningJob(t.store, job.queue, uniq('w'));
      okValue((await t.store.refuseAuthority([{ jobId: job.id, fence: running.fence, message: 'bad' }]))[0]);
      await rejectsWith(
        t.store.readmit({ jobId: job.id, tenant: 'other', authority: { v: 'new' } }),
        JobNotFoundError,
        'job_not_found',
      );
      const readmitted = await t.store.readmit({ jobId: job.id, tenant: 'acme', authority: { v: 'new' } });
      assert.equal(readmitted.state, 'queued');
      assert.equal(readmitted.reason, 'readmitted');
      assert.deepEqual(readmitted.authority, { v: 'new' });
      assert.equal(readmitted.error, undefined);
      const last = (await eventsFor(t.store, job.id)).pop();
      assert.equal(last?.type, 'job.queued');
      assert.equal(last?.data.reason, 'readmitted');
      const again = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue] });
      assert.equal(again.id, job.id);
      assert.equal(again.attempt, 1);
    });

    it('readmit refuses every job that is not blocked for invalid authority', async () => {
      const queued = await submitJob(t.store);
      const err = await rejectsWith(
        t.store.readmit({ jobId: queued.id, authority: {} }),
        JobStateConflictError,
        'job_state_conflict',
      );
      assert.match(err.message, /queued/);
      const held = await submitJob(t.store, { task: uniq('task') });
      assert.equal(await t.store.block({ tasks: [held.task], reason: 'evidence_unavailable' }), 1);
      const err2 = await rejectsWith(
        t.store.readmit({ jobId: held.id, authority: {} }),
        JobStateConflictError,
        'job_state_conflict',
      );
      assert.match(err2.message, /evidence_unavailable/);
      await rejectsWith(
        t.store.readmit({ jobId: newJobId(), authority: {} }),
        JobNotFoundError,
        'job_not_found',
      );
      await rejectsInvalid(t.store.refuseAuthority([{ jobId: queued.id, fence: 1, message: '' }]), 'message');
    });
  });
}
