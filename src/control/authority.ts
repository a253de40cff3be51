/**
 * The authority record: what admission signs for every job it writes, and what a worker verifies
 * before every attempt. It binds one job (its id, tenant, task and version, the SHA-256 of its
 * canonical input) to who asked (principal and roles), under which published config (version and
 * digest) of which deployment, with which contract (`scope`: the whole task contract, so the
 * published runtime, egress, timeouts and retries are what runs), until when (`deadline`), and, for
 * approved work, who approved it. Stored on the job, shipped to evidence with the admission entry.
 *
 * Signing is batched: the records admission writes in one call are the leaves of a Merkle tree
 * (leaf = SHA-256(0x00 ‖ canonical(claims)), node = SHA-256(0x01 ‖ left ‖ right), an odd node moves
 * up as it is), and one Ed25519 signature covers its root. Each record carries its `proof` (the
 * sibling hashes up to the root, `L:`/`R:` for the side each sits on) and the batch's `signature`:
 * a batch of 1,000 is signed once, and a worker verifies one signature per batch (it keeps verified
 * roots), plus a few hashes per job. A single job is a batch of one: its root is its leaf.
 *
 * `verifyAuthority` is pure: it takes the pinned public key and the job as the ledger holds it, and
 * names the first thing that does not hold.
 */
import { createHash, hash, type KeyObject, sign, verify } from 'node:crypto';
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
  /** The sibling hashes from this record's leaf to its batch's root: `L:<hex>` or `R:<hex>`. */
  proof: string[];
  /** Ed25519 over canonical({ type: 'bulkhead.authority-root.v1', keyId, root }), base64. */
  signature: string;
}

const ROOT_TYPE = 'bulkhead.authority-root.v1';
const sha = (...parts: (Buffer | string)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const leafOf = (claims: AuthorityClaims) => sha(Buffer.of(0), canonical(claims));
const nodeOf = (left: Buffer, right: Buffer) => sha(Buffer.of(1), left, right);
const rootMessage = (keyId: string, root: Buffer) =>
  Buffer.from(canonical({ type: ROOT_TYPE, keyId, root: root.toString('hex') }));

export const inputDigest = (input: unknown) => `sha256:${hash('sha256', canonical(input ?? null), 'hex')}`;

/** Sign the records of one batch with one signature over their Merkle root; in input order. */
export function signAuthorities(
  key: SigningKey,
  batch: Omit<AuthorityClaims, 'type' | 'keyId'>[],
): AuthorityRecord[] {
  if (batch.length === 0) return [];
  const claims: AuthorityClaims[] = batch.map((c) => ({ type: AUTHORITY_TYPE, ...c, keyId: key.keyId }));
  const proofs: string[][] = claims.map(() => []);
  // Each level: the nodes, each over a contiguous range of leaves [start, end), whose proofs grow.
  let level = claims.map((c, i) => ({ hash: leafOf(c), start: i, end: i + 1 }));
  while (level.length > 1) {
    const next: typeof level = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i] as (typeof level)[number];
      const right = level[i + 1];
      if (!right) {
        next.push(left);
        continue;
      }
      const toRight = `R:${right.hash.toString('hex')}`;
      const toLeft = `L:${left.hash.toString('hex')}`;
      for (let l = left.start; l < left.end; l++) proofs[l]?.push(toRight);
      for (let l = right.start; l < right.end; l++) proofs[l]?.push(toLeft);
      next.push({ hash: nodeOf(left.hash, right.hash), start: left.start, end: right.end });
    }
    level = next;
  }
  const root = (level[0] as (typeof level)[number]).hash;
  const signature = sign(null, rootMessage(key.keyId, root), key.privateKey).toString('base64');
  return claims.map((c, i) => ({ ...c, proof: proofs[i] ?? [], signature }));
}

export function signAuthority(
  key: SigningKey,
  claims: Omit<AuthorityClaims, 'type' | 'keyId'>,
): AuthorityRecord {
  return signAuthorities(key, [claims])[0] as AuthorityRecord;
}

/** The root a record's claims and proof lead to, or undefined when the proof is malformed. */
function rootOf(claims: AuthorityClaims, proof: unknown): Buffer | undefined {
  if (!Array.isArray(proof) || proof.length > 64) return undefined;
  let hash = leafOf(claims);
  for (const step of proof) {
    const m = typeof step === 'string' ? /^([LR]):([0-9a-f]{64})$/.exec(step) : null;
    if (!m) return undefined;
    const sibling = Buffer.from(m[2] as string, 'hex');
    hash = m[1] === 'L' ? nodeOf(sibling, hash) : nodeOf(hash, sibling);
  }
  return hash;
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

/** Parsed scopes by their JSON text: a deployment has few contracts, and each is parsed once. */
const scopes = new Map<string, TaskContract>();
function scopeOf(value: unknown): TaskContract {
  const text = JSON.stringify(value);
  let scope = scopes.get(text);
  if (!scope) {
    scope = parseContract(value, 'authority scope');
    if (scopes.size >= 1000) scopes.clear();
    scopes.set(text, scope);
  }
  return scope;
}

/**
 * Whether `job.authority` is a record signed by the trusted key, of this deployment, for exactly
 * this job: id, tenant, task@version, input, deadline and the contract fields the ledger copied onto
 * the row (queue, attempts, lease, backoff, classification). The first failing check is named.
 */
export function verifyAuthority(
  job: JobFacts,
  trust: AuthorityTrust,
  /** Roots whose signature was verified already (`<root hex>:<signature>`), kept by the caller. */
  verifiedRoots?: Set<string>,
): AuthorityVerdict {
  const record = job.authority;
  if (record === undefined || record === null) return refuse('the job has no authority record');
  if (typeof record !== 'object' || Array.isArray(record))
    return refuse('the authority record is not an object');
  const { signature, proof, ...claims } = record as AuthorityRecord;
  if (claims.type !== AUTHORITY_TYPE) {
    return refuse(`the authority record's type is ${JSON.stringify(claims.type)}, not '${AUTHORITY_TYPE}'`);
  }
  if (claims.keyId !== trust.keyId) {
    return refuse(
      `the authority record is signed by key ${String(claims.keyId)}, not the pinned ${trust.keyId}`,
    );
  }
  if (typeof signature !== 'string') return refuse('the authority record has no signature');
  const root = rootOf(claims as AuthorityClaims, proof);
  if (!root) return refuse('the authority record has no valid proof');
  const rootKey = `${root.toString('hex')}:${signature}`;
  if (!verifiedRoots?.has(rootKey)) {
    let valid = false;
    try {
      valid = verify(null, rootMessage(trust.keyId, root), trust.publicKey, Buffer.from(signature, 'base64'));
    } catch {
      valid = false;
    }
    if (!valid) return refuse('the authority record signature does not verify (forged or altered)');
    verifiedRoots?.add(rootKey);
  }
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
    scope = scopeOf(c.scope);
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
