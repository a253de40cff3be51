/**
 * The evidence store port: an append-only chain of entries in a database of its own (a SQLite file
 * in embedded mode, a PostgreSQL URL in distributed mode). Two adapters implement it
 * (`sqlite-evidence.ts`, `postgres-evidence.ts`) and one suite tests both.
 *
 * Rules every adapter keeps:
 * - An append seals its drafts (seq, prevHash, salts, commitments, hash) inside the transaction that
 *   writes them, after taking the chain's write lock, so concurrent appenders never fork the chain.
 * - Drafts that ship an outbox event whose seq is at or below the shipped position are skipped, and
 *   the position moves in the same transaction: each event is recorded exactly once.
 * - Erasing a field replaces its value and salt with `{ redactedBy: <seq of the entry that records
 *   the erasure> }` in the same transaction that appends that entry. Nothing else is ever updated.
 */
import type { EntryRow } from './codec.js';
import type { CheckpointSigner, Draft, Entry } from './format.js';

export interface AppendOptions {
  /** Move the shipped outbox position to this seq (never backwards). */
  shippedThrough?: number;
  /**
   * Erase these fields of earlier entries, each recorded by the appended entry at index `by` of the
   * drafts (default 0, the first).
   */
  erase?: Array<{ seq: number; fields: string[]; by?: number }>;
}

export interface AppendResult {
  entries: Entry[];
  /** Drafts skipped because their outbox event was already recorded. */
  skipped: number;
}

/** A legal hold on one tenant's evidence, or on one correlation id of one tenant. */
export interface Hold {
  id: string;
  /** `*` for a system key's hold on a correlation id: every tenant's entries with that id. */
  tenant: string;
  /** Null: the whole tenant. */
  correlationId: string | null;
  /** The key id that placed it. */
  placedBy: string;
  /** Placed with a system-tenant key: only a system-tenant key may release it. */
  bySystem: boolean;
  reason: string;
  placedSeq: number;
  placedAt: number;
  releasedSeq: number | null;
  releasedAt: number | null;
}

export interface LastVerification {
  at: number;
  ok: boolean;
  entries: number;
  headSeq: number | null;
  firstBadSeq: number | null;
  reason: string | null;
}

export interface EvidenceHead {
  seq: number;
  hash: string;
  shippedThrough: number;
}

export interface OpenEvidenceOptions {
  /** Signs checkpoints; without one the store appends none (a read-only verifier needs none). */
  signer?: CheckpointSigner;
  /** A checkpoint after this many entries. @default 1000 */
  checkpointEvery?: number;
  /** SQLite: `full` fsyncs every commit. @default 'full' */
  synchronous?: 'full' | 'normal';
}

export interface EvidenceStore {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where it is, for messages (a URL without its password, or a path). */
  readonly where: string;

  append(drafts: Draft[], options?: AppendOptions): Promise<AppendResult>;
  /**
   * A write that changes nothing that is verified (the shipping row's time): proves the store takes
   * writes now, not only reads (a write-locked SQLite file, a full disk, a read-only replica).
   */
  probe(): Promise<void>;
  /** Sign the head now, unless it is already signed (or there is no signer). */
  checkpoint(): Promise<Entry | null>;
  head(): Promise<EvidenceHead>;
  lastCheckpoint(): Promise<Entry | null>;
  /** Raw rows with seq >= `fromSeq` (and <= `toSeq`), ascending. */
  readRows(fromSeq: number, limit: number, toSeq?: number): Promise<EntryRow[]>;
  /** Entries of a correlation id (of one tenant, when given), ascending. */
  byCorrelation(correlationId: string, options?: { tenant?: string }): Promise<Entry[]>;
  /** How many entries of this kind there are. */
  countKind(kind: string): Promise<number>;
  /** Entries of these kinds, ascending. */
  byKind(kinds: string[], options?: { afterSeq?: number; limit?: number }): Promise<Entry[]>;
  /** The first entry with occurredAt at or after `at` (for retention's cutoff), or the head + 1. */
  firstSeqAtOrAfter(at: number): Promise<number>;

  /** Public keys checkpoints were signed with, by key id (PEM). */
  signingKeys(): Promise<Map<string, string>>;

  placeHold(
    hold: Omit<Hold, 'placedSeq' | 'placedAt' | 'releasedSeq' | 'releasedAt'>,
    entry: Draft,
  ): Promise<Hold>;
  releaseHold(id: string, entry: Draft): Promise<Hold>;
  holds(options?: { active?: boolean }): Promise<Hold[]>;

  recordVerification(v: LastVerification): Promise<void>;
  lastVerification(): Promise<LastVerification | null>;

  close(): Promise<void>;
}
