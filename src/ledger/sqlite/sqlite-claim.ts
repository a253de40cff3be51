/**
 * Fair claiming on SQLite: `queued -> leased` for up to `want` runnable jobs of one queue, taken
 * round-robin across tenants, inside the store's write transaction (which already serialises every
 * claimer, in this process and in others sharing the file, so `maxRunning` counts are exact).
 *
 * The pick, per queue:
 * 1. Round 1 walks the tenants with runnable work in name order, starting after the tenant served
 *    last (`claim_cursors`) and wrapping around; each step is one seek on `jobs_claim_fair` that
 *    lands on the next tenant's head job (its first in priority, run_at, id order), which is that
 *    tenant's round-1 pick. It stops as soon as `want` jobs are picked. A tenant at its `maxRunning`
 *    ceiling is passed over.
 * 2. When every tenant has had its turn and more are wanted, each tenant still open gets
 *    ceil(remaining / open tenants) more jobs (at most its ceiling allows), read after its last
 *    pick with a keyset seek; repeated until `want` are picked or every tenant is exhausted.
 * 3. The picks are ordered by (round, tenant position) and cut at `want`: one job per tenant per
 *    round, each tenant's own jobs in claim order.
 * Cost: one seek per tenant visited plus one per tenant per refill, and the rows picked: it grows
 * with the batch, not with the queue's depth or the number of tenants behind the batch.
 */
import type Database from 'better-sqlite3';
import { RUNNING_STATES, type RunningLimits, runningLimitOf, sqlStates } from '../quotas.js';
import type { JobRow } from '../rows.js';

/** A queued job of the queue that this claimer may run now. */
const RUNNABLE = `state = 'queued' AND queue = @queue AND run_at <= @now AND classification <= @clearance
        AND (deadline IS NULL OR deadline > @now)
        AND (@tasks IS NULL OR task IN (SELECT value FROM json_each(@tasks)))`;

const SQL = {
  /** The tenant served last in the queue: round-robin resumes after it. */
  cursor: 'SELECT tenant FROM claim_cursors WHERE queue = ?',
  /** Remember the tenant served last in @queue (no write when it is the same one). */
  moveCursor: `INSERT INTO claim_cursors (queue, tenant) VALUES (@queue, @tenant)
      ON CONFLICT (queue) DO UPDATE SET tenant = excluded.tenant WHERE tenant <> excluded.tenant`,

  /**
   * The first tenant after @after (and up to @upTo, when not NULL) with runnable work, as its head
   * job: one seek, since the index order is (queue, tenant, priority DESC, run_at, id).
   */
  nextTenantHead: `SELECT id, tenant, priority, run_at FROM jobs INDEXED BY jobs_claim_fair
      WHERE ${RUNNABLE} AND tenant > @after AND (@upTo IS NULL OR tenant <= @upTo)
      ORDER BY tenant, priority DESC, run_at, id LIMIT 1`,
  /** Up to @limit runnable jobs of @tenant after (@priority, @runAt, @id), at that same priority. */
  samePriorityAfter: `SELECT id, tenant, priority, run_at FROM jobs INDEXED BY jobs_claim_fair
      WHERE ${RUNNABLE} AND tenant = @tenant AND priority = @priority AND (run_at, id) > (@runAt, @id)
      ORDER BY run_at, id LIMIT @limit`,
  /** Up to @limit runnable jobs of @tenant below @priority, in claim order. */
  lowerPriority: `SELECT id, tenant, priority, run_at FROM jobs INDEXED BY jobs_claim_fair
      WHERE ${RUNNABLE} AND tenant = @tenant AND priority < @priority
      ORDER BY priority DESC, run_at, id LIMIT @limit`,

  /** The tenant's leased and running jobs, counted up to @limit (what `maxRunning` compares with). */
  countRunning: `SELECT count(*) AS n FROM (
        SELECT 1 FROM jobs INDEXED BY jobs_tenant_running
        WHERE tenant = @tenant AND state IN ${sqlStates(RUNNING_STATES)} LIMIT @limit)`,

  /**
   * `queued -> leased` (or, with @start, `-> running`) for the picked ids (@ids, a JSON array): a
   * new fence and attempt each, the lease deadline from @now.
   */
  lease: `UPDATE jobs SET state = CASE WHEN @start THEN 'running' ELSE 'leased' END,
        reason = CASE WHEN @start THEN 'started' ELSE 'claimed' END, fence = fence + 1, attempt = attempt + 1,
        worker_id = @workerId, lease_length_ms = coalesce(@leaseMs, lease_ms),
        lease_expires_at = @now + coalesce(@leaseMs, lease_ms), updated_at = @now
      WHERE id IN (SELECT value FROM json_each(@ids)) AND state = 'queued'
      RETURNING *`,
} as const;

