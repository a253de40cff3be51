/**
 * The worker's ConfigAgent against signed-config attacks (DESIGN §4): a fake control plane serves a
 * good snapshot, then tampered, foreign, rolled-back, expired and other-deployment ones. Each is
 * NACKed once with its reason while the agent stays on its last-known-good version (gate and cache
 * file unchanged); a good newer version is then applied and ACKed. The LKG cache survives a restart
 * without a reachable control plane (claims until it expires) and a tampered cache is refused.
 */
import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ensureSigningKey, type SigningKey, signSnapshot } from '../../src/control/signing-keys.js';
import {
  headerOf,
  type RejectReason,
  type Snapshot,
  type SnapshotHeader,
  signedBytes,
} from '../../src/control/snapshot.js';
import { ConfigAgent, type ConfigSource } from '../../src/execution/config-agent.js';

const DEP = 'dep-agent-test';
const DOC = {
  configTtlMs: 60_000,
  freshnessMs: 30_000,
  tenants: [{ name: 'acme' }],
  taskTypes: [{ name: 'ctl.purge', effect: 'destructive' }],
};
const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

type Report = { version: number; status: 'ack' | 'nack'; reason?: string };

/** A control plane under the test's command: serves exactly what it is given, once each. */
class FakeSource implements ConfigSource {
  readonly reports: Report[] = [];
  readonly waits: number[] = [];
  fetches = 0;
  private readonly pending: unknown[] = [];
  private wake: (() => void) | undefined;

  serve(value: unknown): void {
    this.pending.push(value);
    this.wake?.();
  }

  /** Serve `value` and wait until the agent has handled it (it is back asking for the next). */
  async deliver(value: unknown): Promise<void> {
    const before = this.fetches;
    this.serve(value);
    await until(() => this.fetches > before && this.pending.length === 0, 'the agent to handle a snapshot');
  }

  async fetch(_after: number, waitMs: number, signal: AbortSignal): Promise<unknown> {
    this.fetches++;
    this.waits.push(waitMs);
    while (this.pending.length === 0) {
      if (signal.aborted) throw new Error('aborted');
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
    return this.pending.shift();
  }

  async report(r: Report): Promise<void> {
    this.reports.push(r);
  }
}

/** A control plane that cannot be reached. */
class DeadSource implements ConfigSource {
  fetches = 0;
  reports = 0;
  async fetch(): Promise<unknown> {
    this.fetches++;
    throw new Error('connect ECONNREFUSED 127.0.0.1:9');
  }
  async report(): Promise<void> {
    this.reports++;
    throw new Error('connect ECONNREFUSED 127.0.0.1:9');
  }
}

let dir: string;
let key: SigningKey;
let attacker: SigningKey;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulkhead-agent-'));
  key = ensureSigningKey(join(dir, 'control')).key;
  attacker = ensureSigningKey(join(dir, 'attacker')).key;
});
after(() => rmSync(dir, { recursive: true, force: true }));

const good = (
  version: number,
  over: { by?: SigningKey; deploymentId?: string; issuedAt?: number; ttlMs?: number; doc?: unknown } = {},
): Snapshot =>
  JSON.parse(
    JSON.stringify(
      signSnapshot(
        over.by ?? key,
        {
          version,
          deploymentId: over.deploymentId ?? DEP,
          previousDigest: null,
          issuedAt: over.issuedAt ?? Date.now(),
          ttlMs: over.ttlMs ?? 60_000,
        },
        over.doc ?? DOC,
      ),
    ),
  ) as Snapshot;

/** Flip one bit of one byte of the document's JSON text (inside the tenant name), keeping it JSON. */
function flipDocumentByte(s: Snapshot): Snapshot {
  const text = JSON.stringify(s.document);
  const at = text.indexOf('acme') + 3;
  const flipped = `${text.slice(0, at)}${String.fromCharCode(text.charCodeAt(at) ^ 1)}${text.slice(at + 1)}`;
  assert.notEqual(flipped, text);
  return { ...s, document: JSON.parse(flipped) as unknown };
}

function flipSignatureByte(s: Snapshot): Snapshot {
  const bytes = Buffer.from(s.signature, 'base64');
  bytes[17] = (bytes[17] ?? 0) ^ 0x10;
  return { ...s, signature: bytes.toString('base64') };
}

/** A header signed by `by`, as an attacker holding that key would make it. */
const forge = (header: SnapshotHeader, document: unknown, by: SigningKey): Snapshot => ({
  ...header,
  document,
  signature: sign(null, signedBytes(header), by.privateKey).toString('base64'),
});

