/**
 * The evidence store on SQLite: its own file (`evidence.db`), WAL, `secure_delete` so an erased
 * value's bytes are overwritten, and a WAL checkpoint after every erasure so no old page copy keeps
 * it either. Appends run in IMMEDIATE transactions (the chain's write lock).
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { migrateSqlite } from '../ledger/sqlite/sqlite-migrate.js';
import { type EntryRow, entryFromRow, rowValues } from './codec.js';
import { EvidenceUnavailableError, HoldNotFoundError } from './errors.js';
import { type Draft, type Entry, GENESIS_HASH, saltBytesFor, seal } from './format.js';
import {
  HOLD_COLUMNS,
  type HoldRow,
  holdFromRow,
  holdValues,
  placedHold,
  type VerificationRow,
  verificationFromRow,
} from './hold-rows.js';
import { checkpointDraft, eraseFields } from './sealing.js';
import type {
  AppendOptions,
  AppendResult,
  EvidenceHead,
  EvidenceStore,
  Hold,
  LastVerification,
  OpenEvidenceOptions,
} from './store.js';

/** Rows per multi-row INSERT (12 parameters each, well under SQLite's limit). */
const ROWS_PER_INSERT = 64;
const insertSql = (rows: number) =>
  `INSERT INTO entries (seq, prev_hash, hash, recorded_at, occurred_at, tenant, correlation_id, kind, subject,
    source_seq, commitments, fields) VALUES ${Array.from({ length: rows }, () => '(?,?,?,?,?,?,?,?,?,?,?,?)').join(',')}`;

/** How long `open` keeps trying a file another process holds locked. */
const OPEN_BUSY_MS = 5000;

export class SqliteEvidenceStore implements EvidenceStore {
  readonly dialect = 'sqlite' as const;
  private readonly st;

  private constructor(
    private readonly db: Database.Database,
    readonly where: string,
    private readonly options: OpenEvidenceOptions,
  ) {
    this.st = {
      insertOne: db.prepare(insertSql(1)),
      insertMany: db.prepare(insertSql(ROWS_PER_INSERT)),
      head: db.prepare('SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1'),
      shipped: db.prepare('SELECT shipped_through FROM shipping WHERE id = 1').pluck(),
      ship: db.prepare(
        'UPDATE shipping SET shipped_through = ?, updated_at = ? WHERE id = 1 AND shipped_through < ?',
      ),
      lastCheckpoint: db.prepare("SELECT * FROM entries WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1"),
      fieldsOf: db.prepare('SELECT fields FROM entries WHERE seq = ?').pluck(),
      setFields: db.prepare('UPDATE entries SET fields = ? WHERE seq = ?'),
      rows: db.prepare('SELECT * FROM entries WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?'),
    };
  }

