/** The evidence routes' JSON schemas: entries, holds and verification reports, and their inputs. */

export const TEXT = {
  type: 'string',
  minLength: 1,
  maxLength: 200,
  pattern: '^[^\\u0000-\\u001f]+$',
} as const;
export const REASON = { type: 'string', minLength: 1, maxLength: 2000 } as const;
export const SEQ = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;

export const entrySchema = {
  $id: 'EvidenceEntry',
  type: 'object',
  description:
    'An evidence entry as stored (docs/EVIDENCE.md): header, commitments, and the values beside them',
  additionalProperties: false,
  required: [
    'seq',
    'prevHash',
    'hash',
    'recordedAt',
    'occurredAt',
    'tenant',
    'correlationId',
    'kind',
    'subject',
    'sourceSeq',
    'commitments',
    'fields',
  ],
  properties: {
    seq: { type: 'integer' },
    prevHash: { type: 'string' },
    hash: { type: 'string' },
    recordedAt: { type: 'integer', description: 'epoch ms: when the evidence store wrote it' },
    occurredAt: { type: 'integer', description: 'epoch ms: when it happened (the outbox event time)' },
    tenant: { type: 'string' },
    correlationId: { type: ['string', 'null'] },
    kind: { type: 'string' },
    subject: { type: 'string' },
    sourceSeq: { type: ['integer', 'null'], description: 'the outbox event seq this entry records' },
    commitments: { type: 'object', additionalProperties: { type: 'string' } },
    fields: {
      type: 'object',
      description: '{ salt, value } per field, or { redactedBy: seq } once erased',
      additionalProperties: { type: 'object', additionalProperties: true },
    },
  },
} as const;

export const holdSchema = {
  $id: 'EvidenceHold',
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'tenant',
    'correlationId',
    'placedBy',
    'bySystem',
    'reason',
    'placedSeq',
    'placedAt',
    'releasedSeq',
    'releasedAt',
  ],
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    correlationId: { type: ['string', 'null'], description: 'null: the whole tenant' },
    placedBy: { type: 'string', description: 'the key id that placed it' },
    bySystem: {
      type: 'boolean',
      description: 'placed with a system-tenant key: only such a key releases it',
    },
    reason: { type: 'string' },
    placedSeq: { type: 'integer' },
    placedAt: { type: 'integer' },
    releasedSeq: { type: ['integer', 'null'] },
    releasedAt: { type: ['integer', 'null'] },
  },
} as const;

export const reportSchema = {
  $id: 'EvidenceReport',
  type: 'object',
  additionalProperties: true,
  required: ['ok', 'entries', 'checkpoints', 'firstBad'],
  properties: {
    ok: { type: 'boolean' },
    entries: { type: 'integer' },
    stubs: { type: 'integer' },
    checkpoints: { type: 'integer' },
    lastCheckpoint: { type: ['object', 'null'], additionalProperties: true },
    head: { type: ['object', 'null'], additionalProperties: true },
    redactedFields: { type: 'integer' },
    gaps: { type: 'array', items: { type: 'object', additionalProperties: true } },
    unsignedFrom: { type: ['integer', 'null'] },
    firstBad: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: { seq: { type: ['integer', 'null'] }, reason: { type: 'string' } },
    },
  },
} as const;
