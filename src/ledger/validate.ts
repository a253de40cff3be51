/**
 * Argument checks shared by both adapters: raw input -> defaults applied -> a normalised record the
 * SQL can take as is. Every check throws `InvalidArgumentError` naming the path, before any write.
 */
import { createHash } from 'node:crypto';
import {
  BLOCK_REASONS,
  type BlockReason,
  isBlockReason,
  isJobState,
  type JobState,
} from '../lifecycle/lifecycle.js';
import { canonical } from '../util/canonical-json.js';
import { InvalidArgumentError, JobNotFoundError, JobStateConflictError } from './errors.js';
import {
  type ApprovalInput,
  type AttemptContext,
  type BackoffPolicy,
  CLASSIFICATIONS,
  type ClaimOptions,
  type Classification,
  type Lease,
  type ListFilter,
  type ListPage,
  type SubmitInput,
  type WorkerInfo,
} from './types.js';

export const LIMITS = {
  maxIdempotencyKeyLength: 200,
  maxNameLength: 200,
  maxInputBytes: 256 * 1024,
  maxOutputBytes: 1024 * 1024,
  maxStepResultBytes: 1024 * 1024,
  maxProgressBytes: 16 * 1024,
  maxErrorMessageLength: 8 * 1024,
  maxClaim: 1000,
  maxBatch: 10_000,
  maxListLimit: 500,
  minLeaseMs: 10,
  maxLeaseMs: 86_400_000,
  maxAttempts: 1000,
  maxPriority: 1000,
  maxJsonDepth: 64,
} as const;

export const DEFAULTS = {
  taskVersion: 1,
  queue: 'default',
  priority: 0,
  maxAttempts: 3,
  backoff: { baseMs: 1000, maxMs: 300_000 } satisfies BackoffPolicy,
  leaseMs: 30_000,
  classification: 'internal' satisfies Classification,
  clearance: 'internal' satisfies Classification,
  listLimit: 50,
} as const;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;

/** A submission with every default applied, ready for the SQL. */
export interface NormalizedSubmit {
  /** The id admission chose (it signs it into the authority record); null: the store makes one. */
  id: string | null;
  tenant: string;
  task: string;
  taskVersion: number;
  queue: string;
  inputJson: string;
  idempotencyKey: string | null;
  /**
   * With an idempotency key: SHA-256 of the canonical submission body, to tell a replay from a
   * conflicting reuse of the key. Null without a key (nothing to compare).
   */
  requestDigest: string | null;
  correlationId: string | null;
  parentId: string | null;
  priority: number;
  runAt: number | null;
  deadline: number | null;
  maxAttempts: number;
  backoff: BackoffPolicy;
  leaseMs: number;
  classification: Classification;
  requiresApproval: boolean;
  authorityJson: string | null;
  kind: 'run' | 'compensation';
}

export function fail(path: string, problem: string): never {
  throw new InvalidArgumentError(path, problem);
}

export function checkName(path: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) fail(path, 'must be a non-empty string');
  if (value.length > LIMITS.maxNameLength) fail(path, `must be at most ${LIMITS.maxNameLength} characters`);
  if (!NAME.test(value)) {
    fail(
      path,
      `'${value}' has characters outside letters, digits and . _ : / - (and must start with a letter or digit)`,
    );
  }
  return value;
}

