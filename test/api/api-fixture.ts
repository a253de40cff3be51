/**
 * Shared fixture of the HTTP API tests: a store on one backend with tenants `default` and `other`, a
 * key per role in each, two task types (`test.echo`, strict input, and `test.any`, any input), and
 * the app from `buildApi`, driven in process with `app.inject`. Also the problem+json assertion and
 * helpers to drive a job to a terminal state through the store, as a worker would.
 *
 * With `planes`, the app also serves the config and evidence routes: a signing key in a temporary
 * directory, config version 1 published, and an evidence store in a SQLite file beside it (no
 * shipper: nothing is recorded unless a test appends it).
 */
import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Logger } from 'pino';
import { type ApiOptions, buildApi } from '../../src/api/server.js';
import { ensureControlIdentity, ensureInitialConfig } from '../../src/cli/control-setup.js';
import { checkpointSigner } from '../../src/cli/evidence-setup.js';
import { createApiKey } from '../../src/control/api-keys.js';
import { openEvidenceStore } from '../../src/evidence/open.js';
import { EvidenceService } from '../../src/evidence/service.js';
import { ROLES, type Role, type TaskTypeInput } from '../../src/ledger/registry.js';
import type { Store } from '../../src/ledger/store.js';
import type { Job, ListFilter } from '../../src/ledger/types.js';
import { type Backend, type TestStore, tempDir } from '../helpers/backends.js';

export const TENANTS = ['default', 'other'] as const;
export type TenantName = (typeof TENANTS)[number];

const contract = (name: string, inputSchema: Record<string, unknown>): TaskTypeInput => ({
  name,
  version: 1,
  inputSchema,
  queue: 'default',
  runtime: 'inline',
  timeoutMs: 1000,
  leaseMs: 1000,
  maxAttempts: 2,
  backoff: { baseMs: 10, maxMs: 20 },
  classification: 'internal',
  source: 'test',
});

export const ECHO = contract('test.echo', {
  type: 'object',
  properties: { n: { type: 'integer' } },
  required: ['n'],
  additionalProperties: false,
});
export const ANY = contract('test.any', {});

export interface ApiFixture {
  app: FastifyInstance;
  store: Store;
  /** `keys[tenant][role]`: a key with only that role. */
  keys: Record<TenantName, Record<Role, string>>;
  /** Key ids, for revocation. */
  keyIds: Record<TenantName, Record<Role, string>>;
  close(): Promise<void>;
}

export async function createApiFixture(
  backend: Backend,
  options: { logger?: Logger; planes?: boolean } = {},
): Promise<ApiFixture> {
  const t: TestStore = await backend.create();
  const { store } = t;
  const cleanups: (() => Promise<void> | void)[] = [() => t.cleanup()];
  const keys = {} as Record<TenantName, Record<Role, string>>;
  const keyIds = {} as Record<TenantName, Record<Role, string>>;
  for (const tenant of TENANTS) {
    await store.registry.createTenant(tenant);
    keys[tenant] = {} as Record<Role, string>;
    keyIds[tenant] = {} as Record<Role, string>;
    for (const role of ROLES) {
      const created = await createApiKey(store.registry, {
        tenant,
        roles: [role],
        name: `${tenant}-${role}`,
      });
      keys[tenant][role] = created.key;
      keyIds[tenant][role] = created.record.id;
    }
  }
  await store.registry.putTaskType(ECHO);
  await store.registry.putTaskType(ANY);
  const api: ApiOptions = { store, ...(options.logger && { logger: options.logger }) };
  if (options.planes) {
    const dir = tempDir('bulkhead-api-planes-');
    cleanups.unshift(() => dir.remove());
    const config = ensureControlIdentity(dir.dir).service(store);
    await ensureInitialConfig(config, store);
    const signer = checkpointSigner(config.key);
    const evidence = await openEvidenceStore(`${dir.dir}/evidence.db`, { signer });
    cleanups.unshift(() => evidence.close());
    api.config = config;
    api.evidence = new EvidenceService({
      store: evidence,
      ledger: store,
      trustedKeys: [config.key.publicKey],
      signer,
    });
  }
  const app = await buildApi(api);
  cleanups.unshift(() => app.close());
  return {
    app,
    store,
    keys,
    keyIds,
    async close() {
      for (const cleanup of cleanups) await cleanup();
    },
  };
}

export interface Call {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD' | 'PATCH' | 'OPTIONS';
  url: string;
  /** An API key (sent as Bearer), or null for none. */
  key?: string | null;
  /** JSON body (serialised), unless `raw` is given. */
  body?: unknown;
  raw?: string | Buffer;
  headers?: Record<string, string>;
}

