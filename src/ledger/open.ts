/**
 * Open a ledger by URL: `postgres://…` / `postgresql://…` for PostgreSQL, anything else (a path, or
 * `sqlite:PATH`) for a SQLite file. Migrations are applied on open.
 */
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  /**
   * SQLite durability: `full` fsyncs every commit (WAL); `normal` may lose the last commits on power
   * loss, never on a process crash.
   * @default 'full'
   */
  synchronous?: 'full' | 'normal';
  /** PostgreSQL connections in the pool. @default 10 */
  poolSize?: number;
  /** Shown in `pg_stat_activity`. @default 'bulkhead' */
  applicationName?: string;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  if (isPostgresUrl(url)) {
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    return PostgresStore.open(url, options);
  }
  const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
  return SqliteStore.open(path, options);
}
