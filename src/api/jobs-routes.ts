/**
 * Job routes: submit (single and batch), list, get, wait for the result, cancel, retry. Every route
 * is scoped to the caller's tenant: another tenant's job is a 404, never visible.
 */
import type { FastifyInstance } from 'fastify';
import type { Admission, Submission } from '../control/admission.js';
import type { Approvals } from '../control/approvals.js';
import type { Store } from '../ledger/store.js';
import type { Job } from '../ledger/types.js';
import { isTerminal, JOB_STATES, type JobState } from '../lifecycle/lifecycle.js';
import { principalOf, ROLE_SETS } from './auth.js';
import { HttpProblem, problemResponses } from './problem.js';
import { NAME_PATTERN, toJobResource } from './resources.js';

const problems = problemResponses;
const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 100 } },
} as const;

interface SubmissionBody {
  task: string;
  taskVersion?: number;
  input?: unknown;
  idempotencyKey?: string;
  correlationId?: string;
  priority?: number;
  runAt?: string;
  deadline?: string;
}

function toSubmission(body: SubmissionBody, where: string): Submission {
  const s: Submission = { task: body.task, input: body.input ?? null };
  if (body.taskVersion !== undefined) s.taskVersion = body.taskVersion;
  if (body.idempotencyKey !== undefined) s.idempotencyKey = body.idempotencyKey;
  if (body.correlationId !== undefined) s.correlationId = body.correlationId;
  if (body.priority !== undefined) s.priority = body.priority;
  const time = (value: string, field: string) => {
    const ms = Date.parse(value);
    if (Number.isNaN(ms))
      throw new HttpProblem(400, 'invalid_request', `${where}.${field}: '${value}' is not a date-time`);
    return ms;
  };
  if (body.runAt !== undefined) s.runAt = time(body.runAt, 'runAt');
  if (body.deadline !== undefined) s.deadline = time(body.deadline, 'deadline');
  return s;
}

export const MAX_WAIT_MS = 60_000;

