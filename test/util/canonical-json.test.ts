/**
 * Our RFC 8785 canonicaliser (src/util/canonical-json.ts) held to the `canonicalize` reference
 * implementation on arbitrary JSON values, to independent oracles for strings and numbers, and to the
 * RFC's own examples; plus what has no canonical form (NaN, infinities, bigints, lone surrogates, too
 * deep) being a TypeError, -0 written as 0, `undefined` members left out, and the round trip.
 *
 * Seeded: BULKHEAD_FUZZ_SEED=<the seed in the test names> replays a run; BULKHEAD_FUZZ_RUNS sets the
 * runs per property (default 2000).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { canonical } from '../../src/util/canonical-json.js';
import { anyChar } from '../helpers/json-arbitraries.js';

const SEED = Number(process.env.BULKHEAD_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env.BULKHEAD_FUZZ_RUNS ?? 2000);
const runs = (factor = 1) => ({ seed: SEED, numRuns: Math.max(1, Math.round(RUNS * factor)) });

const trickyString = fc.constantFrom(
  '',
  '"',
  '\\',
  '/',
  '\\"',
  '\u0000',
  '\u0001\u001f',
  '\b\f\n\r\t\v',
  '\u007f',
  '\u0080\u009f\u00a0\u00ff',
  '\u2028\u2029',
  '\u20ac$\u000f\nA\'B"\\\\"/',
  'é',
  'e\u0301',
  '😀',
  '\ud83d\ude00',
  '👩‍👩‍👧‍👦',
  '🇫🇷',
  '\ufeff',
  '\ufb33',
  '\uffff',
  '\ue000',
  '𝄞',
  '\u{10ffff}',
  '</script>',
  '\\u0000',
  'a\u0000b',
);

/** Any well-formed string: arbitrary code points (unpaired halves filtered out) or tricky ones. */
const wellFormedString = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: anyChar, maxLength: 24 }).filter((s) => s.isWellFormed()) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 24 }) },
  { weight: 2, arbitrary: trickyString },
  {
    weight: 1,
    arbitrary: fc.array(trickyString, { maxLength: 5 }).map((parts) => parts.join('')),
  },
);

/** A string holding at least one unpaired surrogate. */
const loneSurrogateString = fc
  .tuple(
    fc.string({ unit: anyChar, maxLength: 4 }),
    fc.integer({ min: 0xd800, max: 0xdfff }),
    fc.string({ unit: anyChar, maxLength: 4 }),
  )
  .map(([a, half, b]) => a + String.fromCharCode(half) + b)
  .filter((s) => !s.isWellFormed());

/** RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text. */
const APPENDIX_B: ReadonlyArray<[string, string]> = [
  ['0000000000000000', '0'],
  ['8000000000000000', '0'],
  ['0000000000000001', '5e-324'],
  ['8000000000000001', '-5e-324'],
  ['7fefffffffffffff', '1.7976931348623157e+308'],
  ['ffefffffffffffff', '-1.7976931348623157e+308'],
  ['4340000000000000', '9007199254740992'],
  ['c340000000000000', '-9007199254740992'],
  ['4430000000000000', '295147905179352830000'],
  ['44b52d02c7e14af5', '9.999999999999997e+22'],
  ['44b52d02c7e14af6', '1e+23'],
  ['44b52d02c7e14af7', '1.0000000000000001e+23'],
  ['444b1ae4d6e2ef4e', '999999999999999700000'],
  ['444b1ae4d6e2ef4f', '999999999999999900000'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['41b3de4355555553', '333333333.3333332'],
  ['41b3de4355555554', '333333333.33333325'],
  ['41b3de4355555555', '333333333.3333333'],
  ['41b3de4355555556', '333333333.3333334'],
  ['41b3de4355555557', '333333333.33333343'],
  ['becbf647612f3696', '-0.0000033333333333333333'],
  ['43143ff3c1cb0959', '1424953923781206.2'],
];

const fromBits = (hex: string) => Buffer.from(hex, 'hex').readDoubleBE(0);

/** Any finite double: uniform over bit patterns (tiny, huge, subnormal), ordinary, or tricky. */
const anyNumber: fc.Arbitrary<number> = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((bits) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(bits);
    const n = b.readDoubleBE(0);
    return Number.isFinite(n) ? n : 0;
  }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.integer({ min: -1e6, max: 1e6 }).map((n) => n / 1000),
  fc
    .tuple(fc.integer({ min: 1, max: 9999 }), fc.integer({ min: -330, max: 304 }))
    .map(([m, e]) => Number(`${m}e${e}`)),
  fc.constantFrom(
    ...APPENDIX_B.map(([h]) => fromBits(h)),
    1e21,
    1e-7,
    1e-6,
    0.1,
    0.1 + 0.2,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 53),
    Number.EPSILON,
    Number.MIN_VALUE,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    123e-20,
    4.5,
    2e-3,
  ),
);

