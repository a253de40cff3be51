/**
 * Every statement the PostgreSQL adapter runs, one per operation, each commented with what it does.
 * Batches travel as arrays (`unnest`) so one statement handles a whole batch. Every transition
 * writes its outbox event in the same statement (a data-modifying CTE fed by the UPDATE's
 * RETURNING, so the transaction always holds its id before it draws an event `seq`). Event data
 * has the same keys as the SQLite adapter's.
 */
import { CLOCK_MS, NOW_MS, type Sql } from './postgres-db.js';

const EVENT_COLUMNS = 'bulkhead.events (type, tenant, job_id, correlation_id, data, at)';

/** Wakes every distinct queue of `rows` whose job is now queued (delivered when the transaction commits). */
const wake = (rows: string) =>
  `woken AS (
    SELECT pg_notify('bulkhead_jobs', q.queue) FROM (SELECT DISTINCT queue FROM ${rows} WHERE state = 'queued') q
  )`;

/**
 * submit: insert a batch of admitted jobs, one `job.<state>` event each, and wake their queues. A row
 * whose (tenant, idempotency key) already exists is skipped (ON CONFLICT waits for a concurrent
 * inserter to finish first); the caller looks those up. Returns the id and creation time of each
 * inserted row (the caller knows the rest).
 */
export const SUBMIT: Sql = {
  name: 'bulkhead_submit',
  text: `
WITH ins AS (
  INSERT INTO bulkhead.jobs (id, tenant, task, task_version, queue, state, reason, input, idempotency_key,
      request_digest, correlation_id, parent_id, priority, run_at, deadline, classification, lease_ms,
      backoff_base_ms, backoff_max_ms, max_attempts, authority, kind, created_at, updated_at)
  SELECT i.id, i.tenant, i.task, i.task_version, i.queue, i.state, i.reason, i.input::jsonb, i.idempotency_key,
         i.request_digest, coalesce(i.correlation_id, i.id), i.parent_id, i.priority, coalesce(i.run_at, ${NOW_MS}),
         i.deadline, i.classification, i.lease_ms, i.backoff_base_ms, i.backoff_max_ms, i.max_attempts,
         i.authority::jsonb, i.kind, ${NOW_MS}, ${NOW_MS}
    FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::integer[], $14::bigint[], $15::bigint[],
                $16::smallint[], $17::integer[], $18::integer[], $19::integer[], $20::integer[], $21::text[],
                $22::text[])
      AS i(id, tenant, task, task_version, queue, state, reason, input, idempotency_key, request_digest,
           correlation_id, parent_id, priority, run_at, deadline, classification, lease_ms, backoff_base_ms,
           backoff_max_ms, max_attempts, authority, kind)
  ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING *
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.' || state, tenant, id, correlation_id,
         jsonb_build_object('from', 'submitted', 'to', state, 'reason', reason, 'task', task, 'queue', queue)
           || CASE WHEN authority IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('authority', authority) END,
         created_at
    FROM ins ORDER BY id
),
${wake('ins')}
SELECT ins.id, ins.created_at, (SELECT count(*) FROM woken) AS woken FROM ins`,
};

/** The jobs holding these (tenant, idempotency key) pairs, to resolve submissions that hit a key. */
export const FIND_BY_KEYS: Sql = {
  name: 'bulkhead_find_by_keys',
  text: `
SELECT j.* FROM bulkhead.jobs j
  JOIN unnest($1::text[], $2::text[]) AS k(tenant, idempotency_key)
    ON j.tenant = k.tenant AND j.idempotency_key = k.idempotency_key
 WHERE j.idempotency_key IS NOT NULL`,
};

/** The rows of a batch as (id, fence); the caller sorts them by id, so batches lock rows in one order. */
const LEASES_INPUT = 'unnest($1::text[], $2::bigint[]) AS i(id, fence)';

/** Holds a current lease: the expected fence and an unexpired deadline, read at the moment of the check. */
const CURRENT_LEASE = `j.fence = i.fence AND j.lease_expires_at > ${CLOCK_MS}`;

/** Event data of an owner's transition: from, to, reason, with the job's attempt and fence. */
const leaseEvent = (from: string, to: string, reason: string) =>
  `jsonb_build_object('from', '${from}', 'to', '${to}', 'reason', '${reason}', 'attempt', m.attempt, 'fence', m.fence)`;

/** What an owner's transition hands back (its new state and time), plus what its event needs. */
const MOVED = 'j.id, j.state, j.updated_at, j.tenant, j.correlation_id, j.queue, j.attempt, j.fence';

