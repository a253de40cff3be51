/**
 * Plane versions (DESIGN §2): a worker speaking an older protocol is refused by the control plane
 * with a clear error naming both versions, and a worker whose HTTP config source gets that refusal
 * surfaces it and applies nothing (so it claims nothing).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { CONTROL_PROTOCOL_VERSION } from '../../src/api/config-routes.js';
import { ensureControlIdentity, ensureInitialConfig, httpSource } from '../../src/cli/control-setup.js';
import { loadTasks } from '../../src/cli/load-tasks.js';
import {
  bootstrapStore,
  type ControlProcess,
  startControl,
  startWorker,
  type WorkerProcess,
} from '../../src/cli/runtime.js';
import { createApiKey } from '../../src/control/api-keys.js';
import { loadPublicKey, type Snapshot, verifySnapshot } from '../../src/control/snapshot.js';
import { ConfigAgent, type ConfigSource } from '../../src/execution/config-agent.js';
import { WORKER_PROTOCOL_VERSION } from '../../src/execution/worker.js';
import { BulkheadApiError } from '../../src/sdk/client.js';
import { backends, sleep, type TestStore, tempDir } from '../helpers/backends.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/tasks.js', import.meta.url));
const silent = pino({ level: 'silent' });
const realFetch = globalThis.fetch;

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

const sqlite = backends().find((b) => b.dialect === 'sqlite');
assert.ok(sqlite);

describe('protocol: an older-protocol worker against a newer control plane', () => {
  const tmp = tempDir('bulkhead-protocol-');
  let ts: TestStore;
  let control: ControlProcess;
  let workerKey = '';
  let adminKey = '';
  let trust: { publicKeyPem: string; deploymentId: string };
  const workers: WorkerProcess[] = [];
  const agents: ConfigAgent[] = [];

  before(async () => {
    ts = await sqlite.create();
    adminKey = (await bootstrapStore(ts.store)).adminKey ?? '';
    workerKey = (await createApiKey(ts.store.registry, { tenant: 'default', roles: ['worker'], name: 'w' }))
      .key;
    const { service, identity } = ensureControlIdentity(join(tmp.dir, 'keys'));
    const config = service(ts.store);
    await ensureInitialConfig(config, ts.store);
    trust = {
      publicKeyPem: readFileSync(identity.publicKeyFile, 'utf8'),
      deploymentId: identity.deploymentId,
    };
    control = await startControl({ store: ts.store, port: 0, host: '127.0.0.1', logger: silent, config });
    // An old worker build: every request it sends to the control plane says protocol 0.
    globalThis.fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      if (headers.has('x-bulkhead-protocol')) headers.set('x-bulkhead-protocol', '0');
      return realFetch(input, { ...init, headers });
    };
  });

  after(async () => {
    globalThis.fetch = realFetch;
    for (const w of workers) await w.stop(1000);
    for (const a of agents) await a.stop();
    await control?.close();
    await ts?.cleanup();
    tmp.remove();
  });

  const getConfig = (protocol?: string) =>
    realFetch(`${control.url}/v1/config`, {
      headers: {
        authorization: `Bearer ${workerKey}`,
        ...(protocol !== undefined && { 'x-bulkhead-protocol': protocol }),
      },
    });

  it('GET /v1/config with x-bulkhead-protocol: 0 is 409 protocol_mismatch naming both versions', async () => {
    assert.equal(CONTROL_PROTOCOL_VERSION, 1);
    const res = await getConfig('0');
    assert.equal(res.status, 409);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.code, 'protocol_mismatch');
    assert.equal(body.status, 409);
    assert.equal(
      body.detail,
      'this worker speaks protocol 0, this control plane speaks 1; upgrade the older of the two',
    );
    assert.equal(body.workerProtocol, '0');
    assert.equal(body.controlProtocol, 1);
  });

  it('a newer or garbled protocol is refused the same way; the current one gets a signed snapshot', async () => {
    for (const p of ['2', 'one']) {
      const res = await getConfig(p);
      const body = (await res.json()) as Record<string, unknown>;
      assert.deepEqual([res.status, body.code], [409, 'protocol_mismatch'], p);
      assert.match(String(body.detail), new RegExp(`speaks protocol ${p}, this control plane speaks 1;`));
    }
    const ok = await getConfig(String(WORKER_PROTOCOL_VERSION));
    assert.equal(ok.status, 200);
    const verdict = verifySnapshot((await ok.json()) as Snapshot, {
      publicKey: loadPublicKey(trust.publicKeyPem),
      deploymentId: trust.deploymentId,
      held: { version: 0, digest: null },
      now: Date.now(),
    });
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.reason);
    assert.equal(verdict.snapshot.version, 1);
  });

  it('httpSource surfaces the refusal as a BulkheadApiError', async () => {
    const source = httpSource(control.url, workerKey, () => 'w-old', []);
    await assert.rejects(source.fetch(0, 0, new AbortController().signal), (err: unknown) => {
      assert.ok(err instanceof BulkheadApiError);
      assert.equal(err.status, 409);
      assert.equal(err.code, 'protocol_mismatch');
      assert.match(
        err.message,
        /this worker speaks protocol 0, this control plane speaks 1.*\[protocol_mismatch\]$/,
      );
      return true;
    });
  });

  it('a ConfigAgent on that source applies nothing, reports nothing and says why', async () => {
    const inner = httpSource(control.url, workerKey, () => 'w-old', []);
    const reports: unknown[] = [];
    let fetches = 0;
    const source: ConfigSource = {
      fetch: (...a) => {
        fetches++;
        return inner.fetch(...a);
      },
      report: async (r) => {
        reports.push(r);
      },
    };
    const agent = new ConfigAgent({ source, ...trust, logger: silent });
    agents.push(agent);
    await agent.start();
    await until(() => agent.health().lastError !== undefined, 'the agent to record the error');
    const g = agent.gate();
    assert.deepEqual([g.claim, g.reason, g.version, g.fresh], [false, 'no_config', undefined, false]);
    const h = agent.health();
    assert.equal(h.state, 'no_config');
    assert.equal(h.version, null);
    assert.match(
      String(h.lastError),
      /speaks protocol 0, this control plane speaks 1.*\[protocol_mismatch\]/,
    );
    await until(() => fetches >= 3, 'the agent to keep retrying (with backoff)');
    assert.deepEqual(reports, [], 'nothing was applied, so nothing is ACKed or NACKed');
  });

  it('a worker on that source claims nothing and its health says why', async () => {
    const w = await startWorker({
      store: ts.store,
      tasks: await loadTasks(FIXTURES),
      concurrency: 2,
      logger: silent,
      tuning: { workerId: 'w-old', pollIntervalMs: 50 },
      config: { ...trust, source: (id) => httpSource(control.url, workerKey, id, []) },
    });
    workers.push(w);
    const { job } = await ts.store.submit({ tenant: 'default', task: 'ctl.work', input: { ms: 1 } });
    await until(() => w.worker.health().config?.lastError !== undefined, 'the worker to record the error');
    await sleep(500);
    const h = w.worker.health();
    assert.equal(h.config?.gate, 'no_config');
    assert.match(String(h.config?.lastError), /\[protocol_mismatch\]/);
    const after = await ts.store.get(job.id);
    assert.deepEqual([after?.state, after?.attempt], ['queued', 0], 'the job is not claimed');
    const fleet = await ts.store.listWorkers();
    assert.deepEqual(
      fleet.find((x) => x.id === 'w-old')?.config,
      {},
      'the fleet view shows no applied version for it',
    );
  });

  it('the fleet view does not show a worker that applied nothing as ACKing', async () => {
    const res = await realFetch(`${control.url}/v1/workers`, {
      headers: { authorization: `Bearer ${adminKey}` },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { workers: { id: string; config: Record<string, unknown> }[] };
    const old = body.workers.find((w) => w.id === 'w-old');
    assert.ok(old, 'w-old is in the fleet');
    assert.equal(old.config.appliedVersion, undefined);
    assert.notEqual(old.config.status, 'ack', `w-old: ${JSON.stringify(old.config)}`);
  });
});
