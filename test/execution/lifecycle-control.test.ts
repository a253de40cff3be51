/**
 * The worker's control of one attempt, against each ledger backend: timeouts, cancellation,
 * deadlines, lease loss (a blocked event loop while another worker takes the job over), progress,
 * and riding out a failing store.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Worker } from '../../src/execution/worker.js';
import type { Store } from '../../src/ledger/store.js';
import type { ClaimOptions } from '../../src/ledger/types.js';
import { backends, type TestStore } from '../helpers/backends.js';
import { observed, openGate } from './fixtures/tasks.js';
import {
  eventTypes,
  eventually,
  overrideStore,
  sleep,
  startWorker,
  submit,
  task,
  tasks,
  waitForState,
} from './helpers.js';

const TERMINAL = ['succeeded', 'dead', 'cancelled', 'expired'] as const;

for (const backend of backends()) {
  describe(`lifecycle control (${backend.dialect})`, () => {
    /** A fresh store for one test; workers in `workers` are stopped before it is dropped. */
    async function withStore(fn: (t: TestStore, workers: Worker[]) => Promise<void>): Promise<void> {
      const t = await backend.create();
      const workers: Worker[] = [];
      try {
        await fn(t, workers);
      } finally {
        for (const w of workers) await w.stop({ graceMs: 2000 });
        await t.cleanup();
      }
    }

    test('an attempt past timeoutMs is aborted with reason timeout, retried, then dead with code timeout', async () => {
      await withStore(async (t, workers) => {
        const def = await task('exec.timeout.inline');
        workers.push(await startWorker(t.store, [def]));
        const job = await submit(t.store, def, {});
        const done = await waitForState(t.store, job.id, [...TERMINAL]);
        assert.equal(done.state, 'dead');
        assert.equal(done.error?.code, 'timeout');
        assert.equal(done.attempt, 2, 'maxAttempts 2: one retry, then dead');
        assert.equal(done.output, undefined);
        assert.deepEqual(
          (await eventTypes(t.store, job.id)).filter((e) => e === 'job.failed' || e === 'job.dead'),
          ['job.failed', 'job.failed', 'job.dead'],
        );
        assert.equal(observed.get(job.id)?.reason, 'timeout', 'the handler saw signal.reason = timeout');
        assert.equal(observed.get(job.id)?.attempt, 2);
      });
    });

    test('store.cancel of a running job aborts its handler within a heartbeat interval; the job ends cancelled', async () => {
      await withStore(async (t, workers) => {
        const def = await task('exec.cancel.inline');
        workers.push(await startWorker(t.store, [def]));
        const job = await submit(t.store, def, {});
        await waitForState(t.store, job.id, 'running');
        const askedAt = Date.now();
        const asked = await t.store.cancel(job.id);
        assert.equal(asked.state, 'running', 'a running job is asked, not cancelled outright');
        assert.equal(asked.cancelRequested, true);
        const seen = await eventually('the handler to see its abort', () => observed.get(job.id));
        assert.equal(seen.reason, 'cancelled');
        const heartbeatEvery = def.leaseMs / 3;
        assert.ok(
          (seen.at as number) - askedAt <= heartbeatEvery + 2000,
          `abort reached the handler ${(seen.at as number) - askedAt} ms after cancel (heartbeat every ${heartbeatEvery} ms)`,
        );
        const done = await waitForState(t.store, job.id, [...TERMINAL, 'queued']);
        assert.equal(done.state, 'cancelled');
        assert.equal(done.attempt, 1);
        assert.equal(done.output, undefined);
        assert.ok(!(await eventTypes(t.store, job.id)).includes('job.failed'), 'a cancel is not a failure');
      });
    });

    test('a deadline passing mid-attempt: the reaper expires the job and the attempt commits nothing after', async () => {
      await withStore(async (t, workers) => {
        const def = await task('exec.deadline.inline');
        workers.push(await startWorker(t.store, [def]));
        // The handler ignores its signal and sleeps well past the deadline, then tries to commit.
        const job = await submit(t.store, def, { ms: 1500 }, { deadline: (await t.store.now()) + 600 });
        await waitForState(t.store, job.id, 'running');
        const done = await waitForState(t.store, job.id, [...TERMINAL, 'queued']);
        assert.equal(
          done.state,
          'expired',
          `expected expired, got ${done.state} ${JSON.stringify(done.error)}`,
        );
        assert.equal(done.reason, 'deadline_passed');
        // Wait for the handler to wake and try its step, then check nothing landed.
        const seen = await eventually('the handler to try its late step', () => observed.get(job.id));
        assert.equal(seen.step, 'refused');
        await sleep(200);
        const after = await t.store.get(job.id);
        assert.equal(after?.state, 'expired');
        assert.equal(after?.output, undefined);
        assert.deepEqual(await t.store.listSteps(job.id), []);
        const types = await eventTypes(t.store, job.id);
        assert.deepEqual(types.slice(types.indexOf('job.running')), ['job.running', 'job.expired']);
      });
    });

    test('lease loss: a worker whose event loop was blocked past its lease commits nothing; the other worker’s output wins', async () => {
      await withStore(async (t, workers) => {
        const def = await task('exec.block.inline');
        // Worker A gets one job and no more, so the re-claim can only be B's.
        let claimedByA = false;
        const storeA = overrideStore(t.store, {
          claim: async (o: ClaimOptions) => {
            if (claimedByA) return [];
            const jobs = await t.store.claim(o);
            if (jobs.length > 0) claimedByA = true;
            return jobs;
          },
        });
        const a = await startWorker(storeA, [def], { workerId: 'worker-a' });
        workers.push(a);
        const job = await submit(t.store, def, { blockMs: 1800 }, { leaseMs: 500 });
        await eventually('worker A to lease the job', async () =>
          (await t.store.get(job.id))?.workerId === 'worker-a' ? true : undefined,
        );
        const b = await startWorker(await t.reopen(), [def], { workerId: 'worker-b' });
        workers.push(b);
        const done = await waitForState(t.store, job.id, [...TERMINAL], 20_000);
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
        assert.equal(done.workerId, 'worker-b');
        assert.equal(done.attempt, 2);
        assert.deepEqual(done.output, {
          attempt: 2,
          fence: done.fence,
          step: { attempt: 2, fence: done.fence },
        });
        assert.ok(done.fence >= 2);
        const steps = await t.store.listSteps(job.id);
        assert.deepEqual(
          steps.map((s) => [s.stepKey, s.attempt]),
          [['after-block', 2]],
          'A’s late step was refused',
        );
        const types = await eventTypes(t.store, job.id);
        assert.equal(types.filter((e) => e === 'job.succeeded').length, 1, 'one output, not two');
        // Let A finish whatever it was doing, then check it recorded no success of its own.
        await eventually('worker A to let go', () => (a.health().inFlight === 0 ? true : undefined));
        assert.equal(a.health().completed, 0);
        assert.equal(b.health().completed, 1);
        assert.deepEqual((await t.store.get(job.id))?.output, done.output);
      });
    });

    test('ctx.heartbeat(progress) makes progress visible through store.get while the job runs', async () => {
      await withStore(async (t, workers) => {
        const def = await task('exec.gated.inline');
        workers.push(await startWorker(t.store, [def]));
        const gate = `progress-${backend.dialect}`;
        const progress = { pct: 50, stage: 'half way' };
        const job = await submit(t.store, def, { gate, progress });
        const seen = await eventually('progress to show', async () => {
          const j = await t.store.get(job.id);
          return j?.progress === undefined ? undefined : j;
        });
        assert.equal(seen.state, 'running');
        assert.deepEqual(seen.progress, progress);
        openGate(gate);
        const done = await waitForState(t.store, job.id, [...TERMINAL]);
        assert.equal(done.state, 'succeeded');
        assert.deepEqual(done.output, { gate, attempt: 1 });
      });
    });

    // The brief's outage fails what a worker needs to make progress (claim, heartbeat); a full
    // outage fails every call the worker makes.
    const OUTAGES: Record<string, (keyof Store)[]> = {
      'claim and heartbeat fail': ['claim', 'heartbeat'],
      'every store call fails': [
        'claim',
        'start',
        'heartbeat',
        'complete',
        'fail',
        'confirmCancel',
        'putStep',
        'getStep',
        'reap',
        'markLostWorkers',
        'workerHeartbeat',
        'registerWorker',
      ],
    };
    for (const [outageName, methods] of Object.entries(OUTAGES)) {
      test(`while ${outageName}, health says store_unreachable; afterwards ok, claiming resumes, jobs complete`, async () => {
        await withStore(async (t, workers) => {
          const [gated, sleeper] = await tasks('exec.gated.inline', 'exec.sleep.inline');
          let failing = false;
          const calls = new Map<string, number>();
          const overrides: Partial<Record<keyof Store, unknown>> = {};
          for (const m of methods) {
            const real = (t.store[m] as (...args: unknown[]) => Promise<unknown>).bind(t.store);
            overrides[m] = async (...args: unknown[]) => {
              if (!failing) return real(...args);
              calls.set(m, (calls.get(m) ?? 0) + 1);
              throw new Error('simulated store outage');
            };
          }
          const worker = await startWorker(overrideStore(t.store, overrides), [gated!, sleeper!]);
          workers.push(worker);
          // One job in flight through the outage (its lease outlives it; heartbeats every second).
          const gate = `outage-${backend.dialect}-${outageName}`;
          const inFlight = await submit(t.store, gated!, { gate }, { leaseMs: 3000 });
          await waitForState(t.store, inFlight.id, 'running');
          assert.equal(worker.health().store, 'ok');

          failing = true;
          const queued = await Promise.all([1, 2, 3].map(() => submit(t.store, sleeper!, { ms: 10 })));
          await eventually('health to report the outage', () =>
            worker.health().store === 'store_unreachable' ? true : undefined,
          );
          // Stays unreachable while the store keeps failing; nothing new is claimed.
          const samples: string[] = [];
          for (let i = 0; i < 8; i++) {
            await sleep(100);
            const h = worker.health();
            samples.push(h.store);
            assert.equal(h.inFlight, 1, 'the in-flight handler keeps going');
          }
          assert.deepEqual(
            samples,
            samples.map(() => 'store_unreachable'),
            'health sampled every 100 ms during the outage',
          );
          assert.match(worker.health().lastStoreError ?? '', /simulated store outage/);
          for (const j of queued) assert.equal((await t.store.get(j.id))?.state, 'queued');
          assert.ok((calls.get('claim') ?? 0) >= 1, 'the worker kept trying to claim');

          failing = false;
          await eventually(
            'health to recover',
            () => (worker.health().store === 'ok' ? true : undefined),
            10_000,
          );
          openGate(gate);
          for (const j of [inFlight, ...queued]) {
            const done = await waitForState(t.store, j.id, [...TERMINAL], 15_000);
            assert.equal(done.state, 'succeeded', `${j.task}: ${JSON.stringify(done.error)}`);
            assert.equal(done.attempt, 1, 'the in-flight job kept its lease through the outage');
          }
          const h = worker.health();
          assert.equal(h.store, 'ok');
          assert.equal(h.completed, 4);
          assert.equal(h.lastStoreError, undefined);
        });
      });
    }
  });
}
