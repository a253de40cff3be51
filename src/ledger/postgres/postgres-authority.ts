/**
 * Authority transitions of the PostgreSQL ledger: a worker refusing to run an attempt whose
 * authority record does not verify (`leased|running -> blocked`, reason `invalid_authority`), and an
 * admin readmitting such a job with a new record (`blocked -> queued`, reason `readmitted`), and
 * approvers deciding on a job awaiting approval. Each writes its outbox event in the same transaction.
 */
import type pg from 'pg';
import { assertTransition } from '../../lifecycle/lifecycle.js';
import { JobNotFoundError, JobStateConflictError } from '../errors.js';
import { type JobRow, rowToJob } from '../rows.js';
import type { ApprovalInput, Job, Outcome, RefuseInput, Transitioned } from '../types.js';
import { APPROVAL_REASON, assertDecidable, checkApproval, checkReadmit, checkRefusals } from '../validate.js';
import { CLOCK_MS, NOW_MS, run, type Sql, transaction, withRetry } from './postgres-db.js';
import { LOCK_JOB } from './postgres-queries.js';
import { ownerBatch } from './postgres-transitions.js';

assertTransition('leased', 'blocked', 'authority_refused');
assertTransition('running', 'blocked', 'authority_refused');
assertTransition('blocked', 'queued', 'readmitted');

const EVENT_COLUMNS = 'bulkhead.events (type, tenant, job_id, correlation_id, data, at)';

/**
 * refuseAuthority: $1 job ids, $2 fences, $3 messages. The current lease's holder hands the attempt
 * back without running it: the attempt is not counted, the lease ends, the message is the job's error.
 */
const REFUSE_AUTHORITY: Sql = {
  name: 'bulkhead_refuse_authority',
  text: `
WITH owned AS (
  SELECT j.id, j.state, i.message FROM bulkhead.jobs j
    JOIN unnest($1::text[], $2::bigint[], $3::text[]) AS i(id, fence, message) ON j.id = i.id
   WHERE j.state IN ('leased', 'running') AND j.fence = i.fence AND j.lease_expires_at > ${CLOCK_MS}
   ORDER BY j.id
   FOR UPDATE OF j
),
moved AS (
  UPDATE bulkhead.jobs j
     SET state = 'blocked', reason = 'invalid_authority', attempt = j.attempt - 1, worker_id = NULL,
         lease_expires_at = NULL, error_code = 'invalid_authority', error_message = o.message,
         updated_at = ${NOW_MS}
    FROM owned o
   WHERE j.id = o.id
  RETURNING j.id, j.state, j.updated_at, j.tenant, j.correlation_id, j.fence, o.state AS from_state
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.blocked', m.tenant, m.id, m.correlation_id,
         jsonb_build_object('from', m.from_state, 'to', 'blocked', 'reason', 'invalid_authority', 'fence', m.fence),
         m.updated_at
    FROM moved m ORDER BY m.id
)
SELECT id, state, updated_at FROM moved`,
};

/** readmit: $1 job id, $2 the new authority record (JSON text). Only a job blocked for invalid authority. */
const READMIT: Sql = {
  name: 'bulkhead_readmit',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs j
     SET state = 'queued', reason = 'readmitted', authority = $2::jsonb, error_code = NULL, error_message = NULL,
         updated_at = ${NOW_MS}
   WHERE j.id = $1 AND j.state = 'blocked' AND j.reason = 'invalid_authority'
  RETURNING j.*
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT 'job.queued', m.tenant, m.id, m.correlation_id,
         jsonb_build_object('from', 'blocked', 'to', 'queued', 'reason', 'readmitted', 'attempt', m.attempt),
         m.updated_at
    FROM moved m
),
woken AS (SELECT pg_notify('bulkhead_jobs', m.queue) FROM moved m)
SELECT m.*, (SELECT count(*) FROM woken) AS woken FROM moved m`,
};

export function refuseAuthority(pool: pg.Pool, items: RefuseInput[]): Promise<Outcome<Transitioned>[]> {
  checkRefusals('refuseAuthority', items);
  return ownerBatch(
    pool,
    items,
    REFUSE_AUTHORITY,
    (sorted) => [sorted.map((i) => i.message)],
    (row: { state: string; updated_at: number }) => ({
      state: row.state as Transitioned['state'],
      updatedAt: Number(row.updated_at),
    }),
  );
}

export function readmit(
  pool: pg.Pool,
  input: { jobId: string; tenant?: string; authority: unknown },
): Promise<Job> {
  const r = checkReadmit(input);
  return withRetry(() =>
    transaction(pool, async (client) => {
      const [row] = await run<JobRow>(client, LOCK_JOB, [r.jobId]);
      if (!row || (r.tenant !== null && row.tenant !== r.tenant)) throw new JobNotFoundError(r.jobId);
      const [moved] = await run<JobRow>(client, READMIT, [r.jobId, r.authorityJson]);
      if (!moved) {
        throw new JobStateConflictError(
          r.jobId,
          `${row.state}${row.reason ? ` (${row.reason})` : ''}`,
          'readmit',
        );
      }
      return rowToJob(moved);
    }),
  );
}

/** decideApproval, step 2: $1 id, $2 state, $3 reason, $4 authority, $5 deadline; then its event. */
const DECIDE_APPROVAL: Sql = {
  name: 'bulkhead_decide_approval',
  text: `
WITH moved AS (
  UPDATE bulkhead.jobs j
     SET state = $2, reason = $3, authority = $4::jsonb, deadline = $5, updated_at = ${NOW_MS}
   WHERE j.id = $1 AND j.state = 'awaiting_approval'
  RETURNING j.*
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT $6, m.tenant, m.id, m.correlation_id, $7::jsonb, m.updated_at FROM moved m
),
woken AS (SELECT pg_notify('bulkhead_jobs', m.queue) FROM moved m WHERE m.state = 'queued')
SELECT m.*, (SELECT count(*) FROM woken) AS woken FROM moved m`,
};

export function decideApproval(pool: pg.Pool, input: ApprovalInput): Promise<Job> {
  const a = checkApproval(input);
  const reason = APPROVAL_REASON[a.to];
  if (a.to !== 'awaiting_approval') assertTransition('awaiting_approval', a.to, reason);
  const data = JSON.parse(a.eventJson) as Record<string, unknown>;
  return withRetry(() =>
    transaction(pool, async (client) => {
      const [row] = await run<JobRow>(client, LOCK_JOB, [a.jobId]);
      assertDecidable(a, row);
      const stays = a.to === 'awaiting_approval';
      const [moved] = await run<JobRow>(client, DECIDE_APPROVAL, [
        a.jobId,
        a.to,
        stays ? row.reason : reason,
        a.authorityJson,
        a.deadline,
        stays ? 'job.approval_recorded' : `job.${a.to}`,
        JSON.stringify(stays ? data : { from: 'awaiting_approval', to: a.to, reason, ...data }),
      ]);
      return rowToJob(moved!);
    }),
  );
}
