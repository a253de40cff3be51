/**
 * The control plane's Ed25519 signing key: generated once (`bulkhead dev`, `bulkhead init`,
 * `bulkhead keys init`), kept as PEM files — `control.key` (private, mode 0600) and `control.pub`
 * (what workers pin) — and used to sign config snapshots.
 */

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  documentDigest,
  keyIdOf,
  loadPublicKey,
  type Snapshot,
  type SnapshotHeader,
  signedBytes,
} from './snapshot.js';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  publicPem: string;
}

export const PRIVATE_KEY_FILE = 'control.key';
export const PUBLIC_KEY_FILE = 'control.pub';

/** Load the key pair in `dir`, creating it first when absent. `created` says which. */
export function ensureSigningKey(dir: string): { key: SigningKey; created: boolean } {
  const priv = join(dir, PRIVATE_KEY_FILE);
  if (existsSync(priv)) return { key: loadSigningKey(dir), created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  chmodSync(priv, 0o600);
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  writeFileSync(join(dir, PUBLIC_KEY_FILE), publicPem, { mode: 0o644 });
  return { key: { privateKey, publicKey, keyId: keyIdOf(publicKey), publicPem }, created: true };
}

export function loadSigningKey(dir: string): SigningKey {
  const privateKey = createPrivateKey(readFileSync(join(dir, PRIVATE_KEY_FILE), 'utf8'));
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`${join(dir, PRIVATE_KEY_FILE)} is not an Ed25519 private key`);
  }
  const publicPem = readFileSync(join(dir, PUBLIC_KEY_FILE), 'utf8');
  const publicKey = loadPublicKey(publicPem);
  const derived = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  if (!derived.equals(publicKey.export({ type: 'spki', format: 'der' }))) {
    throw new TypeError(
      `${join(dir, PUBLIC_KEY_FILE)} is not the public half of ${join(dir, PRIVATE_KEY_FILE)}`,
    );
  }
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), publicPem };
}

/** Sign a new snapshot of `document`. */
export function signSnapshot(
  key: SigningKey,
  fields: {
    version: number;
    deploymentId: string;
    previousDigest: string | null;
    issuedAt: number;
    ttlMs: number;
  },
  document: unknown,
): Snapshot {
  const header: SnapshotHeader = {
    version: fields.version,
    deploymentId: fields.deploymentId,
    digest: documentDigest(document),
    previousDigest: fields.previousDigest,
    issuedAt: fields.issuedAt,
    expiresAt: fields.issuedAt + fields.ttlMs,
    keyId: key.keyId,
  };
  return {
    ...header,
    document,
    signature: sign(null, signedBytes(header), key.privateKey).toString('base64'),
  };
}
