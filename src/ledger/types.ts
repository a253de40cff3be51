/**
 * The ledger's vocabulary: jobs, leases, steps, workers and outbox events as the `Store` port hands
 * them out. Times are epoch milliseconds taken from the store's clock.
 */
import type { BlockReason, JobState, TransitionReason } from '../lifecycle/lifecycle.js';

export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
/** Data classification, ordered: a worker with clearance C may lease jobs classified at or below C. */
export type Classification = (typeof CLASSIFICATIONS)[number];

export function classificationRank(c: Classification): number {
  return CLASSIFICATIONS.indexOf(c);
}

/** Exponential backoff with jitter: delay(n) = min(maxMs, baseMs * 2^(n-1)), then a random 50–100% of it. */
export interface BackoffPolicy {
  /** @default 1000 */
  baseMs: number;
  /** @default 300000 */
  maxMs: number;
}

export interface JobError {
  /** Stable machine-readable code, e.g. `timeout`, `handler_error`. */
  code: string;
  message: string;
}

/** `run` jobs run a task's handler; `compensation` jobs run its `compensate` for the parent job. */
export type JobKind = 'run' | 'compensation';

export interface Job {
  id: string;
  kind: JobKind;
  tenant: string;
  task: string;
  taskVersion: number;
  queue: string;
  state: JobState;
  /** Why the job is in its state. */
  reason: TransitionReason | BlockReason | null;
  input: unknown;
  output?: unknown;
  error?: JobError;
  /** Attempts made so far (claims that were not handed back). */
  attempt: number;
  maxAttempts: number;
  idempotencyKey?: string;
  correlationId: string;
  parentId?: string;
  priority: number;
  runAt: number;
  deadline?: number;
  classification: Classification;
  leaseMs: number;
  backoff: BackoffPolicy;
  /** The lease epoch: incremented on every claim. 0 until first claimed. */
  fence: number;
  workerId?: string;
  leaseExpiresAt?: number;
  cancelRequested: boolean;
  progress?: unknown;
  /** The signed authority record written at admission, opaque to the ledger. */
  authority?: unknown;
  createdAt: number;
  updatedAt: number;
}

export interface SubmitInput {
  /**
   * The job's id, when the caller must know it before the insert (admission signs it into the
   * authority record). @default a new UUIDv7
   */
  id?: string;
  tenant: string;
  task: string;
  /** @default 1 */
  taskVersion?: number;
  /** @default 'default' */
  queue?: string;
  /** Any JSON value; at most `limits.maxInputBytes` when serialised. */
  input: unknown;
  /** Per tenant; at most 200 characters. */
  idempotencyKey?: string;
  /** @default the job id */
  correlationId?: string;
  parentId?: string;
  /** Higher runs first. Integer in [-1000, 1000]. @default 0 */
  priority?: number;
  /** Epoch ms before which the job is not claimed. @default now */
  runAt?: number;
  /** Epoch ms after which the job expires wherever it is. */
  deadline?: number;
  /** Integer in [1, 1000]. @default 3 */
  maxAttempts?: number;
  backoff?: Partial<BackoffPolicy>;
  /** Lease length for each claim, in [10, 86400000]. @default 30000 */
  leaseMs?: number;
  /** @default 'internal' */
  classification?: Classification;
  /** The job waits in `awaiting_approval` instead of `queued`. @default false */
  requiresApproval?: boolean;
  /** @default 'run' */
  kind?: JobKind;
  authority?: unknown;
  /** Admission limits checked in the submit transaction, for this call only. @default none */
  quota?: SubmitQuota;
}

/** Limits a submission is admitted under, checked inside the submit transaction. */
export interface SubmitQuota {
  /**
   * The most pending jobs (`awaiting_approval`, `queued` or `blocked`: admitted and not yet claimed)
   * the tenant may hold once this submission is in. Over it, `submit`/`submitMany` throw
   * `QuotaExceededError` and write nothing. An idempotent replay adds nothing and is never refused.
   * Jobs coming back to the queue (retries, releases, expired leases) are never refused either, so
   * the count can sit above the limit for a while; admission refuses until it is below again.
   * Concurrent submitters that pass the limit are serialised per tenant. Integer in [0, 10,000,000].
   * @default no limit
   */
  maxQueued?: number;
}

export interface SubmitResult {
  job: Job;
  /** False when an earlier submission with the same idempotency key and body was returned. */
  created: boolean;
}

export interface ClaimOptions {
  workerId: string;
  /** Queues to claim from, in the order tried; at least one. */
  queues: string[];
  /** Most jobs to claim, in [1, 1000]. */
  limit: number;
  /** Claim only these task names (the ones this worker can run). All when absent. */
  tasks?: string[];
  /** Jobs classified above this are never leased. @default 'internal' */
  clearance?: Classification;
  /** Overrides each job's own lease length. */
  leaseMs?: number;
  /**
   * Start the claimed jobs in the same transaction (`queued -> leased -> running`, both events),
   * with this attempt context on the `job.running` event: for a worker that claims only what it
   * starts at once, one write instead of two.
   */
  start?: AttemptContext;
  /**
   * Per-tenant ceilings on running work: a tenant's `leased` and `running` jobs, in every queue. A
   * tenant at its ceiling gets nothing from this claim, one below it at most the difference. Counted
   * inside the claim's transaction; concurrent claimers that pass limits are serialised per tenant,
   * so none of them takes a tenant over its ceiling. Tenant name -> integer in [0, 10,000,000].
   * @default no ceilings
   */
  maxRunning?: Record<string, number>;
  /** The ceiling of every tenant not named in `maxRunning`. @default none */
  defaultMaxRunning?: number;
}

