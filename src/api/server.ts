/**
 * The HTTP API: one Fastify app with a router per plane. Every route has a schema; the OpenAPI 3.1
 * document at `GET /v1/openapi.json` is generated from those schemas, never written by hand. Every
 * error is problem+json (see problem.ts).
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { type Logger, pino } from 'pino';
import { Admission } from '../control/admission.js';
import { Approvals } from '../control/approvals.js';
import type { ConfigService } from '../control/config/service.js';
import type { EvidenceService } from '../evidence/service.js';
import type { Store } from '../ledger/store.js';
import { registerAdminRoutes } from './admin-routes.js';
import { registerAuth } from './auth.js';
import { registerConfigRoutes } from './config-routes.js';
import { registerEvidenceRoutes } from './evidence-routes.js';
import { registerFleetRoutes } from './fleet-routes.js';
import { type HealthSection, healthSchema, registerHealthRoutes } from './health-routes.js';
import { registerJobRoutes } from './jobs-routes.js';
import { MAX_BODY_DEPTH, registerJsonBody } from './json-body.js';
import { HttpProblem, problemSchema, sendProblem } from './problem.js';
import { apiKeySchema, jobSchema, submissionSchema, tenantSchema } from './resources.js';
import { buildValidators } from './schema-validators.js';

export interface ApiOptions {
  store: Store;
  /** @default a silent logger */
  logger?: Logger;
  /** Largest request body in bytes (the batch route allows 16 MiB). @default 1 MiB */
  bodyLimit?: number;
  /** Requests taking longer are answered 408 (the result long-poll is bounded separately). @default 90000 */
  requestTimeoutMs?: number;
  /** Sections of `GET /v1/health`, one per plane, added by whoever runs that plane here. */
  health?: Record<string, () => HealthSection | Promise<HealthSection>>;
  version?: string;
  /** The config service (signing key, deployment): enables the config and fleet routes. */
  config?: ConfigService;
  /** The evidence service: enables the evidence routes. */
  evidence?: EvidenceService;
}

export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger ?? pino({ level: 'silent' }),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    requestTimeout: options.requestTimeoutMs ?? 90_000,
    logController: new LogController({ disableRequestLogging: true }),
    // Errors Fastify raises before routing (a bad URL, an over-long parameter) are problem+json too.
    frameworkErrors: (err, request, reply) => sendProblem(reply, request, err),
    // Querystring and parameters are coerced to their schema's types; JSON bodies never are.
    schemaController: { compilersFactory: { buildValidator: buildValidators } },
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Bulkhead API',
        version: options.version ?? '0.0.0',
        description: [
          'Durable work orchestration: jobs, tenants and keys. Errors are RFC 9457 problem+json.',
          `A JSON request body may nest arrays and objects at most ${MAX_BODY_DEPTH} levels deep, every`,
          'string and key in it must be well-formed Unicode (no lone surrogates), and its values must have',
          'the JSON type the schema gives (no coercion: "5" is not an integer); otherwise the answer is 400',
          'invalid_request naming the path. Send one Authorization header.',
        ].join(' '),
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  for (const schema of [
    problemSchema,
    jobSchema,
    submissionSchema,
    tenantSchema,
    apiKeySchema,
    healthSchema,
  ]) {
    app.addSchema(schema);
  }

  app.setErrorHandler((err, request, reply) => sendProblem(reply, request, err));
  // JSON only: a text/plain body is a 415, not a string to validate.
  app.removeContentTypeParser('text/plain');
  registerJsonBody(app);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      request,
      new HttpProblem(
        404,
        'not_found',
        `no route ${request.method} ${request.url.split('?')[0]}; see GET /v1/openapi.json`,
      ),
    ),
  );

  registerAuth(app, options.store.registry);
  registerHealthRoutes(app, { store: options.store, sections: options.health ?? {} });
  const signer = options.config && { key: options.config.key, deploymentId: options.config.deploymentId };
  registerJobRoutes(app, {
    store: options.store,
    admission: new Admission(options.store, signer),
    ...(signer && { approvals: new Approvals(options.store, signer) }),
  });
  registerAdminRoutes(app, { store: options.store });
  if (options.config) {
    registerConfigRoutes(app, { store: options.store, config: options.config });
    registerFleetRoutes(app, { store: options.store, config: options.config });
  }
  if (options.evidence) registerEvidenceRoutes(app, { evidence: options.evidence });

  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
