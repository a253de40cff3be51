/**
 * Fair claiming on PostgreSQL: `queued -> leased` for up to `want` runnable jobs of one queue, taken
 * round-robin across tenants, in one statement (CLAIM_FAIR):
 * - `tenants` walks the tenants with runnable work in name order, starting after the tenant served
 *   last in the queue (`claim_cursors`) and wrapping around. Each step is one descent of
 *   `jobs_claim_fair (queue, tenant, priority DESC, run_at, id)` landing on the next tenant's head
 *   job. It is a recursive CTE, evaluated only as far as it is read: `lanes` reads the first `want`
 *   tenants (fewer when there are fewer).
 * - Each of the T lanes gets a share of ceil(want / T) jobs (at most its `maxRunning` room), read by
 *   one index scan of its own in claim order and locked as it goes with SKIP LOCKED, so rows other
 *   claimers hold are stepped over inside the scan, as the single-index claim did.
 * - The jobs are ranked by (rank within their tenant, tenant position) and the first `want` taken:
 *   exactly one job per tenant per round. Rows locked beyond that (fewer than T) are let go when the
 *   statement ends.
 * So a claim costs about T + want index entries and T descents, with T <= want, whatever the depth
 * of the queue and however many tenants wait behind the batch. With a single tenant it is one scan.
 * When a tenant had fewer jobs than its share, the claim comes back short while others may have
 * more: `claimFair` then runs the statement again for the rest, continuing the rotation.
 * The queue's cursor moves to the tenant served last (a queue with one tenant never writes it),
 * unless a concurrent claimer holds its row: then that claimer moves it, nobody waits for it.
 *
 * With `maxRunning`, the count and the claim must not race with another claimer of the same
 * tenant: the claim runs in a transaction that first takes a per-tenant advisory lock for every
 * limited tenant it is about to serve (LOCK_CLAIM_TENANTS, in key order, so claimers never
 * deadlock), and only then, in a new statement (a new snapshot), counts and claims. A limited
 * tenant it did not lock gets nothing from that claim.
 */
import type pg from 'pg';
import { RUNNING_STATES, type RunningLimits, sqlStates } from '../quotas.js';
import { type JobRow, rowToJob } from '../rows.js';
import type { Job } from '../types.js';
import type { NormalizedClaim } from '../validate.js';
import { CLOCK_MS, NOW_MS, run, type Sql, transaction, withRetry } from './postgres-db.js';
import { RUNNING_LOCK } from './postgres-quotas.js';

const EVENT_COLUMNS = 'bulkhead.events (type, tenant, job_id, correlation_id, data, at)';

/** A queued job of queue $1 that this claimer may run now ($2 clearance, $3 task names or null). */
const runnable = (j: string) => `${j}.state = 'queued' AND ${j}.queue = $1 AND ${j}.run_at <= ${NOW_MS}
       AND ${j}.classification <= $2 AND (${j}.deadline IS NULL OR ${j}.deadline > ${NOW_MS})
       AND ($3::text[] IS NULL OR ${j}.task = ANY ($3::text[]))`;

/** The index order after (queue, tenant): a tenant's own claim order. */
const TENANT_ORDER = 'j.priority DESC, j.run_at, j.id';

/** The head job of the first tenant with runnable work that satisfies `where`, with its rotation bounds. */
const headOf = (where: string, upTo: string, wrapped: string) =>
  `(SELECT j.tenant, ${upTo} AS up_to, ${wrapped} AS wrapped, j.id, j.priority, j.run_at FROM bulkhead.jobs j
     WHERE ${runnable('j')} AND ${where}
     ORDER BY j.tenant, ${TENANT_ORDER} LIMIT 1)`;

/**
 * `tenants`: the tenants with runnable work in rotation order (pos 1, 2, …), each with its head job:
 * those after the cursor, then (wrapped) those from the first up to the cursor itself. Row 0 is a
 * seed standing at the cursor. The ORDER BY names the whole index order, so only `jobs_claim_fair`
 * serves it without a sort.
 */
