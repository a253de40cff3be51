/**
 * `defineTask`: a task's name, version, input schema (zod v4) and handler, plus the contract fields
 * the registry publishes. The zod schema validates input at the worker and is exported as JSON
 * Schema for admission.
 */
import { z } from 'zod';
import {
  CONTRACT_FIELDS,
  contractProblems,
  contractSchema,
  NAME_PATTERN,
  type TaskContractInput,
} from '../control/contract.js';
import type { TaskContext, TaskDefinition } from '../execution/task.js';

/**
 * A task's code: its name, input schema and handler, and its contract fields (`TaskContractInput`:
 * queue, runtime, timeoutMs, leaseMs, maxAttempts, backoff, effect, freshControl, evidence,
 * approval, maxClassification, egress — every one optional, with the defaults of
 * `src/control/contract.ts`). They are the contract until a published config names the task; from
 * then on the config's contract is what runs, and a worker reports the difference at start.
 */
export interface TaskOptions<S extends z.ZodType, O> extends TaskContractInput {
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
  if (typeof options.name !== 'string' || options.name.length > 200 || !NAME_PATTERN.test(options.name)) {
    throw new TypeError(
      `defineTask: name must be a task name like 'media.resize', got ${JSON.stringify(options.name)}`,
    );
  }
  if (!(options.input instanceof z.ZodType)) {
    throw new TypeError(`defineTask(${options.name}): input must be a zod schema`);
  }
  if (typeof options.run !== 'function')
    throw new TypeError(`defineTask(${options.name}): run must be a function`);
  const fields: Record<string, unknown> = {};
  for (const k of CONTRACT_FIELDS) if (options[k] !== undefined) fields[k] = options[k];
  const parsed = contractSchema.safeParse(fields);
  const problems = parsed.success ? contractProblems(parsed.data, '') : [];
  if (!parsed.success || problems.length > 0) {
    const text = parsed.success
      ? problems.map((p) => `${p.path}: ${p.message}`)
      : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new TypeError(`defineTask(${options.name}): ${text.join('; ')}`);
  }
  const contract = parsed.data;
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
    ...contract,
    memoryLimitMb: options.memoryLimitMb ?? 512,
    killGraceMs: options.killGraceMs ?? 5000,
    ...(options.module !== undefined && { module: options.module }),
  };
}
