/**
 * The worker's authority gate: before every attempt, the job's signed authority record is verified
 * against the control plane's pinned key and deployment (see `control/authority.ts`); heartbeats
 * never verify. A batch root's signature is verified once for all the jobs admitted in that batch
 * (the roots are kept); each job's own check is then a few hashes. A
 * worker built with `authority: 'unverified'` (a library user without a control plane) runs every
 * job by its task code's contract and says so once, at start.
 */
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

/** Verified batch roots kept at most (all are dropped at once past it, and verified again when seen). */
const CACHE_SIZE = 10_000;

export class AuthorityGate {
  private readonly trust: AuthorityTrust | undefined;
  /** Batch roots whose signature verified: a batch admitted together costs one signature check. */
  private readonly roots = new Set<string>();

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
    if (this.roots.size >= CACHE_SIZE) this.roots.clear();
    return verifyAuthority(job, this.trust, this.roots);
  }
}
