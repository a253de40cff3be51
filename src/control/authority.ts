/**
 * The authority record: what admission signs for every job it writes — who asked (tenant, key,
 * roles), for what (task, version, and the SHA-256 of the canonical input, never the input), under
 * which published config version, and when. It is stored on the job and shipped to the evidence
 * plane with the admission entry, so "who authorised this run?" has a signed answer.
 */
import { hash, sign, verify } from 'node:crypto';
import { canonical } from '../util/canonical-json.js';
import type { Principal } from './api-keys.js';
import type { SigningKey } from './signing-keys.js';

export const AUTHORITY_TYPE = 'bulkhead.authority.v1';

export interface AuthorityClaims {
  type: typeof AUTHORITY_TYPE;
  tenant: string;
  principal: string;
  roles: string[];
  task: string;
  taskVersion: number;
  /** `sha256:` + hex of canonical(input). */
  inputDigest: string;
  idempotencyKey: string | null;
  /** The published config version admission checked against (null before the first publish). */
  configVersion: number | null;
  admittedAt: number;
  keyId: string;
}

export interface AuthorityRecord extends AuthorityClaims {
  /** Ed25519 over canonical(claims), base64. */
  signature: string;
}

export function signAuthority(
  key: SigningKey,
  principal: Principal,
  job: { task: string; taskVersion: number; input: unknown; idempotencyKey?: string },
  configVersion: number | null,
  admittedAt = Date.now(),
): AuthorityRecord {
  const claims: AuthorityClaims = {
    type: AUTHORITY_TYPE,
    tenant: principal.tenant,
    principal: principal.keyId,
    roles: [...principal.roles],
    task: job.task,
    taskVersion: job.taskVersion,
    inputDigest: `sha256:${hash('sha256', canonical(job.input ?? null), 'hex')}`,
    idempotencyKey: job.idempotencyKey ?? null,
    configVersion,
    admittedAt,
    keyId: key.keyId,
  };
  return {
    ...claims,
    signature: sign(null, Buffer.from(canonical(claims)), key.privateKey).toString('base64'),
  };
}

/** Whether `record` is an authority record signed by `key` (and, with `input`, that it covers it). */
export function verifyAuthority(record: unknown, key: SigningKey['publicKey'], input?: unknown): boolean {
  if (!record || typeof record !== 'object') return false;
  const { signature, ...claims } = record as AuthorityRecord;
  if (typeof signature !== 'string' || claims.type !== AUTHORITY_TYPE) return false;
  try {
    if (!verify(null, Buffer.from(canonical(claims)), key, Buffer.from(signature, 'base64'))) return false;
  } catch {
    return false;
  }
  return input === undefined || claims.inputDigest === `sha256:${hash('sha256', canonical(input), 'hex')}`;
}
