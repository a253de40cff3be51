/**
 * PostgreSQL restart mid-load, CI form (DESIGN.md §10: "PostgreSQL restart mid-load loses nothing
 * and work resumes by itself"). The test starts its own server (initdb into a temp dir, its own
 * port), runs workers on a ledger there, and restarts the server (`pg_ctl -m fast stop`, then
 * `start`) while jobs run. The workers are never restarted: the same processes must reconnect and
 * finish everything. Skipped only when no PostgreSQL binaries exist, and never under CI=true.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createPgDatabase } from '../helpers/pg-scratch.js';
import { killAll, problems, randomSeed, runScenario } from './harness.js';
import { findPgBin, type PgInstance, startPgInstance } from './pg-instance.js';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const bin = findPgBin();
const seed = Number(process.env.BULKHEAD_FAULTS_SEED ?? randomSeed());
const skip =
  !bin && !ci
    ? 'no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin; set PG_BIN_DIR'
    : false;

describe('PostgreSQL restart while workers run', () => {
  let instance: PgInstance | undefined;
  let logDir: string | undefined;
  let keep = false;

  after(() => {
    killAll();
    instance?.destroy();
    if (logDir && !keep) rmSync(logDir, { recursive: true, force: true });
  });

  it('loses nothing, and the same worker processes resume by themselves', { skip }, async (t) => {
    assert.ok(bin, 'CI=true requires PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin');
    instance = await startPgInstance(bin);
    t.diagnostic(`private PostgreSQL on port ${instance.port} in ${instance.dir}`);
    const ledger = await createPgDatabase(instance.url);
    logDir = mkdtempSync(join(tmpdir(), 'bulkhead-faults-pgrestart-'));
    keep = true;
    const r = await runScenario({
      backend: 'postgres',
      ledgerUrl: ledger.url,
      // The external store stays up (a SQLite file): this test is about the ledger going away.
      effectsUrl: join(logDir, 'effects.db'),
      logDir,
      workers: 3,
      concurrency: 4,
      jobs: 200,
      steps: 4,
      maxSleepMs: 40,
      leaseMs: 1000,
      fault: { kind: 'pg-restart', count: 1, server: instance },
      seed,
      drainTimeoutMs: 90_000,
      log: (l) => t.diagnostic(l),
    });
    const f = r.figures;
    const found = problems(r);
    if (found.length > 0) found.push(`--- PostgreSQL log\n${instance.log().slice(-4000)}`);
    assert.deepEqual(found, []);
    assert.equal(f.faults, 1);
    assert.equal(f.lost, 0);
    assert.equal(f.succeeded, f.jobs);
    assert.equal(f.duplicates, 0);
    assert.equal(f.crashes, 0);
    // The very processes started at the beginning finished the work: none exited, none replaced.
    assert.ok(
      r.pidsAtStart.every((p) => p !== undefined),
      'a worker was not running at start',
    );
    assert.deepEqual(r.pidsAtEnd, r.pidsAtStart);
    // And they did see the server go away (the fault was real), then carried on.
    const logs = r.fleet.slots.map((s) => readFileSync(s.log, 'utf8')).join('\n');
    assert.match(logs, /store unreachable/);
    keep = false;
    await ledger.drop().catch(() => undefined);
  });
});
