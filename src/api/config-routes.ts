/**
 * Control-plane config routes: the signed snapshot a worker should run (long-poll), publish,
 * versions, rollback, canary promote/abort and the control plane's mode. Config is the whole
 * deployment's: every route but `validate` (which reads nothing but its body) is system-scope —
 * keys of the system tenant only. Mutations are refused in read-only mode (except switching the
 * mode back). Worker reports and the fleet are in fleet-routes.ts.
 */
import type { FastifyInstance } from 'fastify';
import type { ConfigService } from '../control/config/service.js';
import type { ConfigVersion } from '../ledger/config-store.js';
import type { Store } from '../ledger/store.js';
import { principalOf, ROLE_SETS } from './auth.js';
import { HttpProblem, problemResponses as problems } from './problem.js';
import { iso, NAME_PATTERN } from './resources.js';

/** The worker protocol this control plane speaks; workers send theirs in `x-bulkhead-protocol`. */
export const CONTROL_PROTOCOL_VERSION = 1;

const versionResource = (v: ConfigVersion, withDocument = false) => ({
  version: v.version,
  digest: v.digest,
  previousDigest: v.previousDigest,
  kind: v.kind,
  ...(v.canaryLabel !== undefined && { canaryLabel: v.canaryLabel }),
  publishedBy: v.publishedBy,
  publishedAt: iso(v.publishedAt),
  ...(withDocument && { document: JSON.parse(v.documentJson) as unknown }),
});
const versionSchema = {
  type: 'object',
  required: ['version', 'digest', 'kind', 'publishedBy', 'publishedAt'],
  properties: {
    version: { type: 'integer' },
    digest: { type: 'string' },
    previousDigest: { type: ['string', 'null'] },
    kind: { type: 'string', enum: ['publish', 'rollback', 'canary'] },
    canaryLabel: { type: 'string' },
    publishedBy: { type: 'string' },
    publishedAt: { type: 'string', format: 'date-time' },
    document: {},
  },
} as const;
export const rolloutSchema = {
  type: 'object',
  required: ['currentVersion', 'mode'],
  properties: {
    currentVersion: { type: ['integer', 'null'] },
    canary: { type: 'object', properties: { version: { type: 'integer' }, label: { type: 'string' } } },
    mode: { type: 'string', enum: ['normal', 'read_only'] },
  },
} as const;
const admin = { roles: ROLE_SETS.admin, scope: 'system' } as const;
const inspect = { roles: ROLE_SETS.inspect, scope: 'system' } as const;