export function checkInt(path: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    fail(path, `must be an integer, got ${describe(value)}`);
  if (value < min || value > max) fail(path, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function checkTime(path: string, value: unknown): number {
  return checkInt(path, value, 0, 8_640_000_000_000_000);
}

export function checkClassification(path: string, value: unknown): Classification {
  if (!(CLASSIFICATIONS as readonly unknown[]).includes(value)) {
    fail(path, `must be one of ${CLASSIFICATIONS.join(', ')}, got ${describe(value)}`);
  }
  return value as Classification;
}

/** Control characters (U+0000-U+001F, U+007F) or a surrogate without its pair: text no store keeps as given. */
const UNSTORABLE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  /[\u0000-\u001f\u007f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** An id-like string (job id, correlation id, idempotency key): 1..max characters, storable as is. */
export function checkText(path: string, value: unknown, max: number, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    fail(path, `must be ${what} (a non-empty string of at most ${max} characters)`);
  }
  if (UNSTORABLE.test(value))
    fail(path, 'has a control character or a lone surrogate (not well-formed text)');
  return value;
}

export function checkJobId(path: string, value: unknown): string {
  return checkText(path, value, 100, 'a job id');
}

/** Serialise a JSON value, rejecting what JSON cannot hold and what is over `maxBytes`. */
export function toJson(path: string, value: unknown, maxBytes: number): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    fail(path, `is not serialisable as JSON (${(err as Error).message})`);
  }
  if (text === undefined) fail(path, `must be a JSON value, got ${describe(value)}`);
  // Lone surrogates come out of JSON.stringify as \udXXX escapes: text that is not well-formed
  // Unicode, which a store would silently alter. Refused in both dialects alike.
  if (/(^|[^\\])(\\\\)*\\ud[89a-f][0-9a-f]{2}/i.test(text)) {
    fail(path, 'contains a lone surrogate (a string that is not well-formed Unicode)');
  }
  const depth = jsonDepth(text);
  if (depth > LIMITS.maxJsonDepth)
    fail(path, `nests ${depth} levels deep; at most ${LIMITS.maxJsonDepth} are allowed`);
  // PostgreSQL cannot store U+0000 in text or jsonb; refuse it in both dialects alike.
  if (/(^|[^\\])(\\\\)*\\u0000/.test(text))
    fail(path, 'contains the character U+0000, which cannot be stored');
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) fail(path, `is ${bytes} bytes as JSON; at most ${maxBytes} are allowed`);
  return text;
}

