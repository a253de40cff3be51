/**
 * Row shapes shared by both adapters (the column names are the same in both dialects) and their
 * mapping to the port's types. PostgreSQL hands back parsed JSON and booleans; SQLite hands back
 * text and 0/1: the mappers take either.
 */
import type { BlockReason, JobState, TransitionReason } from '../lifecycle/lifecycle.js';
import type { ConfigVersion, Rollout } from './config-store.js';
import {
  CLASSIFICATIONS,
  type ConsumerState,
  type Job,
  type OutboxEvent,
  type Step,
  type WorkerRecord,
  type WorkerState,
} from './types.js';
import type { NormalizedSubmit } from './validate.js';

export interface JobRow {
  id: string;
  kind: string;
  tenant: string;
  task: string;
  task_version: number;
  queue: string;
  state: string;
  reason: string | null;
  input: unknown;
  output: unknown;
  error_code: string | null;
  error_message: string | null;
  attempt: number;
  max_attempts: number;
  idempotency_key: string | null;
  request_digest: string | null;
  correlation_id: string;
  parent_id: string | null;
  priority: number;
  run_at: number | string;
  deadline: number | string | null;
  classification: number;
  lease_ms: number;
  backoff_base_ms: number;
  backoff_max_ms: number;
  fence: number | string;
  worker_id: string | null;
  lease_expires_at: number | string | null;
  cancel_requested: number | boolean;
  progress: unknown;
  authority: unknown;
  created_at: number | string;
  updated_at: number | string;
}

export function parseJson(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : value;
}

/** A bigint column as a number (PostgreSQL hands them back as text). */
export const num = (v: number | string): number => (typeof v === 'number' ? v : Number(v));
const optNum = (v: number | string | null): number | undefined => (v === null ? undefined : num(v));

export function rowToJob(row: JobRow): Job {
  const job: Job = {
    id: row.id,
    kind: row.kind === 'compensation' ? 'compensation' : 'run',
    tenant: row.tenant,
    task: row.task,
    taskVersion: row.task_version,
    queue: row.queue,
    state: row.state as JobState,
    reason: row.reason as TransitionReason | BlockReason | null,
    input: parseJson(row.input),
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    correlationId: row.correlation_id,
    priority: row.priority,
    runAt: num(row.run_at),
    classification: CLASSIFICATIONS[row.classification] ?? 'restricted',
    leaseMs: row.lease_ms,
    backoff: { baseMs: row.backoff_base_ms, maxMs: row.backoff_max_ms },
    fence: num(row.fence),
    cancelRequested: row.cancel_requested === true || row.cancel_requested === 1,
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
  if (row.output !== null && row.output !== undefined) job.output = parseJson(row.output);
  if (row.error_code !== null) job.error = { code: row.error_code, message: row.error_message ?? '' };
  if (row.idempotency_key !== null) job.idempotencyKey = row.idempotency_key;
  if (row.parent_id !== null) job.parentId = row.parent_id;
  const deadline = optNum(row.deadline);
  if (deadline !== undefined) job.deadline = deadline;
  if (row.worker_id !== null) job.workerId = row.worker_id;
  const leaseExpiresAt = optNum(row.lease_expires_at);
  if (leaseExpiresAt !== undefined) job.leaseExpiresAt = leaseExpiresAt;
  if (row.progress !== null && row.progress !== undefined) job.progress = parseJson(row.progress);
  if (row.authority !== null && row.authority !== undefined) job.authority = parseJson(row.authority);
  return job;
}

export interface EventRow {
  seq: number | string;
  type: string;
  tenant: string;
  job_id: string | null;
  correlation_id: string | null;
  data: unknown;
  at: number | string;
}

export function rowToEvent(row: EventRow): OutboxEvent {
  return {
    seq: num(row.seq),
    type: row.type,
    tenant: row.tenant,
    jobId: row.job_id,
    correlationId: row.correlation_id,
    data: (parseJson(row.data) ?? {}) as Record<string, unknown>,
    at: num(row.at),
  };
}

export interface StepRow {
  job_id: string;
  step_key: string;
  result: unknown;
  fence: number | string;
  attempt: number;
  created_at: number | string;
}

export function rowToStep(row: StepRow): Step {
  return {
    jobId: row.job_id,
    stepKey: row.step_key,
    result: parseJson(row.result),
    fence: num(row.fence),
    attempt: row.attempt,
    createdAt: num(row.created_at),
  };
}

export interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  version: string;
  labels: unknown;
  queues: unknown;
  clearance: number;
  concurrency: number;
  runtimes: unknown;
  meta: unknown;
  state: string;
  started_at: number | string;
  last_seen_at: number | string;
  config_version: number | string | null;
  config_nack_version: number | string | null;
  config_nack_reason: string | null;
  config_at: number | string | null;
}

