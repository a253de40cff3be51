/**
 * One attempt of one job, from `leased` to a committed outcome:
 *
 *   start (leased -> running) -> run the handler under heartbeats and a timeout ->
 *     returned        -> complete                    ('succeeded')
 *     threw           -> fail (retry or dead)        ('failed')
 *     timed out       -> fail, code `timeout`        ('failed')
 *     cancel asked    -> confirmCancel               ('cancelled')
 *     lease lost      -> commit nothing              ('lost')
 *     worker stopping -> commit nothing; the lease runs out and the reaper requeues ('aborted')
 *
 *     deadline passed -> commit nothing; the reaper records `expired`  ('aborted')
 *
 * Every commit names the attempt's fence; the store refuses it once the lease is gone.
 */
import type { Logger } from 'pino';
import { InvalidArgumentError, StaleLeaseError } from '../ledger/errors.js';
import type { Store } from '../ledger/store.js';
import type {
  CompleteInput,
  FailInput,
  FailResult,
  HeartbeatInput,
  HeartbeatResult,
  Job,
  Lease,
  Transitioned,
} from '../ledger/types.js';
import { LIMITS, toJson } from '../ledger/validate.js';
import type { Batcher } from './batcher.js';
import type { AttemptOps, Runtime } from './runtimes/runtime.js';
import type { TaskContext, TaskDefinition } from './task.js';

/** The worker's batched store writes an attempt uses (see Batcher). */
export interface AttemptWriters {
  starts: Batcher<Lease, Transitioned>;
  heartbeats: Batcher<HeartbeatInput, HeartbeatResult>;
  completions: Batcher<CompleteInput, Transitioned>;
  failures: Batcher<FailInput, FailResult>;
  cancels: Batcher<Lease, Transitioned>;
}

export type AttemptOutcome = 'succeeded' | 'failed' | 'cancelled' | 'lost' | 'aborted';

/** Why an attempt's signal was aborted; `signal.reason` is an Error with one of these messages. */
export type AbortCause = 'cancelled' | 'timeout' | 'deadline' | 'lease_lost' | 'shutdown';

/** How long a thread or process runner may take to load the task module and call the handler. */
const START_GRACE_MS = 60_000;

const abortError = (cause: AbortCause) => {
  const e = new Error(cause);
  e.name = 'AbortError';
  return e;
};

const causeOf = (signal: AbortSignal): AbortCause | undefined =>
  signal.aborted ? ((signal.reason as Error | undefined)?.message as AbortCause) : undefined;