/** How deeply arrays and objects nest in a JSON text (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export const canonicalJson = canonical;

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  return `${typeof value} ${String(value)}`;
}

export function normalizeSubmit(raw: SubmitInput, path = 'submit'): NormalizedSubmit {
  if (typeof raw !== 'object' || raw === null) fail(path, 'must be an object');
  const id = raw.id === undefined ? null : checkJobId(`${path}.id`, raw.id);
  const tenant = checkName(`${path}.tenant`, raw.tenant);
  const task = checkName(`${path}.task`, raw.task);
  const taskVersion = checkInt(`${path}.taskVersion`, raw.taskVersion ?? DEFAULTS.taskVersion, 1, 1_000_000);
  const queue = checkName(`${path}.queue`, raw.queue ?? DEFAULTS.queue);
  const inputJson = toJson(`${path}.input`, raw.input ?? null, LIMITS.maxInputBytes);
  let idempotencyKey: string | null = null;
  if (raw.idempotencyKey !== undefined) {
    if (typeof raw.idempotencyKey !== 'string' || raw.idempotencyKey.length === 0) {
      fail(`${path}.idempotencyKey`, 'must be a non-empty string');
    }
    if (raw.idempotencyKey.length > LIMITS.maxIdempotencyKeyLength) {
      fail(
        `${path}.idempotencyKey`,
        `is ${raw.idempotencyKey.length} characters; at most ${LIMITS.maxIdempotencyKeyLength} are allowed`,
      );
    }
    checkText(`${path}.idempotencyKey`, raw.idempotencyKey, LIMITS.maxIdempotencyKeyLength, 'a key');
    idempotencyKey = raw.idempotencyKey;
  }
  const correlationId =
    raw.correlationId === undefined ? null : checkJobId(`${path}.correlationId`, raw.correlationId);
  const parentId = raw.parentId === undefined ? null : checkJobId(`${path}.parentId`, raw.parentId);
  const priority = checkInt(
    `${path}.priority`,
    raw.priority ?? DEFAULTS.priority,
    -LIMITS.maxPriority,
    LIMITS.maxPriority,
  );
  const runAt = raw.runAt === undefined ? null : checkTime(`${path}.runAt`, raw.runAt);
  const deadline = raw.deadline === undefined ? null : checkTime(`${path}.deadline`, raw.deadline);
  if (deadline !== null && runAt !== null && deadline <= runAt) {
    fail(
      `${path}.deadline`,
      `must be after runAt (${new Date(runAt).toISOString()}), got ${new Date(deadline).toISOString()}`,
    );
  }
  const maxAttempts = checkInt(
    `${path}.maxAttempts`,
    raw.maxAttempts ?? DEFAULTS.maxAttempts,
    1,
    LIMITS.maxAttempts,
  );
  const backoffIn = raw.backoff ?? {};
  if (typeof backoffIn !== 'object' || backoffIn === null) fail(`${path}.backoff`, 'must be an object');
  const baseMs = checkInt(
    `${path}.backoff.baseMs`,
    backoffIn.baseMs ?? DEFAULTS.backoff.baseMs,
    0,
    LIMITS.maxLeaseMs,
  );
  const maxMs = checkInt(
    `${path}.backoff.maxMs`,
    backoffIn.maxMs ?? Math.max(baseMs, DEFAULTS.backoff.maxMs),
    0,
    7 * LIMITS.maxLeaseMs,
  );
  if (maxMs < baseMs) fail(`${path}.backoff.maxMs`, `must be >= backoff.baseMs (${baseMs}), got ${maxMs}`);
  const leaseMs = checkInt(
    `${path}.leaseMs`,
    raw.leaseMs ?? DEFAULTS.leaseMs,
    LIMITS.minLeaseMs,
    LIMITS.maxLeaseMs,
  );
  const classification = checkClassification(
    `${path}.classification`,
    raw.classification ?? DEFAULTS.classification,
  );
  if (raw.kind !== undefined && raw.kind !== 'run' && raw.kind !== 'compensation') {
    fail(`${path}.kind`, `must be 'run' or 'compensation', got ${describe(raw.kind)}`);
  }
  if (raw.requiresApproval !== undefined && typeof raw.requiresApproval !== 'boolean') {
    fail(`${path}.requiresApproval`, 'must be a boolean');
  }
  const authorityJson =
    raw.authority === undefined ? null : toJson(`${path}.authority`, raw.authority, 64 * 1024);
  // The body that an idempotent replay must repeat: what the caller chose, not the defaults of the day.
  const requestDigest =
    idempotencyKey === null
      ? null
      : sha256Hex(
          canonicalJson({
            task,
            taskVersion,
            queue,
            input: JSON.parse(inputJson),
            priority,
            runAt,
            deadline,
            parentId,
            correlationId,
          }),
        );
  return {
    id,
    tenant,
    task,
    taskVersion,
    queue,
    inputJson,
    idempotencyKey,
    requestDigest,
    correlationId,
    parentId,
    priority,
    runAt,
    deadline,
    maxAttempts,
    backoff: { baseMs, maxMs },
    leaseMs,
    classification,
    requiresApproval: raw.requiresApproval ?? false,
    authorityJson,
    kind: raw.kind ?? 'run',
  };
}

export function normalizeSubmitMany(inputs: SubmitInput[]): NormalizedSubmit[] {
  if (!Array.isArray(inputs)) fail('submitMany', 'must be an array of submissions');
  if (inputs.length > LIMITS.maxBatch)
    fail('submitMany', `has ${inputs.length} items; at most ${LIMITS.maxBatch} per call`);
  return inputs.map((input, i) => normalizeSubmit(input, `submitMany[${i}]`));
}

export interface NormalizedClaim {
  workerId: string;
  queues: string[];
  limit: number;
  tasks: string[] | null;
  clearance: Classification;
  leaseMs: number | null;
  /** Start in the same write, with this context; null: leave the jobs leased. */
  start: AttemptContext | null;
}

