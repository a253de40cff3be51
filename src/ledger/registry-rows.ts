/**
 * Registry argument checks and row mappers shared by both adapters (same column names in both).
 */

import {
  type ApiKeyRecord,
  type NewApiKey,
  ROLES,
  type Role,
  type TaskType,
  type TaskTypeInput,
  type Tenant,
} from './registry.js';
import { num, parseJson } from './rows.js';
import { CLASSIFICATIONS, classificationRank } from './types.js';
import { checkClassification, checkInt, checkName, fail, LIMITS, toJson } from './validate.js';

export function checkRoles(path: string, roles: unknown): Role[] {
  if (!Array.isArray(roles) || roles.length === 0)
    fail(path, `must be a non-empty array of roles (${ROLES.join(', ')})`);
  return roles.map((r, i) => {
    if (!(ROLES as readonly unknown[]).includes(r))
      fail(`${path}[${i}]`, `unknown role '${String(r)}'; roles are ${ROLES.join(', ')}`);
    return r as Role;
  });
}

export function checkNewApiKey(key: NewApiKey): NewApiKey {
  if (typeof key !== 'object' || key === null) fail('apiKey', 'must be an object');
  if (typeof key.secretHash !== 'string' || !/^[0-9a-f]{64}$/.test(key.secretHash)) {
    fail('apiKey.secretHash', 'must be a SHA-256 hex digest');
  }
  if (typeof key.name !== 'string' || key.name.length > 200)
    fail('apiKey.name', 'must be a string of at most 200 characters');
  return {
    id: checkName('apiKey.id', key.id),
    tenant: checkName('apiKey.tenant', key.tenant),
    roles: [...new Set(checkRoles('apiKey.roles', key.roles))],
    name: key.name,
    secretHash: key.secretHash,
  };
}

/** A task-type contract with its JSON columns serialised, ready for the SQL. */
export interface TaskTypeParams {
  name: string;
  version: number;
  inputSchema: string;
  queue: string;
  runtime: string;
  timeoutMs: number;
  leaseMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  classification: number;
  contract: string;
  compensable: boolean;
  source: string;
}

export function taskTypeParams(t: TaskTypeInput): TaskTypeParams {
  if (typeof t !== 'object' || t === null) fail('taskType', 'must be an object');
  if (typeof t.inputSchema !== 'object' || t.inputSchema === null || Array.isArray(t.inputSchema)) {
    fail('taskType.inputSchema', 'must be a JSON Schema object');
  }
  if (typeof t.runtime !== 'string' || !/^[a-z][a-z-]{0,30}$/.test(t.runtime))
    fail('taskType.runtime', 'must be a runtime name');
  if (typeof t.backoff !== 'object' || t.backoff === null)
    fail('taskType.backoff', 'must be { baseMs, maxMs }');
  return {
    name: checkName('taskType.name', t.name),
    version: checkInt('taskType.version', t.version, 1, 1_000_000),
    inputSchema: toJson('taskType.inputSchema', t.inputSchema, 256 * 1024),
    queue: checkName('taskType.queue', t.queue),
    runtime: t.runtime,
    timeoutMs: checkInt('taskType.timeoutMs', t.timeoutMs, 1, 7 * LIMITS.maxLeaseMs),
    leaseMs: checkInt('taskType.leaseMs', t.leaseMs, LIMITS.minLeaseMs, LIMITS.maxLeaseMs),
    maxAttempts: checkInt('taskType.maxAttempts', t.maxAttempts, 1, LIMITS.maxAttempts),
    backoffBaseMs: checkInt('taskType.backoff.baseMs', t.backoff.baseMs, 0, LIMITS.maxLeaseMs),
    backoffMaxMs: checkInt('taskType.backoff.maxMs', t.backoff.maxMs, 0, 7 * LIMITS.maxLeaseMs),
    classification: classificationRank(checkClassification('taskType.classification', t.classification)),
    contract: toJson('taskType.contract', t.contract ?? {}, 64 * 1024),
    compensable: t.compensable === true,
    source: checkName('taskType.source', t.source),
  };
}

export interface TenantRow {
  name: string;
  created_at: number | string;
}

export const rowToTenant = (r: TenantRow): Tenant => ({ name: r.name, createdAt: num(r.created_at) });

export interface ApiKeyRow {
  id: string;
  tenant: string;
  roles: unknown;
  name: string;
  secret_hash: string;
  created_at: number | string;
  revoked_at: number | string | null;
}

export function rowToApiKey(r: ApiKeyRow): ApiKeyRecord {
  const rec: ApiKeyRecord = {
    id: r.id,
    tenant: r.tenant,
    roles: parseJson(r.roles) as Role[],
    name: r.name,
    createdAt: num(r.created_at),
  };
  if (r.revoked_at !== null) rec.revokedAt = num(r.revoked_at);
  return rec;
}

export interface TaskTypeRow {
  name: string;
  version: number;
  input_schema: unknown;
  queue: string;
  runtime: string;
  timeout_ms: number | string;
  lease_ms: number;
  max_attempts: number;
  backoff_base_ms: number;
  backoff_max_ms: number | string;
  classification: number;
  contract: unknown;
  compensable: boolean | number;
  source: string;
  updated_at: number | string;
}

export function rowToTaskType(r: TaskTypeRow): TaskType {
  return {
    name: r.name,
    version: r.version,
    inputSchema: parseJson(r.input_schema) as Record<string, unknown>,
    queue: r.queue,
    runtime: r.runtime,
    timeoutMs: num(r.timeout_ms),
    leaseMs: r.lease_ms,
    maxAttempts: r.max_attempts,
    backoff: { baseMs: r.backoff_base_ms, maxMs: num(r.backoff_max_ms) },
    classification: CLASSIFICATIONS[r.classification] ?? 'restricted',
    contract: (parseJson(r.contract) ?? {}) as Record<string, unknown>,
    compensable: r.compensable === true || r.compensable === 1,
    source: r.source,
    updatedAt: num(r.updated_at),
  };
}
