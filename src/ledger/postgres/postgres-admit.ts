/**
 * Admission (`submit`, `submitMany`) for the PostgreSQL ledger: batches are inserted a chunk per
 * statement, each row with its `job.<state>` event, in one transaction. A submission whose
 * (tenant, idempotency key) is taken resolves to the existing job when the body is the same, and
 * fails the whole batch with `IdempotencyConflictError` when it is not.
 */
import type pg from 'pg';
import { assertTransition } from '../../lifecycle/lifecycle.js';
import { IdempotencyConflictError } from '../errors.js';
import { newJobId } from '../ids.js';
import { admittedJob, type JobRow, rowToJob } from '../rows.js';
import { classificationRank, type Job, type SubmitResult } from '../types.js';
import type { NormalizedSubmit } from '../validate.js';
import { type Queryable, run, transaction, withRetry } from './postgres-db.js';
import { FIND_BY_KEYS, SUBMIT } from './postgres-queries.js';
import { checkMaxQueued } from './postgres-quotas.js';

/** Rows per INSERT statement, and a cap on the JSON bytes one statement carries. */
const CHUNK_ROWS = 1000;
const CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * `maxQueued[i]` is the pending-jobs limit of `items[i]` (null: none). With limits, the count, the
 * check and the inserts share one transaction that holds the tenants' pending locks
 * (postgres-quotas.ts), so concurrent submitters never take a tenant over its limit.
 */
export function admit(
  pool: pg.Pool,
  items: NormalizedSubmit[],
  maxQueued: (number | null)[],
): Promise<SubmitResult[]> {
  if (items.length === 0) return Promise.resolve([]);
  if (maxQueued.some((limit) => limit !== null)) {
    return withRetry(() =>
      transaction(pool, async (client) => {
        await checkMaxQueued(client, items, maxQueued, (keyed) => takenKeys(client, keyed));
        return admitOn(client, items);
      }),
    );
  }
  // One statement is atomic by itself: a single submission, or one chunk with no keys to resolve.
  const oneStatement =
    items.length === 1 || (items.length <= CHUNK_ROWS && items.every((i) => i.idempotencyKey === null));
  return withRetry(() =>
    oneStatement ? admitOn(pool, items) : transaction(pool, (client) => admitOn(client, items)),
  );
}

/** The (tenant, idempotency key) pairs of `keyed` already held by a job, as `tenant\0key`. */
async function takenKeys(db: Queryable, keyed: NormalizedSubmit[]): Promise<Set<string>> {
  if (keyed.length === 0) return new Set();
  const found = await run<JobRow>(db, FIND_BY_KEYS, [
    keyed.map((i) => i.tenant),
    keyed.map((i) => i.idempotencyKey),
  ]);
  return new Set(found.map((row) => `${row.tenant}\u0000${row.idempotency_key}`));
}

const keyOf = (item: NormalizedSubmit) =>
  item.idempotencyKey === null ? null : `${item.tenant}\u0000${item.idempotencyKey}`;

/** The job that holds an idempotency key, with the digest of the body that created it. */
interface Holder {
  job: Job;
  requestDigest: string | null;
}

async function admitOn(db: Queryable, items: NormalizedSubmit[]): Promise<SubmitResult[]> {
  const results: (SubmitResult | undefined)[] = items.map(() => undefined);
  const holders = new Map<string, Holder>();
  // Only the first submission of a key in the batch is inserted; later ones resolve against it.
  const seen = new Set<string>();
  let pending = items.flatMap((item, i) => {
    const key = keyOf(item);
    if (key === null) return [i];
    if (seen.has(key)) return [];
    seen.add(key);
    return [i];
  });
  for (let round = 1; pending.length > 0; round++) {
    if (round > 3)
      throw new Error('submit: an idempotency key kept conflicting but its job could not be read');
    const skipped: number[] = [];
    for (const chunk of chunks(pending, items)) {
      const ids = chunk.map((i) => items[i]!.id ?? newJobId());
      const rows = await run<{ id: string; created_at: number }>(
        db,
        SUBMIT,
        submitColumns(
          chunk.map((i) => items[i]!),
          ids,
        ),
      );
      const createdAt = new Map(rows.map((row) => [row.id, row.created_at]));
      chunk.forEach((index, j) => {
        const item = items[index]!;
        const id = ids[j]!;
        const now = createdAt.get(id);
        if (now === undefined) {
          skipped.push(index);
          return;
        }
        const job = admittedJob(item, id, now);
        results[index] = { job, created: true };
        const key = keyOf(item);
        if (key !== null) holders.set(key, { job, requestDigest: item.requestDigest });
      });
    }
    if (skipped.length === 0) break;
    const keyed = skipped.map((i) => items[i]!);
    const found = await run<JobRow>(db, FIND_BY_KEYS, [
      keyed.map((i) => i.tenant),
      keyed.map((i) => i.idempotencyKey),
    ]);
    for (const row of found) {
      holders.set(`${row.tenant}\u0000${row.idempotency_key}`, {
        job: rowToJob(row),
        requestDigest: row.request_digest,
      });
    }
    // A key whose holder is gone (its inserter rolled back after all): insert again.
    pending = skipped.filter((i) => !holders.has(keyOf(items[i]!)!));
  }
  // Replays and conflicts, in input order: the first conflict fails the whole batch.
  return items.map((item, i) => {
    const done = results[i];
    if (done) return done;
    const holder = holders.get(keyOf(item)!)!;
    if (holder.requestDigest !== item.requestDigest) {
      throw new IdempotencyConflictError(item.idempotencyKey!, holder.job.id);
    }
    return { job: holder.job, created: false };
  });
}

/** Split `indexes` into statements of at most CHUNK_ROWS rows and about CHUNK_BYTES of JSON. */
function chunks(indexes: number[], items: NormalizedSubmit[]): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  for (const i of indexes) {
    const size = items[i]!.inputJson.length + (items[i]!.authorityJson?.length ?? 0);
    if (current.length > 0 && (current.length >= CHUNK_ROWS || bytes + size > CHUNK_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(i);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** The SUBMIT statement's column arrays, in its parameter order. */
function submitColumns(items: NormalizedSubmit[], ids: string[]): unknown[] {
  const transitions = items.map((item) => {
    const to = item.requiresApproval ? 'awaiting_approval' : 'queued';
    const reason = item.requiresApproval ? 'approval_required' : 'admitted';
    assertTransition('submitted', to, reason);
    return { to, reason };
  });
  return [
    ids,
    items.map((i) => i.tenant),
    items.map((i) => i.task),
    items.map((i) => i.taskVersion),
    items.map((i) => i.queue),
    transitions.map((t) => t.to),
    transitions.map((t) => t.reason),
    items.map((i) => i.inputJson),
    items.map((i) => i.idempotencyKey),
    items.map((i) => i.requestDigest),
    items.map((i) => i.correlationId),
    items.map((i) => i.parentId),
    items.map((i) => i.priority),
    items.map((i) => i.runAt),
    items.map((i) => i.deadline),
    items.map((i) => classificationRank(i.classification)),
    items.map((i) => i.leaseMs),
    items.map((i) => i.backoff.baseMs),
    items.map((i) => i.backoff.maxMs),
    items.map((i) => i.maxAttempts),
    items.map((i) => i.authorityJson),
    items.map((i) => i.kind),
  ];
}