export async function runAttempt(args: {
  worker: AttemptWriters;
  store: Store;
  job: Job;
  task: TaskDefinition | undefined;
  runtime: Runtime;
  /** `performance.now()` when the claim that leased this job was sent. */
  leaseStart: number;
  abort: AbortController;
  log: Logger;
}): Promise<AttemptOutcome> {
  const { worker, store, job, task, runtime, abort } = args;
  const lease = { jobId: job.id, fence: job.fence };
  const log = args.log.child({ jobId: job.id, task: job.task, attempt: job.attempt });

  // A worker claims and starts in one write; a job still only leased is started here.
  if (job.state === 'leased') {
    const started = await worker.starts.push(lease);
    if (!started.ok) {
      log.warn({ err: started.error.message }, 'could not start: lease already lost');
      return 'lost';
    }
  }

  const fail = async (error: FailInput['error'], retryable: boolean): Promise<AttemptOutcome> => {
    const o = await worker.failures.push({ ...lease, error, retryable });
    if (!o.ok) return 'lost';
    log.info({ error: error.code, next: o.value.state }, 'attempt failed');
    return 'failed';
  };

  if (!task) return fail({ code: 'unknown_task', message: `this worker has no task '${job.task}'` }, false);
  let input: unknown;
  try {
    input = task.parseInput(job.input);
  } catch (err) {
    return fail({ code: 'invalid_input', message: (err as Error).message }, false);
  }

  // Keep the lease alive; a refused heartbeat means another owner may hold the job now. If no
  // renewal lands before the lease would end (store down, event loop blocked), stop: the store will
  // refuse this attempt's commits from then on anyway.
  // Measured on this process's monotonic clock from when the request was sent: never later than
  // the store's own deadline, whatever the two wall clocks say.
  let leaseEndsAt = args.leaseStart + job.leaseMs;
  const beat = async (progress?: unknown): Promise<void> => {
    const sentAt = performance.now();
    const item = progress === undefined ? lease : { ...lease, progress };
    const o = await worker.heartbeats.push(item);
    if (!o.ok) {
      abort.abort(abortError('lease_lost'));
      throw o.error;
    }
    leaseEndsAt = sentAt + job.leaseMs;
    if (o.value.cancelRequested) abort.abort(abortError('cancelled'));
  };
  const heartbeatTimer = setInterval(
    () => {
      if (performance.now() >= leaseEndsAt) {
        abort.abort(abortError('lease_lost'));
        return;
      }
      beat().catch((err: unknown) => {
        if (!(err instanceof StaleLeaseError))
          log.warn({ err: (err as Error).message }, 'heartbeat failed; retrying');
      });
    },
    Math.max(5, Math.floor(job.leaseMs / 3)),
  );
  // The attempt's time limit from when the handler starts (a runner ready), or the job's deadline
  // if that comes first.
  let timeoutTimer: NodeJS.Timeout | undefined;
  const armTimeout = (extraMs = 0) => {
    clearTimeout(timeoutTimer);
    const untilDeadline = job.deadline === undefined ? Number.POSITIVE_INFINITY : job.deadline - Date.now();
    timeoutTimer = setTimeout(
      () => abort.abort(abortError(untilDeadline < task.timeoutMs ? 'deadline' : 'timeout')),
      Math.max(0, Math.min(task.timeoutMs + extraMs, untilDeadline)),
    );
  };
  // Until the handler starts, a runner that never gets there (a module that hangs on import) is
  // bounded too: the time limit plus a grace for starting.
  armTimeout(START_GRACE_MS);

  const ops: AttemptOps = {
    async getStep(key) {
      const done = await store.getStep(job.id, key);
      return done ? { found: true, result: done.result } : { found: false };
    },
    async putStep(key, result) {
      if (abort.signal.aborted) throw abort.signal.reason;
      try {
        const { step } = await store.putStep({
          ...lease,
          stepKey: key,
          result: result === undefined ? null : result,
        });
        return step.result;
      } catch (err) {
        if (err instanceof StaleLeaseError) abort.abort(abortError('lease_lost'));
        throw err;
      }
    },
    heartbeat: beat,
  };
  const ctx: TaskContext = {
    jobId: job.id,
    tenant: job.tenant,
    correlationId: job.correlationId,
    attempt: job.attempt,
    fence: job.fence,
    signal: abort.signal,
    logger: log,
    heartbeat: beat,
    idempotencyKey: (stepKey) => `${job.id}:${stepKey}`,
    async step<T>(key: string, fn: () => T | Promise<T>): Promise<T> {
      const got = await ops.getStep(key);
      if (got.found) return got.result as T;
      if (abort.signal.aborted) throw abort.signal.reason;
      return (await ops.putStep(key, await fn())) as T;
    },
  };
  // A compensation job undoes its parent's committed steps.
  const mode = job.kind === 'compensation' ? 'compensate' : 'run';
  const committedSteps: Record<string, unknown> = {};
  if (mode === 'compensate' && job.parentId !== undefined) {
    for (const s of await store.listSteps(job.parentId)) committedSteps[s.stepKey] = s.result;
  }
  const meta = {
    jobId: job.id,
    tenant: job.tenant,
    correlationId: job.correlationId,
    attempt: job.attempt,
    fence: job.fence,
  };

  const handler = runtime.run({
    task,
    input,
    meta,
    ops,
    ctx,
    mode,
    committedSteps,
    signal: abort.signal,
    logger: log,
    onStart: () => armTimeout(),
  });
  handler.catch(() => undefined); // settled below, or abandoned after an abort's grace
  let output: unknown;
  let thrown: unknown;
  let threw = false;
  try {
    output = await Promise.race([
      handler,
      new Promise<never>((_, reject) => {
        if (abort.signal.aborted) reject(abort.signal.reason);
        abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
      }),
    ]);
  } catch (err) {
    threw = true;
    thrown = err;
    const cause = causeOf(abort.signal);
    if (cause === 'timeout' || cause === 'cancelled' || cause === 'deadline') {
      // Give the handler its grace to stop (a thread or process is killed at the end of it), so a
      // retry does not overlap with it; an inline handler that ignores its signal cannot be
      // stopped, and the attempt is recorded truthfully anyway after the grace. (On shutdown the
      // worker's own grace has already run out, and its runners are closed.)
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        handler.catch(() => undefined),
        new Promise((r) => {
          timer = setTimeout(r, task.killGraceMs + 500);
        }),
      ]);
      clearTimeout(timer);
    }
  } finally {
    clearInterval(heartbeatTimer);
    clearTimeout(timeoutTimer);
  }

  switch (causeOf(abort.signal)) {
    case 'lease_lost':
      log.warn('lease lost: nothing more is committed for this attempt');
      return 'lost';
    case 'shutdown':
      return 'aborted';
    case 'deadline':
      // The reaper records `expired` (and fences this attempt off): nothing to commit here.
      log.info('the job deadline passed during the attempt');
      return 'aborted';
    case 'cancelled': {
      const o = await worker.cancels.push(lease);
      log.info('cancelled');
      return o.ok ? 'cancelled' : 'lost';
    }
    case 'timeout':
      return fail(
        { code: 'timeout', message: `the attempt ran longer than timeoutMs (${task.timeoutMs} ms)` },
        true,
      );
    default:
      break;
  }

  if (threw) {
    const e = thrown as { code?: unknown; message?: unknown; retryable?: unknown };
    const code =
      typeof e?.code === 'string' && /^[a-z][a-z0-9_.]{0,99}$/.test(e.code) ? e.code : 'handler_error';
    const message = typeof e?.message === 'string' ? e.message : String(thrown);
    if (thrown instanceof StaleLeaseError) return 'lost';
    return fail({ code, message }, e?.retryable !== false);
  }

  const result = output === undefined ? null : output;
  try {
    // Checked here, alone: a bad output must fail this job, not the batch it would share.
    toJson('output', result, LIMITS.maxOutputBytes);
  } catch (err) {
    if (err instanceof InvalidArgumentError)
      return fail({ code: 'invalid_output', message: err.message }, false);
    throw err;
  }
  const o = await worker.completions.push({ ...lease, output: result });
  if (!o.ok) {
    log.warn({ err: o.error.message }, 'completion refused: lease lost');
    return 'lost';
  }
  return 'succeeded';
}
