/** The `thread` runtime: a pool of worker threads, each with a heap limit, killed with terminate(). */
import { Worker as Thread } from 'node:worker_threads';
import type { TaskDefinition } from '../task.js';
import { type Channel, IsolatedPool, RUNNER_PATH } from './isolated-pool.js';
import { cleanEnv } from './process-runtime.js';
import type { FromRunner } from './protocol.js';
import { RuntimeCrashedError } from './runtime.js';

function spawnThread(task: TaskDefinition): Channel {
  const thread = new Thread(RUNNER_PATH, {
    resourceLimits: { maxOldGenerationSizeMb: task.memoryLimitMb },
    // Its own copy of a clean environment; note a thread shares the process: `process` is the isolation boundary.
    env: cleanEnv(),
  });
  let crash: RuntimeCrashedError | undefined;
  let killed = false;
  const exitListeners: ((e?: RuntimeCrashedError) => void)[] = [];
  thread.on('error', (err: Error & { code?: string }) => {
    crash =
      err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new RuntimeCrashedError(
            'out_of_memory',
            `the thread ran out of memory (limit ${task.memoryLimitMb} MB)`,
          )
        : new RuntimeCrashedError('runtime_crashed', `the thread crashed: ${err.message}`);
  });
  thread.on('exit', (code) => {
    const err =
      crash ??
      (killed
        ? new RuntimeCrashedError('runtime_killed', 'the thread was terminated after ignoring its abort')
        : code === 0
          ? undefined
          : new RuntimeCrashedError('runtime_crashed', `the thread exited with code ${code}`));
    for (const l of exitListeners) l(err);
  });
  return {
    send: (m) => thread.postMessage(m),
    onMessage: (l) => thread.on('message', (m: FromRunner) => l(m)),
    onExit: (l) => exitListeners.push(l),
    kill: () => {
      killed = true;
      void thread.terminate();
    },
  };
}

export function createThreadRuntime(size: number): IsolatedPool {
  return new IsolatedPool('thread', { size, spawn: spawnThread, keyOf: (t) => `mem=${t.memoryLimitMb}` });
}
