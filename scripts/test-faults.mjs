#!/usr/bin/env node
// The crash battery, long form (the CI form is `npm test -- test/faults`): real worker processes,
// jobs whose durable steps write to an external store, and faults at seeded random moments, then a
// Jepsen-style check of the ledger and the external store. Prints the figures as a markdown table;
// exits 1 when any invariant is broken (the failures and the worker log dir are printed).
//
//   npm run test:faults -- --kills 1000 --stops 100 --pg-restarts 10 --backend all --seed 42
//
//   --kills N         SIGKILL a random worker N times per backend (default 200; 0 skips)
//   --stops N         SIGSTOP a worker past its lease N times per backend (default 50; 0 skips)
//   --pg-restarts N   restart a private PostgreSQL server N times (default 3; postgres|all only)
//   --backend B       sqlite | postgres | all (default all; postgres from BULKHEAD_TEST_PG_URL or the
//                     local server postgres://postgres@127.0.0.1:5432/postgres)
//   --jobs N          jobs per scenario (default: 5 per kill, 10 per stop, 150 per restart; >= 200)
//   --workers N       worker processes (default 3; 2 for stops)
//   --seed S          replay a run's seed (faults, victims, delays and job shapes)
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const root = new URL('..', import.meta.url).pathname;
const dist = (p) => join(root, 'dist/test/faults', p);
if (!existsSync(dist('harness.js'))) {
  console.error('dist/test/faults/harness.js is missing: run `npm run build` first');
  process.exit(1);
}
const { runScenario, problems, randomSeed, killAll } = await import(dist('harness.js'));
const { createFaultEnv } = await import(dist('env.js'));
const { findPgBin, startPgInstance } = await import(dist('pg-instance.js'));
const { createPgDatabase } = await import(join(root, 'dist/test/helpers/pg-scratch.js'));

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '200' },
    stops: { type: 'string', default: '50' },
    'pg-restarts': { type: 'string', default: '3' },
    backend: { type: 'string', default: 'all' },
    jobs: { type: 'string' },
    workers: { type: 'string' },
    seed: { type: 'string' },
  },
});
const int = (name, v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got '${v}'`);
    process.exit(2);
  }
  return n;
};
const kills = int('kills', values.kills);
const stops = int('stops', values.stops);
const restarts = int('pg-restarts', values['pg-restarts']);
const seed = values.seed === undefined ? randomSeed() : int('seed', values.seed);
if (!['sqlite', 'postgres', 'all'].includes(values.backend)) {
  console.error(`--backend must be sqlite, postgres or all, got '${values.backend}'`);
  process.exit(2);
}
const jobsFor = (per, n) => (values.jobs ? int('jobs', values.jobs) : Math.max(200, per * n));

async function probe(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

const backends = values.backend === 'all' ? ['sqlite', 'postgres'] : [values.backend];
const pgUrl = process.env.BULKHEAD_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
if (backends.includes('postgres') && (kills > 0 || stops > 0) && !(await probe(pgUrl))) {
  console.error(`PostgreSQL is not reachable at ${pgUrl} (set BULKHEAD_TEST_PG_URL to an admin URL)`);
  process.exit(1);
}

// Ctrl-C or a kill: take the worker processes down too.
let cleanupNow = async () => {};
let instance;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll();
    instance?.destroy();
    cleanupNow().finally(() => process.exit(130));
  });
}

console.log(`crash battery: seed ${seed} (replay with --seed ${seed})`);
const results = [];
const failures = [];
const log = (line) => console.log(`  ${line}`);

async function scenario(label, env, options) {
  console.log(`\n## ${label}`);
  let failed = true;
  cleanupNow = () => env.cleanup();
  try {
    const r = await runScenario({ ...options, seed, log, logDir: env.logDir });
    results.push({ label, ...r.figures, report: r.report });
    const found = problems(r);
    if (found.length > 0) failures.push(`${label}:\n${found.join('\n')}`);
    else failed = false;
  } catch (err) {
    failures.push(`${label}: ${err.stack ?? err}`);
  } finally {
    await env.cleanup({ keepLogs: failed });
  }
}

const shape = { steps: 4, maxSleepMs: 40, leaseMs: 1000, drainTimeoutMs: 300_000 };
for (const backend of backends) {
  if (kills > 0) {
    const env = await createFaultEnv(backend, pgUrl);
    await scenario(`kill -9 x${kills} (${backend})`, env, {
      ...shape,
      backend,
      ledgerUrl: env.ledgerUrl,
      effectsUrl: env.effectsUrl,
      workers: int('workers', values.workers ?? 3),
      concurrency: 4,
      jobs: jobsFor(5, kills),
      fault: { kind: 'kill', count: kills },
    });
  }
  if (stops > 0) {
    const env = await createFaultEnv(backend, pgUrl);
    await scenario(`SIGSTOP x${stops} (${backend})`, env, {
      ...shape,
      backend,
      ledgerUrl: env.ledgerUrl,
      effectsUrl: env.effectsUrl,
      workers: int('workers', values.workers ?? 2),
      concurrency: 6,
      jobs: jobsFor(10, stops),
      backlog: 8,
      maxSleepMs: 60,
      leaseMs: 500,
      jitterMs: 150,
      fault: { kind: 'stop', count: stops, pauseMs: 1000 },
    });
  }
}

if (restarts > 0 && backends.includes('postgres')) {
  const bin = findPgBin();
  if (!bin) {
    failures.push('pg-restart: no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin');
  } else {
    instance = await startPgInstance(bin);
    try {
      const ledger = await createPgDatabase(instance.url);
      const env = await createFaultEnv('sqlite');
      await scenario(`PostgreSQL restart x${restarts}`, env, {
        ...shape,
        backend: 'postgres',
        ledgerUrl: ledger.url,
        effectsUrl: env.effectsUrl,
        workers: int('workers', values.workers ?? 3),
        concurrency: 4,
        jobs: jobsFor(150, restarts),
        fault: { kind: 'pg-restart', count: restarts, server: instance },
      });
    } finally {
      instance.destroy();
    }
  }
}
killAll();

const cols = [
  ['scenario', (r) => r.label],
  ['faults', (r) => r.faults],
  ['mid-job', (r) => r.faultsMidJob],
  ['jobs', (r) => r.jobs],
  ['succeeded', (r) => r.succeeded],
  ['lost', (r) => r.lost],
  ['duplicates', (r) => r.duplicates],
  ['stale accepted', (r) => r.staleAccepted],
  ['stale rejected', (r) => r.staleRejected],
  ['superseded', (r) => r.superseded],
  [
    'woken writes rejected/superseded',
    (r) => (r.fault === 'stop' ? `${r.report.postResumeRejected}/${r.report.postResumeSuperseded}` : '-'),
  ],
  ['crashes', (r) => r.crashes],
  ['recovery ms', (r) => r.recoveryMs],
  ['wall s', (r) => (r.wallMs / 1000).toFixed(1)],
];
console.log(`\nseed ${seed}\n`);
console.log(`| ${cols.map(([h]) => h).join(' | ')} |`);
console.log(`|${cols.map(() => '---').join('|')}|`);
for (const r of results) console.log(`| ${cols.map(([, f]) => f(r)).join(' | ')} |`);
if (failures.length > 0) {
  console.error(`\n${failures.length} scenario(s) FAILED:\n${failures.join('\n\n')}`);
  process.exit(1);
}
console.log('\nall invariants held');