  /**
   * Open (and migrate) the store. Another process may hold the file's write lock for a moment (a
   * shipper mid-batch, the WAL recovered after a crash): a busy file is tried again, without
   * blocking the event loop, for up to `OPEN_BUSY_MS`, then reported unavailable.
   */
  static async open(path: string, options: OpenEvidenceOptions = {}): Promise<SqliteEvidenceStore> {
    const until = Date.now() + OPEN_BUSY_MS;
    for (let pause = 20; ; pause = Math.min(pause * 2, 250)) {
      try {
        return SqliteEvidenceStore.openOnce(path, options);
      } catch (err) {
        const busy = (err as { cause?: { code?: unknown } }).cause?.code === 'SQLITE_BUSY';
        if (!busy || Date.now() + pause > until) throw err;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  private static openOnce(path: string, options: OpenEvidenceOptions): SqliteEvidenceStore {
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (err) {
      throw new EvidenceUnavailableError(
        `cannot open the evidence store at ${path}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    try {
      // Short: better-sqlite3 waits synchronously, so a long wait on a locked file would stall the
      // whole process (API, worker). A busy store is an unavailable one; the shipper retries.
      // Set first: switching to WAL needs the lock too.
      db.pragma('busy_timeout = 100');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('secure_delete = ON');
      migrateSqlite(db, path, 'evidence-sqlite');
      const store = new SqliteEvidenceStore(db, path, options);
      if (options.signer) {
        db.prepare('INSERT OR IGNORE INTO signing_keys (key_id, public_pem, added_at) VALUES (?, ?, ?)').run(
          options.signer.keyId,
          options.signer.publicKeyPem,
          Date.now(),
        );
      }
      return store;
    } catch (err) {
      db.close();
      throw unavailable(err, path);
    }
  }

  private tx<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      throw unavailable(err, this.where);
    }
  }

  async append(drafts: Draft[], options: AppendOptions = {}): Promise<AppendResult> {
    let erased = false;
    const result = this.tx(() => {
      const shipped = this.st.shipped.get() as number;
      const fresh = drafts.filter((d) => d.sourceSeq === null || d.sourceSeq > shipped);
      const entries = this.appendSealed(fresh);
      if (options.erase?.length && entries[0]) {
        for (const t of options.erase) {
          const text = this.st.fieldsOf.get(t.seq) as string | undefined;
          if (text === undefined) continue;
          const next = eraseFields(text, t.fields, (entries[t.by ?? 0] ?? entries[0]).seq);
          if (next !== text) {
            this.st.setFields.run(next, t.seq);
            erased = true;
          }
        }
      }
      if (options.shippedThrough !== undefined && options.shippedThrough > shipped)
        this.st.ship.run(options.shippedThrough, Date.now(), options.shippedThrough);
      entries.push(...this.checkpointIfDue());
      return { entries, skipped: drafts.length - fresh.length };
    });
    // The old page images of erased values must not survive in the WAL either.
    if (erased) this.db.pragma('wal_checkpoint(TRUNCATE)');
    return result;
  }

  private appendSealed(drafts: Draft[]): Entry[] {
    if (drafts.length === 0) return [];
    const head = this.st.head.get() as { seq: number; hash: string } | undefined;
    let seq = head?.seq ?? 0;
    let prev = head?.hash ?? GENESIS_HASH;
    const salts = randomBytes(saltBytesFor(drafts));
    let offset = 0;
    const now = Date.now();
    const out: Entry[] = [];
    for (const d of drafts) {
      const n = saltBytesFor([d]);
      const e = seal(d, ++seq, prev, now, salts.subarray(offset, offset + n));
      offset += n;
      prev = e.hash;
      out.push(e);
    }
    // Many rows per statement: binding dominates the cost of a row otherwise.
    let i = 0;
    for (; i + ROWS_PER_INSERT <= out.length; i += ROWS_PER_INSERT) {
      const params: unknown[] = [];
      for (let k = i; k < i + ROWS_PER_INSERT; k++) params.push(...rowValues(out[k] as Entry));
      this.st.insertMany.run(params);
    }
    for (; i < out.length; i++) {
      const params: unknown[] = [];
      params.push(...rowValues(out[i] as Entry));
      this.st.insertOne.run(params);
    }
    return out;
  }

  private checkpointIfDue(force = false): Entry[] {
    const signer = this.options.signer;
    if (!signer) return [];
    const head = this.st.head.get() as { seq: number; hash: string } | undefined;
    if (!head) return [];
    const last = this.st.lastCheckpoint.get() as EntryRow | undefined;
    const since = head.seq - (last?.seq ?? 0);
    if (since === 0 || (!force && since < (this.options.checkpointEvery ?? 1000))) return [];
    return this.appendSealed([checkpointDraft(signer, head.seq, head.hash, Date.now())]);
  }

  async probe(): Promise<void> {
    this.tx(() => this.db.prepare('UPDATE shipping SET updated_at = ? WHERE id = 1').run(Date.now()));
  }

  async checkpoint(): Promise<Entry | null> {
    return this.tx(() => this.checkpointIfDue(true)[0] ?? null);
  }

  async head(): Promise<EvidenceHead> {
    return this.read(() => {
      const h = this.st.head.get() as { seq: number; hash: string } | undefined;
      return {
        seq: h?.seq ?? 0,
        hash: h?.hash ?? GENESIS_HASH,
        shippedThrough: this.st.shipped.get() as number,
      };
    });
  }

  async lastCheckpoint(): Promise<Entry | null> {
    return this.read(() => {
      const row = this.st.lastCheckpoint.get() as EntryRow | undefined;
      return row ? entryFromRow(row) : null;
    });
  }

  async readRows(fromSeq: number, limit: number, toSeq = Number.MAX_SAFE_INTEGER): Promise<EntryRow[]> {
    return this.read(() => this.st.rows.all(fromSeq, toSeq, limit) as EntryRow[]);
  }

  async byCorrelation(correlationId: string, options: { tenant?: string } = {}): Promise<Entry[]> {
    return this.read(() => {
      const rows = (
        options.tenant === undefined
          ? this.db.prepare('SELECT * FROM entries WHERE correlation_id = ? ORDER BY seq').all(correlationId)
          : this.db
              .prepare('SELECT * FROM entries WHERE correlation_id = ? AND tenant = ? ORDER BY seq')
              .all(correlationId, options.tenant)
      ) as EntryRow[];
      return rows.map(entryFromRow);
    });
  }

  async countKind(kind: string): Promise<number> {
    return this.read(
      () => this.db.prepare('SELECT count(*) FROM entries WHERE kind = ?').pluck().get(kind) as number,
    );
  }

  async byKind(kinds: string[], options: { afterSeq?: number; limit?: number } = {}): Promise<Entry[]> {
    return this.read(() => {
      const rows = this.db
        .prepare(
          `SELECT * FROM entries WHERE kind IN (${kinds.map(() => '?').join(',')}) AND seq > ? ORDER BY seq LIMIT ?`,
        )
        .all(...kinds, options.afterSeq ?? 0, options.limit ?? 1000) as EntryRow[];
      return rows.map(entryFromRow);
    });
  }

  async firstSeqAtOrAfter(at: number): Promise<number> {
    return this.read(() => {
      // occurredAt is not monotonic in seq (late shipping), recordedAt is: walk by recorded time.
      const row = this.db
        .prepare('SELECT seq FROM entries WHERE recorded_at >= ? ORDER BY seq LIMIT 1')
        .pluck()
        .get(at) as number | undefined;
      if (row !== undefined) return row;
      return ((this.st.head.get() as { seq: number } | undefined)?.seq ?? 0) + 1;
    });
  }

  async signingKeys(): Promise<Map<string, string>> {
    return this.read(() => {
      const rows = this.db.prepare('SELECT key_id, public_pem FROM signing_keys').all() as Array<{
        key_id: string;
        public_pem: string;
      }>;
      return new Map(rows.map((r) => [r.key_id, r.public_pem]));
    });
  }

  async placeHold(
    hold: Omit<Hold, 'placedSeq' | 'placedAt' | 'releasedSeq' | 'releasedAt'>,
    entry: Draft,
  ): Promise<Hold> {
    return this.tx(() => {
      const [e] = this.appendSealed([entry]);
      const placed = e as Entry;
      this.db
        .prepare(`INSERT INTO holds (${HOLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(holdValues(hold, placed, (b) => (b ? 1 : 0)));
      this.checkpointIfDue();
      return placedHold(hold, placed);
    });
  }

  async releaseHold(id: string, entry: Draft): Promise<Hold> {
    return this.tx(() => {
      const row = this.db.prepare('SELECT * FROM holds WHERE id = ? AND released_seq IS NULL').get(id) as
        | HoldRow
        | undefined;
      if (!row) throw new HoldNotFoundError(id);
      const [e] = this.appendSealed([entry]);
      const released = e as Entry;
      this.db
        .prepare('UPDATE holds SET released_seq = ?, released_at = ? WHERE id = ?')
        .run(released.seq, released.recordedAt, id);
      this.checkpointIfDue();
      return holdFromRow({ ...row, released_seq: released.seq, released_at: released.recordedAt });
    });
  }

  async holds(options: { active?: boolean } = {}): Promise<Hold[]> {
    return this.read(() =>
      (
        this.db
          .prepare(
            `SELECT * FROM holds ${options.active ? 'WHERE released_seq IS NULL' : ''} ORDER BY placed_seq`,
          )
          .all() as HoldRow[]
      ).map(holdFromRow),
    );
  }

  async recordVerification(v: LastVerification): Promise<void> {
    this.tx(() =>
      this.db
        .prepare(
          `INSERT INTO verifications (id, at, ok, entries, head_seq, first_bad_seq, reason) VALUES (1, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET at = excluded.at, ok = excluded.ok, entries = excluded.entries,
             head_seq = excluded.head_seq, first_bad_seq = excluded.first_bad_seq, reason = excluded.reason`,
        )
        .run(v.at, v.ok ? 1 : 0, v.entries, v.headSeq, v.firstBadSeq, v.reason),
    );
  }

  async lastVerification(): Promise<LastVerification | null> {
    return this.read(() => {
      const r = this.db.prepare('SELECT * FROM verifications WHERE id = 1').get() as
        | VerificationRow
        | undefined;
      return r ? verificationFromRow(r) : null;
    });
  }

  private read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw unavailable(err, this.where);
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/** SQLite's own failures (locked, I/O, full, corrupt) mean the store is unavailable; ours pass through. */
function unavailable(err: unknown, where: string): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('SQLITE_'))
    return new EvidenceUnavailableError(
      `the evidence store at ${where} is unavailable: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  return err;
}
