/** Open the evidence store a target names: a `postgres://` URL, or a SQLite file path (`sqlite:PATH` too). */
import { isPostgresUrl } from '../ledger/open.js';
import { SqliteEvidenceStore } from './sqlite-evidence.js';
import type { EvidenceStore, OpenEvidenceOptions } from './store.js';

export async function openEvidenceStore(
  target: string,
  options: OpenEvidenceOptions = {},
): Promise<EvidenceStore> {
  if (isPostgresUrl(target)) {
    const { PostgresEvidenceStore } = await import('./postgres-evidence.js');
    return PostgresEvidenceStore.open(target, options);
  }
  return SqliteEvidenceStore.open(
    target.startsWith('sqlite:') ? target.slice('sqlite:'.length) : target,
    options,
  );
}
