/**
 * Random requests for the API fuzz test, drawn from the OpenAPI document: an operation, then its
 * path parameters, querystring, body, content type and Authorization, each from valid (generated
 * from the documented schema) to garbage, and hostile bodies and headers labelled with the refusal
 * they must get (fuzz-bodies.ts). Seeded: the same seed gives the same requests.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { MAX_BODY_DEPTH } from '../../src/api/json-body.js';
import { deepJson, type Hostility, hostileBodies } from './fuzz-bodies.js';

type Schema = Record<string, unknown>;
export interface OpenApiDoc {
  paths: Record<string, Record<string, { parameters?: unknown; requestBody?: unknown; security?: unknown }>>;
  components: { schemas: Record<string, Schema> };
}
export interface Op {
  method: string;
  path: string;
  query: { name: string; schema: Schema }[];
  body?: Schema;
  /** No key needed (`security: []`). */
  public: boolean;
}
export interface FuzzRequest {
  /** The documented operation it was drawn from, `POST /v1/jobs/{id}/cancel`. */
  op: string;
  /** The tenant of the key sent, or null when the key is not a valid one. */
  tenant: string | null;
  inject: InjectOptions & { method: string; url: string; headers: Record<string, string | string[]> };
  /** What the request must be refused for (see `expectationBroken`). */
  expects: Hostility[];
  /** The request went to its operation's own method, one that reads a body. */
  bodyRead: boolean;
}

/** Schema-valid waitMs values are kept this small, so that pending jobs do not stall the run. */
const MAX_WAIT_MS = 20;
const enc = encodeURIComponent;
const NASTY = [
  ...'..|.|%00|%2e%2e|%2F|%|%zz|%E0%A4%A|%C0%AE|%F0%9F%98|%ud800|null|-1|0|😀|é|\u202e|\u0000| |'.split('|'),
  ...[
    "'; DROP TABLE jobs; --",
    '__proto__',
    'constructor',
    ':id',
    '*',
    '\\',
    '../../etc/passwd',
    '..%2F..%2Fetc',
  ],
  ...['a/b', '?x=1', '#frag'],
];
const DATES = [
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999Z',
  '2016-12-31T23:59:60Z',
  '2024-02-30T00:00:00Z',
  '2030-01-01T00:00:00+14:00',
  'yesterday',
  '',
];
const CONTENT_TYPES = [
  ...[
    'text/plain',
    'application/xml',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
  ],
  ...['application/json; charset=utf-16', 'application/problem+json', 'APPLICATION/JSON', ';;;', ''],
];
const HUGE = ['1e400', '-1e400', '123456789012345678901234567890', '-0', '0.1e-400', '9007199254740993'];

/** Strings that PostgreSQL and JSON tooling find awkward. */
const awkwardString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udfffy', '\u202e\u200b', '😀'.repeat(50), '\\u0000'),
);
const dateTime = fc
  .oneof(
    { weight: 8, arbitrary: fc.date({ min: new Date(0), max: new Date('2100-01-01'), noInvalidDate: true }) },
    { weight: 1, arbitrary: fc.constantFrom(...DATES) },
  )
  .map((d) => (typeof d === 'string' ? d : d.toISOString()));

/** Values valid for a schema (with some fields steered to where the code is), and near misses. */
function schemaArbitraries(doc: OpenApiDoc) {
  const resolve = (s: Schema): Schema => {
    if (typeof s.$ref !== 'string') return s;
    const target = doc.components.schemas[s.$ref.replace('#/components/schemas/', '')];
    assert.ok(target, `unresolved ${s.$ref}`);
    return target;
  };
  const steered: Record<string, fc.Arbitrary<unknown>> = {
    task: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('test.echo', 'test.any') },
      { weight: 1, arbitrary: fc.stringMatching(/^[a-z][a-z.]{0,20}$/) },
    ),
    taskVersion: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer() }),
    input: fc.oneof(
      { weight: 4, arbitrary: fc.record({ n: fc.integer() }) },
      { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
      { weight: 1, arbitrary: fc.record({ n: fc.constantFrom(1e20, -0, 2 ** 53 + 2, 1.5) }) },
      { weight: 1, arbitrary: fc.dictionary(awkwardString, awkwardString, { maxKeys: 3 }) },
      { weight: 1, arbitrary: awkwardString },
    ),
    runAt: dateTime,
    deadline: dateTime,
  };
  const valid = (raw: Schema, name?: string): fc.Arbitrary<unknown> => {
    const steer = name === undefined ? undefined : steered[name];
    if (steer) return steer;
    const s = resolve(raw);
    if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
    const num = (k: string, d: number) => (typeof s[k] === 'number' ? (s[k] as number) : d);
    switch (s.type) {
      case 'integer':
        return fc.integer({ min: num('minimum', -1e6), max: num('maximum', 1e6) });
      case 'boolean':
        return fc.boolean();
      case 'string': {
        const maxLength = Math.min(num('maxLength', 40), 40);
        if (s.format === 'date-time') return dateTime;
        if (typeof s.pattern === 'string')
          return fc.stringMatching(new RegExp(s.pattern)).map((v) => v.slice(0, maxLength));
        return fc.string({ minLength: num('minLength', 0), maxLength });
      }
      case 'array': {
        const items = valid(resolve((s.items ?? {}) as Schema));
        const c = { minLength: num('minItems', 0), maxLength: Math.min(num('maxItems', 4), 4) };
        return s.uniqueItems ? fc.uniqueArray(items, c) : fc.array(items, c);
      }
      case 'object': {
        const model: Record<string, fc.Arbitrary<unknown>> = {};
        for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Schema>))
          model[k] = valid(v, k);
        return fc.record(model, { requiredKeys: (s.required ?? []) as string[] });
      }
      default:
        return fc.jsonValue({ maxDepth: 3 });
    }
  };
  /** A valid value with one property replaced by something of another kind. */
  const mutated = (s: Schema) =>
    fc
      .tuple(
        valid(s),
        fc.jsonValue({ maxDepth: 2 }),
        fc.constantFrom(...Object.keys(resolve(s).properties ?? { x: 1 })),
      )
      .map(([v, wrong, k]) => (typeof v === 'object' && v !== null ? { ...v, [k]: wrong } : wrong));
  const properties = (s: Schema) => (resolve(s).properties ?? {}) as Record<string, Schema>;
  return { valid, mutated, properties };
}

