/**
 * The JSON body checks against plain recursive definitions, on random JSON: the depth scan of the
 * raw text finds exactly the first array or object past the limit (strings holding brackets, quotes
 * and backslashes, and any whitespace, change nothing), and the well-formedness walk finds a lone
 * surrogate exactly when there is one, with a path that leads to it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bodyPath, findIllFormed, findTooDeep, type PathSegment } from '../../src/api/json-body.js';
import { anyChar } from '../helpers/json-arbitraries.js';

/** Strings that stress a scanner: brackets, quotes, backslashes, and (with anyChar) lone surrogates. */
const text = fc.string({
  unit: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('[', ']', '{', '}', '"', '\\', ',', ':') }, anyChar),
  maxLength: 6,
});
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null)),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(text, tie('value'), { maxKeys: 3 }),
  ),
})).value;
const layout = fc.constantFrom<string | number>(0, 1, 2, '\t', ' \r\n ');

const isContainer = (v: unknown): v is object => typeof v === 'object' && v !== null;

/** The path to the first container (in text order) nested deeper than `limit`, by recursion. */
function firstTooDeep(v: unknown, limit: number, path: PathSegment[] = []): PathSegment[] | undefined {
  if (!isContainer(v)) return undefined;
  if (path.length === limit) return path;
  const entries: [PathSegment, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  for (const [k, child] of entries) {
    const found = firstTooDeep(child, limit, [...path, k]);
    if (found) return found;
  }
  return undefined;
}

function allWellFormed(v: unknown): boolean {
  if (typeof v === 'string') return v.isWellFormed();
  if (!isContainer(v)) return true;
  if (Array.isArray(v)) return v.every(allWellFormed);
  return Object.entries(v).every(([k, x]) => k.isWellFormed() && allWellFormed(x));
}

const at = (v: unknown, path: PathSegment[]): unknown =>
  path.reduce<unknown>((x, k) => (x as Record<PathSegment, unknown>)[k], v);

describe('JSON body checks', () => {
  it('the depth scan agrees with a recursive definition on random JSON, in any layout', () => {
    fc.assert(
      fc.property(json, layout, fc.integer({ min: 1, max: 6 }), (value, space, limit) => {
        const raw = JSON.stringify(value, null, space);
        const parsed: unknown = JSON.parse(raw);
        const found = findTooDeep(raw, limit);
        assert.deepEqual(found, firstTooDeep(parsed, limit), raw);
        if (found) {
          assert.equal(found.length, limit);
          assert.ok(isContainer(at(parsed, found)), 'the path leads to the array or object too deep');
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('the depth scan keeps to the limit however deep the text goes, and ignores brackets in strings', () => {
    const deep = '['.repeat(2_000_000);
    assert.deepEqual(findTooDeep(deep, 3), [0, 0, 0]);
    assert.equal(findTooDeep(`["${'['.repeat(10_000)}\\"${'{'.repeat(10)}"]`, 2), undefined);
    assert.deepEqual(findTooDeep('{"a\\"b":{"c":[1,2,{"d":[]}]}}', 4), ['a"b', 'c', 2, 'd']);
    assert.deepEqual(findTooDeep('{"a":1,"b":[{"x":1},{"y":{}}]}', 3), ['b', 1, 'y']);
  });

  it('the text walk finds a lone surrogate exactly when there is one, and its path leads to it', () => {
    fc.assert(
      fc.property(json, (value) => {
        const found = findIllFormed(value);
        assert.equal(found === undefined, allWellFormed(value));
        if (!found) return;
        assert.equal(found.text.isWellFormed(), false);
        const target = at(value, found.path);
        if (found.key) assert.ok(isContainer(target) && Object.hasOwn(target, found.text));
        else assert.equal(target, found.text);
      }),
      { numRuns: 3000 },
    );
    let deep: unknown = ['\udc00'];
    for (let i = 0; i < 5000; i++) deep = [deep];
    assert.equal(findIllFormed(deep)?.path.length, 5001, 'no recursion: 5000 levels are walked');
  });

  it('paths read as schema errors do: JSON Pointer escapes, surrogates as \\uXXXX, long paths cut', () => {
    assert.equal(bodyPath([]), 'body');
    assert.equal(bodyPath(['a/b', 'c~d', 0]), 'body/a~1b/c~0d/0');
    assert.equal(bodyPath(['x\ud800']), 'body/x\\ud800');
    assert.equal(bodyPath(Array.from({ length: 20 }, (_, i) => i)), 'body/0/1/2/3/4/5/6/7/…');
    assert.equal(bodyPath(['k'.repeat(100)]), `body/${'k'.repeat(60)}…`);
  });
});
