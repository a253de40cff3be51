/** The registry on PostgreSQL: tenants, API keys and task-type contracts, beside the jobs. */
import type pg from 'pg';
import { ApiKeyNotFoundError, TenantNotFoundError } from '../errors.js';
import type { ApiKeyRecord, NewApiKey, Registry, TaskType, TaskTypeInput, Tenant } from '../registry.js';
import {
  type ApiKeyRow,
  checkNewApiKey,
  rowToApiKey,
  rowToTaskType,
  rowToTenant,
  type TaskTypeRow,
  type TenantRow,
  taskTypeParams,
} from '../registry-rows.js';
import { checkInt, checkName } from '../validate.js';
import { NOW_MS, run, type Sql, transaction } from './postgres-db.js';

const Q = {
  /** Insert the tenant unless it exists; returns the row only when this call inserted it. */
  insertTenant: {
    name: 'bulkhead_insert_tenant',
    text: `INSERT INTO bulkhead.tenants (name, created_at) VALUES ($1, ${NOW_MS}) ON CONFLICT (name) DO NOTHING RETURNING *`,
  },
  getTenant: { name: 'bulkhead_get_tenant', text: 'SELECT * FROM bulkhead.tenants WHERE name = $1' },
  listTenants: { name: 'bulkhead_list_tenants', text: 'SELECT * FROM bulkhead.tenants ORDER BY name' },
  /** The tenant, share-locked so it cannot go away before the key that names it is inserted. */
  lockTenant: {
    name: 'bulkhead_lock_tenant',
    text: 'SELECT name FROM bulkhead.tenants WHERE name = $1 FOR KEY SHARE',
  },
  insertKey: {
    name: 'bulkhead_insert_key',
    text: `INSERT INTO bulkhead.api_keys (id, tenant, roles, name, secret_hash, created_at)
           VALUES ($1, $2, $3::jsonb, $4, $5, ${NOW_MS}) RETURNING *`,
  },
  getKey: { name: 'bulkhead_get_key', text: 'SELECT * FROM bulkhead.api_keys WHERE id = $1' },
  /** Revoke once: a second revocation keeps the first time. */
  revokeKey: {
    name: 'bulkhead_revoke_key',
    text: `UPDATE bulkhead.api_keys SET revoked_at = coalesce(revoked_at, ${NOW_MS}) WHERE id = $1 RETURNING *`,
  },
  listKeys: {
    name: 'bulkhead_list_keys',
    text: 'SELECT * FROM bulkhead.api_keys ORDER BY tenant, created_at, id',
  },
  listTenantKeys: {
    name: 'bulkhead_list_tenant_keys',
    text: 'SELECT * FROM bulkhead.api_keys WHERE tenant = $1 ORDER BY created_at, id',
  },
  /** Insert or replace the contract of (name, version). */
  putTaskType: {
    name: 'bulkhead_put_task_type',
    text: `INSERT INTO bulkhead.task_types (name, version, input_schema, queue, runtime, timeout_ms, lease_ms,
             max_attempts, backoff_base_ms, backoff_max_ms, classification, source, compensable, contract, updated_at)
           VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, ${NOW_MS})
           ON CONFLICT (name, version) DO UPDATE SET input_schema = excluded.input_schema, queue = excluded.queue,
             runtime = excluded.runtime, timeout_ms = excluded.timeout_ms, lease_ms = excluded.lease_ms,
             max_attempts = excluded.max_attempts, backoff_base_ms = excluded.backoff_base_ms,
             backoff_max_ms = excluded.backoff_max_ms, classification = excluded.classification,
             contract = excluded.contract, compensable = excluded.compensable, source = excluded.source, updated_at = excluded.updated_at
           RETURNING *`,
  },
  getTaskType: {
    name: 'bulkhead_get_task_type',
    text: 'SELECT * FROM bulkhead.task_types WHERE name = $1 AND version = $2',
  },
  latestTaskType: {
    name: 'bulkhead_latest_task_type',
    text: 'SELECT * FROM bulkhead.task_types WHERE name = $1 ORDER BY version DESC LIMIT 1',
  },
  listTaskTypes: {
    name: 'bulkhead_list_task_types',
    text: 'SELECT * FROM bulkhead.task_types ORDER BY name, version',
  },
} satisfies Record<string, Sql>;

