/**
 * Runtimes run a handler for one attempt. The handler code is the same for all three; the runtime
 * only changes isolation:
 * - `inline`: the worker's own event loop (tiny tasks; a hang can only be abandoned, not killed);
 * - `thread`: a pool of worker threads (CPU-bound bursts; killed with `terminate()`);
 * - `process`: a pool of child processes with a clean environment, a memory limit, optionally no
 *   network (`egress: 'none'`), killed with SIGKILL.
 * A crash, OOM or hang of a thread or process fails that attempt and never takes the worker down.
 */
import type { Logger } from 'pino';
import type { TaskContext, TaskDefinition } from '../task.js';
import type { AttemptMeta } from './protocol.js';

/** The ledger operations of one attempt, done by the worker under the attempt's fence. */
export interface AttemptOps {
  getStep(key: string): Promise<{ found: boolean; result?: unknown }>;
  /** Commits once; returns the committed result (an earlier commit's, if there was one). */
  putStep(key: string, result: unknown): Promise<unknown>;
  heartbeat(progress?: unknown): Promise<void>;
}

export interface RunRequest {
  task: TaskDefinition;
  /** `compensate` runs the task's compensate() with the parent job's committed steps. */
  mode: 'run' | 'compensate';
  committedSteps: Record<string, unknown>;
  input: unknown;
  meta: AttemptMeta;
  ops: AttemptOps;
  /** The context an inline handler gets; isolated runtimes build their own from `ops`. */
  ctx: TaskContext;
  signal: AbortSignal;
  logger: Logger;
  /**
   * Called when the handler starts: at once inline; for a thread or process, when the runner has
   * loaded the task module and calls the handler (spawning a runner, waiting for a free one, or
   * loading the module is not the handler's time).
   */
  onStart?: () => void;
}

export interface Runtime {
  readonly name: 'inline' | 'thread' | 'process';
  /** Resolves with the handler's output; rejects with its error, or a `RuntimeCrashedError`. */
  run(request: RunRequest): Promise<unknown>;
  close(): Promise<void>;
}

/** The thread or process running a handler died (crash, OOM, kill) before it answered. */
export class RuntimeCrashedError extends Error {
  readonly retryable = true;
  constructor(
    /** `out_of_memory`, `runtime_crashed` or `runtime_killed`. */
    readonly code: 'out_of_memory' | 'runtime_crashed' | 'runtime_killed',
    message: string,
  ) {
    super(message);
    this.name = 'RuntimeCrashedError';
  }
}

export const inlineRuntime: Runtime = {
  name: 'inline',
  run: ({ task, input, ctx, mode, committedSteps, onStart }) =>
    Promise.resolve().then(() => {
      onStart?.();
      return mode === 'run' ? task.run(input, ctx) : callCompensate(task, input, ctx, committedSteps);
    }),
  close: async () => undefined,
};

/** Run a task's compensate(); a task without one cannot have compensation jobs (non-retryable). */
export function callCompensate(
  task: TaskDefinition,
  input: unknown,
  ctx: TaskContext,
  committedSteps: Record<string, unknown>,
): unknown {
  if (!task.compensate) {
    const err = new Error(`task '${task.name}' defines no compensate()`) as Error & {
      code: string;
      retryable: boolean;
    };
    err.code = 'no_compensation';
    err.retryable = false;
    throw err;
  }
  return task.compensate(input, ctx, committedSteps);
}