/** A take from a tenant's token bucket. */
export interface TakeTokensInput {
  tenant: string;
  /** Which of the tenant's buckets: one per rate being limited. @default 'submit' */
  bucket?: string;
  /** Tokens to take, all or none; at most `burst`. @default 1 */
  count?: number;
  /** Refill rate in tokens per second: a positive number, at most 1,000,000. */
  ratePerSecond: number;
  /**
   * The bucket's size: the most tokens available after a quiet spell (a new bucket starts full).
   * A number in [1, 1,000,000,000].
   * @default max(1, ratePerSecond)
   */
  burst?: number;
}

export type TakeTokensResult =
  /** Taken. `remaining`: whole tokens left in the bucket. */
  | { ok: true; remaining: number }
  /**
   * Refused, nothing taken. `retryAfterMs` (> 0): the least wait before the same take can succeed,
   * if nobody else takes meanwhile. `remaining`: whole tokens in the bucket now.
   */
  | { ok: false; remaining: number; retryAfterMs: number };

/** Proof of ownership of one attempt: the job id and the fence the claim returned. */
export interface Lease {
  jobId: string;
  fence: number;
}

export interface HeartbeatInput extends Lease {
  /** Any small JSON value, shown through the API. */
  progress?: unknown;
}

export interface CompleteInput extends Lease {
  output?: unknown;
}

/** A decision on a job awaiting approval (see `Store.decideApproval`). */
export interface ApprovalInput {
  jobId: string;
  /** Scope to this tenant: another tenant's job is not found. */
  tenant?: string;
  /** The `signature` of the authority record the decision was made on (compare-and-set). */
  expectedSignature: string;
  /** The new authority record, with the decision in it. */
  authority: unknown;
  /** `awaiting_approval`: recorded, more approvals needed; `queued`: approved; `rejected`. */
  to: 'awaiting_approval' | 'queued' | 'rejected';
  /** The job's deadline from now on (approval restores the one asked for); null: none. */
  deadline: number | null;
  /** The outbox event's data: who decided, and the count so far (small facts only). */
  event: Record<string, unknown>;
}

export interface RefuseInput extends Lease {
  /** Why the authority record was refused (what did not verify). */
  message: string;
}

export interface FailInput extends Lease {
  error: JobError;
  /** False for errors no retry can fix. @default true */
  retryable?: boolean;
}

export type Outcome<T> = { jobId: string; ok: true; value: T } | { jobId: string; ok: false; error: Error };

/** What an attempt runs under, recorded on its `job.running` event. */
export interface AttemptContext {
  /** The config version the worker applied when it started the attempt. */
  configVersion?: number;
  /** True when the worker could not reach the control plane and ran on its cached snapshot. */
  cachedAuthority?: boolean;
}

/** What an owner's transition left behind: the job's new state and when it changed. */
export interface Transitioned {
  state: JobState;
  updatedAt: number;
}

export interface HeartbeatResult {
  leaseExpiresAt: number;
  /** The job was asked to cancel: abort the handler and call `confirmCancel`. */
  cancelRequested: boolean;
}

export interface FailResult {
  state: 'queued' | 'dead';
  /** When the retry may run (queued only). */
  runAt?: number;
}

export interface ReapResult {
  /** Expired leases returned to `queued`. */
  requeued: number;
  /** Expired leases whose attempts were exhausted. */
  dead: number;
  /** Expired leases of jobs asked to cancel. */
  cancelled: number;
  /** Jobs whose deadline passed. */
  expired: number;
}

export interface Step {
  jobId: string;
  stepKey: string;
  result: unknown;
  /** The fence and attempt of the owner that committed it. */
  fence: number;
  attempt: number;
  createdAt: number;
}

export interface PutStepInput extends Lease {
  stepKey: string;
  result: unknown;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  version: string;
  labels: string[];
  queues: string[];
  clearance: Classification;
  concurrency: number;
  runtimes: string[];
  /**
   * Anything else the worker reports: `protocol`, and `keyId` — the id of the API key it talks to
   * the control plane with, the only key the control plane accepts its config reports from.
   */
  meta?: Record<string, unknown>;
}

export type WorkerState = 'active' | 'draining' | 'stopped' | 'lost';

export interface WorkerRecord extends WorkerInfo {
  state: WorkerState;
  startedAt: number;
  lastSeenAt: number;
  /** What the worker reported about config: the version it applied, and the last one it refused. */
  config: { appliedVersion?: number; nackVersion?: number; nackReason?: string; reportedAt?: number };
}

export interface OutboxEvent {
  seq: number;
  /** `job.<state>` for transitions, `job.cancel_requested`, `step.committed`. */
  type: string;
  tenant: string;
  jobId: string | null;
  correlationId: string | null;
  /** Small facts only, never payloads: from, to, reason, attempt, fence, workerId, error code. */
  data: Record<string, unknown>;
  at: number;
}

/** An outbox consumer's position and failures. */
export interface ConsumerState {
  name: string;
  /** The last event seq handled; 0 for a consumer that has handled nothing. */
  cursor: number;
  /** Failures in a row since the cursor last moved. */
  failures: number;
  lastError?: string;
  /** When the consumer last moved its cursor or recorded a failure (store clock, epoch ms). */
  updatedAt?: number;
}

export interface ListFilter {
  tenant?: string;
  states?: JobState[];
  task?: string;
  queue?: string;
  correlationId?: string;
}

export interface ListPage {
  /** In [1, 500]. @default 50 */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

export interface JobPage {
  /** Newest first. */
  jobs: Job[];
  nextCursor?: string;
}
