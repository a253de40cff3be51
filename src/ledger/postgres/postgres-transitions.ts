/**
 * Transitions of the PostgreSQL ledger beyond a single statement. Owner batches (start, complete,
 * release, …) run one statement and explain each rejected item. Transitions decided in code (fail,
 * cancel, reap): the rows are locked first, `src/lifecycle` picks each row's next state, and one
 * statement applies them all with their outbox events. Event data has the same keys as the SQLite
 * adapter's.
 */
import type pg from 'pg';
import {
  afterFailure,
  afterLeaseExpiry,
  assertTransition,
  type JobState,
  type TransitionReason,
} from '../../lifecycle/lifecycle.js';
import { StaleLeaseError } from '../errors.js';
import type { JobRow } from '../rows.js';
import type { Lease, Outcome, ReapResult } from '../types.js';
import { backoffDelay } from '../validate.js';
import { run, type Sql, withRetry } from './postgres-db.js';
import {
  CURRENT_OF,
  LOCK_EXPIRED_LEASES,
  LOCK_PAST_DEADLINE,
  LOCK_RUNNING,
  TRANSITION,
} from './postgres-queries.js';

/** What the locking statements read about a job (a full `JobRow` has all of it too). */
export interface LockedJob {
  id: string;
  state: string;
  fence: number;
  attempt: number;
  max_attempts: number;
  worker_id: string | null;
  cancel_requested: boolean;
  backoff_base_ms: number;
  backoff_max_ms: number;
}

export interface TransitionPlan {
  job: Pick<LockedJob, 'id' | 'state'>;
  to: JobState;
  reason: TransitionReason;
  /** Run again this long after now; null or absent keeps the run time. */
  runAfterMs?: number | null;
  /** The worker id goes (the job is back in the queue). */
  clearWorker?: boolean;
  /** The fence moves on, so the current owner's later writes are stale. */
  bumpFence?: boolean;
  /** An error to record on the job. */
  error?: { code: string; message: string };
  /** An event written before the transition's own (`job.failed` before `job.queued`). */
  before?: { type: string; data: Record<string, unknown> };
  /** The data of the `job.<to>` event. */
  data: Record<string, unknown>;
  /** Add the job's new run time to the event data as `runAt`. */
  withRunAt?: boolean;
}

/** Apply `plans` to rows this transaction holds locked; returns the moved rows. */
export async function applyTransitions(client: pg.PoolClient, plans: TransitionPlan[]): Promise<JobRow[]> {
  if (plans.length === 0) return [];
  const rows = await run<JobRow>(client, TRANSITION, [
    plans.map((p) => p.job.id),
    plans.map((p) => p.job.state),
    plans.map((p) => p.to),
    plans.map((p) => p.reason),
    plans.map((p) => p.runAfterMs ?? null),
    plans.map((p) => p.clearWorker ?? false),
    plans.map((p) => p.bumpFence ?? false),
    plans.map((p) => p.error?.code ?? null),
    plans.map((p) => p.error?.message ?? null),
    plans.map((p) => p.before?.type ?? null),
    plans.map((p) => (p.before ? JSON.stringify(p.before.data) : null)),
    plans.map((p) => JSON.stringify(p.data)),
    plans.map((p) => p.withRunAt ?? false),
  ]);
  if (rows.length !== plans.length) {
    throw new Error(`ledger transition: ${plans.length} locked jobs, but ${rows.length} moved`);
  }
  return rows;
}

/** What `fail` was told about one item. */
export interface FailInputs {
  error: { code: string; message: string };
  retryable: boolean;
}

/**
 * fail: lock the batch's running jobs whose lease is current, let the lifecycle decide each one
 * (`running -> failed -> queued` with backoff, or `dead`), apply them all. Returns the moved rows.
 */
export async function failBatch(
  client: pg.PoolClient,
  sorted: Lease[],
  inputs: Map<string, FailInputs>,
): Promise<JobRow[]> {
  const locked = await run<LockedJob>(client, LOCK_RUNNING, [
    sorted.map((l) => l.jobId),
    sorted.map((l) => l.fence),
  ]);
  const plans = locked.map((job): TransitionPlan => {
    const { error, retryable } = inputs.get(job.id)!;
    const facts = { attempt: job.attempt, maxAttempts: job.max_attempts, retryable };
    assertTransition('running', 'failed', 'attempt_failed');
    const next = afterFailure(facts);
    assertTransition('failed', next.to, next.reason, facts);
    const base = { from: 'failed', to: next.to, reason: next.reason, attempt: job.attempt };
    const retry = next.to === 'queued';
    return {
      job,
      to: next.to,
      reason: next.reason,
      runAfterMs: retry
        ? backoffDelay({ baseMs: job.backoff_base_ms, maxMs: job.backoff_max_ms }, job.attempt)
        : null,
      clearWorker: retry,
      error,
      before: {
        type: 'job.failed',
        data: {
          from: 'running',
          to: 'failed',
          reason: 'attempt_failed',
          attempt: job.attempt,
          fence: job.fence,
          error: error.code,
          message: error.message,
        },
      },
      data: retry ? base : { ...base, error: error.code },
      withRunAt: retry,
    };
  });
  return applyTransitions(client, plans);
}

