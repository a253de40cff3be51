/**
 * Input a new user sends by mistake (issue 12, item 7), on every backend: JSON nested past the body
 * limit, lone surrogates, values of the wrong JSON type and two Authorization headers are each a 400
 * `invalid_request` naming what was wrong, where and what is allowed, and write nothing. The
 * neighbours still work: nesting up to the limit is parsed, surrogate pairs are kept, the querystring
 * is still coerced (`?limit=2`), and one Authorization header is enough.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { MAX_BODY_DEPTH } from '../../src/api/json-body.js';
import { backends } from '../helpers/backends.js';
import {
  type ApiFixture,
  assertJob,
  assertProblem,
  type Call,
  call,
  countJobs,
  createApiFixture,
} from './api-fixture.js';

const json = { 'content-type': 'application/json' };

/** POST `{"task":"test.any"}` with exactly these headers (Host too), in this order, over HTTP. */
function fetchRaw(url: string, headers: [string, string][]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: headers.flat() }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end('{"task":"test.any"}');
  });
}
const arrays = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const objects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

for (const backend of backends()) {
  describe(`API input hardening (${backend.dialect})`, () => {
    let f: ApiFixture;
    let admin: string;
    /** A request that must be a 400 invalid_request and write no job; returns the problem. */
    const refused = async (c: Call) => {
      const before = await countJobs(f.store);
      const p = assertProblem(await call(f.app, c), 400, 'invalid_request');
      assert.equal(await countJobs(f.store), before, `a refused ${c.url} wrote no job`);
      const errors = p.errors as { path: string; message: string }[];
      assert.ok(Array.isArray(errors) && errors.length > 0, 'the problem lists its errors');
      return { ...p, errors };
    };
    const submitRaw = (raw: string, url = '/v1/jobs'): Call => ({ url, key: admin, raw, headers: json });

    before(async () => {
      f = await createApiFixture(backend);
      admin = f.keys.default.admin;
    });
    after(async () => {
      await f.close();
    });

    it(`nesting past ${MAX_BODY_DEPTH} levels: 400 naming the path and the limit, on every JSON route`, async () => {
      const limit = new RegExp(
        `nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep; a JSON request body may nest at most ${MAX_BODY_DEPTH}$`,
      );
      // The body object is one level: input may nest MAX_BODY_DEPTH - 1 more.
      for (const depth of [MAX_BODY_DEPTH, 1000, 100_000]) {
        for (const [shape, nest, path] of [
          ['arrays', arrays, 'body/input/0/0/0/0/0/0/0/…'],
          ['objects', objects, 'body/input/a/a/a/a/a/a/a/…'],
        ] as const) {
          const raw = `{"task":"test.any","idempotencyKey":"deep-${shape}-${depth}","input":${nest(depth)}}`;
          const p = await refused(submitRaw(raw));
          assert.equal(p.detail, `the request is invalid: ${path}: ${p.errors[0]?.message}`);
          assert.match(p.detail, limit);
          assert.deepEqual(
            p.errors.map((e) => e.path),
            [path],
          );
        }
      }
      const short = await refused(submitRaw(`{"task":"test.any","input":{"x":[{"y":${arrays(600)}}]}}`));
      assert.equal(short.errors[0]?.path, 'body/input/x/0/y/0/0/0/0/…', 'eight steps, then …');
      const batch = await refused(
        submitRaw(
          `{"jobs":[{"task":"test.any"},{"task":"test.any","input":${objects(600)}}]}`,
          '/v1/jobs/batch',
        ),
      );
      assert.equal(batch.errors[0]?.path, 'body/jobs/1/input/a/a/a/a/a/…');
      // Not only submissions: the check is the JSON parser's, for every route.
      for (const [url, raw] of [
        ['/v1/tenants', `{"name":${arrays(5000)}}`],
        ['/v1/tenants/default/keys', `{"roles":${arrays(5000)}}`],
        ['/v1/events/prune', `{"throughSeq":${objects(5000)}}`],
        ['/v1/jobs', arrays(5000)],
      ] as const) {
        const p = await refused(submitRaw(raw, url));
        assert.match(p.detail, limit, url);
      }
      // A key of the same request, resent well-formed, is free: nothing was stored under it.
      const ok = await call(f.app, {
        url: '/v1/jobs',
        key: admin,
        body: { task: 'test.any', idempotencyKey: 'deep-arrays-1000' },
      });
      assert.equal(assertJob(ok, 201).idempotencyKey, 'deep-arrays-1000');
    });

    it(`nesting up to ${MAX_BODY_DEPTH} levels is parsed, and refused only by the limits after it`, async () => {
      // Exactly at the limit: the ledger's own 64-level limit on input answers, naming it.
      const p = assertProblem(
        await call(f.app, submitRaw(`{"task":"test.any","input":${arrays(MAX_BODY_DEPTH - 1)}}`)),
        400,
        'invalid_argument',
      );
      assert.match(
        p.detail,
        new RegExp(`submit\\.input: nests ${MAX_BODY_DEPTH - 1} levels deep; at most 64`),
      );
      const name = await refused(submitRaw(`{"name":${arrays(MAX_BODY_DEPTH - 1)}}`, '/v1/tenants'));
      assert.equal(name.detail, 'the request is invalid: body/name: must be string, got an array');
      assertJob(await call(f.app, submitRaw(`{"task":"test.any","input":${objects(60)}}`)), 201);
    });

    it('a lone surrogate in any string or key: 400 naming the path and the code unit', async () => {
      const pairing =
        /strings and keys must pair each high surrogate \(\\ud800-\\udbff\) with a low one \(\\udc00-\\udfff\)$/;
      const cases: [string, unknown, string, RegExp][] = [
        [
          'input',
          { task: 'test.any', input: 'x\ud800y' },
          'body/input',
          /the string is not well-formed Unicode: it holds a lone surrogate \(\\ud800 at index 1\)/,
        ],
        [
          'idempotencyKey',
          { task: 'test.any', input: 1, idempotencyKey: '\ud800' },
          'body/idempotencyKey',
          /the string .* \(\\ud800 at index 0\)/,
        ],
        [
          'correlationId',
          { task: 'test.any', correlationId: 'c-\udfff' },
          'body/correlationId',
          /\\udfff at index 2/,
        ],
        ['task', { task: 'test.\udc00any' }, 'body/task', /\\udc00 at index 5/],
        [
          'a key in input',
          { task: 'test.any', input: { ok: { '\udfffk': 1 } } },
          'body/input/ok',
          /the key "\\udfffk" is not well-formed Unicode: it holds a lone surrogate \(\\udfff at index 0\)/,
        ],
        ['a key of the body', { task: 'test.any', '\ud83d': 1 }, 'body', /the key "\\ud83d"/],
        [
          'deep in input',
          { task: 'test.any', input: { list: [1, 2, ['\udbff']] } },
          'body/input/list/2/0',
          /\\udbff/,
        ],
        [
          'a high surrogate before a high one',
          { task: 'test.any', input: '\ud800\ud83d\ude00' },
          'body/input',
          /\\ud800 at index 0/,
        ],
      ];
      for (const [label, body, path, detail] of cases) {
        const p = await refused({ url: '/v1/jobs', key: admin, body });
        assert.deepEqual(
          p.errors.map((e) => e.path),
          [path],
          label,
        );
        assert.ok(p.detail.startsWith(`the request is invalid: ${path}: `), `${label}: ${p.detail}`);
        assert.match(p.detail, detail, label);
        assert.match(p.detail, pairing, label);
      }
      const batch = await refused({
        url: '/v1/jobs/batch',
        key: admin,
        body: { jobs: [{ task: 'test.any' }, { task: 'test.any', input: { s: '\ud800' } }] },
      });
      assert.equal(batch.errors[0]?.path, 'body/jobs/1/input/s');
      const tenant = await refused({ url: '/v1/tenants', key: admin, body: { name: 'x\ud800' } });
      assert.equal(tenant.errors[0]?.path, 'body/name');
      assert.deepEqual((await f.store.registry.listTenants()).map((t) => t.name).sort(), [
        'default',
        'other',
      ]);
    });

    it('surrogate pairs and escaped backslashes are well-formed and kept as sent', async () => {
      for (const input of ['😀', 'a\ud83d\ude00b', '\\ud800', { '😀': ['\\udfff'] }]) {
        const job = assertJob(
          await call(f.app, { url: '/v1/jobs', key: admin, body: { task: 'test.any', input } }),
          201,
        );
        assert.deepEqual(job.input, input);
      }
    });

    it('a value of the wrong JSON type is never coerced: 400 naming the field, the type allowed and the one sent', async () => {
      const cases: [string, unknown, string, string][] = [
        [
          'task as an array',
          { task: ['test.echo'], input: { n: 1 } },
          'body/task',
          'must be string, got an array',
        ],
        [
          'correlationId false',
          { task: 'test.any', correlationId: false },
          'body/correlationId',
          'must be string, got boolean false',
        ],
        [
          'priority true',
          { task: 'test.any', priority: true },
          'body/priority',
          'must be integer, got boolean true',
        ],
        [
          'priority as text',
          { task: 'test.any', priority: '5' },
          'body/priority',
          "must be integer, got string '5'",
        ],
        [
          'taskVersion as text',
          { task: 'test.echo', taskVersion: '1', input: { n: 1 } },
          'body/taskVersion',
          "must be integer, got string '1'",
        ],
        [
          'idempotencyKey a number',
          { task: 'test.any', idempotencyKey: 12 },
          'body/idempotencyKey',
          'must be string, got number 12',
        ],
        ['runAt a number', { task: 'test.any', runAt: 0 }, 'body/runAt', 'must be string, got number 0'],
        ['priority null', { task: 'test.any', priority: null }, 'body/priority', 'must be integer, got null'],
        [
          'correlationId an object',
          { task: 'test.any', correlationId: { id: 'c' } },
          'body/correlationId',
          'must be string, got an object',
        ],
      ];
      for (const [label, body, path, message] of cases) {
        const p = await refused({ url: '/v1/jobs', key: admin, body });
        assert.deepEqual(p.errors, [{ path, message }], label);
        assert.equal(p.detail, `the request is invalid: ${path}: ${message}`, label);
      }
      const batch = await refused({
        url: '/v1/jobs/batch',
        key: admin,
        body: { jobs: [{ task: 'test.any', priority: '1' }] },
      });
      assert.deepEqual(batch.errors, [
        { path: 'body/jobs/0/priority', message: "must be integer, got string '1'" },
      ]);
      const one = await refused({ url: '/v1/jobs/batch', key: admin, body: { jobs: { task: 'test.any' } } });
      assert.deepEqual(one.errors, [{ path: 'body/jobs', message: 'must be array, got an object' }]);
      const keysBefore = (await f.store.registry.listApiKeys({ tenant: 'default' })).length;
      const roles = await refused({ url: '/v1/tenants/default/keys', key: admin, body: { roles: 'admin' } });
      assert.deepEqual(roles.errors, [{ path: 'body/roles', message: "must be array, got string 'admin'" }]);
      assert.equal((await f.store.registry.listApiKeys({ tenant: 'default' })).length, keysBefore);
      const name = await refused({ url: '/v1/tenants', key: admin, body: { name: ['third'] } });
      assert.deepEqual(name.errors, [{ path: 'body/name', message: 'must be string, got an array' }]);
      assert.equal(await f.store.registry.getTenant('third'), undefined);
      // Errors name what is allowed where the schema lists it.
      const stray = await refused({ url: '/v1/jobs', key: admin, body: { task: 'test.any', tsk: 1 } });
      assert.deepEqual(stray.errors, [
        { path: 'body', message: "must NOT have additional properties ('tsk' is not one)" },
      ]);
      const role = await refused({ url: '/v1/tenants/default/keys', key: admin, body: { roles: ['root'] } });
      assert.match(
        role.detail,
        /body\/roles\/0: must be equal to one of the allowed values: "admin", .*"worker"/,
      );
    });

    it('the querystring and path are still coerced from text: ?limit=2 is the integer 2', async () => {
      for (let i = 0; i < 3; i++)
        assertJob(await call(f.app, { url: '/v1/jobs', key: admin, body: { task: 'test.any' } }), 201);
      const res = await call(f.app, { url: '/v1/jobs?limit=2&state=queued', key: admin });
      assert.equal(res.statusCode, 200, res.body);
      const page = res.json() as { jobs: unknown[]; nextCursor?: string };
      assert.equal(page.jobs.length, 2);
      assert.equal(typeof page.nextCursor, 'string');
      const p = assertProblem(
        await call(f.app, { url: '/v1/jobs?limit=two', key: admin }),
        400,
        'invalid_request',
      );
      assert.equal(p.detail, "the request is invalid: querystring/limit: must be integer, got string 'two'");
    });

    it('two Authorization headers: 400 before any key is checked, whichever comes first', async () => {
      const message =
        /^the request is invalid: headers\/authorization: (\d) Authorization headers were sent; send exactly one: Authorization: Bearer <key>$/;
      const k = `Bearer ${admin}`;
      for (const authorization of [
        [k, k],
        [k, 'Bearer bogus'],
        ['Bearer bogus', k],
        [k, k, k],
      ]) {
        for (const c of [
          { url: '/v1/jobs', body: { task: 'test.any' } },
          { url: '/v1/jobs' },
          { url: '/v1/tenants', body: { name: 'fourth' } },
        ] as Call[]) {
          const p = await refused({
            ...c,
            key: null,
            headers: { authorization } as unknown as Record<string, string>,
          });
          assert.equal(p.detail.match(message)?.[1], String(authorization.length), p.detail);
          assert.deepEqual(
            p.errors.map((e) => e.path),
            ['headers/authorization'],
          );
        }
      }
      // Over a real socket, as Node parses it: two spellings of the name are two headers.
      const before = await countJobs(f.store);
      const address = await f.app.listen({ port: 0, host: '127.0.0.1' });
      const res = await fetchRaw(`${address}/v1/jobs`, [
        ['Authorization', k],
        ['authorization', 'Bearer bogus'],
        ['content-type', 'application/json'],
        ['host', 'localhost'],
      ]);
      assert.equal(res.status, 400, res.body);
      assert.match(
        res.body,
        /"detail":"the request is invalid: headers\/authorization: 2 Authorization headers were sent/,
      );
      assert.equal(await countJobs(f.store), before);
      assert.equal(await f.store.registry.getTenant('fourth'), undefined);
      // One is enough, and a route without a key ignores the header.
      assertJob(await call(f.app, { url: '/v1/jobs', key: admin, body: { task: 'test.any' } }), 201);
      const health = await call(f.app, {
        url: '/healthz',
        headers: { authorization: ['a', 'b'] } as unknown as Record<string, string>,
      });
      assert.equal(health.statusCode, 200);
    });

    it(`the OpenAPI document states the rules: depth ${MAX_BODY_DEPTH}, well-formed text, no coercion`, async () => {
      const doc = (await call(f.app, { url: '/v1/openapi.json' })).json() as {
        info: { description: string };
      };
      assert.match(doc.info.description, new RegExp(`at most ${MAX_BODY_DEPTH} levels deep`));
      assert.match(doc.info.description, /well-formed Unicode \(no lone surrogates\)/);
      assert.match(doc.info.description, /no coercion/);
      assert.match(doc.info.description, /one Authorization header/);
    });
  });
}
