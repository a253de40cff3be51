/**
 * The API's resources and their JSON Schemas. Route schemas reference these by `$ref`, so the
 * OpenAPI document is generated from the same definitions that validate and serialise.
 */

import { ROLES } from '../ledger/registry.js';
import { CLASSIFICATIONS, type Job } from '../ledger/types.js';
import { JOB_STATES } from '../lifecycle/lifecycle.js';
import type { JobView } from '../sdk/client.js';

/** Epoch ms as the API writes times: ISO 8601. */
export const iso = (ms: number) => new Date(ms).toISOString();

/** The job as the API sends it: the SDK's `JobView`, one definition for both sides. */
export type JobResource = JobView;

export function toJobResource(job: Job): JobResource {
  const r: JobResource = {
    id: job.id,
    kind: job.kind,
    task: job.task,
    taskVersion: job.taskVersion,
    tenant: job.tenant,
    queue: job.queue,
    state: job.state,
    input: job.input,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    correlationId: job.correlationId,
    priority: job.priority,
    classification: job.classification,
    cancelRequested: job.cancelRequested,
    runAt: iso(job.runAt),
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
  };
  if (job.reason !== null) r.reason = job.reason;
  if (job.output !== undefined) r.output = job.output;
  if (job.error !== undefined) r.error = job.error;
  if (job.idempotencyKey !== undefined) r.idempotencyKey = job.idempotencyKey;
  if (job.parentId !== undefined) r.parentId = job.parentId;
  if (job.progress !== undefined) r.progress = job.progress;
  if (job.deadline !== undefined) r.deadline = iso(job.deadline);
  if (job.authority && typeof job.authority === 'object')
    r.authority = job.authority as Record<string, unknown>;
  return r;
}

const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]*$';

export const jobSchema = {
  $id: 'Job',
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: {
      type: 'string',
      enum: ['run', 'compensation'],
      description: 'compensation: undoes its parent job',
    },
    task: { type: 'string' },
    taskVersion: { type: 'integer' },
    tenant: { type: 'string' },
    queue: { type: 'string' },
    state: { type: 'string', enum: [...JOB_STATES] },
    reason: { type: 'string' },
    input: {},
    output: {},
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
    attempt: { type: 'integer' },
    maxAttempts: { type: 'integer' },
    idempotencyKey: { type: 'string' },
    correlationId: { type: 'string' },
    parentId: { type: 'string' },
    priority: { type: 'integer' },
    classification: { type: 'string', enum: [...CLASSIFICATIONS] },
    cancelRequested: { type: 'boolean' },
    progress: {},
    authority: {
      type: 'object',
      additionalProperties: true,
      description:
        'The signed authority record it was admitted under (config version and digest, contract, approvals); see docs/CONTROL-PLANE.md',
    },
    runAt: { type: 'string', format: 'date-time' },
    deadline: { type: 'string', format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
  required: [
    'id',
    'kind',
    'task',
    'taskVersion',
    'tenant',
    'queue',
    'state',
    'input',
    'attempt',
    'maxAttempts',
    'correlationId',
    'priority',
    'classification',
    'cancelRequested',
    'runAt',
    'createdAt',
    'updatedAt',
  ],
} as const;

export const submissionSchema = {
  $id: 'Submission',
  type: 'object',
  additionalProperties: false,
  required: ['task'],
  properties: {
    task: { type: 'string', minLength: 1, maxLength: 200, pattern: NAME_PATTERN },
    taskVersion: { type: 'integer', minimum: 1, description: 'defaults to the newest registered version' },
    input: { description: 'the task input; validated against the task type input schema' },
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 200 },
    correlationId: { type: 'string', minLength: 1, maxLength: 100 },
    priority: { type: 'integer', minimum: -1000, maximum: 1000 },
    runAt: { type: 'string', format: 'date-time' },
    deadline: { type: 'string', format: 'date-time' },
  },
} as const;

export const tenantSchema = {
  $id: 'Tenant',
  type: 'object',
  properties: { name: { type: 'string' }, createdAt: { type: 'string', format: 'date-time' } },
  required: ['name', 'createdAt'],
} as const;

export const apiKeySchema = {
  $id: 'ApiKey',
  type: 'object',
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    roles: { type: 'array', items: { type: 'string', enum: [...ROLES] } },
    name: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    revokedAt: { type: 'string', format: 'date-time' },
  },
  required: ['id', 'tenant', 'roles', 'name', 'createdAt'],
} as const;

export { NAME_PATTERN };
