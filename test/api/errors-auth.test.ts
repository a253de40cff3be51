/**
 * Every refusal of the API is a clear problem+json with the right status and stable code, and
 * writes nothing: bad input, bad bodies, missing or bad keys, wrong roles, unknown things, and
 * tenant isolation (another tenant's job is a 404, never visible). Runs against every backend.
 */
import assert from 'node:assert/strict';
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
  killJob,
} from './api-fixture.js';

const MiB = 1024 * 1024;

for (const backend of backends()) {
  describe(`API errors and auth (${backend.dialect})`, () => {
    let f: ApiFixture;
    let admin: string;
    /** Make a request that must be refused with `status` and `code`, and check it wrote no job. */
    const refused = async (c: Call, status: number, code: string) => {
      const before = await countJobs(f.store);
      const p = assertProblem(await call(f.app, c), status, code);
      assert.equal(await countJobs(f.store), before, `a refused ${c.method ?? ''} ${c.url} wrote no job`);
      return p;
    };
    const submitAs = (key: string | null, body: unknown = { task: 'test.echo', input: { n: 1 } }) =>
      ({ url: '/v1/jobs', key, body }) satisfies Call;

    before(async () => {
      f = await createApiFixture(backend);
      admin = f.keys.default.admin;
    });
    after(async () => {
      await f.close();
    });

    it('unknown task: 400 unknown_task listing the known tasks', async () => {
      const p = await refused(submitAs(admin, { task: 'no.such.task', input: {} }), 400, 'unknown_task');
      assert.deepEqual(p.known, ['test.any@1', 'test.echo@1']);
      assert.match(p.detail, /no\.such\.task/);
      assert.match(p.detail, /test\.echo@1/);
      const v = await refused(
        submitAs(admin, { task: 'test.echo', taskVersion: 9, input: { n: 1 } }),
        400,
        'unknown_task',
      );
      assert.match(v.detail, /version 9/);
    });

    it("input failing the task's schema: 400 invalid_input with every failing path", async () => {
      const p = await refused(
        submitAs(admin, { task: 'test.echo', input: { n: 'x', extra: true } }),
        400,
        'invalid_input',
      );
      const errors = p.errors as { path: string; message: string }[];
      assert.deepEqual(errors.map((e) => e.path).sort(), ['', '/n']);
      for (const e of errors) assert.ok(e.message.length > 0);
      assert.match(p.detail, /\/n/);
      const missing = await refused(submitAs(admin, { task: 'test.echo' }), 400, 'invalid_input');
      assert.deepEqual(
        (missing.errors as { path: string }[]).map((e) => e.path),
        [''],
      );
    });

    it('bad bodies: malformed JSON 400, oversized 413, unsupported content type 415', async () => {
      const json = { 'content-type': 'application/json' };
      for (const raw of ['{"task": "test.echo",', '{task: 1}', '[1,2', 'null x']) {
        await refused({ url: '/v1/jobs', key: admin, raw, headers: json }, 400, 'malformed_json');
      }
      await refused(
        { method: 'POST', url: '/v1/jobs', key: admin, raw: '', headers: json },
        400,
        'malformed_json',
      );
      const big = JSON.stringify({ task: 'test.any', input: { pad: 'x'.repeat(MiB) } });
      const p = await refused(
        { url: '/v1/jobs', key: admin, raw: big, headers: json },
        413,
        'payload_too_large',
      );
      assert.equal(p.title, 'Content Too Large');
      // Just under the limit is parsed (and refused by the ledger's input limit, not by size).
      const under = JSON.stringify({ task: 'test.any', input: { pad: 'x'.repeat(MiB - 100) } });
      await refused({ url: '/v1/jobs', key: admin, raw: under, headers: json }, 400, 'invalid_argument');
      for (const type of [
        'application/x-www-form-urlencoded',
        'application/xml',
        'multipart/form-data',
        ';;;',
      ]) {
        const raw = JSON.stringify({ task: 'test.echo', input: { n: 1 } });
        await refused(
          { url: '/v1/jobs', key: admin, raw, headers: { 'content-type': type } },
          415,
          'unsupported_media_type',
        );
      }
      // The batch route takes up to 16 MiB.
      const jobs = Array.from({ length: 8 }, () => ({ task: 'test.any', input: 'y'.repeat(200 * 1024) }));
      const batch = await call(f.app, { url: '/v1/jobs/batch', key: admin, body: { jobs } });
      assert.equal(batch.statusCode, 201, batch.body.slice(0, 300));
    });

    it('a text/plain body is an unsupported content type: 415', async () => {
      const raw = JSON.stringify({ task: 'test.echo', input: { n: 1 } });
      const headers = { 'content-type': 'text/plain' };
      await refused({ url: '/v1/jobs', key: admin, raw, headers }, 415, 'unsupported_media_type');
    });

    it('a URL with broken percent-encoding: 400 bad_url as problem+json', async () => {
      for (const url of ['/v1/jobs/%', '/v1/jobs/%E0%A4%A', '/v1/jobs/a%2/result']) {
        await refused({ url, key: admin }, 400, 'bad_url');
      }
    });

    it('a path parameter longer than the router takes is a problem+json too', async () => {
      const long = `/v1/jobs/${'a'.repeat(101)}`;
      for (const url of [long, `${long}/result`, `/v1/tenants/${'t'.repeat(150)}/keys`]) {
        const res = await call(f.app, { url, key: admin });
        const where = `${url.slice(0, 20)}: ${res.statusCode} ${res.headers['content-type']} ${res.body.slice(0, 120)}`;
        assert.match(String(res.headers['content-type']), /^application\/problem\+json/, where);
        const p = assertProblem(res, res.statusCode, (res.json() as { code: string }).code);
        assert.ok([400, 404, 414].includes(p.status), where);
      }
    });

    it('inputs the ledger cannot hold are refused with 400 invalid_argument, never a 500', async () => {
      // Bodies the API refuses before the ledger sees them (lone surrogates, nesting past the body
      // limit) are in input-hardening.test.ts; these pass the body checks and reach the ledger.
      const json = { 'content-type': 'application/json' };
      const cases: [string, string, RegExp][] = [
        [
          'NUL + idempotencyKey',
          JSON.stringify({ task: 'test.any', input: 'nul\u0000', idempotencyKey: 'nul' }),
          /submit\.input: contains the character U\+0000/,
        ],
      ];
      for (const depth of [65, 100, MAX_BODY_DEPTH - 1]) {
        for (const idem of ['', `,"idempotencyKey":"deep-${depth}"`]) {
          const raw = `{"task":"test.any","input":${'['.repeat(depth)}${']'.repeat(depth)}${idem}}`;
          cases.push([
            `depth ${depth}${idem}`,
            raw,
            new RegExp(`submit\\.input: nests ${depth} levels deep; at most 64`),
          ]);
        }
      }
      for (const [label, raw, detail] of cases) {
        const p = await refused({ url: '/v1/jobs', key: admin, raw, headers: json }, 400, 'invalid_argument');
        assert.match(p.detail, detail, label);
      }
    });

    it('no, malformed, unknown or wrong key: 401 unauthorized with WWW-Authenticate', async () => {
      const unknown = `bh_${'0'.repeat(16)}_${'A'.repeat(43)}`;
      const [, id] = admin.split('_');
      const wrongSecret = `bh_${id}_${'B'.repeat(43)}`;
      const headers: (Record<string, string> | undefined)[] = [
        undefined,
        { authorization: '' },
        { authorization: 'Bearer' },
        { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
        { authorization: 'Bearer not-a-key' },
        { authorization: `Bearer ${admin} extra` },
        { authorization: `Bearer ${unknown}` },
        { authorization: `Bearer ${wrongSecret}` },
      ];
      for (const h of headers) {
        for (const c of [submitAs(null), { url: '/v1/jobs' }, { url: '/v1/tenants' }] as Call[]) {
          const res = await call(f.app, { ...c, key: null, ...(h && { headers: h }) });
          assertProblem(res, 401, 'unauthorized');
          assert.equal(res.headers['www-authenticate'], 'Bearer realm="bulkhead"');
        }
      }
      assert.equal((await call(f.app, { url: '/v1/jobs', key: admin })).statusCode, 200);
      assert.equal((await call(f.app, { url: '/healthz' })).statusCode, 200, '/healthz needs no key');
    });

    it('a revoked key stops working at once', async () => {
      const res = await call(f.app, {
        url: '/v1/tenants/default/keys',
        key: admin,
        body: { roles: ['submitter'], name: 'to-revoke' },
      });
      assert.equal(res.statusCode, 201, res.body);
      const { key, apiKey } = res.json() as { key: string; apiKey: { id: string; roles: string[] } };
      assert.deepEqual(apiKey.roles, ['submitter']);
      assertJob(await call(f.app, submitAs(key)), 201);
      // Another tenant's admin cannot revoke it.
      await refused(
        { url: `/v1/keys/${apiKey.id}/revoke`, key: f.keys.other.admin, method: 'POST' },
        404,
        'api_key_not_found',
      );
      assertJob(await call(f.app, submitAs(key)), 201);
      const revoked = await call(f.app, { url: `/v1/keys/${apiKey.id}/revoke`, key: admin, method: 'POST' });
      assert.equal(revoked.statusCode, 200, revoked.body);
      assert.equal(typeof (revoked.json() as { revokedAt?: string }).revokedAt, 'string');
      const p = await refused(submitAs(key), 401, 'unauthorized');
      assert.match(p.detail, /revoked/);
      assertProblem(await call(f.app, { url: '/v1/jobs', key }), 401, 'unauthorized');
      const again = await call(f.app, { url: `/v1/keys/${apiKey.id}/revoke`, key: admin, method: 'POST' });
      assert.equal(again.statusCode, 200, 'revocation is idempotent');
      await refused(
        { url: '/v1/keys/0123456789abcdef/revoke', key: admin, method: 'POST' },
        404,
        'api_key_not_found',
      );
    });

    it('wrong role: 403 forbidden naming the roles needed', async () => {
      const k = f.keys.default;
      const p = await refused(submitAs(k.auditor), 403, 'forbidden');
      assert.match(p.detail, /auditor/);
      assert.match(p.detail, /submitter/);
      await refused(submitAs(k.approver), 403, 'forbidden');
      await refused(submitAs(k.worker), 403, 'forbidden');
      await refused(
        { url: '/v1/jobs/batch', key: k.auditor, body: { jobs: [{ task: 'test.echo', input: { n: 1 } }] } },
        403,
        'forbidden',
      );
      await refused({ url: '/v1/jobs', key: k.worker }, 403, 'forbidden');
      const keyBody = { roles: ['admin'] };
      await refused({ url: '/v1/tenants/default/keys', key: k.submitter, body: keyBody }, 403, 'forbidden');
      await refused({ url: '/v1/tenants/default/keys', key: k.operator, body: keyBody }, 403, 'forbidden');
      await refused({ url: '/v1/tenants', key: k.operator, body: { name: 'x' } }, 403, 'forbidden');
      await refused(
        { url: `/v1/keys/${f.keyIds.default.auditor}/revoke`, key: k.operator, method: 'POST' },
        403,
        'forbidden',
      );
      const job = assertJob(await call(f.app, submitAs(k.submitter)), 201);
      await refused({ url: `/v1/jobs/${job.id}/cancel`, key: k.auditor, method: 'POST' }, 403, 'forbidden');
      await refused({ url: `/v1/jobs/${job.id}/cancel`, key: k.approver, method: 'POST' }, 403, 'forbidden');
      assert.equal((await f.store.get(job.id))?.state, 'queued');
      assert.equal((await f.store.registry.listTenants()).length, 2);
    });

    it('unknown job, unknown route, bad querystring: 404 job_not_found, 404 not_found, 400 invalid_request', async () => {
      const missing = '0190f0f0-0000-7000-8000-000000000000';
      for (const [method, path] of [
        ['GET', ''],
        ['GET', '/result'],
        ['POST', '/cancel'],
        ['POST', '/retry'],
      ] as const) {
        const p = await refused(
          { method, url: `/v1/jobs/${missing}${path}`, key: admin },
          404,
          'job_not_found',
        );
        assert.match(p.detail, new RegExp(missing));
      }
      const nf = await refused({ url: '/v1/nope', key: admin }, 404, 'not_found');
      assert.match(nf.detail, /GET \/v1\/nope/);
      await refused({ method: 'DELETE', url: '/v1/jobs', key: admin }, 404, 'not_found');
      await refused({ method: 'PUT', url: '/v1/jobs/x', key: null, raw: '{}' }, 404, 'not_found');
      for (const qs of [
        'limit=0',
        'limit=501',
        'limit=abc',
        'bogus=1',
        'state=bogus',
        'state=queued,nope',
        'state=',
        'task=has%20space',
        'correlationId=',
        `cursor=${'c'.repeat(301)}`,
      ]) {
        const p = await refused({ url: `/v1/jobs?${qs}`, key: admin }, 400, 'invalid_request');
        assert.match(p.detail, /querystring/);
      }
      const job = assertJob(await call(f.app, submitAs(admin)), 201);
      for (const qs of ['waitMs=-1', 'waitMs=60001', 'waitMs=soon', 'other=1']) {
        await refused({ url: `/v1/jobs/${job.id}/result?${qs}`, key: admin }, 400, 'invalid_request');
      }
      await refused({ url: '/v1/jobs?cursor=AAAA', key: admin }, 400, 'invalid_argument');
    });

    it("tenant isolation: another tenant's job is 404 everywhere and never listed", async () => {
      const mine = assertJob(await call(f.app, submitAs(f.keys.default.submitter)), 201);
      const dead = assertJob(await call(f.app, submitAs(f.keys.default.submitter)), 201);
      await killJob(f.store, dead.id);
      const them = f.keys.other.admin;
      for (const id of [mine.id, dead.id]) {
        await refused({ url: `/v1/jobs/${id}`, key: them }, 404, 'job_not_found');
        await refused({ url: `/v1/jobs/${id}/result?waitMs=10`, key: them }, 404, 'job_not_found');
        await refused({ url: `/v1/jobs/${id}/cancel`, key: them, method: 'POST' }, 404, 'job_not_found');
        await refused({ url: `/v1/jobs/${id}/retry`, key: them, method: 'POST' }, 404, 'job_not_found');
      }
      assert.equal((await f.store.get(mine.id))?.state, 'queued');
      assert.equal((await f.store.get(dead.id))?.state, 'dead');
      const res = await call(f.app, { url: '/v1/jobs?limit=500', key: them });
      assert.equal(res.statusCode, 200);
      const listed = (res.json() as { jobs: { id: string; tenant: string }[] }).jobs;
      assert.ok(
        listed.every((j) => j.tenant === 'other'),
        'only its own jobs',
      );
      assert.ok(!listed.some((j) => j.id === mine.id || j.id === dead.id));
      const byCorr = await call(f.app, { url: `/v1/jobs?correlationId=${mine.correlationId}`, key: them });
      assert.deepEqual(byCorr.json(), { jobs: [] });
    });

    it('an admin of another tenant manages only its own keys and no tenants', async () => {
      const them = f.keys.other.admin;
      const p = await refused({ url: '/v1/tenants', key: them, body: { name: 'third' } }, 403, 'forbidden');
      assert.match(p.detail, /default/);
      assert.equal(await f.store.registry.getTenant('third'), undefined);
      const keysBefore = (await f.store.registry.listApiKeys({ tenant: 'default' })).length;
      await refused(
        { url: '/v1/tenants/default/keys', key: them, body: { roles: ['admin'] } },
        404,
        'tenant_not_found',
      );
      await refused({ url: '/v1/tenants/default/keys', key: them }, 404, 'tenant_not_found');
      assert.equal((await f.store.registry.listApiKeys({ tenant: 'default' })).length, keysBefore);
      const tenants = await call(f.app, { url: '/v1/tenants', key: them });
      assert.deepEqual(
        (tenants.json() as { tenants: { name: string }[] }).tenants.map((t) => t.name),
        ['other'],
      );
      const own = await call(f.app, {
        url: '/v1/tenants/other/keys',
        key: them,
        body: { roles: ['auditor'] },
      });
      assert.equal(own.statusCode, 201, own.body);
      assert.equal((own.json() as { apiKey: { tenant: string } }).apiKey.tenant, 'other');
      const listed = await call(f.app, { url: '/v1/tenants/other/keys', key: them });
      const keys = (listed.json() as { keys: Record<string, unknown>[] }).keys;
      assert.ok(keys.length >= 7);
      assert.ok(keys.every((k) => k.tenant === 'other' && !('secretHash' in k) && !('key' in k)));
    });

    it('the system admin creates tenants (201, then 200) and keys in them', async () => {
      const first = await call(f.app, { url: '/v1/tenants', key: admin, body: { name: 'third' } });
      assert.equal(first.statusCode, 201, first.body);
      assert.equal((first.json() as { name: string }).name, 'third');
      assert.equal(
        (await call(f.app, { url: '/v1/tenants', key: admin, body: { name: 'third' } })).statusCode,
        200,
      );
      await refused({ url: '/v1/tenants', key: admin, body: { name: '../etc' } }, 400, 'invalid_request');
      await refused(
        { url: '/v1/tenants/default/keys', key: admin, body: { roles: ['root'] } },
        400,
        'invalid_request',
      );
      await refused(
        { url: '/v1/tenants/default/keys', key: admin, body: { roles: [] } },
        400,
        'invalid_request',
      );
      await refused(
        { url: '/v1/tenants/nope/keys', key: admin, body: { roles: ['auditor'] } },
        404,
        'tenant_not_found',
      );
    });
  });
}
