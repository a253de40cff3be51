/**
 * Draining real `bulkhead worker` processes with signals: SIGTERM lets in-flight work finish within
 * --grace-ms and claims nothing new; work longer than the grace is left to its lease (another worker
 * completes it); a second SIGTERM exits at once. SQLite file store shared with this test process.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { openStore } from '../../src/ledger/open.js';
import type { Store } from '../../src/ledger/store.js';
import { type Proc, spawnCli, stopAll } from '../e2e/procs.js';
import { tempDir } from '../helpers/backends.js';
import { eventually, FIXTURES, submit, task, waitForState } from './helpers.js';

after(stopAll);

interface Running {
  proc: Proc;
  workerId: string;
}

/** Start `bulkhead worker` on `file` with the fixture tasks; resolves once it says it is running. */
async function startCliWorker(file: string, cwd: string, graceMs: number): Promise<Running> {
  const proc = spawnCli(
    ['worker', '--store', file, '--tasks', FIXTURES, '--grace-ms', String(graceMs), '--concurrency', '4'],
    { cwd, env: { BULKHEAD_LOG_LEVEL: 'info' } },
  );
  const m = await proc.waitFor(/Bulkhead worker (\S+) running/);
  return { proc, workerId: m[1] as string };
}

/** SIGTERM, then wait for the worker to log that it is shutting down; returns when the signal was sent. */
async function sigterm(w: Running): Promise<number> {
  const at = Date.now();
  w.proc.child.kill('SIGTERM');
  await w.proc.waitFor(/shutting down/, 5000);
  return at;
}

/** A temp dir with a SQLite ledger opened by this process; cleans both up. */
async function withLedger(fn: (store: Store, file: string, dir: string) => Promise<void>): Promise<void> {
  const tmp = tempDir('bulkhead-drain-');
  const file = join(tmp.dir, 'ledger.db');
  const store = await openStore(file);
  try {
    await fn(store, file, tmp.dir);
  } finally {
    await stopAll();
    await store.close();
    tmp.remove();
  }
}

describe('worker drain on SIGTERM', () => {
  test('in-flight jobs finish, nothing new is claimed, exit 0 within the grace period', async () => {
    await withLedger(async (store, file, dir) => {
      const sleeper = await task('exec.sleep.inline');
      const w = await startCliWorker(file, dir, 5000);
      const inFlight = await Promise.all([1, 2, 3].map(() => submit(store, sleeper, { ms: 1000 })));
      for (const j of inFlight) await waitForState(store, j.id, 'running');

      const signalledAt = await sigterm(w);
      const late = await Promise.all([1, 2].map(() => submit(store, sleeper, { ms: 10 })));
      const end = await w.proc.exited;
      const took = Date.now() - signalledAt;
      assert.equal(end.code, 0, w.proc.describe());
      assert.ok(took < 5000, `exited ${took} ms after SIGTERM, beyond the 5000 ms grace`);

      for (const j of inFlight) {
        const done = await store.get(j.id);
        assert.equal(done?.state, 'succeeded', `in-flight ${j.id}: ${JSON.stringify(done?.error)}`);
        assert.equal(done?.workerId, w.workerId);
        assert.deepEqual(done?.output, { slept: 1000, attempt: 1 });
      }
      for (const j of late) {
        const job = await store.get(j.id);
        assert.equal(job?.state, 'queued', 'a job submitted after SIGTERM stays queued');
        assert.equal(job?.attempt, 0);
        assert.equal(job?.fence, 0, 'never claimed');
      }
      const record = (await store.listWorkers()).find((r) => r.id === w.workerId);
      assert.equal(record?.state, 'stopped');
    });
  });

  for (const honour of [true, false]) {
    test(`a handler longer than the grace (${honour ? 'honours' : 'ignores'} its signal): exit 0 after the grace; another worker completes the job`, async () => {
      await withLedger(async (store, file, dir) => {
        const sleeper = await task('exec.sleep.inline');
        const first = await startCliWorker(file, dir, 500);
        const job = await submit(store, sleeper, { ms: 10_000, retryMs: 50, honour }, { leaseMs: 1500 });
        await waitForState(store, job.id, 'running');

        const signalledAt = await sigterm(first);
        const end = await first.proc.exited;
        const took = Date.now() - signalledAt;
        assert.equal(end.code, 0, first.proc.describe());
        assert.ok(took >= 450, `exited ${took} ms after SIGTERM: it should wait out the 500 ms grace`);
        assert.ok(took < 500 + 4000, `exited ${took} ms after SIGTERM, long after the 500 ms grace`);

        // Nothing was committed for the abandoned attempt: the job still holds the first lease.
        const left = await store.get(job.id);
        assert.equal(left?.state, 'running');
        assert.equal(left?.workerId, first.workerId);
        assert.equal(left?.fence, 1);
        assert.equal(left?.output, undefined);

        const second = await startCliWorker(file, dir, 5000);
        const done = await waitForState(store, job.id, ['succeeded', 'dead', 'cancelled', 'expired'], 20_000);
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
        assert.equal(done.workerId, second.workerId);
        assert.notEqual(second.workerId, first.workerId);
        assert.equal(done.attempt, 2);
        assert.deepEqual(done.output, { slept: 50, attempt: 2 });
        await sigterm(second);
        assert.equal((await second.proc.exited).code, 0);
      });
    });
  }

  test('a second SIGTERM during the drain exits at once with code 130', async () => {
    await withLedger(async (store, file, dir) => {
      const sleeper = await task('exec.sleep.inline');
      const w = await startCliWorker(file, dir, 30_000);
      const job = await submit(store, sleeper, { ms: 30_000 });
      await waitForState(store, job.id, 'running');

      await sigterm(w);
      // Still draining: the job is in flight and the grace is 30 s.
      await eventually('the worker to record that it is draining', async () =>
        (await store.listWorkers()).find((r) => r.id === w.workerId)?.state === 'draining' ? true : undefined,
      );
      assert.ok(w.proc.running);
      const secondAt = Date.now();
      w.proc.child.kill('SIGTERM');
      const end = await w.proc.exited;
      assert.equal(end.code, 130, w.proc.describe());
      assert.ok(Date.now() - secondAt < 3000, 'the second signal exits at once, not after the grace');
      const left = await store.get(job.id);
      assert.equal(left?.state, 'running', 'the in-flight job is left to its lease');
      assert.equal(left?.output, undefined);
    });
  });
});
