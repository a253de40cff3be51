/**
 * Signed config snapshots (DESIGN §4): a good snapshot verifies against the pinned key, and every
 * attack on it is refused with the right reason — a changed document, a changed signature, another
 * key, changed header fields, rollback, freeze (expiry), another deployment, no signature, garbage
 * (never a throw). Also the signing key files: created once, private key 0600, stable key ids.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ensureSigningKey,
  loadSigningKey,
  PRIVATE_KEY_FILE,
  PUBLIC_KEY_FILE,
  type SigningKey,
  signSnapshot,
} from '../../src/control/signing-keys.js';
import {
  documentDigest,
  keyIdOf,
  loadPublicKey,
  type RejectReason,
  type Snapshot,
  type SnapshotHeader,
  signedBytes,
  verifySnapshot,
} from '../../src/control/snapshot.js';

const DEPLOYMENT = 'dep-prod';
const ISSUED = 1_700_000_000_000;
const TTL = 300_000;
const NOW = ISSUED + 1000;
const DOC = {
  configTtlMs: 300_000,
  tenants: [{ name: 'acme' }],
  taskTypes: [{ name: 'media.resize', leaseMs: 30_000, effect: 'write' }],
};
const OTHER_DIGEST = `sha256:${'ab'.repeat(32)}`;

let dir: string;
let key: SigningKey;
let other: SigningKey;

const trust = (over: { held?: { version: number; digest: string | null }; now?: number } = {}) => ({
  publicKey: key.publicKey,
  deploymentId: DEPLOYMENT,
  held: over.held ?? { version: 0, digest: null },
  now: over.now ?? NOW,
});
const snap = (
  fields: Partial<{ version: number; deploymentId: string; previousDigest: string | null }> = {},
  document: unknown = DOC,
  by: SigningKey = key,
): Snapshot =>
  signSnapshot(
    by,
    { version: 3, deploymentId: DEPLOYMENT, previousDigest: null, issuedAt: ISSUED, ttlMs: TTL, ...fields },
    document,
  );
/** Sign an arbitrary header (and attach any document) as an attacker holding `by` would. */
const forge = (header: SnapshotHeader, document: unknown, by: SigningKey): Snapshot => ({
  ...header,
  document,
  signature: sign(null, signedBytes(header), by.privateKey).toString('base64'),
});
const flipBit = (b64: string, bit: number): string => {
  const bytes = Buffer.from(b64, 'base64');
  bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return bytes.toString('base64');
};
function rejected(value: unknown, reason: RejectReason, t = trust()): string {
  const v = verifySnapshot(value, t);
  if (v.ok) assert.fail(`expected '${reason}', the snapshot verified`);
  assert.equal(v.reason, reason, v.detail);
  return v.detail;
}
function accepted(value: unknown, t = trust()): Snapshot {
  const v = verifySnapshot(value, t);
  if (!v.ok) assert.fail(`expected to verify, got '${v.reason}': ${v.detail}`);
  return v.snapshot;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulkhead-snapshot-'));
  key = ensureSigningKey(join(dir, 'control')).key;
  other = ensureSigningKey(join(dir, 'attacker')).key;
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('snapshot: a good snapshot', () => {
  it('verifies against the pinned key and is returned as is', () => {
    const s = snap();
    assert.equal(s.digest, documentDigest(DOC));
    assert.equal(s.expiresAt, ISSUED + TTL);
    assert.equal(s.keyId, key.keyId);
    assert.deepEqual(accepted(s), s);
  });

  it('survives a JSON round trip (what travels over the wire)', () => {
    accepted(JSON.parse(JSON.stringify(snap({ previousDigest: OTHER_DIGEST }))));
  });

  it('the digest is over canonical JSON: key order does not matter, content does', () => {
    assert.equal(
      documentDigest({ a: 1, b: [1, { y: 2, x: 1 }] }),
      documentDigest({ b: [1, { x: 1, y: 2 }], a: 1 }),
    );
    assert.notEqual(documentDigest({ a: 1 }), documentDigest({ a: '1' }));
    const expected = createHash('sha256').update('{"a":1,"b":[true,null]}').digest('hex');
    assert.equal(documentDigest({ b: [true, null], a: 1 }), `sha256:${expected}`);
  });

  it('the signed bytes are the canonical header only', () => {
    const s = snap();
    const text = signedBytes(s).toString('utf8');
    const { document: _d, signature: _s, ...header } = s;
    assert.deepEqual(JSON.parse(text), header);
    assert.deepEqual(Object.keys(JSON.parse(text)), Object.keys(header).sort());
    assert.ok(verify(null, signedBytes(s), key.publicKey, Buffer.from(s.signature, 'base64')));
  });
});

describe('snapshot: tampering is refused', () => {
  it('a changed string or number in the document is a digest_mismatch', () => {
    const s = snap();
    const renamed = structuredClone(s) as Snapshot & { document: typeof DOC };
    renamed.document.tenants[0] = { name: 'acmf' };
    assert.match(rejected(renamed, 'digest_mismatch'), /version 3 does not match its signed digest/);
    const bumped = structuredClone(s) as Snapshot & { document: typeof DOC };
    bumped.document.configTtlMs = 300_001;
    rejected(bumped, 'digest_mismatch');
    rejected({ ...s, document: { ...DOC, extra: true } }, 'digest_mismatch');
    rejected({ ...s, document: null }, 'digest_mismatch');
  });

  it('a changed document with its digest recomputed is a bad_signature', () => {
    const doc = { ...DOC, configTtlMs: 1 };
    rejected({ ...snap(), document: doc, digest: documentDigest(doc) }, 'bad_signature');
  });

  it('a flipped bit in the signature is a bad_signature', () => {
    const s = snap();
    for (const bit of [0, 7, 8, 255, 256, 500, 511]) {
      const detail = rejected({ ...s, signature: flipBit(s.signature, bit) }, 'bad_signature');
      assert.equal(detail, 'the signature of version 3 does not verify');
    }
  });

  it('a truncated, extended or non-base64 signature is a bad_signature, not a throw', () => {
    const s = snap();
    const raw = Buffer.from(s.signature, 'base64');
    rejected({ ...s, signature: raw.subarray(0, 63).toString('base64') }, 'bad_signature');
    rejected({ ...s, signature: Buffer.concat([raw, Buffer.from([0])]).toString('base64') }, 'bad_signature');
    rejected({ ...s, signature: '!!!not base64!!!' }, 'bad_signature');
  });

  it('a signature by another key claiming the pinned keyId is a bad_signature', () => {
    rejected(snap({}, DOC, { ...other, keyId: key.keyId }), 'bad_signature');
  });

  it('a snapshot signed by another key naming its own keyId is unknown_key', () => {
    const detail = rejected(snap({}, DOC, other), 'unknown_key');
    assert.ok(detail.includes(other.keyId) && detail.includes(key.keyId), detail);
  });

  it('header fields changed after signing are a bad_signature', () => {
    const s = snap();
    const changes: Array<Partial<SnapshotHeader>> = [
      { version: 4 },
      { version: 2 },
      { expiresAt: s.expiresAt + 86_400_000 },
      { issuedAt: s.issuedAt + 1 },
      { deploymentId: 'dep-other' },
      { previousDigest: OTHER_DIGEST },
      { digest: OTHER_DIGEST },
    ];
    for (const change of changes) {
      rejected({ ...s, ...change }, 'bad_signature', trust({ now: ISSUED }));
    }
    const chained = snap({ previousDigest: OTHER_DIGEST });
    rejected({ ...chained, previousDigest: null }, 'bad_signature');
  });
});

describe('snapshot: rollback, freeze and misdirection', () => {
  it('an older version than the one held is older_version', () => {
    const detail = rejected(
      snap({ version: 3 }),
      'older_version',
      trust({ held: { version: 5, digest: OTHER_DIGEST } }),
    );
    assert.match(detail, /version 3 .* held version 5/);
  });

  it('the same version with another digest is older_version', () => {
    rejected(snap({ version: 5 }), 'older_version', trust({ held: { version: 5, digest: OTHER_DIGEST } }));
  });

  it('the same version with the same digest is accepted (a re-send); a newer one too', () => {
    const s = snap({ version: 5 });
    accepted(s, trust({ held: { version: 5, digest: s.digest } }));
    accepted(snap({ version: 6 }), trust({ held: { version: 5, digest: s.digest } }));
  });

  it('an expired snapshot (expiresAt <= now) is expired', () => {
    const s = snap();
    const detail = rejected(s, 'expired', trust({ now: s.expiresAt }));
    assert.ok(detail.includes(new Date(s.expiresAt).toISOString()), detail);
    rejected(s, 'expired', trust({ now: s.expiresAt + 1 }));
    accepted(s, trust({ now: s.expiresAt - 1 }));
  });

  it('a snapshot for another deployment is other_deployment', () => {
    const detail = rejected(snap({ deploymentId: 'dep-staging' }), 'other_deployment');
    assert.ok(detail.includes("'dep-staging'") && detail.includes(`'${DEPLOYMENT}'`), detail);
  });

  it('a missing or empty signature is unsigned', () => {
    const { signature: _s, ...noSignature } = snap();
    assert.match(rejected(noSignature, 'unsigned'), /version 3 carries no signature/);
    rejected({ ...noSignature, signature: '' }, 'unsigned');
    rejected({ ...noSignature, signature: null }, 'unsigned');
  });

  it('garbage is malformed, never a throw', () => {
    const { document: _d, ...noDocument } = snap();
    const garbage: unknown[] = [
      null,
      undefined,
      {},
      [],
      [snap()],
      'snapshot',
      42,
      true,
      noDocument,
      { ...snap(), version: 0 },
      { ...snap(), version: 1.5 },
      { ...snap(), version: '3' },
      { ...snap(), issuedAt: String(ISSUED) },
      { ...snap(), expiresAt: Number.POSITIVE_INFINITY },
      { ...snap(), deploymentId: 7 },
      { ...snap(), digest: null },
      { ...snap(), previousDigest: undefined },
      { ...snap(), keyId: undefined },
    ];
    for (const value of garbage) {
      const v = verifySnapshot(value, trust());
      assert.equal(v.ok, false, JSON.stringify(value));
      if (!v.ok) assert.equal(v.reason, 'malformed', `${JSON.stringify(value)}: ${v.detail}`);
    }
  });

  it('a validly signed snapshot whose document has no canonical JSON form is malformed', () => {
    const header: SnapshotHeader = { ...snap(), digest: OTHER_DIGEST };
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    assert.match(rejected(forge(header, cyclic, key), 'malformed'), /no canonical JSON form/);
    rejected(forge(header, { s: '\ud800' }, key), 'malformed');
  });
});

describe('snapshot: properties', () => {
  it('any JSON document signs and verifies; any single flipped signature bit never verifies', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 0, max: 511 }), (document, bit) => {
        const s = snap({}, document);
        accepted(s);
        accepted(JSON.parse(JSON.stringify(s)));
        const v = verifySnapshot({ ...s, signature: flipBit(s.signature, bit) }, trust());
        assert.equal(v.ok, false);
        if (!v.ok) assert.equal(v.reason, 'bad_signature');
      }),
      { numRuns: 300 },
    );
  });
});

