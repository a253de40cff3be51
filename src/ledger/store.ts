/**
 * The `Store` port: the durable record of work. Two adapters implement it, SQLite
 * (`sqlite/sqlite-store.ts`, the embedded default) and PostgreSQL (`postgres/postgres-store.ts`), and
 * one conformance suite (`test/ledger/conformance-*.test.ts`) holds both to the same behaviour.
 *
 * Rules every adapter keeps:
 * - Every state change is a conditional write (expected state, and the fence for leased work) that
 *   goes through `src/lifecycle`, and appends one outbox event per transition in the same
 *   transaction.
 * - Lease-holder operations take batches and answer per item, in input order: a stale item gets
 *   `{ ok: false, error: StaleLeaseError }` and changes nothing, the others go through.
 * - Bad arguments throw `InvalidArgumentError` before anything is written.
 * - Lease deadlines and all times come from the store's clock.
 */
import type { BlockReason } from '../lifecycle/lifecycle.js';
import type { ConfigStore } from './config-store.js';
import type { Registry } from './registry.js';
import type {
  ApprovalInput,
  AttemptContext,
  ClaimOptions,
  CompleteInput,
  ConsumerState,
  FailInput,
  FailResult,
  HeartbeatInput,
  HeartbeatResult,
  Job,
  JobPage,
  Lease,
  ListFilter,
  ListPage,
  OutboxEvent,
  Outcome,
  PutStepInput,
  ReapResult,
  RefuseInput,
  Step,
  SubmitInput,
  SubmitResult,
  TakeTokensInput,
  TakeTokensResult,
  Transitioned,
  WorkerInfo,
  WorkerRecord,
  WorkerState,
} from './types.js';

export type Dialect = 'sqlite' | 'postgres';

export interface OpenStoreOptions {
  /**
   * SQLite durability: `full` fsyncs every commit (WAL); `normal` may lose the last commits on power
   * loss, never on a process crash.
   * @default 'full'
   */
  synchronous?: 'full' | 'normal';
  /** PostgreSQL connections in the pool. @default 10 */
  poolSize?: number;
  /** Shown in `pg_stat_activity`. @default 'bulkhead' */
  applicationName?: string;
}

export interface Store {
  readonly dialect: Dialect;
  /** Tenants, API keys and task-type contracts, in the same database. */
  readonly registry: Registry;
  /** Published config versions, the rollout state, and workers' ACKs and NACKs. */
  readonly configs: ConfigStore;

  /**
   * Admit one job (`submitted -> queued | awaiting_approval`). Idempotent per tenant + key. Throws
   * `QuotaExceededError`, writing nothing, when `input.quota` would be exceeded.
   */
  submit(input: SubmitInput): Promise<SubmitResult>;
  /**
   * Admit many jobs in one transaction; all or none. Results in input order. Quotas are checked as
   * if the jobs were admitted one by one in input order (each against its own `quota`).
   */
  submitMany(inputs: SubmitInput[]): Promise<SubmitResult[]>;

  /**
   * Lease up to `limit` runnable jobs (`queued -> leased`), each with a new fence, in pick order.
   * Queues are tried in the order given. Within a queue the pick is fair across tenants: round-robin
   * over the tenants with runnable work, starting after the tenant served last in that queue (the
   * ledger keeps the cursor), one job per tenant per round; within a tenant, highest priority first,
   * then earliest `runAt`, then oldest. Priority orders a tenant's own jobs, never one tenant's work
   * before another's. `maxRunning` ceilings are enforced here (see `ClaimOptions`).
   */
  claim(options: ClaimOptions): Promise<Job[]>;
  /** `leased -> running`: the handler starts. `context` goes on each `job.running` event. */
  start(leases: Lease[], context?: AttemptContext): Promise<Outcome<Transitioned>[]>;
  /** Extend leases from the store's clock; reports a pending cancel. Never revives a lost lease. */
  heartbeat(items: HeartbeatInput[]): Promise<Outcome<HeartbeatResult>[]>;
  /** `running -> succeeded`. */
  complete(items: CompleteInput[]): Promise<Outcome<Transitioned>[]>;
  /** `running -> failed -> queued (with backoff) | dead`. */
  fail(items: FailInput[]): Promise<Outcome<FailResult>[]>;
  /** `leased -> queued`: hand back work that never started; the attempt is not counted. */
  release(leases: Lease[]): Promise<Outcome<Transitioned>[]>;
  /**
   * `running -> cancelled` after the owner saw `cancelRequested` and stopped. Needs the fence but not
   * a live lease: stopping is what was asked, and the reaper would cancel the job anyway.
   */
  confirmCancel(leases: Lease[]): Promise<Outcome<Transitioned>[]>;

  /**
   * Cancel a job. Not yet running (awaiting approval, queued, blocked, leased): `-> cancelled` at
   * once; a leased job's fence moves on, so its holder's `start` is refused. Running: the request
   * is recorded (`cancelRequested`), the owner learns it on its next heartbeat and stops, then calls
   * `confirmCancel`; the reaper cancels it if the owner never answers. Throws `JobNotFoundError` (also for another tenant's job) or
   * `JobStateConflictError` for a job already terminal.
   */
  cancel(jobId: string, options?: { tenant?: string }): Promise<Job>;

