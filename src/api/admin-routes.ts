/**
 * Tenants and API keys. Admin keys of the system tenant (`default`, made at init) manage every
 * tenant; an admin key of any other tenant manages only its own tenant's keys. Key secrets are in
 * the creation response only.
 */
import type { FastifyInstance } from 'fastify';
import { createApiKey, type Principal } from '../control/api-keys.js';
import { type ApiKeyRecord, type Role, SYSTEM_TENANT, type Tenant } from '../ledger/registry.js';
import type { Store } from '../ledger/store.js';
import { principalOf, ROLE_SETS } from './auth.js';
import { HttpProblem, problemResponses } from './problem.js';
import { iso, NAME_PATTERN } from './resources.js';

const problems = problemResponses;
const tenantResource = (t: Tenant) => ({ name: t.name, createdAt: iso(t.createdAt) });
const keyResource = (k: ApiKeyRecord) => ({
  id: k.id,
  tenant: k.tenant,
  roles: k.roles,
  name: k.name,
  createdAt: iso(k.createdAt),
  ...(k.revokedAt !== undefined && { revokedAt: iso(k.revokedAt) }),
});
const tenantParams = {
  type: 'object',
  required: ['tenant'],
  properties: { tenant: { type: 'string', pattern: NAME_PATTERN, maxLength: 200 } },
} as const;

function mayManage(principal: Principal, tenant: string): boolean {
  return principal.tenant === SYSTEM_TENANT || principal.tenant === tenant;
}

export function registerAdminRoutes(app: FastifyInstance, deps: { store: Store }): void {
  const { registry } = deps.store;

  app.post<{ Body: { name: string } }>(
    '/v1/tenants',
    {
      config: { roles: ROLE_SETS.admin, scope: 'system' },
      schema: {
        tags: ['tenants'],
        summary: 'Create a tenant (200 if it already exists)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', pattern: NAME_PATTERN, minLength: 1, maxLength: 200 } },
        },
        response: { 200: { $ref: 'Tenant#' }, 201: { $ref: 'Tenant#' }, ...problems },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      const { tenant, created } = await registry.createTenant(request.body.name);
      if (created)
        await deps.store.appendEvent({
          type: 'admin.tenant_created',
          tenant: tenant.name,
          data: { tenant: tenant.name, by: p.keyId },
        });
      return reply.code(created ? 201 : 200).send(tenantResource(tenant));
    },
  );

  app.get(
    '/v1/tenants',
    {
      config: { roles: ROLE_SETS.admin },
      schema: {
        tags: ['tenants'],
        summary: 'List tenants',
        response: {
          200: {
            type: 'object',
            required: ['tenants'],
            properties: { tenants: { type: 'array', items: { $ref: 'Tenant#' } } },
          },
          ...problems,
        },
      },
    },
    async (request) => {
      const p = principalOf(request);
      const all = await registry.listTenants();
      return { tenants: all.filter((t) => mayManage(p, t.name)).map(tenantResource) };
    },
  );

  app.post<{ Params: { tenant: string }; Body: { roles: Role[]; name?: string } }>(
    '/v1/tenants/:tenant/keys',
    {
      config: { roles: ROLE_SETS.admin },
      schema: {
        tags: ['keys'],
        summary: 'Create an API key; the key text is in this response only',
        params: tenantParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['roles'],
          properties: {
            roles: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: {
                type: 'string',
                enum: ['admin', 'operator', 'submitter', 'approver', 'auditor', 'worker'],
              },
            },
            name: { type: 'string', maxLength: 200 },
          },
        },
        response: {
          201: {
            type: 'object',
            required: ['key', 'apiKey'],
            properties: { key: { type: 'string' }, apiKey: { $ref: 'ApiKey#' } },
          },
          ...problems,
        },
      },
    },
    async (request, reply) => {
      const p = principalOf(request);
      const { tenant } = request.params;
      if (!mayManage(p, tenant))
        throw new HttpProblem(404, 'tenant_not_found', `tenant '${tenant}' does not exist`);
      const created = await createApiKey(registry, {
        tenant,
        roles: request.body.roles,
        name: request.body.name ?? '',
      });
      request.log.info(
        { keyId: created.record.id, tenant, roles: created.record.roles, by: p.keyId },
        'API key created',
      );
      // The evidence plane records who made which key with which roles: never the secret.
      await deps.store.appendEvent({
        type: 'admin.key_created',
        tenant,
        data: {
          keyId: created.record.id,
          roles: created.record.roles,
          name: created.record.name,
          by: p.keyId,
        },
      });
      return reply.code(201).send({ key: created.key, apiKey: keyResource(created.record) });
    },
  );

  app.get<{ Params: { tenant: string } }>(
    '/v1/tenants/:tenant/keys',
    {
      config: { roles: ROLE_SETS.admin },
      schema: {
        tags: ['keys'],
        summary: "List a tenant's API keys (never their secrets)",
        params: tenantParams,
        response: {
          200: {
            type: 'object',
            required: ['keys'],
            properties: { keys: { type: 'array', items: { $ref: 'ApiKey#' } } },
          },
          ...problems,
        },
      },
    },
    async (request) => {
      const { tenant } = request.params;
      if (!mayManage(principalOf(request), tenant)) {
        throw new HttpProblem(404, 'tenant_not_found', `tenant '${tenant}' does not exist`);
      }
      return { keys: (await registry.listApiKeys({ tenant })).map(keyResource) };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/keys/:id/revoke',
    {
      config: { roles: ROLE_SETS.admin },
      schema: {
        tags: ['keys'],
        summary: 'Revoke an API key (idempotent); it is refused from the next request on',
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', pattern: NAME_PATTERN, maxLength: 200 } },
        },
        response: { 200: { $ref: 'ApiKey#' }, ...problems },
      },
    },
    async (request) => {
      const p = principalOf(request);
      const options = p.tenant === SYSTEM_TENANT ? {} : { tenant: p.tenant };
      const revoked = await registry.revokeApiKey(request.params.id, options);
      request.log.info({ keyId: revoked.id, by: p.keyId }, 'API key revoked');
      await deps.store.appendEvent({
        type: 'admin.key_revoked',
        tenant: revoked.tenant,
        data: { keyId: revoked.id, by: p.keyId },
      });
      return keyResource(revoked);
    },
  );

  app.post<{ Body: { throughSeq: number } }>(
    '/v1/events/prune',
    {
      config: { roles: ROLE_SETS.admin, scope: 'system' },
      schema: {
        tags: ['events'],
        summary:
          'Delete outbox events up to a seq (consumers behind it lose them; the evidence plane records a gap)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['throughSeq'],
          properties: { throughSeq: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
        },
        response: {
          200: {
            type: 'object',
            required: ['deleted', 'prunedThrough'],
            properties: { deleted: { type: 'integer' }, prunedThrough: { type: 'integer' } },
          },
          ...problems,
        },
      },
    },
    async (request) => {
      const p = principalOf(request);
      const result = await deps.store.pruneEvents(request.body.throughSeq);
      request.log.warn({ ...result, by: p.keyId }, 'outbox events pruned');
      return result;
    },
  );
}
