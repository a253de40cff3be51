/**
 * Entries as stored (a row of either store) and as exported (a JSONL bundle line), read back with
 * every check that does not need the chain: types, hex forms, and canonical JSON text — so a byte
 * changed in a form that parses to the same value (`1e3` for `1000`, an escaped letter) is caught.
 */
import { bodyHash, canonical, type Entry, type FieldValue, textsOf } from './format.js';
import type { VerifyRecord } from './verify.js';

/** One `entries` row, the same columns in both dialects. */
export interface EntryRow {
  seq: number;
  prev_hash: string;
  hash: string;
  recorded_at: number;
  occurred_at: number;
  tenant: string;
  correlation_id: string | null;
  kind: string;
  subject: string;
  source_seq: number | null;
  /** Canonical JSON text: { field: commitment }. */
  commitments: string;
  /** Canonical JSON text: { field: { salt, value } | { redactedBy } }. */
  fields: string;
}

export const BUNDLE_FORMAT = 'bulkhead.evidence.bundle';

export interface BundleHeader {
  type: 'header';
  format: typeof BUNDLE_FORMAT;
  version: 1;
  fromSeq: number;
  toSeq: number;
  /** Keys the bundle's checkpoints are signed with. */
  keyIds: string[];
  /** What was disclosed in full; other entries in the range are stubs. */
  filter: { tenant?: string; correlationId?: string };
  exportedAt: number;
}

class Malformed extends Error {}

function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Malformed(`${what} is not an integer`);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Malformed(`${what} is not a string`);
  return v;
}