export function registerConfigRoutes(
  app: FastifyInstance,
  deps: { store: Store; config: ConfigService },
): void {
  const { store, config } = deps;
  /** Who made a change, as config events record it. */
  const by = (req: Parameters<typeof principalOf>[0]) => `key:${principalOf(req).keyId}`;

  // Read-only mode refuses every privileged mutation: tenants and keys here, config in the service.
  app.addHook('preHandler', async (request) => {
    const route = request.routeOptions.url ?? '';
    if (request.method !== 'GET' && /^\/v1\/(tenants|keys)/.test(route)) {
      await config.refuseWhenReadOnly(`${request.method} ${route}`);
    }
  });

  app.get<{ Querystring: { labels?: string; after?: number; waitMs?: number } }>(
    '/v1/config',
    {
      config: { roles: ['worker', ...ROLE_SETS.inspect], scope: 'system' },
      schema: {
        tags: ['config'],
        summary: 'The signed snapshot a worker with these labels should run; long-polls past `after`',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            labels: { type: 'string', maxLength: 2000 },
            after: { type: 'integer', minimum: 0 },
            waitMs: { type: 'integer', minimum: 0, maximum: 60_000, default: 0 },
          },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...problems },
      },
    },
    async (request) => {
      const theirs = request.headers['x-bulkhead-protocol'];
      if (theirs !== undefined && Number(theirs) !== CONTROL_PROTOCOL_VERSION) {
        throw new HttpProblem(
          409,
          'protocol_mismatch',
          `this worker speaks protocol ${String(theirs)}, this control plane speaks ${CONTROL_PROTOCOL_VERSION}; upgrade the older of the two`,
          { workerProtocol: String(theirs), controlProtocol: CONTROL_PROTOCOL_VERSION },
        );
      }
      const labels = (request.query.labels ?? '').split(',').filter(Boolean);
      const after = request.query.after ?? 0;
      const until = Date.now() + (request.query.waitMs ?? 0);
      for (;;) {
        const v = await config.versionFor(labels);
        if ((v && v.version !== after) || Date.now() >= until) break;
        await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, until - Date.now()))));
      }
      return config.snapshotFor(labels);
    },
  );

  app.post<{
    Body: {
      document: unknown;
      canary?: string;
      taskSchemas?: { name: string; version: number; input: Record<string, unknown> }[];
    };
  }>(
    '/v1/config',
    {
      config: admin,
      bodyLimit: 4 * 1024 * 1024,
      schema: {
        tags: ['config'],
        summary: 'Publish a config document (YAML text or JSON), to all workers or as a canary',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['document'],
          properties: {
            document: { description: 'the config document: an object, or YAML/JSON text' },
            canary: { type: 'string', pattern: NAME_PATTERN, maxLength: 200 },
            taskSchemas: {
              type: 'array',
              maxItems: 1000,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['name', 'version', 'input'],
                properties: {
                  name: { type: 'string', pattern: NAME_PATTERN, maxLength: 200 },
                  version: { type: 'integer', minimum: 1 },
                  input: { type: 'object' },
                },
              },
            },
          },
        },
        response: { 201: versionSchema, ...problems },
      },
    },
    async (request, reply) => {
      const v = await config.publish({
        document: request.body.document,
        by: by(request),
        ...(request.body.canary !== undefined && { canaryLabel: request.body.canary }),
        ...(request.body.taskSchemas !== undefined && { taskSchemas: request.body.taskSchemas }),
      });
      return reply.code(201).send(versionResource(v));
    },
  );

  app.post<{ Body: { document: unknown } }>(
    '/v1/config/validate',
    {
      config: { roles: ROLE_SETS.read },
      schema: {
        tags: ['config'],
        summary: 'Validate a config document without publishing it; returns it with defaults applied',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['document'],
          properties: { document: {} },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...problems },
      },
    },
    async (request) => ({ document: config.prepare(request.body.document) }),
  );

  app.get<{ Querystring: { limit?: number } }>(
    '/v1/config/versions',
    {
      config: inspect,
      schema: {
        tags: ['config'],
        summary: 'Published config versions, newest first, with the rollout state',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['versions', 'rollout'],
            properties: { versions: { type: 'array', items: versionSchema }, rollout: rolloutSchema },
          },
          ...problems,
        },
      },
    },
    async (request) => ({
      versions: (await store.configs.list(request.query.limit ?? 50)).map((v) => versionResource(v)),
      rollout: await store.configs.rollout(),
    }),
  );

  app.get<{ Params: { version: number } }>(
    '/v1/config/versions/:version',
    {
      config: inspect,
      schema: {
        tags: ['config'],
        summary: 'One config version with its document',
        params: {
          type: 'object',
          required: ['version'],
          properties: { version: { type: 'integer', minimum: 1 } },
        },
        response: { 200: versionSchema, ...problems },
      },
    },
    async (request) => {
      const v = await store.configs.get(request.params.version);
      if (!v)
        throw new HttpProblem(
          404,
          'config_version_not_found',
          `config version ${request.params.version} does not exist`,
        );
      return versionResource(v, true);
    },
  );

  app.post<{ Body: { version: number } }>(
    '/v1/config/rollback',
    {
      config: admin,
      schema: {
        tags: ['config'],
        summary: 'Publish the content of an older version as a new version',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['version'],
          properties: { version: { type: 'integer', minimum: 1 } },
        },
        response: { 201: versionSchema, ...problems },
      },
    },
    async (request, reply) =>
      reply.code(201).send(versionResource(await config.rollback(request.body.version, by(request)))),
  );

  for (const action of ['promote', 'abort'] as const) {
    app.post(
      `/v1/config/${action}`,
      {
        config: admin,
        schema: {
          tags: ['config'],
          summary:
            action === 'promote'
              ? 'Roll the canary out to every worker (refused while a canary worker NACKs it)'
              : 'Drop the canary: its workers return to the current version',
          response: { 200: rolloutSchema, ...problems },
        },
      },
      async (request) => (action === 'promote' ? config.promote(by(request)) : config.abort(by(request))),
    );
  }

  app.post<{ Body: { mode: 'normal' | 'read_only' } }>(
    '/v1/control/mode',
    {
      config: admin,
      schema: {
        tags: ['config'],
        summary: 'Switch the control plane between normal and read-only (mutations refused)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['mode'],
          properties: { mode: { type: 'string', enum: ['normal', 'read_only'] } },
        },
        response: { 200: rolloutSchema, ...problems },
      },
    },
    async (request) => config.setMode(request.body.mode, by(request)),
  );
}
