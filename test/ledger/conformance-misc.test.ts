/**
 * Ledger conformance: the transactional outbox, rejection of bad input without partial writes, and
 * migrations (reopening existing data, refusing a schema newer than the code). Runs against every
 * backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { JobNotFoundError, SchemaTooNewError } from '../../src/ledger/errors.js';
import { knownVersion } from '../../src/ledger/migrations.js';
import type { OutboxEvent } from '../../src/ledger/types.js';
import { LIMITS } from '../../src/ledger/validate.js';
import type { JobState } from '../../src/lifecycle/lifecycle.js';
import { type Backend, backends, sleep, type TestStore } from '../helpers/backends.js';
import {
  allEvents,
  assertSameJob,
  counts,
  eventsFor,
  lastSeq,
  okValue,
  rejectsInvalid,
  rejectsWith,
  runningJob,
  submitJob,
  uniq,
} from './conformance-helpers.js';

/** Record a schema version far beyond what the code knows, straight into the migrations table. */
async function pokeFutureSchema(backend: Backend, url: string, version: number): Promise<void> {
  if (backend.dialect === 'sqlite') {
    const db = new Database(url);
    try {
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        version,
        'from_the_future',
        Date.now(),
      );
    } finally {
      db.close();
    }
    return;
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const column = await client.query<{ data_type: string }>(
      `SELECT data_type FROM information_schema.columns
        WHERE table_schema = 'bulkhead' AND table_name = 'schema_migrations' AND column_name = 'applied_at'`,
    );
    const timestamp = /timestamp/.test(column.rows[0]?.data_type ?? '');
    await client.query(
      `INSERT INTO bulkhead.schema_migrations (version, name, applied_at) VALUES ($1, $2, ${timestamp ? 'now()' : '$3'})`,
      timestamp ? [version, 'from_the_future'] : [version, 'from_the_future', Date.now()],
    );
  } finally {
    await client.end();
  }
}

