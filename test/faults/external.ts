/**
 * The harness's side of the external store the fixture task writes to (not the ledger): create its
 * tables before any worker starts, and read the effects and the audit log back for the checker.
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { EFFECTS_SCHEMA } from './fixtures/effect-tasks.js';

/** One attempted write, in the order the external store serialised the writes of its key. */
export interface AuditRow {
  id: number;
  key: string;
  jobId: string;
  step: string;
  fence: number;
  accepted: boolean;
  pid: number;
  at: number;
}

/** The value a key holds at the end. */
export interface EffectRow {
  key: string;
  jobId: string;
  fence: number;
  value: string;
  /** Accepted writes of this key. */
  writes: number;
}

export interface External {
  url: string;
  readAudit(): Promise<AuditRow[]>;
  readEffects(): Promise<EffectRow[]>;
  close(): Promise<void>;
}

interface RawAudit {
  id: number | string;
  key: string;
  job_id: string;
  step: string;
  fence: number | string;
  accepted: number | boolean;
  pid: number;
  at: number | string;
}
interface RawEffect {
  key: string;
  job_id: string;
  fence: number | string;
  value: string;
  writes: number;
}

const audit = (r: RawAudit): AuditRow => ({
  id: Number(r.id),
  key: r.key,
  jobId: r.job_id,
  step: r.step,
  fence: Number(r.fence),
  accepted: r.accepted === true || r.accepted === 1,
  pid: r.pid,
  at: Number(r.at),
});
const effect = (r: RawEffect): EffectRow => ({
  key: r.key,
  jobId: r.job_id,
  fence: Number(r.fence),
  value: r.value,
  writes: r.writes,
});

const AUDIT_SQL = 'SELECT id, key, job_id, step, fence, accepted, pid, at FROM audit ORDER BY id';
const EFFECTS_SQL = 'SELECT key, job_id, fence, value, writes FROM effects ORDER BY key';

/** Open the external store at `url` (a SQLite path or a postgres:// URL) and create its tables. */
export async function prepareExternal(url: string): Promise<External> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {});
    for (const sql of EFFECTS_SCHEMA.postgres) await pool.query(sql);
    return {
      url,
      readAudit: async () => (await pool.query<RawAudit>(AUDIT_SQL)).rows.map(audit),
      readEffects: async () => (await pool.query<RawEffect>(EFFECTS_SQL)).rows.map(effect),
      close: () => pool.end(),
    };
  }
  const db = new Database(url);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  for (const sql of EFFECTS_SCHEMA.sqlite) db.exec(sql);
  return {
    url,
    readAudit: async () => (db.prepare(AUDIT_SQL).all() as RawAudit[]).map(audit),
    readEffects: async () => (db.prepare(EFFECTS_SQL).all() as RawEffect[]).map(effect),
    close: async () => {
      db.close();
    },
  };
}
