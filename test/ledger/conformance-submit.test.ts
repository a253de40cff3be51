/**
 * Ledger conformance: admission (submit, submitMany, idempotency) and listing. Runs against every
 * backend `backends()` returns.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IdempotencyConflictError } from '../../src/ledger/errors.js';
import type { Job, SubmitInput } from '../../src/ledger/types.js';
import { DEFAULTS } from '../../src/ledger/validate.js';
import { backends, type TestStore } from '../helpers/backends.js';
import {
  allJobs,
  assertBetween,
  assertSameJob,
  counts,
  eventsFor,
  eventTypesFor,
  plain,
  rejectsInvalid,
  rejectsWith,
  submitJob,
  uniq,
} from './conformance-helpers.js';

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    describe('submit', () => {
      it('admits a job as queued with every default, and one job.queued event', async () => {
        const tenant = uniq('tenant');
        const t0 = await t.store.now();
        const { job, created } = await t.store.submit({ tenant, task: 'email.send', input: { to: 'a@b.c' } });
        const t1 = await t.store.now();
        assert.equal(created, true);
        assert.equal(job.state, 'queued');
        assert.equal(job.reason, 'admitted');
        assert.equal(job.attempt, 0);
        assert.equal(job.fence, 0);
        assert.equal(job.correlationId, job.id);
        assert.equal(job.tenant, tenant);
        assert.equal(job.task, 'email.send');
        assert.equal(job.taskVersion, DEFAULTS.taskVersion);
        assert.equal(job.queue, DEFAULTS.queue);
        assert.equal(job.priority, DEFAULTS.priority);
        assert.equal(job.maxAttempts, DEFAULTS.maxAttempts);
        assert.equal(job.leaseMs, DEFAULTS.leaseMs);
        assert.equal(job.classification, DEFAULTS.classification);
        assert.deepEqual(job.backoff, DEFAULTS.backoff);
        assert.equal(job.cancelRequested, false);
        assert.deepEqual(job.input, { to: 'a@b.c' });
        for (const absent of [
          'output',
          'error',
          'workerId',
          'leaseExpiresAt',
          'deadline',
          'idempotencyKey',
        ] as const) {
          assert.equal(job[absent], undefined, `${absent} should be absent`);
        }
        assertBetween(job.runAt, t0, t1, 'runAt');
        assertBetween(job.createdAt, t0, t1, 'createdAt');
        assertSameJob(await t.store.get(job.id), job);

        const events = await eventsFor(t.store, job.id);
        assert.equal(events.length, 1);
        const [event] = events;
        assert.equal(event?.type, 'job.queued');
        assert.equal(event?.data.from, 'submitted');
        assert.equal(event?.tenant, tenant);
        assert.equal(event?.correlationId, job.id);
      });

      it('keeps every field the caller set', async () => {
        const now = await t.store.now();
        const input: SubmitInput = {
          tenant: uniq('tenant'),
          task: 'media.resize',
          taskVersion: 3,
          queue: uniq('q'),
          input: { w: 640, tags: ['a', 'b'], nested: { ok: true } },
          idempotencyKey: uniq('key'),
          correlationId: uniq('corr'),
          parentId: uniq('parent'),
          priority: -7,
          runAt: now + 60_000,
          deadline: now + 120_000,
          maxAttempts: 9,
          backoff: { baseMs: 50 },
          leaseMs: 1234,
          classification: 'confidential',
          authority: { signedBy: 'control', v: 1 },
        };
        const { job } = await t.store.submit(input);
        assert.equal(job.state, 'queued');
        assert.equal(job.taskVersion, 3);
        assert.equal(job.queue, input.queue);
        assert.deepEqual(job.input, input.input);
        assert.equal(job.idempotencyKey, input.idempotencyKey);
        assert.equal(job.correlationId, input.correlationId);
        assert.equal(job.parentId, input.parentId);
        assert.equal(job.priority, -7);
        assert.equal(job.runAt, now + 60_000);
        assert.equal(job.deadline, now + 120_000);
        assert.equal(job.maxAttempts, 9);
        assert.deepEqual(job.backoff, { baseMs: 50, maxMs: DEFAULTS.backoff.maxMs });
        assert.equal(job.leaseMs, 1234);
        assert.equal(job.classification, 'confidential');
        assert.deepEqual(job.authority, input.authority);
        assertSameJob(await t.store.get(job.id), job);
        const [event] = await eventsFor(t.store, job.id);
        assert.equal(event?.correlationId, input.correlationId);
      });

      it('admits a job that needs approval into awaiting_approval, where it is not claimable', async () => {
        const queue = uniq('q');
        const { job } = await t.store.submit({
          tenant: 'acme',
          task: 'pay',
          queue,
          input: 1,
          requiresApproval: true,
        });
        assert.equal(job.state, 'awaiting_approval');
        assert.equal(job.reason, 'approval_required');
        assert.equal(job.attempt, 0);
        assert.equal(job.fence, 0);
        const events = await eventsFor(t.store, job.id);
        assert.deepEqual(
          events.map((e) => [e.type, e.data.from]),
          [['job.awaiting_approval', 'submitted']],
        );
        assert.deepEqual(await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 10 }), []);
        assert.equal((await t.store.get(job.id))?.state, 'awaiting_approval');
      });
    });

    describe('submitMany', () => {
      it('admits every item, in input order, each with its own job.queued event', async () => {
        const tenant = uniq('tenant');
        const inputs = [0, 1, 2, 3, 4].map((i) => ({
          tenant,
          task: 'batch',
          queue: uniq('q'),
          input: { i },
        }));
        const results = await t.store.submitMany(inputs);
        assert.equal(results.length, 5);
        results.forEach((r, i) => {
          assert.equal(r.created, true);
          assert.deepEqual(r.job.input, { i });
          assert.equal(r.job.queue, inputs[i]?.queue);
          assert.equal(r.job.state, 'queued');
        });
        assert.equal(new Set(results.map((r) => r.job.id)).size, 5);
        for (const r of results) assert.deepEqual(await eventTypesFor(t.store, r.job.id), ['job.queued']);
      });

      it('writes nothing when any item is invalid', async () => {
        const tenant = uniq('tenant');
        const before = await counts(t.store);
        await rejectsInvalid(
          t.store.submitMany([
            { tenant, task: 'a', input: 1 },
            { tenant, task: 'a', input: 2, idempotencyKey: uniq('key') },
            { tenant, task: 'a', input: 3, priority: 1.5 },
            { tenant, task: 'a', input: 4 },
          ]),
          'submitMany[2].priority',
        );
        assert.deepEqual(await counts(t.store), before);
        assert.deepEqual(await allJobs(t.store, { tenant }), []);
      });

      it('writes nothing when any item conflicts with an earlier idempotency key', async () => {
        const tenant = uniq('tenant');
        const key = uniq('key');
        const first = await submitJob(t.store, {
          tenant,
          idempotencyKey: key,
          queue: 'shared',
          input: { v: 1 },
        });
        const before = await counts(t.store);
        const err = await rejectsWith(
          t.store.submitMany([
            { tenant, task: 'a', input: 'new-1' },
            { tenant, task: 'test.task', queue: 'shared', idempotencyKey: key, input: { v: 2 } },
            { tenant, task: 'a', input: 'new-2' },
          ]),
          IdempotencyConflictError,
          'idempotency_conflict',
        );
        assert.equal(err.existingJobId, first.id);
        assert.deepEqual(await counts(t.store), before);
        assert.deepEqual(
          (await allJobs(t.store, { tenant })).map((j) => j.id),
          [first.id],
        );
      });
    });

    describe('idempotency', () => {
      it('returns the first job for the same key and body, refuses a different body, per tenant', async () => {
        const tenant = uniq('tenant');
        const key = uniq('key');
        const body = { tenant, task: 'charge', queue: uniq('q'), input: { amount: 10 }, idempotencyKey: key };
        const first = await t.store.submit(body);
        assert.equal(first.created, true);
        assert.equal(first.job.idempotencyKey, key);
        const eventsBefore = await eventsFor(t.store, first.job.id);

        const replay = await t.store.submit({ ...body });
        assert.equal(replay.created, false);
        assertSameJob(replay.job, first.job, 'the replayed job');

        const before = await counts(t.store);
        const err = await rejectsWith(
          t.store.submit({ ...body, input: { amount: 11 } }),
          IdempotencyConflictError,
          'idempotency_conflict',
        );
        assert.equal(err.idempotencyKey, key);
        assert.equal(err.existingJobId, first.job.id);
        assert.deepEqual(await counts(t.store), before);
        assert.deepEqual(plain(await eventsFor(t.store, first.job.id)), plain(eventsBefore));
        assert.equal((await allJobs(t.store, { tenant })).length, 1);

        const other = await t.store.submit({ ...body, tenant: uniq('tenant'), input: { amount: 99 } });
        assert.equal(other.created, true);
        assert.notEqual(other.job.id, first.job.id);
        assert.equal(other.job.idempotencyKey, key);
      });
    });

    describe('list', () => {
      it('filters by tenant, states, task, queue and correlation id', async () => {
        const tenant = uniq('tenant');
        const qa = uniq('q');
        const qb = uniq('q');
        const corr = uniq('corr');
        const a1 = await submitJob(t.store, { tenant, task: 'task.a', queue: qa, correlationId: corr });
        const a2 = await submitJob(t.store, { tenant, task: 'task.a', queue: qb });
        const b1 = await submitJob(t.store, { tenant, task: 'task.b', queue: qa, correlationId: corr });
        const b2 = await submitJob(t.store, { tenant, task: 'task.b', queue: qb });
        const stranger = await submitJob(t.store, { tenant: uniq('tenant'), task: 'task.a', queue: qa });
        await t.store.cancel(b2.id);
        const ids = async (filter: Parameters<typeof allJobs>[1]) =>
          (await allJobs(t.store, filter)).map((j) => j.id).sort();
        const sorted = (...jobs: Job[]) => jobs.map((j) => j.id).sort();

        assert.deepEqual(await ids({ tenant }), sorted(a1, a2, b1, b2));
        assert.deepEqual(await ids({ tenant, task: 'task.a' }), sorted(a1, a2));
        assert.deepEqual(await ids({ tenant, queue: qa }), sorted(a1, b1));
        assert.deepEqual(await ids({ queue: qa }), sorted(a1, b1, stranger));
        assert.deepEqual(await ids({ correlationId: corr }), sorted(a1, b1));
        assert.deepEqual(await ids({ tenant, states: ['cancelled'] }), sorted(b2));
        assert.deepEqual(await ids({ tenant, states: ['queued', 'cancelled'] }), sorted(a1, a2, b1, b2));
        assert.deepEqual(await ids({ tenant, states: ['queued'], task: 'task.b' }), sorted(b1));
        assert.deepEqual(await ids({ tenant, states: ['succeeded'] }), []);
        assert.deepEqual(await ids({ tenant: uniq('tenant') }), []);
      });

      it('lists newest first', async () => {
        const tenant = uniq('tenant');
        const submitted: Job[] = [];
        for (let i = 0; i < 4; i++) submitted.push(await submitJob(t.store, { tenant, input: { i } }));
        const page = await t.store.list({ tenant });
        assert.deepEqual(
          page.jobs.map((j) => j.id),
          submitted.map((j) => j.id).reverse(),
        );
        assert.equal(page.nextCursor, undefined);
      });

      it('pages through 120 jobs 50 at a time, each job exactly once', async () => {
        const tenant = uniq('tenant');
        const results = await t.store.submitMany(
          Array.from({ length: 120 }, (_, i) => ({ tenant, task: 'paged', input: { i } })),
        );
        const newestFirst = results.map((r) => r.job.id).reverse();
        const pages: Job[][] = [];
        let cursor: string | undefined;
        do {
          const page = await t.store.list(
            { tenant },
            cursor === undefined ? { limit: 50 } : { limit: 50, cursor },
          );
          pages.push(page.jobs);
          cursor = page.nextCursor;
          assert.ok(pages.length <= 4, 'pagination must end');
        } while (cursor !== undefined);
        assert.deepEqual(
          pages.map((p) => p.length),
          [50, 50, 20],
        );
        const seen = pages.flat().map((j) => j.id);
        assert.equal(new Set(seen).size, 120);
        assert.deepEqual(seen, newestFirst);
      });

      it('rejects a cursor it did not issue', async () => {
        await rejectsInvalid(t.store.list({}, { cursor: 'definitely-not-a-cursor' }), 'cursor');
        await rejectsInvalid(t.store.list({}, { cursor: '' }), 'cursor');
      });
    });
  });
}