  /**
   * `leased|running -> blocked` (reason `invalid_authority`): the owner refuses to run an attempt
   * because the job's authority record does not verify. The attempt is given back (not counted), the
   * lease ends, and `message` is recorded as the job's error (code `invalid_authority`).
   */
  refuseAuthority(items: RefuseInput[]): Promise<Outcome<Transitioned>[]>;
  /**
   * `blocked (invalid_authority) -> queued` with a new authority record (an admin readmitted it).
   * Throws `JobNotFoundError` (also for another tenant's job) or `JobStateConflictError` when the job
   * is not blocked for `invalid_authority`.
   */
  readmit(input: { jobId: string; tenant?: string; authority: unknown }): Promise<Job>;

  /**
   * Record an approver's decision on a job `awaiting_approval`, only while its authority record is
   * still the one the decision was made on (`expectedSignature`): `to: 'awaiting_approval'` keeps it
   * waiting with the new record (event `job.approval_recorded`), `queued` approves it (reason
   * `approved`), `rejected` ends it. Throws `JobNotFoundError` (also another tenant's job) or
   * `JobStateConflictError` (not awaiting approval, or decided on by someone else meanwhile).
   */
  decideApproval(input: ApprovalInput): Promise<Job>;

  /** `queued -> blocked` for the queued jobs of these tasks, with the reason. Returns how many. */
  block(options: { tasks: string[]; reason: BlockReason }): Promise<number>;
  /** `blocked -> queued` for jobs blocked for this reason (of these tasks, when given). Returns how many. */
  unblock(options: { reason: BlockReason; tasks?: string[] }): Promise<number>;

  /** Return expired leases to `queued` (or `dead`, or `cancelled`), and expire jobs past their deadline. */
  reap(): Promise<ReapResult>;

  get(jobId: string, options?: { tenant?: string }): Promise<Job | undefined>;
  list(filter?: ListFilter, page?: ListPage): Promise<JobPage>;

  /** Commit a durable step result, once per (job, stepKey), only by the current owner of a running job. */
  putStep(input: PutStepInput): Promise<{ step: Step; created: boolean }>;
  getStep(jobId: string, stepKey: string): Promise<Step | undefined>;
  listSteps(jobId: string): Promise<Step[]>;

  registerWorker(info: WorkerInfo): Promise<WorkerRecord>;
  /** Record liveness; returns the worker's state (a `lost` worker must stop and re-register). */
  workerHeartbeat(workerId: string, state?: WorkerState): Promise<WorkerState>;
  /** Mark workers silent for longer than `silentMs` as lost and expire their leases. Returns their ids. */
  markLostWorkers(silentMs: number): Promise<string[]>;
  listWorkers(): Promise<WorkerRecord[]>;

  /**
   * Append an outbox event that is not a job transition (an admin mutation, a config publish), for
   * consumers and the evidence plane. Returns its seq.
   */
  appendEvent(event: {
    type: string;
    tenant: string;
    correlationId?: string;
    data: Record<string, unknown>;
  }): Promise<number>;

  /** Outbox events with seq > `afterSeq`, ascending; only events whose transactions have committed. */
  readEvents(afterSeq: number, limit: number): Promise<OutboxEvent[]>;

  /** The highest outbox seq written so far (0 when none). */
  outboxHead(): Promise<number>;
  /**
   * Delete outbox events with seq <= `throughSeq` and raise the low-water mark to it. Consumers
   * behind it lose those events: the evidence shipper records the range as a gap.
   */
  pruneEvents(throughSeq: number): Promise<{ deleted: number; prunedThrough: number }>;
  /** The outbox's low-water mark: the highest seq ever pruned (0 when none). */
  prunedThrough(): Promise<number>;

  /** An outbox consumer's cursor and failures (cursor 0 for a consumer that has handled nothing). */
  readConsumer(name: string): Promise<ConsumerState>;
  /**
   * Move a consumer's cursor from `from` to `to` and clear its failures. False, and nothing changed,
   * when the cursor is no longer at `from` (another instance of the consumer moved it first).
   */
  advanceConsumer(name: string, from: number, to: number): Promise<boolean>;
  /** Count a failure of the consumer at its current cursor; returns the new state. */
  recordConsumerFailure(name: string, error: string): Promise<ConsumerState>;

  /**
   * Take tokens from a tenant's token bucket, kept in the ledger and refilled from the store's clock,
   * so every replica draws on the same bucket (`submitPerSecond`). All or none: a refusal takes
   * nothing and says how long to wait. A new bucket starts full.
   */
  takeTokens(input: TakeTokensInput): Promise<TakeTokensResult>;

  /** Called when work may have become runnable on a queue (new submit, retry, release). */
  onWake(listener: (queue: string) => void): () => void;

  /** The store's clock, epoch ms. */
  now(): Promise<number>;

  close(): Promise<void>;
}

/** The value of a single-item outcome, or its error thrown. */
export function unwrap<T>(outcome: Outcome<T> | undefined): T {
  if (!outcome) throw new Error('unwrap: no outcome');
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}
