/**
 * `GET /healthz` (liveness, no auth: is the process serving?) and `GET /v1/health` (one section per
 * plane; 503 when any section is down). The sections' details — config version and signer, the
 * fleet's NACKs, worker ids, store errors — are the deployment's: a key of the system tenant gets
 * them, any other tenant's key only each section's status.
 */
import type { FastifyInstance } from 'fastify';
import { SYSTEM_TENANT } from '../ledger/registry.js';
import type { Store } from '../ledger/store.js';
import { principalOf, ROLE_SETS } from './auth.js';
import { problemResponses } from './problem.js';

export interface HealthSection {
  status: 'ok' | 'degraded' | 'down';
  [detail: string]: unknown;
}

export function registerHealthRoutes(
  app: FastifyInstance,
  deps: { store: Store; sections: Record<string, () => HealthSection | Promise<HealthSection>> },
): void {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is serving requests',
        security: [],
        response: {
          200: { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] },
        },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/v1/health',
    {
      config: { roles: ROLE_SETS.any },
      schema: {
        tags: ['health'],
        summary: 'Health of each plane; 503 when any section is down',
        response: {
          200: { $ref: 'Health#' },
          503: { $ref: 'Health#' },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const sections: Record<string, HealthSection> = {};
      const started = performance.now();
      try {
        await deps.store.get('00000000-0000-0000-0000-000000000000');
        sections.ledger = {
          status: 'ok',
          dialect: deps.store.dialect,
          latencyMs: Math.round((performance.now() - started) * 100) / 100,
        };
      } catch (err) {
        sections.ledger = { status: 'down', dialect: deps.store.dialect, error: (err as Error).message };
      }
      if (!deps.sections.execution && sections.ledger.status === 'ok') {
        // A control process runs no worker: report the fleet as the ledger sees it.
        const workers = await deps.store.listWorkers();
        const count = (state: string) => workers.filter((w) => w.state === state).length;
        sections.execution = {
          status: count('active') > 0 ? 'ok' : 'degraded',
          ...(count('active') === 0 && { reason: 'no active worker' }),
          workers: {
            active: count('active'),
            draining: count('draining'),
            lost: count('lost'),
            stopped: count('stopped'),
          },
        };
      }
      for (const [name, fn] of Object.entries(deps.sections)) {
        try {
          sections[name] = await fn();
        } catch (err) {
          sections[name] = { status: 'down', error: (err as Error).message };
        }
      }
      const states = Object.values(sections).map((s) => s.status);
      const status = states.includes('down') ? 'down' : states.includes('degraded') ? 'degraded' : 'ok';
      const system = principalOf(request).tenant === SYSTEM_TENANT;
      const shown = system
        ? sections
        : Object.fromEntries(Object.entries(sections).map(([name, s]) => [name, { status: s.status }]));
      return reply.code(status === 'down' ? 503 : 200).send({ status, sections: shown });
    },
  );
}

export const healthSchema = {
  $id: 'Health',
  type: 'object',
  required: ['status', 'sections'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded', 'down'] },
    sections: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        required: ['status'],
        properties: { status: { type: 'string', enum: ['ok', 'degraded', 'down'] } },
        additionalProperties: true,
      },
    },
  },
} as const;
