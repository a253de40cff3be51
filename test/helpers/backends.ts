/**
 * Every ledger behaviour runs against both backends. Each test file gets its own throwaway database
 * (PostgreSQL) or file (SQLite) and drops it afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type OpenStoreOptions, openStore } from '../../src/ledger/open.js';
import type { Dialect, Store } from '../../src/ledger/store.js';
import { createPgDatabase, pgAdminUrl } from './pg-scratch.js';

export interface TestStore {
  store: Store;
  /** The URL or path the store was opened with, for other processes. */
  url: string;
  /** Open another store on the same data (another "process" in the same test). */
  reopen(options?: OpenStoreOptions): Promise<Store>;
  cleanup(): Promise<void>;
}

export interface Backend {
  dialect: Dialect;
  create(options?: OpenStoreOptions): Promise<TestStore>;
}

export { pgAdminUrl };

/** A fresh directory under the system temp dir; `remove` deletes it. */
export function tempDir(prefix = 'bulkhead-test-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const sqlite: Backend = {
  dialect: 'sqlite',
  async create(options) {
    const tmp = tempDir();
    const url = join(tmp.dir, 'ledger.db');
    const opened: Store[] = [];
    const open = async (o?: OpenStoreOptions) => {
      const s = await openStore(url, { ...options, ...o });
      opened.push(s);
      return s;
    };
    const store = await open();
    return {
      store,
      url,
      reopen: open,
      async cleanup() {
        for (const s of opened) await s.close();
        tmp.remove();
      },
    };
  },
};

const postgres: Backend = {
  dialect: 'postgres',
  async create(options) {
    const db = await createPgDatabase();
    const opened: Store[] = [];
    const open = async (o?: OpenStoreOptions) => {
      const s = await openStore(db.url, { ...options, ...o });
      opened.push(s);
      return s;
    };
    const store = await open();
    return {
      store,
      url: db.url,
      reopen: open,
      async cleanup() {
        for (const s of opened) await s.close();
        await db.drop();
      },
    };
  },
};

/** The backends to run: SQLite always, PostgreSQL when the test run has a server. */
export function backends(): Backend[] {
  return pgAdminUrl ? [sqlite, postgres] : [sqlite];
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
