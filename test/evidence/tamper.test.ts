/**
 * Tamper evidence, on both backends: a realistic log of 1,000+ entries (interleaved checkpoints, a
 * redaction) verifies clean; then every kind of change an attacker with write access could make is
 * caught, and named by the seq of the entry that was changed:
 *
 * - in the real database (raw SQL, each case restored afterwards): one column of a sampled entry,
 *   for every column; a deleted entry, a forged entry inserted by renumbering, two entries swapped;
 * - in memory, over the stored bytes: every byte of every column of 200+ sampled entries, every
 *   digit of every integer column, every null set to a value and every column set to null;
 * - in exported bundles (full and correlation-filtered): every byte of 200+ entry lines and 200
 *   stub lines, every header byte, every manifest byte, disclosed lines swapped for their stubs,
 *   deleted, duplicated, swapped and truncated lines, a forged or misplaced manifest, the wrong key.
 *   What the chain cannot see (the header, which lines are disclosed) is caught by the signed
 *   manifest and reported with no seq.
 *
 * The exhaustive batteries run a verifier over a window (the entry before the sampled one through
 * the next checkpoint, stretched to cover any erasure marks in it) instead of the whole log: the
 * verifier stops at the first broken rule, and the window holds everything that rule can depend
 * on. A case the window does not decide is re-run over the whole log or bundle.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { bundleTextLines, verifyBundle } from '../../src/evidence/bundle.js';
import {
  ENTRY_COLUMNS,
  type EntryRow,
  entryFromRow,
  headerLine,
  parseHeader,
  recordFromLine,
  recordFromRow,
  rowFromEntry,
  stubLine,
} from '../../src/evidence/codec.js';
import {
  bodyHash,
  chainHash,
  type Draft,
  type Entry,
  type EvidenceKind,
  saltBytesFor,
  seal,
} from '../../src/evidence/format.js';
import { manifestLine, parseManifest } from '../../src/evidence/manifest.js';
import { type Caller, EvidenceService } from '../../src/evidence/service.js';
import { keyMap, Verifier, type VerifyRecord, type VerifyReport } from '../../src/evidence/verify.js';
import {
  evidenceBackends,
  type TestEvidenceStore,
  type TestSigner,
  testSigner,
} from '../helpers/evidence-backends.js';

const caller: Caller = { tenant: 'default', by: 'test', system: true };

const COLUMNS = ENTRY_COLUMNS;
type Column = (typeof COLUMNS)[number];
const INT_COLUMNS: ReadonlySet<Column> = new Set(['seq', 'recorded_at', 'occurred_at', 'source_seq']);

/** Deterministic pseudo-random numbers (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEXTS = [
  'plain ascii text',
  'naïve café — ünïcødé 日本語 한국어 Ελληνικά',
  'emoji 🚀 and 👩‍💻 (a ZWJ sequence) and 𝄞',
  'quote " backslash \\ both \\" and \'single\'',
  'C:\\Program Files\\bulkhead\\"out".json',
  'tab\there, newline\nthere, cr\r, bell \u0007, nul-ish \u0001, del \u007f',
  '</script><!-- & %s %d $' + '{x} -->',
  '',
];
const NUMBERS = [
  0,
  1,
  -1,
  42,
  -273.15,
  0.1 + 0.2,
  1e21,
  -1e21,
  1.5e-7,
  123456789012345680000,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  2 ** 53 + 2,
  6.02214076e23,
  1e-300,
  -0.000001,
];

/** ~1,000 drafts of ~200 interleaved jobs (~5 entries each, one correlation id per job). */
function jobDrafts(count: number, rand: () => number): Draft[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const plans: Array<{
    n: number;
    corr: string;
    tenant: string;
    job: string;
    kinds: EvidenceKind[];
    at: number;
  }> = [];
  let jobs = 0;
  const newJob = () => {
    const n = jobs++;
    const kinds: EvidenceKind[] = ['admission', 'lease', 'start', 'step'];
    if (rand() < 0.35) kinds.push('failure');
    else if (rand() < 0.5) kinds.push('step');
    kinds.push('outcome');
    plans.push({
      n,
      corr: `corr-${String(n).padStart(4, '0')}`,
      tenant: n % 3 === 2 ? 't2' : 'default',
      job: `job_${(n * 2654435761).toString(16).padStart(8, '0')}`,
      kinds,
      at: 0,
    });
  };
  for (let i = 0; i < 6; i++) newJob();
  const drafts: Draft[] = [];
  const base = 1_760_000_000_000;
  for (let i = 0; i < count; i++) {
    const idx = Math.floor(rand() * plans.length);
    const p = plans[idx]!;
    const kind = p.kinds.shift()!;
    if (p.kinds.length === 0) {
      plans.splice(idx, 1);
      newJob();
    }
    p.at++;
    const occurredAt = base + i * 997 + int(-400, 400);
    const secret = {
      card: `4111 1111 1111 ${String(1000 + p.n).slice(-4)}`,
      holder: pick(TEXTS),
      pin: int(0, 9999),
    };
    let fields: Record<string, unknown>;
    let correlationId: string | null = p.corr;
    let subject = `job:${p.job}`;
    switch (kind) {
      case 'admission':
        fields = {
          queue: pick(['default', 'emails', 'billing', 'größe']),
          priority: int(-5, 5),
          payload: {
            text: pick(TEXTS),
            amount: pick(NUMBERS),
            items: [
              pick(TEXTS),
              pick(NUMBERS),
              null,
              true,
              false,
              { deep: { deeper: [pick(NUMBERS), [], {}] } },
            ],
          },
          secret,
          requiresApproval: rand() < 0.2,
          note: null,
          ignored: undefined,
        };
        break;
      case 'lease':
        if (rand() < 0.15) {
          correlationId = null;
          subject = `worker:w-${int(1, 4)}`;
        }
        fields = {
          workerId: `w-${int(1, 4)}`,
          fence: p.n * 10 + p.at,
          ttlMs: 30_000,
          expiresAt: occurredAt + 30_000,
        };
        break;
      case 'start':
        fields = {
          attempt: int(1, 3),
          input: { text: pick(TEXTS), n: pick(NUMBERS), flags: [true, null] },
          secret,
        };
        break;
      case 'step':
        fields = {
          name: pick(['fetch', 'transform', 'write "out"', 'schritt-ß']),
          index: p.at,
          output: { rows: int(0, 1_000_000), ratio: pick(NUMBERS), labels: [pick(TEXTS), pick(TEXTS)] },
          durationMs: 12.75 + p.at,
          secret,
        };
        break;
      case 'failure':
        fields = {
          error: { name: 'Error', message: pick(TEXTS), code: 'E_TIMEOUT', path: 'C:\\tmp\\x' },
          retryable: rand() < 0.5,
          backoffMs: 1500.5,
          attempt: int(1, 5),
        };
        break;
      default:
        fields = {
          state: pick(['succeeded', 'failed', 'cancelled']),
          result:
            rand() < 0.3 ? null : { value: pick(NUMBERS), text: pick(TEXTS), nested: { a: [1, 2, [3]] } },
          attempts: int(1, 5),
        };
    }
    drafts.push({
      occurredAt,
      tenant: p.tenant,
      correlationId,
      kind,
      subject,
      sourceSeq: 1000 + 2 * i,
      fields,
    });
  }
  return drafts;
}

