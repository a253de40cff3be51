/** Apply pending SQLite migrations, one transaction each; refuse a schema newer than the code. */
import type Database from 'better-sqlite3';
import { SchemaTooNewError } from '../errors.js';
import { knownVersion, loadMigrations } from '../migrations.js';

export function migrateSqlite(db: Database.Database, where: string, set = 'sqlite'): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const current = (): number =>
    (db.prepare('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as { v: number }).v;
  const known = knownVersion(set);
  const found = current();
  if (found > known) throw new SchemaTooNewError(found, known, where);
  for (const m of loadMigrations(set)) {
    // IMMEDIATE takes the write lock first, so two processes opening the same file apply each once.
    db.transaction(() => {
      if (current() >= m.version) return;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        Date.now(),
      );
    }).immediate();
  }
  return current();
}
