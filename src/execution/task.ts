/**
 * What the execution plane runs: a task definition (made by the SDK's `defineTask`) and the context
 * its handler gets for one attempt.
 */
import type { Logger } from 'pino';
import type { TaskContract } from '../control/contract.js';

export type RuntimeName = TaskContract['runtime'];

export interface TaskContext {
  jobId: string;
  tenant: string;
  correlationId: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** The lease epoch of this attempt: pass it to systems that must reject a stale owner's writes. */
  fence: number;
  /** Aborted on cancel, timeout, lease loss or shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  logger: Logger;
  /** Extend the lease now and publish progress (any small JSON value). */
  heartbeat(progress?: unknown): Promise<void>;
  /**
   * A durable step: runs `fn` once per job and key, commits its result under this attempt's fence,
   * and on a later attempt returns the committed result instead of running again.
   */
  step<T>(key: string, fn: () => T | Promise<T>): Promise<T>;
  /** A key stable across attempts (job id + step key), for external systems that deduplicate. */
  idempotencyKey(stepKey: string): string;
}

/**
 * A task as its code defines it. Its contract fields (`TaskContract`: queue, runtime, timeoutMs, …)
 * are the code's defaults: the contract published in the config, signed into each job's authority
 * record, is what a worker runs by.
 */
export interface TaskDefinition<I = unknown, O = unknown> extends TaskContract {
  readonly kind: 'bulkhead.task';
  name: string;
  version: number;
  /** JSON Schema of the input, published to the registry. */
  inputJsonSchema: Record<string, unknown>;
  /** Parse and validate an input; throws a message naming the failing paths. */
  parseInput(input: unknown): I;
  run(input: I, ctx: TaskContext): O | Promise<O>;
  /**
   * Undo what committed steps did, when a job ends dead, cancelled or expired after committing
   * some: runs as its own durable, fenced, retried job (kind `compensation`).
   */
  compensate?(input: I, ctx: TaskContext, committedSteps: Record<string, unknown>): unknown;
  /** Heap limit of a `thread` or `process` runner, in MB. */
  memoryLimitMb: number;
  /** How long an aborted handler may take to stop before its thread or process is killed. */
  killGraceMs: number;
  /** The module that exports this task (a file URL or path): `thread` and `process` runners import it. */
  module?: string;
}

/** Throw from a handler to fail the job without retrying. */
export class NonRetryableError extends Error {
  readonly retryable = false;
  constructor(
    message: string,
    /** A stable code for the job's `error.code`. @default 'non_retryable' */
    readonly code = 'non_retryable',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

export function isTaskDefinition(value: unknown): value is TaskDefinition {
  return (
    typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'bulkhead.task'
  );
}
