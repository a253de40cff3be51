/**
 * RFC 8785 canonical JSON (JSON Canonicalization Scheme), the form everything signed or hashed
 * takes: no whitespace, object keys sorted by UTF-16 code units, numbers and strings as ECMAScript's
 * JSON.stringify writes them. A value with no canonical form — NaN or an infinity, a string with a
 * lone surrogate, a bigint, nesting deeper than 1000 — is a TypeError. `undefined` members are left
 * out, as JSON.stringify leaves them out. (test/util/canonical-json.test.ts holds it to the
 * `canonicalize` reference implementation.)
 */

const MAX_DEPTH = 1000;

export function canonical(value: unknown): string {
  const text = write(value, 0);
  if (text === undefined) throw new TypeError('value has no canonical JSON form');
  return text;
}

/** Printable ASCII but `"` and `\`: written as it is, between quotes (the common case, and fast). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function str(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  if (!s.isWellFormed())
    throw new TypeError('a string holds a lone surrogate: it has no canonical JSON form');
  return JSON.stringify(s);
}

function write(v: unknown, depth: number): string | undefined {
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      if (Number.isSafeInteger(v)) return Object.is(v, -0) ? '0' : String(v);
      if (!Number.isFinite(v)) throw new TypeError(`${v} has no canonical JSON form`);
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (depth >= MAX_DEPTH) throw new TypeError(`value is nested deeper than ${MAX_DEPTH} levels`);
      const json = (v as { toJSON?: unknown }).toJSON;
      if (typeof json === 'function') return write(json.call(v), depth + 1);
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) out += (i ? ',' : '') + (write(v[i], depth + 1) ?? 'null');
        return `${out}]`;
      }
      const keys = Object.keys(v).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const text = write((v as Record<string, unknown>)[k], depth + 1);
        if (text === undefined) continue;
        out += `${first ? '' : ','}${str(k)}:${text}`;
        first = false;
      }
      return `${out}}`;
    }
    case 'bigint':
      throw new TypeError('a bigint has no canonical JSON form');
    default:
      return undefined;
  }
}
