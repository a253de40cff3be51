/**
 * The task contract, defined once: what a task type's jobs run under (queue, runtime, time and
 * retry limits, egress, effect, evidence mode, classification, approval). The config document's
 * `taskTypes`, `defineTask` and the registry row all derive from this schema and its defaults; the
 * authority record signs the contract a job was admitted under, and the worker runs by that, not by
 * the values in the task's code (those are the defaults for a task no published config names).
 */
import { z } from 'zod';

/** Letters, digits and `. _ : / -`, starting with a letter or digit; at most 200 characters. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;
export const NAME_RULE = 'must be letters, digits and . _ : / - (starting with a letter or digit)';

export const nameSchema = z.string().min(1).max(200).regex(NAME_PATTERN, NAME_RULE);

export const CLASSIFICATION_NAMES = ['public', 'internal', 'confidential', 'restricted'] as const;
export const RUNTIME_NAMES = ['inline', 'thread', 'process'] as const;

const ms = (max: number) => z.number().int().min(1).max(max);

/** The contract fields, each with its default. */
export const contractShape = {
  /** @default 'default' */
  queue: nameSchema.default('default'),
  /** Where the handler runs. @default 'inline' */
  runtime: z.enum(RUNTIME_NAMES).default('inline'),
  /** Per-attempt time limit. @default 60000 */
  timeoutMs: ms(7 * 86_400_000).default(60_000),
  /** Lease of each attempt, extended by heartbeats. @default 30000 */
  leaseMs: z.number().int().min(10).max(86_400_000).default(30_000),
  /** @default 3 */
  maxAttempts: z.number().int().min(1).max(1000).default(3),
  /** @default { baseMs: 1000, maxMs: 300000 } */
  backoff: z
    .object({
      baseMs: z.number().int().min(0).max(86_400_000),
      maxMs: z.number().int().min(0).max(604_800_000),
    })
    .strict()
    .refine((b) => b.maxMs >= b.baseMs, { message: 'maxMs must be >= baseMs', path: ['maxMs'] })
    .default({ baseMs: 1000, maxMs: 300_000 }),
  /** @default 'write' */
  effect: z.enum(['read', 'write', 'destructive']).default('write'),
  /** Needs a control contact inside the freshness window to start. @default effect === 'destructive' */
  freshControl: z.boolean().optional(),
  /** `required`: starts only while evidence is being recorded. @default 'buffered' */
  evidence: z.enum(['required', 'buffered']).default('buffered'),
  /** Jobs wait in `awaiting_approval` until approved. @default false */
  approval: z.boolean().default(false),
  /** Distinct approvers a job needs (when it needs approval at all). @default 1 */
  approvals: z.number().int().min(1).max(10).default(1),
  /** A job not approved within this long of admission ends `expired`. Absent: it waits until its deadline. */
  approvalTimeoutMs: ms(30 * 86_400_000).optional(),
  /** Jobs are classified at this level; workers with a lower clearance never lease them. @default 'internal' */
  maxClassification: z.enum(CLASSIFICATION_NAMES).default('internal'),
  /** `none`: run in the process runtime without network, or not at all. @default 'any' */
  egress: z.enum(['any', 'none']).default('any'),
};

export const contractSchema = z.object(contractShape).strict();

export type TaskContract = z.output<typeof contractSchema>;
/** A contract as written: every field optional. */
export type TaskContractInput = z.input<typeof contractSchema>;

export const CONTRACT_FIELDS = Object.keys(contractShape) as (keyof TaskContract)[];

/** The defaults, for a task that sets nothing. */
export function contractDefaults(): TaskContract {
  return contractSchema.parse({});
}

/** Whether jobs of this contract need fresh control contact to start. */
export function needsFreshControl(c: Pick<TaskContract, 'freshControl' | 'effect'>): boolean {
  return c.freshControl ?? c.effect === 'destructive';
}

/** Checks across fields that a schema of single fields cannot say; `at` prefixes the paths. */
export function contractProblems(c: Partial<TaskContract>, at: string): { path: string; message: string }[] {
  if (c.egress === 'none' && (c.runtime ?? 'inline') !== 'process') {
    return [
      {
        path: `${at}egress`,
        message: `egress 'none' needs runtime 'process' (it is '${c.runtime ?? 'inline'}')`,
      },
    ];
  }
  return [];
}

/**
 * Read a contract back from where it was stored (a registry row's `contract` JSON): defaults fill
 * what an older row lacks; a value that is not a contract throws, naming the fields.
 */
export function parseContract(value: unknown, where: string): TaskContract {
  const r = contractSchema.safeParse(value ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `${i.path.join('.') || '(contract)'}: ${i.message}`);
  throw new TypeError(`${where}: not a valid task contract (${problems.join('; ')})`);
}

/** The fields where `code` differs from the published `contract`, as `field code-value vs contract-value`. */
export function contractDrift(contract: TaskContract, code: TaskContract): string[] {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return CONTRACT_FIELDS.filter((k) => !same(contract[k], code[k])).map(
    (k) => `${k} ${JSON.stringify(code[k])} (code) vs ${JSON.stringify(contract[k])} (contract)`,
  );
}

/** The registry row of a contract: the ledger's typed columns and the whole contract, from one value. */
export function registryRow(t: {
  name: string;
  version: number;
  inputSchema: Record<string, unknown>;
  contract: TaskContract;
  compensable: boolean;
  source: string;
}) {
  const c = t.contract;
  return {
    name: t.name,
    version: t.version,
    inputSchema: t.inputSchema,
    queue: c.queue,
    runtime: c.runtime,
    timeoutMs: c.timeoutMs,
    leaseMs: c.leaseMs,
    maxAttempts: c.maxAttempts,
    backoff: c.backoff,
    classification: c.maxClassification,
    contract: c as unknown as Record<string, unknown>,
    compensable: t.compensable,
    source: t.source,
  };
}

/**
 * The contract of a registry row: the stored contract JSON with the row's typed columns over it
 * (they are what the ledger copies onto each job), defaults for what an older row lacks.
 */
export function contractOfRow(row: {
  name: string;
  version: number;
  queue: string;
  runtime: string;
  timeoutMs: number;
  leaseMs: number;
  maxAttempts: number;
  backoff: { baseMs: number; maxMs: number };
  classification: string;
  contract: Record<string, unknown>;
}): TaskContract {
  return parseContract(
    {
      ...row.contract,
      queue: row.queue,
      runtime: row.runtime,
      timeoutMs: row.timeoutMs,
      leaseMs: row.leaseMs,
      maxAttempts: row.maxAttempts,
      backoff: row.backoff,
      maxClassification: row.classification,
    },
    `the registry contract of ${row.name}@${row.version}`,
  );
}
