/** A throwaway ledger for a benchmark: a SQLite file in a temp dir, or a PostgreSQL database. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/ledger/open.js';
import type { Store } from '../src/ledger/store.js';
import { createPgDatabase } from '../test/helpers/pg-scratch.js';

/** PostgreSQL admin URL: BULKHEAD_BENCH_PG_URL, default the local server. */
export const PG_ADMIN = process.env.BULKHEAD_BENCH_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

export async function openBenchStore(backend: string): Promise<{ store: Store; cleanup(): Promise<void> }> {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'bulkhead-bench-'));
    const store = await openStore(join(dir, 'ledger.db'));
    return {
      store,
      cleanup: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const db = await createPgDatabase(PG_ADMIN);
  const store = await openStore(db.url);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await db.drop();
    },
  };
}
