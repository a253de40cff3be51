/**
 * The PostgreSQL adapter of the `Store` port: the multi-node ledger. Claims use `FOR UPDATE SKIP
 * LOCKED` on a partial index walked in claim order; batches travel as arrays in one statement; every
 * transition writes its outbox event in the same statement; wake-ups use LISTEN/NOTIFY. All times
 * come from the server's clock. The SQL lives in `postgres-queries.ts`; behaviour matches the SQLite
 * adapter (the conformance suite holds both to it).
 */
import type pg from 'pg';
import { assertTransition, type BlockReason, isTerminal, type JobState } from '../../lifecycle/lifecycle.js';
import { JobNotFoundError, JobStateConflictError, StaleLeaseError } from '../errors.js';
import { normalizeRunningLimits, normalizeSubmitQuota, normalizeTakeTokens } from '../quotas.js';
import { type JobRow, rowToJob, rowToStep, rowToWorker, type StepRow, type WorkerRow } from '../rows.js';
import type { OpenStoreOptions, Store } from '../store.js';
import {
  type ApprovalInput,
  type AttemptContext,
  type ClaimOptions,
  type CompleteInput,
  type ConsumerState,
  classificationRank,
  type FailInput,
  type FailResult,
  type HeartbeatInput,
  type HeartbeatResult,
  type Job,
  type JobPage,
  type Lease,
  type ListFilter,
  type ListPage,
  type OutboxEvent,
  type Outcome,
  type PutStepInput,
  type ReapResult,
  type RefuseInput,
  type Step,
  type SubmitInput,
  type SubmitResult,
  type TakeTokensInput,
  type TakeTokensResult,
  type Transitioned,
  type WorkerInfo,
  type WorkerRecord,
  type WorkerState,
} from '../types.js';
import {
  checkAttemptContext,
  checkBlock,
  checkErrorInput,
  checkEventInput,
  checkInt,
  checkJobId,
  checkLeases,
  checkName,
  checkStepKey,
  checkWorkerInfo,
  checkWorkerState,
  encodeCursor,
  LIMITS,
  type NormalizedSubmit,
  normalizeClaim,
  normalizeList,
  normalizeSubmit,
  normalizeSubmitMany,
  toJson,
} from '../validate.js';
import { admit } from './postgres-admit.js';
import { decideApproval, readmit, refuseAuthority } from './postgres-authority.js';
import { claimFair } from './postgres-claim.js';
import { PostgresConfigs } from './postgres-configs.js';
import { PostgresConsumers } from './postgres-consumers.js';
import { connectionConfig, createPool, redactUrl, run, transaction, withRetry } from './postgres-db.js';
import { EventReader, WakeListener } from './postgres-events.js';
import { migrate } from './postgres-migrate.js';
import {
  APPEND_EVENT,
  BLOCK,
  COMPLETE,
  CONFIRM_CANCEL,
  GET_JOB,
  GET_STEP,
  HEARTBEAT,
  LIST_STEPS,
  LIST_WORKERS,
  LOCK_JOB,
  MARK_LOST_WORKERS,
  PUT_STEP,
  REGISTER_WORKER,
  RELEASE,
  REQUEST_CANCEL,
  SERVER_NOW,
  START,
  UNBLOCK,
  WORKER_HEARTBEAT,
} from './postgres-queries.js';
import { takeTokens } from './postgres-quotas.js';
import { PostgresRegistry } from './postgres-registry.js';
import {
  applyTransitions,
  byJobId,
  currentOf,
  failBatch,
  ownerBatch,
  reapBatch,
} from './postgres-transitions.js';

// The transitions written with fixed from/to pairs, checked once against the lifecycle.
assertTransition('queued', 'leased', 'claimed');
assertTransition('leased', 'running', 'started');
assertTransition('running', 'succeeded', 'completed');
assertTransition('leased', 'queued', 'released');
assertTransition('leased', 'cancelled', 'cancel_requested');
assertTransition('running', 'cancelled', 'cancel_requested');

const transitioned = (row: { state: string; updated_at: number }): Transitioned => ({
  state: row.state as JobState,
  updatedAt: row.updated_at,
});