describe('signing keys', () => {
  it('ensureSigningKey creates control.key (0600) and control.pub once', () => {
    const d = join(dir, 'fresh', 'nested');
    const first = ensureSigningKey(d);
    assert.equal(first.created, true);
    assert.equal(statSync(d).mode & 0o777, 0o700, 'the key directory is 0700');
    assert.equal(statSync(join(d, PRIVATE_KEY_FILE)).mode & 0o777, 0o600, 'control.key is 0600');
    assert.equal(PRIVATE_KEY_FILE, 'control.key');
    assert.equal(PUBLIC_KEY_FILE, 'control.pub');
    const pub = readFileSync(join(d, PUBLIC_KEY_FILE), 'utf8');
    assert.match(pub, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.equal(pub, first.key.publicPem);
    assert.match(first.key.keyId, /^ed25519:[0-9a-f]{16}$/);
    assert.equal(keyIdOf(loadPublicKey(pub)), first.key.keyId);

    const privBefore = readFileSync(join(d, PRIVATE_KEY_FILE), 'utf8');
    const second = ensureSigningKey(d);
    assert.equal(second.created, false);
    assert.equal(second.key.keyId, first.key.keyId);
    assert.equal(second.key.publicPem, first.key.publicPem);
    assert.equal(readFileSync(join(d, PRIVATE_KEY_FILE), 'utf8'), privBefore, 'control.key is not rewritten');
    assert.equal(loadSigningKey(d).keyId, first.key.keyId);
  });

  it('a snapshot signed with a reloaded key verifies against the first key', () => {
    const reloaded = loadSigningKey(join(dir, 'control'));
    accepted(snap({}, DOC, reloaded));
  });

  it('loadPublicKey refuses a non-Ed25519 key with a TypeError naming its type', () => {
    const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }).toString();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const x25519 = generateKeyPairSync('x25519').publicKey;
    for (const [k, type] of [
      [rsa, 'rsa'],
      [ec, 'ec'],
      [x25519, 'x25519'],
    ] as const) {
      assert.throws(
        () => loadPublicKey(pem(k)),
        (err: unknown) =>
          err instanceof TypeError && err.message === `expected an Ed25519 public key, got ${type}`,
      );
    }
    assert.throws(() => loadPublicKey('not a key'));
  });

  it('keyIdOf is stable for the same key and differs between keys', () => {
    const der = key.publicKey.export({ type: 'spki', format: 'der' });
    const expected = `ed25519:${createHash('sha256').update(der).digest('hex').slice(0, 16)}`;
    assert.equal(keyIdOf(key.publicKey), expected);
    assert.equal(keyIdOf(loadPublicKey(key.publicPem)), expected);
    assert.equal(keyIdOf(createPublicKey({ key: der, format: 'der', type: 'spki' })), expected);
    assert.equal(keyIdOf(createPublicKey(key.privateKey)), expected);
    assert.notEqual(keyIdOf(other.publicKey), expected);
    assert.ok(existsSync(join(dir, 'control', PUBLIC_KEY_FILE)));
  });
});
