/**
 * The manifest that ends a bundle (docs/EVIDENCE.md, "Bundles"): what the chain cannot bind.
 */
import { type KeyObject, verify } from 'node:crypto';
import { canonical } from './format.js';

/**
 * A bundle's last line: the SHA-256 of every line before it (each with its LF) and an Ed25519
 * signature over `canonical({ keyId, sha256, type: MANIFEST_TYPE })` by the exporting deployment's
 * key. It binds the header and which entries are disclosed, which the chain cannot.
 */
export interface BundleManifest {
  type: 'manifest';
  sha256: string;
  keyId: string;
  signature: string;
}

export const MANIFEST_TYPE = 'bulkhead.evidence.bundle-manifest.v1';
/** Every manifest line ends so (its keys in canonical order put `type` last). */
export const MANIFEST_END = '"type":"manifest"}';

function manifestMessage(m: { keyId: string; sha256: string }): string {
  return canonical({ keyId: m.keyId, sha256: m.sha256, type: MANIFEST_TYPE });
}

export function manifestLine(
  sha256: string,
  signer: { keyId: string; sign(message: string): string },
): string {
  return canonical({
    type: 'manifest',
    sha256,
    keyId: signer.keyId,
    signature: signer.sign(manifestMessage({ keyId: signer.keyId, sha256 })),
  });
}

/** A manifest line, or null when the line is not exactly one. */
export function parseManifest(line: string): BundleManifest | null {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (!o || typeof o !== 'object' || canonical(o) !== line) return null;
    if (Object.keys(o).sort().join() !== 'keyId,sha256,signature,type' || o.type !== 'manifest') return null;
    if (typeof o.keyId !== 'string' || typeof o.signature !== 'string') return null;
    if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256)) return null;
    return o as unknown as BundleManifest;
  } catch {
    return null;
  }
}

export function verifyManifest(m: BundleManifest, key: KeyObject): boolean {
  try {
    const sig = Buffer.from(m.signature, 'base64');
    return sig.toString('base64') === m.signature && verify(null, Buffer.from(manifestMessage(m)), key, sig);
  } catch {
    return false;
  }
}
