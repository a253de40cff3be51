/**
 * The verifier: walks entries in seq order and stops at the first one that breaks a rule, naming its
 * seq and why. The same code checks the store (`log` mode) and an exported bundle (`bundle` mode);
 * the rules are docs/EVIDENCE.md's "Verifying".
 */
import { type KeyObject, verify as verifySignature } from 'node:crypto';
import { keyIdOf } from '../util/ed25519.js';
import {
  bodyHash,
  chainHash,
  checkpointMessage,
  commitment,
  commitmentOfText,
  type Entry,
  GENESIS_HASH,
  STRUCTURAL_KINDS,
} from './format.js';

const HEX64 = /^[0-9a-f]{64}$/;

export type VerifyRecord =
  /** `commitmentsText`: the commitments as stored, already checked to be canonical. */
  /** `valueTexts`: each value's canonical text, when the reader already wrote it. */
  | { type: 'entry'; entry: Entry; commitmentsText?: string; valueTexts?: Map<string, string> }
  /** An entry left out of a bundle (another tenant's or correlation's): only what links the chain. */
  | { type: 'stub'; seq: number; prevHash: string; bodyHash: string; hash: string }
  /** A record that could not be read as an entry; `seq` when it could be told. */
  | { type: 'malformed'; seq: number | null; reason: string };

export interface VerifyReport {
  ok: boolean;
  /** Full entries checked (chain, commitments, signatures). */
  entries: number;
  /** Stubs checked (chain only). */
  stubs: number;
  checkpoints: number;
  lastCheckpoint: { seq: number; at: number; keyId: string } | null;
  head: { seq: number; hash: string } | null;
  /** Field values erased by a redaction or retention entry that the verifier saw. */
  redactedFields: number;
  /** Bundle mode: field values erased by entries after the bundle's end. */
  erasedAfter: number;
  gaps: Array<{ fromSeq: number; toSeq: number }>;
  /** Log mode: the first seq after the last checkpoint (entries not yet signed), if any. */
  unsignedFrom: number | null;
  firstBad: { seq: number | null; reason: string } | null;
}

export interface VerifierOptions {
  mode: 'log' | 'bundle';
  /** Public keys checkpoints may be signed with, by key id. */
  keys: Map<string, KeyObject>;
  /** A checkpoint kept outside the store: the log must still hold it (tail truncation shows). */
  pinned?: { seq: number; headHash: string; at: number; keyId: string; signature: string };
  /** The seq the records start at. @default 1 */
  fromSeq?: number;
}

class Bad extends Error {
  constructor(
    readonly seq: number | null,
    reason: string,
  ) {
    super(reason);
  }
}

interface Erased {
  seq: number;
  field: string;
  occurredAt: number;
}

export class Verifier {
  private expected: number;
  private lastHash: string | null;
  private readonly pending = new Map<number, Erased[]>();
  /** Bundle entries seen only as stubs (their fields cannot be checked). */
  private readonly stubSeqs = new Set<number>();
  private failed: Bad | null = null;
  private pinnedSeen = false;
  private lastWasCheckpoint = false;
  private readonly report: VerifyReport = emptyReport();

  constructor(private readonly options: VerifierOptions) {
    this.expected = options.fromSeq ?? 1;
    this.lastHash = this.expected === 1 ? GENESIS_HASH : null;
  }

  /** False once a rule is broken: the rest is not checked. */
  get healthy(): boolean {
    return this.failed === null;
  }

  push(record: VerifyRecord): boolean {
    if (this.failed) return false;
    try {
      this.check(record);
      return true;
    } catch (err) {
      this.failed = err instanceof Bad ? err : new Bad(null, (err as Error).message);
      return false;
    }
  }

  finish(): VerifyReport {
    const r = this.report;
    if (!this.failed) {
      try {
        this.finalChecks();
      } catch (err) {
        this.failed = err instanceof Bad ? err : new Bad(null, (err as Error).message);
      }
    }
    if (this.failed) {
      r.ok = false;
      r.firstBad = { seq: this.failed.seq, reason: this.failed.message };
    }
    return r;
  }

  private finalChecks(): void {
    const r = this.report;
    const last = this.expected - 1;
    if (this.options.mode === 'bundle') {
      if (r.entries + r.stubs === 0) throw new Bad(null, 'the bundle holds no entries');
      if (!this.lastWasCheckpoint)
        throw new Bad(
          // The first entry after the last checkpoint entry (which sits at its signed seq + 1).
          r.lastCheckpoint ? r.lastCheckpoint.seq + 2 : (this.options.fromSeq ?? 1),
          'the bundle does not end with a signed checkpoint: its tail could have been altered',
        );
      for (const list of this.pending.values()) r.erasedAfter += list.length;
    } else {
      const dangling = [...this.pending.values()].flat().sort((a, b) => a.seq - b.seq)[0];
      if (dangling)
        throw new Bad(
          dangling.seq,
          `field '${dangling.field}' is marked erased by an entry past the end of the log`,
        );
      if (r.lastCheckpoint === null ? last >= 1 : r.lastCheckpoint.seq + 1 < last)
        r.unsignedFrom = r.lastCheckpoint === null ? 1 : r.lastCheckpoint.seq + 2;
    }
    const pin = this.options.pinned;
    if (pin && !this.pinnedSeen) {
      throw new Bad(
        pin.seq,
        `the pinned checkpoint covers seq ${pin.seq} but the log ends at seq ${last}: entries were removed`,
      );
    }
  }

