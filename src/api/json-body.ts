/**
 * The one JSON body parser of every route, with two checks Fastify's own parser does not make:
 *
 * - nesting: a body may nest arrays and objects at most `MAX_BODY_DEPTH` levels deep. The raw text
 *   is scanned once before it is parsed (string contents skipped, memory bounded by the limit), so
 *   no code after it ever recurses on a depth the client chose;
 * - text: every string and every key must be well-formed Unicode. A lone surrogate (`"\ud800"`) is
 *   text no store keeps as given and no canonical form holds.
 *
 * Both refusals are 400 `invalid_request` naming the JSON path (`body/input/0`), in the shape of a
 * schema validation error. Prototype poisoning is still refused by Fastify's parser, which this wraps.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpProblem } from './problem.js';

/** How deep a JSON request body may nest arrays and objects: `{"a":[1]}` nests 2 levels. */
export const MAX_BODY_DEPTH = 512;

/** A step of a JSON path: an object key or an array index. */
export type PathSegment = string | number;

type Done = (err: Error | null, body?: unknown) => void;

export function registerJsonBody(app: FastifyInstance): void {
  // Fastify's parser (secure-json-parse, `__proto__` and `constructor.prototype` refused), callback form.
  const parse = app.getDefaultJsonParser('error', 'error') as (
    req: FastifyRequest,
    body: string,
    done: Done,
  ) => void;
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, text, done: Done) => {
    const deep = findTooDeep(text as string, MAX_BODY_DEPTH);
    if (deep) {
      return done(
        invalid(
          deep,
          `nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep; a JSON request body may nest at most ${MAX_BODY_DEPTH}`,
        ),
      );
    }
    parse(request, text as string, (err, body) => {
      if (err) return done(err);
      // Decoded UTF-8 is always well-formed: only a \uD800-\uDFFF escape can make a lone surrogate.
      const bad = /\\u[dD][89a-fA-F]/.test(text as string) ? findIllFormed(body) : undefined;
      if (!bad) return done(null, body);
      const at = /\p{Cs}/u.exec(bad.text);
      const unit = at ? `${escapeSurrogates(at[0])} at index ${at.index}` : 'a lone surrogate';
      const what = bad.key ? `the key "${displayKey(bad.text)}"` : 'the string';
      return done(
        invalid(
          bad.path,
          `${what} is not well-formed Unicode: it holds a lone surrogate (${unit}); strings and keys must pair each high surrogate (\\ud800-\\udbff) with a low one (\\udc00-\\udfff)`,
        ),
      );
    });
  });
}

function invalid(path: PathSegment[], message: string): HttpProblem {
  const where = bodyPath(path);
  return new HttpProblem(400, 'invalid_request', `the request is invalid: ${where}: ${message}`, {
    errors: [{ path: where, message }],
  });
}

/** Segments shown of a path before `…`: a path to depth 513 is not a message. */
const SHOWN_SEGMENTS = 8;

/** `body/input/0`, as schema validation errors name places (JSON Pointer escapes, lone surrogates as `\uXXXX`). */
export function bodyPath(path: PathSegment[]): string {
  const shown = path
    .slice(0, SHOWN_SEGMENTS)
    .map((s) => `/${displayKey(String(s)).replaceAll('~', '~0').replaceAll('/', '~1')}`);
  return `body${shown.join('')}${path.length > SHOWN_SEGMENTS ? '/…' : ''}`;
}

function displayKey(key: string): string {
  const short = key.length > 60 ? `${key.slice(0, 60)}…` : key;
  return escapeSurrogates(short);
}

function escapeSurrogates(s: string): string {
  return s.replace(/\p{Cs}/gu, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

/**
 * The path to the first array or object of `text` that opens deeper than `limit` levels, or
 * undefined when none does. One pass over the text, string contents skipped; what it keeps is
 * bounded by `limit`, however deep the text goes. Malformed JSON is left to the parser.
 */
export function findTooDeep(text: string, limit: number): PathSegment[] | undefined {
  // Per open container: the index of the current element of an array, or -1 for an object, whose
  // current key is the string literal text.slice(keyStart, keyEnd).
  const index = new Int32Array(limit);
  const keyStart = new Int32Array(limit);
  const keyEnd = new Int32Array(limit);
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      i = endOfString(text, i);
      if (expectKey && depth > 0) {
        keyStart[depth - 1] = start;
        keyEnd[depth - 1] = i + 1;
        expectKey = false;
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth === limit) return pathAt(text, depth, index, keyStart, keyEnd);
      index[depth] = c === OPEN_OBJECT ? -1 : 0;
      keyStart[depth] = -1;
      depth++;
      expectKey = c === OPEN_OBJECT;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth > 0) depth--;
      expectKey = false;
    } else if (c === COMMA && depth > 0) {
      const top = depth - 1;
      if (index[top] === -1) expectKey = true;
      else index[top] = (index[top] ?? 0) + 1;
    }
  }
  return undefined;
}

/** The index of the quote closing the string literal that opens at `start` (or the text's end). */
function endOfString(text: string, start: number): number {
  let i = start;
  for (;;) {
    i = text.indexOf('"', i + 1);
    if (i === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
}

function pathAt(
  text: string,
  depth: number,
  index: Int32Array,
  keyStart: Int32Array,
  keyEnd: Int32Array,
): PathSegment[] {
  const path: PathSegment[] = [];
  for (let d = 0; d < depth; d++) {
    const i = index[d] ?? 0;
    if (i >= 0) {
      path.push(i);
      continue;
    }
    const start = keyStart[d] ?? -1;
    const literal = start < 0 ? '""' : text.slice(start, keyEnd[d]);
    let key: string;
    try {
      key = JSON.parse(literal) as string;
    } catch {
      key = literal;
    }
    path.push(key);
  }
  return path;
}

/**
 * The first string or key found in a parsed JSON value that is not well-formed Unicode, with its
 * path (for a key, the path of its object). Iterative: no recursion, whatever the depth.
 */
export function findIllFormed(
  value: unknown,
): { path: PathSegment[]; key: boolean; text: string } | undefined {
  if (typeof value === 'string')
    return value.isWellFormed() ? undefined : { path: [], key: false, text: value };
  if (typeof value !== 'object' || value === null) return undefined;
  interface Frame {
    value: object;
    parent: Frame | undefined;
    segment: PathSegment;
  }
  const pathOf = (frame: Frame, last?: PathSegment): PathSegment[] => {
    const path: PathSegment[] = last === undefined ? [] : [last];
    for (let f: Frame | undefined = frame; f?.parent; f = f.parent) path.push(f.segment);
    return path.reverse();
  };
  const stack: Frame[] = [{ value, parent: undefined, segment: '' }];
  for (let frame = stack.pop(); frame; frame = stack.pop()) {
    const entries: [PathSegment, unknown][] = Array.isArray(frame.value)
      ? frame.value.map((v, i) => [i, v])
      : Object.entries(frame.value);
    for (const [segment, child] of entries) {
      if (typeof segment === 'string' && !segment.isWellFormed())
        return { path: pathOf(frame), key: true, text: segment };
      if (typeof child === 'string') {
        if (!child.isWellFormed()) return { path: pathOf(frame, segment), key: false, text: child };
      } else if (typeof child === 'object' && child !== null) {
        stack.push({ value: child, parent: frame, segment });
      }
    }
  }
  return undefined;
}
