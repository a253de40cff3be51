/**
 * Quotas on PostgreSQL. A count and the write it allows must not race with another replica doing
 * the same for the same tenant, so each is serialised per tenant with a transaction-scoped advisory
 * lock taken before the count, in its own statement (under READ COMMITTED the next statement's
 * snapshot then sees everything committed by whoever held the lock before). Locks are taken in key
 * order, so two transactions never wait for each other in a cycle. Token buckets need no lock: one
 * INSERT … ON CONFLICT DO UPDATE reads and writes the bucket row atomically.
 */
import type pg from 'pg';
import { QuotaExceededError } from '../errors.js';
import { HELD_STATES, type NormalizedTake, sqlStates, takeResult } from '../quotas.js';
import type { TakeTokensResult } from '../types.js';
import type { NormalizedSubmit } from '../validate.js';
import { NOW_MS, type Queryable, run, type Sql, withRetry } from './postgres-db.js';

/** Advisory lock key spaces (the two-integer form; the migration lock uses the one-bigint form). */
const RUNNING_SPACE = 0x4248524e; // 'BHRN': a tenant's running count (claims with maxRunning)
const PENDING_SPACE = 0x42485144; // 'BHQD': a tenant's pending count (submits with maxQueued)

/** SQL that takes the claim-side lock of the tenant named by the expression `tenant`. */
export const RUNNING_LOCK = (tenant: string) =>
  `pg_advisory_xact_lock(${RUNNING_SPACE}, hashtext(${tenant}))`;

/** submit with maxQueued, step 1: lock the pending count of each tenant in $1, in key order. */
export const LOCK_PENDING: Sql = {
  name: 'bulkhead_lock_pending',
  text: `
SELECT count(*) AS locked FROM (
  SELECT pg_advisory_xact_lock(${PENDING_SPACE}, s.k) FROM (
    SELECT DISTINCT hashtext(t) AS k FROM unnest($1::text[]) AS t ORDER BY k
  ) s
) l`,
};

/**
 * submit with maxQueued, step 2: each tenant in $1's pending jobs, counted up to its $2 bound. Held
 * ones (awaiting approval, blocked) on jobs_tenant_held; queued ones on jobs_claim_fair, queue by
 * queue (`queues` walks the distinct queues with queued jobs, one index descent each). The outer
 * LIMITs stop the count at the bound.
 */
export const COUNT_PENDING: Sql = {
  name: 'bulkhead_count_pending',
  text: `
WITH RECURSIVE queues(queue) AS (
  SELECT (SELECT min(queue) FROM bulkhead.jobs WHERE state = 'queued')
  UNION ALL
  SELECT (SELECT min(j.queue) FROM bulkhead.jobs j WHERE j.state = 'queued' AND j.queue > q.queue)
    FROM queues q WHERE q.queue IS NOT NULL
)
SELECT u.tenant,
       (SELECT count(*) FROM (
          SELECT 1 FROM bulkhead.jobs j
           WHERE j.tenant = u.tenant AND j.state IN ${sqlStates(HELD_STATES)} LIMIT u.bound) h)::integer
     + (SELECT count(*) FROM (
          SELECT 1 FROM queues q CROSS JOIN LATERAL (
            SELECT 1 FROM bulkhead.jobs j
             WHERE j.state = 'queued' AND j.queue = q.queue AND j.tenant = u.tenant LIMIT u.bound) x
           WHERE q.queue IS NOT NULL
           LIMIT u.bound) c)::integer AS n
  FROM unnest($1::text[], $2::integer[]) AS u(tenant, bound)`,
};

/** The bucket's level refilled up to now: $4 tokens per second, never above the burst $5. */
const REFILLED = `least($5::float8, b.tokens + greatest(0, ${NOW_MS} - b.updated_at) * $4::float8 / 1000)`;

/**
 * takeTokens: take $3 tokens from bucket ($1 tenant, $2 bucket), all or none, after refilling it
 * from the server clock. A new bucket starts full (the burst $5), so its first take is granted.
 * Returns the tokens left and whether the take was granted.
 */
export const TAKE_TOKENS: Sql = {
  name: 'bulkhead_take_tokens',
  text: `
INSERT INTO bulkhead.rate_buckets AS b (tenant, bucket, tokens, updated_at, granted)
VALUES ($1, $2, $5::float8 - $3::float8, ${NOW_MS}, true)
ON CONFLICT (tenant, bucket) DO UPDATE
   SET tokens = CASE WHEN ${REFILLED} >= $3::float8 THEN ${REFILLED} - $3::float8 ELSE ${REFILLED} END,
       updated_at = greatest(b.updated_at, ${NOW_MS}),
       granted = ${REFILLED} >= $3::float8
RETURNING tokens, granted`,
};

export async function takeTokens(pool: pg.Pool, take: NormalizedTake): Promise<TakeTokensResult> {
  const [row] = await withRetry(() =>
    run<{ tokens: number; granted: boolean }>(pool, TAKE_TOKENS, [
      take.tenant,
      take.bucket,
      take.count,
      take.ratePerSecond,
      take.burst,
    ]),
  );
  return takeResult(take, row!.tokens, row!.granted);
}

/**
 * Check `maxQueued` for a batch about to be admitted on `client` (inside its transaction): lock the
 * limited tenants, count their pending jobs, and walk the batch in order as admission will, leaving
 * out idempotent replays (keys already taken, or repeated in the batch). Throws
 * `QuotaExceededError` at the first job over its limit; then nothing has been written.
 * `existingKeys` answers which of the given (tenant, key) pairs are already taken.
 */
export async function checkMaxQueued(
  client: Queryable,
  items: NormalizedSubmit[],
  maxQueued: (number | null)[],
  existingKeys: (keyed: NormalizedSubmit[]) => Promise<Set<string>>,
): Promise<void> {
  // The bound to count to per tenant: past the largest limit nothing changes the answer.
  const bound = new Map<string, number>();
  items.forEach((item, i) => {
    const limit = maxQueued[i];
    if (limit !== null && limit !== undefined)
      bound.set(item.tenant, Math.max(limit, bound.get(item.tenant) ?? 0));
  });
  if (bound.size === 0) return;
  const tenants = [...bound.keys()];
  await run(client, LOCK_PENDING, [tenants]);
  const counted = await run<{ tenant: string; n: number }>(client, COUNT_PENDING, [
    tenants,
    tenants.map((t) => bound.get(t)),
  ]);
  const before = new Map(counted.map((r) => [r.tenant, r.n]));
  const taken = await existingKeys(
    items.filter((item) => item.idempotencyKey !== null && bound.has(item.tenant)),
  );
  const added = new Map<string, number>();
  items.forEach((item, i) => {
    if (item.idempotencyKey !== null) {
      const key = `${item.tenant}\u0000${item.idempotencyKey}`;
      if (taken.has(key)) return; // a replay (or the batch's second use of a key) adds nothing
      taken.add(key);
    }
    const n = (added.get(item.tenant) ?? 0) + 1;
    added.set(item.tenant, n);
    const limit = maxQueued[i];
    if (limit === null || limit === undefined) return;
    const current = before.get(item.tenant) ?? 0;
    if (current + n > limit)
      throw new QuotaExceededError({ tenant: item.tenant, quota: 'maxQueued', limit, current, requested: n });
  });
}
