/**
 * Open a ledger by URL: `postgres://…` / `postgresql://…` for PostgreSQL, anything else (a path, or
 * `sqlite:PATH`) for a SQLite file. Migrations are applied on open.
 */
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { OpenStoreOptions, Store } from './store.js';

export type { OpenStoreOptions };

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
