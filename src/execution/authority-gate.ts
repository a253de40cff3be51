/**
 * The worker's authority gate: before every attempt, the job's signed authority record is verified
 * against the control plane's pinned key and deployment (see `control/authority.ts`). A verdict is
 * kept per job and record, so a job's later attempts, and its heartbeats, never verify again. A
 * worker built with `authority: 'unverified'` (a library user without a control plane) runs every
 * job by its task code's contract and says so once, at start.
 */
import { createHash } from 'node:crypto';
import {
  type AuthorityTrust,
  type AuthorityVerdict,
  type JobFacts,
  verifyAuthority,
} from '../control/authority.js';
import { keyIdOf, loadPublicKey } from '../control/snapshot.js';

/** The control plane's public key (PEM) and deployment id, as pinned on the worker's host. */
export interface AuthorityPin {
  publicKeyPem: string;
  deploymentId: string;
}

/** Verdicts kept at most (oldest dropped first); one per job in flight is all that is needed. */
const CACHE_SIZE = 10_000;

export class AuthorityGate {
  private readonly trust: AuthorityTrust | undefined;
  private readonly verdicts = new Map<string, AuthorityVerdict>();

  constructor(pin: AuthorityPin | 'unverified') {
    if (pin === 'unverified') return;
    const publicKey = loadPublicKey(pin.publicKeyPem);
    this.trust = { publicKey, keyId: keyIdOf(publicKey), deploymentId: pin.deploymentId };
  }

  get verifies(): boolean {
    return this.trust !== undefined;
  }

  /** The verdict on `job`'s record; `ok` with no claims when this gate does not verify. */
  check(job: JobFacts): AuthorityVerdict | { ok: true; claims?: undefined } {
    if (!this.trust) return { ok: true };
    const record = JSON.stringify(job.authority ?? null);
    const key = `${job.id}:${createHash('sha256').update(record).digest('base64')}`;
    let verdict = this.verdicts.get(key);
    if (!verdict) {
      verdict = verifyAuthority(job, this.trust);
      if (this.verdicts.size >= CACHE_SIZE) {
        const oldest = this.verdicts.keys().next().value;
        if (oldest !== undefined) this.verdicts.delete(oldest);
      }
      this.verdicts.set(key, verdict);
    }
    return verdict;
  }
}
