/**
 * The registry port: tenants, API keys and task-type contracts, stored beside the jobs (the same
 * database, its own tables). The control plane decides what they mean; the ledger only keeps them.
 * Key secrets are never stored: only their SHA-256, which the control plane compares in constant time.
 */
import type { Classification } from './types.js';

export const ROLES = ['admin', 'operator', 'submitter', 'approver', 'auditor', 'worker'] as const;
export type Role = (typeof ROLES)[number];

/**
 * The system tenant: the deployment's own, made at init with the first admin key. Its keys act on
 * deployment-wide things (tenants, config, the fleet, outbox pruning); every other tenant's keys see
 * only their own tenant's jobs, keys and evidence.
 */
export const SYSTEM_TENANT = 'default';

export interface Tenant {
  name: string;
  createdAt: number;
}

export interface ApiKeyRecord {
  /** Public id, part of the key text, safe to log. */
  id: string;
  tenant: string;
  roles: Role[];
  /** A label for people. */
  name: string;
  createdAt: number;
  revokedAt?: number;
}

export interface NewApiKey {
  id: string;
  tenant: string;
  roles: Role[];
  name: string;
  /** SHA-256 of the secret, hex. */
  secretHash: string;
}

/** A task type's contract: what admission validates against and the defaults its jobs take. */
export interface TaskType {
  name: string;
  version: number;
  /** JSON Schema (2020-12) of the input. */
  inputSchema: Record<string, unknown>;
  queue: string;
  runtime: string;
  timeoutMs: number;
  leaseMs: number;
  maxAttempts: number;
  backoff: { baseMs: number; maxMs: number };
  classification: Classification;
  /**
   * The whole contract as the control plane wrote it (effect, egress, evidence mode, approval, …),
   * opaque to the ledger; `{}` on rows written before contracts were stored.
   */
  contract: Record<string, unknown>;
  /** Whether the task defines `compensate`. */
  compensable: boolean;
  /** Who last registered it (a worker id, or `config`). */
  source: string;
  updatedAt: number;
}

export type TaskTypeInput = Omit<TaskType, 'updatedAt' | 'compensable' | 'contract'> & {
  compensable?: boolean;
  /** @default {} */
  contract?: Record<string, unknown>;
};

export interface Registry {
  /** Create a tenant; `created` is false when it already existed (nothing changed). */
  createTenant(name: string): Promise<{ tenant: Tenant; created: boolean }>;
  getTenant(name: string): Promise<Tenant | undefined>;
  listTenants(): Promise<Tenant[]>;

  createApiKey(key: NewApiKey): Promise<ApiKeyRecord>;
  /** The key with its secret hash, for authentication; revoked keys are returned too (check `revokedAt`). */
  findApiKey(id: string): Promise<(ApiKeyRecord & { secretHash: string }) | undefined>;
  /** Revoke a key; throws `ApiKeyNotFoundError` for an unknown id (or another tenant's, when `tenant` is given). */
  revokeApiKey(id: string, options?: { tenant?: string }): Promise<ApiKeyRecord>;
  listApiKeys(options?: { tenant?: string }): Promise<ApiKeyRecord[]>;

  /** Insert or replace the contract of (name, version). */
  putTaskType(taskType: TaskTypeInput): Promise<TaskType>;
  /** A version, or the highest version when none is given. */
  getTaskType(name: string, version?: number): Promise<TaskType | undefined>;
  listTaskTypes(): Promise<TaskType[]>;
}
