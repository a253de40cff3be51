/**
 * The evidence entry format, version 1 (docs/EVIDENCE.md is its specification). Pure: no I/O.
 *
 * An entry's field values are committed one by one: commitment = SHA-256(salt ‖ canonical(value)),
 * with a random 16-byte salt per field. The chain covers the commitments, never the values, so a
 * value (and its salt) can be erased later — redaction, retention — and the chain still verifies.
 *
 *   body     = { commitments, correlationId, kind, occurredAt, recordedAt, sourceSeq, subject, tenant }
 *   bodyHash = SHA-256(canonical(body))
 *   hash     = SHA-256(canonical({ bodyHash, prevHash, seq, v: 1 }))
 *
 * canonical() is RFC 8785 (JSON Canonicalization Scheme); hashes are lowercase hex.
 */
import { hash } from 'node:crypto';
import { canonical } from '../util/canonical-json.js';

export { canonical };

export const FORMAT_VERSION = 1;
/** The `prevHash` of entry 1. */
export const GENESIS_HASH = '0'.repeat(64);
export const SALT_BYTES = 16;
/** The domain string inside every signed checkpoint message. */
export const CHECKPOINT_TYPE = 'bulkhead.evidence.checkpoint.v1';

export const KINDS = [
  'admission',
  'approval',
  'config',
  'lease',
  'start',
  'step',
  'blob',
  'failure',
  'retry',
  'recovery',
  'state',
  'outcome',
  'admin',
  'redaction',
  'retention',
  'correction',
  'hold',
  'hold_released',
  'gap',
  'checkpoint',
] as const;
export type EvidenceKind = (typeof KINDS)[number];

/** Entries the evidence plane writes about itself; their values are never erased. */
export const STRUCTURAL_KINDS: ReadonlySet<string> = new Set([
  'redaction',
  'retention',
  'correction',
  'hold',
  'hold_released',
  'gap',
  'checkpoint',
]);

export function sha256Hex(text: string | Buffer): string {
  return hash('sha256', text, 'hex');
}

/**
 * SHA-256 over the UTF-8 bytes of `salt ‖ canonical(value)`, where the salt is written as its 32
 * lowercase hex digits (16 random bytes).
 */
export function commitment(saltHex: string, value: unknown): string {
  return commitmentOfText(saltHex, canonical(value));
}

/** `commitment` of a value given as its canonical text. */
export function commitmentOfText(saltHex: string, valueText: string): string {
  return hash('sha256', saltHex + valueText, 'hex');
}

/** What an entry says, before the store gives it a place in the chain. */
export interface Draft {
  occurredAt: number;
  tenant: string;
  correlationId: string | null;
  kind: EvidenceKind;
  /** `job:<id>`, `config:<version>`, `worker:<id>`, `tenant:<name>`, `evidence`. */
  subject: string;
  /** The outbox event this entry ships, or null for entries of the evidence plane itself. */
  sourceSeq: number | null;
  fields: Record<string, unknown>;
}

/** A field as stored beside its commitment: the value and its salt, or the mark of its erasure. */
export type FieldValue = { salt: string; value: unknown } | { redactedBy: number };

export interface EntryBody {
  recordedAt: number;
  occurredAt: number;
  tenant: string;
  correlationId: string | null;
  kind: string;
  subject: string;
  sourceSeq: number | null;
  commitments: Record<string, string>;
}

export interface Entry extends EntryBody {
  seq: number;
  prevHash: string;
  hash: string;
  fields: Record<string, FieldValue>;
}

export function bodyOf(e: EntryBody): EntryBody {
  return {
    recordedAt: e.recordedAt,
    occurredAt: e.occurredAt,
    tenant: e.tenant,
    correlationId: e.correlationId,
    kind: e.kind,
    subject: e.subject,
    sourceSeq: e.sourceSeq,
    commitments: e.commitments,
  };
}

