/**
 * The fleet's routes: a worker's config report (ACK/NACK), the fleet view, and the recovery report.
 * A report is accepted only with the reporting worker's own key (control/config/reports.ts); the
 * fleet is system-scope; the recovery report serves both: the whole deployment to a key of the
 * system tenant, its own jobs (and no config history) to any other tenant's key.
 */
import type { FastifyInstance } from 'fastify';
import { fleetStatus } from '../control/config/fleet.js';
import type { ConfigService } from '../control/config/service.js';
import { recoveryReport } from '../control/recovery.js';
import { SYSTEM_TENANT } from '../ledger/registry.js';
import type { Store } from '../ledger/store.js';
import { principalOf, ROLE_SETS } from './auth.js';
import { rolloutSchema } from './config-routes.js';
import { problemResponses as problems } from './problem.js';
import { iso, NAME_PATTERN } from './resources.js';

export function registerFleetRoutes(
  app: FastifyInstance,
  deps: { store: Store; config: ConfigService },
): void {
  const { store, config } = deps;

  app.post<{ Params: { id: string }; Body: { version: number; status: 'ack' | 'nack'; reason?: string } }>(
    '/v1/workers/:id/config-report',
    {
      // Any key is heard, so that a refused report is recorded, not only answered 403.
      config: { roles: ROLE_SETS.any },
      schema: {
        tags: ['workers'],
        summary:
          'A worker reports the config version it applied (ack) or refused (nack, with the reason); only with the key it registered with',
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', pattern: NAME_PATTERN, maxLength: 200 } },
        },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['version', 'status'],
          properties: {
            version: { type: 'integer', minimum: 0 },
            status: { type: 'string', enum: ['ack', 'nack'] },
            reason: { type: 'string', maxLength: 2000 },
          },
        },
        response: { 204: { type: 'null' }, ...problems },
      },
    },
    async (request, reply) => {
      await config.reportAs(principalOf(request), {
        workerId: request.params.id,
        version: request.body.version,
        status: request.body.status,
        ...(request.body.reason !== undefined && { reason: request.body.reason }),
      });
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: { since: string } }>(
    '/v1/recovery',
    {
      config: { roles: ROLE_SETS.inspect },
      schema: {
        tags: ['config'],
        summary:
          "After an outage: what was accepted, ran on cached authority, was blocked, reaped, and how jobs ended (a tenant's key: its own jobs only, no config changes)",
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['since'],
          properties: { since: { type: 'string', format: 'date-time' } },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...problems },
      },
    },
    async (request) => {
      const p = principalOf(request);
      const since = Date.parse(request.query.since);
      return recoveryReport(store, since, p.tenant === SYSTEM_TENANT ? {} : { tenant: p.tenant });
    },
  );

  app.get(
    '/v1/workers',
    {
      config: { roles: ROLE_SETS.inspect, scope: 'system' },
      schema: {
        tags: ['workers'],
        summary: 'Every worker: state, labels, applied config version, ACK/NACK and config age',
        response: {
          200: {
            type: 'object',
            required: ['workers', 'rollout'],
            properties: {
              workers: { type: 'array', items: { type: 'object', additionalProperties: true } },
              rollout: rolloutSchema,
            },
          },
          ...problems,
        },
      },
    },
    async () => {
      const now = Date.now();
      const workers = await store.listWorkers();
      const rollout = await store.configs.rollout();
      return {
        workers: workers.map((w) => ({
          id: w.id,
          state: w.state,
          host: w.host,
          pid: w.pid,
          version: w.version,
          labels: w.labels,
          queues: w.queues,
          clearance: w.clearance,
          concurrency: w.concurrency,
          lastSeenAt: iso(w.lastSeenAt),
          // Whether it verifies authority records, and the task types it refuses (a contract it cannot keep).
          authority: w.meta?.authority ?? 'unknown',
          refused: w.meta?.refused ?? {},
          config: {
            ...w.config,
            ...(w.config.reportedAt !== undefined && { ageMs: now - w.config.reportedAt }),
            status: fleetStatus(w, rollout),
          },
        })),
        rollout,
      };
    },
  );
}