export function rowToWorker(row: WorkerRow): WorkerRecord {
  const record: WorkerRecord = {
    id: row.id,
    host: row.host,
    pid: row.pid,
    version: row.version,
    labels: parseJson(row.labels) as string[],
    queues: parseJson(row.queues) as string[],
    clearance: CLASSIFICATIONS[row.clearance] ?? 'public',
    concurrency: row.concurrency,
    runtimes: parseJson(row.runtimes) as string[],
    state: row.state as WorkerState,
    startedAt: num(row.started_at),
    lastSeenAt: num(row.last_seen_at),
    config: {},
  };
  if (row.config_version !== null) record.config.appliedVersion = num(row.config_version);
  if (row.config_nack_version !== null) record.config.nackVersion = num(row.config_nack_version);
  if (row.config_nack_reason !== null) record.config.nackReason = row.config_nack_reason;
  if (row.config_at !== null) record.config.reportedAt = num(row.config_at);
  const meta = parseJson(row.meta);
  if (meta !== null && meta !== undefined) record.meta = meta as Record<string, unknown>;
  return record;
}

/** The job an admission creates, built from the normalised submission without reading it back. */
export function admittedJob(item: NormalizedSubmit, id: string, now: number): Job {
  const state = item.requiresApproval ? 'awaiting_approval' : 'queued';
  const job: Job = {
    id,
    kind: item.kind,
    tenant: item.tenant,
    task: item.task,
    taskVersion: item.taskVersion,
    queue: item.queue,
    state,
    reason: item.requiresApproval ? 'approval_required' : 'admitted',
    input: JSON.parse(item.inputJson),
    attempt: 0,
    maxAttempts: item.maxAttempts,
    correlationId: item.correlationId ?? id,
    priority: item.priority,
    runAt: item.runAt ?? now,
    classification: item.classification,
    leaseMs: item.leaseMs,
    backoff: item.backoff,
    fence: 0,
    cancelRequested: false,
    createdAt: now,
    updatedAt: now,
  };
  if (item.idempotencyKey !== null) job.idempotencyKey = item.idempotencyKey;
  if (item.parentId !== null) job.parentId = item.parentId;
  if (item.deadline !== null) job.deadline = item.deadline;
  if (item.authorityJson !== null) job.authority = JSON.parse(item.authorityJson);
  return job;
}

export interface ConsumerRow {
  name: string;
  cursor: number | string;
  failures: number;
  last_error: string | null;
  updated_at: number | string;
}

export function rowToConsumer(name: string, row: ConsumerRow | undefined): ConsumerState {
  if (!row) return { name, cursor: 0, failures: 0 };
  const state: ConsumerState = {
    name,
    cursor: num(row.cursor),
    failures: row.failures,
    updatedAt: num(row.updated_at),
  };
  if (row.last_error !== null) state.lastError = row.last_error;
  return state;
}

export interface ConfigVersionRow {
  version: number | string;
  document: string;
  digest: string;
  previous_digest: string | null;
  kind: string;
  canary_label: string | null;
  published_by: string;
  published_at: number | string;
}

export function rowToConfigVersion(row: ConfigVersionRow): ConfigVersion {
  const v: ConfigVersion = {
    version: num(row.version),
    documentJson: row.document,
    digest: row.digest,
    previousDigest: row.previous_digest,
    kind: row.kind as ConfigVersion['kind'],
    publishedBy: row.published_by,
    publishedAt: num(row.published_at),
  };
  if (row.canary_label !== null) v.canaryLabel = row.canary_label;
  return v;
}

export interface RolloutRow {
  current_version: number | string | null;
  canary_version: number | string | null;
  canary_label: string | null;
  mode: string;
  updated_at: number | string;
}

export function rowToRollout(row: RolloutRow): Rollout {
  const r: Rollout = {
    currentVersion: row.current_version === null ? null : num(row.current_version),
    mode: row.mode === 'read_only' ? 'read_only' : 'normal',
    updatedAt: num(row.updated_at),
  };
  if (row.canary_version !== null && row.canary_label !== null) {
    r.canary = { version: num(row.canary_version), label: row.canary_label };
  }
  return r;
}
