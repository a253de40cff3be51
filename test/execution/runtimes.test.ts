/**
 * The three runtimes (inline, thread, process): the same handler gives the same output on each,
 * durable steps run once across attempts, isolated runners get a clean environment, and a runner
 * that crashes, runs out of memory, or ignores its abort fails only its attempt (and is replaced).
 * The process runtime's `egress: 'none'` has no network. The store is not the subject: SQLite only.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { canEnforceNoEgress } from '../../src/execution/runtimes/process-runtime.js';
import type { RuntimeName } from '../../src/execution/task.js';
import type { Worker } from '../../src/execution/worker.js';
import { defineTask } from '../../src/index.js';
import type { Store } from '../../src/ledger/store.js';
import { backends, type TestStore, tempDir } from '../helpers/backends.js';
import { eventTypes, eventually, startWorker, submit, task, tasks, waitForState } from './helpers.js';

const sqlite = backends().find((b) => b.dialect === 'sqlite');
assert.ok(sqlite);

/** Run `fn` with a fresh SQLite store and a started worker for `names`; always cleans up. */
async function withWorker(
  names: string[],
  fn: (store: Store, worker: Worker, dir: string) => Promise<void>,
  concurrency = 4,
): Promise<void> {
  const t: TestStore = await (sqlite as NonNullable<typeof sqlite>).create();
  const tmp = tempDir('bulkhead-exec-');
  let worker: Worker | undefined;
  try {
    worker = await startWorker(t.store, await tasks(...names), { concurrency });
    await fn(t.store, worker, tmp.dir);
  } finally {
    await worker?.stop({ graceMs: 2000 });
    await t.cleanup();
    tmp.remove();
  }
}

const RUNTIMES: RuntimeName[] = ['inline', 'thread', 'process'];
const ISOLATED = ['thread', 'process'] as const;