export function normalizeClaim(raw: ClaimOptions): NormalizedClaim {
  if (typeof raw !== 'object' || raw === null) fail('claim', 'must be an object');
  const workerId = checkName('claim.workerId', raw.workerId);
  if (!Array.isArray(raw.queues) || raw.queues.length === 0)
    fail('claim.queues', 'must be a non-empty array of queue names');
  const queues = raw.queues.map((q, i) => checkName(`claim.queues[${i}]`, q));
  const limit = checkInt('claim.limit', raw.limit, 1, LIMITS.maxClaim);
  let tasks: string[] | null = null;
  if (raw.tasks !== undefined) {
    if (!Array.isArray(raw.tasks)) fail('claim.tasks', 'must be an array of task names');
    tasks = raw.tasks.map((t, i) => checkName(`claim.tasks[${i}]`, t));
  }
  const clearance = checkClassification('claim.clearance', raw.clearance ?? DEFAULTS.clearance);
  const leaseMs =
    raw.leaseMs === undefined
      ? null
      : checkInt('claim.leaseMs', raw.leaseMs, LIMITS.minLeaseMs, LIMITS.maxLeaseMs);
  const start = raw.start === undefined ? null : checkAttemptContext(raw.start);
  return { workerId, queues, limit, tasks, clearance, leaseMs, start };
}

export function checkLeases<T extends Lease>(path: string, items: T[]): T[] {
  if (!Array.isArray(items)) fail(path, 'must be an array of leases ({ jobId, fence })');
  if (items.length > LIMITS.maxBatch)
    fail(path, `has ${items.length} items; at most ${LIMITS.maxBatch} per call`);
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (typeof item !== 'object' || item === null) fail(`${path}[${i}]`, 'must be an object');
    checkJobId(`${path}[${i}].jobId`, item.jobId);
    checkInt(`${path}[${i}].fence`, item.fence, 1, Number.MAX_SAFE_INTEGER);
    if (seen.has(item.jobId)) fail(`${path}[${i}].jobId`, `job ${item.jobId} appears twice in one batch`);
    seen.add(item.jobId);
  });
  return items;
}

export function checkErrorInput(path: string, error: unknown): { code: string; message: string } {
  if (typeof error !== 'object' || error === null) fail(path, 'must be an object { code, message }');
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !/^[a-z][a-z0-9_.]{0,99}$/.test(code)) {
    fail(`${path}.code`, 'must be a lower-case code of letters, digits, _ and . (at most 100 characters)');
  }
  if (typeof message !== 'string') fail(`${path}.message`, 'must be a string');
  // Handler messages are kept, minus what the store cannot hold (U+0000).
  return { code, message: message.slice(0, LIMITS.maxErrorMessageLength).replaceAll('\u0000', '\ufffd') };
}

export interface NormalizedList {
  tenant: string | null;
  states: JobState[] | null;
  task: string | null;
  queue: string | null;
  correlationId: string | null;
  limit: number;
  /** Exclusive upper bound on job id (ids sort by creation time). */
  beforeId: string | null;
}

export function normalizeList(filter: ListFilter = {}, page: ListPage = {}): NormalizedList {
  const states = filter.states === undefined ? null : filter.states;
  if (states !== null) {
    if (!Array.isArray(states) || states.length === 0)
      fail('list.states', 'must be a non-empty array of states');
    states.forEach((s, i) => {
      if (!isJobState(s)) fail(`list.states[${i}]`, `unknown state ${describe(s)}`);
    });
  }
  let beforeId: string | null = null;
  if (page.cursor !== undefined) {
    const decoded =
      typeof page.cursor === 'string' ? Buffer.from(page.cursor, 'base64url').toString('utf8') : '';
    if (!decoded.startsWith('j:'))
      fail('list.cursor', 'is not a cursor this store issued (pass nextCursor back unchanged)');
    beforeId = decoded.slice(2);
  }
  return {
    tenant: filter.tenant === undefined ? null : checkName('list.tenant', filter.tenant),
    states,
    task: filter.task === undefined ? null : checkName('list.task', filter.task),
    queue: filter.queue === undefined ? null : checkName('list.queue', filter.queue),
    correlationId:
      filter.correlationId === undefined ? null : checkJobId('list.correlationId', filter.correlationId),
    limit: checkInt('list.limit', page.limit ?? DEFAULTS.listLimit, 1, LIMITS.maxListLimit),
    beforeId,
  };
}

