/**
 * Shared pieces of the ledger conformance suite (`conformance-*.test.ts`): reading everything a store
 * holds, asserting typed errors and stale outcomes, and driving a job to a given state. Tests share
 * a store per file, so each test works in its own queue and tenant (`uniq`).
 */
import assert from 'node:assert/strict';
import { InvalidArgumentError, type LedgerError, StaleLeaseError } from '../../src/ledger/errors.js';
import type { Store } from '../../src/ledger/store.js';
import type {
  ClaimOptions,
  Job,
  ListFilter,
  OutboxEvent,
  Outcome,
  SubmitInput,
} from '../../src/ledger/types.js';

let counter = 0;

/** A name no other test uses (queues, tenants, tasks, worker ids). */
export function uniq(prefix: string): string {
  counter++;
  return `${prefix}-${process.pid}-${counter}`;
}

/** The store clock may round to the millisecond either way; time bounds allow this much. */
export const CLOCK_SLACK_MS = 1;

export function assertBetween(value: number | undefined, low: number, high: number, what: string): void {
  assert.equal(typeof value, 'number', `${what} should be a number, got ${String(value)}`);
  const v = value as number;
  assert.ok(
    v >= low - CLOCK_SLACK_MS && v <= high + CLOCK_SLACK_MS,
    `${what} = ${v} should be within [${low}, ${high}]`,
  );
}

/** Every job the filter matches, following cursors. */
export async function allJobs(store: Store, filter: ListFilter = {}): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await store.list(filter, cursor === undefined ? { limit: 500 } : { limit: 500, cursor });
    out.push(...page.jobs);
    if (page.nextCursor === undefined || page.jobs.length === 0) return out;
    cursor = page.nextCursor;
  }
}

/** Every outbox event after `afterSeq`. */
export async function allEvents(store: Store, afterSeq = 0): Promise<OutboxEvent[]> {
  const out: OutboxEvent[] = [];
  let after = afterSeq;
  for (;;) {
    const page = await store.readEvents(after, 500);
    if (page.length === 0) return out;
    out.push(...page);
    const last = page[page.length - 1];
    assert.ok(last && last.seq > after, 'readEvents must move forward');
    after = last.seq;
  }
}

export async function eventsFor(store: Store, jobId: string): Promise<OutboxEvent[]> {
  return (await allEvents(store)).filter((e) => e.jobId === jobId);
}

export async function eventTypesFor(store: Store, jobId: string): Promise<string[]> {
  return (await eventsFor(store, jobId)).map((e) => e.type);
}

/** The seq of the newest event (0 when there is none). */
export async function lastSeq(store: Store): Promise<number> {
  const events = await allEvents(store);
  return events[events.length - 1]?.seq ?? 0;
}

/** How many jobs and events the store holds, to prove that a rejected call wrote nothing. */
export async function counts(store: Store): Promise<{ jobs: number; events: number }> {
  return { jobs: (await allJobs(store)).length, events: (await allEvents(store)).length };
}

/** Compare as JSON, so an absent optional field and one set to `undefined` are the same. */
export function plain<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value));
}

export function assertSameJob(actual: Job | undefined, expected: Job | undefined, what = 'job'): void {
  assert.deepEqual(plain(actual), plain(expected), `${what} should be unchanged`);
}

type ErrorClass<E> = abstract new (...args: never[]) => E;

/** Await a promise that must reject with `cls` and `code`; returns the error for further checks. */
export async function rejectsWith<E extends LedgerError>(
  promise: Promise<unknown>,
  cls: ErrorClass<E>,
  code: string,
): Promise<E> {
  let value: unknown;
  try {
    value = await promise;
  } catch (err) {
    assert.ok(
      err instanceof cls,
      `expected ${cls.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
    );
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${cls.name} (${code}), but the call resolved with ${JSON.stringify(value)}`);
}

/** An `InvalidArgumentError` whose path ends with `pathEnd` and whose message names the path. */
export async function rejectsInvalid(promise: Promise<unknown>, pathEnd: string): Promise<void> {
  const err = await rejectsWith(promise, InvalidArgumentError, 'invalid_argument');
  assert.ok(err.path.endsWith(pathEnd), `error path '${err.path}' should end with '${pathEnd}'`);
  assert.ok(err.message.includes(err.path), `message '${err.message}' should name the path '${err.path}'`);
}

/** The outcome is a `StaleLeaseError` for `jobId` and `fence`. */
export function assertStale<T>(outcome: Outcome<T> | undefined, jobId: string, fence: number): void {
  assert.ok(outcome, 'an outcome for every item');
  assert.equal(outcome.jobId, jobId);
  assert.equal(
    outcome.ok,
    false,
    `expected a stale outcome for job ${jobId}, got ${JSON.stringify(outcome)}`,
  );
  if (outcome.ok) return;
  assert.ok(outcome.error instanceof StaleLeaseError, `expected StaleLeaseError, got ${outcome.error.name}`);
  assert.equal(outcome.error.code, 'stale_lease');
  assert.equal(outcome.error.jobId, jobId);
  assert.equal(outcome.error.fence, fence);
}

/** The outcome succeeded; returns its value. */
export function okValue<T>(outcome: Outcome<T> | undefined, jobId?: string): T {
  assert.ok(outcome, 'an outcome for every item');
  if (jobId !== undefined) assert.equal(outcome.jobId, jobId);
  if (!outcome.ok)
    assert.fail(`expected ok for job ${outcome.jobId}, got ${outcome.error.name}: ${outcome.error.message}`);
  return outcome.value;
}

/** Submit one job in a queue of its own (unless given) and return it. */
export async function submitJob(store: Store, input: Partial<SubmitInput> = {}): Promise<Job> {
  const { job, created } = await store.submit({
    tenant: 'acme',
    task: 'test.task',
    queue: uniq('q'),
    input: { n: 1 },
    ...input,
  });
  assert.equal(created, true);
  return job;
}

/** Claim exactly one job; fails if the claim returns another count. */
export async function claimOne(store: Store, options: Omit<ClaimOptions, 'limit'>): Promise<Job> {
  const jobs = await store.claim({ ...options, limit: 1 });
  assert.equal(
    jobs.length,
    1,
    `expected to claim one job from ${options.queues.join(', ')}, got ${jobs.length}`,
  );
  return jobs[0] as Job;
}

/** Claim the only job of `queue` and start it: the job as `running`. */
export async function runningJob(
  store: Store,
  queue: string,
  workerId: string,
  extra: Partial<Omit<ClaimOptions, 'limit' | 'queues' | 'workerId'>> = {},
): Promise<Job> {
  const leased = await claimOne(store, { workerId, queues: [queue], ...extra });
  const started = okValue((await store.start([{ jobId: leased.id, fence: leased.fence }]))[0], leased.id);
  assert.equal(started.state, 'running');
  const running = await store.get(leased.id);
  assert.ok(running, `job ${leased.id} exists`);
  assert.equal(running.state, 'running');
  assert.equal(running.fence, leased.fence);
  return running;
}

/** Sleep until the store clock has passed `at` (plus a margin). */
export async function sleepUntil(store: Store, at: number, marginMs = 20): Promise<void> {
  const wait = at - (await store.now()) + marginMs;
  if (wait > 0) await new Promise<void>((resolve) => setTimeout(resolve, wait));
}
