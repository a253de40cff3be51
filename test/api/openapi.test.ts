/**
 * The OpenAPI document at `GET /v1/openapi.json`: served without a key, a valid OpenAPI 3.1 document,
 * complete (every route the app registers is in it, with its methods and path parameters), truthful
 * about authentication, and documenting every operation's error responses as problem+json.
 */
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { backends } from '../helpers/backends.js';
import { type ApiFixture, assertProblem, call, createApiFixture } from './api-fixture.js';

interface Operation {
  security?: Record<string, string[]>[];
  parameters?: { in: string; name: string; required?: boolean }[];
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  security?: Record<string, string[]>[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
/** `/v1/jobs/:id` as an OpenAPI path template. */
const template = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const backend = backends()[0];
assert.ok(backend);

describe('OpenAPI document', () => {
  let f: ApiFixture;
  let doc: Document;
  /** Every route the app registered: path template -> methods (upper case). */
  const routes = new Map<string, Set<string>>();
  const hidden = new Set<string>();

  before(async () => {
    // Watch the app being built, to learn its routes from Fastify itself rather than from the document.
    const onInit = (message: unknown) => {
      const { fastify } = message as { fastify: FastifyInstance };
      fastify.addHook('onRoute', (route: RouteOptions) => {
        const path = template(route.url);
        if (route.schema?.hide) hidden.add(path);
        const methods = routes.get(path) ?? new Set<string>();
        for (const m of [route.method].flat()) methods.add(String(m));
        routes.set(path, methods);
      });
    };
    diagnostics.subscribe('fastify.initialization', onInit);
    try {
      f = await createApiFixture(backend);
    } finally {
      diagnostics.unsubscribe('fastify.initialization', onInit);
    }
    const res = await call(f.app, { url: '/v1/openapi.json', key: null });
    assert.equal(res.statusCode, 200, res.body.slice(0, 300));
    assert.match(String(res.headers['content-type']), /^application\/json/);
    doc = res.json() as Document;
  });
  after(async () => {
    await f.close();
  });

  it('is served without a key and is a valid OpenAPI 3.1 document', async () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.info.title, 'Bulkhead API');
    const validated = (await SwaggerParser.validate(structuredClone(doc) as never)) as unknown as Document;
    assert.equal(validated.openapi, '3.1.0');
    for (const name of ['Problem', 'Job', 'Submission', 'Tenant', 'ApiKey', 'Health']) {
      assert.ok(doc.components.schemas[name], `components.schemas.${name}`);
    }
    assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
  });

  it('lists every route the app registers, with its methods', () => {
    assert.ok(routes.size >= 12, `saw ${routes.size} routes being registered`);
    assert.deepEqual([...hidden], ['/v1/openapi.json']);
    const expected: string[] = [];
    for (const [path, methods] of routes) {
      if (hidden.has(path)) continue;
      // HEAD is Fastify's automatic twin of GET, not an operation of its own.
      if (methods.has('HEAD')) assert.ok(methods.has('GET'), `HEAD ${path} comes with GET`);
      for (const m of methods) if (m !== 'HEAD') expected.push(`${m.toLowerCase()} ${path}`);
    }
    const documented: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const m of Object.keys(item)) if (METHODS.includes(m)) documented.push(`${m} ${path}`);
    }
    assert.deepEqual(documented.sort(), expected.sort());
    for (const must of ['post /v1/jobs', 'get /v1/jobs/{id}/result', 'post /v1/keys/{id}/revoke']) {
      assert.ok(documented.includes(must), must);
    }
  });

  it('documents every path parameter of every operation', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(item)) {
        const inPath = (op.parameters ?? []).filter((p) => p.in === 'path');
        assert.deepEqual(inPath.map((p) => p.name).sort(), [...names].sort(), `${method} ${path}`);
        for (const p of inPath) assert.equal(p.required, true, `${method} ${path} {${p.name}} is required`);
      }
    }
  });

  it('tells the truth about authentication: bearer everywhere but /healthz', async () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const security = op.security ?? doc.security ?? [];
        const needsKey = security.some((s) => 'bearer' in s);
        assert.equal(needsKey, path !== '/healthz', `${method} ${path} security`);
        const url = path.replace(/\{[^}]+\}/g, 'x');
        const res = await call(f.app, { method: method.toUpperCase() as 'GET', url, key: null });
        if (needsKey) {
          assertProblem(res, 401, 'unauthorized');
          assert.ok(op.responses['4XX'] ?? op.responses['401'], `${method} ${path} documents its 401`);
        } else {
          assert.equal(res.statusCode, 200, `${method} ${path} without a key`);
        }
      }
    }
  });

  it('documents the error responses of every operation', () => {
    const missing: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const where = `${method} ${path}`;
        const errorCodes = Object.keys(op.responses).filter((s) => /^[45]/.test(s));
        if (path === '/healthz') {
          // Liveness takes no input and no key: it has no client errors to document.
          assert.deepEqual(Object.keys(op.responses), ['200'], where);
          continue;
        }
        if (!errorCodes.some((s) => s.startsWith('4'))) missing.push(`${where}: no 4xx response`);
        if (!errorCodes.some((s) => s === '5XX' || s === '500'))
          missing.push(`${where}: no 500/5XX response`);
        for (const s of errorCodes) {
          if (s === '503' && path === '/v1/health') continue; // the health report itself
          const refs = Object.values(op.responses[s]?.content ?? {}).map((c) => c.schema?.$ref);
          if (refs.length === 0 || refs.some((r) => r !== '#/components/schemas/Problem')) {
            missing.push(`${where}: ${s} is not a Problem (${refs.join(', ')})`);
          }
        }
      }
    }
    assert.deepEqual(missing, [], 'operations with undocumented error responses');
  });

  it('documents error responses with the media type they are sent with (application/problem+json)', async () => {
    const sent = await call(f.app, { url: '/v1/jobs/x', key: f.keys.default.admin });
    assertProblem(sent, 404, 'job_not_found');
    const wrong: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [s, r] of Object.entries(op.responses)) {
          if (!/^[45]/.test(s) || (s === '503' && path === '/v1/health')) continue;
          const types = Object.keys(r.content ?? {});
          if (!types.includes('application/problem+json'))
            wrong.push(`${method} ${path} ${s}: ${types.join(', ')}`);
        }
      }
    }
    assert.deepEqual(wrong, [], 'error responses documented with another media type than the one sent');
  });
});
