/**
 * The request of each row of the RBAC matrix (rbac-table.ts), keyed by `route · case`: its URL and
 * body, and the resource it acts on, made fresh for each call so that no cell depends on another.
 * The method and the key are the runner's: the row's method (and HEAD for a GET), the cell's key.
 */
import type { Role } from '../../src/ledger/registry.js';
import { ANY } from './api-fixture.js';
import { type MatrixFixture, type MatrixTenant, OTHER } from './rbac-fixture.js';

export interface Caller {
  tenant: MatrixTenant;
  role: Role;
  key: string;
  id: string;
}

export interface CellContext {
  fx: MatrixFixture;
  /** null: the request carries no key. */
  caller: Caller | null;
  /** The caller's tenant (the ordinary tenant for a request without a key). */
  own: MatrixTenant;
}

export interface Prepared {
  url: string;
  body?: unknown;
  /** Undo what the preparation left that would change later cells (a canary in flight). */
  after?: () => Promise<void>;
}

type Builder = (c: CellContext) => Promise<Prepared>;

let serial = 0;
const since = () => new Date(Date.now() - 3_600_000).toISOString();
const report = { version: 1, status: 'nack', reason: 'forged or not: the matrix decides' };
const hold = { reason: 'matrix' };

/** A report for a worker registered with `keyId` (null: registered without a key). */
const reportFor = async (c: CellContext, keyId: string | null): Promise<Prepared> => ({
  url: `/v1/workers/${await c.fx.worker(keyId)}/config-report`,
  body: report,
});

const jobOf =
  (tenant: (c: CellContext) => MatrixTenant, suffix = '') =>
  async (c: CellContext) => ({
    url: `/v1/jobs/${await c.fx.job(tenant(c))}${suffix}`,
  });
const own = (c: CellContext) => c.own;
const other = (): MatrixTenant => OTHER;