describe('runtimes', () => {
  test('the same handler gives the same output, progress and steps on inline, thread and process', async () => {
    await withWorker(
      RUNTIMES.map((rt) => `exec.compute.${rt}`),
      async (store) => {
        const input = { text: 'the quick brown fox jumps', n: 100 };
        const def = await tasks(...RUNTIMES.map((rt) => `exec.compute.${rt}`));
        const jobs = await Promise.all(def.map((d) => submit(store, d, input)));
        const done = await Promise.all(jobs.map((j) => waitForState(store, j.id, ['succeeded', 'dead'])));
        const expected = {
          digest: createHash('sha256').update(input.text).digest('hex'),
          sum: 5050,
          words: 5,
          doubled: 200,
          attempt: 1,
          fence: 1,
          stableKey: true,
        };
        for (const [i, job] of done.entries()) {
          const rt = RUNTIMES[i];
          assert.equal(job.state, 'succeeded', `${rt}: ${JSON.stringify(job.error)}`);
          assert.deepEqual(job.output, expected, `${rt} output`);
          assert.deepEqual(job.progress, { stage: 'computing' }, `${rt} progress`);
          const steps = await store.listSteps(job.id);
          assert.deepEqual(
            steps.map((s) => [s.stepKey, s.result, s.attempt]),
            [['double', 200, 1]],
            `${rt} steps`,
          );
        }
      },
    );
  });

  for (const rt of RUNTIMES) {
    test(`${rt}: a durable step runs once across attempts`, async () => {
      await withWorker([`exec.steps.${rt}`], async (store, _worker, dir) => {
        const file = join(dir, 'side-effects.log');
        const job = await submit(store, await task(`exec.steps.${rt}`), {
          file,
        });
        const done = await waitForState(store, job.id, ['succeeded', 'dead']);
        assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
        assert.equal(done.attempt, 2, 'attempt 1 failed after its step, attempt 2 succeeded');
        assert.deepEqual(done.output, { step: { ranOnAttempt: 1 }, attempt: 2 });
        assert.equal(readFileSync(file, 'utf8'), 'attempt 1\n', 'the side effect ran exactly once');
        const steps = await store.listSteps(job.id);
        assert.deepEqual(
          steps.map((s) => [s.stepKey, s.attempt, s.fence]),
          [['side-effect', 1, 1]],
        );
        const types = await eventTypes(store, job.id);
        assert.equal(types.filter((t) => t === 'step.committed').length, 1);
        assert.equal(types.filter((t) => t === 'job.failed').length, 1);
      });
    });
  }

  test('thread and process handlers see a clean environment (no secrets); inline shares the worker’s', async () => {
    const secret = `s3cret-${randomBytes(8).toString('hex')}`;
    process.env.BULKHEAD_SECRET_PROBE = secret;
    try {
      await withWorker(
        RUNTIMES.map((rt) => `exec.whoami.${rt}`),
        async (store) => {
          for (const rt of RUNTIMES) {
            const job = await submit(store, await task(`exec.whoami.${rt}`), {});
            const done = await waitForState(store, job.id, ['succeeded', 'dead']);
            assert.equal(done.state, 'succeeded', `${rt}: ${JSON.stringify(done.error)}`);
            const out = done.output as { secret: string | null; pid: number; threadId: number };
            // inline is the control: it runs in the worker, so the probe is visible there.
            assert.equal(out.secret, rt === 'inline' ? secret : null, `${rt} sees the secret?`);
            if (rt === 'process') assert.notEqual(out.pid, process.pid, 'process runs in another pid');
            if (rt === 'thread') assert.notEqual(out.threadId, 0, 'thread runs off the main thread');
          }
        },
      );
    } finally {
      delete process.env.BULKHEAD_SECRET_PROBE;
    }
  });

  test('a runner that exits fails its attempt with runtime_crashed; the worker keeps running jobs', async () => {
    const names = ISOLATED.flatMap((rt) => [`exec.crash.${rt}`, `exec.compute.${rt}`]);
    await withWorker(names, async (store, worker) => {
      const input = { text: 'x', n: 3 };
      const crashes = await Promise.all(
        ISOLATED.map(async (rt) => submit(store, await task(`exec.crash.${rt}`), {})),
      );
      const before = await Promise.all(
        ISOLATED.map(async (rt) => submit(store, await task(`exec.compute.${rt}`), input)),
      );
      for (const [i, c] of crashes.entries()) {
        const done = await waitForState(store, c.id, ['succeeded', 'dead']);
        assert.equal(done.state, 'dead', ISOLATED[i]);
        assert.equal(done.error?.code, 'runtime_crashed', `${ISOLATED[i]}: ${JSON.stringify(done.error)}`);
        assert.equal(done.attempt, 1);
      }
      const after = await Promise.all(
        ISOLATED.map(async (rt) => submit(store, await task(`exec.compute.${rt}`), input)),
      );
      for (const j of [...before, ...after]) {
        const done = await waitForState(store, j.id, ['succeeded', 'dead']);
        assert.equal(done.state, 'succeeded', `${j.task}: ${JSON.stringify(done.error)}`);
      }
      const h = worker.health();
      assert.equal(h.state, 'running');
      assert.equal(h.failed, 2);
      assert.equal(h.completed, 4);
    });
  });

  test('a runner that allocates without bound (memoryLimitMb 64) fails with out_of_memory', async () => {
    const names = ISOLATED.flatMap((rt) => [`exec.oom.${rt}`, `exec.whoami.${rt}`]);
    await withWorker(names, async (store) => {
      for (const rt of ISOLATED) {
        const job = await submit(store, await task(`exec.oom.${rt}`), {});
        const done = await waitForState(store, job.id, ['succeeded', 'dead'], 30_000);
        assert.equal(done.state, 'dead', rt);
        assert.equal(done.error?.code, 'out_of_memory', `${rt}: ${JSON.stringify(done.error)}`);
        // The pool replaced the dead runner: the next job of the same configuration runs.
        const next = await submit(store, await task(`exec.whoami.${rt}`), {});
        assert.equal((await waitForState(store, next.id, ['succeeded', 'dead'])).state, 'succeeded');
      }
    });
  });

  for (const rt of ISOLATED) {
    test(`${rt}: a handler that ignores its abort times out and its runner is killed and replaced`, async () => {
      await withWorker(
        [`exec.spin.${rt}`, `exec.whoami.${rt}`],
        async (store) => {
          const whoami = await task(`exec.whoami.${rt}`);
          type Id = { pid: number; threadId: number };
          const idOf = async (): Promise<Id> => {
            const j = await submit(store, whoami, {});
            const done = await waitForState(store, j.id, ['succeeded', 'dead']);
            assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
            return done.output as Id;
          };
          const first = await idOf();
          const spin = await submit(store, await task(`exec.spin.${rt}`), {});
          const running = await eventually('the spinner to report its runner', async () => {
            const j = await store.get(spin.id);
            return j?.progress === undefined ? undefined : (j.progress as Id);
          });
          assert.deepEqual(
            running,
            { pid: first.pid, threadId: first.threadId },
            'with one runner slot, the spinner reuses the idle runner',
          );
          const done = await waitForState(store, spin.id, ['succeeded', 'dead']);
          assert.equal(done.state, 'dead');
          assert.equal(done.error?.code, 'timeout', JSON.stringify(done.error));
          const second = await idOf();
          if (rt === 'process') {
            assert.notEqual(second.pid, first.pid, 'the next job runs in a fresh process');
            assert.throws(
              () => process.kill(first.pid, 0),
              { code: 'ESRCH' },
              'the spinning process is gone',
            );
          } else {
            assert.notEqual(second.threadId, first.threadId, 'the next job runs in a fresh thread');
          }
        },
        1,
      );
    });
  }

  test('cancellation reaches a process handler as an abort with reason cancelled', async () => {
    await withWorker(['exec.cancel.process'], async (store, _worker, dir) => {
      const file = join(dir, 'abort-reason');
      const job = await submit(store, await task('exec.cancel.process'), { file });
      await eventually('the handler to start', async () => (await store.get(job.id))?.progress);
      await store.cancel(job.id);
      const done = await waitForState(store, job.id, ['cancelled', 'succeeded', 'dead', 'queued']);
      assert.equal(done.state, 'cancelled');
      const reason = await eventually('the handler to see its abort', () => {
        try {
          return readFileSync(file, 'utf8');
        } catch {
          return undefined;
        }
      });
      assert.equal(reason, 'cancelled');
    });
  });

  test('egress none: a process handler cannot connect; the same handler without it can', async (t) => {
    const check = canEnforceNoEgress();
    if (!check.enforced) return t.skip(`egress none not enforceable here: ${check.why}`);
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      await withWorker(['exec.net.none', 'exec.net.any'], async (store) => {
        const [none, any] = await tasks('exec.net.none', 'exec.net.any');
        const target = { host: '127.0.0.1', port };
        const jNone = await waitForState(store, (await submit(store, none!, target)).id, [
          'succeeded',
          'dead',
        ]);
        const jAny = await waitForState(store, (await submit(store, any!, target)).id, ['succeeded', 'dead']);
        assert.equal(jNone.state, 'succeeded', JSON.stringify(jNone.error));
        assert.deepEqual(jNone.output, { connected: false, error: 'ENETUNREACH' });
        assert.deepEqual(jAny.output, { connected: true, error: null });
        assert.equal(connections, 1, 'only the handler with egress reached the server');
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('defineTask refuses an egress none task on a non-process runtime', async () => {
    const t = await (sqlite as NonNullable<typeof sqlite>).create();
    try {
      for (const runtime of ['inline', 'thread'] as const) {
        assert.throws(
          () =>
            defineTask({
              name: `exec.egress.${runtime}`,
              runtime,
              egress: 'none',
              input: z.object({}),
              run: () => null,
            }),
          (err: Error) =>
            err instanceof TypeError &&
            err.message.includes(`exec.egress.${runtime}`) &&
            /egress 'none' needs runtime 'process'/.test(err.message) &&
            err.message.includes(runtime),
        );
      }
    } finally {
      await t.cleanup();
    }
  });
});
