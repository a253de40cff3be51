/**
 * One HTTP error type and one renderer: every error leaves as RFC 9457 `application/problem+json`
 * with a stable `code`. Known errors keep their message; anything else is a 500 that says only that
 * the server failed (the details go to the log, never to the client).
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ControlError, PayloadQuotaError } from '../control/errors.js';
import { LedgerError, QuotaExceededError } from '../ledger/errors.js';

export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra members of the problem object (`errors`, `known`, …). */
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpProblem';
  }
}

/** HTTP status of each stable code of the planes' own errors. */
const CODE_STATUS: Record<string, number> = {
  unknown_task: 400,
  config_invalid: 400,
  no_config: 404,
  read_only: 409,
  invalid_input: 400,
  forbidden: 403,
  policy_denied: 403,
  tenant_not_admitted: 403,
  approval_refused: 403,
  quota_exceeded: 429,
  payload_quota_exceeded: 413,
  no_signer: 503,
  invalid_argument: 400,
  job_not_found: 404,
  tenant_not_found: 404,
  api_key_not_found: 404,
  idempotency_conflict: 409,
  job_state_conflict: 409,
  config_conflict: 409,
  stale_lease: 409,
  store_unavailable: 503,
  schema_too_new: 503,
  evidence_unavailable: 503,
  legal_hold: 409,
  hold_not_found: 404,
  evidence_not_found: 404,
};

const FASTIFY_CODES: Record<string, [number, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'payload_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'uri_too_long'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid_content_length'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'malformed_json'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_json'],
  FST_ERR_BAD_URL: [400, 'bad_url'],
  FST_ERR_ASYNC_CONSTRAINT: [400, 'bad_request'],
};

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  [member: string]: unknown;
}

/** The problem for any error, and whether it was unexpected (to be logged as such). */
export function toProblem(err: unknown): { problem: HttpProblem; unexpected: boolean } {
  if (err instanceof HttpProblem) return { problem: err, unexpected: false };
  if (err instanceof LedgerError || err instanceof ControlError) {
    const status = CODE_STATUS[err.code] ?? 500;
    const extra: Record<string, unknown> = {};
    if ('path' in err && typeof err.path === 'string') extra.path = err.path;
    if ('errors' in err && Array.isArray(err.errors)) extra.errors = err.errors;
    if ('known' in err && Array.isArray(err.known)) extra.known = err.known;
    if ('problems' in err && Array.isArray(err.problems)) extra.errors = err.problems;
    if ('policy' in err && (typeof err.policy === 'number' || err.policy === null)) extra.policy = err.policy;
    const headers: Record<string, string> = {};
    if (err instanceof QuotaExceededError || err instanceof PayloadQuotaError) {
      // The quota, its limit and the use that hit it; a rate says when to come back.
      Object.assign(extra, { quota: err.quota, tenant: err.tenant, limit: err.limit });
      if (err instanceof QuotaExceededError) {
        Object.assign(extra, { current: err.current, requested: err.requested });
        if (err.retryAfterMs !== undefined) extra.retryAfterMs = err.retryAfterMs;
        headers['retry-after'] = String(Math.max(1, Math.ceil((err.retryAfterMs ?? 1000) / 1000)));
      } else extra.size = err.size;
    }
    return {
      problem: new HttpProblem(status, err.code, err.message, extra, headers),
      unexpected: status >= 500,
    };
  }
  const fe = err as FastifyError & { validation?: SchemaError[] };
  if (fe && Array.isArray(fe.validation)) {
    const where = (fe as { validationContext?: string }).validationContext ?? 'body';
    const errors = fe.validation.map((v) => ({
      path: `${where}${v.instancePath ?? ''}`,
      message: schemaMessage(v),
    }));
    const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
    return {
      problem: new HttpProblem(400, 'invalid_request', `the request is invalid: ${detail}`, { errors }),
      unexpected: false,
    };
  }
  const mapped = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) {
    const detail =
      mapped[1] === 'unsupported_media_type'
        ? `unsupported content type; send the body as application/json (${fe.message})`
        : fe.message;
    return { problem: new HttpProblem(mapped[0], mapped[1], detail), unexpected: false };
  }
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { problem: new HttpProblem(fe.statusCode, 'bad_request', fe.message), unexpected: false };
  }
  return {
    problem: new HttpProblem(
      500,
      'internal',
      'the server failed to handle this request; the error is in its log',
    ),
    unexpected: true,
  };
}

/** An Ajv error as Fastify passes it on; `data` is the failing value (the validators are verbose). */
interface SchemaError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
  data?: unknown;
}

/** Ajv's message, with what was sent instead (a type error) or what is allowed (an enum, a stray key). */
function schemaMessage(v: SchemaError): string {
  const message = v.message ?? 'invalid';
  if (v.keyword === 'type' && 'data' in v) return `${message}, got ${describeValue(v.data)}`;
  if (v.keyword === 'enum' && Array.isArray(v.params?.allowedValues)) {
    return `${message}: ${v.params.allowedValues.map((a) => JSON.stringify(a)).join(', ')}`;
  }
  if (v.keyword === 'additionalProperties' && typeof v.params?.additionalProperty === 'string') {
    return `${message} ('${v.params.additionalProperty.slice(0, 60)}' is not one)`;
  }
  return message;
}

/** A value as an error message shows it: its JSON type, and a scalar's value (strings cut short). */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `string '${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  return `${typeof value} ${String(value)}`;
}

export function renderProblem(problem: HttpProblem, request: FastifyRequest): ProblemBody {
  return {
    type: `urn:bulkhead:problem:${problem.code}`,
    title: TITLES[problem.status] ?? 'Error',
    status: problem.status,
    code: problem.code,
    detail: problem.message,
    instance: request.url.split('?')[0] ?? request.url,
    ...problem.extra,
  };
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, err: unknown): FastifyReply {
  const { problem, unexpected } = toProblem(err);
  if (unexpected) request.log.error({ err }, 'request failed');
  for (const [k, v] of Object.entries(problem.headers)) reply.header(k, v);
  return reply.code(problem.status).type('application/problem+json').send(renderProblem(problem, request));
}

/** Error responses for route schemas: problem+json, documented with its own media type. */
export const problemResponses = {
  '4XX': {
    description: 'the request was refused (RFC 9457 problem details)',
    content: { 'application/problem+json': { schema: { $ref: 'Problem#' } } },
  },
  '5XX': {
    description: 'the server failed (RFC 9457 problem details)',
    content: { 'application/problem+json': { schema: { $ref: 'Problem#' } } },
  },
} as const;

/** The problem+json schema, for route documentation. */
export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string', description: 'stable machine-readable error code' },
    detail: { type: 'string' },
    instance: { type: 'string' },
  },
  required: ['type', 'title', 'status', 'code', 'detail'],
  additionalProperties: true,
} as const;
