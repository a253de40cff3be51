/**
 * Fixture of the RBAC and tenant matrix: the whole app — jobs, tenants and keys, config and fleet
 * (a control identity and config v1), evidence (an evidence store of the same backend) — over one
 * ledger backend, with three tenants: `default` (the system tenant), `acme` (an ordinary tenant:
 * the "tenant" column of the matrix) and `globex` (the other tenant whose resources a caller must
 * not reach). Every tenant has a key per role; the system tenant also has a second worker key (the
 * key of another worker). Plus the resources a request of the matrix acts on, made fresh per call.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server.js';
import { ensureControlIdentity, ensureInitialConfig } from '../../src/cli/control-setup.js';
import { createApiKey } from '../../src/control/api-keys.js';
import type { ConfigService } from '../../src/control/config/service.js';
import { parseContract, registryRow, type TaskContract } from '../../src/control/contract.js';
import { EvidenceService } from '../../src/evidence/service.js';
import { ROLES, type Role, SYSTEM_TENANT } from '../../src/ledger/registry.js';
import type { Store } from '../../src/ledger/store.js';
import type { WorkerInfo } from '../../src/ledger/types.js';
import { type Backend, type TestStore, tempDir } from '../helpers/backends.js';
import { evidenceBackends, type TestEvidenceStore } from '../helpers/evidence-backends.js';
import { ANY, call } from './api-fixture.js';

/** The ordinary tenant whose keys fill the matrix's tenant column. */
export const TENANT = 'acme';
/** Another ordinary tenant: the owner of "another tenant's" resources. */
export const OTHER = 'globex';
export const MATRIX_TENANTS = [SYSTEM_TENANT, TENANT, OTHER] as const;
export type MatrixTenant = (typeof MATRIX_TENANTS)[number];

export interface KeyPair {
  key: string;
  id: string;
}

