#!/usr/bin/env node
// The whole test suite: build, lint and format check, then every test file under node's test runner
// against both ledger backends. PostgreSQL comes from BULKHEAD_TEST_PG_URL (an admin URL: each test
// file creates and drops its own database); when unset, the default local server is tried. With
// CI=true a missing PostgreSQL fails the run instead of skipping.
//
//   npm test                      everything
//   npm test -- test/ledger       only files under a path
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

const run = (cmd, args, env = process.env) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

const filters = process.argv.slice(2).map((f) => f.replace(/^dist\//, '').replace(/\.ts$/, ''));
const ci = process.env.CI === 'true' || process.env.CI === '1';

run('npx', ['tsc', '-p', 'tsconfig.json']);
if (filters.length === 0) run('npx', ['biome', 'ci', '.']);

async function probe(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

const env = { ...process.env };
const defaultUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
const pgUrl = env.BULKHEAD_TEST_PG_URL || defaultUrl;
if (await probe(pgUrl)) {
  env.BULKHEAD_TEST_PG_URL = pgUrl;
  console.log(`PostgreSQL tests: on (${pgUrl.replace(/\/\/[^@]*@/, '//')})`);
} else if (ci) {
  console.error(
    `PostgreSQL is not reachable at ${pgUrl}; CI requires it (set BULKHEAD_TEST_PG_URL to an admin URL)`,
  );
  process.exit(1);
} else {
  delete env.BULKHEAD_TEST_PG_URL;
  console.log(
    `PostgreSQL tests: skipped (no server at ${pgUrl}); set BULKHEAD_TEST_PG_URL=postgres://user@host:port/db to run them`,
  );
}

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = collect('dist/test')
  .filter((f) => filters.length === 0 || filters.some((flt) => f.includes(flt)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
// A file's time limit is generous: the fault and tamper batteries are CPU-bound and share two cores
// with the file running beside them, so on a busy machine they take several times their idle time.
run(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=600000', ...files], env);