const TENANTS = `
cursor_at AS (
  SELECT coalesce((SELECT tenant FROM bulkhead.claim_cursors WHERE queue = $1), '') AS after
),
tenants(pos, tenant, up_to, wrapped, id, priority, run_at) AS (
  SELECT 0, c.after, c.after, false, NULL::text COLLATE "C", NULL::integer, NULL::bigint FROM cursor_at c
  UNION ALL
  SELECT t.pos + 1, h.tenant, h.up_to, h.wrapped, h.id, h.priority, h.run_at FROM tenants t CROSS JOIN LATERAL (
    ${headOf('NOT t.wrapped AND j.tenant > t.tenant', 't.up_to', 'false')}
    UNION ALL
    ${headOf('t.wrapped AND j.tenant > t.tenant AND j.tenant <= t.up_to', 't.up_to', 'true')}
    UNION ALL
    ${headOf('NOT t.wrapped AND j.tenant <= t.up_to', 't.up_to', 'true')}
    LIMIT 1) h
)`;

/** The `maxRunning` ceiling of tenant `t` ($L: tenant -> limit as jsonb, $D: the default), or null. */
const limitOf = (t: string, L: string, D: string) =>
  `coalesce((${L}::jsonb ->> ${t}.tenant)::integer, ${D}::integer)`;

/**
 * How many more jobs tenant `t` may have leased or running now under ceiling `lim` (null: no
 * ceiling), counted on jobs_tenant_running up to the ceiling.
 */
const roomOf = (t: string, lim: string) => `CASE WHEN ${lim} IS NULL THEN NULL
  ELSE ${lim} - (SELECT count(*) FROM (
         SELECT 1 FROM bulkhead.jobs o WHERE o.tenant = ${t}.tenant AND o.state IN ${sqlStates(RUNNING_STATES)}
          LIMIT ${lim}) c)::integer END`;

/**
 * claim, when limits apply, step 1: the limited tenants the claim is about to serve (the first $4
 * with room, in rotation order, room read from this statement's snapshot), locked in lock-key order.
 * $5 limits (jsonb), $6 the default limit. Returns the locked tenants.
 */
export const LOCK_CLAIM_TENANTS: Sql = {
  name: 'bulkhead_lock_claim_tenants',
  text: `
WITH RECURSIVE ${TENANTS},
served AS (
  SELECT t.tenant, l.lim FROM tenants t
   CROSS JOIN LATERAL (SELECT ${limitOf('t', '$5', '$6')} AS lim) l
   CROSS JOIN LATERAL (SELECT ${roomOf('t', 'l.lim')} AS room) r
   WHERE t.pos > 0 AND (r.room IS NULL OR r.room > 0)
   LIMIT (SELECT $4::integer)
)
SELECT s.tenant FROM (
  SELECT tenant FROM served WHERE lim IS NOT NULL ORDER BY hashtext(tenant), tenant
) s CROSS JOIN LATERAL (SELECT ${RUNNING_LOCK('s.tenant')}) k`,
};

/**
 * `lanes`: the first $4 tenants of the rotation that may be served, each with its room under
 * `maxRunning` (null: no ceiling). With limits: $9 tenant -> maxRunning (jsonb), $10 the default, $11
 * the limited tenants this transaction has locked (a limited tenant not among them has no room).
 */
const lanes = (limited: boolean) =>
  limited
    ? `lanes AS (
  SELECT t.pos, t.tenant, r.room FROM tenants t
   CROSS JOIN LATERAL (SELECT ${limitOf('t', '$9', '$10')} AS lim) l
   CROSS JOIN LATERAL (SELECT CASE WHEN l.lim IS NOT NULL AND NOT (t.tenant = ANY ($11::text[])) THEN 0
                              ELSE ${roomOf('t', 'l.lim')} END AS room) r
   WHERE t.pos > 0 AND (r.room IS NULL OR r.room > 0)
   LIMIT (SELECT $4::integer)
)`
    : `lanes AS (
  SELECT t.pos, t.tenant, NULL::integer AS room FROM tenants t WHERE t.pos > 0 LIMIT (SELECT $4::integer)
)`;

