/**
 * Hostile requests for the API fuzz test, each built from a valid one and labelled with what the API
 * must make of it: a body nesting past `MAX_BODY_DEPTH` (and bodies just under it), a lone surrogate
 * in a string or a key, a value of the wrong JSON type (no coercion), two Authorization headers.
 * `expectationBroken` checks an answer against those labels.
 */
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { MAX_BODY_DEPTH } from '../../src/api/json-body.js';

type Schema = Record<string, unknown>;

/** What a request must be refused for: its body or its headers. */
export type Hostility = 'too_deep' | 'lone_surrogate' | 'wrong_type' | 'two_auth';

export interface HostileBody {
  payload: string;
  /** Absent when the body is fine after all (nesting within the limit, a value the schema takes). */
  expect?: Hostility;
}

/** Deeply nested JSON text (arrays, objects or both) around the limit or far past it, with its depth. */
export const deepJson = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: MAX_BODY_DEPTH - 3, max: MAX_BODY_DEPTH + 2 }),
      fc.integer({ min: 50, max: 60_000 }),
    ),
    fc.constantFrom('[', '{', 'mix'),
  )
  .map(([levels, kind]) => {
    if (kind === '[') return { text: `${'['.repeat(levels)}${']'.repeat(levels)}`, depth: levels };
    if (kind === '{') return { text: `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`, depth: levels };
    const half = Math.ceil(levels / 2);
    return { text: `${'[{"a":'.repeat(half)}0${'}]'.repeat(half)}`, depth: 2 * half };
  });

/** A short string holding one surrogate half with nothing to pair it with. */
const loneString = fc
  .tuple(
    fc.string({ maxLength: 4 }),
    fc.integer({ min: 0xd800, max: 0xdfff }),
    fc.constantFrom('', 'x', '\ud83d\ude00'),
  )
  .map(([before, half, after]) => `${before}${String.fromCharCode(half)}${after}`);

/** The value in another JSON type: each variant is never of the original's type. */
const retyped = (v: unknown): fc.Arbitrary<unknown> => {
  const variants: unknown[] = [[v], { value: v }];
  if (typeof v !== 'string') variants.push(JSON.stringify(v) ?? 'x');
  if (typeof v !== 'boolean') variants.push(true, false);
  if (typeof v !== 'number') variants.push(7, -1.5);
  if (v !== null) variants.push(null);
  return fc.constantFrom(...variants);
};

const jsonType = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? 'number' : typeof v;

/** Whether `value` has a JSON type the schema allows (a schema without `type` allows any). */
function typeAllowed(schema: Schema | undefined, value: unknown): boolean {
  if (!schema || schema.type === undefined)
    return !Array.isArray(schema?.enum) || schema.enum.includes(value);
  const types = [schema.type].flat() as string[];
  const t = jsonType(value);
  return types.includes(t) || (t === 'number' && types.includes('integer') && Number.isInteger(value));
}

/**
 * Hostile bodies from `valid` (an object body with these `properties`): one property swapped for
 * deep nesting, a lone surrogate, or a value of another JSON type; or a key with a lone surrogate.
 */
export function hostileBodies(valid: fc.Arbitrary<unknown>, properties: Record<string, Schema>) {
  const names = Object.keys(properties);
  const withProperty = <T>(part: fc.Arbitrary<T>) =>
    fc.tuple(
      valid.filter(
        (v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v),
      ),
      names.length > 0 ? fc.constantFrom(...names) : fc.constant('x'),
      part,
    );
  const SLOT = '\u0001nest\u0001';
  const deep = withProperty(deepJson).map(([v, k, d]): HostileBody => {
    const payload = JSON.stringify({ ...v, [k]: SLOT }).replace(JSON.stringify(SLOT), d.text);
    return d.depth + 1 > MAX_BODY_DEPTH ? { payload, expect: 'too_deep' } : { payload };
  });
  const lone = withProperty(fc.tuple(loneString, fc.constantFrom('value', 'key', 'nested'))).map(
    ([v, k, [s, where]]): HostileBody => {
      const body =
        where === 'key' ? { ...v, [s]: 1 } : { ...v, [k]: where === 'value' ? s : { list: [1, s] } };
      return { payload: JSON.stringify(body), expect: 'lone_surrogate' };
    },
  );
  const wrong = withProperty(fc.constant(null))
    .chain(([v, k]) => fc.tuple(fc.constant(v), fc.constant(k), retyped(v[k] ?? 'x')))
    .map(([v, k, other]): HostileBody => {
      const payload = JSON.stringify({ ...v, [k]: other });
      return typeAllowed(properties[k], other) ? { payload } : { payload, expect: 'wrong_type' };
    });
  return fc.oneof(deep, lone, wrong);
}

/** Answers a request may get before its body is read: auth, size and media type (and routing, below). */
const BEFORE_BODY = [401, 403, 413, 414, 415];

/**
 * How the answer breaks what the labels demand, or undefined. A labelled request is never accepted;
 * a 400 must be the specific refusal (or a broken URL, or two Authorization headers, which come first).
 * `bodyRead`: the request went to the operation's own method, so its body was parsed; `routed`: the
 * method and path found a route.
 */
export function expectationBroken(
  expects: readonly Hostility[],
  res: LightMyRequestResponse,
  on: { bodyRead: boolean; routed: boolean },
): string | undefined {
  // Keys are checked on routes only: a request that finds none is a 404, or its body's refusal.
  const active = expects.filter((e) => (e === 'two_auth' ? on.routed : on.bodyRead));
  if (active.length === 0) return undefined;
  if (res.statusCode < 400) return `${active.join('+')} accepted with ${res.statusCode}`;
  const p = res.json() as { code?: string; detail?: string };
  if (res.statusCode !== 400) {
    const early = BEFORE_BODY.includes(res.statusCode) || (res.statusCode === 404 && p.code === 'not_found');
    return early ? undefined : `${active.join('+')} got ${res.statusCode} ${p.code}`;
  }
  const detail = p.detail ?? '';
  const fits: Record<Hostility, boolean> = {
    two_auth: p.code === 'invalid_request' && /Authorization headers were sent/.test(detail),
    too_deep: p.code === 'invalid_request' && /more than \d+ levels deep/.test(detail),
    lone_surrogate: p.code === 'invalid_request' && /lone surrogate/.test(detail),
    // The schema reports every failing part: a bad querystring or parameter may come with it.
    wrong_type: p.code === 'invalid_request',
  };
  // Fastify parses a body even for a route that does not exist: a body refusal fits any method.
  if (p.code === 'bad_url' || expects.some((e) => fits[e])) return undefined;
  return `${active.join('+')} got 400 ${p.code}`;
}