/**
 * start: `leased -> running` for each current lease; one `job.running` event each, carrying the
 * attempt's context ($3: the config version it runs under, and whether on cached authority).
 */
export const START: Sql = {
  name: 'bulkhead_start',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs j SET state = 'running', reason = 'started', updated_at = ${NOW_MS}
    FROM ${LEASES_INPUT}
   WHERE j.id = i.id AND j.state = 'leased' AND ${CURRENT_LEASE}
  RETURNING ${MOVED}
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.running', m.tenant, m.id, m.correlation_id, ${leaseEvent('leased', 'running', 'started')} || $3::jsonb,
         m.updated_at
    FROM moved m ORDER BY m.id
)
SELECT id, state, updated_at FROM moved`,
};

/**
 * heartbeat: extend each current lease by the job's lease length from the server clock, and store
 * the progress when one is given. No transition, so no event.
 */
export const HEARTBEAT: Sql = {
  name: 'bulkhead_heartbeat',
  text: `
UPDATE bulkhead.jobs j
   SET lease_expires_at = ${NOW_MS} + j.lease_length_ms, progress = coalesce(i.progress::jsonb, j.progress),
       updated_at = ${NOW_MS}
  FROM unnest($1::text[], $2::bigint[], $3::text[]) AS i(id, fence, progress)
 WHERE j.id = i.id AND j.state IN ('leased', 'running') AND ${CURRENT_LEASE}
RETURNING j.id, j.lease_expires_at, j.cancel_requested`,
};

/** complete: `running -> succeeded` with the output; the lease ends, the worker id stays on record. */
export const COMPLETE: Sql = {
  name: 'bulkhead_complete',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs j
     SET state = 'succeeded', reason = 'completed', output = i.output::jsonb, lease_expires_at = NULL,
         updated_at = ${NOW_MS}
    FROM unnest($1::text[], $2::bigint[], $3::text[]) AS i(id, fence, output)
   WHERE j.id = i.id AND j.state = 'running' AND ${CURRENT_LEASE}
  RETURNING ${MOVED}
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.succeeded', m.tenant, m.id, m.correlation_id, ${leaseEvent('running', 'succeeded', 'completed')},
         m.updated_at
    FROM moved m ORDER BY m.id
)
SELECT id, state, updated_at FROM moved`,
};

/**
 * release: `leased -> queued` for work that never started; the attempt is given back, the worker id
 * and lease go, the run time is kept, the queue is woken.
 */
export const RELEASE: Sql = {
  name: 'bulkhead_release',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs j
     SET state = 'queued', reason = 'released', attempt = j.attempt - 1, worker_id = NULL, lease_expires_at = NULL,
         updated_at = ${NOW_MS}
    FROM ${LEASES_INPUT}
   WHERE j.id = i.id AND j.state = 'leased' AND ${CURRENT_LEASE}
  RETURNING ${MOVED}
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.queued', m.tenant, m.id, m.correlation_id, ${leaseEvent('leased', 'queued', 'released')}, m.updated_at
    FROM moved m ORDER BY m.id
),
${wake('moved')}
SELECT id, state, updated_at, queue, (SELECT count(*) FROM woken) AS woken FROM moved`,
};

/**
 * confirmCancel: `leased|running -> cancelled` once the owner saw the cancel request. The fence must
 * match; the lease may have run out (the owner stopped, as asked). The rows are locked first to
 * read the state each leaves.
 */
export const CONFIRM_CANCEL: Sql = {
  name: 'bulkhead_confirm_cancel',
  text: `
WITH owned AS (
  SELECT j.id, j.state FROM bulkhead.jobs j JOIN ${LEASES_INPUT} ON j.id = i.id
   WHERE j.state IN ('leased', 'running') AND j.cancel_requested AND j.fence = i.fence
   ORDER BY j.id
   FOR UPDATE OF j
),
moved AS (
  UPDATE bulkhead.jobs j
     SET state = 'cancelled', reason = 'cancel_requested', lease_expires_at = NULL, updated_at = ${NOW_MS}
    FROM owned o
   WHERE j.id = o.id
  RETURNING ${MOVED}, o.state AS from_state
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.cancelled', m.tenant, m.id, m.correlation_id,
         jsonb_build_object('from', m.from_state, 'to', 'cancelled', 'reason', 'cancel_requested', 'fence', m.fence),
         m.updated_at
    FROM moved m ORDER BY m.id
)
SELECT id, state, updated_at FROM moved`,
};

/** What the store holds now for jobs whose write was rejected, to say why in `StaleLeaseError`. */
export const CURRENT_OF: Sql = {
  name: 'bulkhead_current_of',
  text: `
