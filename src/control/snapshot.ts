/**
 * Config snapshots: versioned, immutable, signed. The signature (Ed25519) covers the header
 * {version, deploymentId, digest, previousDigest, issuedAt, expiresAt, keyId} in canonical JSON
 * (RFC 8785), and the digest is SHA-256 of the canonical document, so any change to either is
 * detected. A worker accepts a snapshot only if it verifies against its pinned public key, names
 * its deployment, is not expired, and is not older than the one it holds (rollback and freeze
 * protection, as in TUF). This file is what the execution plane may import from the control plane.
 */
import { createHash, type KeyObject, verify } from 'node:crypto';
import { canonical } from '../util/canonical-json.js';
import { keyIdOf, loadPublicKey } from '../util/ed25519.js';

export { canonical, keyIdOf, loadPublicKey };

export interface SnapshotHeader {
  version: number;
  deploymentId: string;
  /** `sha256:<hex>` of the canonical document. */
  digest: string;
  /** The digest of the version before, or null for the first. */
  previousDigest: string | null;
  /** Epoch ms. */
  issuedAt: number;
  /** Epoch ms: a worker stops claiming on this snapshot after it (unless a newer one arrives). */
  expiresAt: number;
  /** Which signing key: `ed25519:<first 16 hex of SHA-256 of the public key>`. */
  keyId: string;
}

export interface Snapshot extends SnapshotHeader {
  document: unknown;
  /** Base64 Ed25519 signature over the canonical header. */
  signature: string;
}

export type RejectReason =
  | 'malformed'
  | 'unsigned'
  | 'unknown_key'
  | 'bad_signature'
  | 'digest_mismatch'
  | 'other_deployment'
  | 'older_version'
  | 'expired';

export type Verdict = { ok: true; snapshot: Snapshot } | { ok: false; reason: RejectReason; detail: string };

export function documentDigest(document: unknown): string {
  return `sha256:${createHash('sha256').update(canonical(document)).digest('hex')}`;
}

export function headerOf(s: SnapshotHeader): SnapshotHeader {
  const { version, deploymentId, digest, previousDigest, issuedAt, expiresAt, keyId } = s;
  return { version, deploymentId, digest, previousDigest, issuedAt, expiresAt, keyId };
}

/** The bytes the signature covers. */
export function signedBytes(s: SnapshotHeader): Buffer {
  return Buffer.from(canonical(headerOf(s)), 'utf8');
}

function isHeaderShaped(v: unknown): v is Snapshot {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return (
    Number.isSafeInteger(s.version) &&
    (s.version as number) >= 1 &&
    typeof s.deploymentId === 'string' &&
    typeof s.digest === 'string' &&
    (s.previousDigest === null || typeof s.previousDigest === 'string') &&
    Number.isSafeInteger(s.issuedAt) &&
    Number.isSafeInteger(s.expiresAt) &&
    typeof s.keyId === 'string' &&
    'document' in s
  );
}

/**
 * Check a snapshot as a worker must before applying it. `held` is the version the worker runs now
 * (0 for none); a snapshot of the same version is accepted only with the same digest (a re-send).
 */
export function verifySnapshot(
  value: unknown,
  trust: {
    publicKey: KeyObject;
    deploymentId: string;
    held: { version: number; digest: string | null };
    now: number;
  },
): Verdict {
  if (!isHeaderShaped(value))
    return {
      ok: false,
      reason: 'malformed',
      detail: 'not a snapshot (header fields missing or of the wrong type)',
    };
  const s = value;
  if (typeof s.signature !== 'string' || s.signature.length === 0) {
    return { ok: false, reason: 'unsigned', detail: `version ${s.version} carries no signature` };
  }
  const pinned = keyIdOf(trust.publicKey);
  if (s.keyId !== pinned) {
    return {
      ok: false,
      reason: 'unknown_key',
      detail: `version ${s.version} names key ${s.keyId}; the pinned key is ${pinned}`,
    };
  }
  let valid = false;
  const sig = Buffer.from(s.signature, 'base64');
  // Strict: exactly the 64 bytes of an Ed25519 signature, in canonical base64.
  if (sig.length === 64 && sig.toString('base64') === s.signature) {
    try {
      valid = verify(null, signedBytes(s), trust.publicKey, sig);
    } catch {
      valid = false;
    }
  }
  if (!valid)
    return {
      ok: false,
      reason: 'bad_signature',
      detail: `the signature of version ${s.version} does not verify`,
    };
  let digest: string;
  try {
    digest = documentDigest(s.document);
  } catch {
    return { ok: false, reason: 'malformed', detail: 'the document has no canonical JSON form' };
  }
  if (digest !== s.digest) {
    return {
      ok: false,
      reason: 'digest_mismatch',
      detail: `the document of version ${s.version} does not match its signed digest`,
    };
  }
  if (s.deploymentId !== trust.deploymentId) {
    return {
      ok: false,
      reason: 'other_deployment',
      detail: `version ${s.version} is for deployment '${s.deploymentId}', this worker belongs to '${trust.deploymentId}'`,
    };
  }
  if (
    s.version < trust.held.version ||
    (s.version === trust.held.version && s.digest !== trust.held.digest)
  ) {
    return {
      ok: false,
      reason: 'older_version',
      detail: `version ${s.version} is older than (or conflicts with) the held version ${trust.held.version}`,
    };
  }
  if (s.expiresAt <= trust.now) {
    return {
      ok: false,
      reason: 'expired',
      detail: `version ${s.version} expired at ${new Date(s.expiresAt).toISOString()}`,
    };
  }
  return { ok: true, snapshot: s };
}
