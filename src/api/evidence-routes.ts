/**
 * The evidence plane's routes. Only `auditor` and `admin` keys read or change evidence; a key of
 * tenant T sees only T's entries (other entries in an export are stubs), the system tenant all.
 * Entries are returned in their stored, verifiable form (times in epoch ms), so what an API client
 * reads can be checked with the same rules as a bundle.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Caller, EvidenceService } from '../evidence/service.js';
import type { VerifyReport } from '../evidence/verify.js';
import { type Role, SYSTEM_TENANT } from '../ledger/registry.js';
import { principalOf } from './auth.js';
import { entrySchema, holdSchema, REASON, reportSchema, SEQ, TEXT } from './evidence-schemas.js';
import { HttpProblem, problemResponses as problems } from './problem.js';

const EVIDENCE_ROLES: readonly Role[] = ['admin', 'auditor'];
function callerOf(request: FastifyRequest): Caller {
  const p = principalOf(request);
  return { tenant: p.tenant, by: p.keyId, system: p.tenant === SYSTEM_TENANT };
}

/** Stream an async generator of lines as NDJSON; an error before the first line is a problem response. */
async function streamLines(reply: FastifyReply, lines: AsyncGenerator<string>): Promise<FastifyReply> {
  const first = await lines.next();
  async function* all() {
    if (!first.done) yield `${first.value}\n`;
    for await (const line of lines) yield `${line}\n`;
  }
  return reply.type('application/x-ndjson').send(Readable.from(all()));
}

