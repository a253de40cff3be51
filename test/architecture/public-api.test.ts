/**
 * The package's runtime exports are a deliberate list: this test fails when one appears or
 * disappears without `test/architecture/public-api.txt` being updated in the same change.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as api from '../../src/index.js';

const expectedFile = fileURLToPath(new URL('../../../test/architecture/public-api.txt', import.meta.url));

describe('public API', () => {
  it('exports exactly the names listed in public-api.txt', () => {
    const expected = readFileSync(expectedFile, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const actual = Object.keys(api).sort();
    const added = actual.filter((n) => !expected.includes(n));
    const removed = expected.filter((n) => !actual.includes(n));
    assert.deepEqual(
      { added, removed },
      { added: [], removed: [] },
      'the public API changed: update test/architecture/public-api.txt if that was intended',
    );
  });
});
