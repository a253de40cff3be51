/**
 * `defineTask`: a task's name, version, input schema (zod v4) and handler, plus the contract fields
 * the registry publishes. The zod schema validates input at the worker and is exported as JSON
 * Schema for admission.
 */
import { z } from 'zod';
import type { RuntimeName, TaskContext, TaskDefinition } from '../execution/task.js';
import type { BackoffPolicy, Classification } from '../ledger/types.js';

export interface TaskOptions<S extends z.ZodType, O> {
  /** Dotted name, e.g. `media.resize`. */
  name: string;
  /** @default 1 */
  version?: number;
  input: S;
  run(input: z.output<S>, ctx: TaskContext): O | Promise<O>;
  /**
   * Undo the effects of committed steps after the job ended dead, cancelled or expired; gets the
   * committed step results by key. Runs as its own durable, fenced, retried job.
   */
  compensate?: (input: z.output<S>, ctx: TaskContext, committedSteps: Record<string, unknown>) => unknown;
  /** @default 'default' */
  queue?: string;
  /** @default 'inline' */
  runtime?: RuntimeName;
  /** Per-attempt time limit. @default 60000 */
  timeoutMs?: number;
  /** @default 30000 */
  leaseMs?: number;
  /** @default 3 */
  maxAttempts?: number;
  /** @default { baseMs: 1000, maxMs: 300000 } */
  backoff?: Partial<BackoffPolicy>;
  /** @default 'internal' */
  classification?: Classification;
  /** `none` runs it without network (process runtime only; refused where it cannot be enforced). @default 'any' */
  egress?: 'any' | 'none';
  /** @default 'buffered' */
  evidence?: 'required' | 'buffered';
  /** Heap limit of a thread or process runner, MB. @default 512 */
  memoryLimitMb?: number;
  /** Time an aborted handler gets to stop before its thread or process is killed. @default 5000 */
  killGraceMs?: number;
  /** The defining module, `import.meta.url`, for thread and process runtimes (set by `--tasks` loading). */
  module?: string;
}

export function defineTask<S extends z.ZodType, O>(
  options: TaskOptions<S, O>,
): TaskDefinition<z.output<S>, O> {
  if (typeof options.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/.test(options.name)) {
    throw new TypeError(
      `defineTask: name must be a task name like 'media.resize', got ${JSON.stringify(options.name)}`,
    );
  }
  if (!(options.input instanceof z.ZodType)) {
    throw new TypeError(`defineTask(${options.name}): input must be a zod schema`);
  }
  if (typeof options.run !== 'function')
    throw new TypeError(`defineTask(${options.name}): run must be a function`);
  const schema = options.input;
  const inputJsonSchema = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return {
    kind: 'bulkhead.task',
    name: options.name,
    version: options.version ?? 1,
    inputJsonSchema,
    parseInput(input: unknown) {
      const result = schema.safeParse(input);
      if (result.success) return result.data;
      const problems = result.error.issues.map(
        (i) => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`,
      );
      throw new TypeError(`input of ${options.name} is invalid: ${problems.join('; ')}`);
    },
    run: options.run,
    ...(options.compensate && { compensate: options.compensate }),
    queue: options.queue ?? 'default',
    runtime: options.runtime ?? 'inline',
    timeoutMs: options.timeoutMs ?? 60_000,
    leaseMs: options.leaseMs ?? 30_000,
    maxAttempts: options.maxAttempts ?? 3,
    backoff: { baseMs: options.backoff?.baseMs ?? 1000, maxMs: options.backoff?.maxMs ?? 300_000 },
    classification: options.classification ?? 'internal',
    egress: options.egress ?? 'any',
    evidence: options.evidence ?? 'buffered',
    memoryLimitMb: options.memoryLimitMb ?? 512,
    killGraceMs: options.killGraceMs ?? 5000,
    ...(options.module !== undefined && { module: options.module }),
  };
}
