/**
 * The config document: the control plane's desired state (tenants, task-type contracts, policies,
 * quotas, evidence retention, and how long a worker may run on a cached snapshot). Written as YAML
 * or JSON, validated here; every problem is reported with its path. Every field it accepts is
 * enforced (test/control/config-enforcement.test.ts names where); a field this version does not
 * enforce yet is refused by name, never accepted and ignored.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { contractProblems, contractShape, nameSchema } from '../contract.js';

const name = nameSchema;
const pattern = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(\*|[A-Za-z0-9][A-Za-z0-9._:/-]*\*?)$/, "must be a name, a prefix ending in '*', or '*'");
const ms = (max: number) => z.number().int().min(1).max(max);
const role = z.enum(['admin', 'operator', 'submitter', 'approver', 'auditor', 'worker']);

/** A task type: its name, version and input schema, and its contract (`src/control/contract.ts`). */
export const taskTypeSchema = z
  .object({
    name,
    version: z.number().int().min(1).max(1_000_000).default(1),
    /** JSON Schema of the input; `config publish --tasks MODULE` fills it from the task code. */
    input: z.record(z.string(), z.unknown()).optional(),
    ...contractShape,
  })
  .strict();

export const configSchema = z
  .object({
    /** How long a worker may keep running on a snapshot it cannot refresh. */
    configTtlMs: ms(30 * 86_400_000).default(300_000),
    /** A freshControl task starts only within this long of the worker's last control contact. */
    freshnessMs: ms(86_400_000).default(30_000),
    /**
     * `evidence: required` work starts only while the evidence shipper is at most this many outbox
     * events behind (and the evidence store answers).
     */
    evidenceMaxLag: z.number().int().min(0).max(100_000_000).default(10_000),
    tenants: z.array(z.object({ name }).strict()).default([]),
    taskTypes: z.array(taskTypeSchema).default([]),
    policies: z
      .array(
        z
          .object({
            /** A tenant name, or '*'. */
            tenant: pattern.default('*'),
            roles: z.array(role).min(1),
            /** Task names or prefixes ('media.*'). */
            tasks: z.array(pattern).min(1),
            /** Submissions by these roles wait for an approver. */
            approval: z.boolean().default(false),
          })
          .strict(),
      )
      .default([]),
    quotas: z
      .record(
        name,
        z
          .object({
            maxQueued: z.number().int().min(0).optional(),
            maxRunning: z.number().int().min(0).optional(),
            submitPerSecond: z.number().min(0).optional(),
            maxPayloadBytes: z.number().int().min(0).optional(),
          })
          .strict(),
      )
      .default({}),
    retention: z
      .object({
        evidenceDays: z.number().int().min(1).max(36_500).optional(),
      })
      .strict()
      .default({}),
  })
  .strict();

export type ConfigDocument = z.output<typeof configSchema>;
export type TaskTypeConfig = z.output<typeof taskTypeSchema>;

/** Fields of the design this version refuses, because nothing would enforce them yet. */
const NOT_ENFORCED: Record<string, string> = {
  routes: 'classification routing comes with the data plane',
  triggers: 'event triggers come with the events consumer runtime',
  'retention.jobsDays':
    'the ledger does not prune finished jobs yet; evidence keeps their record (retention.evidenceDays)',
};

export interface ConfigProblem {
  /** Where: `taskTypes[2].leaseMs`. */
  path: string;
  message: string;
}

export type ParseResult = { ok: true; document: ConfigDocument } | { ok: false; problems: ConfigProblem[] };

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(document)';
}

/**
 * Checks across entries (duplicates, egress needing the process runtime), on the raw value so they
 * are reported together with type errors elsewhere (the schema stops refining at the first bad type).
 */
function crossChecks(value: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const entries = (key: string): Record<string, unknown>[] => {
    const list = (value as Record<string, unknown> | null)?.[key];
    return Array.isArray(list)
      ? list.map((e) => (e && typeof e === 'object' ? (e as Record<string, unknown>) : {}))
      : [];
  };
  const seen = new Set<string>();
  entries('taskTypes').forEach((t, i) => {
    if (typeof t.name !== 'string') return;
    const key = `${t.name}@${typeof t.version === 'number' ? t.version : 1}`;
    if (seen.has(key)) out.push({ path: `taskTypes[${i}]`, message: `${key} is defined twice` });
    seen.add(key);
    out.push(...contractProblems({ egress: t.egress, runtime: t.runtime } as never, `taskTypes[${i}].`));
  });
  const tenants = new Set<string>();
  entries('tenants').forEach((t, i) => {
    if (typeof t.name !== 'string') return;
    if (tenants.has(t.name)) out.push({ path: `tenants[${i}]`, message: `${t.name} is listed twice` });
    tenants.add(t.name);
  });
  // Text that is not well-formed Unicode cannot be canonicalised, hence not signed.
  if (/(^|[^\\])(\\\\)*\\ud[89a-f][0-9a-f]{2}/i.test(JSON.stringify(value) ?? '')) {
    out.push({
      path: '(document)',
      message: 'contains a lone surrogate (text that is not well-formed Unicode)',
    });
  }
  return out;
}

/** Validate a parsed document; defaults are applied to what it leaves out. Every problem is reported. */
export function validateConfig(value: unknown): ParseResult {
  const r = configSchema.safeParse(value);
  const problems: ConfigProblem[] = r.success
    ? []
    : r.error.issues.flatMap((i) =>
        // An unknown key is reported where it is, one problem per key.
        i.code === 'unrecognized_keys'
          ? i.keys.map((k) => {
              const path = pathText([...i.path, k]);
              const why = NOT_ENFORCED[path];
              return why === undefined
                ? { path, message: `unknown key '${k}'` }
                : {
                    path,
                    message: `not enforced by this version of Bulkhead, so it is refused rather than ignored (${why})`,
                  };
            })
          : [{ path: pathText(i.path), message: i.message }],
      );
  problems.push(...crossChecks(value));
  if (r.success && problems.length === 0) return { ok: true, document: r.data };
  return { ok: false, problems };
}

/** Parse YAML or JSON text (JSON is YAML) and validate it. */
export function parseConfig(text: string): ParseResult {
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    return {
      ok: false,
      problems: [{ path: '(document)', message: `not valid YAML or JSON: ${(err as Error).message}` }],
    };
  }
  return validateConfig(value ?? {});
}