/** The reaper's decision for one expired lease: cancelled if a cancel was pending, else requeued or dead. */
function expiryPlan(job: LockedJob): TransitionPlan {
  const from = job.state as JobState;
  const base = { from, attempt: job.attempt, fence: job.fence, workerId: job.worker_id };
  if (job.cancel_requested) {
    assertTransition(from, 'cancelled', 'cancel_requested');
    return {
      job,
      to: 'cancelled',
      reason: 'cancel_requested',
      data: { ...base, to: 'cancelled', reason: 'cancel_requested' },
    };
  }
  const facts = { attempt: job.attempt, maxAttempts: job.max_attempts };
  const next = afterLeaseExpiry(facts);
  assertTransition(from, next.to, next.reason, facts);
  const requeue = next.to === 'queued';
  return {
    job,
    to: next.to,
    reason: next.reason,
    runAfterMs: requeue ? 0 : null,
    clearWorker: requeue,
    ...(requeue
      ? {}
      : {
          error: {
            code: 'lease_expired',
            message: `the lease ran out on attempt ${job.attempt} of ${job.max_attempts}`,
          },
        }),
    data: { ...base, to: next.to, reason: next.reason },
  };
}

/** The reaper's decision for an unfinished job past its deadline: expired, and a held lease fenced off. */
function deadlinePlan(job: LockedJob): TransitionPlan {
  const from = job.state as JobState;
  assertTransition(from, 'expired', 'deadline_passed');
  return {
    job,
    to: 'expired',
    reason: 'deadline_passed',
    bumpFence: from === 'leased' || from === 'running',
    error: { code: 'deadline_passed', message: 'the job deadline passed before it finished' },
    data: { from, to: 'expired', reason: 'deadline_passed', attempt: job.attempt, workerId: job.worker_id },
  };
}

/** Rows the reaper takes per statement. */
export const REAP_BATCH = 1000;

/**
 * One reaper transaction: a batch of expired leases, then a batch of jobs past their deadline, each
 * locked with SKIP LOCKED (concurrent reapers never take the same row). Adds to `result` and to the
 * queues of `requeued`; returns whether a batch was full (more may be waiting).
 */
export async function reapBatch(
  client: pg.PoolClient,
  result: ReapResult,
  requeued: Set<string>,
): Promise<boolean> {
  const expired = await run<LockedJob>(client, LOCK_EXPIRED_LEASES, [REAP_BATCH]);
  for (const row of await applyTransitions(client, expired.map(expiryPlan))) {
    if (row.state === 'queued') {
      result.requeued++;
      requeued.add(row.queue);
    } else if (row.state === 'dead') result.dead++;
    else result.cancelled++;
  }
  const late = await run<LockedJob>(client, LOCK_PAST_DEADLINE, [REAP_BATCH]);
  result.expired += (await applyTransitions(client, late.map(deadlinePlan))).length;
  return expired.length === REAP_BATCH || late.length === REAP_BATCH;
}

type CurrentLease = { state: string; fence: number; leaseExpired: boolean };

export const byJobId = (a: Lease, b: Lease) => (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0);

/**
 * An owner operation over a batch in one statement (sorted by id, so concurrent batches lock rows
 * in one order). Items it did not touch get a `StaleLeaseError` saying what the store holds now.
 */
export async function ownerBatch<I extends Lease, R extends pg.QueryResultRow, V>(
  pool: pg.Pool,
  items: I[],
  sql: Sql,
  extra: (sorted: I[]) => unknown[],
  value: (row: R) => V,
): Promise<Outcome<V>[]> {
  if (items.length === 0) return [];
  const sorted = [...items].sort(byJobId);
  const rows = await withRetry(() =>
    run<R & { id: string }>(pool, sql, [
      sorted.map((i) => i.jobId),
      sorted.map((i) => i.fence),
      ...extra(sorted),
    ]),
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  const current = await currentOf(
    pool,
    items.filter((it) => !byId.has(it.jobId)),
  );
  return items.map((it): Outcome<V> => {
    const row = byId.get(it.jobId);
    return row
      ? { jobId: it.jobId, ok: true, value: value(row) }
      : { jobId: it.jobId, ok: false, error: new StaleLeaseError(it.jobId, it.fence, current.get(it.jobId)) };
  });
}

/** What the store holds now for jobs whose write was rejected (absent: no such job). */
export async function currentOf(pool: pg.Pool, items: Lease[]): Promise<Map<string, CurrentLease>> {
  const current = new Map<string, CurrentLease>();
  if (items.length === 0) return current;
  const rows = await run<{ id: string; state: string; fence: number; lease_expired: boolean }>(
    pool,
    CURRENT_OF,
    [items.map((it) => it.jobId)],
  );
  for (const row of rows)
    current.set(row.id, { state: row.state, fence: row.fence, leaseExpired: row.lease_expired });
  return current;
}
