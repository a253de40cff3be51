/**
 * Per-tenant flow control kept in the ledger (DESIGN.md §4): the limits a caller passes to `submit`
 * (`maxQueued`) and `claim` (`maxRunning`), and the token buckets behind `takeTokens`
 * (`submitPerSecond`). The rows are the truth, so every control replica and worker sees the same
 * counts; this module holds the shapes, their checks and the bucket arithmetic both adapters share.
 *
 * What each quota counts:
 * - pending  (`maxQueued`):  `awaiting_approval`, `queued`, `blocked` — admitted, not yet claimed.
 * - running  (`maxRunning`): `leased`, `running` — claimed and not yet finished, in every queue.
 */
import type { JobState } from '../lifecycle/lifecycle.js';
import type { ClaimOptions, SubmitInput, TakeTokensInput, TakeTokensResult } from './types.js';
import { checkName, describe, fail } from './validate.js';

/** States a claimed, unfinished job is in: what `maxRunning` counts. */
export const RUNNING_STATES = ['leased', 'running'] as const satisfies JobState[];

/**
 * Pending states besides `queued`: `maxQueued` counts these (on `jobs_tenant_held`) and the queued
 * jobs (on `jobs_claim_fair`).
 */
export const HELD_STATES = ['awaiting_approval', 'blocked'] as const satisfies JobState[];

/**
 * A list of states as an SQL value list: `('leased', 'running')`. The count queries repeat the
 * predicates of the partial indexes they use (`jobs_tenant_running`, `jobs_tenant_held`) with these.
 */
export const sqlStates = (states: readonly JobState[]) => `(${states.map((s) => `'${s}'`).join(', ')})`;

/** The largest job-count limit accepted; counting stops at the limit, so a check costs at most this many index entries. */
export const MAX_JOB_LIMIT = 10_000_000;
/** The most tenants one claim may name in `maxRunning`. */
export const MAX_RUNNING_TENANTS = 10_000;
const MAX_RATE = 1_000_000;
const MAX_BURST = 1_000_000_000;

/** `maxQueued` of one submission, checked. */
export function normalizeSubmitQuota(raw: SubmitInput, path: string): number | null {
  if (raw.quota === undefined) return null;
  if (typeof raw.quota !== 'object' || raw.quota === null) fail(`${path}.quota`, 'must be an object');
  if (raw.quota.maxQueued === undefined) return null;
  return checkLimit(`${path}.quota.maxQueued`, raw.quota.maxQueued, MAX_JOB_LIMIT);
}

/** A claim's per-tenant ceilings on running work, checked; null when the claim has none. */
export interface RunningLimits {
  /** Tenant -> ceiling. */
  perTenant: Record<string, number>;
  /** The ceiling of tenants not in `perTenant`; null: none. */
  default: number | null;
}

export function normalizeRunningLimits(raw: ClaimOptions): RunningLimits | null {
  const perTenant: Record<string, number> = {};
  if (raw.maxRunning !== undefined) {
    if (typeof raw.maxRunning !== 'object' || raw.maxRunning === null || Array.isArray(raw.maxRunning))
      fail('claim.maxRunning', 'must be an object mapping tenant names to limits');
    const entries = Object.entries(raw.maxRunning);
    if (entries.length > MAX_RUNNING_TENANTS)
      fail('claim.maxRunning', `names ${entries.length} tenants; at most ${MAX_RUNNING_TENANTS} per claim`);
    for (const [tenant, limit] of entries) {
      checkName(`claim.maxRunning['${tenant}']`, tenant);
      perTenant[tenant] = checkLimit(`claim.maxRunning['${tenant}']`, limit, MAX_JOB_LIMIT);
    }
  }
  const fallback =
    raw.defaultMaxRunning === undefined
      ? null
      : checkLimit('claim.defaultMaxRunning', raw.defaultMaxRunning, MAX_JOB_LIMIT);
  if (fallback === null && Object.keys(perTenant).length === 0) return null;
  return { perTenant, default: fallback };
}

/** The ceiling that applies to `tenant`, or null for none. */
export function runningLimitOf(limits: RunningLimits | null, tenant: string): number | null {
  if (limits === null) return null;
  return Object.hasOwn(limits.perTenant, tenant) ? (limits.perTenant[tenant] as number) : limits.default;
}

function checkLimit(path: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max)
    fail(path, `must be an integer between 0 and ${max}, got ${describe(value)}`);
  return value;
}

export interface NormalizedTake {
  tenant: string;
  bucket: string;
  count: number;
  ratePerSecond: number;
  burst: number;
}

export function normalizeTakeTokens(raw: TakeTokensInput): NormalizedTake {
  if (typeof raw !== 'object' || raw === null) fail('takeTokens', 'must be an object');
  const tenant = checkName('takeTokens.tenant', raw.tenant);
  const bucket = checkName('takeTokens.bucket', raw.bucket ?? 'submit');
  const rate = raw.ratePerSecond;
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || rate > MAX_RATE)
    fail(
      'takeTokens.ratePerSecond',
      `must be a number above 0 and at most ${MAX_RATE}, got ${describe(rate)}`,
    );
  const burst = raw.burst ?? Math.max(1, rate);
  if (typeof burst !== 'number' || !Number.isFinite(burst) || burst < 1 || burst > MAX_BURST)
    fail('takeTokens.burst', `must be a number between 1 and ${MAX_BURST}, got ${describe(burst)}`);
  const count = raw.count ?? 1;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1)
    fail('takeTokens.count', `must be a positive integer, got ${describe(count)}`);
  if (count > burst)
    fail(
      'takeTokens.count',
      `is ${count}, more than the bucket holds (burst ${burst}), so it could never be granted; take at most ${Math.floor(burst)} at a time, or raise the burst`,
    );
  return { tenant, bucket, count, ratePerSecond: rate, burst };
}

/** A bucket's level: tokens as of a time (store clock, epoch ms). */
export interface BucketLevel {
  tokens: number;
  at: number;
}

/**
 * One take, decided: the bucket refills at the rate since its last update (never above the burst,
 * never backwards if the clock is), then gives `count` tokens if it has them. A missing bucket
 * starts full. Returns the level to store and the answer.
 */
export function takeFrom(
  level: BucketLevel | undefined,
  take: NormalizedTake,
  now: number,
): { level: BucketLevel; granted: boolean } {
  const at = level ? Math.max(level.at, now) : now;
  const refilled = level
    ? Math.min(take.burst, level.tokens + ((at - level.at) * take.ratePerSecond) / 1000)
    : take.burst;
  const granted = refilled >= take.count;
  return { level: { tokens: granted ? refilled - take.count : refilled, at }, granted };
}

/** The caller's answer from what the store kept: the tokens now in the bucket and whether the take was granted. */
export function takeResult(take: NormalizedTake, tokens: number, granted: boolean): TakeTokensResult {
  const remaining = Math.floor(tokens + 1e-9);
  if (granted) return { ok: true, remaining };
  const retryAfterMs = Math.max(1, Math.ceil(((take.count - tokens) * 1000) / take.ratePerSecond));
  return { ok: false, remaining, retryAfterMs };
}