const agentWith = (source: ConfigSource, cacheFile: string) =>
  new ConfigAgent({ source, publicKeyPem: key.publicPem, deploymentId: DEP, cacheFile, logger: silent });

describe('agent: signed-config attacks are NACKed and the last-known-good version stays', () => {
  const source = new FakeSource();
  let agent: ConfigAgent;
  let cacheFile: string;
  let lkg: Snapshot;
  let cacheBytes: Buffer;

  before(async () => {
    cacheFile = join(dir, 'attacks-cache.json');
    lkg = good(2);
    source.serve(lkg);
    agent = agentWith(source, cacheFile);
    await agent.start();
    await until(() => source.fetches >= 2, 'the agent to poll again after v2');
  });
  after(() => agent.stop());

  it('a good v2 is applied, cached and ACKed once', () => {
    const g = agent.gate();
    assert.equal(g.claim, true);
    assert.equal(g.version, 2);
    assert.equal(g.fresh, true);
    assert.deepEqual(g.view?.freshControlTasks, new Set(['ctl.purge']));
    assert.deepEqual(source.reports, [{ version: 2, status: 'ack' }]);
    cacheBytes = readFileSync(cacheFile);
    assert.deepEqual(JSON.parse(cacheBytes.toString('utf8')), lkg);
  });

  const attacks: { name: string; reason: RejectReason; make: () => Snapshot; detail: RegExp }[] = [
    {
      name: 'a flipped byte in the document',
      reason: 'digest_mismatch',
      make: () => flipDocumentByte(good(3)),
      detail: /the document of version 3 does not match its signed digest/,
    },
    {
      name: 'a flipped byte in the signature',
      reason: 'bad_signature',
      make: () => flipSignatureByte(good(4)),
      detail: /the signature of version 4 does not verify/,
    },
    {
      name: 'another key, claiming the pinned keyId',
      reason: 'bad_signature',
      make: () => {
        const s = good(5, { by: attacker });
        return forge({ ...headerOf(s), keyId: key.keyId }, s.document, attacker);
      },
      detail: /the signature of version 5 does not verify/,
    },
    {
      name: 'another key, with its own keyId',
      reason: 'unknown_key',
      make: () => good(6, { by: attacker }),
      detail: /version 6 names key ed25519:[0-9a-f]{16}; the pinned key is ed25519:[0-9a-f]{16}/,
    },
    {
      name: 'an older version (rollback)',
      reason: 'older_version',
      make: () => good(1),
      detail: /version 1 is older than \(or conflicts with\) the held version 2/,
    },
    {
      name: 'other content under the held version number',
      reason: 'older_version',
      make: () => good(2, { doc: { ...DOC, tenants: [] } }),
      detail: /version 2 is older than \(or conflicts with\) the held version 2/,
    },
    {
      name: 'an expired snapshot (freeze)',
      reason: 'expired',
      make: () => good(7, { issuedAt: Date.now() - 120_000, ttlMs: 60_000 }),
      detail: /version 7 expired at \d{4}-\d\d-\d\dT/,
    },
    {
      name: 'a snapshot of another deployment',
      reason: 'other_deployment',
      make: () => good(8, { deploymentId: 'dep-elsewhere' }),
      detail: /version 8 is for deployment 'dep-elsewhere', this worker belongs to 'dep-agent-test'/,
    },
  ];

  for (const attack of attacks) {
    it(`${attack.name}: NACK ${attack.reason} once, still on v2, cache untouched`, async () => {
      const reportsBefore = source.reports.length;
      const bad = attack.make();
      // Served twice: the NACK is reported once per version and reason.
      await source.deliver(bad);
      await source.deliver(structuredClone(bad));
      const added = source.reports.slice(reportsBefore);
      assert.equal(added.length, 1, `one report, got ${JSON.stringify(added)}`);
      const r = added[0];
      assert.ok(r);
      assert.equal(r.version, bad.version);
      assert.equal(r.status, 'nack');
      assert.ok(r.reason?.startsWith(`${attack.reason}: `), `reason '${r.reason}'`);
      assert.match(r.reason ?? '', attack.detail);
      const g = agent.gate();
      assert.equal(g.version, 2);
      assert.equal(g.claim, true);
      assert.deepEqual(readFileSync(cacheFile), cacheBytes, 'the LKG cache file is unchanged');
      assert.equal(agent.health().digest, lkg.digest);
    });
  }

  it('a good v9 afterwards is applied, cached and ACKed', async () => {
    const v9 = good(9);
    await source.deliver(v9);
    assert.deepEqual(source.reports.at(-1), { version: 9, status: 'ack' });
    assert.equal(source.reports.filter((r) => r.status === 'ack').length, 2);
    assert.equal(agent.gate().version, 9);
    assert.deepEqual(JSON.parse(readFileSync(cacheFile, 'utf8')), v9);
  });
});

