#!/usr/bin/env node
// Rewrites the RBAC and tenant matrix in docs/SECURITY.md from test/api/rbac-table.ts (the table
// test/api/rbac-matrix.test.ts checks against the app): builds, then replaces the text between the
// matrix markers. The prose around the markers is left as it is.
//
//   node scripts/security-doc.mjs
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const built = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);
const { SECURITY_DOC, withMatrix } = await import('../dist/test/api/rbac-table.js');
const before = readFileSync(SECURITY_DOC, 'utf8');
const after = withMatrix(before);
if (after === before) console.log(`${SECURITY_DOC} is up to date`);
else {
  writeFileSync(SECURITY_DOC, after);
  console.log(`${SECURITY_DOC} rewritten`);
}
