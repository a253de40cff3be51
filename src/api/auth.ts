/**
 * Authentication and authorization for every route except `/healthz` and the OpenAPI document:
 * `Authorization: Bearer <key>`; 401 without a valid key, 403 when the key's roles do not include
 * one the route allows. A route declares its roles in `config.roles`, and `config.scope: 'system'`
 * when it is deployment-wide (then a key of any tenant but the system tenant is a 403 too). Both are
 * decided here, before the request body is read. docs/SECURITY.md has the whole matrix. A request
 * with more than one Authorization header is a 400: Node keeps only the first, and which key was
 * meant is a guess.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authenticate, type Principal } from '../control/api-keys.js';
import { type Registry, type Role, SYSTEM_TENANT } from '../ledger/registry.js';
import { HttpProblem } from './problem.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** Roles allowed on the route; absent means public. */
    roles?: readonly Role[];
    /**
     * `system`: the route reads or changes the whole deployment (config, snapshots, the fleet,
     * tenants): only keys of the system tenant pass, whatever another tenant's key's roles.
     */
    scope?: 'system';
  }
}

const unauthorized = (detail: string) =>
  new HttpProblem(401, 'unauthorized', detail, {}, { 'www-authenticate': 'Bearer realm="bulkhead"' });

export function registerAuth(app: FastifyInstance, registry: Registry): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const roles = request.routeOptions.config?.roles;
    if (!roles) return;
    const sent = authorizationHeaders(request);
    if (sent > 1) {
      const message = `${sent} Authorization headers were sent; send exactly one: Authorization: Bearer <key>`;
      throw new HttpProblem(
        400,
        'invalid_request',
        `the request is invalid: headers/authorization: ${message}`,
        {
          errors: [{ path: 'headers/authorization', message }],
        },
      );
    }
    const header = request.headers.authorization;
    if (!header) throw unauthorized('this route needs an API key: send Authorization: Bearer <key>');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m?.[1]) throw unauthorized('the Authorization header must be "Bearer <key>"');
    const result = await authenticate(registry, m[1]);
    if (!result.ok) {
      request.log.info({ why: result.why }, 'API key refused');
      throw unauthorized('the API key is not valid (unknown, revoked or malformed)');
    }
    const principal = result.principal;
    if (!principal.roles.some((r) => roles.includes(r))) {
      throw new HttpProblem(
        403,
        'forbidden',
        `this key's roles (${principal.roles.join(', ')}) do not allow this; it needs one of: ${roles.join(', ')}`,
      );
    }
    if (request.routeOptions.config?.scope === 'system' && principal.tenant !== SYSTEM_TENANT) {
      throw new HttpProblem(
        403,
        'forbidden',
        `this route is deployment-wide: only keys of the system tenant '${SYSTEM_TENANT}' may use it, and this key belongs to tenant '${principal.tenant}'`,
      );
    }
    request.principal = principal;
  });
}

/** How many Authorization headers the request carried (`rawHeaders` alternates names and values). */
function authorizationHeaders(request: FastifyRequest): number {
  const raw = request.raw.rawHeaders;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === 'authorization') n++;
  return n;
}

/** The authenticated principal of a request on a route with roles. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw unauthorized('no API key was verified for this request');
  return request.principal;
}

export const ROLE_SETS = {
  read: ['admin', 'operator', 'submitter', 'approver', 'auditor'],
  submit: ['admin', 'operator', 'submitter'],
  operate: ['admin', 'operator', 'submitter'],
  approve: ['admin', 'approver'],
  admin: ['admin'],
  /** Who reads the control plane's state: config versions, the fleet, recovery. */
  inspect: ['admin', 'operator', 'auditor'],
  any: ['admin', 'operator', 'submitter', 'approver', 'auditor', 'worker'],
} as const satisfies Record<string, readonly Role[]>;
