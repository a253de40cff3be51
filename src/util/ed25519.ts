/** Ed25519 public keys: loading one from PEM, and the short id a verifier pins it by. */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

/** `ed25519:` and the first 16 hex digits of SHA-256 over the key's SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return `ed25519:${createHash('sha256').update(der).digest('hex').slice(0, 16)}`;
}

export function loadPublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519')
    throw new TypeError(`expected an Ed25519 public key, got ${key.asymmetricKeyType}`);
  return key;
}
