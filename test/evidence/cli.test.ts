/**
 * `bulkhead evidence …` as a user runs it, against a real `bulkhead dev` process (embedded SQLite
 * ledger and evidence store in a temp data dir): trails, verification over HTTP, redaction, holds
 * (per tenant: another tenant's key neither sees nor releases them), corrections, an exported bundle
 * (ending with its signed manifest) verified offline with the server stopped, the signed checkpoint
 * kept outside the store, and tampering and truncation of the stored log caught by
 * `verify --evidence` (exit 8, naming the seq). Bad usage exits 2 with a clear message.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import {
  json,
  type Proc,
  type RunResult,
  runCli,
  runShell,
  serverEnv,
  shellQuote,
  show,
  spawnCli,
  stopAll,
} from '../e2e/procs.js';
import { tempDir } from '../helpers/backends.js';

interface Entry {
  seq: number;
  kind: string;
  subject: string;
  tenant: string;
  correlationId: string | null;
  fields: Record<string, { salt?: string; value?: unknown; redactedBy?: number }>;
}

interface Hold {
  id: string;
  tenant: string;
  correlationId: string | null;
  placedBy: string;
  bySystem: boolean;
  reason: string;
  placedSeq: number;
  releasedSeq: number | null;
}

interface Job {
  id: string;
  state: string;
  attempt: number;
  correlationId: string;
}

const tmp = tempDir('bulkhead-evidence-cli-');
const dataDir = join(tmp.dir, 'data');
const evidenceDb = join(dataDir, 'evidence.db');
const publicKey = join(dataDir, 'keys', 'control.pub');
const bundle = join(tmp.dir, 'bundle.jsonl');
const checkpointFile = join(tmp.dir, 'cp.json');
let dev: Proc;
let url = '';
let adminKey = '';
let auditorKey = '';

after(async () => {
  await stopAll();
  tmp.remove();
});

/** A client command against the dev server. */
const bh = (args: string[], key = adminKey): Promise<RunResult> =>
  runCli(args, { cwd: tmp.dir, env: { BULKHEAD_URL: url, BULKHEAD_API_KEY: key } });

/** A command with no server settings at all (offline verification). */
const offline = (args: string[]): Promise<RunResult> => runCli(args, { cwd: tmp.dir, env: {} });

function expectExit(r: RunResult, code: number): void {
  assert.equal(r.code, code, show(r));
}

const value = (e: Entry | undefined, name: string): unknown => e?.fields[name]?.value;

async function trailJson(id: string, key = auditorKey): Promise<Entry[]> {
  const r = await bh(['evidence', 'trail', id, '--json'], key);
  expectExit(r, 0);
  return json<Entry[]>(r);
}

