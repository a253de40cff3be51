/**
 * Ledger conformance: lease expiry and the reaper, deadlines, failures with retries and backoff, and
 * worker liveness. Each test gets a fresh store, so the reaper's counts are exactly this test's.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Store } from '../../src/ledger/store.js';
import type { Job, WorkerInfo } from '../../src/ledger/types.js';
import { backends, sleep, type TestStore } from '../helpers/backends.js';
import {
  assertBetween,
  assertStale,
  claimOne,
  eventsFor,
  okValue,
  plain,
  runningJob,
  sleepUntil,
  submitJob,
  uniq,
} from './conformance-helpers.js';

const NO_REAP = { requeued: 0, dead: 0, cancelled: 0, expired: 0 };

/** Fail the running job's current attempt and check what the store says it did. */
async function failOnce(store: Store, job: Job, retryable?: boolean) {
  const t0 = await store.now();
  const [outcome] = await store.fail([
    {
      jobId: job.id,
      fence: job.fence,
      error: { code: 'handler_error', message: `attempt ${job.attempt} broke` },
      ...(retryable === undefined ? {} : { retryable }),
    },
  ]);
  const t1 = await store.now();
  return { result: okValue(outcome, job.id), t0, t1 };
}

function worker(id: string, queues: string[]): WorkerInfo {
  return {
    id,
    host: 'test-host',
    pid: 4242,
    version: '0.1.0',
    labels: ['gpu'],
    queues,
    clearance: 'internal',
    concurrency: 4,
    runtimes: ['inline'],
    meta: { configVersion: 7 },
  };
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

    it('reap requeues, kills, cancels and expires, and counts each exactly', async () => {
      const w = uniq('w');
      const now = await t.store.now();
      const requeueRunning = await submitJob(t.store, { maxAttempts: 3 });
      const requeueLeased = await submitJob(t.store, { maxAttempts: 3 });
      const exhausted = await submitJob(t.store, { maxAttempts: 1 });
      const cancelling = await submitJob(t.store, { maxAttempts: 3 });
      const pastDeadline = await submitJob(t.store, { deadline: now + 50 });
      const healthy = await submitJob(t.store);
      const waiting = await submitJob(t.store);

      // The cancel goes first, while its lease is surely alive: the reaper is what cancels it.
      await runningJob(t.store, cancelling.queue, w, { leaseMs: 200 });
      const cancelRequested = await t.store.cancel(cancelling.id);
      assert.equal(cancelRequested.state, 'running');
      assert.equal(cancelRequested.cancelRequested, true);
      await runningJob(t.store, requeueRunning.queue, w, { leaseMs: 200 });
      await claimOne(t.store, { workerId: w, queues: [requeueLeased.queue], leaseMs: 200 });
      await runningJob(t.store, exhausted.queue, w, { leaseMs: 200 });
      const healthyRun = await runningJob(t.store, healthy.queue, w, { leaseMs: 60_000 });

      await sleep(350);
      assert.deepEqual(await t.store.reap(), { requeued: 2, dead: 1, cancelled: 1, expired: 1 });
      assert.deepEqual(await t.store.reap(), NO_REAP);

      for (const [job, from] of [
        [requeueRunning, 'running'],
        [requeueLeased, 'leased'],
      ] as const) {
        const stored = await t.store.get(job.id);
        assert.equal(stored?.state, 'queued');
        assert.equal(stored?.reason, 'lease_expired');
        assert.equal(stored?.attempt, 1);
        assert.equal(stored?.fence, 1);
        const last = (await eventsFor(t.store, job.id)).at(-1);
        assert.deepEqual([last?.type, last?.data.from], ['job.queued', from]);
      }
      const dead = await t.store.get(exhausted.id);
      assert.equal(dead?.state, 'dead');
      assert.ok(
        ['lease_expired', 'attempts_exhausted'].includes(String(dead?.reason)),
        `reason is ${dead?.reason}`,
      );
      assert.equal((await eventsFor(t.store, exhausted.id)).at(-1)?.type, 'job.dead');

      const cancelled = await t.store.get(cancelling.id);
      assert.equal(cancelled?.state, 'cancelled');
      assert.equal(cancelled?.reason, 'cancel_requested');
      assert.equal((await eventsFor(t.store, cancelling.id)).at(-1)?.type, 'job.cancelled');

      const expired = await t.store.get(pastDeadline.id);
      assert.equal(expired?.state, 'expired');
      assert.equal(expired?.reason, 'deadline_passed');
      assert.deepEqual(
        (await eventsFor(t.store, pastDeadline.id)).map((e) => [e.type, e.data.from]),
        [
          ['job.queued', 'submitted'],
          ['job.expired', 'queued'],
        ],
      );

      const stillRunning = await t.store.get(healthy.id);
      assert.equal(stillRunning?.state, 'running');
      assert.equal(stillRunning?.fence, healthyRun.fence);
      assert.equal((await t.store.get(waiting.id))?.state, 'queued');

      const again = await claimOne(t.store, { workerId: uniq('w'), queues: [requeueRunning.queue] });
      assert.equal(again.fence, 2);
      assert.equal(again.attempt, 2);
    });

    it('expires a running job whose deadline passes, and its owner can no longer write', async () => {
      const job = await submitJob(t.store, { deadline: (await t.store.now()) + 100 });
      const running = await runningJob(t.store, job.queue, uniq('w'), { leaseMs: 60_000 });
      await sleepUntil(t.store, job.deadline ?? 0);
      assert.deepEqual(await t.store.reap(), { ...NO_REAP, expired: 1 });
      const stored = await t.store.get(job.id);
      assert.equal(stored?.state, 'expired');
      assert.equal(stored?.reason, 'deadline_passed');
      assertStale(
        (await t.store.complete([{ jobId: job.id, fence: running.fence, output: 1 }]))[0],
        job.id,
        running.fence,
      );
      assert.equal((await t.store.get(job.id))?.state, 'expired');
    });

    it('retries with backoff until attempts are exhausted, then the job is dead', async () => {
      const baseMs = 200;
      const job = await submitJob(t.store, { maxAttempts: 3, backoff: { baseMs, maxMs: 10_000 } });
      const w = uniq('w');
      for (let attempt = 1; attempt <= 2; attempt++) {
        const running = await runningJob(t.store, job.queue, w);
        assert.equal(running.attempt, attempt);
        assert.equal(running.fence, attempt);
        const { result, t0, t1 } = await failOnce(t.store, running);
        assert.equal(result.state, 'queued');
        const exp = baseMs * 2 ** (attempt - 1);
        assertBetween(result.runAt, t0 + baseMs / 2, t1 + exp, `runAt after attempt ${attempt}`);
        assert.ok((result.runAt ?? 0) >= t0 + exp / 2 - 1, 'the delay is at least half the exponential step');
        const stored = await t.store.get(job.id);
        assert.equal(stored?.state, 'queued');
        assert.equal(stored?.reason, 'retry_scheduled');
        assert.equal(stored?.attempt, attempt);
        assert.equal(stored?.runAt, result.runAt);
        assert.deepEqual(stored?.error, { code: 'handler_error', message: `attempt ${attempt} broke` });
        assert.deepEqual(await t.store.claim({ workerId: w, queues: [job.queue], limit: 1 }), []);
        await sleepUntil(t.store, result.runAt ?? 0);
      }
      const last = await runningJob(t.store, job.queue, w);
      assert.equal(last.attempt, 3);
      const { result } = await failOnce(t.store, last);
      assert.equal(result.state, 'dead');
      assert.equal(result.runAt, undefined);
      const dead = await t.store.get(job.id);
      assert.equal(dead?.state, 'dead');
      assert.equal(dead?.reason, 'attempts_exhausted');
      assert.equal(dead?.attempt, 3);
      assert.deepEqual(dead?.error, { code: 'handler_error', message: 'attempt 3 broke' });

      const events = await eventsFor(t.store, job.id);
      const attemptEvents = ['job.leased', 'job.running', 'job.failed'];
      assert.deepEqual(
        events.map((e) => e.type),
        [
          'job.queued',
          ...attemptEvents,
          'job.queued',
          ...attemptEvents,
          'job.queued',
          ...attemptEvents,
          'job.dead',
        ],
      );
      assert.deepEqual(await t.store.reap(), NO_REAP);
    });

    it('bounds the backoff by maxMs', async () => {
      const job = await submitJob(t.store, { maxAttempts: 5, backoff: { baseMs: 100, maxMs: 150 } });
      const w = uniq('w');
      const first = await failOnce(t.store, await runningJob(t.store, job.queue, w));
      await sleepUntil(t.store, first.result.runAt ?? 0);
      const { result, t0, t1 } = await failOnce(t.store, await runningJob(t.store, job.queue, w));
      assert.equal(result.state, 'queued');
      // attempt 2: min(150, 100 * 2) = 150, jittered into [75, 150]
      assertBetween(result.runAt, t0 + 75, t1 + 150, 'runAt after attempt 2');
    });

    it('a non-retryable failure is dead at once', async () => {
      const job = await submitJob(t.store, { maxAttempts: 5 });
      const running = await runningJob(t.store, job.queue, uniq('w'));
      const { result } = await failOnce(t.store, running, false);
      assert.equal(result.state, 'dead');
      const dead = await t.store.get(job.id);
      assert.equal(dead?.state, 'dead');
      assert.equal(dead?.reason, 'not_retryable');
      assert.equal(dead?.attempt, 1);
      assert.deepEqual(dead?.error, { code: 'handler_error', message: 'attempt 1 broke' });
      assert.deepEqual(
        (await eventsFor(t.store, job.id)).map((e) => e.type),
        ['job.queued', 'job.leased', 'job.running', 'job.failed', 'job.dead'],
      );
    });

    it('workers: register, heartbeat, lost when silent, their leases reaped', async () => {
      const queue = uniq('q');
      const silentId = uniq('w');
      const aliveId = uniq('w');
      const t0 = await t.store.now();
      const silent = await t.store.registerWorker(worker(silentId, [queue]));
      const t1 = await t.store.now();
      assert.equal(silent.state, 'active');
      assertBetween(silent.startedAt, t0, t1, 'startedAt');
      assertBetween(silent.lastSeenAt, t0, t1, 'lastSeenAt');
      const { state: _state, startedAt: _startedAt, lastSeenAt: _lastSeenAt, config, ...info } = silent;
      assert.deepEqual(plain(info), plain(worker(silentId, [queue])));
      assert.deepEqual(config, {}, 'no config reported yet');
      await t.store.registerWorker(worker(aliveId, [queue]));

      const job = await submitJob(t.store, { queue, leaseMs: 60_000 });
      const running = await runningJob(t.store, queue, silentId);
      await sleep(200);
      assert.equal(await t.store.workerHeartbeat(aliveId), 'active');
      assert.deepEqual(await t.store.markLostWorkers(150), [silentId]);
      assert.deepEqual(await t.store.markLostWorkers(150), []);

      const states = Object.fromEntries((await t.store.listWorkers()).map((r) => [r.id, r.state]));
      assert.deepEqual(states, { [silentId]: 'lost', [aliveId]: 'active' });
      assert.equal(await t.store.workerHeartbeat(silentId), 'lost');

      assert.deepEqual(await t.store.reap(), { ...NO_REAP, requeued: 1 });
      const requeued = await t.store.get(job.id);
      assert.equal(requeued?.state, 'queued');
      assert.equal(requeued?.reason, 'lease_expired');
      assert.equal(requeued?.attempt, 1);
      assertStale(
        (await t.store.complete([{ jobId: job.id, fence: running.fence }]))[0],
        job.id,
        running.fence,
      );

      const back = await t.store.registerWorker(worker(silentId, [queue]));
      assert.equal(back.state, 'active');
      assert.equal(await t.store.workerHeartbeat(silentId), 'active');
      assert.equal(await t.store.workerHeartbeat(aliveId, 'draining'), 'draining');
      const after = Object.fromEntries((await t.store.listWorkers()).map((r) => [r.id, r.state]));
      assert.deepEqual(after, { [silentId]: 'active', [aliveId]: 'draining' });
    });
  });
}