export class PostgresStore implements Store {
  readonly dialect = 'postgres' as const;
  readonly registry: PostgresRegistry;
  readonly configs: PostgresConfigs;
  private readonly consumers: PostgresConsumers;
  private readonly events: EventReader;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly wake: WakeListener,
  ) {
    this.registry = new PostgresRegistry(pool);
    this.configs = new PostgresConfigs(pool);
    this.consumers = new PostgresConsumers(pool);
    this.events = new EventReader(pool);
  }

  static async open(url: string, options: OpenStoreOptions = {}): Promise<PostgresStore> {
    const applicationName = options.applicationName ?? 'bulkhead';
    const pool = createPool(url, { poolSize: options.poolSize ?? 10, applicationName });
    try {
      await migrate(pool, redactUrl(url));
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
    return new PostgresStore(pool, new WakeListener(connectionConfig(url, `${applicationName}:listen`)));
  }

  async now(): Promise<number> {
    const [row] = await run<{ now: number }>(this.pool, SERVER_NOW);
    return row!.now;
  }

  // ── admission ──────────────────────────────────────────────────────────────────────────────

  async submit(input: SubmitInput): Promise<SubmitResult> {
    const item = normalizeSubmit(input);
    const [result] = await this.admit([item], [normalizeSubmitQuota(input, 'submit')]);
    return result!;
  }

  async submitMany(inputs: SubmitInput[]): Promise<SubmitResult[]> {
    const items = normalizeSubmitMany(inputs);
    return this.admit(
      items,
      inputs.map((input, i) => normalizeSubmitQuota(input, `submitMany[${i}]`)),
    );
  }

  private async admit(items: NormalizedSubmit[], maxQueued: (number | null)[]): Promise<SubmitResult[]> {
    const results = await admit(this.pool, items, maxQueued);
    this.wake.local(results.filter((r) => r.created && r.job.state === 'queued').map((r) => r.job.queue));
    return results;
  }

  // ── leases ─────────────────────────────────────────────────────────────────────────────────

  /** Queue by queue, in the order given, until the limit is filled; each queue picked fairly (postgres-claim.ts). */
  async claim(options: ClaimOptions): Promise<Job[]> {
    const c = normalizeClaim(options);
    return claimFair(this.pool, c, classificationRank(c.clearance), normalizeRunningLimits(options));
  }

  async start(leases: Lease[], context: AttemptContext = {}): Promise<Outcome<Transitioned>[]> {
    checkLeases('start', leases);
    const ctx = checkAttemptContext(context);
    return ownerBatch(this.pool, leases, START, () => [JSON.stringify(ctx)], transitioned);
  }

  async heartbeat(items: HeartbeatInput[]): Promise<Outcome<HeartbeatResult>[]> {
    checkLeases('heartbeat', items);
    const progress = new Map(
      items.map((it, i) => [
        it.jobId,
        it.progress === undefined
          ? null
          : toJson(`heartbeat[${i}].progress`, it.progress, LIMITS.maxProgressBytes),
      ]),
    );
    return ownerBatch(
      this.pool,
      items,
      HEARTBEAT,
      (sorted) => [sorted.map((it) => progress.get(it.jobId) ?? null)],
      (row: { lease_expires_at: number; cancel_requested: boolean }) => ({
        leaseExpiresAt: row.lease_expires_at,
        cancelRequested: row.cancel_requested,
      }),
    );
  }

  async complete(items: CompleteInput[]): Promise<Outcome<Transitioned>[]> {
    checkLeases('complete', items);
    const output = new Map(
      items.map((it, i) => [
        it.jobId,
        it.output === undefined ? null : toJson(`complete[${i}].output`, it.output, LIMITS.maxOutputBytes),
      ]),
    );
    return ownerBatch(
      this.pool,
      items,
      COMPLETE,
      (sorted) => [sorted.map((it) => output.get(it.jobId) ?? null)],
      transitioned,
    );
  }

  /** Lock the batch's running jobs, let the lifecycle decide retry or dead for each, apply all at once. */
  async fail(items: FailInput[]): Promise<Outcome<FailResult>[]> {
    checkLeases('fail', items);
    const inputs = new Map(
      items.map((it, i) => [
        it.jobId,
        { error: checkErrorInput(`fail[${i}].error`, it.error), retryable: it.retryable !== false },
      ]),
    );
    if (items.length === 0) return [];
    const sorted = [...items].sort(byJobId);
    const moved = await withRetry(() =>
      transaction(this.pool, (client) => failBatch(client, sorted, inputs)),
    );
    const byId = new Map(moved.map((row) => [row.id, row]));
    const current = await currentOf(
      this.pool,
      items.filter((it) => !byId.has(it.jobId)),
    );
    return items.map((it): Outcome<FailResult> => {
      const row = byId.get(it.jobId);
      if (!row)
        return {
          jobId: it.jobId,
          ok: false,
          error: new StaleLeaseError(it.jobId, it.fence, current.get(it.jobId)),
        };
      const value: FailResult =
        row.state === 'queued' ? { state: 'queued', runAt: Number(row.run_at) } : { state: 'dead' };
      return { jobId: it.jobId, ok: true, value };
    });
  }

  async release(leases: Lease[]): Promise<Outcome<Transitioned>[]> {
    checkLeases('release', leases);
    return ownerBatch(
      this.pool,
      leases,
      RELEASE,
      () => [],
      (row: { state: string; updated_at: number; queue: string }) => {
        this.wake.local([row.queue]);
        return transitioned(row);
      },
    );
  }

  async refuseAuthority(items: RefuseInput[]): Promise<Outcome<Transitioned>[]> {
    return refuseAuthority(this.pool, items);
  }

  async readmit(input: { jobId: string; tenant?: string; authority: unknown }): Promise<Job> {
    const job = await readmit(this.pool, input);
    this.wake.local([job.queue]);
    return job;
  }

  async decideApproval(input: ApprovalInput): Promise<Job> {
    const job = await decideApproval(this.pool, input);
    if (job.state === 'queued') this.wake.local([job.queue]);
    return job;
  }

  async confirmCancel(leases: Lease[]): Promise<Outcome<Transitioned>[]> {
    checkLeases('confirmCancel', leases);
    return ownerBatch(this.pool, leases, CONFIRM_CANCEL, () => [], transitioned);
  }

  async cancel(jobId: string, options: { tenant?: string } = {}): Promise<Job> {
    checkJobId('cancel.jobId', jobId);
    return withRetry(() =>
      transaction(this.pool, async (client) => {
        const [row] = await run<JobRow>(client, LOCK_JOB, [jobId]);
        if (!row || (options.tenant !== undefined && row.tenant !== options.tenant))
          throw new JobNotFoundError(jobId);
        const from = row.state as JobState;
        if (isTerminal(from)) throw new JobStateConflictError(jobId, from, 'cancel');
        if (from === 'running') {
          // The owner learns it on its next heartbeat; the reaper cancels the job if the owner never answers.
          const [requested] = await run<JobRow>(client, REQUEST_CANCEL, [jobId]);
          return rowToJob(requested ?? row); // no row: already requested, nothing changes
        }
        assertTransition(from, 'cancelled', 'cancel_requested');
        const [moved] = await applyTransitions(client, [
          {
            job: row,
            to: 'cancelled',
            reason: 'cancel_requested',
            bumpFence: from === 'leased', // the holder of the lease must be stale from now on
            data: { from, to: 'cancelled', reason: 'cancel_requested' },
          },
        ]);
        return rowToJob(moved!);
      }),
    );
  }

  async block(options: { tasks: string[]; reason: BlockReason }): Promise<number> {
    const b = checkBlock('block', options);
    assertTransition('queued', 'blocked', 'blocked');
    if (!b.tasks || b.tasks.length === 0) return 0;
    const [row] = await withRetry(() => run<{ n: number }>(this.pool, BLOCK, [b.tasks, b.reason]));
    return row?.n ?? 0;
  }

  async unblock(options: { reason: BlockReason; tasks?: string[] }): Promise<number> {
    const b = checkBlock('unblock', options);
    assertTransition('blocked', 'queued', 'unblocked');
    const [row] = await withRetry(() =>
      run<{ n: number; queues: string[] | null }>(this.pool, UNBLOCK, [b.reason, b.tasks]),
    );
    this.wake.local(new Set(row?.queues ?? []));
    return row?.n ?? 0;
  }

  /** Batches of expired leases and of jobs past their deadline, each batch one transaction, until none are left. */
  async reap(): Promise<ReapResult> {
    const result: ReapResult = { requeued: 0, dead: 0, cancelled: 0, expired: 0 };
    const requeued = new Set<string>();
    while (await withRetry(() => transaction(this.pool, (client) => reapBatch(client, result, requeued)))) {
      // another full batch may be waiting
    }
    this.wake.local(requeued);
    return result;
  }

  // ── reads ──────────────────────────────────────────────────────────────────────────────────

  async get(jobId: string, options: { tenant?: string } = {}): Promise<Job | undefined> {
    checkJobId('get.jobId', jobId);
    const [row] = await run<JobRow>(this.pool, GET_JOB, [jobId]);
    if (!row || (options.tenant !== undefined && row.tenant !== options.tenant)) return undefined;
    return rowToJob(row);
  }

  async list(filter?: ListFilter, page?: ListPage): Promise<JobPage> {
    const f = normalizeList(filter, page);
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (clause: (param: string) => string, value: unknown) => {
      values.push(value);
      where.push(clause(`$${values.length}`));
    };
    if (f.tenant !== null) add((p) => `tenant = ${p}`, f.tenant);
    if (f.states !== null) add((p) => `state = ANY (${p}::text[])`, f.states);
    if (f.task !== null) add((p) => `task = ${p}`, f.task);
    if (f.queue !== null) add((p) => `queue = ${p}`, f.queue);
    if (f.correlationId !== null) add((p) => `correlation_id = ${p}`, f.correlationId);
    if (f.beforeId !== null) add((p) => `id < ${p}`, f.beforeId);
    values.push(f.limit + 1);
    const sql = `SELECT * FROM bulkhead.jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`;
    const rows = await run<JobRow>(this.pool, sql, values);
    const jobs = rows.slice(0, f.limit).map(rowToJob);
    const last = jobs[jobs.length - 1];
    return rows.length > f.limit && last ? { jobs, nextCursor: encodeCursor(last.id) } : { jobs };
  }

  // ── durable steps ──────────────────────────────────────────────────────────────────────────

  async putStep(input: PutStepInput): Promise<{ step: Step; created: boolean }> {
    checkLeases('putStep', [input]);
    const stepKey = checkStepKey('putStep.stepKey', input.stepKey);
    const result = toJson('putStep.result', input.result ?? null, LIMITS.maxStepResultBytes);
    const [row] = await withRetry(() =>
      run<StepRow & { owned: number; job_id: string | null }>(this.pool, PUT_STEP, [
        input.jobId,
        input.fence,
        stepKey,
        result,
      ]),
    );
    if (!row || row.owned === 0) {
      const current = await currentOf(this.pool, [input]);
      throw new StaleLeaseError(input.jobId, input.fence, current.get(input.jobId));
    }
    if (row.job_id !== null) return { step: rowToStep(row), created: true };
    // Committed before (or concurrently, by another statement): the first result stands.
    const [existing] = await run<StepRow>(this.pool, GET_STEP, [input.jobId, stepKey]);
    return { step: rowToStep(existing!), created: false };
  }

  async getStep(jobId: string, stepKey: string): Promise<Step | undefined> {
    checkJobId('getStep.jobId', jobId);
    const [row] = await run<StepRow>(this.pool, GET_STEP, [jobId, checkStepKey('getStep.stepKey', stepKey)]);
    return row ? rowToStep(row) : undefined;
  }

  async listSteps(jobId: string): Promise<Step[]> {
    checkJobId('listSteps.jobId', jobId);
    return (await run<StepRow>(this.pool, LIST_STEPS, [jobId])).map(rowToStep);
  }

  // ── workers ────────────────────────────────────────────────────────────────────────────────

  async registerWorker(info: WorkerInfo): Promise<WorkerRecord> {
    const w = checkWorkerInfo(info);
    const [row] = await run<WorkerRow>(this.pool, REGISTER_WORKER, [
      w.id,
      w.host,
      w.pid,
      w.version,
      JSON.stringify(w.labels),
      JSON.stringify(w.queues),
      classificationRank(w.clearance),
      w.concurrency,
      JSON.stringify(w.runtimes),
      w.meta === undefined ? null : JSON.stringify(w.meta),
    ]);
    return rowToWorker(row!);
  }

  async workerHeartbeat(workerId: string, state?: WorkerState): Promise<WorkerState> {
    checkName('workerHeartbeat.workerId', workerId);
    if (state !== undefined) checkWorkerState('workerHeartbeat.state', state);
    const [row] = await run<{ state: WorkerState }>(this.pool, WORKER_HEARTBEAT, [workerId, state ?? null]);
    return row ? row.state : 'lost';
  }

  async markLostWorkers(silentMs: number): Promise<string[]> {
    checkInt('markLostWorkers.silentMs', silentMs, 0, LIMITS.maxLeaseMs);
    const rows = await withRetry(() => run<{ id: string }>(this.pool, MARK_LOST_WORKERS, [silentMs]));
    return rows.map((row) => row.id);
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    return (await run<WorkerRow>(this.pool, LIST_WORKERS)).map(rowToWorker);
  }

  // ── outbox and wake-ups ────────────────────────────────────────────────────────────────────

  async appendEvent(event: {
    type: string;
    tenant: string;
    correlationId?: string;
    data: Record<string, unknown>;
  }): Promise<number> {
    const e = checkEventInput(event);
    const [row] = await withRetry(() =>
      run<{ seq: number }>(this.pool, APPEND_EVENT, [e.type, e.tenant, e.correlationId, e.dataJson]),
    );
    return Number(row!.seq);
  }

  async readEvents(afterSeq: number, limit: number): Promise<OutboxEvent[]> {
    checkInt('readEvents.afterSeq', afterSeq, 0, Number.MAX_SAFE_INTEGER);
    checkInt('readEvents.limit', limit, 1, LIMITS.maxBatch);
    return this.events.read(afterSeq, limit);
  }

  async outboxHead(): Promise<number> {
    const [row] = await run<{ head: number }>(
      this.pool,
      'SELECT greatest((SELECT coalesce(max(seq), 0) FROM bulkhead.events), pruned_through) AS head FROM bulkhead.outbox_state',
    );
    return Number(row?.head ?? 0);
  }

  async pruneEvents(throughSeq: number): Promise<{ deleted: number; prunedThrough: number }> {
    checkInt('pruneEvents.throughSeq', throughSeq, 0, Number.MAX_SAFE_INTEGER);
    return transaction(this.pool, async (client) => {
      const [state] = await run<{ pruned_through: number }>(
        client,
        'UPDATE bulkhead.outbox_state SET pruned_through = greatest(pruned_through, $1) RETURNING pruned_through',
        [throughSeq],
      );
      const deleted = await run(client, 'DELETE FROM bulkhead.events WHERE seq <= $1 RETURNING 1', [
        throughSeq,
      ]);
      return { deleted: deleted.length, prunedThrough: Number(state?.pruned_through ?? throughSeq) };
    });
  }

  async prunedThrough(): Promise<number> {
    const [row] = await run<{ pruned_through: number }>(
      this.pool,
      'SELECT pruned_through FROM bulkhead.outbox_state',
    );
    return Number(row?.pruned_through ?? 0);
  }

  readConsumer(name: string): Promise<ConsumerState> {
    return this.consumers.read(name);
  }

  advanceConsumer(name: string, from: number, to: number): Promise<boolean> {
    return this.consumers.advance(name, from, to);
  }

  recordConsumerFailure(name: string, error: string): Promise<ConsumerState> {
    return this.consumers.fail(name, error);
  }

  async takeTokens(input: TakeTokensInput): Promise<TakeTokensResult> {
    return takeTokens(this.pool, normalizeTakeTokens(input));
  }

  onWake(listener: (queue: string) => void): () => void {
    return this.wake.add(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.wake.close();
    await this.pool.end();
  }
}