interface Layout {
  rows: EntryRow[];
  head: number;
  checkpoints: number[];
  redaction: { seq: number; correlationId: string; targets: number[] };
}

/** Build the log: drafts in batches of uneven sizes, a redaction after ~600, a final checkpoint. */
async function buildLog(t: TestEvidenceStore): Promise<Layout['redaction']> {
  const store = t.store;
  const service = new EvidenceService({ store });
  const rand = prng(0xb01c4ead);
  const drafts = jobDrafts(1020, rand);
  const sizes = [7, 13, 25, 1, 19, 3, 40, 11];
  let redaction: Layout['redaction'] | null = null;
  for (let i = 0, b = 0; i < drafts.length; b++) {
    const batch = drafts.slice(i, i + (sizes[b % sizes.length] as number));
    i += batch.length;
    await store.append(batch, { shippedThrough: batch[batch.length - 1]?.sourceSeq as number });
    if (!redaction && i >= 600) {
      // The job whose last entry is the latest: all its entries are written, near the end.
      const written = drafts.slice(0, i);
      const done = written.filter((d) => d.kind === 'outcome' && d.correlationId !== null);
      const corr = done[done.length - 1]?.correlationId as string;
      const entries = await store.byCorrelation(corr);
      const targets = entries.filter((e) => 'secret' in e.fields).map((e) => e.seq);
      assert.ok(targets.length >= 2, 'the redacted job has 2+ entries with a secret');
      const r = await service.redact(caller, {
        correlationId: corr,
        field: 'secret',
        reason: 'GDPR erasure',
      });
      redaction = { seq: r.seq, correlationId: corr, targets };
    }
  }
  await store.checkpoint();
  assert.ok(redaction);
  return redaction;
}

function flipByte(text: string, pos: number): string {
  const b = Buffer.from(text, 'utf8');
  b[pos] = (b[pos] as number) ^ 0x01;
  // Not valid UTF-8 any more? Decoded with U+FFFD: still a change (what a text column would hold).
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(b);
}

/** Integer tamperings: every digit to every other digit, +1, -1 (deduplicated, never the original). */
function intVariants(n: number): number[] {
  const s = String(n);
  const out = new Set<number>([n + 1, n - 1]);
  for (let i = 0; i < s.length; i++) {
    if (!/[0-9]/.test(s[i] as string)) continue;
    for (let d = 0; d <= 9; d++) {
      const v = Number(s.slice(0, i) + d + s.slice(i + 1));
      if (v !== n) out.add(v);
    }
  }
  out.delete(n);
  return [...out];
}

/** Raw SQL on the store's own database, bypassing the store. `?` placeholders on both dialects. */
interface RawDb {
  table: string;
  run(sql: string, params?: unknown[]): Promise<void>;
  close(): Promise<void>;
}

async function openRaw(dialect: 'sqlite' | 'postgres', target: string): Promise<RawDb> {
  if (dialect === 'sqlite') {
    const db = new Database(target);
    db.pragma('busy_timeout = 5000');
    return {
      table: 'entries',
      async run(sql, params = []) {
        db.prepare(sql).run(...params);
      },
      async close() {
        db.close();
      },
    };
  }
  const client = new pg.Client({ connectionString: target });
  await client.connect();
  return {
    table: 'bulkhead_evidence.entries',
    async run(sql, params = []) {
      let n = 0;
      await client.query(
        sql.replace(/\?/g, () => `$${++n}`),
        params,
      );
    },
    async close() {
      await client.end();
    },
  };
}

async function insertRows(raw: RawDb, rows: readonly EntryRow[]): Promise<void> {
  for (const r of rows)
    await raw.run(
      `INSERT INTO ${raw.table} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`,
      COLUMNS.map((c) => r[c]),
    );
}

/** Put rows `fromSeq..` back exactly as they were. */
async function restoreTail(raw: RawDb, rows: readonly EntryRow[], fromSeq: number): Promise<void> {
  await raw.run('BEGIN');
  await raw.run(`DELETE FROM ${raw.table} WHERE seq >= ? OR seq < 0`, [fromSeq]);
  await insertRows(raw, rows.slice(fromSeq - 1));
  await raw.run('COMMIT');
}

/** Move every seq >= `fromSeq` up by one (in two steps: the primary key is checked row by row). */
async function shiftTail(raw: RawDb, fromSeq: number): Promise<void> {
  await raw.run(`UPDATE ${raw.table} SET seq = -(seq + 1) WHERE seq >= ?`, [fromSeq]);
  await raw.run(`UPDATE ${raw.table} SET seq = -seq WHERE seq < 0`);
}