  private check(record: VerifyRecord): void {
    if (record.type === 'malformed') throw new Bad(record.seq ?? this.expected, record.reason);
    const seq = record.type === 'entry' ? record.entry.seq : record.seq;
    if (!Number.isSafeInteger(seq) || seq < 1)
      throw new Bad(this.expected, `seq ${seq} is not a positive integer`);
    if (seq > this.expected)
      throw new Bad(this.expected, `entry ${this.expected} is missing (the next entry is ${seq})`);
    if (seq < this.expected) {
      const hash = record.type === 'entry' ? record.entry.hash : record.hash;
      // A copy of the entry just checked is a duplicate of it; anything else sits where entry
      // `expected` should be, carrying a seq that is not its own.
      throw hash === this.lastHash
        ? new Bad(seq, `entry ${seq} appears twice`)
        : new Bad(
            this.expected,
            `the entry in the place of ${this.expected} says it is entry ${seq} (reordered or renumbered)`,
          );
    }
    const prevHash = record.type === 'entry' ? record.entry.prevHash : record.prevHash;
    if (this.lastHash !== null && prevHash !== this.lastHash)
      throw new Bad(seq, `prevHash does not match the hash of entry ${seq - 1}`);
    if (record.type === 'stub') {
      if (!HEX64.test(record.bodyHash) || !HEX64.test(record.prevHash))
        throw new Bad(seq, 'stub hashes are not 64 lowercase hex digits');
      if (chainHash(seq, record.prevHash, record.bodyHash) !== record.hash)
        throw new Bad(seq, 'stub hash does not match its seq, prevHash and bodyHash');
      if (this.pending.has(seq))
        throw new Bad(
          this.pending.get(seq)?.[0]?.seq ?? seq,
          `a field is marked erased by entry ${seq}, which the bundle does not disclose`,
        );
      this.report.stubs++;
      this.stubSeqs.add(seq);
      this.lastWasCheckpoint = false;
    } else {
      this.checkEntry(record.entry, record.commitmentsText, record.valueTexts);
    }
    this.lastHash = record.type === 'entry' ? record.entry.hash : record.hash;
    this.report.head = { seq, hash: this.lastHash };
    const pin = this.options.pinned;
    if (pin && pin.seq === seq) {
      if (pin.headHash !== this.lastHash)
        throw new Bad(seq, `entry ${seq} does not have the hash the pinned checkpoint signed`);
      this.checkSignature(seq, pin);
      this.pinnedSeen = true;
    }
    this.expected = seq + 1;
  }

  private checkEntry(e: Entry, commitmentsText?: string, valueTexts?: Map<string, string>): void {
    const seq = e.seq;
    // Where a value is compared with one computed here (hex by construction), equality proves its
    // form: only what is not compared is checked for form.
    if (this.lastHash === null && !HEX64.test(e.prevHash))
      throw new Bad(seq, 'prevHash must be 64 lowercase hex digits');
    if (chainHash(seq, e.prevHash, bodyHash(e, commitmentsText)) !== e.hash)
      throw new Bad(seq, 'hash does not match the entry (a header field or a commitment was changed)');
    const names = Object.keys(e.commitments);
    const stored = Object.keys(e.fields);
    if (names.length !== stored.length || stored.some((n) => !Object.hasOwn(e.commitments, n)))
      throw new Bad(seq, 'the stored fields are not the committed fields');
    for (const name of names) {
      const c = e.commitments[name] as string;
      const f = e.fields[name] as Record<string, unknown>;
      if ('redactedBy' in f) {
        if (!HEX64.test(c)) throw new Bad(seq, `commitment of '${name}' is not 64 lowercase hex digits`);
        const by = f.redactedBy;
        if (Object.keys(f).length !== 1 || !Number.isSafeInteger(by) || (by as number) <= seq)
          throw new Bad(seq, `field '${name}': an erasure mark must name a later entry`);
        if (STRUCTURAL_KINDS.has(e.kind))
          throw new Bad(seq, `field '${name}' of a ${e.kind} entry cannot be erased`);
        const list = this.pending.get(by as number) ?? [];
        list.push({ seq, field: name, occurredAt: e.occurredAt });
        this.pending.set(by as number, list);
      } else {
        if (
          Object.keys(f).length !== 2 ||
          typeof f.salt !== 'string' ||
          f.salt.length !== 32 ||
          !('value' in f)
        )
          throw new Bad(seq, `field '${name}' must hold a 16-byte hex salt and a value`);
        const valueText = valueTexts?.get(name);
        if (
          (valueText === undefined ? commitment(f.salt, f.value) : commitmentOfText(f.salt, valueText)) !== c
        )
          throw new Bad(seq, `field '${name}' does not match its commitment (the value or salt was changed)`);
      }
    }
    this.resolveErasures(e);
    if (e.kind === 'checkpoint') this.checkCheckpoint(e);
    else this.lastWasCheckpoint = false;
    if (e.kind === 'gap') {
      const from = fieldValue(e, 'fromSeq');
      const to = fieldValue(e, 'toSeq');
      if (typeof from === 'number' && typeof to === 'number')
        this.report.gaps.push({ fromSeq: from, toSeq: to });
    }
    this.report.entries++;
  }

