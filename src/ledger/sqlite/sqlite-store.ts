/**
 * The SQLite ledger (better-sqlite3, WAL): the embedded default. One connection per process; several
 * processes may share a file (writers serialise on SQLite's lock, `BEGIN IMMEDIATE` everywhere, a
 * busy timeout). The store's clock is this host's clock. Wake-ups reach listeners in this process;
 * other processes poll.
 */
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import {
  afterFailure,
  afterLeaseExpiry,
  assertTransition,
  type BlockReason,
  type JobState,
  TERMINAL_STATES as TERMINAL,
} from '../../lifecycle/lifecycle.js';
import {
  IdempotencyConflictError,
  JobNotFoundError,
  JobStateConflictError,
  StaleLeaseError,
  StoreUnavailableError,
} from '../errors.js';
import { newJobId } from '../ids.js';
import { normalizeRunningLimits, normalizeSubmitQuota, normalizeTakeTokens } from '../quotas.js';
import {
  admittedJob,
  type ConsumerRow,
  type EventRow,
  type JobRow,
  rowToConsumer,
  rowToEvent,
  rowToJob,
  rowToStep,
  rowToWorker,
  type StepRow,
  type WorkerRow,
} from '../rows.js';
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
  APPROVAL_REASON,
  assertDecidable,
  backoffDelay,
  checkApproval,
  checkAttemptContext,
  checkBlock,
  checkErrorInput,
  checkEventInput,
  checkInt,
  checkJobId,
  checkLeases,
  checkName,
  checkReadmit,
  checkRefusals,
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
import { SqliteClaimer } from './sqlite-claim.js';
import { SqliteConfigs } from './sqlite-configs.js';
import { migrateSqlite } from './sqlite-migrate.js';
import { prepareQueries, type SqliteQueries } from './sqlite-queries.js';
import { SqliteQuotas } from './sqlite-quotas.js';
import { SqliteRegistry } from './sqlite-registry.js';

// The transitions this adapter writes with fixed from/to pairs, checked once against the lifecycle.
assertTransition('queued', 'leased', 'claimed');
assertTransition('leased', 'running', 'started');
assertTransition('running', 'succeeded', 'completed');
assertTransition('running', 'failed', 'attempt_failed');
assertTransition('leased', 'queued', 'released');

const REAP_BATCH = 1000;