/** A sample of seqs: every `step`-th from 1, and the given ones; sorted, distinct, in 1..head. */
function sampleSeqs(head: number, step: number, extra: Iterable<number>): number[] {
  const out = new Set<number>();
  for (let s = 1; s <= head; s += step) out.add(s);
  for (const s of extra) if (s >= 1 && s <= head) out.add(s);
  return [...out].sort((a, b) => a - b);
}

/** Collects the cases a battery got wrong, and the ones of a known class, for one assertion at the end. */
class Tally {
  cases = 0;
  readonly wrong: string[] = [];
  readonly known = new Map<string, { count: number; examples: string[] }>();
  bad(msg: string): void {
    this.wrong.push(msg);
  }
  knownCase(cls: string, msg: string): void {
    const k = this.known.get(cls) ?? { count: 0, examples: [] };
    k.count++;
    if (k.examples.length < 3) k.examples.push(msg);
    this.known.set(cls, k);
  }
  summary(): string {
    const known = [...this.known].map(([cls, k]) => `${cls}: ${k.count} (e.g. ${k.examples.join(' | ')})`);
    return `${this.cases} cases, ${this.wrong.length} wrong${known.length ? `; known: ${known.join('; ')}` : ''}`;
  }
  assertClean(): void {
    assert.equal(
      this.wrong.length,
      0,
      `${this.wrong.length} tamperings were missed or named the wrong seq:\n${this.wrong.slice(0, 40).join('\n')}`,
    );
  }
}

/**
 * Whether a window's verdict holds for the whole log or bundle: the verifier stopped at an entry
 * (not in its final checks, which see the window's end, not the log's) and named the changed entry.
 * Entries before the window are untouched and verify, so the whole run reaches the changed entry in
 * the same state as far as any rule that can name it is concerned.
 */
function windowDecides(report: VerifyReport, stopped: boolean, s: number): boolean {
  return !report.ok && stopped && report.firstBad?.seq === s;
}

const cpuMs = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since);
  return Math.round((u.user + u.system) / 1000);
};

const describeReport = (r: VerifyReport) =>
  r.ok ? 'ok (undetected)' : `firstBad ${r.firstBad?.seq} (${r.firstBad?.reason})`;

/**
 * Judge one tampering of entry `s`: it must fail, naming `s`. That includes a seq changed to a
 * lower seq that exists: the changed entry sits in the place of `s` claiming another seq, and the
 * verifier names the place (only an exact copy of the entry just checked is named by its own seq).
 */
function judge(tally: Tally, report: VerifyReport, s: number, what: string): void {
  tally.cases++;
  if (!report.ok && report.firstBad?.seq === s) return;
  tally.bad(`entry ${s}, ${what}: ${describeReport(report)}`);
}

/** A tampered bundle must fail, naming `seq` (null: not an entry), and why when `reason` is given. */
function expectRejected(
  tally: Tally,
  report: VerifyReport,
  seq: number | null,
  what: string,
  reason?: RegExp,
): void {
  tally.cases++;
  if (!report.ok && report.firstBad?.seq === seq && (!reason || reason.test(report.firstBad.reason))) return;
  tally.bad(`${what}: ${describeReport(report)}; expected firstBad ${seq}${reason ? ` (${reason})` : ''}`);
}

