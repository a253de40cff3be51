/**
 * Quotas on SQLite: `maxQueued` counted inside the submit's write transaction, and token buckets
 * read and written inside one. SQLite's write lock (`BEGIN IMMEDIATE`, across processes) is what
 * serialises concurrent submitters and takers, so the counts and levels read here are exact.
 */
import type Database from 'better-sqlite3';
import { QuotaExceededError } from '../errors.js';
import { HELD_STATES, type NormalizedTake, sqlStates, takeFrom, takeResult } from '../quotas.js';
import type { TakeTokensResult } from '../types.js';

const SQL = {
  /** The tenant's jobs awaiting approval or blocked, counted up to @limit. */
  countHeld: `SELECT count(*) AS n FROM (
        SELECT 1 FROM jobs INDEXED BY jobs_tenant_held
        WHERE tenant = @tenant AND state IN ${sqlStates(HELD_STATES)} LIMIT @limit)`,
  /** The first queue after @after with queued jobs (one seek on the claim index). */
  nextQueue: `SELECT queue FROM jobs INDEXED BY jobs_claim_fair
      WHERE state = 'queued' AND queue > @after ORDER BY queue LIMIT 1`,
  /** The tenant's queued jobs in @queue, counted up to @limit. */
  countQueuedIn: `SELECT count(*) AS n FROM (
        SELECT 1 FROM jobs INDEXED BY jobs_claim_fair
        WHERE state = 'queued' AND queue = @queue AND tenant = @tenant LIMIT @limit)`,
  /** A bucket's level, if it exists. */
  bucket: 'SELECT tokens, updated_at FROM rate_buckets WHERE tenant = @tenant AND bucket = @bucket',
  /** Store a bucket's level after a take. */
  putBucket: `INSERT INTO rate_buckets (tenant, bucket, tokens, updated_at, granted)
      VALUES (@tenant, @bucket, @tokens, @at, @granted)
      ON CONFLICT (tenant, bucket) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at,
        granted = excluded.granted`,
} as const;

type Statements = { readonly [K in keyof typeof SQL]: Database.Statement };

export class SqliteQuotas {
  private readonly s: Statements;

  constructor(db: Database.Database) {
    this.s = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Statements;
  }

  /**
   * A tally of pending jobs for the submissions of one call. Call `admit` for each job about to be
   * inserted, in order: it counts the tenant's pending jobs the first time a limit applies, adds the
   * call's jobs, and throws `QuotaExceededError` at the first that would go over its limit (the
   * caller's savepoint undoes the call's earlier inserts).
   */
  pendingTally(): { admit(tenant: string, limit: number | null): void } {
    const tally = new Map<string, { before: number | null; added: number }>();
    return {
      admit: (tenant, limit) => {
        const t = tally.get(tenant) ?? { before: null, added: 0 };
        tally.set(tenant, t);
        t.added++;
        if (limit === null) return;
        if (t.before === null) {
          // The call's own earlier jobs of this tenant are already in the table: count past them.
          const earlier = t.added - 1;
          t.before = this.countPending(tenant, limit + earlier) - earlier;
        }
        if (t.before + t.added > limit)
          throw new QuotaExceededError({
            tenant,
            quota: 'maxQueued',
            limit,
            current: t.before,
            requested: t.added,
          });
      },
    };
  }

  /**
   * The tenant's pending jobs, counted up to `bound`: those held (awaiting approval, blocked), then
   * the queued ones queue by queue on the claim index. Costs one seek per queue with queued jobs plus
   * the jobs counted, never more than `bound` of them.
   */
  private countPending(tenant: string, bound: number): number {
    let n = (this.s.countHeld.get({ tenant, limit: bound }) as { n: number }).n;
    for (let after = ''; n < bound; ) {
      const next = this.s.nextQueue.get({ after }) as { queue: string } | undefined;
      if (!next) break;
      after = next.queue;
      n += (this.s.countQueuedIn.get({ queue: after, tenant, limit: bound - n }) as { n: number }).n;
    }
    return n;
  }

  /** One take from a bucket, decided and stored; call inside the write transaction. */
  takeTokens(take: NormalizedTake, now: number): TakeTokensResult {
    const row = this.s.bucket.get({ tenant: take.tenant, bucket: take.bucket }) as
      | { tokens: number; updated_at: number }
      | undefined;
    const { level, granted } = takeFrom(row && { tokens: row.tokens, at: row.updated_at }, take, now);
    this.s.putBucket.run({
      tenant: take.tenant,
      bucket: take.bucket,
      tokens: level.tokens,
      at: level.at,
      granted: granted ? 1 : 0,
    });
    return takeResult(take, level.tokens, granted);
  }
}