type Statements = { readonly [K in keyof typeof SQL]: Database.Statement };

/** A job at the head of what is left of a tenant's runnable work. */
interface Head {
  id: string;
  tenant: string;
  priority: number;
  run_at: number;
}

/** One tenant's place in this claim's rotation. */
interface Lane {
  tenant: string;
  pos: number;
  /** Jobs it may still get under its ceiling (Infinity without one). */
  room: number;
  last: Head;
  taken: number;
  open: boolean;
}

interface Pick {
  id: string;
  tenant: string;
  round: number;
  pos: number;
}

export interface QueueClaim {
  queue: string;
  now: number;
  clearance: number;
  /** JSON array of task names, or null for all. */
  tasks: string | null;
  want: number;
  limits: RunningLimits | null;
  workerId: string;
  leaseMs: number | null;
  start: boolean;
}

export class SqliteClaimer {
  private readonly s: Statements;

  constructor(db: Database.Database) {
    this.s = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Statements;
  }

  /** Pick and lease up to `want` jobs of one queue; call inside the write transaction. Rows in pick order. */
  claimQueue(c: QueueClaim): JobRow[] {
    const picks = this.pick(c);
    if (picks.length === 0) return [];
    const last = picks[picks.length - 1] as Pick;
    this.s.moveCursor.run({ queue: c.queue, tenant: last.tenant });
    const rows = this.s.lease.all({
      ids: JSON.stringify(picks.map((p) => p.id)),
      workerId: c.workerId,
      leaseMs: c.leaseMs,
      now: c.now,
      start: c.start ? 1 : 0,
    }) as JobRow[];
    const order = new Map(picks.map((p, i) => [p.id, i]));
    return rows.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
  }

  private pick(c: QueueClaim): Pick[] {
    const base = { queue: c.queue, now: c.now, clearance: c.clearance, tasks: c.tasks };
    const cursor = (this.s.cursor.get(c.queue) as { tenant: string } | undefined)?.tenant;
    const picks: Pick[] = [];
    const lanes: Lane[] = [];
    // Round 1: tenants after the cursor, then from the first one up to the cursor itself.
    const passes =
      cursor === undefined
        ? [{ after: '', upTo: null }]
        : [
            { after: cursor, upTo: null },
            { after: '', upTo: cursor },
          ];
    for (const pass of passes) {
      let after = pass.after;
      while (picks.length < c.want) {
        const head = this.s.nextTenantHead.get({ ...base, after, upTo: pass.upTo }) as Head | undefined;
        if (!head) break;
        after = head.tenant;
        const room = this.room(c.limits, head.tenant);
        if (room <= 0) continue;
        const lane = {
          tenant: head.tenant,
          pos: lanes.length,
          room: room - 1,
          last: head,
          taken: 1,
          open: room > 1,
        };
        lanes.push(lane);
        picks.push({ id: head.id, tenant: head.tenant, round: 1, pos: lane.pos });
      }
    }
    // Later rounds: every open tenant gets an equal share of what is still wanted, until done.
    let open = lanes.filter((l) => l.open);
    while (picks.length < c.want && open.length > 0) {
      const share = Math.ceil((c.want - picks.length) / open.length);
      for (const lane of open) {
        const n = Math.min(share, lane.room);
        const rows = this.after(base, lane.last, n);
        rows.forEach((row, i) => {
          picks.push({ id: row.id, tenant: lane.tenant, round: lane.taken + i + 1, pos: lane.pos });
        });
        lane.taken += rows.length;
        lane.room -= rows.length;
        lane.last = rows[rows.length - 1] ?? lane.last;
        lane.open = rows.length === n && lane.room > 0;
      }
      open = open.filter((l) => l.open);
    }
    picks.sort((a, b) => a.round - b.round || a.pos - b.pos);
    return picks.slice(0, c.want);
  }

  /** Up to `n` runnable jobs of `last`'s tenant after it, in claim order. */
  private after(base: Record<string, unknown>, last: Head, n: number): Head[] {
    const key = { ...base, tenant: last.tenant, priority: last.priority, runAt: last.run_at, id: last.id };
    const same = this.s.samePriorityAfter.all({ ...key, limit: n }) as Head[];
    if (same.length >= n) return same;
    return [...same, ...(this.s.lowerPriority.all({ ...key, limit: n - same.length }) as Head[])];
  }

  /** How many more jobs `tenant` may have leased or running now: Infinity without a ceiling. */
  private room(limits: RunningLimits | null, tenant: string): number {
    const limit = runningLimitOf(limits, tenant);
    if (limit === null) return Number.POSITIVE_INFINITY;
    if (limit === 0) return 0;
    return limit - (this.s.countRunning.get({ tenant, limit }) as { n: number }).n;
  }
}