SELECT id, state, fence, coalesce(lease_expires_at <= ${CLOCK_MS}, false) AS lease_expired
  FROM bulkhead.jobs WHERE id = ANY ($1::text[])`,
};

/** fail, step 1: lock the running jobs whose lease is current, with what the retry decision needs. */
export const LOCK_RUNNING: Sql = {
  name: 'bulkhead_lock_running',
  text: `
SELECT j.id, j.state, j.fence, j.attempt, j.max_attempts, j.backoff_base_ms, j.backoff_max_ms, j.worker_id,
       j.cancel_requested
  FROM bulkhead.jobs j JOIN ${LEASES_INPUT} ON j.id = i.id
 WHERE j.state = 'running' AND ${CURRENT_LEASE}
 ORDER BY j.id
   FOR UPDATE OF j`,
};

/** cancel, step 1: the job, locked. */
export const LOCK_JOB: Sql = {
  name: 'bulkhead_lock_job',
  text: 'SELECT * FROM bulkhead.jobs WHERE id = $1 FOR UPDATE',
};

const LOCKED_COLUMNS = 'id, state, fence, attempt, max_attempts, worker_id, cancel_requested';

/** reap, step 1: a batch of expired leases, oldest first, locked; rows another reaper holds are skipped. */
export const LOCK_EXPIRED_LEASES: Sql = {
  name: 'bulkhead_lock_expired_leases',
  text: `
SELECT ${LOCKED_COLUMNS} FROM bulkhead.jobs
 WHERE state IN ('leased', 'running') AND lease_expires_at <= ${NOW_MS}
 ORDER BY lease_expires_at
 LIMIT $1
   FOR UPDATE SKIP LOCKED`,
};

/** reap, step 2: a batch of unfinished jobs past their deadline, locked; held rows are skipped. */
export const LOCK_PAST_DEADLINE: Sql = {
  name: 'bulkhead_lock_past_deadline',
  text: `
SELECT ${LOCKED_COLUMNS} FROM bulkhead.jobs
 WHERE deadline <= ${NOW_MS} AND state IN ('awaiting_approval', 'queued', 'blocked', 'leased', 'running')
 ORDER BY deadline
 LIMIT $1
   FOR UPDATE SKIP LOCKED`,
};

/**
 * transition: apply transitions decided by `src/lifecycle` to rows this transaction has locked
 * (fail, cancel, reap). Per row: the target state and reason, a new run time (now + delay) or
 * none, whether the worker id goes and the fence moves, an error to record, an optional event
 * before the main one (`job.failed`), and the main event's data (plus the new run time if asked).
 * The lease always ends; a cancelled job keeps `cancel_requested` set. Queues of requeued jobs are
 * woken.
 */
export const TRANSITION: Sql = {
  name: 'bulkhead_transition',
  text: `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::boolean[], $7::boolean[],
                       $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::boolean[])
    AS i(id, from_state, to_state, reason, run_after_ms, clear_worker, bump_fence, error_code, error_message,
         pre_type, pre_data, event_data, event_run_at)
),
moved AS (
  UPDATE bulkhead.jobs j
     SET state = i.to_state, reason = i.reason,
         fence = CASE WHEN i.bump_fence THEN j.fence + 1 ELSE j.fence END,
         run_at = CASE WHEN i.run_after_ms IS NULL THEN j.run_at ELSE ${NOW_MS} + i.run_after_ms END,
         worker_id = CASE WHEN i.clear_worker THEN NULL ELSE j.worker_id END,
         lease_expires_at = NULL,
         cancel_requested = j.cancel_requested OR i.to_state = 'cancelled',
         error_code = coalesce(i.error_code, j.error_code),
         error_message = CASE WHEN i.error_code IS NULL THEN j.error_message ELSE i.error_message END,
         updated_at = ${NOW_MS}
    FROM input i
   WHERE j.id = i.id AND j.state = i.from_state
  RETURNING j.*, i.pre_type, i.pre_data, i.event_data, i.event_run_at
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT e.type, m.tenant, m.id, m.correlation_id, e.data, m.updated_at
    FROM moved m
   CROSS JOIN LATERAL (
     SELECT 1, m.pre_type, m.pre_data::jsonb WHERE m.pre_type IS NOT NULL
     UNION ALL
     SELECT 2, 'job.' || m.state,
            m.event_data::jsonb || CASE WHEN m.event_run_at THEN jsonb_build_object('runAt', m.run_at) ELSE '{}' END
   ) AS e(k, type, data)
   ORDER BY m.id, e.k
),
${wake('moved')}
SELECT moved.*, (SELECT count(*) FROM woken) AS woken FROM moved`,
};

/** cancel of a running job: record the request once (the owner learns it on its next heartbeat). */
export const REQUEST_CANCEL: Sql = {
  name: 'bulkhead_request_cancel',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs SET cancel_requested = true, updated_at = ${NOW_MS}
   WHERE id = $1 AND state = 'running' AND NOT cancel_requested
  RETURNING *
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.cancel_requested', m.tenant, m.id, m.correlation_id,
         jsonb_build_object('state', m.state, 'fence', m.fence, 'workerId', m.worker_id), m.updated_at
    FROM moved m
)
SELECT * FROM moved`,
};