describe('agent: the last-known-good cache survives a restart', () => {
  it('a new agent with no reachable control plane runs on the cache until it expires', async () => {
    const cacheFile = join(dir, 'restart-cache.json');
    const source = new FakeSource();
    const ttlMs = 1500;
    const snap = good(4, { ttlMs });
    source.serve(snap);
    const first = agentWith(source, cacheFile);
    await first.start();
    await first.stop();
    assert.deepEqual(source.reports, [{ version: 4, status: 'ack' }]);

    const dead = new DeadSource();
    const second = agentWith(dead, cacheFile);
    await second.start();
    try {
      const g = second.gate();
      assert.equal(g.claim, true, 'claims on the cached snapshot');
      assert.equal(g.version, 4);
      assert.equal(g.fresh, false, 'no control contact: freshControl tasks may not start');
      assert.equal(g.cached, true);
      assert.equal(second.gate(snap.expiresAt - 1).claim, true);
      const at = second.gate(snap.expiresAt);
      assert.deepEqual([at.claim, at.reason, at.version], [false, 'stale_config', 4]);
      await until(() => dead.fetches >= 2, 'the agent to retry the control plane');
      assert.match(String(second.health().lastError), /ECONNREFUSED/);
      assert.equal(second.health().state, 'cached');
      assert.equal(dead.reports, 0, 'a cached snapshot is not ACKed again');
      // Real time: once the window closes, nothing more is claimed.
      await until(() => Date.now() > snap.expiresAt, 'the cached snapshot to expire', ttlMs + 1000);
      const late = second.gate();
      assert.deepEqual([late.claim, late.reason, late.version], [false, 'stale_config', 4]);
      assert.equal(second.health().state, 'stale_config');
    } finally {
      await second.stop();
    }
    // An agent started after the expiry does not load the expired cache at all.
    const third = agentWith(new DeadSource(), cacheFile);
    await third.start();
    await third.stop();
    assert.deepEqual(
      [third.gate().claim, third.gate().reason, third.gate().version],
      [false, 'no_config', undefined],
    );
  });

  it('a tampered cache file is refused: no snapshot, nothing claimed', async () => {
    const cacheFile = join(dir, 'tampered-cache.json');
    const snap = good(6);
    const load = async (content: string) => {
      writeFileSync(cacheFile, content);
      const agent = agentWith(new DeadSource(), cacheFile);
      await agent.start();
      await agent.stop();
      const g = agent.gate();
      return [g.claim, g.reason ?? null, g.version ?? null];
    };
    assert.deepEqual(await load(JSON.stringify(snap)), [true, null, 6], 'the untampered file loads');
    const cases: [string, string][] = [
      ['a flipped document byte', JSON.stringify(flipDocumentByte(snap))],
      ['a flipped signature byte', JSON.stringify(flipSignatureByte(snap))],
      ['a later expiry', JSON.stringify({ ...snap, expiresAt: snap.expiresAt + 86_400_000 })],
      ['a higher version', JSON.stringify({ ...snap, version: 60 })],
      ['another key', JSON.stringify(good(6, { by: attacker }))],
      ['truncated JSON', JSON.stringify(snap).slice(0, 100)],
    ];
    for (const [what, content] of cases) {
      assert.deepEqual(await load(content), [false, 'no_config', null], what);
    }
  });
});

describe('agent: the long-poll keeps a worker inside the freshness window', () => {
  it('waits less than freshnessMs between control contacts', async () => {
    const doc = { ...DOC, configTtlMs: 300_000, freshnessMs: 1000 };
    const source = new FakeSource();
    source.serve(good(3, { ttlMs: 300_000, doc }));
    const agent = agentWith(source, join(dir, 'fresh-cache.json'));
    await agent.start();
    try {
      await until(() => source.fetches >= 2, 'the first long-poll');
      const wait = source.waits[1] ?? 0;
      // A longer wait means freshControl jobs flap to `blocked` between every two answers.
      assert.ok(wait < doc.freshnessMs, `long-poll waitMs ${wait} >= freshnessMs ${doc.freshnessMs}`);
    } finally {
      await agent.stop();
    }
  });
});