export class PostgresRegistry implements Registry {
  constructor(private readonly pool: pg.Pool) {}

  async createTenant(name: string): Promise<{ tenant: Tenant; created: boolean }> {
    checkName('tenant.name', name);
    const [inserted] = await run<TenantRow>(this.pool, Q.insertTenant, [name]);
    if (inserted) return { tenant: rowToTenant(inserted), created: true };
    const [existing] = await run<TenantRow>(this.pool, Q.getTenant, [name]);
    if (!existing) throw new Error(`tenant '${name}' conflicted on insert but cannot be read`);
    return { tenant: rowToTenant(existing), created: false };
  }

  async getTenant(name: string): Promise<Tenant | undefined> {
    const [row] = await run<TenantRow>(this.pool, Q.getTenant, [checkName('tenant.name', name)]);
    return row && rowToTenant(row);
  }

  async listTenants(): Promise<Tenant[]> {
    return (await run<TenantRow>(this.pool, Q.listTenants)).map(rowToTenant);
  }

  async createApiKey(key: NewApiKey): Promise<ApiKeyRecord> {
    const k = checkNewApiKey(key);
    return transaction(this.pool, async (client) => {
      const [tenant] = await run(client, Q.lockTenant, [k.tenant]);
      if (!tenant) throw new TenantNotFoundError(k.tenant);
      const [row] = await run<ApiKeyRow>(client, Q.insertKey, [
        k.id,
        k.tenant,
        JSON.stringify(k.roles),
        k.name,
        k.secretHash,
      ]);
      return rowToApiKey(row!);
    });
  }

  async findApiKey(id: string): Promise<(ApiKeyRecord & { secretHash: string }) | undefined> {
    if (typeof id !== 'string' || id.length > 200) return undefined;
    const [row] = await run<ApiKeyRow>(this.pool, Q.getKey, [id]);
    return row && { ...rowToApiKey(row), secretHash: row.secret_hash };
  }

  async revokeApiKey(id: string, options: { tenant?: string } = {}): Promise<ApiKeyRecord> {
    checkName('apiKey.id', id);
    return transaction(this.pool, async (client) => {
      const [row] = await run<ApiKeyRow>(client, `${Q.getKey.text} FOR UPDATE`, [id]);
      if (!row || (options.tenant !== undefined && row.tenant !== options.tenant))
        throw new ApiKeyNotFoundError(id);
      const [revoked] = await run<ApiKeyRow>(client, Q.revokeKey, [id]);
      return rowToApiKey(revoked!);
    });
  }

  async listApiKeys(options: { tenant?: string } = {}): Promise<ApiKeyRecord[]> {
    const rows =
      options.tenant === undefined
        ? await run<ApiKeyRow>(this.pool, Q.listKeys)
        : await run<ApiKeyRow>(this.pool, Q.listTenantKeys, [checkName('tenant', options.tenant)]);
    return rows.map(rowToApiKey);
  }

  async putTaskType(taskType: TaskTypeInput): Promise<TaskType> {
    const p = taskTypeParams(taskType);
    const [row] = await run<TaskTypeRow>(this.pool, Q.putTaskType, [
      p.name,
      p.version,
      p.inputSchema,
      p.queue,
      p.runtime,
      p.timeoutMs,
      p.leaseMs,
      p.maxAttempts,
      p.backoffBaseMs,
      p.backoffMaxMs,
      p.classification,
      p.source,
      p.compensable,
      p.contract,
    ]);
    return rowToTaskType(row!);
  }

  async getTaskType(name: string, version?: number): Promise<TaskType | undefined> {
    checkName('taskType.name', name);
    const [row] =
      version === undefined
        ? await run<TaskTypeRow>(this.pool, Q.latestTaskType, [name])
        : await run<TaskTypeRow>(this.pool, Q.getTaskType, [
            name,
            checkInt('taskType.version', version, 1, 1_000_000),
          ]);
    return row && rowToTaskType(row);
  }

  async listTaskTypes(): Promise<TaskType[]> {
    return (await run<TaskTypeRow>(this.pool, Q.listTaskTypes)).map(rowToTaskType);
  }
}