export function encodeCursor(lastId: string): string {
  return Buffer.from(`j:${lastId}`, 'utf8').toString('base64url');
}

/** Exponential backoff with equal jitter, for the attempt that just failed (1-based). */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 40));
  return Math.round(exp / 2 + (exp / 2) * random());
}

export function checkStepKey(path: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    fail(path, 'must be a non-empty string of at most 200 characters');
  }
  return value;
}

const WORKER_STATES_SETTABLE = ['active', 'draining', 'stopped'] as const;

export function checkWorkerState(path: string, value: unknown): (typeof WORKER_STATES_SETTABLE)[number] {
  if (!(WORKER_STATES_SETTABLE as readonly unknown[]).includes(value)) {
    fail(path, `must be one of ${WORKER_STATES_SETTABLE.join(', ')}, got ${describe(value)}`);
  }
  return value as (typeof WORKER_STATES_SETTABLE)[number];
}

function checkNames(path: string, value: unknown): string[] {
  if (!Array.isArray(value)) fail(path, 'must be an array of names');
  return value.map((v, i) => checkName(`${path}[${i}]`, v));
}

export function checkWorkerInfo(raw: WorkerInfo): WorkerInfo {
  if (typeof raw !== 'object' || raw === null) fail('worker', 'must be an object');
  const info: WorkerInfo = {
    id: checkName('worker.id', raw.id),
    host:
      typeof raw.host === 'string' && raw.host.length <= 255
        ? raw.host
        : fail('worker.host', 'must be a host name'),
    pid: checkInt('worker.pid', raw.pid, 0, 2 ** 31),
    version:
      typeof raw.version === 'string' && raw.version.length <= 100
        ? raw.version
        : fail('worker.version', 'must be a version string'),
    labels: checkNames('worker.labels', raw.labels),
    queues: checkNames('worker.queues', raw.queues),
    clearance: checkClassification('worker.clearance', raw.clearance),
    concurrency: checkInt('worker.concurrency', raw.concurrency, 1, 100_000),
    runtimes: checkNames('worker.runtimes', raw.runtimes),
  };
  if (raw.meta !== undefined) {
    if (typeof raw.meta !== 'object' || raw.meta === null || Array.isArray(raw.meta))
      fail('worker.meta', 'must be an object');
    toJson('worker.meta', raw.meta, 64 * 1024);
    info.meta = raw.meta;
  }
  return info;
}

export function checkAttemptContext(ctx: AttemptContext): AttemptContext {
  if (typeof ctx !== 'object' || ctx === null) fail('start.context', 'must be an object');
  const out: AttemptContext = {};
  if (ctx.configVersion !== undefined)
    out.configVersion = checkInt(
      'start.context.configVersion',
      ctx.configVersion,
      0,
      Number.MAX_SAFE_INTEGER,
    );
  if (ctx.cachedAuthority !== undefined) {
    if (typeof ctx.cachedAuthority !== 'boolean') fail('start.context.cachedAuthority', 'must be a boolean');
    out.cachedAuthority = ctx.cachedAuthority;
  }
  return out;
}

export function checkEventInput(e: {
  type: string;
  tenant: string;
  correlationId?: string;
  data: Record<string, unknown>;
}): {
  type: string;
  tenant: string;
  correlationId: string | null;
  dataJson: string;
} {
  if (typeof e.type !== 'string' || !/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/.test(e.type)) {
    fail('event.type', "must be a dotted lower-case name like 'config.published'");
  }
  if (typeof e.data !== 'object' || e.data === null || Array.isArray(e.data))
    fail('event.data', 'must be an object');
  return {
    type: e.type,
    tenant: checkName('event.tenant', e.tenant),
    correlationId: e.correlationId === undefined ? null : checkJobId('event.correlationId', e.correlationId),
    dataJson: toJson('event.data', e.data, 64 * 1024),
  };
}

