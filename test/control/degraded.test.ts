/**
 * Degraded mode with real processes (DESIGN §4): `bulkhead control` is killed (SIGKILL) for longer
 * than configTtlMs while a `bulkhead worker --control` has work queued, on a SQLite file shared by
 * the processes and on PostgreSQL. Admitted ordinary work keeps completing on the cached snapshot
 * until it expires, then nothing new is claimed; destructive (freshControl) jobs go `blocked` and
 * do not start; a publish to the dead control plane fails as unreachable; once the control plane
 * is back on the same URL the worker catches up by itself, unblocks and finishes everything. Each
 * `job.running` event says which config version it ran under and whether on cached authority.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Snapshot } from '../../src/control/snapshot.js';
import { openStore } from '../../src/ledger/open.js';
import type { Store } from '../../src/ledger/store.js';
import type { Job, OutboxEvent } from '../../src/ledger/types.js';
import { closedPort, json, type Proc, runCli, serverEnv, show, spawnCli, stopAll } from '../e2e/procs.js';
import { signedAdmission } from '../helpers/admit.js';
import { sleep, tempDir } from '../helpers/backends.js';
import { createPgDatabase, pgAdminUrl } from '../helpers/pg-scratch.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/tasks.js', import.meta.url));
const TTL = 3000;
const FRESH = 1000;
const WORK = 160;
const config = (extra: Record<string, unknown> = {}) => ({
  configTtlMs: TTL,
  freshnessMs: FRESH,
  taskTypes: [
    { name: 'ctl.work', effect: 'write' },
    { name: 'ctl.purge', effect: 'destructive' },
  ],
  ...extra,
});

const KINDS = [
  {
    name: 'a SQLite file',
    create: async (dir: string) => ({ url: join(dir, 'ledger.db'), drop: async () => {} }),
  },
  ...(pgAdminUrl ? [{ name: 'PostgreSQL', create: () => createPgDatabase() }] : []),
];

after(stopAll);

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const sleepUntil = (t: number) => sleep(Math.max(0, t - Date.now()));

async function allEvents(store: Store): Promise<OutboxEvent[]> {
  const out: OutboxEvent[] = [];
  for (;;) {
    const page = await store.readEvents(out.at(-1)?.seq ?? 0, 1000);
    if (page.length === 0) return out;
    out.push(...page);
  }
}

for (const kind of KINDS) {
  describe(`control plane killed for longer than configTtlMs, on ${kind.name}`, () => {
    const tmp = tempDir('bulkhead-degraded-');
    const keysDir = join(tmp.dir, 'keys');
    const cacheFile = join(tmp.dir, 'worker-config-cache.json');
    let storeUrl = '';
    let drop = async () => {};
    let store: Store | undefined;
    let url = '';
    let adminKey = '';
    let control: Proc | undefined;
    let worker: Proc | undefined;
    const work: string[] = [];
    const purgeEarly: string[] = [];
    const purgeLate: string[] = [];
    let killAt = 0;
    let expiresAt = 0;
    let restartAt = 0;

    before(async () => {
      const db = await kind.create(tmp.dir);
      storeUrl = db.url;
      drop = db.drop;
      url = `http://127.0.0.1:${await closedPort()}`;
    });

    after(async () => {
      await stopAll();
      await store?.close();
      await drop();
      tmp.remove();
    });

    const cli = (args: string[], env: Record<string, string> = {}) =>
      runCli(args, { cwd: tmp.dir, env: { BULKHEAD_URL: url, BULKHEAD_API_KEY: adminKey, ...env } });
    const startControl = async () => {
      const port = new URL(url).port;
      control = spawnCli(['control', '--store', storeUrl, '--port', port, '--keys-dir', keysDir], {
        cwd: tmp.dir,
        env: serverEnv(),
      });
      assert.equal((await control.waitFor(/listening at (http:\S+)/))[1], url);
    };
    const publish = async (doc: unknown) => {
      const file = join(tmp.dir, `config-${Date.now()}.json`);
      writeFileSync(file, JSON.stringify(doc));
      return cli(['config', 'publish', file, '--json']);
    };
    const appliedVersion = async (): Promise<number | undefined> => {
      const res = await fetch(`${url}/v1/workers`, { headers: { authorization: `Bearer ${adminKey}` } });
      const body = (await res.json()) as { workers: { id: string; config: { appliedVersion?: number } }[] };
      return body.workers.find((w) => w.id === 'w-deg')?.config.appliedVersion;
    };
    const jobs = async (ids: string[]): Promise<Job[]> => {
      const out: Job[] = [];
      for (const id of ids) {
        const j = await store?.get(id);
        assert.ok(j, id);
        out.push(j);
      }
      return out;
    };
    const submit = async (task: string, n: number, ms: (i: number) => number): Promise<string[]> => {
      assert.ok(store);
      const inputs = Array.from({ length: n }, (_, i) => ({ task, input: { ms: ms(i) } }));
      return (await signedAdmission(store, keysDir)('default', inputs)).map((r) => r.job.id);
    };

    it('init, control, a published config, a worker key, and a worker that ACKs the config', async () => {
      const init = await runCli(['init', '--store', storeUrl, '--keys-dir', keysDir, '--json'], {
        cwd: tmp.dir,
        env: serverEnv(),
      });
      assert.equal(init.code, 0, show(init));
      adminKey = String(json(init).adminKey);
      await startControl();
      const pub = await publish(config());
      assert.equal(pub.code, 0, show(pub));
      assert.deepEqual([json(pub).version, json(pub).kind], [2, 'publish']);
      const key = await cli(['keys', 'create', '--tenant', 'default', '--role', 'worker']);
      assert.equal(key.code, 0, show(key));
      const workerKey = key.stdout.trim();
      assert.match(workerKey, /^bh_\S+$/);
      // biome-ignore format: the options grouped by purpose
      worker = spawnCli(
        ['worker', '--store', storeUrl, '--tasks', FIXTURES, '--id', 'w-deg',
          '--concurrency', '4', '--poll-ms', '100', '--grace-ms', '2000',
          '--control', url, '--control-keys', keysDir, '--config-cache', cacheFile],
        { cwd: tmp.dir, env: serverEnv({ BULKHEAD_API_KEY: workerKey }) },
      );
      await worker.waitFor(/worker w-deg running ctl\.purge, ctl\.work\n/);
      await until(
        async () => ((await appliedVersion()) === 2 ? true : undefined),
        'the worker to ACK v2',
        10_000,
      );
      store = await openStore(storeUrl);
    });

    it('with the control plane up, ordinary and destructive work runs', async () => {
      purgeEarly.push(...(await submit('ctl.purge', 3, () => 50)));
      work.push(...(await submit('ctl.work', WORK, (i) => 100 + ((i * 37) % 201))));
      await until(
        async () => {
          const early = await jobs(purgeEarly);
          const done = (await store?.list({ task: 'ctl.work', states: ['succeeded'] }, { limit: 100 }))?.jobs;
          return early.every((j) => j.state === 'succeeded') && (done?.length ?? 0) >= 20 ? true : undefined;
        },
        'the early destructive jobs and 20 work jobs to succeed',
        15_000,
      );
    });

    it('control killed: work goes on until the cached snapshot expires, destructive jobs are blocked', async () => {
      assert.ok(control && store);
      killAt = Date.now();
      control.child.kill('SIGKILL');
      assert.equal((await control.exited).signal, 'SIGKILL');
      const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as Snapshot;
      assert.equal(cached.version, 2);
      expiresAt = cached.expiresAt;
      assert.ok(
        expiresAt > killAt && expiresAt <= killAt + TTL + 100,
        `expires ${expiresAt - killAt} ms after kill`,
      );

      // Past the freshness window of the last contact: destructive work may not start.
      await sleepUntil(killAt + FRESH + 100);
      purgeLate.push(...(await submit('ctl.purge', 5, () => 50)));
      await until(
        async () => ((await jobs(purgeLate)).every((j) => j.state === 'blocked') ? true : undefined),
        'the destructive jobs to be blocked',
        Math.max(500, expiresAt - Date.now()),
      );
      for (const j of await jobs(purgeLate)) {
        assert.deepEqual(
          [j.state, j.reason, j.attempt, j.fence],
          ['blocked', 'fresh_control_required', 0, 0],
        );
      }

      await sleepUntil(expiresAt + 2000);
      const events = await allEvents(store);
      const workSet = new Set(work);
      const during = (type: string) =>
        events.filter(
          (e) => e.type === type && workSet.has(e.jobId ?? '') && e.at > killAt && e.at <= expiresAt,
        );
      assert.ok(during('job.running').length >= 10, `${during('job.running').length} work jobs started`);
      assert.ok(
        during('job.succeeded').length >= 10,
        `${during('job.succeeded').length} work jobs completed`,
      );
      const lateLeases = events.filter((e) => e.type === 'job.leased' && e.at > expiresAt + 500);
      assert.deepEqual(lateLeases, [], 'nothing is claimed after the snapshot expired');
      const late = new Set(purgeLate);
      assert.deepEqual(
        events.filter((e) => late.has(e.jobId ?? '') && e.type !== 'job.queued' && e.type !== 'job.blocked'),
        [],
        'the blocked destructive jobs were never leased or started',
      );
      const states = new Map<string, number>();
      for (const j of await jobs(work)) states.set(j.state, (states.get(j.state) ?? 0) + 1);
      assert.ok((states.get('queued') ?? 0) > 0, `work stays queued: ${JSON.stringify([...states])}`);
      assert.equal(states.get('leased') ?? 0, 0, 'in-flight work finished');
      assert.equal(states.get('running') ?? 0, 0, 'in-flight work finished');
      assert.equal((await jobs(purgeLate)).filter((j) => j.state === 'blocked').length, 5);
      assert.ok(worker?.running, 'the worker process is still up');
    });

    it('a publish to the dead control plane fails as unreachable (exit 7)', async () => {
      const r = await publish(config({ tenants: [{ name: 'never' }] }));
      assert.equal(r.code, 7, show(r));
      assert.match(r.stderr, new RegExp(`cannot reach the Bulkhead API at ${url.replaceAll('.', '\\.')}`));
    });

    it('control back on the same URL: the worker catches up by itself, unblocks and finishes all', async () => {
      assert.ok(store && worker);
      const pid = worker.child.pid;
      restartAt = Date.now();
      await startControl();
      const pub = await publish(config({ tenants: [{ name: 'after-outage' }] }));
      assert.equal(pub.code, 0, show(pub));
      assert.equal(json(pub).version, 3, 'the failed publish made no version');
      await until(
        async () => ((await appliedVersion()) === 3 ? true : undefined),
        'the worker to ACK v3',
        20_000,
      );
      await until(
        async () => {
          const all = await jobs([...work, ...purgeEarly, ...purgeLate]);
          return all.every((j) => j.state === 'succeeded') ? true : undefined;
        },
        'every job to succeed',
        30_000,
      );
      assert.ok(worker.running && worker.child.pid === pid, 'the same worker process did it');
      const cached = JSON.parse(readFileSync(cacheFile, 'utf8')) as Snapshot;
      assert.equal(cached.version, 3, 'the cache holds the new version');
      const events = await allEvents(store);
      for (const id of purgeLate) {
        const mine = events.filter((e) => e.jobId === id);
        const unblocked = mine.find((e) => e.type === 'job.queued' && e.data.reason === 'unblocked');
        assert.ok(unblocked && unblocked.at >= restartAt, `job ${id} unblocked after the restart`);
        assert.equal(unblocked.data.was, 'fresh_control_required');
        const running = mine.filter((e) => e.type === 'job.running');
        assert.equal(running.length, 1);
        assert.ok((running[0]?.at ?? 0) > restartAt);
        assert.equal(running[0]?.data.cachedAuthority, false, 'started with fresh control contact');
      }
    });

    it('job.running events carry the config version, and cachedAuthority when control was out of reach', async () => {
      assert.ok(store);
      const running = (await allEvents(store)).filter((e) => e.type === 'job.running');
      assert.equal(running.length, WORK + 8, 'one start per job (none failed)');
      for (const e of running) {
        assert.ok(e.data.configVersion === 2 || e.data.configVersion === 3, JSON.stringify(e));
        assert.equal(typeof e.data.cachedAuthority, 'boolean', JSON.stringify(e));
      }
      const before = running.filter((e) => e.at < killAt);
      assert.ok(before.length >= 23);
      assert.deepEqual(
        before.filter((e) => e.data.configVersion !== 2 || e.data.cachedAuthority !== false),
        [],
        'before the kill: v2, fresh authority',
      );
      const cachedOnly = running.filter((e) => e.at > killAt + FRESH + 150 && e.at <= expiresAt);
      assert.ok(cachedOnly.length >= 1, 'some work started on cached authority');
      assert.deepEqual(
        cachedOnly.filter((e) => e.data.configVersion !== 2 || e.data.cachedAuthority !== true),
        [],
        'after the kill and past the freshness window: v2 on cached authority',
      );
      assert.deepEqual(
        running.filter((e) => e.at > expiresAt + 500 && e.at < restartAt),
        [],
        'nothing started between the expiry and the restart',
      );
      const v3 = running.filter((e) => e.data.configVersion === 3);
      assert.ok(v3.length >= 1, 'work ran under v3 after the restart');
      assert.deepEqual(
        v3.filter((e) => e.data.cachedAuthority !== false),
        [],
      );
    });
  });
}
