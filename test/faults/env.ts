/**
 * Where a fault scenario keeps its state: a ledger and a separate external store (two SQLite files
 * in a temp dir, or two throwaway PostgreSQL databases), and a directory for the worker logs. The
 * logs are kept when a run fails (their path is in the failure message) and removed otherwise.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgDatabase } from '../helpers/pg-scratch.js';

export interface FaultEnv {
  backend: 'sqlite' | 'postgres';
  ledgerUrl: string;
  effectsUrl: string;
  logDir: string;
  cleanup(options?: { keepLogs?: boolean }): Promise<void>;
}

/** `adminUrl`: the PostgreSQL server to create the two databases on (postgres backend only). */
export async function createFaultEnv(backend: 'sqlite' | 'postgres', adminUrl?: string): Promise<FaultEnv> {
  const logDir = mkdtempSync(join(tmpdir(), `bulkhead-faults-${backend}-`));
  if (backend === 'sqlite') {
    return {
      backend,
      ledgerUrl: join(logDir, 'ledger.db'),
      effectsUrl: join(logDir, 'effects.db'),
      logDir,
      async cleanup(options) {
        if (!options?.keepLogs) rmSync(logDir, { recursive: true, force: true });
      },
    };
  }
  const ledger = await createPgDatabase(adminUrl);
  const effects = await createPgDatabase(adminUrl);
  return {
    backend,
    ledgerUrl: ledger.url,
    effectsUrl: effects.url,
    logDir,
    async cleanup(options) {
      await ledger.drop().catch(() => undefined);
      await effects.drop().catch(() => undefined);
      if (!options?.keepLogs) rmSync(logDir, { recursive: true, force: true });
    },
  };
}