export const GET_JOB: Sql = { name: 'bulkhead_get_job', text: 'SELECT * FROM bulkhead.jobs WHERE id = $1' };

/**
 * putStep: commit a step result once per (job, step key), only for the current owner of a running
 * job. The job row is share-locked for the statement so no transition can slip in between the
 * check and the insert. Returns one row: whether the lease was current, and the step if inserted.
 */
export const PUT_STEP: Sql = {
  name: 'bulkhead_put_step',
  text: `
WITH owner AS (
  SELECT id, tenant, correlation_id, attempt, fence FROM bulkhead.jobs
   WHERE id = $1 AND fence = $2 AND state = 'running' AND lease_expires_at > ${CLOCK_MS}
     FOR SHARE
),
ins AS (
  INSERT INTO bulkhead.steps (job_id, step_key, result, fence, attempt, created_at)
  SELECT o.id, $3, $4::jsonb, o.fence, o.attempt, ${NOW_MS} FROM owner o
  ON CONFLICT (job_id, step_key) DO NOTHING
  RETURNING *
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'step.committed', o.tenant, o.id, o.correlation_id,
         jsonb_build_object('stepKey', s.step_key, 'attempt', s.attempt, 'fence', s.fence), s.created_at
    FROM ins s JOIN owner o ON o.id = s.job_id
)
SELECT (SELECT count(*) FROM owner) AS owned, s.* FROM (SELECT 1) AS one LEFT JOIN ins s ON true`,
};

export const GET_STEP: Sql = {
  name: 'bulkhead_get_step',
  text: 'SELECT * FROM bulkhead.steps WHERE job_id = $1 AND step_key = $2',
};

export const LIST_STEPS: Sql = {
  name: 'bulkhead_list_steps',
  text: 'SELECT * FROM bulkhead.steps WHERE job_id = $1 ORDER BY created_at, step_key',
};

/** registerWorker: insert or replace the worker's record; it is active again from now. */
export const REGISTER_WORKER: Sql = {
  name: 'bulkhead_register_worker',
  text: `
INSERT INTO bulkhead.workers (id, host, pid, version, labels, queues, clearance, concurrency, runtimes, meta, state,
                              started_at, last_seen_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9::jsonb, $10::jsonb, 'active', ${NOW_MS}, ${NOW_MS})
ON CONFLICT (id) DO UPDATE
   SET host = excluded.host, pid = excluded.pid, version = excluded.version, labels = excluded.labels,
       queues = excluded.queues, clearance = excluded.clearance, concurrency = excluded.concurrency,
       runtimes = excluded.runtimes, meta = excluded.meta, state = 'active', started_at = excluded.started_at,
       last_seen_at = excluded.last_seen_at
RETURNING *`,
};

/** workerHeartbeat: record liveness and a new state, unless the worker is lost (it must re-register). */
export const WORKER_HEARTBEAT: Sql = {
  name: 'bulkhead_worker_heartbeat',
  text: `
UPDATE bulkhead.workers SET last_seen_at = ${NOW_MS}, state = coalesce($2::text, state)
 WHERE id = $1 AND state <> 'lost'
RETURNING state`,
};

/**
 * markLostWorkers: workers silent for longer than $1 ms become lost, and their leases end now so
 * the next reap returns their jobs.
 */
export const MARK_LOST_WORKERS: Sql = {
  name: 'bulkhead_mark_lost_workers',
  text: `
WITH lost AS (
  UPDATE bulkhead.workers SET state = 'lost'
   WHERE state IN ('active', 'draining') AND last_seen_at < ${NOW_MS} - $1::bigint
  RETURNING id
),
expired AS (
  UPDATE bulkhead.jobs SET lease_expires_at = ${NOW_MS}
   WHERE state IN ('leased', 'running') AND worker_id IN (SELECT id FROM lost) AND lease_expires_at > ${NOW_MS}
  RETURNING id
)
SELECT id, (SELECT count(*) FROM expired) AS leases_ended FROM lost ORDER BY id`,
};