export const REQUESTS: Record<string, Builder> = {
  'GET /healthz · liveness': async () => ({ url: '/healthz' }),
  'GET /v1/openapi.json · the API description': async () => ({ url: '/v1/openapi.json' }),
  'GET /v1/health · health of each plane': async () => ({ url: '/v1/health' }),

  'POST /v1/jobs · submit': async () => ({ url: '/v1/jobs', body: { task: ANY.name, input: {} } }),
  'POST /v1/jobs/batch · submit a batch': async () => ({
    url: '/v1/jobs/batch',
    body: { jobs: [{ task: ANY.name, input: {} }] },
  }),
  'GET /v1/jobs · list (own jobs)': async () => ({ url: '/v1/jobs' }),
  'GET /v1/jobs/:id · own job': jobOf(own),
  "GET /v1/jobs/:id · another tenant's job": jobOf(other),
  'GET /v1/jobs/:id/result · own job': jobOf(own, '/result'),
  "GET /v1/jobs/:id/result · another tenant's job": jobOf(other, '/result'),
  'POST /v1/jobs/:id/cancel · own job': jobOf(own, '/cancel'),
  "POST /v1/jobs/:id/cancel · another tenant's job": jobOf(other, '/cancel'),
  'POST /v1/jobs/:id/retry · own job': async (c) => ({
    url: `/v1/jobs/${await c.fx.cancelledJob(c.own)}/retry`,
  }),
  "POST /v1/jobs/:id/retry · another tenant's job": async (c) => ({
    url: `/v1/jobs/${await c.fx.cancelledJob(OTHER)}/retry`,
  }),
  'POST /v1/jobs/:id/approve · own job awaiting approval': async (c) => ({
    url: `/v1/jobs/${await c.fx.awaitingJob(c.own)}/approve`,
    body: { comment: 'matrix' },
  }),
  "POST /v1/jobs/:id/approve · another tenant's job": async (c) => ({
    url: `/v1/jobs/${await c.fx.awaitingJob(OTHER)}/approve`,
    body: {},
  }),
  'POST /v1/jobs/:id/reject · own job awaiting approval': async (c) => ({
    url: `/v1/jobs/${await c.fx.awaitingJob(c.own)}/reject`,
    body: {},
  }),
  "POST /v1/jobs/:id/reject · another tenant's job": async (c) => ({
    url: `/v1/jobs/${await c.fx.awaitingJob(OTHER)}/reject`,
    body: {},
  }),
  'POST /v1/jobs/:id/readmit · own job blocked for invalid authority': async (c) => ({
    url: `/v1/jobs/${await c.fx.refusedJob(c.own)}/readmit`,
  }),
  "POST /v1/jobs/:id/readmit · another tenant's job": async (c) => ({
    url: `/v1/jobs/${await c.fx.refusedJob(OTHER)}/readmit`,
  }),

  'POST /v1/tenants · create a tenant': async () => ({
    url: '/v1/tenants',
    body: { name: `made-by-matrix-${++serial}` },
  }),
  'GET /v1/tenants · list (own; the system tenant: all)': async () => ({ url: '/v1/tenants' }),
  'POST /v1/tenants/:tenant/keys · own tenant': async (c) => ({
    url: `/v1/tenants/${c.own}/keys`,
    body: { roles: ['submitter'] },
  }),
  'POST /v1/tenants/:tenant/keys · another tenant': async () => ({
    url: `/v1/tenants/${OTHER}/keys`,
    body: { roles: ['submitter'] },
  }),
  'GET /v1/tenants/:tenant/keys · own tenant': async (c) => ({ url: `/v1/tenants/${c.own}/keys` }),
  'GET /v1/tenants/:tenant/keys · another tenant': async () => ({ url: `/v1/tenants/${OTHER}/keys` }),
  "POST /v1/keys/:id/revoke · own tenant's key": async (c) => ({
    url: `/v1/keys/${await c.fx.spareKey(c.own)}/revoke`,
  }),
  "POST /v1/keys/:id/revoke · another tenant's key": async (c) => ({
    url: `/v1/keys/${await c.fx.spareKey(OTHER)}/revoke`,
  }),
  'POST /v1/events/prune · prune the outbox': async () => ({
    url: '/v1/events/prune',
    body: { throughSeq: 1 },
  }),

  'GET /v1/evidence · own trail': async (c) => ({
    url: `/v1/evidence?correlationId=${(await c.fx.entry(c.own)).correlationId}`,
  }),
  "GET /v1/evidence · another tenant's trail": async (c) => ({
    url: `/v1/evidence?correlationId=${(await c.fx.entry(OTHER)).correlationId}`,
  }),
  'GET /v1/evidence/verify · verify the whole log': async () => ({ url: '/v1/evidence/verify' }),
  "GET /v1/evidence/export · export (others' entries as stubs)": async () => ({
    url: '/v1/evidence/export',
  }),
  'POST /v1/evidence/redact · own entries': async (c) => ({
    url: '/v1/evidence/redact',
    body: { correlationId: (await c.fx.entry(c.own)).correlationId, field: 'note', reason: 'matrix' },
  }),
  "POST /v1/evidence/redact · another tenant's entries": async (c) => ({
    url: '/v1/evidence/redact',
    body: { correlationId: (await c.fx.entry(OTHER)).correlationId, field: 'note', reason: 'matrix' },
  }),
  'POST /v1/evidence/corrections · own entry': async (c) => ({
    url: '/v1/evidence/corrections',
    body: { seq: (await c.fx.entry(c.own)).seq, note: 'matrix' },
  }),
  "POST /v1/evidence/corrections · another tenant's entry": async (c) => ({
    url: '/v1/evidence/corrections',
    body: { seq: (await c.fx.entry(OTHER)).seq, note: 'matrix' },
  }),
  'GET /v1/evidence/holds · list (own)': async () => ({ url: '/v1/evidence/holds' }),
  'POST /v1/evidence/holds · own correlation id': async (c) => ({
    url: '/v1/evidence/holds',
    body: { correlationId: (await c.fx.entry(c.own)).correlationId, ...hold },
  }),
  'POST /v1/evidence/holds · another tenant': async () => ({
    url: '/v1/evidence/holds',
    body: { tenant: OTHER, ...hold },
  }),
  'POST /v1/evidence/holds/:id/release · own hold': async (c) => ({
    url: `/v1/evidence/holds/${await c.fx.hold(c.own)}/release`,
    body: hold,
  }),
  "POST /v1/evidence/holds/:id/release · another tenant's hold": async (c) => ({
    url: `/v1/evidence/holds/${await c.fx.hold(OTHER)}/release`,
    body: hold,
  }),
  'POST /v1/evidence/retention · apply retention now': async () => ({
    url: '/v1/evidence/retention',
    body: { days: 36_500 },
  }),

  'GET /v1/config · the signed snapshot (whole document)': async () => ({ url: '/v1/config' }),
  'POST /v1/config · publish': async () => ({ url: '/v1/config', body: { document: {} } }),
  'POST /v1/config/validate · validate a document (reads nothing)': async () => ({
    url: '/v1/config/validate',
    body: { document: {} },
  }),
  'GET /v1/config/versions · versions and rollout': async () => ({ url: '/v1/config/versions' }),
  "GET /v1/config/versions/:version · one version's document": async () => ({
    url: '/v1/config/versions/1',
  }),
  'POST /v1/config/rollback · roll back': async () => ({
    url: '/v1/config/rollback',
    body: { version: 1 },
  }),
  'POST /v1/config/promote · promote the canary': async (c) => ({
    url: '/v1/config/promote',
    after: await c.fx.canary(),
  }),
  'POST /v1/config/abort · abort the canary': async (c) => ({
    url: '/v1/config/abort',
    after: await c.fx.canary(),
  }),
  "POST /v1/control/mode · set the control plane's mode": async () => ({
    url: '/v1/control/mode',
    body: { mode: 'normal' },
  }),

  'POST /v1/workers/:id/config-report · with the key the worker registered with': (c) =>
    reportFor(c, c.caller?.id ?? c.fx.otherWorkerKey.id),
  "POST /v1/workers/:id/config-report · with another worker's key": (c) =>
    reportFor(c, c.fx.otherWorkerKey.id),
  'POST /v1/workers/:id/config-report · for a worker that recorded no key': (c) => reportFor(c, null),
  'POST /v1/workers/:id/config-report · for an unregistered worker': async () => ({
    url: `/v1/workers/never-registered-${++serial}/config-report`,
    body: report,
  }),
  'GET /v1/recovery · recovery report': async () => ({ url: `/v1/recovery?since=${since()}` }),
  'GET /v1/workers · the fleet': async () => ({ url: '/v1/workers' }),
};