/** canonical(body), written out field by field (the keys in their sorted order) because it is hot. */
export function bodyText(e: EntryBody, commitmentsText = canonical(e.commitments)): string {
  return (
    `{"commitments":${commitmentsText},"correlationId":${e.correlationId === null ? 'null' : canonical(e.correlationId)}` +
    `,"kind":${canonical(e.kind)},"occurredAt":${canonical(e.occurredAt)},"recordedAt":${canonical(e.recordedAt)}` +
    `,"sourceSeq":${e.sourceSeq === null ? 'null' : canonical(e.sourceSeq)},"subject":${canonical(e.subject)}` +
    `,"tenant":${canonical(e.tenant)}}`
  );
}

export function bodyHash(e: EntryBody, commitmentsText?: string): string {
  return sha256Hex(bodyText(e, commitmentsText));
}

/** SHA-256 of canonical({ bodyHash, prevHash, seq, v: 1 }). */
export function chainHash(seq: number, prevHash: string, body: string): string {
  return sha256Hex(
    `{"bodyHash":${canonical(body)},"prevHash":${canonical(prevHash)},"seq":${canonical(seq)},"v":${FORMAT_VERSION}}`,
  );
}

/** The stored texts of a sealed entry's commitments and fields, kept so they are written once. */
const sealedTexts = new WeakMap<Entry, { commitments: string; fields: string }>();

export function textsOf(e: Entry): { commitments: string; fields: string } {
  return sealedTexts.get(e) ?? { commitments: canonical(e.commitments), fields: canonical(e.fields) };
}

/**
 * Give a draft its place: seq, prevHash, salts, commitments and hash. `salts` holds SALT_BYTES per
 * field, in the draft's field order.
 */
export function seal(draft: Draft, seq: number, prevHash: string, recordedAt: number, salts: Buffer): Entry {
  const named: Array<[string, string, string]> = [];
  let i = 0;
  for (const [name, value] of Object.entries(draft.fields)) {
    if (value === undefined) continue;
    const salt = salts.toString('hex', i * SALT_BYTES, (i + 1) * SALT_BYTES);
    i++;
    named.push([name, salt, canonical(value)]);
  }
  named.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  // No prototype: a field may be called `__proto__` (any JSON key may), and must stay a field.
  const commitments: Record<string, string> = Object.create(null);
  const fields: Record<string, FieldValue> = Object.create(null);
  let commitmentsText = '{';
  let fieldsText = '{';
  for (const [n, [name, salt, text]] of named.entries()) {
    const c = commitmentOfText(salt, text);
    commitments[name] = c;
    fields[name] = { salt, value: draft.fields[name] };
    const key = canonical(name);
    commitmentsText += `${n ? ',' : ''}${key}:"${c}"`;
    fieldsText += `${n ? ',' : ''}${key}:{"salt":"${salt}","value":${text}}`;
  }
  commitmentsText += '}';
  fieldsText += '}';
  const body: EntryBody = {
    recordedAt,
    occurredAt: draft.occurredAt,
    tenant: draft.tenant,
    correlationId: draft.correlationId,
    kind: draft.kind,
    subject: draft.subject,
    sourceSeq: draft.sourceSeq,
    commitments,
  };
  const entry: Entry = {
    seq,
    prevHash,
    hash: chainHash(seq, prevHash, bodyHash(body, commitmentsText)),
    ...body,
    fields,
  };
  sealedTexts.set(entry, { commitments: commitmentsText, fields: fieldsText });
  return entry;
}

/** How many salt bytes `seal` needs for these drafts. */
export function saltBytesFor(drafts: readonly Draft[]): number {
  let n = 0;
  for (const d of drafts) for (const v of Object.values(d.fields)) if (v !== undefined) n++;
  return n * SALT_BYTES;
}

/** The message a checkpoint signs. */
export function checkpointMessage(c: { seq: number; headHash: string; at: number; keyId: string }): string {
  return canonical({ at: c.at, headHash: c.headHash, keyId: c.keyId, seq: c.seq, type: CHECKPOINT_TYPE });
}

/** Signs checkpoints: an Ed25519 key the verifier can pin by its id. */
export interface CheckpointSigner {
  keyId: string;
  publicKeyPem: string;
  /** Ed25519 signature of the UTF-8 message, base64. */
  sign(message: string): string;
}
