/**
 * Distributed mode with real processes: `bulkhead init`, then `bulkhead control` and
 * `bulkhead worker` as separate processes over one store — a SQLite file, and a throwaway
 * PostgreSQL database when BULKHEAD_TEST_PG_URL is set. (Crashing workers is another suite's job.)
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/backends.js';
import { createPgDatabase, pgAdminUrl } from '../helpers/pg-scratch.js';
import {
  DEMO_TASKS,
  json,
  type Proc,
  type RunResult,
  runCli,
  serverEnv,
  show,
  sigtermAtReady,
  spawnCli,
  stopAll,
} from './procs.js';

interface StoreKind {
  name: string;
  /** A store URL (or SQLite path) for a fresh, empty store, and how to remove it. */
  create(dir: string): Promise<{ url: string; drop(): Promise<void> }>;
}

const KINDS: StoreKind[] = [
  { name: 'a SQLite file', create: async (dir) => ({ url: join(dir, 'ledger.db'), drop: async () => {} }) },
  ...(pgAdminUrl ? [{ name: 'a PostgreSQL database', create: () => createPgDatabase() }] : []),
];

after(stopAll);

function expectExit(r: RunResult, code: number): void {
  assert.equal(r.code, code, show(r));
}

for (const kind of KINDS) {
  describe(`distributed mode on ${kind.name}`, () => {
    const tmp = tempDir('bulkhead-e2e-distributed-');
    const keyFile = join(tmp.dir, 'admin-key');
    let store = '';
    // The evidence store: a database of its own (another SQLite file, or another PostgreSQL database).
    let evidence = '';
    let drop = async () => {};
    let control: Proc | undefined;
    let worker: Proc | undefined;
    let url = '';
    let adminKey = '';

    before(async () => {
      const db = await kind.create(tmp.dir);
      store = db.url;
      const ev = kind.name.includes('PostgreSQL')
        ? await createPgDatabase()
        : { url: join(tmp.dir, 'evidence.db'), drop: async () => {} };
      evidence = ev.url;
      drop = async () => {
        await db.drop();
        await ev.drop();
      };
    });

    after(async () => {
      await stopAll();
      await drop();
      tmp.remove();
    });

    const server = (args: string[]) => spawnCli(args, { cwd: tmp.dir, env: serverEnv() });
    const bh = (args: string[]) =>
      runCli(args, { cwd: tmp.dir, env: { BULKHEAD_URL: url, BULKHEAD_API_KEY: adminKey } });

    it('init prints an admin key once and writes it to --admin-key-file (0600)', async () => {
      const r = await runCli(['init', '--store', store, '--admin-key-file', keyFile], {
        cwd: tmp.dir,
        env: serverEnv(),
      });
      expectExit(r, 0);
      const m = /^store initialised; admin key \(shown once, also written to (.+)\):\n(bh_\S+)\n$/.exec(
        r.stdout,
      );
      assert.ok(m, show(r));
      assert.equal(m[1], keyFile);
      adminKey = m[2] ?? '';
      assert.equal(readFileSync(keyFile, 'utf8').trim(), adminKey);
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    });

    it('a second init changes nothing and prints no key', async () => {
      const r = await runCli(['init', '--store', store, '--admin-key-file', keyFile], {
        cwd: tmp.dir,
        env: serverEnv(),
      });
      expectExit(r, 0);
      assert.match(r.stdout, /nothing changed/);
      assert.doesNotMatch(r.stdout, /bh_/);
      assert.equal(readFileSync(keyFile, 'utf8').trim(), adminKey, 'the key file is left alone');
      const j = await runCli(['init', '--store', store, '--json'], { cwd: tmp.dir, env: serverEnv() });
      expectExit(j, 0);
      const second = json<{
        changed: boolean;
        adminKey: string | null;
        keysDir: string;
        deploymentId: string;
      }>(j);
      assert.equal(second.changed, false);
      assert.equal(second.adminKey, null);
      assert.match(second.deploymentId, /^dep-[0-9a-f]{12}$/, 'the deployment id init made');
      assert.equal(second.keysDir, join(tmp.dir, 'bulkhead-keys'));
    });

    it('control starts on its own and serves the API with the init key', async () => {
      control = server(['control', '--store', store, '--evidence', evidence, '--port', '0']);
      url = (await control.waitFor(/listening at (http:\S+)/))[1] ?? '';
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const r = await bh(['health', '--json']);
      expectExit(r, 0);
      const h = json<{ status: string; sections: Record<string, Record<string, unknown>> }>(r);
      // A control process runs no worker: its execution section is the fleet, empty so far.
      assert.equal(h.status, 'degraded');
      assert.deepEqual(Object.keys(h.sections).sort(), ['control', 'evidence', 'execution', 'ledger']);
      assert.equal(h.sections.evidence?.store, kind.name.includes('PostgreSQL') ? 'postgres' : 'sqlite');
      assert.equal(h.sections.control?.version, 1, 'init published the first (empty) config');
      assert.equal(h.sections.ledger?.status, 'ok');
      assert.equal(h.sections.ledger?.dialect, kind.name.includes('PostgreSQL') ? 'postgres' : 'sqlite');
      assert.equal(h.sections.execution?.status, 'degraded');
      assert.equal(h.sections.execution?.reason, 'no active worker');
    });

    it('before any worker registered the task, submit exits 2 unknown_task', async () => {
      const r = await bh(['submit', 'demo.echo', '--input', '{"early":true}']);
      expectExit(r, 2);
      assert.match(r.stderr, /task 'demo\.echo' is not registered \(known: none\).*\[unknown_task\]/);
      const none = await bh(['jobs', 'ls', '--json']);
      expectExit(none, 0);
      assert.deepEqual(json<{ jobs: unknown[] }>(none).jobs, []);
    });

    it('a job submitted to the control process is run by the worker process', async () => {
      // The worker pins the control plane's key (init's keys dir): it verifies every job's authority record.
      const keys = join(tmp.dir, 'bulkhead-keys');
      worker = server(['worker', '--store', store, '--tasks', DEMO_TASKS, '--control-keys', keys]);
      await worker.waitFor(
        /worker \S+ running demo\.echo, demo\.flaky, demo\.payout, demo\.summarize, demo\.thumbnail\n/,
      );
      const r = await bh(['submit', 'demo.echo', '--input', '{"via":"control","to":"worker"}', '--wait']);
      expectExit(r, 0);
      assert.deepEqual(json(r), { via: 'control', to: 'worker' });
      // The control process now sees the worker in its fleet.
      const h = json<{ status: string; sections: Record<string, Record<string, unknown>> }>(
        await bh(['health', '--json']),
      );
      assert.equal(h.status, 'ok');
      assert.deepEqual(h.sections.execution?.workers, { active: 1, draining: 0, lost: 0, stopped: 0 });
      // The control process ships the worker's events into the evidence store, in order.
      const jobs = json<{ jobs: Array<{ id: string }> }>(await bh(['jobs', 'ls', '--json'])).jobs;
      const id = jobs[0]?.id ?? '';
      let kinds: string[] = [];
      for (let i = 0; i < 100 && !kinds.includes('outcome'); i++) {
        const t = await bh(['evidence', 'trail', id, '--json']);
        if (t.code === 0) kinds = json<Array<{ kind: string }>>(t).map((e) => e.kind);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(kinds, ['admission', 'lease', 'start', 'outcome']);
      expectExit(await bh(['evidence', 'verify']), 0);
    });

    it('retries across attempts keep the durable step (demo.flaky) and a batch all succeeds', async () => {
      const flaky = await bh(['submit', 'demo.flaky', '--input', '{"failures":1}', '--wait', '--json']);
      expectExit(flaky, 0);
      const job = json<{ state: string; attempt: number; output: Record<string, unknown> }>(flaky);
      assert.equal(job.state, 'succeeded');
      assert.equal(job.attempt, 2);
      assert.equal(job.output.preparedOnAttempt, 1);
      assert.equal(job.output.succeededOnAttempt, 2);
      const batch = await bh(['submit', 'demo.echo', '--input', '{"n":1}', '--count', '20', '--wait']);
      expectExit(batch, 0);
      assert.equal(batch.stdout, '20 succeeded\n');
    });

    it('control and worker exit 0 on SIGTERM', async () => {
      for (const p of [worker, control]) {
        assert.ok(p);
        const r = await p.stop(10_000);
        assert.deepEqual([r.code, r.signal], [0, null], p.describe());
      }
    });

    it('control and worker sent SIGTERM as soon as they print their ready line also exit 0', async () => {
      const options = { cwd: tmp.dir, env: serverEnv() };
      const c = await sigtermAtReady(
        ['control', '--store', store, '--evidence', evidence, '--port', '0'],
        /listening at/,
        options,
        10,
      );
      const w = await sigtermAtReady(
        ['worker', '--store', store, '--tasks', DEMO_TASKS],
        / running /,
        options,
        10,
      );
      const unclean = (ends: string[]) => ends.filter((e) => e !== '0/null');
      assert.deepEqual(
        { control: unclean(c), worker: unclean(w) },
        { control: [], worker: [] },
        `code/signal of 10 runs each: control ${c.join(' ')}; worker ${w.join(' ')}`,
      );
    });
  });
}