export function registerJobRoutes(
  app: FastifyInstance,
  deps: { store: Store; admission: Admission; approvals?: Approvals },
): void {
  const { store, admission, approvals } = deps;

  const getOwn = async (id: string, tenant: string): Promise<Job> => {
    const job = await store.get(id, { tenant });
    if (!job) throw new HttpProblem(404, 'job_not_found', `job ${id} does not exist`);
    return job;
  };

  app.post<{ Body: SubmissionBody }>(
    '/v1/jobs',
    {
      config: { roles: ROLE_SETS.submit },
      schema: {
        tags: ['jobs'],
        summary: 'Submit a job',
        description: 'Idempotent per tenant and idempotencyKey: a replay returns the first job with 200.',
        body: { $ref: 'Submission#' },
        response: { 200: { $ref: 'Job#' }, 201: { $ref: 'Job#' }, ...problems },
      },
    },
    async (request, reply) => {
      const [result] = await admission.submit(principalOf(request), [toSubmission(request.body, 'body')]);
      if (!result) throw new Error('admission returned no result');
      return reply.code(result.created ? 201 : 200).send(toJobResource(result.job));
    },
  );

  app.post<{ Body: { jobs: SubmissionBody[] } }>(
    '/v1/jobs/batch',
    {
      config: { roles: ROLE_SETS.submit },
      bodyLimit: 16 * 1024 * 1024,
      schema: {
        tags: ['jobs'],
        summary: 'Submit up to 1000 jobs in one transaction (all or none)',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['jobs'],
          properties: {
            jobs: { type: 'array', minItems: 1, maxItems: 1000, items: { $ref: 'Submission#' } },
          },
        },
        response: {
          201: {
            type: 'object',
            required: ['results'],
            properties: {
              results: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['created', 'job'],
                  properties: { created: { type: 'boolean' }, job: { $ref: 'Job#' } },
                },
              },
            },
          },
          ...problems,
        },
      },
    },
    async (request, reply) => {
      const subs = request.body.jobs.map((b, i) => toSubmission(b, `body.jobs[${i}]`));
      const results = await admission.submit(principalOf(request), subs);
      return reply
        .code(201)
        .send({ results: results.map((r) => ({ created: r.created, job: toJobResource(r.job) })) });
    },
  );

  app.get<{
    Querystring: {
      state?: string;
      task?: string;
      queue?: string;
      correlationId?: string;
      limit?: number;
      cursor?: string;
    };
  }>(
    '/v1/jobs',
    {
      config: { roles: ROLE_SETS.read },
      schema: {
        tags: ['jobs'],
        summary: "List the tenant's jobs, newest first",
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', description: `comma-separated states: ${JOB_STATES.join(', ')}` },
            task: { type: 'string', pattern: NAME_PATTERN, maxLength: 200 },
            queue: { type: 'string', pattern: NAME_PATTERN, maxLength: 200 },
            correlationId: { type: 'string', minLength: 1, maxLength: 100 },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
            cursor: { type: 'string', maxLength: 300 },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['jobs'],
            properties: { jobs: { type: 'array', items: { $ref: 'Job#' } }, nextCursor: { type: 'string' } },
          },
          ...problems,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const filter: Parameters<Store['list']>[0] = { tenant: principalOf(request).tenant };
      if (q.state !== undefined) {
        const states = q.state.split(',').map((s) => s.trim());
        const bad = states.filter((s) => !(JOB_STATES as readonly string[]).includes(s));
        if (bad.length > 0 || states.length === 0) {
          throw new HttpProblem(
            400,
            'invalid_request',
            `querystring.state: unknown state ${bad.map((b) => `'${b}'`).join(', ')}; states are ${JOB_STATES.join(', ')}`,
          );
        }
        filter.states = states as JobState[];
      }
      if (q.task !== undefined) filter.task = q.task;
      if (q.queue !== undefined) filter.queue = q.queue;
      if (q.correlationId !== undefined) filter.correlationId = q.correlationId;
      const page: Parameters<Store['list']>[1] = { limit: q.limit ?? 50 };
      if (q.cursor !== undefined) page.cursor = q.cursor;
      const result = await store.list(filter, page);
      return {
        jobs: result.jobs.map(toJobResource),
        ...(result.nextCursor !== undefined && { nextCursor: result.nextCursor }),
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    {
      config: { roles: ROLE_SETS.read },
      schema: {
        tags: ['jobs'],
        summary: 'Get a job',
        params: idParams,
        response: { 200: { $ref: 'Job#' }, ...problems },
      },
    },
    async (request) => toJobResource(await getOwn(request.params.id, principalOf(request).tenant)),
  );

  app.get<{ Params: { id: string }; Querystring: { waitMs?: number } }>(
    '/v1/jobs/:id/result',
    {
      config: { roles: ROLE_SETS.read },
      schema: {
        tags: ['jobs'],
        summary: 'Wait up to waitMs for the job to end; 200 when it has, 202 when it is still going',
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { waitMs: { type: 'integer', minimum: 0, maximum: MAX_WAIT_MS, default: 0 } },
        },
        response: { 200: { $ref: 'Job#' }, 202: { $ref: 'Job#' }, ...problems },
      },
    },
    async (request, reply) => {
      const tenant = principalOf(request).tenant;
      const deadline = Date.now() + (request.query.waitMs ?? 0);
      let job = await getOwn(request.params.id, tenant);
      let pause = 10;
      let closed = false;
      request.raw.once('close', () => {
        closed = true;
      });
      while (!isTerminal(job.state) && Date.now() < deadline && !closed) {
        await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, deadline - Date.now()))));
        pause = Math.min(pause * 2, 200);
        job = await getOwn(request.params.id, tenant);
      }
      return reply.code(isTerminal(job.state) ? 200 : 202).send(toJobResource(job));
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/jobs/:id/cancel',
    {
      config: { roles: ROLE_SETS.operate },
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a job: at once when not running; a running job is asked to stop (cancelRequested)',
        params: idParams,
        response: { 200: { $ref: 'Job#' }, ...problems },
      },
    },
    async (request) =>
      toJobResource(await store.cancel(request.params.id, { tenant: principalOf(request).tenant })),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/jobs/:id/retry',
    {
      config: { roles: ROLE_SETS.operate },
      schema: {
        tags: ['jobs'],
        summary: 'Run a dead, cancelled or expired job again as a new job (parentId = this job); idempotent',
        params: idParams,
        response: { 200: { $ref: 'Job#' }, 201: { $ref: 'Job#' }, ...problems },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const job = await getOwn(request.params.id, principal.tenant);
      if (!['dead', 'cancelled', 'expired'].includes(job.state)) {
        throw new HttpProblem(
          409,
          'job_state_conflict',
          `job ${job.id} is '${job.state}'; only dead, cancelled or expired jobs can be retried`,
        );
      }
      const [result] = await admission.submit(principal, [
        {
          task: job.task,
          taskVersion: job.taskVersion,
          input: job.input,
          idempotencyKey: `retry-of:${job.id}`,
          correlationId: job.correlationId,
          parentId: job.id,
          priority: job.priority,
        },
      ]);
      if (!result) throw new Error('admission returned no result');
      return reply.code(result.created ? 201 : 200).send(toJobResource(result.job));
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/jobs/:id/readmit',
    {
      config: { roles: ROLE_SETS.admin },
      schema: {
        tags: ['jobs'],
        summary:
          'Readmit a job blocked for invalid_authority: admission runs again on it and signs a new authority record',
        description:
          "Only an admin of the job's tenant. The task version must still be registered and the input must still validate; the job goes back to queued (reason readmitted). Any other job is a 409.",
        params: idParams,
        response: { 200: { $ref: 'Job#' }, ...problems },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return toJobResource(
        await admission.readmit(principal, request.params.id, { tenant: principal.tenant }),
      );
    },
  );

  for (const decision of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string }; Body: { comment?: string } | undefined }>(
      `/v1/jobs/:id/${decision}`,
      {
        config: { roles: ROLE_SETS.approve },
        schema: {
          tags: ['jobs'],
          summary:
            decision === 'approve'
              ? 'Approve a job awaiting approval (it runs once it has the approvals its contract asks for)'
              : 'Reject a job awaiting approval (it ends rejected)',
          description:
            "An approver or admin of the job's tenant, never the key that submitted it, once per job. The decision is signed into the job's authority record and recorded in evidence.",
          params: idParams,
          body: {
            type: ['object', 'null'],
            additionalProperties: false,
            properties: { comment: { type: 'string', minLength: 1, maxLength: 2000 } },
          },
          response: { 200: { $ref: 'Job#' }, ...problems },
        },
      },
      async (request) => {
        if (!approvals)
          throw new HttpProblem(
            503,
            'approvals_unavailable',
            'this server has no signing key: approvals need the control plane',
          );
        const comment = request.body?.comment;
        const job = await approvals.decide(principalOf(request), request.params.id, {
          decision,
          ...(comment !== undefined && { comment }),
        });
        return toJobResource(job);
      },
    );
  }
}
