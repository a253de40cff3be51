/**
 * The authority record: what admission signs for every job it writes, and what a worker verifies
 * before every attempt. It binds one job (its id, tenant, task and version, the SHA-256 of its
 * canonical input) to who asked (principal and roles), under which published config (version and
 * digest) of which deployment, with which contract (`scope`: the whole task contract, so the
 * published runtime, egress, timeouts and retries are what runs), until when (`deadline`), and, for
 * approved work, who approved it. Stored on the job, shipped to evidence with the admission entry.
 *
 * `verifyAuthority` is pure: it takes the pinned public key and the job as the ledger holds it, and
 * names the first thing that does not hold.
 */
import { hash, type KeyObject, sign, verify } from 'node:crypto';
import { canonical } from '../util/canonical-json.js';
import { parseContract, type TaskContract } from './contract.js';
import type { SigningKey } from './signing-keys.js';

export const AUTHORITY_TYPE = 'bulkhead.authority.v2';

/** One approver's decision, recorded in the job's authority record (re-signed at each decision). */
export interface ApprovalDecision {
  decision: 'approve' | 'reject';
  principal: string;
  at: number;
  comment: string | null;
  configVersion: number | null;
}

export interface AuthorityClaims {
  type: typeof AUTHORITY_TYPE;
  jobId: string;
  deploymentId: string;
  tenant: string;
  /** The API key id that submitted, or `system:<part>` for work the system started. */
  principal: string;
  roles: string[];
  task: string;
  taskVersion: number;
  /** `sha256:` + hex of canonical(input). */
  inputDigest: string;
  idempotencyKey: string | null;
  /** The published config version and digest admission checked against (null before the first publish). */
  configVersion: number | null;
  configDigest: string | null;
  /** The contract the job runs under. */
  scope: TaskContract;
  /**
   * Epoch ms after which the job must not run (the job's deadline, which the row carries), or null.
   * While the job awaits approval it is the end of the approval window when that comes first.
   */
  deadline: number | null;
  /** The deadline the submitter asked for: the job's deadline again once it is approved. */
  requestedDeadline: number | null;
  /** Distinct approvers the job needs before it runs (0: none). */
  approvalsRequired: number;
  /** Whether it starts only with fresh control contact. */
  freshControl: boolean;
  admittedAt: number;
  /** The decisions approvers made on it, in order (empty when none was needed or made). */
  approvals: ApprovalDecision[];
  /** The signing key's id. */
  keyId: string;
}

export interface AuthorityRecord extends AuthorityClaims {
  /** Ed25519 over canonical(claims), base64. */
  signature: string;
}

export const inputDigest = (input: unknown) => `sha256:${hash('sha256', canonical(input ?? null), 'hex')}`;

export function signAuthority(
  key: SigningKey,
  claims: Omit<AuthorityClaims, 'type' | 'keyId'>,
): AuthorityRecord {
  const full: AuthorityClaims = { type: AUTHORITY_TYPE, ...claims, keyId: key.keyId };
  return { ...full, signature: sign(null, Buffer.from(canonical(full)), key.privateKey).toString('base64') };
}

/** What a worker trusts: the control plane's pinned public key and its deployment. */
export interface AuthorityTrust {
  publicKey: KeyObject;
  keyId: string;
  deploymentId: string;
}

/** The job as the ledger holds it: every field the record must agree with. */
export interface JobFacts {
  id: string;
  tenant: string;
  task: string;
  taskVersion: number;
  input: unknown;
  queue: string;
  maxAttempts: number;
  leaseMs: number;
  backoff: { baseMs: number; maxMs: number };
  classification: string;
  deadline?: number;
  authority?: unknown;
}

export type AuthorityVerdict = { ok: true; claims: AuthorityClaims } | { ok: false; why: string };

const refuse = (why: string): AuthorityVerdict => ({ ok: false, why });

/**
 * Whether `job.authority` is a record signed by the trusted key, of this deployment, for exactly
 * this job: id, tenant, task@version, input, deadline and the contract fields the ledger copied onto
 * the row (queue, attempts, lease, backoff, classification). The first failing check is named.
 */
export function verifyAuthority(job: JobFacts, trust: AuthorityTrust): AuthorityVerdict {
  const record = job.authority;
  if (record === undefined || record === null) return refuse('the job has no authority record');
  if (typeof record !== 'object' || Array.isArray(record))
    return refuse('the authority record is not an object');
  const { signature, ...claims } = record as AuthorityRecord;
  if (claims.type !== AUTHORITY_TYPE) {
    return refuse(`the authority record's type is ${JSON.stringify(claims.type)}, not '${AUTHORITY_TYPE}'`);
  }
  if (claims.keyId !== trust.keyId) {
    return refuse(
      `the authority record is signed by key ${String(claims.keyId)}, not the pinned ${trust.keyId}`,
    );
  }
  if (typeof signature !== 'string') return refuse('the authority record has no signature');
  let valid = false;
  try {
    valid = verify(null, Buffer.from(canonical(claims)), trust.publicKey, Buffer.from(signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid) return refuse('the authority record signature does not verify (forged or altered)');
  const c = claims as AuthorityClaims;
  if (c.deploymentId !== trust.deploymentId) return refuse(`the record is for deployment ${c.deploymentId}`);
  if (c.jobId !== job.id) return refuse(`the record is for job ${c.jobId}, not ${job.id}`);
  if (c.tenant !== job.tenant) return refuse(`the record is for tenant ${c.tenant}, not ${job.tenant}`);
  if (c.task !== job.task || c.taskVersion !== job.taskVersion) {
    return refuse(`the record is for ${c.task}@${c.taskVersion}, not ${job.task}@${job.taskVersion}`);
  }
  if (c.inputDigest !== inputDigest(job.input))
    return refuse('the job input is not the one the record covers');
  if ((c.deadline ?? null) !== (job.deadline ?? null))
    return refuse('the job deadline is not the signed one');
  let scope: TaskContract;
  try {
    scope = parseContract(c.scope, 'authority scope');
  } catch (err) {
    return refuse((err as Error).message);
  }
  const row = {
    queue: job.queue,
    maxAttempts: job.maxAttempts,
    leaseMs: job.leaseMs,
    backoff: job.backoff,
    maxClassification: job.classification,
  };
  for (const [k, v] of Object.entries(row)) {
    const signed = scope[k as keyof typeof row];
    if (JSON.stringify(signed) !== JSON.stringify(v)) {
      return refuse(`the job's ${k} ${JSON.stringify(v)} is not the signed ${JSON.stringify(signed)}`);
    }
  }
  return { ok: true, claims: { ...c, scope } };
}