export const LIST_WORKERS: Sql = {
  name: 'bulkhead_list_workers',
  text: 'SELECT * FROM bulkhead.workers ORDER BY started_at, id',
};

/**
 * readEvents: up to $2 visible events after $1, in seq order, with the highest proven horizon
 * (`upto`): $3, or any pending horizon ($4 seqs, $5 transaction ids) whose transaction id is now at
 * or below the oldest running transaction. Always one row at least (null event columns when there
 * are no events). The reader decides which of the events are final (see postgres-events.ts).
 */
export const READ_EVENTS: Sql = {
  name: 'bulkhead_read_events',
  text: `
WITH safe AS (
  SELECT greatest($3::bigint, coalesce(max(p.seq), 0)) AS upto
    FROM unnest($4::bigint[], $5::xid8[]) AS p(seq, xid)
   WHERE p.xid <= pg_snapshot_xmin(pg_current_snapshot())
)
SELECT s.upto, e.seq, e.type, e.tenant, e.job_id, e.correlation_id, e.data, e.at
  FROM safe s
  LEFT JOIN LATERAL (
    SELECT * FROM bulkhead.events WHERE seq > $1 ORDER BY seq LIMIT $2
  ) e ON true
 ORDER BY e.seq`,
};

/**
 * readEvents, to step over a gap: the newest visible seq, and (when it is past $1) a fresh
 * transaction id, taken after that seq was read. Every transaction that drew a seq up to it had
 * its id before, so a lower one: once no transaction below this id is running, every event up to
 * that seq is visible or never will be.
 */
export const EVENT_HORIZON: Sql = {
  name: 'bulkhead_event_horizon',
  text: `
SELECT s.max_seq, CASE WHEN s.max_seq > $1 THEN pg_current_xact_id() END AS xid
  FROM (SELECT coalesce(max(seq), 0) AS max_seq FROM bulkhead.events OFFSET 0) s`,
};

export const SERVER_NOW: Sql = { name: 'bulkhead_now', text: `SELECT ${CLOCK_MS} AS now` };

/** appendEvent: an outbox event that is not a job transition (admin mutation, config publish). */
export const APPEND_EVENT: Sql = {
  name: 'bulkhead_append_event',
  text: `INSERT INTO ${EVENT_COLUMNS} VALUES ($1, $2, NULL, $3, $4::jsonb, ${NOW_MS}) RETURNING seq`,
};

/** block: `queued -> blocked` ($2 the reason) for the queued jobs of the tasks in $1; one event each. */
export const BLOCK: Sql = {
  name: 'bulkhead_block',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs j SET state = 'blocked', reason = $2, updated_at = ${NOW_MS}
   WHERE j.state = 'queued' AND j.task = ANY ($1::text[])
  RETURNING j.id, j.tenant, j.correlation_id, j.attempt, j.fence, j.updated_at
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.blocked', m.tenant, m.id, m.correlation_id,
         jsonb_build_object('from', 'queued', 'to', 'blocked', 'reason', $2::text, 'attempt', m.attempt, 'fence', m.fence),
         m.updated_at
    FROM moved m ORDER BY m.id
)
SELECT count(*)::int AS n FROM moved`,
};

/** unblock: `blocked -> queued` for jobs blocked for $1 (of the tasks in $2 when not null); wakes their queues. */
export const UNBLOCK: Sql = {
  name: 'bulkhead_unblock',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs j SET state = 'queued', reason = 'unblocked', updated_at = ${NOW_MS}
   WHERE j.state = 'blocked' AND j.reason = $1 AND ($2::text[] IS NULL OR j.task = ANY ($2::text[]))
  RETURNING j.id, j.tenant, j.correlation_id, j.queue, j.state, j.attempt, j.fence, j.updated_at
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.queued', m.tenant, m.id, m.correlation_id,
         jsonb_build_object('from', 'blocked', 'to', 'queued', 'reason', 'unblocked', 'was', $1::text,
                            'attempt', m.attempt, 'fence', m.fence),
         m.updated_at
    FROM moved m ORDER BY m.id
),
${wake('moved')}
SELECT count(*)::int AS n, array_agg(DISTINCT queue) AS queues FROM moved`,
};