function assertAscending(events: OutboxEvent[]): void {
  events.forEach((e, i) => {
    if (i > 0) assert.ok(e.seq > (events[i - 1]?.seq ?? 0), `seq ${e.seq} follows ${events[i - 1]?.seq}`);
  });
}

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    describe('outbox', () => {
      it('records one event per transition, in order, with the job’s tenant and correlation id', async () => {
        const job = await submitJob(t.store, { tenant: uniq('tenant'), correlationId: uniq('corr') });
        const running = await runningJob(t.store, job.queue, uniq('w'));
        okValue((await t.store.complete([{ jobId: job.id, fence: running.fence, output: 1 }]))[0]);
        const events = await eventsFor(t.store, job.id);
        assertAscending(events);
        assert.deepEqual(
          events.map((e) => [e.type, e.data.from]),
          [
            ['job.queued', 'submitted'],
            ['job.leased', 'queued'],
            ['job.running', 'leased'],
            ['job.succeeded', 'running'],
          ],
        );
        for (const e of events) {
          assert.equal(e.tenant, job.tenant);
          assert.equal(e.correlationId, job.correlationId);
          assert.ok(e.at >= job.createdAt - 1);
        }
      });

      it('records a failed attempt and its retry as separate transitions', async () => {
        const job = await submitJob(t.store, { backoff: { baseMs: 0, maxMs: 0 } });
        const first = await runningJob(t.store, job.queue, uniq('w'));
        const failed = await t.store.fail([
          { jobId: job.id, fence: first.fence, error: { code: 'boom', message: 'x' } },
        ]);
        assert.equal(okValue(failed[0]).state, 'queued');
        const second = await runningJob(t.store, job.queue, uniq('w'));
        okValue((await t.store.complete([{ jobId: job.id, fence: second.fence }]))[0]);
        const events = await eventsFor(t.store, job.id);
        assertAscending(events);
        assert.deepEqual(
          events.map((e) => [e.type, e.data.from]),
          [
            ['job.queued', 'submitted'],
            ['job.leased', 'queued'],
            ['job.running', 'leased'],
            ['job.failed', 'running'],
            ['job.queued', 'failed'],
            ['job.leased', 'queued'],
            ['job.running', 'leased'],
            ['job.succeeded', 'running'],
          ],
        );
      });

      it('pages with afterSeq, each event once, ascending', async () => {
        const start = await lastSeq(t.store);
        const tenant = uniq('tenant');
        await t.store.submitMany(Array.from({ length: 23 }, (_, i) => ({ tenant, task: 'paged', input: i })));
        const whole = await t.store.readEvents(start, 1000);
        assert.equal(whole.length, 23);
        assertAscending(whole);
        assert.ok(whole.every((e) => e.type === 'job.queued' && e.tenant === tenant));
        const paged: OutboxEvent[] = [];
        let after = start;
        for (;;) {
          const page = await t.store.readEvents(after, 5);
          assert.ok(page.length <= 5);
          if (page.length === 0) break;
          paged.push(...page);
          after = page[page.length - 1]?.seq ?? after;
        }
        assert.deepEqual(
          paged.map((e) => e.seq),
          whole.map((e) => e.seq),
        );
        assert.equal(new Set(paged.map((e) => e.jobId)).size, 23);
        assert.deepEqual(await t.store.readEvents(after, 10), []);
      });
    });

    describe('wake', () => {
      it('tells listeners the queue of a new submission, until they unsubscribe', async () => {
        const queue = uniq('q');
        const heard: string[] = [];
        const unsubscribe = t.store.onWake((q) => heard.push(q));
        try {
          await submitJob(t.store, { queue });
          for (let waited = 0; !heard.includes(queue) && waited < 5000; waited += 10) await sleep(10);
          assert.ok(heard.includes(queue), `a wake for ${queue}, heard ${JSON.stringify(heard)}`);
        } finally {
          unsubscribe();
        }
        const count = heard.length;
        await submitJob(t.store, { queue });
        await sleep(200);
        assert.equal(heard.length, count, 'no wake after unsubscribing');
      });
    });

    describe('bad input', () => {
      it('rejects bad arguments with a typed error naming the field, and writes nothing', async () => {
        const job = await submitJob(t.store);
        const running = await runningJob(t.store, job.queue, uniq('w'));
        const before = await counts(t.store);
        const snapshot = await t.store.get(job.id);
        const sub = { tenant: 'acme', task: 'a', input: 1 };
        const claim = { workerId: 'w', queues: ['default'], limit: 1 };
        const bad = (states: unknown) => states as JobState[];

        await rejectsInvalid(t.store.list({ states: bad(['queued', 'bogus']) }), 'list.states[1]');
        await rejectsInvalid(t.store.claim({ ...claim, leaseMs: 0 }), 'claim.leaseMs');
        await rejectsInvalid(t.store.claim({ ...claim, leaseMs: -5 }), 'claim.leaseMs');
        await rejectsInvalid(t.store.claim({ ...claim, leaseMs: LIMITS.minLeaseMs - 1 }), 'claim.leaseMs');
        await rejectsInvalid(t.store.claim({ ...claim, queues: [] }), 'claim.queues');
        await rejectsInvalid(t.store.claim({ ...claim, limit: 0 }), 'claim.limit');
        await rejectsInvalid(t.store.submit({ ...sub, leaseMs: 0 }), 'leaseMs');
        await rejectsInvalid(t.store.submit({ ...sub, leaseMs: -1 }), 'leaseMs');
        await rejectsInvalid(t.store.submit({ ...sub, idempotencyKey: 'k'.repeat(201) }), 'idempotencyKey');
        await rejectsInvalid(t.store.submit({ ...sub, priority: 1.5 }), 'priority');
        await rejectsInvalid(t.store.submit({ ...sub, priority: LIMITS.maxPriority + 1 }), 'priority');
        await rejectsInvalid(t.store.submit({ ...sub, maxAttempts: 0 }), 'maxAttempts');
        await rejectsInvalid(t.store.submit({ ...sub, tenant: '' }), 'tenant');
        await rejectsInvalid(t.store.list({}, { limit: LIMITS.maxListLimit + 1 }), 'limit');
        // One bad item stops the whole batch before anything is written: the valid lease stays running.
        await rejectsInvalid(
          t.store.complete([
            { jobId: job.id, fence: running.fence },
            { jobId: 'other', fence: 0 },
          ]),
          'fence',
        );
        await rejectsInvalid(
          t.store.fail([
            { jobId: job.id, fence: running.fence, error: { code: 'Not A Code', message: 'x' } },
          ]),
          'code',
        );
        const notFound = await rejectsWith(t.store.cancel('missing-job'), JobNotFoundError, 'job_not_found');
        assert.equal(notFound.jobId, 'missing-job');

        assert.deepEqual(await counts(t.store), before);
        assertSameJob(await t.store.get(job.id), snapshot);
        assert.equal(snapshot?.state, 'running');

        const longest = await t.store.submit({
          ...sub,
          idempotencyKey: 'k'.repeat(LIMITS.maxIdempotencyKeyLength),
        });
        assert.equal(longest.created, true);
        assert.equal(longest.job.idempotencyKey?.length, LIMITS.maxIdempotencyKeyLength);
      });
    });

    describe('migrations', () => {
      it('reopens a store on existing data', async () => {
        const job = await submitJob(t.store);
        const other = await t.reopen();
        assert.deepEqual(await other.get(job.id), await t.store.get(job.id));
        const fromOther = await submitJob(other);
        assert.equal((await t.store.get(fromOther.id))?.state, 'queued');
        const seqs = (await allEvents(other)).map((e) => e.seq);
        assert.deepEqual(
          seqs,
          (await allEvents(t.store)).map((e) => e.seq),
        );
      });

      it('refuses a database whose schema is newer than the code knows', async () => {
        const own = await backend.create();
        try {
          await submitJob(own.store);
          const future = knownVersion(backend.dialect) + 1000;
          await pokeFutureSchema(backend, own.url, future);
          const err = await rejectsWith(own.reopen(), SchemaTooNewError, 'schema_too_new');
          assert.equal(err.found, future);
          assert.equal(err.known, knownVersion(backend.dialect));
          assert.match(err.message, new RegExp(String(future)));
        } finally {
          await own.cleanup();
        }
      });
    });
  });
}
