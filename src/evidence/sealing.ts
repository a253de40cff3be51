/** What both evidence stores do the same way inside their write transactions. */
import {
  type CheckpointSigner,
  canonical,
  checkpointMessage,
  type Draft,
  type FieldValue,
} from './format.js';

/** The entry that signs the head (`seq`, `headHash`) at `at`. */
export function checkpointDraft(signer: CheckpointSigner, seq: number, headHash: string, at: number): Draft {
  const signature = signer.sign(checkpointMessage({ seq, headHash, at, keyId: signer.keyId }));
  return {
    occurredAt: at,
    tenant: 'default',
    correlationId: null,
    kind: 'checkpoint',
    subject: 'evidence',
    sourceSeq: null,
    fields: { seq, headHash, at, keyId: signer.keyId, signature },
  };
}

/**
 * A `fields` column text with these fields' values and salts replaced by `{ redactedBy: by }`;
 * fields already erased, or absent, are left as they are.
 */
export function eraseFields(text: string, names: readonly string[], by: number): string {
  const fields = JSON.parse(text) as Record<string, FieldValue>;
  let changed = false;
  for (const name of names) {
    const f = fields[name];
    if (f && Object.hasOwn(fields, name) && 'value' in f) {
      // defineProperty, not assignment: a field called `__proto__` must stay a field.
      Object.defineProperty(fields, name, {
        value: { redactedBy: by },
        enumerable: true,
        writable: true,
        configurable: true,
      });
      changed = true;
    }
  }
  return changed ? canonical(fields) : text;
}
