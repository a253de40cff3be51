/** The registry on SQLite: tenants, API keys and task-type contracts. */
import type Database from 'better-sqlite3';
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

export class SqliteRegistry implements Registry {
  private readonly q;

  constructor(
    db: Database.Database,
    /** Runs a write in the store's group commit. */
    private readonly write: <T>(fn: () => T) => Promise<T>,
  ) {
    const p = (sql: string): Database.Statement => db.prepare(sql);
    this.q = {
      insertTenant: p('INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
      getTenant: p('SELECT * FROM tenants WHERE name = ?'),
      listTenants: p('SELECT * FROM tenants ORDER BY name'),
      insertKey: p(`INSERT INTO api_keys (id, tenant, roles, name, secret_hash, created_at)
        VALUES (@id, @tenant, @roles, @name, @secretHash, @now)`),
      getKey: p('SELECT * FROM api_keys WHERE id = ?'),
      revokeKey: p('UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?'),
      listKeys: p('SELECT * FROM api_keys ORDER BY tenant, created_at, id'),
      listTenantKeys: p('SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_at, id'),
      putTaskType:
        p(`INSERT INTO task_types (name, version, input_schema, queue, runtime, timeout_ms, lease_ms,
          max_attempts, backoff_base_ms, backoff_max_ms, classification, contract, compensable, source, updated_at)
        VALUES (@name, @version, @inputSchema, @queue, @runtime, @timeoutMs, @leaseMs, @maxAttempts, @backoffBaseMs,
          @backoffMaxMs, @classification, @contract, @compensable, @source, @now)
        ON CONFLICT (name, version) DO UPDATE SET input_schema = excluded.input_schema, queue = excluded.queue,
          runtime = excluded.runtime, timeout_ms = excluded.timeout_ms, lease_ms = excluded.lease_ms,
          max_attempts = excluded.max_attempts, backoff_base_ms = excluded.backoff_base_ms,
          backoff_max_ms = excluded.backoff_max_ms, classification = excluded.classification,
          contract = excluded.contract, compensable = excluded.compensable, source = excluded.source, updated_at = excluded.updated_at
        RETURNING *`),
      getTaskType: p('SELECT * FROM task_types WHERE name = ? AND version = ?'),
      latestTaskType: p('SELECT * FROM task_types WHERE name = ? ORDER BY version DESC LIMIT 1'),
      listTaskTypes: p('SELECT * FROM task_types ORDER BY name, version'),
    };
  }

  async createTenant(name: string): Promise<{ tenant: Tenant; created: boolean }> {
    checkName('tenant.name', name);
    return this.write(() => {
      const info = this.q.insertTenant.run(name, Date.now());
      return { tenant: rowToTenant(this.q.getTenant.get(name) as TenantRow), created: info.changes === 1 };
    });
  }

  async getTenant(name: string): Promise<Tenant | undefined> {
    const row = this.q.getTenant.get(checkName('tenant.name', name)) as TenantRow | undefined;
    return row && rowToTenant(row);
  }

  async listTenants(): Promise<Tenant[]> {
    return (this.q.listTenants.all() as TenantRow[]).map(rowToTenant);
  }

  async createApiKey(key: NewApiKey): Promise<ApiKeyRecord> {
    const k = checkNewApiKey(key);
    return this.write(() => {
      if (!this.q.getTenant.get(k.tenant)) throw new TenantNotFoundError(k.tenant);
      this.q.insertKey.run({ ...k, roles: JSON.stringify(k.roles), now: Date.now() });
      return rowToApiKey(this.q.getKey.get(k.id) as ApiKeyRow);
    });
  }

  async findApiKey(id: string): Promise<(ApiKeyRecord & { secretHash: string }) | undefined> {
    if (typeof id !== 'string' || id.length > 200) return undefined;
    const row = this.q.getKey.get(id) as ApiKeyRow | undefined;
    return row && { ...rowToApiKey(row), secretHash: row.secret_hash };
  }

  async revokeApiKey(id: string, options: { tenant?: string } = {}): Promise<ApiKeyRecord> {
    checkName('apiKey.id', id);
    return this.write(() => {
      const row = this.q.getKey.get(id) as ApiKeyRow | undefined;
      if (!row || (options.tenant !== undefined && row.tenant !== options.tenant))
        throw new ApiKeyNotFoundError(id);
      this.q.revokeKey.run(Date.now(), id);
      return rowToApiKey(this.q.getKey.get(id) as ApiKeyRow);
    });
  }

  async listApiKeys(options: { tenant?: string } = {}): Promise<ApiKeyRecord[]> {
    const rows = (
      options.tenant === undefined
        ? this.q.listKeys.all()
        : this.q.listTenantKeys.all(checkName('tenant', options.tenant))
    ) as ApiKeyRow[];
    return rows.map(rowToApiKey);
  }

  async putTaskType(taskType: TaskTypeInput): Promise<TaskType> {
    const params = taskTypeParams(taskType);
    return this.write(() =>
      rowToTaskType(
        this.q.putTaskType.get({
          ...params,
          compensable: params.compensable ? 1 : 0,
          now: Date.now(),
        }) as TaskTypeRow,
      ),
    );
  }

  async getTaskType(name: string, version?: number): Promise<TaskType | undefined> {
    checkName('taskType.name', name);
    const row = (
      version === undefined
        ? this.q.latestTaskType.get(name)
        : this.q.getTaskType.get(name, checkInt('taskType.version', version, 1, 1_000_000))
    ) as TaskTypeRow | undefined;
    return row && rowToTaskType(row);
  }

  async listTaskTypes(): Promise<TaskType[]> {
    return (this.q.listTaskTypes.all() as TaskTypeRow[]).map(rowToTaskType);
  }
}
