/**
 * Fuzzing the API from its own OpenAPI document, on every backend, with the config and evidence
 * routes too: thousands of seeded requests (operation, path parameters, querystring, body, content
 * type and Authorization all drawn at random, from valid to garbage; see fuzz-requests.ts). The API
 * must never answer 5xx, every error must be problem+json with a `code`, no 2xx may show another
 * tenant's job, and the app must still serve afterwards. Hostile requests (nesting past the body
 * depth limit, lone surrogates, values of the wrong JSON type, two Authorization headers; see
 * fuzz-bodies.ts) must get their specific 400, or a refusal that comes before the body is read.
 *
 * Reproduce a run with BULKHEAD_FUZZ_SEED=<the seed it printed>; BULKHEAD_FUZZ_RUNS sets the number
 * of requests (default 2000). Violations are grouped by kind, each with the first request that hit it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { backends } from '../helpers/backends.js';
import { type ApiFixture, assertJob, call, createApiFixture, killJob, succeedJob } from './api-fixture.js';
import { expectationBroken, type Hostility } from './fuzz-bodies.js';
import { type FuzzRequest, fuzzRequests, type OpenApiDoc } from './fuzz-requests.js';

const SEED = Number(process.env.BULKHEAD_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env.BULKHEAD_FUZZ_RUNS ?? 2000);

for (const backend of backends()) {
  describe(`API fuzz from the OpenAPI document (${backend.dialect})`, () => {
    let f: ApiFixture;
    let doc: OpenApiDoc;
    const pathPool: string[] = ['default', 'other', 'nope'];
    /** What the server logged as errors (the details of a 500 never reach the client). */
    const serverErrors: string[] = [];

    before(async () => {
      const logger = pino({ level: 'error' }, { write: (line: string) => void serverErrors.push(line) });
      f = await createApiFixture(backend, { logger, planes: true });
      doc = (await call(f.app, { url: '/v1/openapi.json' })).json();
      const submit = async (key: string) => {
        const body = { task: 'test.echo', input: { n: 1 } };
        return assertJob(await call(f.app, { url: '/v1/jobs', key, body }), 201).id;
      };
      const admin = f.keys.default.admin;
      const [queued, dead, done, cancelled, theirs] = [
        await submit(admin),
        await submit(admin),
        await submit(admin),
        await submit(admin),
        await submit(f.keys.other.admin),
      ];
      await killJob(f.store, dead);
      await succeedJob(f.store, done, { ok: true });
      await f.store.cancel(cancelled);
      pathPool.push(queued, dead, done, cancelled, theirs);
      // Every key id but the fuzzing admin's own, which must survive the run.
      for (const [tenant, ids] of Object.entries(f.keyIds)) {
        for (const [role, id] of Object.entries(ids)) {
          if (tenant !== 'default' || role !== 'admin') pathPool.push(id);
        }
      }
    });
    after(async () => {
      await f.close();
    });

    it(`answers ${RUNS} random requests without a 5xx, every error as problem+json (seed ${SEED})`, async (t) => {
      t.diagnostic(`fuzz seed ${SEED} (BULKHEAD_FUZZ_SEED=${SEED} to reproduce), ${RUNS} requests`);
      const k = f.keys;
      const reqs = fuzzRequests({
        doc,
        keys: {
          main: [k.default.admin, 'default'],
          others: [
            [k.other.admin, 'other'],
            [k.other.submitter, 'other'],
            [k.default.auditor, 'default'],
            [k.default.worker, 'default'],
          ],
        },
        pathPool,
        seed: SEED,
        runs: RUNS,
      });
      assert.equal(reqs.length, RUNS);

      const groups = new Map<string, { count: number; ops: Set<string>; example: string }>();
      const note = (kind: string, r: FuzzRequest, detail: string) => {
        const g = groups.get(kind) ?? { count: 0, ops: new Set<string>(), example: '' };
        g.count++;
        g.ops.add(r.op);
        if (!g.example) {
          const payload = r.inject.payload === undefined ? '' : String(r.inject.payload).slice(0, 160);
          const headers = JSON.stringify(r.inject.headers).slice(0, 200);
          g.example = `${r.inject.method} ${r.inject.url.slice(0, 160)} ${headers} ${payload} -> ${detail}`;
        }
        groups.set(kind, g);
      };
      const statuses = new Map<number, number>();
      /** Per hostility: requests labelled with it, and those refused specifically for it. */
      const hostile = new Map<Hostility, { sent: number; refused: number }>();
      const codes = new Map<string, number>();
      const started = Date.now();
      for (const r of reqs) {
        let res: Awaited<ReturnType<typeof f.app.inject>>;
        try {
          res = await f.app.inject(r.inject);
        } catch (err) {
          note('inject threw', r, String(err));
          continue;
        }
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        const routed = f.app.findRoute({
          method: r.inject.method as 'GET',
          url: r.inject.url.split('?')[0] ?? '',
        });
        const broken = expectationBroken(r.expects, res, { bodyRead: r.bodyRead, routed: routed !== null });
        if (broken)
          note(
            `hostile request not refused as it must be: ${broken}`,
            r,
            `${res.statusCode} ${res.body.slice(0, 200)}`,
          );
        for (const e of r.expects) {
          const h = hostile.get(e) ?? { sent: 0, refused: 0 };
          h.sent++;
          const specific = res.statusCode === 400 && res.json().code === 'invalid_request';
          if (specific && r.expects.length === 1) h.refused++;
          hostile.set(e, h);
        }
        const detail = `${res.statusCode} ${res.headers['content-type']} ${res.body.slice(0, 200)}`;
        if (res.statusCode >= 500) {
          const why = serverErrors.splice(0).map((line) => {
            const err = (JSON.parse(line) as { err?: { type?: string; message?: string; stack?: string } })
              .err;
            return `${err?.type}: ${err?.message?.slice(0, 200)} ${err?.stack?.split('\n')[1]?.trim()}`;
          });
          note(`status ${res.statusCode} (${why.join('; ')})`, r, detail);
        }
        if (res.statusCode >= 400) {
          let p: Record<string, unknown> | undefined;
          try {
            p = res.json();
          } catch {
            p = undefined;
          }
          const ok =
            /^application\/problem\+json/.test(String(res.headers['content-type'])) &&
            typeof p?.code === 'string' &&
            p.code.length > 0 &&
            p.status === res.statusCode &&
            ['type', 'title', 'detail'].every((m) => typeof p?.[m] === 'string');
          const code = `${res.statusCode} ${String(p?.code)}`;
          codes.set(code, (codes.get(code) ?? 0) + 1);
          if (!ok) note(`${res.statusCode} not problem+json (${String(p?.code)})`, r, detail);
        } else if (r.tenant !== null && r.op.includes('/v1/jobs') && res.body.startsWith('{')) {
          type Jobs = {
            tenant?: string;
            jobs?: { tenant: string }[];
            results?: { job: { tenant: string } }[];
          };
          const body = res.json() as Jobs;
          const jobs = [body, ...(body.jobs ?? []), ...(body.results ?? []).map((x) => x.job)];
          if (jobs.some((j) => j.tenant !== undefined && j.tenant !== r.tenant))
            note('tenant leak', r, detail);
        }
      }
      const elapsed = Date.now() - started;
      t.diagnostic(
        `${RUNS} requests in ${elapsed} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
      t.diagnostic(
        `error codes ${JSON.stringify(Object.fromEntries([...codes].sort((a, b) => b[1] - a[1])))}`,
      );
      for (const [kind, g] of groups) {
        t.diagnostic(`${kind}: ${g.count} requests to ${[...g.ops].join(', ')}; e.g. ${g.example}`);
      }
      // The requests are spread over every operation (jobs, config, evidence, tenants, keys), and
      // only the two submit routes create: a share of 1 in 100 still proves the fuzzer reaches it.
      assert.ok(
        (statuses.get(201) ?? 0) > RUNS / 100,
        'a fair share of the requests got through to create jobs',
      );
      assert.ok((statuses.get(200) ?? 0) > RUNS / 40, 'a fair share of the requests got a 200');
      t.diagnostic(`hostile requests ${JSON.stringify(Object.fromEntries(hostile))}`);
      for (const kind of ['too_deep', 'lone_surrogate', 'wrong_type', 'two_auth'] as const) {
        assert.ok((hostile.get(kind)?.refused ?? 0) > 0, `some ${kind} requests reached their specific 400`);
      }
      const report = [...groups].map(
        ([kind, g]) => `${kind}: ${g.count} requests to ${[...g.ops].join(', ')}`,
      );
      assert.deepEqual(report, [], `violations (seed ${SEED}; examples in the diagnostics above)`);
    });

    it('still serves after the run: /healthz 200 and a valid submit 201', async () => {
      const health = await call(f.app, { url: '/healthz' });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(health.json(), { status: 'ok' });
      const admin = f.keys.default.admin;
      const body = { task: 'test.echo', input: { n: 42 } };
      const job = assertJob(await call(f.app, { url: '/v1/jobs', key: admin, body }), 201);
      assert.deepEqual(job.input, { n: 42 });
      assert.equal(job.state, 'queued');
      assert.equal(assertJob(await call(f.app, { url: `/v1/jobs/${job.id}`, key: admin }), 200).id, job.id);
      const v1 = await call(f.app, { url: '/v1/health', key: admin });
      assert.equal(v1.statusCode, 200, v1.body);
    });
  });
}