/** Arbitrary JSON values: fast-check's, with unicode and tricky strings and numbers mixed in. */
const jsonArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue(),
  fc.jsonValue({ maxDepth: 6 }),
  fc.jsonValue({ stringUnit: 'grapheme' }),
  fc.jsonValue({ stringUnit: anyChar }).filter(wellFormed),
  fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      wellFormedString,
      anyNumber,
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(wellFormedString, tie('value'), { maxKeys: 5, noNullPrototype: true }),
    ),
  })).value,
);

function wellFormed(v: unknown): boolean {
  if (typeof v === 'string') return v.isWellFormed();
  if (Array.isArray(v)) return v.every(wellFormed);
  if (v !== null && typeof v === 'object')
    return Object.entries(v).every(([k, x]) => k.isWellFormed() && wellFormed(x));
  return true;
}

/** `v` with every -0 made 0 (own `__proto__` keys kept as own keys). */
function noNegativeZero(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return v.map(noNegativeZero);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v))
      Object.defineProperty(out, k, {
        value: noNegativeZero(x),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return out;
  }
  return v;
}

/** RFC 8785 §3.2.2.2, written out independently: the string's JSON text. */
function rfcString(s: string): string {
  const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c < 0x20) out += short[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** `bad` put somewhere inside `v` (as an array item, a member value, or `v` itself). */
function plant(v: unknown, bad: unknown, path: readonly number[]): unknown {
  const [n, ...rest] = path;
  if (n === undefined) return bad;
  if (Array.isArray(v)) {
    const copy = [...v];
    const i = n % (copy.length + 1);
    copy[i] = plant(copy[i], bad, rest);
    return copy;
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    const copy = { ...(v as Record<string, unknown>) };
    const key = keys.length === 0 || n % 3 === 0 ? `planted${n}` : (keys[n % keys.length] as string);
    Object.defineProperty(copy, key, {
      value: plant(copy[key], bad, rest),
      enumerable: true,
      writable: true,
      configurable: true,
    });
    return copy;
  }
  return bad;
}

describe(`canonical JSON (RFC 8785), fuzzed (seed ${SEED}, ${RUNS} runs per property)`, () => {
  it('equals the canonicalize reference for arbitrary JSON values', () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        assert.equal(canonical(v), canonicalize(v));
      }),
      runs(3),
    );
  });

  it('writes strings as RFC 8785 says (and as the reference does)', () => {
    fc.assert(
      fc.property(wellFormedString, (s) => {
        const text = canonical(s);
        assert.equal(text, rfcString(s));
        assert.equal(text, canonicalize(s));
        assert.equal(JSON.parse(text), s);
        // As a key, too.
        assert.equal(canonical({ [s]: s }), `{${text}:${text}}`);
      }),
      runs(2),
    );
  });

  it('writes numbers as ECMAScript does (and as the reference does)', () => {
    fc.assert(
      fc.property(anyNumber, (n) => {
        const text = canonical(n);
        assert.equal(text, Object.is(n, -0) ? '0' : String(n));
        assert.equal(text, canonicalize(n));
        assert.equal(canonical([n, { n }]), `[${text},{"n":${text}}]`);
        assert.ok(Object.is(JSON.parse(text), n === 0 ? 0 : n));
      }),
      runs(3),
    );
  });

  it('RFC 8785 Appendix B numbers', () => {
    for (const [bits, text] of APPENDIX_B) {
      assert.equal(canonical(fromBits(bits)), text, bits);
      assert.equal(canonicalize(fromBits(bits)), text, bits);
    }
  });

  it('RFC 8785 §3.2.3 examples: the sample document, and key order by UTF-16 code units', () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        '"literals": [null, true, false]}',
    ) as unknown;
    assert.equal(
      canonical(input),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
    const sorting = JSON.parse(
      '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh",' +
        '"1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control",' +
        '"\\u00f6":"Latin Small Letter O With Diaeresis"}',
    ) as Record<string, string>;
    const values = [...canonical(sorting).matchAll(/:"([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(values, [
      'Carriage Return',
      'One',
      'Control',
      'Latin Small Letter O With Diaeresis',
      'Euro Sign',
      'Emoji: Grinning Face',
      'Hebrew Letter Dalet With Dagesh',
    ]);
  });

  it('-0 becomes 0, wherever it is', () => {
    assert.equal(canonical(-0), '0');
    assert.equal(canonical([-0, 0, -0.0]), '[0,0,0]');
    assert.equal(canonical({ a: -0, b: { c: [-0] } }), '{"a":0,"b":{"c":[0]}}');
    fc.assert(
      fc.property(jsonArb, fc.array(fc.nat(), { maxLength: 4 }), (v, path) => {
        const w = plant(v, -0, path);
        assert.equal(canonical(w), canonical(noNegativeZero(w)));
        assert.equal(canonical(w), canonicalize(w));
      }),
      runs(),
    );
  });

  it('NaN, the infinities, bigints and lone surrogates (values and keys) throw TypeError, anywhere', () => {
    for (const bad of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      0n,
      1n,
      '\ud800',
      '\udfff',
      'a\ud83d',
      '\ude00b',
    ])
      assert.throws(() => canonical(bad), TypeError, String(bad));
    assert.throws(() => canonical({ '\ud800': 1 }), TypeError);
    const badValue = fc.oneof(
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
      fc.bigInt(),
      loneSurrogateString,
      loneSurrogateString.map((k) => ({ [k]: 1 })),
      loneSurrogateString.map((k) => Object.defineProperty({}, k, { value: 'x', enumerable: true })),
    );
    fc.assert(
      fc.property(jsonArb, badValue, fc.array(fc.nat(), { maxLength: 4 }), (v, bad, path) => {
        const w = plant(v, bad, path);
        assert.throws(() => canonical(w), TypeError);
      }),
      runs(),
    );
  });

  it('undefined members are left out, undefined array items are null (as JSON.stringify and the reference do)', () => {
    assert.equal(canonical({ a: undefined, b: 1, c: undefined }), '{"b":1}');
    assert.equal(canonical({ a: undefined }), '{}');
    assert.equal(canonical([undefined, 1]), '[null,1]');
    assert.throws(() => canonical(undefined), TypeError);
    const withUndefined = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constant(undefined),
        jsonArb,
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(wellFormedString, tie('value'), { maxKeys: 5, noNullPrototype: true }),
      ),
    })).value;
    fc.assert(
      fc.property(withUndefined, (v) => {
        fc.pre(v !== undefined);
        const text = canonical(v);
        assert.equal(text, canonicalize(v));
        assert.deepEqual(JSON.parse(text), noNegativeZero(JSON.parse(JSON.stringify(v))));
      }),
      runs(),
    );
  });

  it('JSON.parse(canonical(v)) deep-equals v (modulo -0), and canonical is idempotent', () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        const text = canonical(v);
        const back = JSON.parse(text) as unknown;
        assert.deepStrictEqual(back, noNegativeZero(v));
        assert.equal(canonical(back), text);
      }),
      runs(3),
    );
  });

  it('values with toJSON are written as their toJSON (as the reference does)', () => {
    const d = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6));
    assert.equal(canonical(d), '"2024-01-02T03:04:05.006Z"');
    assert.equal(
      canonical({ d, x: { toJSON: () => ({ b: 1, a: [2] }) } }),
      canonicalize({ d, x: { toJSON: () => ({ b: 1, a: [2] }) } }),
    );
  });

  it('nesting: 1000 levels are written, deeper is a TypeError (not a stack overflow)', () => {
    const nest = (n: number) => {
      let v: unknown = 0;
      for (let i = 0; i < n; i++) v = i % 2 ? [v] : { a: v };
      return v;
    };
    assert.equal(canonical(nest(1000)).length, JSON.stringify(nest(1000)).length);
    assert.throws(() => canonical(nest(1001)), TypeError);
    assert.throws(() => canonical(nest(100_000)), TypeError);
  });
});
