/**
 * Schema migrations for the PostgreSQL ledger, applied on open. Concurrent openers serialise on a
 * transaction-scoped advisory lock; each migration runs in its own transaction and is recorded in
 * `bulkhead.schema_migrations`. A database whose schema is newer than this code is refused.
 */
import type pg from 'pg';
import { SchemaTooNewError } from '../errors.js';
import { knownVersion, loadMigrations } from '../migrations.js';
import { NOW_MS, run, transaction } from './postgres-db.js';

/** The advisory lock every migrating opener takes ('BULK' in ASCII). */
const MIGRATION_LOCK = 0x42554c4b;

async function lockAndReadVersion(client: pg.PoolClient, schema: string): Promise<number> {
  await run(client, 'SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
  // Checked first, so that a role without CREATE on the database can open an existing ledger.
  const [exists] = await run<{ found: boolean }>(
    client,
    `SELECT to_regclass('${schema}.schema_migrations') IS NOT NULL AS found`,
  );
  if (!exists?.found) {
    await run(client, `CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await run(
      client,
      `CREATE TABLE ${schema}.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
    );
  }
  const [row] = await run<{ version: number }>(
    client,
    `SELECT coalesce(max(version), 0)::integer AS version FROM ${schema}.schema_migrations`,
  );
  return row?.version ?? 0;
}

/**
 * Bring the schema up to the newest version this code knows; throw `SchemaTooNewError` if it is newer.
 * `set` names the migrations (`postgres`, `evidence-postgres`) and `schema` the schema they live in.
 */
export async function migrate(
  pool: pg.Pool,
  where: string,
  set = 'postgres',
  schema = 'bulkhead',
): Promise<void> {
  const known = knownVersion(set);
  const found = await transaction(pool, (c) => lockAndReadVersion(c, schema));
  if (found > known) throw new SchemaTooNewError(found, known, where);
  for (const migration of loadMigrations(set)) {
    if (migration.version <= found) continue;
    await transaction(pool, async (client) => {
      // Another opener may have applied it while this one waited for the lock.
      const current = await lockAndReadVersion(client, schema);
      if (current > known) throw new SchemaTooNewError(current, known, where);
      if (current >= migration.version) return;
      await run(client, migration.sql);
      await run(
        client,
        `INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES ($1, $2, ${NOW_MS})`,
        [migration.version, migration.name],
      );
    });
  }
}