  /** Entry `e` may be what erased fields of earlier entries: it must say so. */
  private resolveErasures(e: Entry): void {
    const list = this.pending.get(e.seq);
    if (e.kind === 'redaction') this.checkRedactionApplied(e, list ?? []);
    if (!list) return;
    this.pending.delete(e.seq);
    for (const target of list) {
      let ok = false;
      if (e.kind === 'redaction') {
        const seqs = fieldValue(e, 'seqs');
        ok = fieldValue(e, 'field') === target.field && Array.isArray(seqs) && seqs.includes(target.seq);
      } else if (e.kind === 'retention') {
        const from = fieldValue(e, 'fromSeq');
        const to = fieldValue(e, 'toSeq');
        const cutoff = fieldValue(e, 'cutoff');
        ok =
          typeof from === 'number' &&
          typeof to === 'number' &&
          typeof cutoff === 'number' &&
          target.seq >= from &&
          target.seq <= to &&
          target.occurredAt < cutoff;
      }
      if (!ok)
        throw new Bad(
          target.seq,
          `field '${target.field}' is marked erased by entry ${e.seq}, which does not record that erasure`,
        );
      this.report.redactedFields++;
    }
  }

  /** Every entry a redaction lists (and this pass saw in full) must carry its erasure mark. */
  private checkRedactionApplied(e: Entry, marked: Erased[]): void {
    const seqs = fieldValue(e, 'seqs');
    const field = fieldValue(e, 'field');
    if (!Array.isArray(seqs) || typeof field !== 'string') return;
    const done = new Set(marked.filter((t) => t.field === field).map((t) => t.seq));
    const first = this.options.fromSeq ?? 1;
    for (const s of seqs) {
      if (typeof s !== 'number' || s < first || s >= e.seq || this.stubSeqs.has(s) || done.has(s)) continue;
      throw new Bad(s, `entry ${s} still holds field '${field}', which redaction entry ${e.seq} erased`);
    }
  }

  private checkCheckpoint(e: Entry): void {
    const seq = fieldValue(e, 'seq');
    const headHash = fieldValue(e, 'headHash');
    const at = fieldValue(e, 'at');
    const keyId = fieldValue(e, 'keyId');
    const signature = fieldValue(e, 'signature');
    if (
      typeof seq !== 'number' ||
      typeof headHash !== 'string' ||
      typeof at !== 'number' ||
      typeof keyId !== 'string' ||
      typeof signature !== 'string'
    )
      throw new Bad(e.seq, 'a checkpoint must hold seq, headHash, at, keyId and signature');
    if (seq !== e.seq - 1 || headHash !== e.prevHash)
      throw new Bad(e.seq, 'the checkpoint does not sign the entry just before it');
    this.checkSignature(e.seq, { seq, headHash, at, keyId, signature });
    this.report.checkpoints++;
    this.report.lastCheckpoint = { seq, at, keyId };
    this.lastWasCheckpoint = true;
  }

  private checkSignature(
    where: number,
    c: { seq: number; headHash: string; at: number; keyId: string; signature: string },
  ): void {
    const key = this.options.keys.get(c.keyId);
    if (!key) throw new Bad(where, `checkpoint signed by key ${c.keyId}, which is not a trusted key`);
    const ok = verifySignature(
      null,
      Buffer.from(checkpointMessage(c)),
      key,
      Buffer.from(c.signature, 'base64'),
    );
    if (!ok || Buffer.from(c.signature, 'base64').toString('base64') !== c.signature)
      throw new Bad(where, 'the checkpoint signature does not verify');
  }
}

function fieldValue(e: Entry, name: string): unknown {
  const f = e.fields[name];
  return f && 'value' in f ? f.value : undefined;
}

/** A report of nothing verified yet. */
export function emptyReport(): VerifyReport {
  return {
    ok: true,
    entries: 0,
    stubs: 0,
    checkpoints: 0,
    lastCheckpoint: null,
    head: null,
    redactedFields: 0,
    erasedAfter: 0,
    gaps: [],
    unsignedFrom: null,
    firstBad: null,
  };
}

/** Trusted keys by id, from PEM texts. */
export function keyMap(keys: Iterable<KeyObject>): Map<string, KeyObject> {
  const map = new Map<string, KeyObject>();
  for (const k of keys) map.set(keyIdOf(k), k);
  return map;
}