/** One request through `app.inject`. */
export async function call(app: FastifyInstance, c: Call): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...c.headers };
  if (c.key) headers.authorization = `Bearer ${c.key}`;
  let payload: string | Buffer | undefined = c.raw;
  if (payload === undefined && c.body !== undefined) {
    payload = JSON.stringify(c.body);
    headers['content-type'] ??= 'application/json';
  }
  return app.inject({
    method: c.method ?? (payload === undefined ? 'GET' : 'POST'),
    url: c.url,
    headers,
    ...(payload !== undefined && { payload }),
  });
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  [member: string]: unknown;
}

/** The response is RFC 9457 problem+json with this status and code; returns the problem. */
export function assertProblem(res: LightMyRequestResponse, status: number, code: string): Problem {
  const what = `${res.statusCode} ${res.body.slice(0, 300)}`;
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${what}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/, `content-type: ${what}`);
  const p = res.json() as Problem;
  assert.equal(p.code, code, `problem code: ${what}`);
  assert.equal(p.status, status);
  assert.equal(p.type, `urn:bulkhead:problem:${code}`);
  assert.equal(typeof p.title, 'string');
  assert.ok(p.title.length > 0, 'problem title is not empty');
  assert.equal(typeof p.detail, 'string');
  assert.ok(p.detail.length > 0, 'problem detail is not empty');
  return p;
}

/** The Job resource as the API returns it. */
export interface JobBody {
  id: string;
  task: string;
  taskVersion: number;
  tenant: string;
  queue: string;
  state: string;
  reason?: string;
  input: unknown;
  output?: unknown;
  error?: { code: string; message: string };
  attempt: number;
  maxAttempts: number;
  idempotencyKey?: string;
  correlationId: string;
  parentId?: string;
  priority: number;
  classification: string;
  cancelRequested: boolean;
  runAt: string;
  deadline?: string;
  createdAt: string;
  updatedAt: string;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The body is a well-formed Job resource; returns it. */
export function assertJob(res: LightMyRequestResponse, status: number): JobBody {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode} ${res.body.slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const j = res.json() as JobBody;
  assert.match(j.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  for (const f of ['task', 'tenant', 'queue', 'state', 'correlationId', 'classification'] as const) {
    assert.equal(typeof j[f], 'string', `job.${f}`);
  }
  for (const f of ['taskVersion', 'attempt', 'maxAttempts', 'priority'] as const) {
    assert.ok(Number.isInteger(j[f]), `job.${f} is an integer`);
  }
  assert.equal(typeof j.cancelRequested, 'boolean');
  assert.ok('input' in j, 'job.input is present');
  for (const f of ['runAt', 'createdAt', 'updatedAt'] as const) assert.match(j[f], ISO, `job.${f}`);
  if (j.deadline !== undefined) assert.match(j.deadline, ISO);
  return j;
}

/** How many jobs the store holds (optionally matching a filter), following cursors. */
export async function countJobs(store: Store, filter: ListFilter = {}): Promise<number> {
  let n = 0;
  let cursor: string | undefined;
  for (;;) {
    const page = await store.list(filter, cursor === undefined ? { limit: 500 } : { limit: 500, cursor });
    n += page.jobs.length;
    if (page.nextCursor === undefined || page.jobs.length === 0) return n;
    cursor = page.nextCursor;
  }
}

let workers = 0;

/**
 * Claim `jobId` as a worker would and start it (other runnable jobs claimed on the way are released,
 * uncounted). Returns its lease.
 */
export async function startJob(store: Store, jobId: string): Promise<{ jobId: string; fence: number }> {
  const job = await store.get(jobId);
  assert.ok(job, `job ${jobId} exists`);
  const workerId = `api-test-${process.pid}-${++workers}`;
  const claimed = await store.claim({ workerId, queues: [job.queue], tasks: [job.task], limit: 1000 });
  const mine = claimed.find((j: Job) => j.id === jobId);
  const others = claimed.filter((j: Job) => j.id !== jobId).map((j) => ({ jobId: j.id, fence: j.fence }));
  if (others.length > 0) await store.release(others);
  assert.ok(mine, `job ${jobId} was claimable`);
  const lease = { jobId, fence: mine.fence };
  const [started] = await store.start([lease]);
  assert.ok(started?.ok, `job ${jobId} started`);
  return lease;
}

/** Drive a queued job to `succeeded` with `output`. */
export async function succeedJob(store: Store, jobId: string, output: unknown): Promise<void> {
  const lease = await startJob(store, jobId);
  const [done] = await store.complete([{ ...lease, output }]);
  assert.ok(done?.ok && done.value.state === 'succeeded', `job ${jobId} succeeded`);
}

/** Drive a queued job to `dead` (a non-retryable failure). */
export async function killJob(store: Store, jobId: string): Promise<void> {
  const lease = await startJob(store, jobId);
  const [done] = await store.fail([
    { ...lease, error: { code: 'boom', message: 'it broke' }, retryable: false },
  ]);
  assert.ok(done?.ok && done.value.state === 'dead', `job ${jobId} is dead`);
}
