/**
 * The SQLite ledger's statements, one named query per operation, prepared once per connection.
 * Parameters are named (`@id`); every transition's UPDATE carries its expected from-state (and fence)
 * in the WHERE clause, so a write by anyone who lost the race changes zero rows.
 */
import type Database from 'better-sqlite3';

const SQL = {
  /** The job, or nothing. */
  getJob: 'SELECT * FROM jobs WHERE id = ?',
  /** State, fence and lease expiry: what a stale-lease error reports. */
  leaseState: 'SELECT state, fence, lease_expires_at FROM jobs WHERE id = ?',
  /** The job with this tenant's idempotency key, if any. */
  byIdempotencyKey: 'SELECT * FROM jobs WHERE tenant = ? AND idempotency_key = ?',

  /** Admission: the insert is the `submitted -> queued | awaiting_approval` transition. */
  insertJob: `INSERT INTO jobs (id, kind, tenant, task, task_version, queue, state, reason, input, attempt, max_attempts,
        idempotency_key, request_digest, correlation_id, parent_id, priority, run_at, deadline, classification,
        lease_ms, backoff_base_ms, backoff_max_ms, fence, cancel_requested, authority, created_at, updated_at)
      VALUES (@id, @kind, @tenant, @task, @taskVersion, @queue, @state, @reason, @input, 0, @maxAttempts,
        @idempotencyKey, @requestDigest, @correlationId, @parentId, @priority, @runAt, @deadline, @classification,
        @leaseMs, @backoffBaseMs, @backoffMaxMs, 0, 0, @authority, @now, @now)`,

  /**
   * Outbox rows for a batch of jobs that just made the same transition: one per job, written from the
   * job rows themselves. @ids is a JSON array of job ids; @data a JSON object merged with the job's
   * attempt and fence.
   */
  insertEventsFor: `INSERT INTO events (type, tenant, job_id, correlation_id, data, at)
      SELECT @type, tenant, id, correlation_id, json_patch(@data, json_object('attempt', attempt, 'fence', fence)), @now
      FROM jobs WHERE id IN (SELECT value FROM json_each(@ids))`,

  /** Outbox: one row per transition, in the transition's transaction. */
  insertEvent: `INSERT INTO events (type, tenant, job_id, correlation_id, data, at)
      VALUES (?, ?, ?, ?, ?, ?)`,

  /**
   * `leased -> running` for a batch, only by the current, unexpired owner. @leases is a JSON array of
   * [jobId, fence]; rows that do not match are simply not returned (the caller reports them stale).
   */
  start: `UPDATE jobs SET state = 'running', reason = 'started', updated_at = @now
      FROM (SELECT value ->> 0 AS jid, value ->> 1 AS f FROM json_each(@leases)) AS l
      WHERE jobs.id = l.jid AND jobs.fence = l.f AND jobs.state = 'leased' AND jobs.lease_expires_at > @now
      RETURNING jobs.id, jobs.state, jobs.updated_at`,

  /** Extend a live lease; the reply carries a pending cancel. */
  heartbeat: `UPDATE jobs SET lease_expires_at = @now + lease_length_ms, progress = coalesce(@progress, progress),
        updated_at = @now
      WHERE id = @jobId AND state IN ('leased', 'running') AND fence = @fence AND lease_expires_at > @now
      RETURNING lease_expires_at, cancel_requested`,

  /** `running -> succeeded` for a batch; @items is a JSON array of [jobId, fence, output JSON text or null]. */
  complete: `UPDATE jobs SET state = 'succeeded', reason = 'completed', output = l.out, lease_expires_at = NULL,
        updated_at = @now
      FROM (SELECT value ->> 0 AS jid, value ->> 1 AS f, value ->> 2 AS out FROM json_each(@items)) AS l
      WHERE jobs.id = l.jid AND jobs.fence = l.f AND jobs.state = 'running' AND jobs.lease_expires_at > @now
      RETURNING jobs.id, jobs.state, jobs.updated_at`,

  /** The row a failure decides on, if the caller still owns it. */
  ownedRunning: `SELECT * FROM jobs
      WHERE id = @jobId AND state = 'running' AND fence = @fence AND lease_expires_at > @now`,

  /** `running -> failed -> queued` with the retry's run time. */
  failToQueued: `UPDATE jobs SET state = 'queued', reason = 'retry_scheduled', error_code = @code,
        error_message = @message, run_at = @runAt, worker_id = NULL, lease_expires_at = NULL, updated_at = @now
      WHERE id = @jobId AND state = 'running' AND fence = @fence`,

  /** `running -> failed -> dead`, or a lease that ran out of attempts: `-> dead`. */
  toDead: `UPDATE jobs SET state = 'dead', reason = @reason, error_code = @code, error_message = @message,
        lease_expires_at = NULL, updated_at = @now
      WHERE id = @jobId AND state = @from AND fence = @fence`,

  /** `leased -> queued`: the attempt was never started, so it is given back. */
  release: `UPDATE jobs SET state = 'queued', reason = 'released', attempt = attempt - 1, worker_id = NULL,
        lease_expires_at = NULL, updated_at = @now
      WHERE id = @jobId AND state = 'leased' AND fence = @fence AND lease_expires_at > @now
      RETURNING *`,

  /**
   * `leased|running -> blocked` (invalid_authority): the owner refuses to run the attempt. The attempt
   * is given back, the lease ends, the error says why.
   */
  refuseAuthority: `UPDATE jobs SET state = 'blocked', reason = 'invalid_authority', attempt = attempt - 1,
        worker_id = NULL, lease_expires_at = NULL, error_code = 'invalid_authority', error_message = @message,
        updated_at = @now
      WHERE id = @jobId AND state IN ('leased', 'running') AND fence = @fence AND lease_expires_at > @now
      RETURNING *`,
  /** A decision on a job awaiting approval: its new state, authority record and deadline. */
  decideApproval: `UPDATE jobs SET state = @to, reason = @reason, authority = @authority, deadline = @deadline,
        updated_at = @now
      WHERE id = @jobId AND state = 'awaiting_approval'
      RETURNING *`,
  /** `blocked (invalid_authority) -> queued` with a new authority record. */
  readmit: `UPDATE jobs SET state = 'queued', reason = 'readmitted', authority = @authority, error_code = NULL,
        error_message = NULL, updated_at = @now
      WHERE id = @jobId AND state = 'blocked' AND reason = 'invalid_authority'
      RETURNING *`,

  /** `leased|running -> cancelled` once the owner has stopped. */
  confirmCancel: `UPDATE jobs SET state = 'cancelled', reason = 'cancel_requested', lease_expires_at = NULL,
        updated_at = @now
      WHERE id = @jobId AND state IN ('leased', 'running') AND fence = @fence AND cancel_requested = 1
      RETURNING *`,

  /** Cancel at once (not running): the fence moves on so a holder of a `leased` lease is stale. */
  cancelNow: `UPDATE jobs SET state = 'cancelled', reason = 'cancel_requested', cancel_requested = 1,
        fence = CASE WHEN state = 'leased' THEN fence + 1 ELSE fence END, lease_expires_at = NULL, updated_at = @now
      WHERE id = @jobId AND state = @from
      RETURNING *`,

  /** Ask the owner of a running job to stop. */
  requestCancel: `UPDATE jobs SET cancel_requested = 1, updated_at = @now
      WHERE id = @jobId AND state = 'running' AND cancel_requested = 0
      RETURNING *`,

  /** `queued -> blocked` for the queued jobs of the tasks in @tasks (a JSON array). */
  block: `UPDATE jobs SET state = 'blocked', reason = @reason, updated_at = @now
      WHERE state = 'queued' AND task IN (SELECT value FROM json_each(@tasks))
      RETURNING id, queue`,
  /** `blocked -> queued` for jobs blocked for @reason (of the tasks in @tasks, when not NULL). */
  unblock: `UPDATE jobs SET state = 'queued', reason = 'unblocked', updated_at = @now
      WHERE state = 'blocked' AND reason = @reason
        AND (@tasks IS NULL OR task IN (SELECT value FROM json_each(@tasks)))
      RETURNING id, queue`,

  /** Expired leases, oldest first. */
  expiredLeases: `SELECT * FROM jobs INDEXED BY jobs_lease_expiry
      WHERE state IN ('leased', 'running') AND lease_expires_at <= @now
      ORDER BY lease_expires_at LIMIT @limit`,

  /** `leased|running -> queued` after the lease ran out. */
  expiredToQueued: `UPDATE jobs SET state = 'queued', reason = 'lease_expired', worker_id = NULL,
        lease_expires_at = NULL, run_at = @now, updated_at = @now
      WHERE id = @jobId AND state = @from AND fence = @fence`,

  /** `leased|running -> cancelled` after the lease of a job asked to cancel ran out. */
  expiredToCancelled: `UPDATE jobs SET state = 'cancelled', reason = 'cancel_requested',
        lease_expires_at = NULL, updated_at = @now
      WHERE id = @jobId AND state = @from AND fence = @fence`,

  /** Non-terminal jobs past their deadline. */
  pastDeadline: `SELECT * FROM jobs INDEXED BY jobs_deadline
      WHERE deadline IS NOT NULL AND deadline <= @now
        AND state IN ('awaiting_approval', 'queued', 'blocked', 'leased', 'running')
      LIMIT @limit`,

  /** `any non-terminal -> expired`; a held lease is fenced off. */
  expire: `UPDATE jobs SET state = 'expired', reason = 'deadline_passed', error_code = 'deadline_passed',
        error_message = 'the job deadline passed before it finished',
        fence = CASE WHEN state IN ('leased', 'running') THEN fence + 1 ELSE fence END,
        lease_expires_at = NULL, updated_at = @now
      WHERE id = @jobId AND state = @from`,

  getStep: 'SELECT * FROM steps WHERE job_id = ? AND step_key = ?',
  listSteps: 'SELECT * FROM steps WHERE job_id = ? ORDER BY created_at, step_key',
  /** A step is committed once: a second insert for the same key does nothing. */
  insertStep: `INSERT INTO steps (job_id, step_key, result, fence, attempt, created_at)
      VALUES (@jobId, @stepKey, @result, @fence, @attempt, @now)
      ON CONFLICT (job_id, step_key) DO NOTHING`,

  upsertWorker: `INSERT INTO workers (id, host, pid, version, labels, queues, clearance, concurrency, runtimes,
        meta, state, started_at, last_seen_at)
      VALUES (@id, @host, @pid, @version, @labels, @queues, @clearance, @concurrency, @runtimes, @meta, 'active',
        @now, @now)
      ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, version = excluded.version,
        labels = excluded.labels, queues = excluded.queues, clearance = excluded.clearance,
        concurrency = excluded.concurrency, runtimes = excluded.runtimes, meta = excluded.meta, state = 'active',
        started_at = excluded.started_at, last_seen_at = excluded.last_seen_at
      RETURNING *`,
  workerHeartbeat: `UPDATE workers SET last_seen_at = @now, state = coalesce(@state, state)
      WHERE id = @id AND state <> 'lost'
      RETURNING state`,
  /** Workers silent since @cutoff: marked lost. */
  markLost: `UPDATE workers SET state = 'lost'
      WHERE state IN ('active', 'draining') AND last_seen_at < @cutoff
      RETURNING id`,
  /** A lost worker's leases run out now, so the reaper takes them. */
  expireWorkerLeases: `UPDATE jobs SET lease_expires_at = @now
      WHERE state IN ('leased', 'running') AND lease_expires_at > @now AND worker_id = @workerId`,
  listWorkers: 'SELECT * FROM workers ORDER BY started_at, id',

  readEvents: 'SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?',

  getConsumer: 'SELECT * FROM consumers WHERE name = ?',
  /** Move a cursor only from where the caller saw it. */
  advanceConsumer: `INSERT INTO consumers (name, cursor, failures, last_error, updated_at)
      SELECT @name, @to, 0, NULL, @now WHERE @from = 0
      ON CONFLICT (name) DO NOTHING`,
  moveConsumer: `UPDATE consumers SET cursor = @to, failures = 0, last_error = NULL, updated_at = @now
      WHERE name = @name AND cursor = @from`,
  consumerFailure: `INSERT INTO consumers (name, cursor, failures, last_error, updated_at)
      VALUES (@name, 0, 1, @error, @now)
      ON CONFLICT (name) DO UPDATE SET failures = failures + 1, last_error = excluded.last_error,
        updated_at = excluded.updated_at`,
} as const;

export type SqliteQueries = { readonly [K in keyof typeof SQL]: Database.Statement };

export function prepareQueries(db: Database.Database): SqliteQueries {
  return Object.fromEntries(
    Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
  ) as SqliteQueries;
}
