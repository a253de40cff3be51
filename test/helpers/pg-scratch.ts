/**
 * Throwaway PostgreSQL databases for tests and benchmarks: each caller gets its own database on the
 * server named by BULKHEAD_TEST_PG_URL (an admin URL) and drops it when done.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const pgAdminUrl = process.env.BULKHEAD_TEST_PG_URL || undefined;

/** A fresh PostgreSQL database on the test server; `drop` removes it (terminating stragglers). */
export async function createPgDatabase(
  adminUrl = pgAdminUrl,
): Promise<{ url: string; drop(): Promise<void> }> {
  if (!adminUrl) throw new Error('BULKHEAD_TEST_PG_URL is not set');
  const name = `bulkhead_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