export function registerEvidenceRoutes(app: FastifyInstance, deps: { evidence: EvidenceService }): void {
  const { evidence } = deps;
  app.addSchema(entrySchema);
  app.addSchema(holdSchema);
  app.addSchema(reportSchema);
  const config = { roles: EVIDENCE_ROLES };

  app.get<{ Querystring: { correlationId?: string; jobId?: string } }>(
    '/v1/evidence',
    {
      config,
      schema: {
        tags: ['evidence'],
        summary: "A job's or a correlation id's evidence trail, in order",
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { correlationId: TEXT, jobId: TEXT },
        },
        response: {
          200: {
            type: 'object',
            required: ['entries'],
            properties: { entries: { type: 'array', items: { $ref: 'EvidenceEntry#' } } },
          },
          ...problems,
        },
      },
    },
    async (request) => {
      const id = request.query.correlationId ?? request.query.jobId;
      if (
        id === undefined ||
        (request.query.correlationId !== undefined && request.query.jobId !== undefined)
      )
        throw new HttpProblem(400, 'invalid_argument', 'give exactly one of correlationId or jobId');
      return { entries: await evidence.trail(callerOf(request), id) };
    },
  );

  app.get<{ Querystring: { progress?: boolean } }>(
    '/v1/evidence/verify',
    {
      config: { roles: EVIDENCE_ROLES },
      schema: {
        tags: ['evidence'],
        summary: 'Verify the whole log: chain, commitments of unerased values, checkpoints',
        description:
          'With progress=true the answer is NDJSON: {"type":"progress","done","total"} lines, then {"type":"result",...report}.',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { progress: { type: 'boolean', default: false } },
        },
        response: { 200: { $ref: 'EvidenceReport#' }, ...problems },
      },
    },
    async (request, reply) => {
      if (!callerOf(request).system)
        throw new HttpProblem(
          403,
          'forbidden',
          `verifying the whole log needs a key of the '${SYSTEM_TENANT}' tenant`,
        );
      if (!request.query.progress) return evidence.verify();
      const events: string[] = [];
      let done = false;
      let wake: (() => void) | undefined;
      const push = (line: string) => {
        events.push(line);
        wake?.();
      };
      let last = 0;
      const run = evidence
        .verify({
          onProgress: (n, total) => {
            if (n - last >= 20_000 || n === total) {
              last = n;
              push(JSON.stringify({ type: 'progress', done: n, total }));
            }
          },
        })
        .then(
          (report: VerifyReport) => push(JSON.stringify({ type: 'result', ...report })),
          (err: unknown) =>
            push(
              JSON.stringify({
                type: 'error',
                code: (err as { code?: string }).code ?? 'internal',
                detail: (err as Error).message,
              }),
            ),
        )
        .finally(() => {
          done = true;
          wake?.();
        });
      async function* lines() {
        for (;;) {
          while (events.length > 0) yield events.shift() as string;
          if (done) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        await run;
      }
      return streamLines(reply, lines());
    },
  );

  app.get<{ Querystring: { fromSeq?: number; toSeq?: number; correlationId?: string } }>(
    '/v1/evidence/export',
    {
      config,
      schema: {
        tags: ['evidence'],
        summary: 'Export a JSONL bundle (streamed) that `bulkhead evidence verify --bundle` checks offline',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { fromSeq: SEQ, toSeq: SEQ, correlationId: TEXT },
        },
        response: {
          200: {
            description: 'application/x-ndjson: a header line, then one line per entry',
            type: 'string',
          },
          ...problems,
        },
      },
    },
    async (request, reply) => {
      const { fromSeq, toSeq, correlationId } = request.query;
      if (fromSeq !== undefined && toSeq !== undefined && fromSeq > toSeq)
        throw new HttpProblem(
          400,
          'invalid_argument',
          `fromSeq (${fromSeq}) must not be after toSeq (${toSeq})`,
        );
      const options = {
        ...(fromSeq !== undefined && { fromSeq }),
        ...(toSeq !== undefined && { toSeq }),
        ...(correlationId !== undefined && { correlationId }),
      };
      return streamLines(reply, evidence.exportBundle(callerOf(request), options));
    },
  );

  app.post<{ Body: { correlationId: string; field: string; reason: string } }>(
    '/v1/evidence/redact',
    {
      config,
      schema: {
        tags: ['evidence'],
        summary:
          "Erase one field's value (and salt) in every entry of a correlation id; the chain still verifies",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['correlationId', 'field', 'reason'],
          properties: { correlationId: TEXT, field: TEXT, reason: REASON },
        },
        response: { 201: { $ref: 'EvidenceEntry#' }, ...problems },
      },
    },
    async (request, reply) => reply.code(201).send(await evidence.redact(callerOf(request), request.body)),
  );

  app.post<{ Body: { seq: number; note: string } }>(
    '/v1/evidence/corrections',
    {
      config,
      schema: {
        tags: ['evidence'],
        summary: 'Amend an earlier entry with a correction entry that points at it (the original is kept)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['seq', 'note'],
          properties: { seq: SEQ, note: REASON },
        },
        response: { 201: { $ref: 'EvidenceEntry#' }, ...problems },
      },
    },
    async (request, reply) => reply.code(201).send(await evidence.correct(callerOf(request), request.body)),
  );

  app.get(
    '/v1/evidence/holds',
    {
      config,
      schema: {
        tags: ['evidence'],
        summary: 'Legal holds, placed and released',
        response: {
          200: {
            type: 'object',
            required: ['holds'],
            properties: { holds: { type: 'array', items: { $ref: 'EvidenceHold#' } } },
          },
          ...problems,
        },
      },
    },
    async (request) => ({ holds: await evidence.holds(callerOf(request)) }),
  );

  app.post<{ Body: { correlationId?: string; tenant?: string; reason: string } }>(
    '/v1/evidence/holds',
    {
      config,
      schema: {
        tags: ['evidence'],
        summary:
          'Place a legal hold on a correlation id or a tenant: exempt from retention and redaction until released',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason'],
          properties: { correlationId: TEXT, tenant: TEXT, reason: REASON },
        },
        response: { 201: { $ref: 'EvidenceHold#' }, ...problems },
      },
    },
    async (request, reply) => {
      const { correlationId, tenant, reason } = request.body;
      if ((correlationId === undefined) === (tenant === undefined))
        throw new HttpProblem(400, 'invalid_argument', 'give exactly one of correlationId or tenant');
      const hold = await evidence.placeHold(callerOf(request), {
        reason,
        ...(correlationId !== undefined && { correlationId }),
        ...(tenant !== undefined && { tenant }),
      });
      return reply.code(201).send(hold);
    },
  );

  app.post<{ Params: { id: string }; Body: { reason: string } }>(
    '/v1/evidence/holds/:id/release',
    {
      config,
      schema: {
        tags: ['evidence'],
        summary: 'Release a legal hold',
        params: { type: 'object', required: ['id'], properties: { id: TEXT } },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason'],
          properties: { reason: REASON },
        },
        response: { 200: { $ref: 'EvidenceHold#' }, ...problems },
      },
    },
    async (request) => await evidence.releaseHold(callerOf(request), request.params.id, request.body.reason),
  );

  app.post<{ Body: { days: number } }>(
    '/v1/evidence/retention',
    {
      config: { roles: ['admin'] as const },
      schema: {
        tags: ['evidence'],
        summary: 'Erase the values of entries older than `days` now (held entries and the chain are kept)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['days'],
          properties: { days: { type: 'integer', minimum: 1, maximum: 36_500 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['erased'],
            properties: {
              erased: { type: 'integer' },
              entries: { type: 'array', items: { $ref: 'EvidenceEntry#' } },
            },
          },
          ...problems,
        },
      },
    },
    async (request) => {
      if (!callerOf(request).system)
        throw new HttpProblem(
          403,
          'forbidden',
          `retention needs an admin key of the '${SYSTEM_TENANT}' tenant`,
        );
      const result = await evidence.applyRetention(request.body.days);
      return { erased: result.erased, entries: result.entries };
    },
  );
}
