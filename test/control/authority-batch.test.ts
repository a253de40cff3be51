/**
 * Batch signing of authority records (src/control/authority.ts): for any batch size, every record
 * verifies with one signature over the batch's Merkle root; a changed claim, a changed or reordered
 * proof step, or another batch's signature never verifies; and a root verified once is not verified
 * again. Pure: no store.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AuthorityClaims,
  type AuthorityRecord,
  inputDigest,
  type JobFacts,
  signAuthorities,
  verifyAuthority,
} from '../../src/control/authority.js';
import { contractDefaults } from '../../src/control/contract.js';
import { keyIdOf } from '../../src/util/ed25519.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const key = { privateKey, publicKey, keyId: keyIdOf(publicKey), publicPem: '' };
const trust = { publicKey, keyId: key.keyId, deploymentId: 'dep' };
const scope = contractDefaults();

const claims = (i: number): Omit<AuthorityClaims, 'type' | 'keyId'> => ({
  jobId: `job-${i}`,
  deploymentId: 'dep',
  tenant: 'acme',
  principal: 'k',
  roles: ['submitter'],
  task: 't',
  taskVersion: 1,
  inputDigest: inputDigest({ i }),
  idempotencyKey: null,
  configVersion: 3,
  configDigest: null,
  scope,
  deadline: null,
  requestedDeadline: null,
  approvalsRequired: 0,
  freshControl: false,
  admittedAt: 1,
  approvals: [],
});

const jobOf = (i: number, authority: unknown): JobFacts => ({
  id: `job-${i}`,
  tenant: 'acme',
  task: 't',
  taskVersion: 1,
  input: { i },
  queue: scope.queue,
  maxAttempts: scope.maxAttempts,
  leaseMs: scope.leaseMs,
  backoff: scope.backoff,
  classification: scope.maxClassification,
  authority,
});

describe('authority records signed in batches', () => {
  it('every record of a batch of any size verifies; one signature check serves the batch', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), (n) => {
        const records = signAuthorities(
          key,
          Array.from({ length: n }, (_, i) => claims(i)),
        );
        assert.equal(new Set(records.map((r) => r.signature)).size, 1, 'one signature for the batch');
        const roots = new Set<string>();
        records.forEach((r, i) => {
          const v = verifyAuthority(jobOf(i, r), trust, roots);
          assert.equal(v.ok, true, JSON.stringify(v));
          assert.ok(r.proof.length <= Math.ceil(Math.log2(n)), `proof of ${r.proof.length} steps for ${n}`);
        });
        assert.equal(roots.size, 1, 'the root was verified once and kept');
      }),
      { numRuns: 40 },
    );
  });

  it('a changed claim, a changed, dropped or reordered proof step, or a foreign signature is refused', () => {
    const records = signAuthorities(
      key,
      Array.from({ length: 9 }, (_, i) => claims(i)),
    );
    const other = signAuthorities(key, [claims(0)])[0] as AuthorityRecord;
    const r = records[4] as AuthorityRecord;
    const flip = (h: string) => `${h.slice(0, 2)}${h[2] === '0' ? '1' : '0'}${h.slice(3)}`;
    const variants: [string, unknown][] = [
      ['a claim', { ...r, principal: 'someone-else' }],
      ['a proof hash', { ...r, proof: [flip(r.proof[0] as string), ...r.proof.slice(1)] }],
      [
        'a proof side',
        {
          ...r,
          proof: [`${r.proof[0]?.startsWith('L') ? 'R' : 'L'}${r.proof[0]?.slice(1)}`, ...r.proof.slice(1)],
        },
      ],
      ['a dropped step', { ...r, proof: r.proof.slice(1) }],
      ['reordered steps', { ...r, proof: [...r.proof].reverse() }],
      ['a malformed step', { ...r, proof: ['X:00', ...r.proof.slice(1)] }],
      ["another batch's signature", { ...r, signature: other.signature }],
    ];
    for (const [what, record] of variants) {
      const v = verifyAuthority(jobOf(4, record), trust, new Set());
      assert.equal(v.ok, false, `${what} must not verify`);
    }
    // A verified root does not vouch for altered claims under it.
    const roots = new Set<string>();
    assert.equal(verifyAuthority(jobOf(4, r), trust, roots).ok, true);
    assert.equal(verifyAuthority(jobOf(4, { ...r, tenant: 'globex' }), trust, roots).ok, false);
  });
});