export class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  readonly registry: SqliteRegistry;
  readonly configs: SqliteConfigs;
  private readonly q: SqliteQueries;
  private readonly claimer: SqliteClaimer;
  private readonly quotas: SqliteQuotas;
  private readonly wake = new EventEmitter();
  private readonly listCache = new Map<string, Database.Statement>();
  private closed = false;
  private readonly pending: {
    fn: () => unknown;
    resolve: (value: unknown) => void;
    reject: (error: unknown) => void;
  }[] = [];
  private flushScheduled = false;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    this.q = prepareQueries(db);
    this.claimer = new SqliteClaimer(db);
    this.quotas = new SqliteQuotas(db);
    this.registry = new SqliteRegistry(db, (fn) => this.write(fn));
    this.configs = new SqliteConfigs(db, (fn) => this.write(fn));
    this.wake.setMaxListeners(0);
  }

  static async open(path: string, options: OpenStoreOptions = {}): Promise<SqliteStore> {
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (err) {
      throw new StoreUnavailableError(`cannot open SQLite ledger at ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('busy_timeout = 10000');
      db.pragma('foreign_keys = ON');
      migrateSqlite(db, path);
      return new SqliteStore(db, path);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  async now(): Promise<number> {
    return Date.now();
  }

  // ── admission ──────────────────────────────────────────────────────────────────────────────

  async submit(input: SubmitInput): Promise<SubmitResult> {
    const item = normalizeSubmit(input);
    const [result] = await this.admit([item], [normalizeSubmitQuota(input, 'submit')]);
    return result as SubmitResult;
  }

  async submitMany(inputs: SubmitInput[]): Promise<SubmitResult[]> {
    const items = normalizeSubmitMany(inputs);
    return this.admit(
      items,
      inputs.map((input, i) => normalizeSubmitQuota(input, `submitMany[${i}]`)),
    );
  }

  /** `maxQueued[i]` is the pending-jobs limit of `items[i]` (null: none). */
  private async admit(items: NormalizedSubmit[], maxQueued: (number | null)[]): Promise<SubmitResult[]> {
    const queues = new Set<string>();
    const results = await this.write(() => {
      const now = Date.now();
      const pending = this.quotas.pendingTally();
      return items.map((item, i): SubmitResult => {
        if (item.idempotencyKey !== null) {
          const existing = this.q.byIdempotencyKey.get(item.tenant, item.idempotencyKey) as
            | JobRow
            | undefined;
          if (existing) {
            if (existing.request_digest !== item.requestDigest) {
              throw new IdempotencyConflictError(item.idempotencyKey, existing.id);
            }
            return { job: rowToJob(existing), created: false };
          }
        }
        pending.admit(item.tenant, maxQueued[i] ?? null);
        const job = admittedJob(item, item.id ?? newJobId(now), now);
        this.q.insertJob.run({
          id: job.id,
          kind: job.kind,
          tenant: job.tenant,
          task: job.task,
          taskVersion: job.taskVersion,
          queue: job.queue,
          state: job.state,
          reason: job.reason,
          input: item.inputJson,
          maxAttempts: job.maxAttempts,
          idempotencyKey: item.idempotencyKey,
          requestDigest: item.requestDigest,
          correlationId: job.correlationId,
          parentId: item.parentId,
          priority: job.priority,
          runAt: job.runAt,
          deadline: item.deadline,
          classification: classificationRank(job.classification),
          leaseMs: job.leaseMs,
          backoffBaseMs: job.backoff.baseMs,
          backoffMaxMs: job.backoff.maxMs,
          authority: item.authorityJson,
          now,
        });
        const data: Record<string, unknown> = {
          from: 'submitted',
          to: job.state,
          reason: job.reason,
          task: job.task,
          queue: job.queue,
        };
        if (job.authority !== undefined) data.authority = job.authority;
        this.q.insertEvent.run(
          `job.${job.state}`,
          job.tenant,
          job.id,
          job.correlationId,
          JSON.stringify(data),
          now,
        );
        if (job.state === 'queued') queues.add(job.queue);
        return { job, created: true };
      });
    });
    this.emitWake(queues);
    return results;
  }

  // ── leases ─────────────────────────────────────────────────────────────────────────────────

  /** Queue by queue, in the order given, until the limit is filled; each queue picked fairly (sqlite-claim.ts). */
  async claim(options: ClaimOptions): Promise<Job[]> {
    const c = normalizeClaim(options);
    const limits = normalizeRunningLimits(options);
    const tasks = c.tasks === null ? null : JSON.stringify(c.tasks);
    const clearance = classificationRank(c.clearance);
    return this.write(() => {
      const now = Date.now();
      const claimed: JobRow[] = [];
      for (const queue of c.queues) {
        const want = c.limit - claimed.length;
        if (want <= 0) break;
        const rows = this.claimer.claimQueue({
          queue,
          now,
          clearance,
          tasks,
          want,
          limits,
          workerId: c.workerId,
          leaseMs: c.leaseMs,
          start: c.start !== null,
        });
        this.eventsFor(
          rows,
          'job.leased',
          { from: 'queued', to: 'leased', reason: 'claimed', workerId: c.workerId },
          now,
        );
        if (c.start !== null) {
          this.eventsFor(
            rows,
            'job.running',
            { from: 'leased', to: 'running', reason: 'started', ...c.start },
            now,
          );
        }
        claimed.push(...rows);
      }
      return claimed.map(rowToJob);
    });
  }

  async start(leases: Lease[], context: AttemptContext = {}): Promise<Outcome<Transitioned>[]> {
    checkLeases('start', leases);
    const ctx = checkAttemptContext(context);
    const batch = JSON.stringify(leases.map((l) => [l.jobId, l.fence]));
    return this.write(() => {
      const now = Date.now();
      const rows = this.q.start.all({ leases: batch, now }) as TransitionedRow[];
      this.eventsFor(rows, 'job.running', { from: 'leased', to: 'running', reason: 'started', ...ctx }, now);
      return this.outcomes(leases, rows, now);
    });
  }

  async heartbeat(items: HeartbeatInput[]): Promise<Outcome<HeartbeatResult>[]> {
    checkLeases('heartbeat', items);
    const progress = items.map((it, i) =>
      it.progress === undefined
        ? null
        : toJson(`heartbeat[${i}].progress`, it.progress, LIMITS.maxProgressBytes),
    );
    return this.write(() => {
      const now = Date.now();
      return items.map((it, i) => {
        const row = this.q.heartbeat.get({ jobId: it.jobId, fence: it.fence, now, progress: progress[i] }) as
          | { lease_expires_at: number; cancel_requested: number }
          | undefined;
        if (!row) return this.stale(it, now);
        return {
          jobId: it.jobId,
          ok: true,
          value: { leaseExpiresAt: row.lease_expires_at, cancelRequested: row.cancel_requested === 1 },
        };
      });
    });
  }

  async complete(items: CompleteInput[]): Promise<Outcome<Transitioned>[]> {
    checkLeases('complete', items);
    const batch = JSON.stringify(
      items.map((it, i) => [
        it.jobId,
        it.fence,
        it.output === undefined ? null : toJson(`complete[${i}].output`, it.output, LIMITS.maxOutputBytes),
      ]),
    );
    return this.write(() => {
      const now = Date.now();
      const rows = this.q.complete.all({ items: batch, now }) as TransitionedRow[];
      this.eventsFor(rows, 'job.succeeded', { from: 'running', to: 'succeeded', reason: 'completed' }, now);
      return this.outcomes(items, rows, now);
    });
  }

  async fail(items: FailInput[]): Promise<Outcome<FailResult>[]> {
    checkLeases('fail', items);
    const errors = items.map((it, i) => checkErrorInput(`fail[${i}].error`, it.error));
    const queues = new Set<string>();
    const outcomes = await this.write(() => {
      const now = Date.now();
      return items.map((it, i): Outcome<FailResult> => {
        const row = this.q.ownedRunning.get({ jobId: it.jobId, fence: it.fence, now }) as JobRow | undefined;
        if (!row) return this.stale(it, now);
        const error = errors[i] as { code: string; message: string };
        const facts = {
          attempt: row.attempt,
          maxAttempts: row.max_attempts,
          retryable: it.retryable !== false,
        };
        const next = afterFailure(facts);
        assertTransition('failed', next.to, next.reason, facts);
        this.event(
          row,
          'job.failed',
          {
            from: 'running',
            to: 'failed',
            reason: 'attempt_failed',
            attempt: row.attempt,
            fence: it.fence,
            error: error.code,
            message: error.message,
          },
          now,
        );
        if (next.to === 'queued') {
          const runAt =
            now + backoffDelay({ baseMs: row.backoff_base_ms, maxMs: row.backoff_max_ms }, row.attempt);
          this.q.failToQueued.run({ jobId: it.jobId, fence: it.fence, now, runAt, ...error });
          this.event(
            row,
            'job.queued',
            { from: 'failed', to: 'queued', reason: next.reason, attempt: row.attempt, runAt },
            now,
          );
          queues.add(row.queue);
          return { jobId: it.jobId, ok: true, value: { state: 'queued', runAt } };
        }
        this.q.toDead.run({
          jobId: it.jobId,
          fence: it.fence,
          from: 'running',
          reason: next.reason,
          now,
          ...error,
        });
        this.event(
          row,
          'job.dead',
          { from: 'failed', to: 'dead', reason: next.reason, attempt: row.attempt, error: error.code },
          now,
        );
        return { jobId: it.jobId, ok: true, value: { state: 'dead' } };
      });
    });
    this.emitWake(queues);
    return outcomes;
  }

  async release(leases: Lease[]): Promise<Outcome<Transitioned>[]> {
    checkLeases('release', leases);
    const queues = new Set<string>();
    const outcomes = await this.write(() => {
      const now = Date.now();
      return leases.map((l) => {
        const row = this.q.release.get({ jobId: l.jobId, fence: l.fence, now }) as JobRow | undefined;
        if (!row) return this.stale(l, now);
        this.event(
          row,
          'job.queued',
          { from: 'leased', to: 'queued', reason: 'released', attempt: row.attempt, fence: l.fence },
          now,
        );
        queues.add(row.queue);
        return { jobId: l.jobId, ok: true as const, value: transitioned(row) };
      });
    });
    this.emitWake(queues);
    return outcomes;
  }

  async refuseAuthority(items: RefuseInput[]): Promise<Outcome<Transitioned>[]> {
    checkRefusals('refuseAuthority', items);
    return this.write(() => {
      const now = Date.now();
      return items.map((it) => {
        const before = this.q.leaseState.get(it.jobId) as { state: JobState } | undefined;
        const row = this.q.refuseAuthority.get({
          jobId: it.jobId,
          fence: it.fence,
          message: it.message,
          now,
        }) as JobRow | undefined;
        if (!row || !before) return this.stale(it, now);
        assertTransition(before.state, 'blocked', 'authority_refused');
        this.event(
          row,
          'job.blocked',
          { from: before.state, to: 'blocked', reason: 'invalid_authority', fence: it.fence },
          now,
        );
        return { jobId: it.jobId, ok: true as const, value: transitioned(row) };
      });
    });
  }

  async readmit(input: { jobId: string; tenant?: string; authority: unknown }): Promise<Job> {
    const r = checkReadmit(input);
    assertTransition('blocked', 'queued', 'readmitted');
    const job = await this.write(() => {
      const now = Date.now();
      const row = this.q.getJob.get(r.jobId) as JobRow | undefined;
      if (!row || (r.tenant !== null && row.tenant !== r.tenant)) throw new JobNotFoundError(r.jobId);
      const updated = this.q.readmit.get({ jobId: r.jobId, authority: r.authorityJson, now }) as
        | JobRow
        | undefined;
      if (!updated) {
        throw new JobStateConflictError(
          r.jobId,
          `${row.state}${row.reason ? ` (${row.reason})` : ''}`,
          'readmit',
        );
      }
      this.event(
        updated,
        'job.queued',
        { from: 'blocked', to: 'queued', reason: 'readmitted', attempt: updated.attempt },
        now,
      );
      return rowToJob(updated);
    });
    this.emitWake(new Set([job.queue]));
    return job;
  }

  async decideApproval(input: ApprovalInput): Promise<Job> {
    const a = checkApproval(input);
    const reason = APPROVAL_REASON[a.to];
    if (a.to !== 'awaiting_approval') assertTransition('awaiting_approval', a.to, reason);
    const job = await this.write(() => {
      const now = Date.now();
      const row = this.q.getJob.get(a.jobId) as JobRow | undefined;
      assertDecidable(a, row);
      const updated = this.q.decideApproval.get({
        jobId: a.jobId,
        to: a.to,
        reason: a.to === 'awaiting_approval' ? row.reason : reason,
        authority: a.authorityJson,
        deadline: a.deadline,
        now,
      }) as JobRow;
      const data = JSON.parse(a.eventJson) as Record<string, unknown>;
      this.event(
        updated,
        a.to === 'awaiting_approval' ? 'job.approval_recorded' : `job.${a.to}`,
        a.to === 'awaiting_approval' ? data : { from: 'awaiting_approval', to: a.to, reason, ...data },
        now,
      );
      return rowToJob(updated);
    });
    if (job.state === 'queued') this.emitWake(new Set([job.queue]));
    return job;
  }

  async confirmCancel(leases: Lease[]): Promise<Outcome<Transitioned>[]> {
    checkLeases('confirmCancel', leases);
    return this.write(() => {
      const now = Date.now();
      return leases.map((l) => {
        const before = this.q.leaseState.get(l.jobId) as { state: JobState } | undefined;
        const row = this.q.confirmCancel.get({ jobId: l.jobId, fence: l.fence, now }) as JobRow | undefined;
        if (!row || !before) return this.stale(l, now);
        assertTransition(before.state, 'cancelled', 'cancel_requested');
        this.event(
          row,
          'job.cancelled',
          { from: before.state, to: 'cancelled', reason: 'cancel_requested', fence: l.fence },
          now,
        );
        return { jobId: l.jobId, ok: true as const, value: transitioned(row) };
      });
    });
  }

  async cancel(jobId: string, options: { tenant?: string } = {}): Promise<Job> {
    checkJobId('cancel.jobId', jobId);
    return this.write(() => {
      const now = Date.now();
      const row = this.q.getJob.get(jobId) as JobRow | undefined;
      if (!row || (options.tenant !== undefined && row.tenant !== options.tenant))
        throw new JobNotFoundError(jobId);
      const from = row.state as JobState;
      if (TERMINAL.has(from)) throw new JobStateConflictError(jobId, from, 'cancel');
      if (from === 'running') {
        const updated = this.q.requestCancel.get({ jobId, now }) as JobRow | undefined;
        if (!updated) return rowToJob(row); // already requested
        this.event(
          updated,
          'job.cancel_requested',
          { state: 'running', fence: updated.fence, workerId: updated.worker_id },
          now,
        );
        return rowToJob(updated);
      }
      assertTransition(from, 'cancelled', 'cancel_requested');
      const updated = this.q.cancelNow.get({ jobId, from, now }) as JobRow;
      this.event(updated, 'job.cancelled', { from, to: 'cancelled', reason: 'cancel_requested' }, now);
      return rowToJob(updated);
    });
  }

  async block(options: { tasks: string[]; reason: BlockReason }): Promise<number> {
    const b = checkBlock('block', options);
    assertTransition('queued', 'blocked', 'blocked');
    if (!b.tasks || b.tasks.length === 0) return 0;
    return this.write(() => {
      const now = Date.now();
      const rows = this.q.block.all({ reason: b.reason, tasks: JSON.stringify(b.tasks), now }) as {
        id: string;
      }[];
      this.eventsFor(rows, 'job.blocked', { from: 'queued', to: 'blocked', reason: b.reason }, now);
      return rows.length;
    });
  }

  async unblock(options: { reason: BlockReason; tasks?: string[] }): Promise<number> {
    const b = checkBlock('unblock', options);
    assertTransition('blocked', 'queued', 'unblocked');
    const queues = new Set<string>();
    const n = await this.write(() => {
      const now = Date.now();
      const rows = this.q.unblock.all({
        reason: b.reason,
        tasks: b.tasks === null ? null : JSON.stringify(b.tasks),
        now,
      }) as { id: string; queue: string }[];
      this.eventsFor(
        rows,
        'job.queued',
        { from: 'blocked', to: 'queued', reason: 'unblocked', was: b.reason },
        now,
      );
      for (const r of rows) queues.add(r.queue);
      return rows.length;
    });
    this.emitWake(queues);
    return n;
  }

  async reap(): Promise<ReapResult> {
    const result: ReapResult = { requeued: 0, dead: 0, cancelled: 0, expired: 0 };
    const queues = new Set<string>();
    for (;;) {
      const n = await this.write(() => {
        const now = Date.now();
        const rows = this.q.expiredLeases.all({ now, limit: REAP_BATCH }) as JobRow[];
        for (const row of rows) {
          const from = row.state as JobState;
          const base = { from, attempt: row.attempt, fence: row.fence, workerId: row.worker_id };
          if (row.cancel_requested === 1) {
            assertTransition(from, 'cancelled', 'cancel_requested');
            this.q.expiredToCancelled.run({ jobId: row.id, from, fence: row.fence, now });
            this.event(row, 'job.cancelled', { ...base, to: 'cancelled', reason: 'cancel_requested' }, now);
            result.cancelled++;
            continue;
          }
          const facts = { attempt: row.attempt, maxAttempts: row.max_attempts };
          const next = afterLeaseExpiry(facts);
          assertTransition(from, next.to, next.reason, facts);
          if (next.to === 'queued') {
            this.q.expiredToQueued.run({ jobId: row.id, from, fence: row.fence, now });
            queues.add(row.queue);
            result.requeued++;
          } else {
            this.q.toDead.run({
              jobId: row.id,
              from,
              fence: row.fence,
              reason: next.reason,
              code: 'lease_expired',
              message: `the lease ran out on attempt ${row.attempt} of ${row.max_attempts}`,
              now,
            });
            result.dead++;
          }
          this.event(row, `job.${next.to}`, { ...base, to: next.to, reason: next.reason }, now);
        }
        const late = this.q.pastDeadline.all({ now, limit: REAP_BATCH }) as JobRow[];
        for (const row of late) {
          const from = row.state as JobState;
          assertTransition(from, 'expired', 'deadline_passed');
          this.q.expire.run({ jobId: row.id, from, now });
          this.event(
            row,
            'job.expired',
            { from, to: 'expired', reason: 'deadline_passed', attempt: row.attempt, workerId: row.worker_id },
            now,
          );
          result.expired++;
        }
        return rows.length + late.length;
      });
      if (n < REAP_BATCH) break;
    }
    this.emitWake(queues);
    return result;
  }

  // ── reads ──────────────────────────────────────────────────────────────────────────────────

  async get(jobId: string, options: { tenant?: string } = {}): Promise<Job | undefined> {
    checkJobId('get.jobId', jobId);
    const row = this.q.getJob.get(jobId) as JobRow | undefined;
    if (!row || (options.tenant !== undefined && row.tenant !== options.tenant)) return undefined;
    return rowToJob(row);
  }

  async list(filter?: ListFilter, page?: ListPage): Promise<JobPage> {
    const f = normalizeList(filter, page);
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, ...values: unknown[]) => {
      where.push(sql);
      params.push(...values);
    };
    if (f.tenant !== null) add('tenant = ?', f.tenant);
    if (f.states !== null) add(`state IN (${f.states.map(() => '?').join(', ')})`, ...f.states);
    if (f.task !== null) add('task = ?', f.task);
    if (f.queue !== null) add('queue = ?', f.queue);
    if (f.correlationId !== null) add('correlation_id = ?', f.correlationId);
    if (f.beforeId !== null) add('id < ?', f.beforeId);
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    let stmt = this.listCache.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.listCache.set(sql, stmt);
    }
    const rows = stmt.all(...params, f.limit + 1) as JobRow[];
    const more = rows.length > f.limit;
    const jobs = rows.slice(0, f.limit).map(rowToJob);
    const last = jobs[jobs.length - 1];
    return more && last ? { jobs, nextCursor: encodeCursor(last.id) } : { jobs };
  }

  // ── durable steps ──────────────────────────────────────────────────────────────────────────

  async putStep(input: PutStepInput): Promise<{ step: Step; created: boolean }> {
    checkLeases('putStep', [input]);
    const stepKey = checkStepKey('putStep.stepKey', input.stepKey);
    const result = toJson('putStep.result', input.result ?? null, LIMITS.maxStepResultBytes);
    return this.write(() => {
      const now = Date.now();
      const owned = this.q.ownedRunning.get({ jobId: input.jobId, fence: input.fence, now }) as
        | JobRow
        | undefined;
      if (!owned) {
        const outcome = this.stale(input, now);
        throw outcome.error;
      }
      const info = this.q.insertStep.run({
        jobId: input.jobId,
        stepKey,
        result,
        fence: input.fence,
        attempt: owned.attempt,
        now,
      });
      const step = rowToStep(this.q.getStep.get(input.jobId, stepKey) as StepRow);
      if (info.changes === 0) return { step, created: false };
      this.event(owned, 'step.committed', { stepKey, attempt: owned.attempt, fence: input.fence }, now);
      return { step, created: true };
    });
  }

  async getStep(jobId: string, stepKey: string): Promise<Step | undefined> {
    checkJobId('getStep.jobId', jobId);
    const row = this.q.getStep.get(jobId, checkStepKey('getStep.stepKey', stepKey)) as StepRow | undefined;
    return row ? rowToStep(row) : undefined;
  }

  async listSteps(jobId: string): Promise<Step[]> {
    checkJobId('listSteps.jobId', jobId);
    return (this.q.listSteps.all(jobId) as StepRow[]).map(rowToStep);
  }

  // ── workers ────────────────────────────────────────────────────────────────────────────────

  async registerWorker(info: WorkerInfo): Promise<WorkerRecord> {
    const w = checkWorkerInfo(info);
    const row = this.q.upsertWorker.get({
      ...w,
      labels: JSON.stringify(w.labels),
      queues: JSON.stringify(w.queues),
      runtimes: JSON.stringify(w.runtimes),
      clearance: classificationRank(w.clearance),
      meta: w.meta === undefined ? null : JSON.stringify(w.meta),
      now: Date.now(),
    }) as WorkerRow;
    return rowToWorker(row);
  }

  async workerHeartbeat(workerId: string, state?: WorkerState): Promise<WorkerState> {
    checkName('workerHeartbeat.workerId', workerId);
    if (state !== undefined) checkWorkerState('workerHeartbeat.state', state);
    const row = this.q.workerHeartbeat.get({ id: workerId, state: state ?? null, now: Date.now() }) as
      | { state: WorkerState }
      | undefined;
    return row ? row.state : 'lost';
  }

  async markLostWorkers(silentMs: number): Promise<string[]> {
    checkInt('markLostWorkers.silentMs', silentMs, 0, LIMITS.maxLeaseMs);
    return this.write(() => {
      const now = Date.now();
      const ids = (this.q.markLost.all({ cutoff: now - silentMs }) as { id: string }[]).map((r) => r.id);
      for (const workerId of ids) this.q.expireWorkerLeases.run({ workerId, now });
      return ids;
    });
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    return (this.q.listWorkers.all() as WorkerRow[]).map(rowToWorker);
  }

  // ── outbox ─────────────────────────────────────────────────────────────────────────────────

  async appendEvent(event: {
    type: string;
    tenant: string;
    correlationId?: string;
    data: Record<string, unknown>;
  }): Promise<number> {
    const e = checkEventInput(event);
    return this.write(() =>
      Number(
        this.q.insertEvent.run(e.type, e.tenant, null, e.correlationId, e.dataJson, Date.now())
          .lastInsertRowid,
      ),
    );
  }

  async readEvents(afterSeq: number, limit: number): Promise<OutboxEvent[]> {
    checkInt('readEvents.afterSeq', afterSeq, 0, Number.MAX_SAFE_INTEGER);
    checkInt('readEvents.limit', limit, 1, LIMITS.maxBatch);
    return (this.q.readEvents.all(afterSeq, limit) as EventRow[]).map(rowToEvent);
  }

  async outboxHead(): Promise<number> {
    const row = this.db
      .prepare(
        'SELECT max(coalesce((SELECT max(seq) FROM events), 0), pruned_through) AS head FROM outbox_state',
      )
      .get() as { head: number };
    return row.head;
  }

  async pruneEvents(throughSeq: number): Promise<{ deleted: number; prunedThrough: number }> {
    checkInt('pruneEvents.throughSeq', throughSeq, 0, Number.MAX_SAFE_INTEGER);
    return this.write(() => {
      const deleted = this.db.prepare('DELETE FROM events WHERE seq <= ?').run(throughSeq).changes;
      this.db.prepare('UPDATE outbox_state SET pruned_through = max(pruned_through, ?)').run(throughSeq);
      return { deleted, prunedThrough: this.prunedThroughNow() };
    });
  }

  async prunedThrough(): Promise<number> {
    return this.prunedThroughNow();
  }

  private prunedThroughNow(): number {
    return (this.db.prepare('SELECT pruned_through FROM outbox_state').get() as { pruned_through: number })
      .pruned_through;
  }

  async readConsumer(name: string): Promise<ConsumerState> {
    checkName('consumer.name', name);
    return rowToConsumer(name, this.q.getConsumer.get(name) as ConsumerRow | undefined);
  }

  async advanceConsumer(name: string, from: number, to: number): Promise<boolean> {
    checkName('consumer.name', name);
    checkInt('consumer.from', from, 0, Number.MAX_SAFE_INTEGER);
    checkInt('consumer.to', to, from, Number.MAX_SAFE_INTEGER);
    return this.write(() => {
      const now = Date.now();
      const moved = this.q.moveConsumer.run({ name, from, to, now }).changes === 1;
      return moved || this.q.advanceConsumer.run({ name, from, to, now }).changes === 1;
    });
  }

  async recordConsumerFailure(name: string, error: string): Promise<ConsumerState> {
    checkName('consumer.name', name);
    return this.write(() => {
      this.q.consumerFailure.run({ name, error: String(error).slice(0, 2000), now: Date.now() });
      return rowToConsumer(name, this.q.getConsumer.get(name) as ConsumerRow);
    });
  }

  async takeTokens(input: TakeTokensInput): Promise<TakeTokensResult> {
    const take = normalizeTakeTokens(input);
    return this.write(() => this.quotas.takeTokens(take, Date.now()));
  }

  onWake(listener: (queue: string) => void): () => void {
    this.wake.on('wake', listener);
    return () => this.wake.off('wake', listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.wake.removeAllListeners();
    this.db.close();
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────

  /**
   * Group commit: every write is queued and, on the next turn of the event loop, all queued writes
   * run in one IMMEDIATE transaction (the write lock first: no deadlock between processes), each in
   * its own savepoint so one write's error undoes only that write. Each promise settles after the
   * COMMIT, so a resolved write is durable; concurrent callers share one fsync.
   */
  private write<T>(fn: () => T): Promise<T> {
    if (this.closed)
      return Promise.reject(new StoreUnavailableError(`the SQLite ledger at ${this.path} is closed`));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    const results: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      if (this.closed) throw new StoreUnavailableError(`the SQLite ledger at ${this.path} is closed`);
      this.db
        .transaction(() => {
          for (const op of batch) {
            try {
              results.push({ ok: true, value: this.db.transaction(op.fn)() });
            } catch (error) {
              results.push({ ok: false, error });
            }
          }
        })
        .immediate();
    } catch (err) {
      const error =
        err instanceof StoreUnavailableError
          ? err
          : new StoreUnavailableError(
              `SQLite ledger at ${this.path}: commit failed: ${(err as Error).message}`,
              {
                cause: err,
              },
            );
      for (const op of batch) op.reject(error);
      return;
    }
    batch.forEach((op, i) => {
      const r = results[i];
      if (r?.ok) op.resolve(r.value);
      else op.reject(r?.error);
    });
  }

  private event(row: JobRow, type: string, data: Record<string, unknown>, now: number): void {
    this.q.insertEvent.run(type, row.tenant, row.id, row.correlation_id, JSON.stringify(data), now);
  }

  /** One outbox event per job in `rows` (all made the same transition), written by one statement. */
  private eventsFor(rows: { id: string }[], type: string, data: Record<string, unknown>, now: number): void {
    if (rows.length === 0) return;
    this.q.insertEventsFor.run({
      type,
      data: JSON.stringify(data),
      ids: JSON.stringify(rows.map((r) => r.id)),
      now,
    });
  }

  /** Per-item outcomes in input order: the rows a batch statement returned succeeded, the rest are stale. */
  private outcomes(items: Lease[], rows: TransitionedRow[], now: number): Outcome<Transitioned>[] {
    const done = new Map(rows.map((r) => [r.id, r]));
    return items.map((it) => {
      const row = done.get(it.jobId);
      return row ? { jobId: it.jobId, ok: true as const, value: transitioned(row) } : this.stale(it, now);
    });
  }

  /** The outcome for a lease that no longer holds, saying what the store has instead. */
  private stale(lease: Lease, now: number): { jobId: string; ok: false; error: StaleLeaseError } {
    const cur = this.q.leaseState.get(lease.jobId) as
      | { state: string; fence: number; lease_expires_at: number | null }
      | undefined;
    const current = cur && {
      state: cur.state,
      fence: cur.fence,
      leaseExpired: cur.lease_expires_at !== null && cur.lease_expires_at <= now,
    };
    return { jobId: lease.jobId, ok: false, error: new StaleLeaseError(lease.jobId, lease.fence, current) };
  }

  private emitWake(queues: Set<string>): void {
    for (const queue of queues) this.wake.emit('wake', queue);
  }
}

interface TransitionedRow {
  id: string;
  state: string;
  updated_at: number;
}

function transitioned(row: { state: string; updated_at: number | string }): Transitioned {
  return { state: row.state as JobState, updatedAt: Number(row.updated_at) };
}
