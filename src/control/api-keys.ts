/**
 * API keys: `bh_<id>_<secret>`, where the id is public (shown in listings and logs, used to revoke)
 * and the secret is 32 random bytes, shown once at creation and stored only as its SHA-256. A
 * presented key is checked by id lookup and a constant-time comparison of the hashes.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, Registry, Role } from '../ledger/registry.js';

const KEY_FORMAT = /^bh_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface Principal {
  keyId: string;
  tenant: string;
  roles: Role[];
}

export interface CreatedKey {
  /** The full key text: shown once, never stored. */
  key: string;
  record: ApiKeyRecord;
}

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export async function createApiKey(
  registry: Registry,
  options: { tenant: string; roles: Role[]; name?: string },
): Promise<CreatedKey> {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record = await registry.createApiKey({
    id,
    tenant: options.tenant,
    roles: options.roles,
    name: options.name ?? '',
    secretHash: hashSecret(secret),
  });
  return { key: `bh_${id}_${secret}`, record };
}

/** Why a presented key was refused; the HTTP layer answers 401 for all of them alike. */
export type KeyRefusal = 'malformed' | 'unknown' | 'revoked' | 'mismatch';

export async function authenticate(
  registry: Registry,
  presented: string,
): Promise<{ ok: true; principal: Principal } | { ok: false; why: KeyRefusal }> {
  const m = KEY_FORMAT.exec(presented);
  if (!m) return { ok: false, why: 'malformed' };
  const [, id, secret] = m as unknown as [string, string, string];
  const record = await registry.findApiKey(id);
  // Hash and compare even for an unknown id, so timing does not tell which ids exist.
  const expected = Buffer.from(record?.secretHash ?? '0'.repeat(64), 'hex');
  const actual = Buffer.from(hashSecret(secret), 'hex');
  const match = timingSafeEqual(expected, actual);
  if (!record) return { ok: false, why: 'unknown' };
  if (!match) return { ok: false, why: 'mismatch' };
  if (record.revokedAt !== undefined) return { ok: false, why: 'revoked' };
  return { ok: true, principal: { keyId: record.id, tenant: record.tenant, roles: record.roles } };
}

/** The key id of a key text, for logs and revocation; undefined when it is not a key. */
export function keyIdOf(key: string): string | undefined {
  return KEY_FORMAT.exec(key)?.[1];
}