for (const backend of evidenceBackends) {
  describe(`evidence tamper detection (${backend.dialect})`, () => {
    let t: TestEvidenceStore;
    let service: EvidenceService;
    let raw: RawDb;
    let layout: Layout;

    before(async () => {
      t = await backend.create({ checkpointEvery: 50 });
      service = new EvidenceService({ store: t.store, signer: t.signer });
    });
    after(async () => {
      await raw?.close();
      await t?.cleanup();
    });

    it('builds a log of 1,000+ realistic entries that verifies clean', async (tc) => {
      const started = Date.now();
      const redaction = await buildLog(t);
      const rows = await t.store.readRows(1, 100_000);
      const head = rows.length;
      for (const [i, r] of rows.entries()) assert.equal(r.seq, i + 1, 'the log is contiguous');
      const checkpoints = rows.filter((r) => r.kind === 'checkpoint').map((r) => r.seq);
      layout = { rows, head, checkpoints, redaction };
      assert.ok(head >= 1000, `${head} entries`);
      assert.ok(checkpoints.length >= 15, `${checkpoints.length} checkpoints`);
      assert.equal(checkpoints[checkpoints.length - 1], head, 'the log ends with a checkpoint');
      assert.deepEqual(new Set(rows.map((r) => r.tenant)), new Set(['default', 't2']));
      for (const seq of redaction.targets) {
        const f = JSON.parse(rows[seq - 1]?.fields as string) as Record<string, unknown>;
        assert.deepEqual(f.secret, { redactedBy: redaction.seq });
      }
      assert.equal(rows[redaction.seq - 1]?.kind, 'redaction');
      assert.ok(redaction.seq < head - 300, 'the redaction is in the middle of the log');

      const report = await service.verify();
      assert.equal(report.ok, true, describeReport(report));
      assert.equal(report.firstBad, null);
      assert.equal(report.entries, head);
      assert.equal(report.checkpoints, checkpoints.length);
      assert.equal(report.redactedFields, redaction.targets.length);
      assert.equal(report.unsignedFrom, null);
      assert.deepEqual(report.head, { seq: head, hash: rows[head - 1]?.hash });
      raw = await openRaw(backend.dialect, t.target);
      tc.diagnostic(
        `${head} entries, ${checkpoints.length} checkpoints, redaction ${redaction.seq} of ${redaction.targets.join(',')}; ${Date.now() - started} ms`,
      );
    });

    /** The whole log verified by the service; the stored rows back exactly as they were. */
    async function assertIntact(): Promise<void> {
      const report = await service.verify();
      assert.equal(report.ok, true, `after restoring: ${describeReport(report)}`);
      assert.deepEqual(await t.store.readRows(1, 100_000), layout.rows);
    }

    it('detects a change to any column of an entry in the database, and deletion, insertion, reordering', async (tc) => {
      const started = Date.now();
      const { rows, head, checkpoints, redaction } = layout;
      // 36+ entries spread over the log, including checkpoints, the redaction and redacted entries.
      const spread = Array.from({ length: 32 }, (_, i) => 1 + Math.floor((i * (head - 1)) / 31));
      const seqs = [
        ...new Set([
          ...spread,
          redaction.seq,
          ...redaction.targets,
          ...checkpoints.slice(0, 3),
          checkpoints[5] as number,
        ]),
      ];
      assert.ok(seqs.length >= 36);
      const tally = new Tally();
      for (const [k, s] of seqs.entries()) {
        const col = COLUMNS[k % COLUMNS.length] as Column;
        const row = rows[s - 1] as EntryRow;
        const v = row[col];
        let what: string;
        if (col === 'seq') {
          // seq + 1 is taken by the next entry (the primary key): move the entry past the head.
          await raw.run(`UPDATE ${raw.table} SET seq = ? WHERE seq = ?`, [s + 1_000_000, s]);
          what = `seq moved to ${s + 1_000_000}`;
        } else {
          let value: string | number;
          if (v === null) value = INT_COLUMNS.has(col) ? 999_999_001 + k : `tampered-${k}`;
          else if (typeof v === 'number') value = v + 1;
          else value = flipByte(v, (k * 7919 + 13) % Buffer.byteLength(v));
          assert.notEqual(value, v);
          await raw.run(`UPDATE ${raw.table} SET ${col} = ? WHERE seq = ?`, [value, s]);
          what = `${col} ${JSON.stringify(v)?.slice(0, 40)} -> ${JSON.stringify(value).slice(0, 40)}`;
        }
        judge(tally, await service.verify(), s, what);
        if (col === 'seq') await raw.run(`UPDATE ${raw.table} SET seq = ? WHERE seq = ?`, [s, s + 1_000_000]);
        else await raw.run(`UPDATE ${raw.table} SET ${col} = ? WHERE seq = ?`, [v, s]);
        await assertIntact();
      }

      // The head's seq + 1: nothing is in the way.
      await raw.run(`UPDATE ${raw.table} SET seq = ? WHERE seq = ?`, [head + 1, head]);
      judge(tally, await service.verify(), head, `seq ${head} -> ${head + 1}`);
      await raw.run(`UPDATE ${raw.table} SET seq = ? WHERE seq = ?`, [head, head + 1]);
      await assertIntact();

      // An entry deleted in the middle: its seq is missing.
      const m = Math.floor(head / 2) + 3;
      await raw.run(`DELETE FROM ${raw.table} WHERE seq = ?`, [m]);
      judge(tally, await service.verify(), m, 'deleted');
      await insertRows(raw, [rows[m - 1] as EntryRow]);
      await assertIntact();

      // Two adjacent entries swapped (each takes the other's seq): the first out of place is named.
      await raw.run(`UPDATE ${raw.table} SET seq = -1 WHERE seq = ?`, [m]);
      await raw.run(`UPDATE ${raw.table} SET seq = ? WHERE seq = ?`, [m, m + 1]);
      await raw.run(`UPDATE ${raw.table} SET seq = ? WHERE seq = -1`, [m + 1]);
      judge(tally, await service.verify(), m, `swapped with ${m + 1}`);
      await restoreTail(raw, rows, m);
      await assertIntact();

      const fake: Draft = {
        occurredAt: (rows[m - 1] as EntryRow).occurred_at,
        tenant: 'default',
        correlationId: 'corr-forged',
        kind: 'outcome',
        subject: 'job:job_forged',
        sourceSeq: null,
        fields: { state: 'succeeded', result: { forged: true } },
      };
      const forge = (prevHash: string) =>
        rowFromEntry(
          seal(fake, m, prevHash, (rows[m - 1] as EntryRow).recorded_at, randomBytes(saltBytesFor([fake]))),
        );

      // A forged entry inserted at m, the tail renumbered, but not linked to entry m - 1: named at m.
      await shiftTail(raw, m);
      await insertRows(raw, [forge('f'.repeat(64))]);
      judge(tally, await service.verify(), m, 'forged entry inserted at m, sealed on a wrong prevHash');
      await restoreTail(raw, rows, m);
      await assertIntact();

      // The same, sealed onto entry m - 1 as the store would have sealed it. The forged entry is
      // internally consistent and links to m - 1: the first rule broken is the link from it to the
      // renumbered original entry m, now at m + 1. No chain verifier can tell which side of a broken
      // link was forged, so the verifier names m + 1 ("prevHash does not match the hash of entry m").
      // KNOWN: named m + 1, one past the inserted entry (m).
      await shiftTail(raw, m);
      await insertRows(raw, [forge((rows[m - 2] as EntryRow).hash)]);
      {
        const report = await service.verify();
        tally.cases++;
        assert.equal(report.ok, false, 'a linked forgery is detected');
        assert.equal(report.firstBad?.seq, m + 1, describeReport(report));
        assert.match(
          report.firstBad?.reason ?? '',
          new RegExp(`prevHash does not match the hash of entry ${m}\\b`),
        );
      }
      await restoreTail(raw, rows, m);
      await assertIntact();

      // The strongest forgery without the signing key: the forged entry, and every later entry
      // re-sealed with its new seq and prevHash. Every link holds; the first checkpoint after the
      // insertion no longer signs the entry before it.
      {
        let prev = forge((rows[m - 2] as EntryRow).hash);
        const rechained: EntryRow[] = [prev];
        for (const r of rows.slice(m - 1)) {
          const e = entryFromRow(r);
          const seq = r.seq + 1;
          const hash = chainHash(seq, prev.hash, bodyHash(e, r.commitments));
          prev = { ...r, seq, prev_hash: prev.hash, hash };
          rechained.push(prev);
        }
        await raw.run('BEGIN');
        await raw.run(`DELETE FROM ${raw.table} WHERE seq >= ?`, [m]);
        await insertRows(raw, rechained);
        await raw.run('COMMIT');
      }
      const nextCheckpoint = checkpoints.find((c) => c >= m) as number;
      judge(
        tally,
        await service.verify(),
        nextCheckpoint + 1,
        'forged at m, tail re-sealed: the next checkpoint',
      );
      await restoreTail(raw, rows, m);
      await assertIntact();

      tc.diagnostic(`database tampering: ${tally.summary()}; ${Date.now() - started} ms`);
      tally.assertClean();
      assert.ok(tally.cases >= 36);
    });

    it('detects every single-byte, digit and null change of 200+ sampled entries (in memory)', async (tc) => {
      const started = Date.now();
      const cpu = process.cpuUsage();
      const { rows, head, checkpoints, redaction } = layout;
      const keys = keyMap([t.signer.publicKey]);
      const records: VerifyRecord[] = rows.map(recordFromRow);
      const markers: number[][] = rows.map((r) =>
        Object.values(JSON.parse(r.fields) as Record<string, { redactedBy?: number }>).flatMap((f) =>
          f.redactedBy === undefined ? [] : [f.redactedBy],
        ),
      );
      const cpAtOrAfter = (s: number) => checkpoints.find((c) => c >= s) ?? head;
      const windowOf = (s: number) => {
        const start = Math.max(1, s - 1);
        let end = cpAtOrAfter(s);
        // In log mode an erasure mark naming an entry past the end is a failure: cover its target.
        for (let q = start; q <= end; q++) for (const by of markers[q - 1] ?? []) end = Math.max(end, by);
        return { start, end };
      };
      /** Verify entries start..end, entry `s` replaced; `stopped`: a push failed (not the final checks). */
      const run = (start: number, end: number, s: number, tampered: VerifyRecord | null) => {
        const v = new Verifier({ mode: 'log', keys, fromSeq: start });
        let stopped = false;
        for (let q = start; q <= end && !stopped; q++)
          stopped = !v.push(q === s && tampered ? tampered : (records[q - 1] as VerifyRecord));
        return { report: v.finish(), stopped };
      };

      // The order rule, named cases: a renumbered entry is named by the place it sits in; an exact
      // copy of the entry just checked by its own seq; a replayed older entry by the place it sits in.
      {
        const verifyList = (list: VerifyRecord[]) => {
          const v = new Verifier({ mode: 'log', keys });
          for (const r of list) if (!v.push(r)) break;
          return v.finish();
        };
        const renumbered = [...records];
        renumbered[5] = recordFromRow({ ...(rows[5] as EntryRow), seq: 5 });
        const r1 = verifyList(renumbered);
        assert.equal(r1.firstBad?.seq, 6, `entry 6 renumbered to 5: ${describeReport(r1)}`);
        assert.match(r1.firstBad?.reason ?? '', /in the place of 6 says it is entry 5/);
        const duplicated = [...records.slice(0, 5), records[4] as VerifyRecord, ...records.slice(5)];
        const r2 = verifyList(duplicated);
        assert.equal(r2.firstBad?.seq, 5, `entry 5 duplicated: ${describeReport(r2)}`);
        assert.match(r2.firstBad?.reason ?? '', /entry 5 appears twice/);
        const replayed = [...records.slice(0, 5), records[2] as VerifyRecord, ...records.slice(5)];
        const r3 = verifyList(replayed);
        assert.equal(r3.firstBad?.seq, 6, `entry 3 replayed after 5: ${describeReport(r3)}`);
        assert.match(r3.firstBad?.reason ?? '', /in the place of 6 says it is entry 3/);
      }

      const seqs = sampleSeqs(head, 5, [
        head,
        redaction.seq,
        redaction.seq - 1,
        redaction.seq + 1,
        ...redaction.targets,
        ...checkpoints,
        ...rows
          .filter((r) => r.correlation_id === null)
          .map((r) => r.seq)
          .slice(0, 5),
      ]);
      assert.ok(seqs.length >= 200, `${seqs.length} sampled entries`);
      assert.ok(seqs.includes(redaction.seq) && redaction.targets.every((s) => seqs.includes(s)));

      const tally = new Tally();
      let decidedByWhole = 0;
      let windowEntries = 0;
      let bytes = 0;
      for (const s of seqs) {
        const row = rows[s - 1] as EntryRow;
        const { start, end } = windowOf(s);
        windowEntries += end - start + 1;
        const clean = run(start, end, s, null).report;
        assert.equal(
          clean.ok,
          true,
          `window ${start}..${end} of untouched entries: ${describeReport(clean)}`,
        );
        const check = (col: Column, value: unknown, what: string) => {
          const changed: Record<string, unknown> = { ...row, [col]: value };
          const rec = recordFromRow(changed as unknown as EntryRow);
          let { report, stopped } = run(start, end, s, rec);
          if (!windowDecides(report, stopped, s)) {
            report = run(1, head, s, rec).report;
            decidedByWhole++;
          }
          judge(tally, report, s, `${col} ${what}`);
        };
        for (const col of COLUMNS) {
          const v = row[col];
          if (v === null) {
            // A null set to a value (empty, plausible, numeric).
            const values = INT_COLUMNS.has(col) ? [0, 1, s, 999_999_001] : ['', 'default', `corr-${s}`];
            for (const value of values) check(col, value, `null -> ${JSON.stringify(value)}`);
            continue;
          }
          check(col, null, `${JSON.stringify(v).slice(0, 20)} -> null`);
          if (typeof v === 'number') {
            for (const value of intVariants(v)) check(col, value, `${v} -> ${value}`);
            continue;
          }
          const n = Buffer.byteLength(v);
          bytes += n;
          for (let pos = 0; pos < n; pos++) {
            const value = flipByte(v, pos);
            assert.notEqual(value, v);
            check(col, value, `byte ${pos} of ${n} ^ 0x01`);
          }
        }
      }
      tc.diagnostic(
        `in-memory battery: ${seqs.length} entries, ${bytes} text bytes, ${tally.summary()}; ` +
          `windows avg ${(windowEntries / seqs.length).toFixed(1)} entries, ${decidedByWhole} re-run over the whole log; ${Date.now() - started} ms (${cpuMs(cpu)} ms CPU)`,
      );
      tally.assertClean();
      assert.ok(tally.cases >= 200_000, `${tally.cases} cases`);
    });

    it('rejects every tampered bundle line, header and manifest byte, stubbed disclosure, deletion, duplication, swap, truncation and wrong key', async (tc) => {
      const started = Date.now();
      const cpu = process.cpuUsage();
      const { head, checkpoints, redaction } = layout;
      const collect = async (gen: AsyncGenerator<string>) => {
        const out: string[] = [];
        for await (const line of gen) out.push(line);
        return `${out.join('\n')}\n`;
      };
      const full = bundleTextLines(await collect(service.exportBundle(caller)));
      const filtered = bundleTextLines(
        await collect(service.exportBundle(caller, { correlationId: redaction.correlationId })),
      );
      // Exporting appended nothing: the log already ended with a checkpoint.
      assert.equal((await t.store.head()).seq, head);
      const keys = [t.signer.publicKey];
      const otherSigner = testSigner();
      /** SHA-256 over the lines, each with its LF: what a manifest signs. */
      const sha256Lines = (body: readonly string[]) => {
        const h = createHash('sha256');
        for (const l of body) h.update(`${l}\n`);
        return h.digest('hex');
      };
      /** The manifest line `signer` writes after `body` (every line before it). */
      const manifestFor = (body: readonly string[], signer: TestSigner = t.signer) =>
        manifestLine(sha256Lines(body), signer);

      const tally = new Tally();
      let decidedByWhole = 0;
      let crossChecked = 0;
      const trusted = keyMap(keys);
      let stubsTested = 0;
      let entriesTested = 0;
      let stubSwaps = 0;
      for (const [name, lines] of [
        ['full', full],
        ['filtered', filtered],
      ] as const) {
        const header = parseHeader(lines[0] as string);
        assert.equal(header.fromSeq, 1);
        assert.equal(header.toSeq, head);
        assert.equal(lines.length, head + 2, 'the header, every entry, the manifest');
        const manifestText = lines[lines.length - 1] as string;
        const manifest = parseManifest(manifestText);
        assert.ok(manifest, `the last line is a manifest: ${manifestText}`);
        assert.equal(manifest.keyId, t.signer.keyId);
        assert.equal(manifest.sha256, sha256Lines(lines.slice(0, -1)));
        // Ed25519 signatures are deterministic: the same line, made independently.
        assert.equal(manifestText, manifestFor(lines.slice(0, -1)));
        const untouched = await verifyBundle(lines, keys);
        assert.equal(untouched.ok, true, `the untouched ${name} bundle: ${describeReport(untouched)}`);
        const body = lines.slice(1, -1);
        const kinds = body.map((l) => JSON.parse(l) as { type: string; kind?: string; seq: number });
        const stubs = kinds.filter((k) => k.type === 'stub').map((k) => k.seq);
        if (name === 'full') {
          assert.equal(untouched.entries, head);
          assert.equal(stubs.length, 0);
        } else {
          assert.ok(stubs.length > 900, `${stubs.length} stubs`);
          assert.equal(untouched.entries, head - stubs.length);
          assert.equal(untouched.redactedFields, redaction.targets.length);
        }
        const lineOf = (seq: number) => lines[seq] as string;
        const cpAtOrAfter = (s: number) => checkpoints.find((c) => c >= s) ?? head;
        /**
         * A bundle of start..end with this bundle's header fields and its own manifest: what
         * `exportBundle` writes for that range. Its first line is there only to link the next one, so
         * it is given as a stub (as a filtered export would give it) unless it marks a field erased:
         * the rest verify the same.
         */
        const windowLines = (start: number, end: number, s: number) => {
          const first = recordFromLine(lines[start] as string, 2);
          const marks =
            first.type === 'entry' && Object.values(first.entry.fields).some((f) => 'redactedBy' in f);
          const win = [
            headerLine({
              fromSeq: start,
              toSeq: end,
              keyIds: header.keyIds,
              filter: header.filter,
              exportedAt: header.exportedAt,
            }),
            first.type === 'entry' && !marks && start < s ? stubLine(first.entry) : (lines[start] as string),
            ...lines.slice(start + 1, end + 1),
          ];
          return [...win, manifestFor(win)];
        };

        // Which lines: 200+ spread entry lines (and checkpoints, the redaction and redacted entries)
        // of the full bundle; every entry line and 200 spread stub lines of the filtered one.
        let sample: number[];
        if (name === 'full')
          sample = sampleSeqs(head, 5, [head, redaction.seq, ...redaction.targets, ...checkpoints]);
        else {
          const step = Math.max(1, Math.floor(stubs.length / 200));
          const pickedStubs = stubs.filter((_, i) => i % step === 0).slice(0, 200);
          const entries = kinds.filter((k) => k.type === 'entry').map((k) => k.seq);
          sample = [...new Set([...pickedStubs, ...entries])].sort((a, b) => a - b);
          stubsTested += pickedStubs.length;
          assert.ok(pickedStubs.length >= 200 || pickedStubs.length === stubs.length);
        }
        if (name === 'full') assert.ok(sample.length >= 200);
        for (const s of sample) {
          if (kinds[s - 1]?.type === 'entry') entriesTested++;
          const start = Math.max(1, s - 1);
          const end = cpAtOrAfter(s);
          const win = windowLines(start, end, s);
          const clean = await verifyBundle(win, keys);
          assert.equal(clean.ok, true, `${name} window ${start}..${end}: ${describeReport(clean)}`);
          // What verifyBundle does with the window's entry lines, without the per-call cost of loading
          // the key (the same parser, verifier and numbering; the manifest is checked only when the
          // chain verifies, so it does not change a verdict the chain reaches).
          const records = win.map((l, i) =>
            i === 0 || i === win.length - 1 ? null : recordFromLine(l, i + 1),
          );
          const fast = (changed: string) => {
            const v = new Verifier({ mode: 'bundle', keys: trusted, fromSeq: start });
            let stopped = false;
            for (let q = start; q <= end && !stopped; q++)
              stopped = !v.push(
                q === s ? recordFromLine(changed, q - start + 2) : (records[q - start + 1] as VerifyRecord),
              );
            return { report: v.finish(), stopped };
          };
          const line = lineOf(s);
          const n = Buffer.byteLength(line);
          // The line's own seq: the last "seq" key (a checkpoint's fields hold one too, earlier).
          const seqAt = line.lastIndexOf('"seq":') + 6;
          const seqDigits = String(s).length;
          const seqStart = Buffer.byteLength(line.slice(0, seqAt));
          for (let pos = 0; pos < n; pos++) {
            const changed = flipByte(line, pos);
            const inSeq = pos >= seqStart && pos < seqStart + seqDigits;
            let { report, stopped } = fast(changed);
            if (inSeq || pos % 128 === 0 || pos < 2 || pos >= n - 2) {
              // The real thing on the window, for a spread of positions: the same verdict.
              win[s - start + 1] = changed;
              const real = await verifyBundle(win, keys);
              win[s - start + 1] = line;
              crossChecked++;
              if (report.ok)
                tally.bad(
                  `${name} line ${s} byte ${pos}: the chain accepts it (verifyBundle: ${describeReport(real)})`,
                );
              else
                assert.deepEqual(
                  { ok: real.ok, firstBad: real.firstBad },
                  { ok: report.ok, firstBad: report.firstBad },
                  `${name} line ${s} byte ${pos}: verifyBundle and the window disagree`,
                );
            }
            if (!windowDecides(report, stopped, s)) {
              const whole = [...lines];
              whole[s] = changed;
              report = await verifyBundle(whole, keys);
              decidedByWhole++;
            }
            judge(tally, report, s, `${name} line byte ${pos} of ${n} ^ 0x01`);
          }
        }

        // Every header byte. A change the header still reads with, to the export time or the filter
        // only, is not seen by the chain: the manifest rejects it, with no seq.
        const headerText = lines[0] as string;
        const headerBytes = Buffer.byteLength(headerText);
        const exportedAtAt = headerText.indexOf('"exportedAt":') + 13;
        const exportedAtEnd = exportedAtAt + String(header.exportedAt).length;
        const filterAt = headerText.indexOf('"filter":') + 9;
        const filterEnd = headerText.indexOf(',"format":');
        const byManifest: Record<string, number> = {};
        for (let pos = 0; pos < headerBytes; pos++) {
          const text = flipByte(headerText, pos);
          const report = await verifyBundle([text, ...lines.slice(1)], keys);
          let where = 'elsewhere';
          if (pos >= exportedAtAt && pos < exportedAtEnd) where = 'exportedAt';
          else if (pos >= filterAt && pos < filterEnd) where = 'filter';
          let chainBlind = false;
          try {
            const h = parseHeader(text);
            chainBlind =
              h.fromSeq === header.fromSeq &&
              h.toSeq === header.toSeq &&
              h.keyIds.join() === header.keyIds.join();
          } catch {
            // Not a header any more: rejected as such.
          }
          const what = `${name} header byte ${pos} (${where}: ${JSON.stringify(text.slice(Math.max(0, pos - 6), pos + 6))})`;
          if (chainBlind) {
            expectRejected(tally, report, null, what, /manifest/);
            byManifest[where] = (byManifest[where] ?? 0) + 1;
          } else {
            tally.cases++;
            if (report.ok) tally.bad(`${what}: accepted`);
          }
        }
        assert.ok(
          (byManifest.exportedAt ?? 0) > 0,
          `${name}: some exportedAt changes still read as a header`,
        );

        // Every manifest byte: a manifest that is not one, or does not verify. (Changed so that it
        // no longer ends as a manifest does, it is read as an entry line after the last entry.)
        const manifestBytes = Buffer.byteLength(manifestText);
        for (let pos = 0; pos < manifestBytes; pos++) {
          const report = await verifyBundle([...lines.slice(0, -1), flipByte(manifestText, pos)], keys);
          tally.cases++;
          if (report.ok || (report.firstBad?.seq !== null && report.firstBad?.seq !== head + 1))
            tally.bad(`${name} manifest byte ${pos} changed: ${describeReport(report)}`);
        }

        // A disclosed line swapped for its stub: the chain still links (that is what a stub is for);
        // the manifest rejects it, with no seq. Every disclosed line of the filtered bundle, every
        // tenth of the full one. Two exceptions the chain sees first: the redaction entry (a field
        // marked erased by an entry the bundle does not disclose) and the final checkpoint.
        const disclosed = kinds
          .filter((k) => k.type === 'entry')
          .map((k) => k.seq)
          .filter((q, i) => name === 'filtered' || i % 10 === 0 || q === redaction.seq || q === head);
        for (const q of disclosed) {
          const rec = recordFromLine(lineOf(q), q + 1);
          assert.equal(rec.type, 'entry');
          const swapped = [...lines];
          swapped[q] = stubLine((rec as { entry: Entry }).entry);
          const report = await verifyBundle(swapped, keys);
          stubSwaps++;
          const what = `${name}: disclosed entry ${q} swapped for its stub`;
          if (q === redaction.seq)
            expectRejected(tally, report, Math.min(...redaction.targets), what, /does not disclose/);
          else if (q === head)
            expectRejected(
              tally,
              report,
              (checkpoints[checkpoints.length - 2] as number) + 1,
              what,
              /signed checkpoint/,
            );
          else expectRejected(tally, report, null, what, /manifest/);
        }

        // Structural changes in the middle.
        const m = Math.floor(head / 2) + 3;
        const without = (i: number) => [...lines.slice(0, i), ...lines.slice(i + 1)];
        judge(tally, await verifyBundle(without(m), keys), m, `${name}: line ${m} deleted`);
        expectRejected(
          tally,
          await verifyBundle([...lines.slice(0, m + 1), lines[m] as string, ...lines.slice(m + 1)], keys),
          m,
          `${name}: line ${m} duplicated`,
          new RegExp(`entry ${m} appears twice`),
        );
        {
          const swapped = [...lines];
          swapped[m] = lines[m + 1] as string;
          swapped[m + 1] = lines[m] as string;
          judge(tally, await verifyBundle(swapped, keys), m, `${name}: lines ${m} and ${m + 1} swapped`);
        }
        // An older line replayed after m: named by the place it sits in.
        expectRejected(
          tally,
          await verifyBundle([...lines.slice(0, m + 1), lines[m - 5] as string, ...lines.slice(m + 1)], keys),
          m + 1,
          `${name}: line ${m - 5} replayed after ${m}`,
          new RegExp(`in the place of ${m + 1} says it is entry ${m - 5}`),
        );

        // Truncated tails. The manifest alone dropped: no manifest, named one past the last entry.
        // The manifest and entries dropped: named by the first entry no remaining checkpoint signs.
        const firstUnsigned = (end: number) => (checkpoints.filter((c) => c <= end).pop() ?? 0) + 1;
        const lastCp = checkpoints[checkpoints.length - 2] as number;
        for (const drop of [1, 2, 3, 10, head - lastCp + 1, head - lastCp + 2, head, head + 1]) {
          const report = await verifyBundle(lines.slice(0, lines.length - drop), keys);
          const end = head - (drop - 1);
          if (drop === 1)
            expectRejected(tally, report, head + 1, `${name}: the manifest dropped`, /no manifest/);
          else if (end === 0)
            expectRejected(
              tally,
              report,
              null,
              `${name}: every line but the header dropped`,
              /holds no entries/,
            );
          else
            expectRejected(
              tally,
              report,
              firstUnsigned(end),
              `${name}: the manifest and the last ${drop - 1} entries dropped (ends at ${end})`,
            );
        }
        // A blank line, a line with a CR: named by the place they sit in.
        expectRejected(
          tally,
          await verifyBundle([...lines.slice(0, m), '', ...lines.slice(m)], keys),
          m,
          `${name}: a blank line before line ${m}`,
          /blank/,
        );
        expectRejected(
          tally,
          await verifyBundle([...lines.slice(0, m), `${lines[m]}\r`, ...lines.slice(m + 1)], keys),
          m,
          `${name}: a CR at the end of line ${m}`,
        );
        // The manifest doubled, misplaced, followed by a blank line.
        for (const [what, changed] of [
          ['the manifest doubled', [...lines, manifestText]],
          ['the manifest before the final checkpoint', [...lines.slice(0, -2), manifestText, lineOf(head)]],
          ['a blank line after the manifest', [...lines, '']],
        ] as const) {
          const report = await verifyBundle(changed, keys);
          tally.cases++;
          if (report.ok) tally.bad(`${name}: ${what}: accepted`);
        }
        expectRejected(
          tally,
          await verifyBundle([...lines.slice(0, -1), lineOf(head), manifestText], keys),
          head,
          `${name}: the final checkpoint doubled`,
          new RegExp(`entry ${head} appears twice`),
        );
        // Forged manifests over a changed export time: re-signed with another key; the hash
        // recomputed under the old signature; another bundle's manifest.
        {
          const changedHeader = headerLine({ ...header, exportedAt: header.exportedAt + 1 });
          const changed = [changedHeader, ...lines.slice(1, -1)];
          expectRejected(
            tally,
            await verifyBundle([...changed, manifestFor(changed, otherSigner)], keys),
            null,
            `${name}: header changed, manifest re-signed with another key`,
            /not the key given/,
          );
          const rehashed = JSON.stringify({ ...manifest, sha256: sha256Lines(changed) });
          assert.ok(parseManifest(rehashed), rehashed);
          expectRejected(
            tally,
            await verifyBundle([...changed, rehashed], keys),
            null,
            `${name}: header changed, manifest hash recomputed under the old signature`,
            /manifest signature does not verify/,
          );
          const otherManifest = (name === 'full' ? filtered : full).at(-1) as string;
          expectRejected(
            tally,
            await verifyBundle([...lines.slice(0, -1), otherManifest], keys),
            null,
            `${name}: the other bundle's manifest`,
            /not the lines its manifest signed/,
          );
        }
        // The wrong key, and no key.
        for (const [what, k] of [
          ['another key', [otherSigner.publicKey]],
          ['no key', []],
        ] as const) {
          const report = await verifyBundle(lines, [...k]);
          tally.cases++;
          if (report.ok) tally.bad(`${name}: verified with ${what}: accepted`);
        }
        tc.diagnostic(
          `${name} bundle: header changes only the manifest rejects: ${JSON.stringify(byManifest)}; ` +
            `${disclosed.length} disclosed lines swapped for stubs`,
        );
      }
      tc.diagnostic(
        `bundle battery: ${entriesTested} entry lines, ${stubsTested} stub lines, ${stubSwaps} stub swaps, ${tally.summary()}; ` +
          `${crossChecked} cross-checked with verifyBundle on the window, ${decidedByWhole} re-run over the whole bundle; ` +
          `${Date.now() - started} ms (${cpuMs(cpu)} ms CPU)`,
      );
      tally.assertClean();
      assert.ok(tally.cases >= 200_000, `${tally.cases} cases`);
    });
  });
}