const claimText = (limited: boolean) => `
WITH RECURSIVE ${TENANTS},
${lanes(limited)},
share AS (
  SELECT ceil($4::numeric / greatest(count(*), 1))::integer AS n FROM lanes
),
chunks AS (
  SELECT l.pos, s.n AS share, k.id, k.priority, k.run_at FROM lanes l CROSS JOIN share s CROSS JOIN LATERAL (
    SELECT j.id, j.priority, j.run_at FROM bulkhead.jobs j
     WHERE ${runnable('j')} AND j.tenant = l.tenant
     ORDER BY ${TENANT_ORDER}
     LIMIT least(s.n, l.room)
       FOR UPDATE SKIP LOCKED) k
),
picked AS (
  SELECT id, round, pos, share FROM (
    SELECT c.id, c.pos, c.share, row_number() OVER (PARTITION BY c.pos ORDER BY c.priority DESC, c.run_at, c.id) AS round
      FROM chunks c
  ) r
  ORDER BY round, pos
  -- (SELECT $4): the same row estimate in every plan of this statement, so that PostgreSQL settles
  -- on one generic plan after a few runs instead of planning every claim anew.
  LIMIT (SELECT $4::integer)
),
leased AS (
  UPDATE bulkhead.jobs j
     SET state = CASE WHEN $7::boolean THEN 'running' ELSE 'leased' END,
         reason = CASE WHEN $7::boolean THEN 'started' ELSE 'claimed' END,
         fence = j.fence + 1, attempt = j.attempt + 1, worker_id = $5,
         lease_length_ms = coalesce($6::integer, j.lease_ms),
         -- The lease runs from when it is granted, not from when the statement began: planning this
         -- statement on a fresh connection must not eat into a short lease.
         lease_expires_at = ${CLOCK_MS} + coalesce($6::integer, j.lease_ms),
         updated_at = ${NOW_MS}
   -- By primary key, never a join the planner could turn into a scan of the table on a large batch.
   WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
  RETURNING j.*
),
served AS (
  SELECT l.*, p.round AS pick_round, p.pos AS pick_pos, p.share AS pick_share FROM leased l JOIN picked p ON p.id = l.id
),
ev AS (
  INSERT INTO ${EVENT_COLUMNS}
  SELECT e.type, l.tenant, l.id, l.correlation_id, e.data, l.updated_at
    FROM leased l
   CROSS JOIN LATERAL (VALUES
         (1, 'job.leased', jsonb_build_object('from', 'queued', 'to', 'leased', 'reason', 'claimed',
                                              'workerId', l.worker_id, 'attempt', l.attempt, 'fence', l.fence)),
         (2, 'job.running', jsonb_build_object('from', 'leased', 'to', 'running', 'reason', 'started',
                                               'attempt', l.attempt, 'fence', l.fence) || $8::jsonb)
       ) AS e(n, type, data)
   WHERE e.n = 1 OR $7::boolean
   ORDER BY l.id, e.n
),
last_served AS (
  SELECT tenant FROM served ORDER BY pick_round DESC, pick_pos DESC LIMIT 1
),
cursor_held AS (
  SELECT queue FROM bulkhead.claim_cursors
   WHERE queue = $1 AND tenant IS DISTINCT FROM (SELECT tenant FROM last_served)
     FOR UPDATE SKIP LOCKED
),
cursor_moved AS (
  UPDATE bulkhead.claim_cursors c SET tenant = s.tenant FROM cursor_held h, last_served s WHERE c.queue = h.queue
),
cursor_created AS (
  INSERT INTO bulkhead.claim_cursors (queue, tenant)
  SELECT $1, s.tenant FROM last_served s
   WHERE NOT EXISTS (SELECT 1 FROM bulkhead.claim_cursors WHERE queue = $1)
  ON CONFLICT (queue) DO NOTHING
)
SELECT * FROM served`;