/** The trail of `id`, once its last entry is of kind `last` (the shipper follows the outbox). */
async function shippedTrail(id: string, last = 'outcome'): Promise<Entry[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await bh(['evidence', 'trail', id, '--json'], auditorKey);
    if (r.code === 0) {
      const entries = json<Entry[]>(r);
      if (entries.some((e) => e.kind === last)) return entries;
    } else assert.equal(r.code, 4, show(r));
    if (Date.now() > deadline) assert.fail(`no '${last}' entry for ${id}: ${show(r)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** One character of `text` at `i` changed to another of its class (still valid, canonical JSON). */
function bump(text: string, i: number): string {
  const c = text[i] ?? '';
  const next = /[0-8]/.test(c)
    ? String(Number(c) + 1)
    : c === '9'
      ? '0'
      : /[a-y]/.test(c)
        ? String.fromCharCode(c.charCodeAt(0) + 1)
        : c === 'z'
          ? 'a'
          : 'x';
  return text.slice(0, i) + next + text.slice(i + 1);
}

describe('bulkhead evidence (CLI, embedded SQLite)', () => {
  before(async () => {
    dev = spawnCli(['dev', '--data-dir', dataDir, '--port', '0'], { cwd: tmp.dir, env: serverEnv() });
    const m = await dev.waitFor(/running at (http:\S+)/);
    await dev.waitFor(/^ {2}try: /m);
    url = m[1] ?? '';
    adminKey = readFileSync(join(dataDir, 'admin-key'), 'utf8').trim();
    const created = await bh(['keys', 'create', '--tenant', 'default', '--role', 'auditor']);
    expectExit(created, 0);
    auditorKey = created.stdout.trim();
  });

  let flaky: Job;
  let dead: Job;
  let adminKeyId = '';

  it('submit jobs; `evidence trail` prints the timeline from admission to outcome', async () => {
    const r = await bh(['submit', 'demo.flaky', '--input', '{"failures":1}', '--wait', '--json']);
    expectExit(r, 0);
    flaky = json<Job>(r);
    assert.equal(flaky.state, 'succeeded');
    assert.equal(flaky.attempt, 2);
    const d = await bh(['submit', 'demo.flaky', '--input', '{"permanent":true}', '--wait', '--json']);
    expectExit(d, 6);
    dead = json<Job>(d);
    assert.equal(dead.state, 'dead');
    expectExit(await bh(['submit', 'demo.echo', '--input', '{"hello":"evidence"}', '--wait']), 0);

    const entries = await shippedTrail(flaky.id);
    assert.deepEqual(
      entries.map((e) => e.kind),
      ['admission', 'lease', 'start', 'step', 'failure', 'retry', 'lease', 'start', 'outcome'],
    );
    const authority = value(entries[0], 'authority') as { principal: string; configVersion: number };
    adminKeyId = authority.principal;
    assert.equal(adminKey.split('_')[1], adminKeyId, 'admitted under the admin key');

    const table = await bh(['evidence', 'trail', flaky.id], auditorKey);
    expectExit(table, 0);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^OCCURRED\s+SEQ\s+KIND\s+SUBJECT\s+WHAT$/);
    const rows = lines.slice(1);
    assert.equal(rows.length, entries.length, table.stdout);
    for (const [i, row] of rows.entries()) {
      const e = entries[i] as Entry;
      assert.match(
        row,
        new RegExp(
          `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\s+${e.seq}\\s+${e.kind}\\s+job:${flaky.id}\\b`,
        ),
        table.stdout,
      );
    }
    assert.match(
      rows[0] ?? '',
      new RegExp(`submitted → queued .*authority: key ${adminKeyId} under config v1`),
    );
    assert.match(rows[2] ?? '', /leased → running .*configVersion=1/);
    assert.match(
      rows[4] ?? '',
      /running → failed .*error=upstream_unavailable .*message=upstream answered 503 on attempt 1/,
    );
    assert.match(rows[5] ?? '', /failed → queued .*reason=retry_scheduled/);
    assert.match(rows[8] ?? '', /running → succeeded/);
    // The dead job's trail ends in its outcome (its compensation job shares the correlation id).
    const deadTrail = await shippedTrail(dead.id);
    assert.ok(deadTrail.some((e) => e.kind === 'failure' && e.subject === `job:${dead.id}`));
  });

  it('`evidence verify` (over HTTP) exits 0; without an evidence role it exits 3', async () => {
    const r = await bh(['evidence', 'verify'], auditorKey);
    expectExit(r, 0);
    assert.match(
      r.stdout,
      /^evidence log: OK — \d+ entries, \d+ checkpoints verified\n {2}head: seq \d+ [0-9a-f]{64}\n/,
    );
    const j = await bh(['evidence', 'verify', '--json']);
    expectExit(j, 0);
    const report = json<{ ok: boolean; entries: number; firstBad: unknown }>(j);
    assert.equal(report.ok, true);
    assert.equal(report.firstBad, null);
    const submitter = await bh(['keys', 'create', '--tenant', 'default', '--role', 'submitter']);
    expectExit(submitter, 0);
    const refused = await bh(['evidence', 'verify'], submitter.stdout.trim());
    expectExit(refused, 3);
    assert.match(refused.stderr, /\[forbidden\]/);
  });

  let hold: Hold;
  let lastRedactionSeq = 0;

  it('hold, holds, redact (refused under the hold), release, redact, correct: with --json and without', async () => {
    const placed = await bh([
      'evidence',
      'hold',
      '--correlation-id',
      dead.correlationId,
      '--reason',
      'litigation: case 9',
      '--json',
    ]);
    expectExit(placed, 0);
    hold = json<Hold>(placed);
    assert.match(hold.id, /^hold_/);
    assert.equal(hold.correlationId, dead.correlationId);
    assert.equal(hold.tenant, 'default', "the tenant whose entries carry the id (the dev server's jobs)");
    assert.equal(hold.placedBy, adminKeyId);
    assert.equal(hold.bySystem, true);
    assert.equal(hold.reason, 'litigation: case 9');
    assert.equal(hold.releasedSeq, null);

    const refused = await bh([
      'evidence',
      'redact',
      '--correlation-id',
      dead.correlationId,
      '--field',
      'message',
      '--reason',
      'erasure',
    ]);
    expectExit(refused, 5);
    assert.match(refused.stderr, new RegExp(`under legal hold ${hold.id}.*\\[legal_hold\\]`));
    assert.equal(refused.stdout, '');

    const listed = await bh(['evidence', 'holds', '--json'], auditorKey);
    expectExit(listed, 0);
    const shownHold = json<Hold[]>(listed).find((h) => h.id === hold.id);
    assert.deepEqual(shownHold, hold);
    const table = await bh(['evidence', 'holds'], auditorKey);
    expectExit(table, 0);
    assert.match(table.stdout, /^ID\s+SCOPE\s+REASON\s+PLACED\s+RELEASED\n/);
    assert.match(
      table.stdout,
      new RegExp(`${hold.id}\\s+correlation ${dead.correlationId}\\s+litigation: case 9\\s+\\d{4}-`),
    );

    // A tenant hold, without --json.
    const tenantHold = await bh(['evidence', 'hold', '--tenant', 'default', '--reason', 'annual audit']);
    expectExit(tenantHold, 0);
    const m = /^hold (hold_\S+) placed \(entry (\d+)\)\n$/.exec(tenantHold.stdout);
    assert.ok(m, show(tenantHold));
    const releasedTenant = await bh(['evidence', 'release', m[1] ?? '', '--reason', 'audit done']);
    expectExit(releasedTenant, 0);
    assert.match(releasedTenant.stdout, new RegExp(`^hold ${m[1]} released \\(entry \\d+\\)\\n$`));

    // Holds are per tenant: acme's key neither sees nor releases the system tenant's hold, may not
    // hold another tenant, and may not release a hold a system key placed on acme.
    expectExit(await bh(['tenants', 'create', 'acme']), 0);
    const acmeCreated = await bh(['keys', 'create', '--tenant', 'acme', '--role', 'auditor']);
    expectExit(acmeCreated, 0);
    const acmeKey = acmeCreated.stdout.trim();
    const acmeListed = await bh(['evidence', 'holds', '--json'], acmeKey);
    expectExit(acmeListed, 0);
    assert.deepEqual(json<Hold[]>(acmeListed), [], "acme is shown none of the system tenant's holds");
    const [acmeRelease, acmeHoldsDefault, noSuchTenant] = await Promise.all([
      bh(['evidence', 'release', hold.id, '--reason', 'not mine'], acmeKey),
      bh(['evidence', 'hold', '--tenant', 'default', '--reason', 'not mine'], acmeKey),
      bh(['evidence', 'hold', '--tenant', 'nope', '--reason', 'no such tenant']),
    ]);
    expectExit(acmeRelease, 4);
    assert.match(acmeRelease.stderr, /\[hold_not_found\]/);
    expectExit(acmeHoldsDefault, 4);
    assert.match(
      acmeHoldsDefault.stderr,
      /tenant 'default' does not exist \(or is not yours to hold\).*\[evidence_not_found\]/,
    );
    expectExit(noSuchTenant, 4);
    assert.match(noSuchTenant.stderr, /tenant 'nope' does not exist.*\[evidence_not_found\]/);
    const acmeOwn = await bh(
      ['evidence', 'hold', '--tenant', 'acme', '--reason', 'acme audit', '--json'],
      acmeKey,
    );
    expectExit(acmeOwn, 0);
    const own = json<Hold>(acmeOwn);
    assert.deepEqual([own.tenant, own.correlationId, own.bySystem], ['acme', null, false]);
    const bySystem = await bh(['evidence', 'hold', '--tenant', 'acme', '--reason', 'regulator', '--json']);
    expectExit(bySystem, 0);
    const sys = json<Hold>(bySystem);
    assert.deepEqual([sys.tenant, sys.placedBy, sys.bySystem], ['acme', adminKeyId, true]);
    const acmeTable = await bh(['evidence', 'holds'], acmeKey);
    expectExit(acmeTable, 0);
    assert.match(acmeTable.stdout, new RegExp(`${own.id}\\s+tenant acme\\s+acme audit\\s`));
    assert.match(acmeTable.stdout, new RegExp(`${sys.id}\\s+tenant acme\\s+regulator\\s`));
    assert.doesNotMatch(acmeTable.stdout, new RegExp(hold.id));
    const sysByAcme = await bh(['evidence', 'release', sys.id, '--reason', 'lifting it'], acmeKey);
    expectExit(sysByAcme, 4);
    assert.match(sysByAcme.stderr, /\[hold_not_found\]/);
    expectExit(await bh(['evidence', 'release', own.id, '--reason', 'audit done'], acmeKey), 0);
    expectExit(await bh(['evidence', 'release', sys.id, '--reason', 'regulator done']), 0);

    const released = await bh(['evidence', 'release', hold.id, '--reason', 'case settled', '--json']);
    expectExit(released, 0);
    const rel = json<Hold>(released);
    assert.equal(rel.id, hold.id);
    assert.equal(typeof rel.releasedSeq, 'number');
    const again = await bh(['evidence', 'release', hold.id, '--reason', 'twice']);
    expectExit(again, 4);
    assert.match(again.stderr, /\[hold_not_found\]/);

    const redacted = await bh([
      'evidence',
      'redact',
      '--correlation-id',
      dead.correlationId,
      '--field',
      'message',
      '--reason',
      'erasure request',
    ]);
    expectExit(redacted, 0);
    assert.match(redacted.stdout, /^redacted 'message' in 1 entries; recorded as entry \d+\n$/);
    const redJson = await bh(
      [
        'evidence',
        'redact',
        '--correlation-id',
        dead.correlationId,
        '--field',
        'error',
        '--reason',
        'codes too',
        '--json',
      ],
      auditorKey,
    );
    expectExit(redJson, 0);
    const red = json<Entry>(redJson);
    lastRedactionSeq = red.seq;
    assert.equal(red.kind, 'redaction');
    assert.equal(value(red, 'field'), 'error');
    assert.ok(Array.isArray(value(red, 'seqs')) && (value(red, 'seqs') as number[]).length >= 1);
    const nothing = await bh([
      'evidence',
      'redact',
      '--correlation-id',
      dead.correlationId,
      '--field',
      'message',
      '--reason',
      'again',
    ]);
    expectExit(nothing, 4);
    assert.match(nothing.stderr, /\[evidence_not_found\]/);

    const shown = await bh(['evidence', 'trail', dead.id], auditorKey);
    expectExit(shown, 0);
    const failureRow = shown.stdout.split('\n').find((l) => /\bfailure\b/.test(l)) ?? '';
    assert.match(failureRow, /\[erased: error, message\]/, shown.stdout);
    assert.doesNotMatch(shown.stdout, /the upstream rejected the request for good/);

    // Corrections.
    const target = (await trailJson(flaky.id))[0] as Entry;
    const corrected = await bh([
      'evidence',
      'correct',
      '--seq',
      String(target.seq),
      '--note',
      'wrong customer',
    ]);
    expectExit(corrected, 0);
    assert.match(
      corrected.stdout,
      new RegExp(`^correction of entry ${target.seq} recorded as entry \\d+\\n$`),
    );
    const cj = await bh(
      ['evidence', 'correct', '--seq', String(target.seq), '--note', 'and the right one', '--json'],
      auditorKey,
    );
    expectExit(cj, 0);
    const c = json<Entry>(cj);
    assert.equal(c.kind, 'correction');
    assert.equal(c.subject, `entry:${target.seq}`);
    assert.equal(value(c, 'targetSeq'), target.seq);
    assert.equal(value(c, 'note'), 'and the right one');
    const missing = await bh(['evidence', 'correct', '--seq', '99999999', '--note', 'x']);
    expectExit(missing, 4);
    assert.match(missing.stderr, /evidence entry 99999999 does not exist.*\[evidence_not_found\]/);

    const retention = await bh(['evidence', 'retention', '--days', '30', '--json']);
    expectExit(retention, 0);
    assert.equal(json<{ erased: number }>(retention).erased, 0);

    const verified = await bh(['evidence', 'verify', '--json'], auditorKey);
    expectExit(verified, 0);
    const report = json<{ ok: boolean; redactedFields: number }>(verified);
    assert.equal(report.ok, true);
    assert.ok(report.redactedFields >= 2);
  });

  it('bad usage exits 2 with a clear message', async () => {
    const notAKey = join(tmp.dir, 'not-a-key.pem');
    writeFileSync(notAKey, 'hello\n');
    const cases: Array<[string[], RegExp]> = [
      [
        ['evidence', 'verify', '--bundle', bundle],
        /^bulkhead: --bundle needs --key <public key PEM>: a bundle is verified against a key you trust\n$/,
      ],
      [
        ['evidence', 'hold', '--correlation-id', 'x', '--tenant', 'default', '--reason', 'r'],
        /^bulkhead: give exactly one of --correlation-id or --tenant\n$/,
      ],
      [
        ['evidence', 'hold', '--reason', 'r'],
        /^bulkhead: give exactly one of --correlation-id or --tenant\n$/,
      ],
      [
        ['evidence', 'verify', '--bundle', join(tmp.dir, 'missing.jsonl'), '--key', publicKey],
        /--bundle .*missing\.jsonl: no such file/,
      ],
      [
        ['evidence', 'verify', '--bundle', notAKey, '--key', join(tmp.dir, 'nope.pub')],
        /--key .*nope\.pub: no such file/,
      ],
      [
        ['evidence', 'verify', '--bundle', notAKey, '--key', notAKey],
        /is not an Ed25519 public key in PEM form/,
      ],
      [
        ['evidence', 'redact', '--correlation-id', 'x', '--field', 'message'],
        /required option '--reason <text>'/,
      ],
      [['evidence', 'correct', '--seq', 'zero', '--note', 'x'], /--seq must be an integer/],
    ];
    const results = await Promise.all(cases.map(([args]) => bh(args)));
    for (const [i, [, message]] of cases.entries()) {
      const r = results[i] as RunResult;
      expectExit(r, 2);
      assert.match(r.stderr, message, show(r));
      assert.equal(r.stdout, '', show(r));
    }
  });

  let bundleLines: string[] = [];

  /** The last entry of the first of two plain jobs run just before the export. */
  let keepSeq = 0;

  it('`evidence export --out F`, then `evidence checkpoint` prints the signed head', async () => {
    // Two plain jobs last, so the tail deleted below holds entries nothing else refers to.
    const echoes: Job[] = [];
    for (const n of [1, 2]) {
      const r = await bh(['submit', 'demo.echo', '--input', `{"n":${n}}`, '--wait', '--json']);
      expectExit(r, 0);
      echoes.push(json<Job>(r));
    }
    const first = await shippedTrail(echoes[0]?.id ?? '');
    await shippedTrail(echoes[1]?.id ?? '');
    keepSeq = first[first.length - 1]?.seq ?? 0;

    const r = await bh(['evidence', 'export', '--out', bundle], auditorKey);
    expectExit(r, 0);
    bundleLines = readFileSync(bundle, 'utf8').trimEnd().split('\n');
    assert.match(
      r.stderr,
      new RegExp(`^wrote ${bundleLines.length - 2} entries to ${bundle.replaceAll('.', '\\.')}\\n$`),
    );
    const manifest = JSON.parse(bundleLines[bundleLines.length - 1] ?? '{}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(manifest).sort(), ['keyId', 'sha256', 'signature', 'type']);
    assert.equal(manifest.type, 'manifest', 'the last line is the manifest');
    const last = JSON.parse(bundleLines[bundleLines.length - 2] ?? '{}') as Entry & { type: string };
    assert.equal(last.type, 'entry');
    assert.equal(last.kind, 'checkpoint', 'the export signed the head');
    assert.equal(manifest.keyId, value(last, 'keyId'), 'signed with the key that signs checkpoints');

    const cp = await runShell(`bulkhead evidence checkpoint > ${shellQuote(checkpointFile)}`, {
      cwd: tmp.dir,
      env: { BULKHEAD_URL: url, BULKHEAD_API_KEY: auditorKey },
    });
    expectExit(cp, 0);
    const c = JSON.parse(readFileSync(checkpointFile, 'utf8')) as {
      seq: number;
      headHash: string;
      at: number;
      keyId: string;
      signature: string;
    };
    assert.deepEqual(Object.keys(c).sort(), ['at', 'headHash', 'keyId', 'seq', 'signature']);
    assert.equal(c.seq, value(last, 'seq'), 'the latest checkpoint is the one the export made');
    assert.equal(c.signature, value(last, 'signature'));
    const misuse = await bh(['evidence', 'verify', '--checkpoint', checkpointFile]);
    expectExit(misuse, 2);
    assert.match(misuse.stderr, /--checkpoint works with --bundle or --evidence/);
  });

  it('with the server stopped, `evidence verify --bundle F --key control.pub` exits 0', async () => {
    const stopped = await dev.stop(10_000);
    assert.deepEqual([stopped.code, stopped.signal], [0, null], dev.describe());
    expectExit(await bh(['health']), 7);

    const r = await offline(['evidence', 'verify', '--bundle', bundle, '--key', publicKey]);
    expectExit(r, 0);
    assert.match(
      r.stdout,
      new RegExp(
        `^bundle ${bundle.replaceAll('.', '\\.')}: OK — ${bundleLines.length - 2} entries, \\d+ checkpoints verified\\n`,
      ),
    );
    assert.match(r.stdout, /erased values \(redaction, retention\): [1-9]/);
    const j = await offline(['evidence', 'verify', '--bundle', bundle, '--key', publicKey, '--json']);
    expectExit(j, 0);
    assert.equal(json<{ ok: boolean }>(j).ok, true);
    // Pinned to the checkpoint kept outside: still fine.
    expectExit(
      await offline([
        'evidence',
        'verify',
        '--bundle',
        bundle,
        '--key',
        publicKey,
        '--checkpoint',
        checkpointFile,
      ]),
      0,
    );
  });

  it('one byte changed inside an entry line of the bundle: exit 8, naming that seq', async () => {
    const i = bundleLines.findIndex((l) => {
      const o = JSON.parse(l) as Entry & { type: string };
      return o.type === 'entry' && o.kind === 'lease' && o.subject === `job:${flaky.id}`;
    });
    assert.ok(i > 0, 'a lease entry of the flaky job is in the bundle');
    const line = bundleLines[i] as string;
    const entry = JSON.parse(line) as Entry;
    const workerId = String(value(entry, 'workerId'));
    const at = line.indexOf(`"value":"${workerId}"`) + '"value":"'.length + 2;
    const changed = bump(line, at);
    assert.equal(Buffer.byteLength(changed), Buffer.byteLength(line));
    assert.equal(
      [...Buffer.from(changed)].filter((b, k) => b !== Buffer.from(line)[k]).length,
      1,
      'one byte',
    );
    const tampered = join(tmp.dir, 'tampered.jsonl');
    writeFileSync(tampered, `${bundleLines.map((l, k) => (k === i ? changed : l)).join('\n')}\n`);

    const r = await offline(['evidence', 'verify', '--bundle', tampered, '--key', publicKey]);
    expectExit(r, 8);
    assert.match(
      r.stdout,
      new RegExp(`^bundle ${tampered.replaceAll('.', '\\.')}: FAILED at seq ${entry.seq}: `),
      show(r),
    );
    const j = await offline(['evidence', 'verify', '--bundle', tampered, '--key', publicKey, '--json']);
    expectExit(j, 8);
    assert.equal(json<{ firstBad: { seq: number } }>(j).firstBad.seq, entry.seq);

    // The wrong key fails too (the bundle is not signed with it).
    const otherDir = join(tmp.dir, 'other-keys');
    const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    mkdirSync(otherDir);
    writeFileSync(join(otherDir, 'other.pub'), other);
    const wrong = await offline([
      'evidence',
      'verify',
      '--bundle',
      bundle,
      '--key',
      join(otherDir, 'other.pub'),
    ]);
    expectExit(wrong, 8);
    assert.match(wrong.stdout, /FAILED at seq -: the bundle is signed with/);

    // The header's export time changed (still a header): the manifest no longer matches, no seq.
    const header = JSON.parse(bundleLines[0] ?? '{}') as { exportedAt: number };
    const reheadered = join(tmp.dir, 'reheadered.jsonl');
    const newHeader = (bundleLines[0] ?? '').replace(
      `"exportedAt":${header.exportedAt}`,
      `"exportedAt":${header.exportedAt - 86_400_000}`,
    );
    assert.notEqual(newHeader, bundleLines[0]);
    writeFileSync(reheadered, `${[newHeader, ...bundleLines.slice(1)].join('\n')}\n`);
    const re = await offline(['evidence', 'verify', '--bundle', reheadered, '--key', publicKey]);
    expectExit(re, 8);
    assert.match(
      re.stdout,
      /FAILED at seq -: the bundle's lines are not the lines its manifest signed/,
      show(re),
    );

    // Cut short by its last line (the manifest): named one past the last entry.
    const cut = join(tmp.dir, 'cut.jsonl');
    writeFileSync(cut, `${bundleLines.slice(0, -1).join('\n')}\n`);
    const lastSeq = (JSON.parse(bundleLines[bundleLines.length - 2] ?? '{}') as Entry).seq;
    const c = await offline(['evidence', 'verify', '--bundle', cut, '--key', publicKey]);
    expectExit(c, 8);
    assert.match(
      c.stdout,
      new RegExp(`FAILED at seq ${lastSeq + 1}: the bundle has no manifest line`),
      show(c),
    );
  });

  it('a stored value changed by one character in evidence.db: `verify --evidence` exits 8, naming that seq; restored, 0', async () => {
    const direct = () => offline(['evidence', 'verify', '--evidence', evidenceDb, '--key', publicKey]);
    expectExit(await direct(), 0);
    expectExit(
      await offline([
        'evidence',
        'verify',
        '--evidence',
        evidenceDb,
        '--key',
        publicKey,
        '--checkpoint',
        checkpointFile,
      ]),
      0,
    );

    const db = new Database(evidenceDb);
    let seq = 0;
    let original = '';
    try {
      seq = db
        .prepare("SELECT seq FROM entries WHERE kind = 'admission' AND subject = ? ORDER BY seq LIMIT 1")
        .pluck()
        .get(`job:${flaky.id}`) as number;
      assert.ok(seq > 0);
      original = db.prepare('SELECT fields FROM entries WHERE seq = ?').pluck().get(seq) as string;
      const at = original.indexOf('"value":"demo.flaky"') + '"value":"demo.flak'.length;
      assert.ok(at > 20, original);
      const changed = bump(original, at);
      assert.equal(changed.length, original.length);
      assert.notEqual(changed, original);
      db.prepare('UPDATE entries SET fields = ? WHERE seq = ?').run(changed, seq);
    } finally {
      db.close();
    }
    const r = await direct();
    expectExit(r, 8);
    assert.match(r.stdout, new RegExp(`^evidence log: FAILED at seq ${seq}: `), show(r));
    const j = await offline(['evidence', 'verify', '--evidence', evidenceDb, '--key', publicKey, '--json']);
    expectExit(j, 8);
    assert.equal(json<{ firstBad: { seq: number } }>(j).firstBad.seq, seq);

    const restore = new Database(evidenceDb);
    try {
      restore.prepare('UPDATE entries SET fields = ? WHERE seq = ?').run(original, seq);
    } finally {
      restore.close();
    }
    expectExit(await direct(), 0);
  });

  it('the last entries deleted: with the checkpoint kept outside, exit 8 (truncation); without it, 0', async () => {
    const cp = JSON.parse(readFileSync(checkpointFile, 'utf8')) as { seq: number };
    const keep = keepSeq;
    assert.ok(keep > 1 && keep < cp.seq, `keep ${keep}, checkpoint ${cp.seq}`);
    const db = new Database(evidenceDb);
    try {
      const n = db.prepare('DELETE FROM entries WHERE seq > ?').run(keep).changes;
      assert.ok(n >= 5, `deleted ${n} entries`);
    } finally {
      db.close();
    }
    const pinned = await offline([
      'evidence',
      'verify',
      '--evidence',
      evidenceDb,
      '--key',
      publicKey,
      '--checkpoint',
      checkpointFile,
    ]);
    expectExit(pinned, 8);
    assert.match(
      pinned.stdout,
      new RegExp(
        `FAILED at seq \\d+: the pinned checkpoint covers seq ${cp.seq} but the log ends at seq ${keep}`,
      ),
      show(pinned),
    );
    const unpinned = await offline(['evidence', 'verify', '--evidence', evidenceDb, '--key', publicKey]);
    expectExit(unpinned, 0);
    assert.match(unpinned.stdout, new RegExp(`head: seq ${keep} `));

    // Cut back past a redaction entry: the erasure marks it made point past the end of the log.
    const cut = new Database(evidenceDb);
    try {
      cut.prepare('DELETE FROM entries WHERE seq >= ?').run(lastRedactionSeq);
    } finally {
      cut.close();
    }
    const dangling = await offline(['evidence', 'verify', '--evidence', evidenceDb, '--key', publicKey]);
    expectExit(dangling, 8);
    assert.match(
      dangling.stdout,
      /FAILED at seq \d+: field 'error' is marked erased by an entry past the end of the log/,
    );
  });
});