export interface MatrixFixture {
  app: FastifyInstance;
  store: Store;
  config: ConfigService;
  evidence: EvidenceService;
  keys: Record<MatrixTenant, Record<Role, KeyPair>>;
  /** A second worker key of the system tenant: the key of some other worker. */
  otherWorkerKey: KeyPair;
  /** A queued job of `tenant`, submitted through the API. */
  job(tenant: MatrixTenant): Promise<string>;
  /** A cancelled job of `tenant` (retry accepts it). */
  cancelledJob(tenant: MatrixTenant): Promise<string>;
  /** A job of `tenant` awaiting approval, submitted with its submitter key. */
  awaitingJob(tenant: MatrixTenant): Promise<string>;
  /** A job of `tenant` a worker refused for invalid authority (readmit accepts it). */
  refusedJob(tenant: MatrixTenant): Promise<string>;
  /** A fresh API key of `tenant` (to revoke). */
  spareKey(tenant: MatrixTenant): Promise<string>;
  /** A fresh evidence entry of `tenant`: its correlation id and seq (with a redactable `note`). */
  entry(tenant: MatrixTenant): Promise<{ correlationId: string; seq: number }>;
  /** A legal hold on a fresh correlation id, placed with `tenant`'s admin key. */
  hold(tenant: MatrixTenant): Promise<string>;
  /** A registered worker whose row records `keyId` as its control key (none: records no key). */
  worker(keyId: string | null): Promise<string>;
  /** Publish a canary (unless one is in flight); returns a cleanup that aborts what is left of it. */
  canary(): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const APPROVED = 'test.approved';
const REFUSED = 'test.refused';

/** A task type of the matrix with its own queue and the given contract fields. */
const gatedType = (name: string, fields: Partial<TaskContract>) =>
  registryRow({
    name,
    version: 1,
    inputSchema: {},
    contract: parseContract({ queue: name, ...fields }, name),
    compensable: false,
    source: 'config',
  });

let serial = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++serial}`;

export async function createMatrixFixture(backend: Backend): Promise<MatrixFixture> {
  const tmp = tempDir('bulkhead-rbac-');
  const ledger: TestStore = await backend.create();
  const { store } = ledger;
  const evBackend = evidenceBackends.find((b) => b.dialect === backend.dialect);
  if (!evBackend) throw new Error(`no evidence backend for ${backend.dialect}`);
  const ev: TestEvidenceStore = await evBackend.create();
  const { service } = ensureControlIdentity(join(tmp.dir, 'keys'));
  const config = service(store);
  await ensureInitialConfig(config, store);
  const evidence = new EvidenceService({ store: ev.store, ledger: store, signer: ev.signer });

  const keys = {} as Record<MatrixTenant, Record<Role, KeyPair>>;
  for (const tenant of MATRIX_TENANTS) {
    await store.registry.createTenant(tenant);
    keys[tenant] = {} as Record<Role, KeyPair>;
    for (const role of ROLES) {
      const made = await createApiKey(store.registry, { tenant, roles: [role], name: `${tenant}-${role}` });
      keys[tenant][role] = { key: made.key, id: made.record.id };
    }
  }
  const spare = await createApiKey(store.registry, { tenant: SYSTEM_TENANT, roles: ['worker'] });
  await store.registry.putTaskType(ANY);
  await store.registry.putTaskType(gatedType(APPROVED, { approval: true }));
  await store.registry.putTaskType(gatedType(REFUSED, {}));
  const app = await buildApi({ store, config, evidence });

  const job = async (tenant: MatrixTenant, task = ANY.name) => {
    const res = await call(app, {
      url: '/v1/jobs',
      key: keys[tenant].submitter.key,
      body: { task, input: {} },
    });
    if (res.statusCode !== 201) throw new Error(`fixture submit: ${res.statusCode} ${res.body}`);
    return (res.json() as { id: string }).id;
  };

  return {
    app,
    store,
    config,
    evidence,
    keys,
    otherWorkerKey: { key: spare.key, id: spare.record.id },
    job,
    async cancelledJob(tenant) {
      const id = await job(tenant);
      await store.cancel(id, { tenant });
      return id;
    },
    awaitingJob: (tenant) => job(tenant, APPROVED),
    async refusedJob(tenant) {
      const id = await job(tenant, REFUSED);
      // As a worker whose check of the record failed would: every claimed job of the queue is refused.
      const claimed = await store.claim({ workerId: 'matrix-refuser', queues: [REFUSED], limit: 100 });
      await store.refuseAuthority(claimed.map((j) => ({ jobId: j.id, fence: j.fence, message: 'matrix' })));
      return id;
    },
    async spareKey(tenant) {
      return (await createApiKey(store.registry, { tenant, roles: ['submitter'] })).record.id;
    },
    async entry(tenant) {
      const correlationId = unique('corr');
      const { entries } = await ev.store.append([
        {
          occurredAt: Date.now(),
          tenant,
          correlationId,
          kind: 'state',
          subject: `job:${correlationId}`,
          sourceSeq: null,
          fields: { event: 'job.queued', note: `a note of ${tenant}` },
        },
      ]);
      return { correlationId, seq: entries[0]?.seq ?? 0 };
    },
    async hold(tenant) {
      const caller = { tenant, by: keys[tenant].admin.id, system: tenant === SYSTEM_TENANT };
      return (await evidence.placeHold(caller, { correlationId: unique('held'), reason: 'matrix' })).id;
    },
    async worker(keyId) {
      const info: WorkerInfo = {
        id: unique('w'),
        host: 'matrix-host',
        pid: 1,
        version: 'test',
        labels: [],
        queues: ['default'],
        clearance: 'internal',
        concurrency: 1,
        runtimes: ['inline'],
        meta: { protocol: 1, ...(keyId !== null && { keyId }) },
      };
      await store.registerWorker(info);
      return info.id;
    },
    async canary() {
      if (!(await store.configs.rollout()).canary)
        await config.publish({ document: {}, canaryLabel: 'matrix', by: 'matrix' });
      return async () => {
        if ((await store.configs.rollout()).canary) await config.abort('matrix');
      };
    },
    async close() {
      await app.close();
      await ev.cleanup();
      await ledger.cleanup();
      tmp.remove();
    },
  };
}
