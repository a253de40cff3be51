/**
 * The evidence store on PostgreSQL (schema `bulkhead_evidence`), in any database the operator
 * chooses, with its own credentials. Appenders serialise on the `head` row (FOR UPDATE), so several
 * processes can append to one chain; each batch is one multi-row INSERT.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { StoreUnavailableError } from '../ledger/errors.js';
import { createPool, redactUrl, run, transaction } from '../ledger/postgres/postgres-db.js';
import { migrate } from '../ledger/postgres/postgres-migrate.js';
import { type EntryRow, entryFromRow, rowValues } from './codec.js';
import { EvidenceUnavailableError, HoldNotFoundError } from './errors.js';
import { type Draft, type Entry, saltBytesFor, seal } from './format.js';
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

const S = 'bulkhead_evidence';
const COLUMNS =
  'seq, prev_hash, hash, recorded_at, occurred_at, tenant, correlation_id, kind, subject, source_seq, commitments, fields';
const INSERT = `INSERT INTO ${S}.entries (${COLUMNS})
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[])`;

interface HeadRow {
  seq: number;
  hash: string;
  shipped_through: number;
}

export class PostgresEvidenceStore implements EvidenceStore {
  readonly dialect = 'postgres' as const;

  private constructor(
    private readonly pool: pg.Pool,
    readonly where: string,
    private readonly options: OpenEvidenceOptions,
  ) {}

  static async open(
    url: string,
    options: OpenEvidenceOptions & { poolSize?: number } = {},
  ): Promise<PostgresEvidenceStore> {
    const where = redactUrl(url);
    const pool = createPool(url, { poolSize: options.poolSize ?? 4, applicationName: 'bulkhead-evidence' });
    const store = new PostgresEvidenceStore(pool, where, options);
    try {
      await store.guard(async () => {
        await migrate(pool, where, 'evidence-postgres', S);
        if (options.signer)
          await run(
            pool,
            `INSERT INTO ${S}.signing_keys (key_id, public_pem, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
            [options.signer.keyId, options.signer.publicKeyPem, Date.now()],
          );
      });
      return store;
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreUnavailableError)
        throw new EvidenceUnavailableError(
          `the evidence store at ${this.where} is unavailable: ${err.message}`,
          {
            cause: err,
          },
        );
      throw err;
    }
  }

  private tx<T>(fn: (c: pg.PoolClient, head: HeadRow) => Promise<T>): Promise<T> {
    return this.guard(() =>
      transaction(this.pool, async (c) => {
        const [head] = await run<HeadRow>(
          c,
          `SELECT seq, hash, shipped_through FROM ${S}.head WHERE id = 1 FOR UPDATE`,
        );
        return fn(c, head as HeadRow);
      }),
    );
  }

  async append(drafts: Draft[], options: AppendOptions = {}): Promise<AppendResult> {
    return this.tx(async (c, head) => {
      const fresh = drafts.filter((d) => d.sourceSeq === null || d.sourceSeq > head.shipped_through);
      const entries = await this.insert(c, head, fresh);
      const firstEntry = entries[0];
      if (options.erase?.length && firstEntry) {
        const rows = await run<{ seq: number; fields: string }>(
          c,
          `SELECT seq, fields FROM ${S}.entries WHERE seq = ANY($1::bigint[]) FOR UPDATE`,
          [options.erase.map((t) => t.seq)],
        );
        const targets = new Map(
          options.erase.map((t) => [t.seq, { fields: t.fields, by: (entries[t.by ?? 0] ?? firstEntry).seq }]),
        );
        const seqs: number[] = [];
        const texts: string[] = [];
        for (const r of rows) {
          const t = targets.get(r.seq);
          const next = t ? eraseFields(r.fields, t.fields, t.by) : r.fields;
          if (next !== r.fields) {
            seqs.push(r.seq);
            texts.push(next);
          }
        }
        if (seqs.length)
          await run(
            c,
            `UPDATE ${S}.entries e SET fields = u.fields FROM unnest($1::bigint[], $2::text[]) AS u(seq, fields) WHERE e.seq = u.seq`,
            [seqs, texts],
          );
      }
      if (options.shippedThrough !== undefined && options.shippedThrough > head.shipped_through)
        head.shipped_through = options.shippedThrough;
      entries.push(...(await this.checkpointIfDue(c, head, false)));
      await this.saveHead(c, head);
      return { entries, skipped: drafts.length - fresh.length };
    });
  }

  /** Seal and insert; moves `head` (in memory) to the last entry. */
  private async insert(c: pg.PoolClient, head: HeadRow, drafts: Draft[]): Promise<Entry[]> {
    if (drafts.length === 0) return [];
    const salts = randomBytes(saltBytesFor(drafts));
    const now = Date.now();
    let offset = 0;
    const entries: Entry[] = [];
    const cols: unknown[][] = Array.from({ length: 12 }, () => []);
    for (const d of drafts) {
      const n = saltBytesFor([d]);
      const e = seal(d, Number(head.seq) + 1, head.hash, now, salts.subarray(offset, offset + n));
      offset += n;
      head.seq = e.seq;
      head.hash = e.hash;
      entries.push(e);
      const values = rowValues(e);
      for (let i = 0; i < 12; i++) (cols[i] as unknown[]).push(values[i]);
    }
    await run(c, INSERT, cols);
    return entries;
  }

  private async saveHead(c: pg.PoolClient, head: HeadRow): Promise<void> {
    await run(
      c,
      `UPDATE ${S}.head SET seq = $1, hash = $2, shipped_through = $3, updated_at = $4 WHERE id = 1`,
      [head.seq, head.hash, head.shipped_through, Date.now()],
    );
  }

  private async checkpointIfDue(c: pg.PoolClient, head: HeadRow, force: boolean): Promise<Entry[]> {
    const signer = this.options.signer;
    if (!signer || Number(head.seq) === 0) return [];
    const [last] = await run<{ seq: number | null }>(
      c,
      `SELECT max(seq) AS seq FROM ${S}.entries WHERE kind = 'checkpoint'`,
    );
    const since = Number(head.seq) - Number(last?.seq ?? 0);
    if (since === 0 || (!force && since < (this.options.checkpointEvery ?? 1000))) return [];
    return this.insert(c, head, [checkpointDraft(signer, Number(head.seq), head.hash, Date.now())]);
  }

  async probe(): Promise<void> {
    await this.guard(() => run(this.pool, `UPDATE ${S}.head SET updated_at = $1 WHERE id = 1`, [Date.now()]));
  }

  async checkpoint(): Promise<Entry | null> {
    return this.tx(async (c, head) => {
      const [e] = await this.checkpointIfDue(c, head, true);
      if (e) await this.saveHead(c, head);
      return e ?? null;
    });
  }

  async head(): Promise<EvidenceHead> {
    return this.guard(async () => {
      const [h] = await run<HeadRow>(
        this.pool,
        `SELECT seq, hash, shipped_through FROM ${S}.head WHERE id = 1`,
      );
      return {
        seq: Number(h?.seq ?? 0),
        hash: String(h?.hash),
        shippedThrough: Number(h?.shipped_through ?? 0),
      };
    });
  }

  async lastCheckpoint(): Promise<Entry | null> {
    return this.guard(async () => {
      const [row] = await run<EntryRow>(
        this.pool,
        `SELECT * FROM ${S}.entries WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1`,
      );
      return row ? entryFromRow(row) : null;
    });
  }

  async readRows(fromSeq: number, limit: number, toSeq = Number.MAX_SAFE_INTEGER): Promise<EntryRow[]> {
    return this.guard(() =>
      run<EntryRow>(
        this.pool,
        `SELECT * FROM ${S}.entries WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
        [fromSeq, toSeq, limit],
      ),
    );
  }

  async byCorrelation(correlationId: string, options: { tenant?: string } = {}): Promise<Entry[]> {
    return this.guard(async () => {
      const rows =
        options.tenant === undefined
          ? await run<EntryRow>(
              this.pool,
              `SELECT * FROM ${S}.entries WHERE correlation_id = $1 ORDER BY seq`,
              [correlationId],
            )
          : await run<EntryRow>(
              this.pool,
              `SELECT * FROM ${S}.entries WHERE correlation_id = $1 AND tenant = $2 ORDER BY seq`,
              [correlationId, options.tenant],
            );
      return rows.map(entryFromRow);
    });
  }

  async countKind(kind: string): Promise<number> {
    return this.guard(async () => {
      const [row] = await run<{ n: number }>(
        this.pool,
        `SELECT count(*)::int AS n FROM ${S}.entries WHERE kind = $1`,
        [kind],
      );
      return Number(row?.n ?? 0);
    });
  }

  async byKind(kinds: string[], options: { afterSeq?: number; limit?: number } = {}): Promise<Entry[]> {
    return this.guard(async () =>
      (
        await run<EntryRow>(
          this.pool,
          `SELECT * FROM ${S}.entries WHERE kind = ANY($1::text[]) AND seq > $2 ORDER BY seq LIMIT $3`,
          [kinds, options.afterSeq ?? 0, options.limit ?? 1000],
        )
      ).map(entryFromRow),
    );
  }

  async firstSeqAtOrAfter(at: number): Promise<number> {
    return this.guard(async () => {
      const [row] = await run<{ seq: number | null }>(
        this.pool,
        `SELECT coalesce((SELECT seq FROM ${S}.entries WHERE recorded_at >= $1 ORDER BY seq LIMIT 1),
                         (SELECT seq + 1 FROM ${S}.head WHERE id = 1)) AS seq`,
        [at],
      );
      return Number(row?.seq ?? 1);
    });
  }

  async signingKeys(): Promise<Map<string, string>> {
    return this.guard(async () => {
      const rows = await run<{ key_id: string; public_pem: string }>(
        this.pool,
        `SELECT key_id, public_pem FROM ${S}.signing_keys`,
      );
      return new Map(rows.map((r) => [r.key_id, r.public_pem]));
    });
  }

  async placeHold(
    hold: Omit<Hold, 'placedSeq' | 'placedAt' | 'releasedSeq' | 'releasedAt'>,
    entry: Draft,
  ): Promise<Hold> {
    return this.tx(async (c, head) => {
      const [placed] = (await this.insert(c, head, [entry])) as [Entry];
      await run(
        c,
        `INSERT INTO ${S}.holds (${HOLD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        holdValues(hold, placed),
      );
      await this.checkpointIfDue(c, head, false);
      await this.saveHead(c, head);
      return placedHold(hold, placed);
    });
  }

  async releaseHold(id: string, entry: Draft): Promise<Hold> {
    return this.tx(async (c, head) => {
      const [row] = await run<HoldRow>(
        c,
        `SELECT * FROM ${S}.holds WHERE id = $1 AND released_seq IS NULL FOR UPDATE`,
        [id],
      );
      if (!row) throw new HoldNotFoundError(id);
      const [released] = (await this.insert(c, head, [entry])) as [Entry];
      await run(c, `UPDATE ${S}.holds SET released_seq = $1, released_at = $2 WHERE id = $3`, [
        released.seq,
        released.recordedAt,
        id,
      ]);
      await this.checkpointIfDue(c, head, false);
      await this.saveHead(c, head);
      return holdFromRow({ ...row, released_seq: released.seq, released_at: released.recordedAt });
    });
  }

  async holds(options: { active?: boolean } = {}): Promise<Hold[]> {
    return this.guard(async () =>
      (
        await run<HoldRow>(
          this.pool,
          `SELECT * FROM ${S}.holds ${options.active ? 'WHERE released_seq IS NULL' : ''} ORDER BY placed_seq`,
        )
      ).map(holdFromRow),
    );
  }

  async recordVerification(v: LastVerification): Promise<void> {
    await this.guard(() =>
      run(
        this.pool,
        `INSERT INTO ${S}.verifications (id, at, ok, entries, head_seq, first_bad_seq, reason) VALUES (1, $1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET at = excluded.at, ok = excluded.ok, entries = excluded.entries,
           head_seq = excluded.head_seq, first_bad_seq = excluded.first_bad_seq, reason = excluded.reason`,
        [v.at, v.ok, v.entries, v.headSeq, v.firstBadSeq, v.reason],
      ),
    );
  }

  async lastVerification(): Promise<LastVerification | null> {
    return this.guard(async () => {
      const [r] = await run<VerificationRow>(this.pool, `SELECT * FROM ${S}.verifications WHERE id = 1`);
      return r ? verificationFromRow(r) : null;
    });
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
