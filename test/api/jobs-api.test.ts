/**
 * The job routes over HTTP, on every backend: submit (single, idempotent, batch all-or-none), list
 * with filters and cursors, get, the result long-poll, cancel and retry.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends } from '../helpers/backends.js';
import {
  type ApiFixture,
  assertJob,
  assertProblem,
  call,
  countJobs,
  createApiFixture,
  type JobBody,
  killJob,
  succeedJob,
} from './api-fixture.js';

for (const backend of backends()) {
  describe(`jobs API (${backend.dialect})`, () => {
    let f: ApiFixture;
    let key: string;
    before(async () => {
      f = await createApiFixture(backend);
      key = f.keys.default.submitter;
    });
    after(async () => {
      await f.close();
    });

    const submit = async (body: unknown, k = key) => call(f.app, { url: '/v1/jobs', key: k, body });
    const submitOk = async (body: unknown): Promise<JobBody> => assertJob(await submit(body), 201);

    it('submits a job: 201 with the Job resource', async () => {
      const before = Date.now();
      const res = await submit({ task: 'test.echo', input: { n: 7 }, priority: 5, correlationId: 'corr-1' });
      const job = assertJob(res, 201);
      assert.equal(job.task, 'test.echo');
      assert.equal(job.taskVersion, 1);
      assert.equal(job.tenant, 'default');
      assert.equal(job.queue, 'default');
      assert.equal(job.state, 'queued');
      assert.deepEqual(job.input, { n: 7 });
      assert.equal(job.attempt, 0);
      assert.equal(job.maxAttempts, 2);
      assert.equal(job.priority, 5);
      assert.equal(job.correlationId, 'corr-1');
      assert.equal(job.classification, 'internal');
      assert.equal(job.cancelRequested, false);
      for (const absent of ['output', 'error', 'parentId', 'idempotencyKey', 'deadline'] as const) {
        assert.equal(job[absent], undefined, `${absent} is absent`);
      }
      const created = Date.parse(job.createdAt);
      assert.ok(created >= before - 1000 && created <= Date.now() + 1000, 'createdAt is now');
      const stored = await f.store.get(job.id);
      assert.equal(stored?.tenant, 'default');
      assert.equal(stored?.state, 'queued');
    });

    it('defaults the correlation id to the job id and keeps runAt and deadline', async () => {
      const runAt = '2031-01-02T03:04:05.000Z';
      const deadline = '2032-01-02T03:04:05.000Z';
      const job = await submitOk({ task: 'test.echo', input: { n: 1 }, runAt, deadline });
      assert.equal(job.correlationId, job.id);
      assert.equal(job.runAt, runAt);
      assert.equal(job.deadline, deadline);
    });

    it('replays an idempotent submission with 200 and the same job', async () => {
      const body = { task: 'test.echo', input: { n: 1 }, idempotencyKey: 'idem-1' };
      const first = await submitOk(body);
      assert.equal(first.idempotencyKey, 'idem-1');
      const count = await countJobs(f.store);
      const again = assertJob(await submit(body), 200);
      assert.equal(again.id, first.id);
      assert.deepEqual(again, first);
      assert.equal(await countJobs(f.store), count, 'a replay writes no job');
    });

    it('refuses the same idempotency key with a different body: 409 idempotency_conflict', async () => {
      const first = await submitOk({ task: 'test.echo', input: { n: 1 }, idempotencyKey: 'idem-2' });
      const count = await countJobs(f.store);
      const p = assertProblem(
        await submit({ task: 'test.echo', input: { n: 2 }, idempotencyKey: 'idem-2' }),
        409,
        'idempotency_conflict',
      );
      assert.match(p.detail, /idem-2/);
      assert.match(p.detail, new RegExp(first.id));
      assert.equal(await countJobs(f.store), count);
      // Keys are per tenant: the same key in another tenant is a new job.
      const otherTenant = assertJob(
        await submit(
          { task: 'test.echo', input: { n: 2 }, idempotencyKey: 'idem-2' },
          f.keys.other.submitter,
        ),
        201,
      );
      assert.notEqual(otherTenant.id, first.id);
      assert.equal(otherTenant.tenant, 'other');
    });

    it('submits a batch all or none', async () => {
      const res = await call(f.app, {
        url: '/v1/jobs/batch',
        key,
        body: {
          jobs: [0, 1, 2].map((n) => ({ task: 'test.echo', input: { n }, correlationId: 'batch-ok' })),
        },
      });
      assert.equal(res.statusCode, 201, res.body);
      const { results } = res.json() as { results: { created: boolean; job: JobBody }[] };
      assert.equal(results.length, 3);
      assert.deepEqual(
        results.map((r) => [r.created, r.job.state, r.job.input]),
        [0, 1, 2].map((n) => [true, 'queued', { n }]),
      );
      assert.equal(new Set(results.map((r) => r.job.id)).size, 3);
      assert.equal(await countJobs(f.store, { correlationId: 'batch-ok' }), 3);

      const count = await countJobs(f.store);
      const bad = await call(f.app, {
        url: '/v1/jobs/batch',
        key,
        body: {
          jobs: [
            { task: 'test.echo', input: { n: 1 }, correlationId: 'batch-bad' },
            { task: 'test.echo', input: { n: 'two' }, correlationId: 'batch-bad' },
            { task: 'test.echo', input: { n: 3 }, correlationId: 'batch-bad' },
          ],
        },
      });
      const p = assertProblem(bad, 400, 'invalid_input');
      assert.deepEqual(
        (p.errors as { path: string }[]).map((e) => e.path),
        ['/jobs/1/input/n'],
        'the failing item of the batch is named',
      );
      assert.equal(await countJobs(f.store), count, 'no job of a refused batch is written');
      assert.equal(await countJobs(f.store, { correlationId: 'batch-bad' }), 0);

      const unknown = await call(f.app, {
        url: '/v1/jobs/batch',
        key,
        body: { jobs: [{ task: 'test.echo', input: { n: 1 } }, { task: 'no.such' }] },
      });
      assertProblem(unknown, 400, 'unknown_task');
      assertProblem(
        await call(f.app, { url: '/v1/jobs/batch', key, body: { jobs: [] } }),
        400,
        'invalid_request',
      );
      assert.equal(await countJobs(f.store), count);
    });

    it('stays idempotent under concurrent submits, retries and repeated keys in a batch', async () => {
      const body = { task: 'test.echo', input: { n: 11 }, idempotencyKey: 'race-1' };
      const count = await countJobs(f.store);
      const subs = await Promise.all(Array.from({ length: 12 }, () => submit(body)));
      assert.deepEqual(
        subs.map((r) => r.statusCode).sort((a, b) => b - a),
        [201, ...Array(11).fill(200)],
      );
      assert.equal(new Set(subs.map((r) => assertJob(r, r.statusCode).id)).size, 1);
      assert.equal(await countJobs(f.store), count + 1);

      const dead = await submitOk({ task: 'test.echo', input: { n: 12 } });
      await killJob(f.store, dead.id);
      const retries = await Promise.all(
        Array.from({ length: 8 }, () =>
          call(f.app, { url: `/v1/jobs/${dead.id}/retry`, key, method: 'POST' }),
        ),
      );
      assert.deepEqual(
        retries.map((r) => r.statusCode).sort((a, b) => b - a),
        [201, ...Array(7).fill(200)],
      );
      assert.equal(new Set(retries.map((r) => assertJob(r, r.statusCode).parentId)).size, 1);
      assert.equal(new Set(retries.map((r) => (r.json() as JobBody).id)).size, 1);

      const item = { task: 'test.echo', input: { n: 13 }, idempotencyKey: 'in-batch' };
      const same = await call(f.app, { url: '/v1/jobs/batch', key, body: { jobs: [item, item] } });
      assert.equal(same.statusCode, 201, same.body);
      const results = (same.json() as { results: { created: boolean; job: JobBody }[] }).results;
      assert.deepEqual(
        results.map((r) => r.created),
        [true, false],
      );
      assert.equal(results[0]?.job.id, results[1]?.job.id);
      const before = await countJobs(f.store);
      const clash = {
        jobs: [
          { ...item, idempotencyKey: 'clash' },
          { ...item, input: { n: 14 }, idempotencyKey: 'clash' },
        ],
      };
      assertProblem(
        await call(f.app, { url: '/v1/jobs/batch', key, body: clash }),
        409,
        'idempotency_conflict',
      );
      assert.equal(await countJobs(f.store), before, 'a refused batch writes nothing');
    });

    it('lists with a state filter and cursor pagination, every job exactly once', async () => {
      const corr = 'list-test';
      const ids: string[] = [];
      for (let n = 0; n < 7; n++) {
        ids.push((await submitOk({ task: 'test.echo', input: { n }, correlationId: corr })).id);
      }
      const cancelled = ids.slice(0, 3);
      for (const id of cancelled) {
        assert.equal(
          (await call(f.app, { url: `/v1/jobs/${id}/cancel`, key, method: 'POST' })).statusCode,
          200,
        );
      }
      const pages = async (qs: string): Promise<{ ids: string[]; pages: number }> => {
        const seen: string[] = [];
        let cursor: string | undefined;
        let n = 0;
        for (;;) {
          const url = `/v1/jobs?correlationId=${corr}&limit=2${qs}${cursor ? `&cursor=${cursor}` : ''}`;
          const res = await call(f.app, { url, key: f.keys.default.auditor });
          assert.equal(res.statusCode, 200, res.body);
          const body = res.json() as { jobs: JobBody[]; nextCursor?: string };
          assert.ok(body.jobs.length <= 2);
          seen.push(...body.jobs.map((j) => j.id));
          n++;
          if (body.nextCursor === undefined) return { ids: seen, pages: n };
          assert.ok(n < 20, 'pagination ends');
          cursor = body.nextCursor;
        }
      };
      const all = await pages('');
      assert.deepEqual(all.ids, [...ids].reverse(), 'newest first, each job exactly once');
      assert.ok(all.pages >= 4);
      const queued = await pages('&state=queued');
      assert.deepEqual(queued.ids, ids.slice(3).reverse());
      const both = await pages('&state=queued,cancelled');
      assert.deepEqual(both.ids, [...ids].reverse());
      const none = await call(f.app, { url: `/v1/jobs?correlationId=${corr}&state=dead`, key });
      assert.deepEqual(none.json(), { jobs: [] });
      const task = await call(f.app, { url: `/v1/jobs?correlationId=${corr}&task=test.any`, key });
      assert.deepEqual(task.json(), { jobs: [] });
    });

    it('gets a job', async () => {
      const job = await submitOk({ task: 'test.echo', input: { n: 3 } });
      const got = assertJob(
        await call(f.app, { url: `/v1/jobs/${job.id}`, key: f.keys.default.auditor }),
        200,
      );
      assert.deepEqual(got, job);
    });

    it('long-polls the result: 202 while pending, 200 once terminal', async () => {
      const job = await submitOk({ task: 'test.echo', input: { n: 4 } });
      const url = `/v1/jobs/${job.id}/result`;
      const now = assertJob(await call(f.app, { url, key }), 202);
      assert.equal(now.state, 'queued');
      const t0 = Date.now();
      const waited = assertJob(await call(f.app, { url: `${url}?waitMs=150`, key }), 202);
      assert.ok(Date.now() - t0 >= 140, 'waited about waitMs');
      assert.equal(waited.state, 'queued');

      const t1 = Date.now();
      const pending = call(f.app, { url: `${url}?waitMs=10000`, key });
      await new Promise((r) => setTimeout(r, 100));
      await succeedJob(f.store, job.id, { echoed: 4 });
      const done = assertJob(await pending, 200);
      assert.ok(Date.now() - t1 < 5000, 'answered when the job ended, not at waitMs');
      assert.equal(done.state, 'succeeded');
      assert.deepEqual(done.output, { echoed: 4 });
      assert.equal(done.attempt, 1);
      assert.equal(assertJob(await call(f.app, { url, key }), 200).state, 'succeeded');
    });

    it('cancels a queued job; a terminal job is 409 job_state_conflict', async () => {
      const job = await submitOk({ task: 'test.echo', input: { n: 5 } });
      const res = await call(f.app, { url: `/v1/jobs/${job.id}/cancel`, key, method: 'POST' });
      const cancelled = assertJob(res, 200);
      assert.equal(cancelled.id, job.id);
      assert.equal(cancelled.state, 'cancelled');
      assert.equal((await f.store.get(job.id))?.state, 'cancelled');
      const again = await call(f.app, { url: `/v1/jobs/${job.id}/cancel`, key, method: 'POST' });
      const p = assertProblem(again, 409, 'job_state_conflict');
      assert.match(p.detail, /cancelled/);

      const done = await submitOk({ task: 'test.echo', input: { n: 6 } });
      await succeedJob(f.store, done.id, null);
      const late = await call(f.app, { url: `/v1/jobs/${done.id}/cancel`, key, method: 'POST' });
      assertProblem(late, 409, 'job_state_conflict');
      assert.equal((await f.store.get(done.id))?.state, 'succeeded');
    });

    it('retries a dead or cancelled job as a new job, idempotently', async () => {
      const dead = await submitOk({
        task: 'test.echo',
        input: { n: 8 },
        priority: 3,
        correlationId: 'retry-c',
      });
      await killJob(f.store, dead.id);
      const cancelled = await submitOk({ task: 'test.echo', input: { n: 9 } });
      await call(f.app, { url: `/v1/jobs/${cancelled.id}/cancel`, key, method: 'POST' });
      for (const original of [dead, cancelled]) {
        const url = `/v1/jobs/${original.id}/retry`;
        const count = await countJobs(f.store);
        const retry = assertJob(
          await call(f.app, { url, key: f.keys.default.operator, method: 'POST' }),
          201,
        );
        assert.notEqual(retry.id, original.id);
        assert.equal(retry.parentId, original.id);
        assert.equal(retry.state, 'queued');
        assert.equal(retry.attempt, 0);
        assert.deepEqual(retry.input, original.input);
        assert.equal(retry.task, original.task);
        assert.equal(retry.priority, original.priority);
        assert.equal(retry.correlationId, original.correlationId);
        assert.equal(await countJobs(f.store), count + 1);
        const second = assertJob(await call(f.app, { url, key, method: 'POST' }), 200);
        assert.equal(second.id, retry.id);
        assert.equal(await countJobs(f.store), count + 1, 'a second retry writes nothing');
      }
    });

    it('refuses to retry a queued or succeeded job: 409 job_state_conflict', async () => {
      const job = await submitOk({ task: 'test.echo', input: { n: 10 } });
      const count = await countJobs(f.store);
      const p = assertProblem(
        await call(f.app, { url: `/v1/jobs/${job.id}/retry`, key, method: 'POST' }),
        409,
        'job_state_conflict',
      );
      assert.match(p.detail, /queued/);
      await succeedJob(f.store, job.id, 1);
      assertProblem(
        await call(f.app, { url: `/v1/jobs/${job.id}/retry`, key, method: 'POST' }),
        409,
        'job_state_conflict',
      );
      assert.equal(await countJobs(f.store), count);
    });
  });
}
