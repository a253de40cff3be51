/**
 * Ledger conformance: claiming (queues, priority, runAt, tasks, clearance, deadline, limit) and the
 * owner's happy path (start, heartbeat, complete, release). Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends, sleep, type TestStore } from '../helpers/backends.js';
import {
  assertBetween,
  claimOne,
  eventsFor,
  eventTypesFor,
  okValue,
  runningJob,
  sleepUntil,
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

    describe('claim', () => {
      it('leases a queued job: fence and attempt go up, the lease runs from the store clock', async () => {
        const job = await submitJob(t.store, { leaseMs: 20_000 });
        const workerId = uniq('w');
        const t0 = await t.store.now();
        const leased = await claimOne(t.store, { workerId, queues: [job.queue] });
        const t1 = await t.store.now();
        assert.equal(leased.id, job.id);
        assert.equal(leased.state, 'leased');
        assert.equal(leased.reason, 'claimed');
        assert.equal(leased.fence, 1);
        assert.equal(leased.attempt, 1);
        assert.equal(leased.workerId, workerId);
        assertBetween(leased.leaseExpiresAt, t0 + 20_000, t1 + 20_000, 'leaseExpiresAt');
        const stored = await t.store.get(job.id);
        assert.equal(stored?.state, 'leased');
        assert.equal(stored?.fence, 1);
        assert.equal(stored?.leaseExpiresAt, leased.leaseExpiresAt);
        const events = await eventsFor(t.store, job.id);
        assert.deepEqual(
          events.map((e) => [e.type, e.data.from]),
          [
            ['job.queued', 'submitted'],
            ['job.leased', 'queued'],
          ],
        );
      });

      it('uses the claim leaseMs over the job leaseMs', async () => {
        const job = await submitJob(t.store, { leaseMs: 20_000 });
        const t0 = await t.store.now();
        const leased = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue], leaseMs: 5000 });
        const t1 = await t.store.now();
        assertBetween(leased.leaseExpiresAt, t0 + 5000, t1 + 5000, 'leaseExpiresAt');
      });

      it('applies a claim leaseMs to that claim only, not to later claims of the job', async () => {
        const job = await submitJob(t.store, { leaseMs: 20_000 });
        const first = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue], leaseMs: 5000 });
        okValue((await t.store.release([{ jobId: job.id, fence: first.fence }]))[0], job.id);
        const t0 = await t.store.now();
        const second = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue] });
        const t1 = await t.store.now();
        assert.equal(second.fence, 2);
        assertBetween(
          second.leaseExpiresAt,
          t0 + 20_000,
          t1 + 20_000,
          'leaseExpiresAt of a claim without override',
        );
      });

      it('takes only the named queues, and at most limit jobs', async () => {
        const qa = uniq('q');
        const qb = uniq('q');
        const qc = uniq('q');
        for (let i = 0; i < 5; i++) await submitJob(t.store, { queue: qa, input: { i } });
        const inB = [await submitJob(t.store, { queue: qb }), await submitJob(t.store, { queue: qb })];
        const inC = await submitJob(t.store, { queue: qc });
        const workerId = uniq('w');

        const first = await t.store.claim({ workerId, queues: [qa], limit: 3 });
        assert.equal(first.length, 3);
        assert.ok(first.every((j) => j.queue === qa && j.state === 'leased'));
        const second = await t.store.claim({ workerId, queues: [qa], limit: 10 });
        assert.equal(second.length, 2);
        assert.ok(second.every((j) => j.queue === qa));
        assert.equal(new Set([...first, ...second].map((j) => j.id)).size, 5);
        assert.deepEqual(await t.store.claim({ workerId, queues: [qa], limit: 10 }), []);
        for (const j of [...inB, inC]) assert.equal((await t.store.get(j.id))?.state, 'queued');

        const both = await t.store.claim({ workerId, queues: [qb, qc], limit: 10 });
        assert.deepEqual(both.map((j) => j.id).sort(), [...inB, inC].map((j) => j.id).sort());
      });

      it('takes higher priority first', async () => {
        const queue = uniq('q');
        for (const priority of [0, 10, -5, 5]) await submitJob(t.store, { queue, priority });
        const order: number[] = [];
        for (let i = 0; i < 4; i++)
          order.push((await claimOne(t.store, { workerId: uniq('w'), queues: [queue] })).priority);
        assert.deepEqual(order, [10, 5, 0, -5]);
      });

      it('does not take a job before its runAt', async () => {
        const queue = uniq('q');
        const now = await t.store.now();
        const later = await submitJob(t.store, { queue, runAt: now + 60_000 });
        const past = await submitJob(t.store, { queue, runAt: now - 1000 });
        const soon = await submitJob(t.store, { queue, runAt: now + 300 });
        const workerId = uniq('w');
        const claimed = await t.store.claim({ workerId, queues: [queue], limit: 10 });
        assert.deepEqual(
          claimed.map((j) => j.id),
          [past.id],
        );
        await sleepUntil(t.store, soon.runAt);
        const next = await t.store.claim({ workerId, queues: [queue], limit: 10 });
        assert.deepEqual(
          next.map((j) => j.id),
          [soon.id],
        );
        assert.equal((await t.store.get(later.id))?.state, 'queued');
      });

      it('takes only the tasks the worker names', async () => {
        const queue = uniq('q');
        const a = await submitJob(t.store, { queue, task: 'task.a' });
        const b = await submitJob(t.store, { queue, task: 'task.b' });
        const c = await submitJob(t.store, { queue, task: 'task.c' });
        const claimed = await t.store.claim({
          workerId: uniq('w'),
          queues: [queue],
          limit: 10,
          tasks: ['task.a', 'task.c'],
        });
        assert.deepEqual(claimed.map((j) => j.id).sort(), [a.id, c.id].sort());
        assert.equal((await t.store.get(b.id))?.state, 'queued');
      });

      it('never leases a job classified above the worker clearance (default internal)', async () => {
        const queue = uniq('q');
        const pub = await submitJob(t.store, { queue, classification: 'public' });
        const internal = await submitJob(t.store, { queue, classification: 'internal' });
        const confidential = await submitJob(t.store, { queue, classification: 'confidential' });
        const restricted = await submitJob(t.store, { queue, classification: 'restricted' });

        assert.deepEqual(
          (await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 10, clearance: 'public' })).map(
            (j) => j.id,
          ),
          [pub.id],
        );
        assert.deepEqual(
          (await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 10 })).map((j) => j.id),
          [internal.id],
        );
        assert.deepEqual(
          await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 10, clearance: 'internal' }),
          [],
        );
        assert.deepEqual(
          (
            await t.store.claim({
              workerId: uniq('w'),
              queues: [queue],
              limit: 10,
              clearance: 'confidential',
            })
          ).map((j) => j.id),
          [confidential.id],
        );
        assert.equal((await t.store.get(restricted.id))?.state, 'queued');
        assert.deepEqual(
          (
            await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 10, clearance: 'restricted' })
          ).map((j) => j.id),
          [restricted.id],
        );
      });

      it('does not take a job whose deadline has passed', async () => {
        const queue = uniq('q');
        const job = await submitJob(t.store, { queue, deadline: (await t.store.now()) + 50 });
        await sleepUntil(t.store, job.deadline ?? 0);
        assert.deepEqual(await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 10 }), []);
        const stored = await t.store.get(job.id);
        assert.equal(stored?.fence, 0);
        assert.equal(stored?.attempt, 0);
        assert.ok(stored?.state === 'queued' || stored?.state === 'expired', `state is ${stored?.state}`);
      });
    });

    describe('owner operations', () => {
      it('start moves leased to running under the same fence', async () => {
        const job = await submitJob(t.store);
        const leased = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue] });
        const t0 = await t.store.now();
        const [outcome] = await t.store.start([{ jobId: job.id, fence: leased.fence }]);
        const t1 = await t.store.now();
        const started = okValue(outcome, job.id);
        assert.equal(started.state, 'running');
        const running = await t.store.get(job.id);
        assert.equal(running?.state, 'running');
        assert.equal(running?.reason, 'started');
        assert.equal(running?.fence, 1);
        assert.equal(running?.attempt, 1);
        assert.equal(running?.updatedAt, started.updatedAt);
        assertBetween(started.updatedAt, t0, t1, 'updatedAt');
        assert.deepEqual(await eventTypesFor(t.store, job.id), ['job.queued', 'job.leased', 'job.running']);
      });

      it('heartbeat extends the lease from the store clock and stores progress', async () => {
        const job = await submitJob(t.store, { leaseMs: 1000 });
        const running = await runningJob(t.store, job.queue, uniq('w'));
        await sleep(30);
        const t0 = await t.store.now();
        const [outcome] = await t.store.heartbeat([
          { jobId: job.id, fence: running.fence, progress: { pct: 50 } },
        ]);
        const t1 = await t.store.now();
        const beat = okValue(outcome, job.id);
        assert.equal(beat.cancelRequested, false);
        assertBetween(beat.leaseExpiresAt, t0 + 1000, t1 + 1000, 'leaseExpiresAt');
        assert.ok(
          beat.leaseExpiresAt > (running.leaseExpiresAt ?? Number.POSITIVE_INFINITY),
          'the lease was extended',
        );
        const stored = await t.store.get(job.id);
        assert.equal(stored?.state, 'running');
        assert.equal(stored?.fence, running.fence);
        assert.equal(stored?.leaseExpiresAt, beat.leaseExpiresAt);
        assert.deepEqual(stored?.progress, { pct: 50 });
        // A heartbeat is not a transition: no event.
        assert.deepEqual(await eventTypesFor(t.store, job.id), ['job.queued', 'job.leased', 'job.running']);
      });

      it('complete moves running to succeeded with the output', async () => {
        const job = await submitJob(t.store);
        const running = await runningJob(t.store, job.queue, uniq('w'));
        const [outcome] = await t.store.complete([
          { jobId: job.id, fence: running.fence, output: { url: 'x', n: [1, 2] } },
        ]);
        assert.equal(okValue(outcome, job.id).state, 'succeeded');
        const stored = await t.store.get(job.id);
        assert.equal(stored?.state, 'succeeded');
        assert.equal(stored?.reason, 'completed');
        assert.deepEqual(stored?.output, { url: 'x', n: [1, 2] });
        assert.equal(stored?.attempt, 1);
        assert.equal(stored?.fence, 1);
        assert.deepEqual(await eventTypesFor(t.store, job.id), [
          'job.queued',
          'job.leased',
          'job.running',
          'job.succeeded',
        ]);
        assert.deepEqual(await t.store.claim({ workerId: uniq('w'), queues: [job.queue], limit: 10 }), []);
      });

      it('release hands a leased job back without counting the attempt', async () => {
        const job = await submitJob(t.store);
        const leased = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue] });
        const [outcome] = await t.store.release([{ jobId: job.id, fence: leased.fence }]);
        assert.equal(okValue(outcome, job.id).state, 'queued');
        const released = await t.store.get(job.id);
        assert.equal(released?.state, 'queued');
        assert.equal(released?.reason, 'released');
        assert.equal(released?.attempt, 0);
        assert.equal(released?.fence, 1);
        const events = await eventsFor(t.store, job.id);
        assert.deepEqual(
          events.map((e) => [e.type, e.data.from]),
          [
            ['job.queued', 'submitted'],
            ['job.leased', 'queued'],
            ['job.queued', 'leased'],
          ],
        );
        const again = await claimOne(t.store, { workerId: uniq('w'), queues: [job.queue] });
        assert.equal(again.id, job.id);
        assert.equal(again.fence, 2);
        assert.equal(again.attempt, 1);
      });
    });
  });
}
