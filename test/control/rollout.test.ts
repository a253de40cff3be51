/**
 * Config rollout through the control plane's HTTP API (DESIGN §4), with two in-process workers on
 * each ledger backend: a canary reaches only the workers with its label; promote rolls it out; a
 * canary the canary worker NACKs cannot be promoted (409 naming the worker and reason); abort
 * returns the canary worker to the current version; rollback publishes the old content as a new
 * version; read-only mode refuses privileged mutations while admission and reads go on.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ensureControlIdentity, ensureInitialConfig, inProcessSource } from '../../src/cli/control-setup.js';
import { loadTasks } from '../../src/cli/load-tasks.js';
import {
  bootstrapStore,
  type ControlProcess,
  startControl,
  startWorker,
  type WorkerProcess,
} from '../../src/cli/runtime.js';
import type { Snapshot } from '../../src/control/snapshot.js';
import type { ConfigSource } from '../../src/execution/config-agent.js';
import { backends, sleep, type TestStore, tempDir } from '../helpers/backends.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/tasks.js', import.meta.url));
const silent = pino({ level: 'silent' });
const doc = (tenant: string) => ({
  tenants: [{ name: tenant }],
  taskTypes: [{ name: 'ctl.work' }, { name: 'ctl.purge', effect: 'destructive' }],
});

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = Record<string, any>;
type WorkerView = {
  id: string;
  config: { appliedVersion?: number; nackVersion?: number; nackReason?: string; status: string };
};

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

for (const backend of backends()) {
  describe(`rollout on ${backend.dialect}`, () => {
    const tmp = tempDir('bulkhead-rollout-');
    let ts: TestStore;
    let control: ControlProcess;
    let adminKey = '';
    const workers: WorkerProcess[] = [];
    /** Versions the canary worker's wire corrupts (a flipped document byte). */
    const poisoned = new Set<number>();
    let canaryFetches = 0;
    let canary: WorkerProcess;
    let stable: WorkerProcess;

    const api = async (
      method: string,
      path: string,
      body?: unknown,
    ): Promise<{ status: number; body: Json }> => {
      const res = await fetch(control.url + path, {
        method,
        headers: {
          authorization: `Bearer ${adminKey}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : {}) as Json };
    };
    const fleet = async (): Promise<Record<string, WorkerView['config']>> => {
      const r = await api('GET', '/v1/workers');
      assert.equal(r.status, 200);
      return Object.fromEntries((r.body.workers as WorkerView[]).map((w) => [w.id, w.config]));
    };
    const applied = (want: Record<string, number>, what: string) =>
      until(async () => {
        const f = await fleet();
        return Object.entries(want).every(([id, v]) => f[id]?.appliedVersion === v) ? f : undefined;
      }, what);
    const agentVersion = (w: WorkerProcess) => w.worker.health().config?.version;

    before(async () => {
      ts = await backend.create();
      const store = ts.store;
      adminKey = (await bootstrapStore(store)).adminKey ?? '';
      const { service, identity } = ensureControlIdentity(join(tmp.dir, 'keys'));
      const config = service(store);
      await ensureInitialConfig(config, store);
      control = await startControl({ store, port: 0, host: '127.0.0.1', logger: silent, config });
      const tasks = await loadTasks(FIXTURES);
      const trust = {
        publicKeyPem: readFileSync(identity.publicKeyFile, 'utf8'),
        deploymentId: identity.deploymentId,
      };
      const wrap = (inner: ConfigSource): ConfigSource => ({
        async fetch(after, waitMs, signal) {
          canaryFetches++;
          // One macrotask per fetch: a fetch loop that never waits shows up as a count here
          // instead of starving the event loop (the SQLite store answers synchronously).
          await new Promise((r) => setImmediate(r));
          const s = (await inner.fetch(after, waitMs, signal)) as Snapshot;
          if (!poisoned.has(s.version)) return s;
          const text = JSON.stringify(s.document).replace('"canary-', '"canarz-');
          return { ...s, document: JSON.parse(text) as unknown };
        },
        report: (r) => inner.report(r),
      });
      for (const [id, labels] of [
        ['w-canary', ['canary']],
        ['w-stable', []],
      ] as const) {
        const w = await startWorker({
          store,
          tasks,
          concurrency: 2,
          logger: silent,
          labels: [...labels],
          tuning: { workerId: id, pollIntervalMs: 100 },
          config: {
            ...trust,
            source: (wid) => {
              const inner = inProcessSource(config, wid, [...labels]);
              return id === 'w-canary' ? wrap(inner) : inner;
            },
          },
        });
        workers.push(w);
      }
      [canary, stable] = workers as [WorkerProcess, WorkerProcess];
    });

    after(async () => {
      for (const w of workers) await w.stop(2000);
      await control?.close();
      await ts?.cleanup();
      tmp.remove();
    });

    it('both workers start on version 1 and ACK it', async () => {
      const f = await applied({ 'w-canary': 1, 'w-stable': 1 }, 'both workers to ACK v1');
      assert.equal(f['w-canary']?.status, 'ack');
      assert.equal(f['w-stable']?.status, 'ack');
    });

    it('a canary v2 reaches only the worker labelled canary', async () => {
      const r = await api('POST', '/v1/config', { document: doc('canary-two'), canary: 'canary' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.deepEqual([r.body.version, r.body.kind, r.body.canaryLabel], [2, 'canary', 'canary']);
      await applied({ 'w-canary': 2 }, 'the canary worker to ACK v2');
      await sleep(500);
      const f = await fleet();
      assert.equal(f['w-stable']?.appliedVersion, 1, 'the other worker stays on v1');
      assert.deepEqual([agentVersion(canary), agentVersion(stable)], [2, 1]);
      const v = await api('GET', '/v1/config/versions');
      assert.deepEqual(v.body.rollout.canary, { version: 2, label: 'canary' });
      assert.equal(v.body.rollout.currentVersion, 1);
    });

    it('promote rolls v2 out to both workers', async () => {
      const r = await api('POST', '/v1/config/promote');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual([r.body.currentVersion, r.body.canary, r.body.mode], [2, undefined, 'normal']);
      await applied({ 'w-canary': 2, 'w-stable': 2 }, 'both workers on v2');
      assert.deepEqual([agentVersion(canary), agentVersion(stable)], [2, 2]);
    });

    it('a canary v3 the canary worker NACKs cannot be promoted: 409 naming the worker and reason', async () => {
      poisoned.add(3);
      const r = await api('POST', '/v1/config', { document: doc('canary-three'), canary: 'canary' });
      assert.equal(r.status, 201);
      assert.equal(r.body.version, 3);
      const f = await until(async () => {
        const x = await fleet();
        return x['w-canary']?.nackVersion === 3 ? x : undefined;
      }, 'the canary worker to NACK v3');
      const c = f['w-canary'];
      assert.equal(c?.status, 'nack');
      assert.equal(c?.appliedVersion, 2);
      assert.match(c?.nackReason ?? '', /^digest_mismatch: the document of version 3 does not match/);
      assert.equal(agentVersion(canary), 2, 'the canary worker stays on its last-known-good v2');
      const p = await api('POST', '/v1/config/promote');
      assert.equal(p.status, 409);
      assert.equal(p.body.code, 'config_conflict');
      assert.match(p.body.detail, /canary version 3 was refused by w-canary \(digest_mismatch: /);
      const v = await api('GET', '/v1/config/versions');
      assert.deepEqual(
        [v.body.rollout.currentVersion, v.body.rollout.canary],
        [2, { version: 3, label: 'canary' }],
      );
    });

    it('a worker refusing a version does not re-fetch it in a loop', async () => {
      const before = canaryFetches;
      await sleep(1000);
      const n = canaryFetches - before;
      assert.ok(n <= 5, `the canary worker fetched config ${n} times in 1 s while refusing v3`);
    });

    it('abort: no canary; the current content (v2) is re-published as v4, which both workers apply', async () => {
      const v2 = (await api('GET', '/v1/config/versions/2')).body;
      const r = await api('POST', '/v1/config/abort');
      assert.equal(r.status, 200);
      assert.deepEqual(
        [r.body.currentVersion, r.body.canary],
        [4, undefined],
        'a new version, never a step back',
      );
      const v4 = (await api('GET', '/v1/config/versions/4')).body;
      assert.deepEqual([v4.kind, v4.digest], ['rollback', v2.digest], 'the content of v2');
      await applied({ 'w-canary': 4, 'w-stable': 4 }, 'both on v4 (the content of v2)');
      assert.equal(agentVersion(canary), 4);
    });

    it('after abort the fleet view no longer reports the aborted canary as NACKed', async () => {
      const f = await fleet();
      assert.equal(f['w-canary']?.status, 'ack', JSON.stringify(f['w-canary']));
      const h = await api('GET', '/v1/health');
      assert.deepEqual(h.body.sections.control.nacks, []);
    });

    it('abort after a canary was applied moves the canary worker forward to the current content', async () => {
      const before = (await api('GET', '/v1/config/versions')).body;
      const current = before.rollout.currentVersion as number;
      const currentDigest = (await api('GET', `/v1/config/versions/${current}`)).body.digest;
      const r = await api('POST', '/v1/config', { document: doc('canary-five'), canary: 'canary' });
      const canaryVersion = r.body.version as number;
      assert.equal(canaryVersion, current + 1);
      await applied(
        { 'w-canary': canaryVersion, 'w-stable': current },
        'the canary worker to ACK the canary',
      );
      const a = await api('POST', '/v1/config/abort');
      const next = canaryVersion + 1;
      assert.deepEqual([a.status, a.body.currentVersion], [200, next]);
      assert.equal((await api('GET', `/v1/config/versions/${next}`)).body.digest, currentDigest);
      await applied(
        { 'w-canary': next, 'w-stable': next },
        'both workers on the re-published current content',
      );
      assert.equal(agentVersion(canary), next);
    });

    it('rollback publishes the old content as a new version, applied by both workers', async () => {
      const versions = (await api('GET', '/v1/config/versions')).body.versions as Json[];
      const v1 = versions.find((v) => v.version === 1);
      const newest = versions[0];
      assert.ok(v1 && newest);
      const r = await api('POST', '/v1/config/rollback', { version: 1 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.version, newest.version + 1);
      assert.equal(r.body.kind, 'rollback');
      assert.equal(r.body.digest, v1.digest, 'same content, same digest');
      assert.equal(r.body.previousDigest, newest.digest);
      const one = await api('GET', `/v1/config/versions/${r.body.version}`);
      assert.deepEqual(one.body.document, (await api('GET', '/v1/config/versions/1')).body.document);
      const n = r.body.version as number;
      await applied({ 'w-canary': n, 'w-stable': n }, `both workers to ACK v${n}`);
      const f = await fleet();
      assert.deepEqual([f['w-canary']?.status, f['w-stable']?.status], ['ack', 'ack']);
    });

    it('read-only mode refuses publish, rollback, promote, tenants and keys with 409 read_only', async () => {
      const m = await api('POST', '/v1/control/mode', { mode: 'read_only' });
      assert.deepEqual([m.status, m.body.mode], [200, 'read_only']);
      const refused: [string, string, unknown, RegExp][] = [
        ['POST', '/v1/config', { document: doc('ro') }, /publishing config is refused/],
        ['POST', '/v1/config', { document: doc('ro'), canary: 'canary' }, /publishing config/],
        ['POST', '/v1/config/rollback', { version: 2 }, /rolling back config is refused/],
        ['POST', '/v1/config/promote', undefined, /promoting a canary is refused/],
        ['POST', '/v1/config/abort', undefined, /aborting a canary is refused/],
        ['POST', '/v1/tenants', { name: 'newco' }, /POST \/v1\/tenants is refused/],
        ['POST', '/v1/tenants/default/keys', { roles: ['submitter'] }, /POST \/v1\/tenants\/:tenant\/keys/],
      ];
      for (const [method, path, body, detail] of refused) {
        const r = await api(method, path, body);
        assert.equal(r.status, 409, `${method} ${path}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'read_only', `${method} ${path}`);
        assert.match(r.body.detail, /^the control plane is in read-only mode: /);
        assert.match(r.body.detail, detail);
      }
      // The refused POST created nothing (the tenants that exist are the ones published configs list).
      const t = await api('GET', '/v1/tenants');
      const names = (t.body.tenants as Json[]).map((x) => x.name);
      assert.ok(names.includes('default'));
      assert.ok(!names.includes('newco'), `no tenant newco: ${names.join(', ')}`);
    });

    it('in read-only mode job submission and reads keep working', async () => {
      const s = await api('POST', '/v1/jobs', { task: 'ctl.work', input: { ms: 10 } });
      assert.equal(s.status, 201, JSON.stringify(s.body));
      const done = await api('GET', `/v1/jobs/${s.body.id}/result?waitMs=10000`);
      assert.deepEqual([done.status, done.body.state, done.body.output], [200, 'succeeded', { slept: 10 }]);
      const v = await api('GET', '/v1/config/versions');
      assert.deepEqual([v.status, v.body.rollout.mode], [200, 'read_only']);
      assert.equal((await api('GET', '/v1/workers')).status, 200);
      const snap = await api('GET', '/v1/config');
      assert.deepEqual([snap.status, snap.body.version], [200, v.body.rollout.currentVersion]);
      const h = await api('GET', '/v1/health');
      assert.deepEqual(
        [h.body.sections.control.mode, h.body.sections.control.status],
        ['read_only', 'degraded'],
      );
    });

    it('switching back to normal allows mutations again', async () => {
      const m = await api('POST', '/v1/control/mode', { mode: 'normal' });
      assert.deepEqual([m.status, m.body.mode], [200, 'normal']);
      const t = await api('POST', '/v1/tenants', { name: 'newco' });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      const p = await api('POST', '/v1/config', { document: doc('after-ro') });
      assert.equal(p.status, 201, JSON.stringify(p.body));
      const n = p.body.version as number;
      await applied({ 'w-canary': n, 'w-stable': n }, `both workers to ACK v${n}`);
      const events: Json[] = [];
      for (let seq = 0; ; ) {
        const page = await ts.store.readEvents(seq, 500);
        if (page.length === 0) break;
        events.push(...page.filter((e) => e.type === 'control.mode_changed').map((e) => e.data));
        seq = page.at(-1)?.seq ?? seq;
      }
      assert.deepEqual(
        events.map((e) => [e.from, e.to]),
        [
          ['normal', 'read_only'],
          ['read_only', 'normal'],
        ],
      );
    });
  });
}