export function operations(doc: OpenApiDoc): Op[] {
  const ops: Op[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, raw] of Object.entries(item)) {
      const params = (raw.parameters ?? []) as { in: string; name: string; schema: Schema }[];
      const content = (raw.requestBody as { content?: Record<string, { schema: Schema }> } | undefined)
        ?.content;
      const body = content?.['application/json']?.schema;
      const query = params.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema }));
      const open = Array.isArray(raw.security) && raw.security.length === 0;
      ops.push({ method: method.toUpperCase(), path, query, public: open, ...(body && { body }) });
    }
  }
  return ops;
}

export interface FuzzOptions {
  doc: OpenApiDoc;
  /** Authorization values with the tenant they act for: mostly the first one. */
  keys: { main: [string, string]; others: [string, string][] };
  /** Real ids and names for path parameters (jobs, tenants, key ids). */
  pathPool: string[];
  seed: number;
  runs: number;
}

export function fuzzRequests(o: FuzzOptions): FuzzRequest[] {
  const { valid, mutated, properties } = schemaArbitraries(o.doc);
  type Auth = [string | string[] | undefined, string | null];
  const main = `Bearer ${o.keys.main[0]}`;
  const auth = fc.oneof(
    {
      weight: 2,
      arbitrary: fc.constantFrom<Auth>(
        [[main, main], null],
        [[main, 'Bearer bogus'], null],
        [['Bearer bogus', main, main], null],
      ),
    },
    { weight: 40, arbitrary: fc.constant<Auth>([`Bearer ${o.keys.main[0]}`, o.keys.main[1]]) },
    { weight: 3, arbitrary: fc.constantFrom(...o.keys.others).map(([k, t]): Auth => [`Bearer ${k}`, t]) },
    { weight: 1, arbitrary: fc.constant<Auth>([undefined, null]) },
    { weight: 1, arbitrary: fc.string({ maxLength: 80 }).map((s): Auth => [s, null]) },
    { weight: 1, arbitrary: fc.string({ maxLength: 80 }).map((s): Auth => [`Bearer ${s}`, null]) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.stringMatching(/^[0-9a-f]{16}$/), fc.stringMatching(/^[A-Za-z0-9_-]{43}$/))
        .map(([id, secret]): Auth => [`Bearer bh_${id}_${secret}`, null]),
    },
  );
  const pathValue = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...o.pathPool) },
    { weight: 2, arbitrary: fc.constantFrom(...NASTY) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 50 }).map(enc) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map(enc) },
    { weight: 1, arbitrary: fc.integer({ min: 90, max: 5000 }).map((n) => 'a'.repeat(n)) },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) }, // unencoded
  );
  const garbage = fc.oneof(
    fc.string({ maxLength: 30 }).map(enc),
    fc.string({ unit: 'binary', maxLength: 20 }).map(enc),
    fc.constantFrom(...HUGE, ...NASTY, 'NaN', 'true', '[]', '{}', 'x'.repeat(400)),
  );
  const queryArb = (op: Op) => {
    const one = (q: Op['query'][number]) =>
      fc.option(
        fc
          .oneof(
            {
              weight: 3,
              arbitrary: (q.name === 'waitMs'
                ? fc.integer({ min: 0, max: MAX_WAIT_MS })
                : valid(q.schema)
              ).map((v) => enc(String(v))),
            },
            { weight: 2, arbitrary: garbage },
            { weight: 1, arbitrary: fc.array(garbage, { minLength: 2, maxLength: 3 }) },
          )
          .map((v) =>
            [v]
              .flat()
              .map((x) => `${q.name}=${x}`)
              .join('&'),
          ),
        { freq: 2 },
      );
    const extra = fc.option(
      fc.tuple(fc.string({ maxLength: 10 }), garbage).map(([n, v]) => `${enc(n)}=${v}`),
      {
        freq: 6,
      },
    );
    return fc.tuple(extra, ...op.query.map(one)).map((parts) => parts.filter((p): p is string => p !== null));
  };
  type Payload = { payload?: string | Buffer; type?: string; expect?: Hostility };
  const payloadArb = (op: Op): fc.Arbitrary<Payload> => {
    const body = op.body
      ? fc.oneof(
          { weight: 6, arbitrary: valid(op.body) },
          { weight: 2, arbitrary: mutated(op.body) },
          { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
          { weight: 1, arbitrary: fc.array(valid(op.body), { maxLength: 3 }) }, // an array where an object belongs
        )
      : fc.jsonValue({ maxDepth: 3 });
    const json = body.map((b) => ({ payload: JSON.stringify(b), type: 'application/json' }));
    const nested = (text: string, depth: number): Payload => ({
      payload: text,
      type: 'application/json',
      ...(depth > MAX_BODY_DEPTH && { expect: 'too_deep' as const }),
    });
    const raw = fc.oneof(
      deepJson.map((d) => nested(`{"task":"test.any","input":${d.text}}`, d.depth + 1)),
      fc
        .tuple(deepJson, fc.boolean())
        .map(([d, k]) =>
          nested(
            `{"task":"test.any","input":{"x":${d.text}}${k ? ',"idempotencyKey":"k"' : ''}}`,
            d.depth + 2,
          ),
        ),
      deepJson.map((d) => nested(d.text, d.depth)),
      fc.constantFrom(...HUGE).map((n) => `{"task":"test.echo","input":{"n":${n}},"priority":${n}}`),
      fc.constantFrom(
        ...HUGE,
        '{"jobs":',
        '{"task":"test.echo","input":{"n":1}}}',
        '\ufeff{}',
        '{"__proto__":{"x":1}}',
        '',
      ),
    );
    const options: fc.WeightedArbitrary<Payload>[] = [
      { weight: op.body ? 10 : 1, arbitrary: json },
      {
        weight: 2,
        arbitrary: raw.map((r) => (typeof r === 'string' ? { payload: r, type: 'application/json' } : r)),
      },
      {
        weight: 1,
        arbitrary: fc
          .uint8Array({ maxLength: 300 })
          .map((b) => ({ payload: Buffer.from(b), type: 'application/json' })),
      },
      {
        weight: 1,
        arbitrary: fc.tuple(json, fc.constantFrom(...CONTENT_TYPES)).map(([j, type]) => ({ ...j, type })),
      },
      { weight: 1, arbitrary: json.map((j) => ({ payload: j.payload })) }, // no content type
    ];
    if (!op.body) options.push({ weight: 12, arbitrary: fc.constant({}) });
    else {
      const hostile = hostileBodies(valid(op.body), properties(op.body));
      options.push({ weight: 3, arbitrary: hostile.map((h) => ({ ...h, type: 'application/json' })) });
    }
    return fc.oneof(...options);
  };
  // Submissions reach the most code: they get a larger share of the requests (a quarter or so).
  const weight = (op: Op) =>
    op.path === '/v1/jobs' && op.method === 'POST' ? 14 : op.path === '/v1/jobs/batch' ? 5 : 1;
  const request = fc
    .oneof(...operations(o.doc).map((op) => ({ weight: weight(op), arbitrary: fc.constant(op) })))
    .chain((op) =>
      fc.record({
        op: fc.constant(op),
        method: fc.oneof(
          { weight: 19, arbitrary: fc.constant(op.method) },
          { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'PATCH', 'OPTIONS', 'GET', 'POST') },
        ),
        params: fc.array(pathValue, { minLength: 3, maxLength: 3 }),
        query: queryArb(op),
        payload: payloadArb(op),
        auth,
      }),
    )
    .map(({ op, method, params, query, payload, auth: [authorization, tenant] }): FuzzRequest => {
      let i = 0;
      const path = op.path.replace(/\{[^}]+\}/g, () => params[i++] ?? 'x');
      const headers: Record<string, string | string[]> = {};
      if (authorization !== undefined) headers.authorization = authorization;
      if (payload.type !== undefined) headers['content-type'] = payload.type;
      const url = query.length > 0 ? `${path}?${query.join('&')}` : path;
      const inject = {
        method,
        url,
        headers,
        ...(payload.payload !== undefined && { payload: payload.payload }),
      };
      const expects: Hostility[] = payload.expect ? [payload.expect] : [];
      if (Array.isArray(authorization) && !op.public) expects.push('two_auth');
      const bodyRead = method === op.method && op.method !== 'GET' && op.method !== 'HEAD';
      return { op: `${op.method} ${op.path}`, tenant, inject, expects, bodyRead };
    });
  return fc.sample(request, { seed: o.seed, numRuns: o.runs });
}