function parsedObject(text: unknown, what: string): Record<string, unknown> {
  if (typeof text !== 'string') throw new Malformed(`${what} is not text`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Malformed(`${what} is not valid JSON`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Malformed(`${what} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

function canonicalJson(text: unknown, what: string): Record<string, unknown> {
  const parsed = parsedObject(text, what);
  if (canonical(parsed) !== text) throw new Malformed(`${what} is not in canonical JSON form`);
  return parsed;
}

function commitmentsOf(o: Record<string, unknown>, what: string): Record<string, string> {
  for (const [k, v] of Object.entries(o))
    if (typeof v !== 'string') throw new Malformed(`${what}.${k} is not a string`);
  return o as Record<string, string>;
}

/**
 * The `fields` column, parsed and checked to be canonical in one pass that also keeps each value's
 * canonical text (the verifier hashes it for the commitment instead of writing it again).
 */
function canonicalFields(text: unknown): {
  fields: Record<string, FieldValue>;
  valueTexts: Map<string, string>;
} {
  if (typeof text !== 'string') throw new Malformed('fields column is not text');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Malformed('fields column is not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Malformed('fields column is not a JSON object');
  const fields = parsed as Record<string, unknown>;
  const valueTexts = new Map<string, string>();
  let out = '{';
  let first = true;
  for (const name of Object.keys(fields).sort()) {
    const f = fields[name];
    if (!f || typeof f !== 'object' || Array.isArray(f))
      throw new Malformed(`fields.${name} is not an object`);
    const keys = Object.keys(f);
    let piece: string;
    if (keys.length === 2 && 'salt' in f && 'value' in f) {
      const valueText = canonical((f as { value: unknown }).value);
      valueTexts.set(name, valueText);
      piece = `{"salt":${canonical((f as { salt: unknown }).salt)},"value":${valueText}}`;
    } else piece = canonical(f);
    out += `${first ? '' : ','}${canonical(name)}:${piece}`;
    first = false;
  }
  if (`${out}}` !== text) throw new Malformed('fields column is not in canonical JSON form');
  return { fields: fields as Record<string, FieldValue>, valueTexts };
}

function fieldsOf(o: Record<string, unknown>, what: string): Record<string, FieldValue> {
  for (const [k, v] of Object.entries(o))
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Malformed(`${what}.${k} is not an object`);
  return o as Record<string, FieldValue>;
}

function entryFrom(
  o: Record<string, unknown>,
  commitments: Record<string, string>,
  fields: Record<string, FieldValue>,
): Entry {
  const correlationId = o.correlationId;
  if (correlationId !== null && typeof correlationId !== 'string')
    throw new Malformed('correlationId is not a string or null');
  const sourceSeq = o.sourceSeq === null ? null : int(o.sourceSeq, 'sourceSeq');
  return {
    seq: int(o.seq, 'seq'),
    prevHash: str(o.prevHash, 'prevHash'),
    hash: str(o.hash, 'hash'),
    recordedAt: int(o.recordedAt, 'recordedAt'),
    occurredAt: int(o.occurredAt, 'occurredAt'),
    tenant: str(o.tenant, 'tenant'),
    correlationId,
    kind: str(o.kind, 'kind'),
    subject: str(o.subject, 'subject'),
    sourceSeq,
    commitments,
    fields,
  };
}

function seqHint(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

/** A stored row as a verifier record; a row that cannot be an entry is `malformed`, with its seq. */
export function recordFromRow(row: EntryRow): VerifyRecord {
  try {
    // Parsed only: the chain hashes these bytes as stored, so any change to them breaks the hash.
    const commitments = commitmentsOf(parsedObject(row.commitments, 'commitments column'), 'commitments');
    const { fields, valueTexts } = canonicalFields(row.fields);
    return {
      type: 'entry',
      commitmentsText: row.commitments,
      valueTexts,
      entry: entryFrom(
        {
          seq: row.seq,
          prevHash: row.prev_hash,
          hash: row.hash,
          recordedAt: row.recorded_at,
          occurredAt: row.occurred_at,
          tenant: row.tenant,
          correlationId: row.correlation_id,
          kind: row.kind,
          subject: row.subject,
          sourceSeq: row.source_seq,
        },
        commitments,
        fields,
      ),
    };
  } catch (err) {
    if (!(err instanceof Malformed)) throw err;
    return { type: 'malformed', seq: seqHint(row.seq), reason: err.message };
  }
}

export function entryFromRow(row: EntryRow): Entry {
  const r = recordFromRow(row);
  if (r.type !== 'entry')
    throw new Error(`evidence entry ${row.seq} is malformed: ${r.type === 'malformed' ? r.reason : ''}`);
  return r.entry;
}

export function rowFromEntry(e: Entry): EntryRow {
  const texts = textsOf(e);
  return {
    seq: e.seq,
    prev_hash: e.prevHash,
    hash: e.hash,
    recorded_at: e.recordedAt,
    occurred_at: e.occurredAt,
    tenant: e.tenant,
    correlation_id: e.correlationId,
    kind: e.kind,
    subject: e.subject,
    source_seq: e.sourceSeq,
    commitments: texts.commitments,
    fields: texts.fields,
  };
}

/** The columns of `entries`, in the order both stores insert them. */
export const ENTRY_COLUMNS = [
  'seq',
  'prev_hash',
  'hash',
  'recorded_at',
  'occurred_at',
  'tenant',
  'correlation_id',
  'kind',
  'subject',
  'source_seq',
  'commitments',
  'fields',
] as const;

/** An entry's row values in `ENTRY_COLUMNS` order. */
export function rowValues(e: Entry): unknown[] {
  const r = rowFromEntry(e);
  return ENTRY_COLUMNS.map((c) => r[c]);
}

/** A bundle line for an entry disclosed in full. */
export function entryLine(e: Entry): string {
  return canonical({ type: 'entry', ...e });
}

/** A bundle line for an entry not disclosed: enough to link the chain, nothing of its content. */
export function stubLine(e: Entry): string {
  return canonical({ type: 'stub', seq: e.seq, prevHash: e.prevHash, bodyHash: bodyHash(e), hash: e.hash });
}

export function headerLine(h: Omit<BundleHeader, 'type' | 'format' | 'version'>): string {
  return canonical({ type: 'header', format: BUNDLE_FORMAT, version: 1, ...h });
}

const ENTRY_KEYS = [
  'commitments',
  'correlationId',
  'fields',
  'hash',
  'kind',
  'occurredAt',
  'prevHash',
  'recordedAt',
  'seq',
  'sourceSeq',
  'subject',
  'tenant',
  'type',
].join();
const STUB_KEYS = ['bodyHash', 'hash', 'prevHash', 'seq', 'type'].join();
const HEADER_KEYS = [
  'exportedAt',
  'filter',
  'format',
  'fromSeq',
  'keyIds',
  'toSeq',
  'type',
  'version',
].join();

function parseLine(line: string, what: string): Record<string, unknown> {
  return canonicalJson(line, what);
}

/** A bundle's first line. Throws an Error whose message says what is wrong. */
export function parseHeader(line: string): BundleHeader {
  try {
    const o = parseLine(line, 'the header line');
    if (Object.keys(o).sort().join() !== HEADER_KEYS || o.type !== 'header' || o.format !== BUNDLE_FORMAT)
      throw new Malformed(`the first line is not a ${BUNDLE_FORMAT} header`);
    if (o.version !== 1)
      throw new Malformed(`bundle version ${String(o.version)} is not supported (this verifier reads 1)`);
    const keyIds = o.keyIds;
    if (!Array.isArray(keyIds) || keyIds.some((k) => typeof k !== 'string'))
      throw new Malformed('header keyIds is not a list of key ids');
    const filter = o.filter;
    if (!filter || typeof filter !== 'object' || Array.isArray(filter))
      throw new Malformed('header filter is not an object');
    return {
      type: 'header',
      format: BUNDLE_FORMAT,
      version: 1,
      fromSeq: int(o.fromSeq, 'header fromSeq'),
      toSeq: int(o.toSeq, 'header toSeq'),
      keyIds: keyIds as string[],
      filter: filter as BundleHeader['filter'],
      exportedAt: int(o.exportedAt, 'header exportedAt'),
    };
  } catch (err) {
    throw new Error(
      err instanceof Malformed ? err.message : `the header line cannot be read: ${(err as Error).message}`,
    );
  }
}

/** A bundle line after the header, as a verifier record (never throws for bad input). */
export function recordFromLine(line: string, lineNo: number): VerifyRecord {
  let hint: number | null = null;
  try {
    const o = parseLine(line, `line ${lineNo}`);
    hint = seqHint(o.seq);
    const keys = Object.keys(o).sort().join();
    if (o.type === 'stub') {
      if (keys !== STUB_KEYS)
        throw new Malformed(`line ${lineNo}: a stub holds exactly seq, prevHash, bodyHash and hash`);
      return {
        type: 'stub',
        seq: int(o.seq, 'seq'),
        prevHash: str(o.prevHash, 'prevHash'),
        bodyHash: str(o.bodyHash, 'bodyHash'),
        hash: str(o.hash, 'hash'),
      };
    }
    if (o.type !== 'entry' || keys !== ENTRY_KEYS)
      throw new Malformed(`line ${lineNo}: not an entry or stub line`);
    const commitments = o.commitments;
    const fields = o.fields;
    if (!commitments || typeof commitments !== 'object' || Array.isArray(commitments))
      throw new Malformed('commitments is not an object');
    if (!fields || typeof fields !== 'object' || Array.isArray(fields))
      throw new Malformed('fields is not an object');
    return {
      type: 'entry',
      entry: entryFrom(
        o,
        commitmentsOf(commitments as Record<string, unknown>, 'commitments'),
        fieldsOf(fields as Record<string, unknown>, 'fields'),
      ),
    };
  } catch (err) {
    // Anything at all that cannot be read (even a value nested too deep to canonicalise) is malformed.
    return {
      type: 'malformed',
      seq: hint,
      reason: err instanceof Malformed ? err.message : `line ${lineNo}: ${(err as Error).message}`,
    };
  }
}