/**
 * claim: lease up to $4 runnable jobs of queue $1 ($2 clearance, $3 task names or null) in fair
 * order, with a new fence each; $5 the worker, $6 a lease length overriding the job's; with $7,
 * start them too (`job.running` events carry the attempt context $8). One `job.leased` event per
 * job. Rows come back with their pick round and rotation position. The picked rows are locked
 * again with the conditions that can have changed since the snapshot (state, run time, deadline).
 */
export const CLAIM_FAIR: Sql = { name: 'bulkhead_claim_fair', text: claimText(false) };

/** claim with `maxRunning`, step 2: as CLAIM_FAIR, each tenant held to its room ($9–$11, see `firstRound`). */
export const CLAIM_FAIR_LIMITED: Sql = { name: 'bulkhead_claim_fair_limited', text: claimText(true) };

type PickedRow = JobRow & { pick_round: number; pick_pos: number; pick_share: number };

/** A claim that comes back short while some tenant filled its share goes again for the rest, this many times at most. */
const MAX_STATEMENTS_PER_QUEUE = 8;

/**
 * Queue by queue, in the order given, until the limit is filled; each queue's jobs in pick order.
 * One statement usually fills a queue's part. It falls short when a tenant had fewer jobs than its
 * share (or had them held by other claimers) while another filled its share and may have more: the
 * next statement continues the rotation for the rest.
 */
export async function claimFair(
  pool: pg.Pool,
  c: NormalizedClaim,
  clearance: number,
  limits: RunningLimits | null,
): Promise<Job[]> {
  const claimed: Job[] = [];
  const limitsJson = limits && JSON.stringify(limits.perTenant);
  const fallback = limits?.default ?? null;
  for (const queue of c.queues) {
    for (let n = 0; n < MAX_STATEMENTS_PER_QUEUE; n++) {
      const want = c.limit - claimed.length;
      if (want <= 0) break;
      const rows = await claimOnce(pool, queue, want, c, clearance, limits && { json: limitsJson, fallback });
      rows.sort((a, b) => a.pick_round - b.pick_round || a.pick_pos - b.pick_pos);
      claimed.push(...rows.map(rowToJob));
      if (rows.length === want || !someFilledShare(rows)) break;
    }
  }
  return claimed;
}

function someFilledShare(rows: PickedRow[]): boolean {
  const per = new Map<number, number>();
  for (const row of rows) per.set(row.pick_pos, (per.get(row.pick_pos) ?? 0) + 1);
  return rows.some((row) => per.get(row.pick_pos) === row.pick_share);
}

/** One fair claim statement on one queue: without limits, on its own; with limits, after LOCK_CLAIM_TENANTS in one transaction. */
function claimOnce(
  pool: pg.Pool,
  queue: string,
  want: number,
  c: NormalizedClaim,
  clearance: number,
  limits: { json: string | null; fallback: number | null } | null,
): Promise<PickedRow[]> {
  const params = [
    queue,
    clearance,
    c.tasks,
    want,
    c.workerId,
    c.leaseMs,
    c.start !== null,
    JSON.stringify(c.start ?? {}),
  ];
  if (limits === null) return withRetry(() => run<PickedRow>(pool, CLAIM_FAIR, params));
  return withRetry(() =>
    transaction(pool, async (client) => {
      const locked = await run<{ tenant: string }>(client, LOCK_CLAIM_TENANTS, [
        queue,
        clearance,
        c.tasks,
        want,
        limits.json,
        limits.fallback,
      ]);
      return run<PickedRow>(client, CLAIM_FAIR_LIMITED, [
        ...params,
        limits.json,
        limits.fallback,
        locked.map((r) => r.tenant),
      ]);
    }),
  );
}