export function checkBlock(
  path: string,
  o: { tasks?: string[]; reason: unknown },
): { tasks: string[] | null; reason: BlockReason } {
  if (!isBlockReason(o.reason))
    fail(`${path}.reason`, `must be one of ${BLOCK_REASONS.join(', ')}, got ${describe(o.reason)}`);
  if (o.tasks !== undefined && !Array.isArray(o.tasks))
    fail(`${path}.tasks`, 'must be an array of task names');
  return {
    tasks: o.tasks === undefined ? null : o.tasks.map((t, i) => checkName(`${path}.tasks[${i}]`, t)),
    reason: o.reason,
  };
}

/** Refusals of attempts for invalid authority: leases, each with a message of at most 2,000 characters. */
export function checkRefusals<T extends Lease & { message: unknown }>(path: string, items: T[]): T[] {
  checkLeases(path, items);
  items.forEach((item, i) => {
    checkText(`${path}[${i}].message`, item.message, 2000, 'a message');
  });
  return items;
}

/** A readmission: the job, the caller's tenant (when scoped) and the new authority record. */
export function checkReadmit(o: { jobId: string; tenant?: string; authority: unknown }): {
  jobId: string;
  tenant: string | null;
  authorityJson: string;
} {
  if (typeof o !== 'object' || o === null) fail('readmit', 'must be an object');
  return {
    jobId: checkJobId('readmit.jobId', o.jobId),
    tenant: o.tenant === undefined ? null : checkName('readmit.tenant', o.tenant),
    authorityJson: toJson('readmit.authority', o.authority ?? null, 64 * 1024),
  };
}

/** A decision on a job awaiting approval, checked before anything is read or written. */
export function checkApproval(o: ApprovalInput): {
  jobId: string;
  tenant: string | null;
  expectedSignature: string;
  authorityJson: string;
  to: ApprovalInput['to'];
  deadline: number | null;
  eventJson: string;
} {
  if (typeof o !== 'object' || o === null) fail('decideApproval', 'must be an object');
  if (!['awaiting_approval', 'queued', 'rejected'].includes(o.to)) {
    fail('decideApproval.to', `must be awaiting_approval, queued or rejected, got ${describe(o.to)}`);
  }
  return {
    jobId: checkJobId('decideApproval.jobId', o.jobId),
    tenant: o.tenant === undefined ? null : checkName('decideApproval.tenant', o.tenant),
    expectedSignature: checkText('decideApproval.expectedSignature', o.expectedSignature, 200, 'a signature'),
    authorityJson: toJson('decideApproval.authority', o.authority ?? null, 64 * 1024),
    to: o.to,
    deadline: o.deadline === null ? null : checkTime('decideApproval.deadline', o.deadline),
    eventJson: toJson('decideApproval.event', o.event ?? {}, 16 * 1024),
  };
}

/** The `signature` member of a stored authority record (JSON text or value), or null. */
export function signatureOf(authority: unknown): string | null {
  const value = typeof authority === 'string' ? (JSON.parse(authority) as unknown) : authority;
  const sig = (value as { signature?: unknown } | null)?.signature;
  return typeof sig === 'string' ? sig : null;
}

/** The reason each decision on a job awaiting approval records (a short quorum keeps the old one). */
export const APPROVAL_REASON = {
  awaiting_approval: 'approval_required',
  queued: 'approved',
  rejected: 'rejected',
} as const;

/**
 * A decision on an approval may be written: the job exists in the caller's tenant, awaits approval,
 * and still holds the record the decision was made on. Throws `JobNotFoundError` or
 * `JobStateConflictError` otherwise.
 */
export function assertDecidable<R extends { tenant: string; state: string; authority: unknown }>(
  a: { jobId: string; tenant: string | null; expectedSignature: string },
  row: R | undefined,
): asserts row is R {
  if (!row || (a.tenant !== null && row.tenant !== a.tenant)) throw new JobNotFoundError(a.jobId);
  if (row.state !== 'awaiting_approval') throw new JobStateConflictError(a.jobId, row.state, 'decide on');
  if (signatureOf(row.authority) !== a.expectedSignature) {
    throw new JobStateConflictError(
      a.jobId,
      'awaiting_approval (decided on meanwhile: read it again)',
      'decide on',
    );
  }
}
