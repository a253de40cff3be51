/**
 * Migrations are numbered, append-only `.sql` files per dialect under `migrations/<dialect>/`
 * (`0001_ledger.sql`, …), each applied in its own transaction and recorded in `schema_migrations`.
 * A file is never edited after it has shipped; a change is a new file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Dialect } from './store.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The package root holds `migrations/`; this file is `dist/src/ledger/migrations.js` once built. */
const MIGRATIONS_ROOT = fileURLToPath(new URL('../../../migrations/', import.meta.url));

const cache = new Map<string, Migration[]>();

/** The migrations of one dialect (or of another set, such as `evidence-sqlite`), in order. */
export function loadMigrations(set: Dialect | string): Migration[] {
  const cached = cache.get(set);
  if (cached) return cached;
  const dir = `${MIGRATIONS_ROOT}${set}/`;
  const migrations = readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file, i) => {
      const version = Number(file.slice(0, 4));
      if (version !== i + 1)
        throw new Error(
          `migration ${dir}${file}: expected version ${i + 1} (numbers must run 1, 2, 3… with no gaps)`,
        );
      return { version, name: file.slice(5, -4), sql: readFileSync(dir + file, 'utf8') };
    });
  cache.set(set, migrations);
  return migrations;
}

/** The newest schema version this code knows for a set. */
export function knownVersion(set: Dialect | string): number {
  return loadMigrations(set).length;
}
