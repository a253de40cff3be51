/**
 * The evidence plane's HTTP API, on both backends (ledger and evidence store alike), wired as a
 * control process wires it (see evidence-fixture.ts) with a real worker running real jobs:
 *
 * - access: 401 without a key, 403 for every role but auditor and admin on every route, tenant
 *   scoping of trails and exports (another tenant's entries are stubs, none of their bytes leak);
 * - bad input is a 400 naming what is wrong, never a 500;
 * - trails in seq order with the right kinds, the signed authority record of admission, the config
 *   version an attempt ran under; failure and retry entries of a retried job;
 * - verify (plain and streamed), export bundles that verify offline against the control key;
 * - redaction (the erased text gone from the SQLite files' bytes; one redaction entry per tenant for
 *   a system caller), legal holds against redaction and retention — per tenant: a tenant sees,
 *   releases and is blocked by its own tenant's holds only, and a hold placed with a system key is
 *   released only with one — corrections, the health section, and key creation recorded without
 *   its secret.
 */
import assert from 'node:assert/strict';
import { createHash, verify as verifySignature } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { verifyAuthority } from '../../src/control/authority.js';
import { bundleTextLines, verifyBundle } from '../../src/evidence/bundle.js';
import { parseHeader, recordFromLine, stubLine } from '../../src/evidence/codec.js';
import { checkpointMessage, type Entry } from '../../src/evidence/format.js';
import { parseManifest, verifyManifest } from '../../src/evidence/manifest.js';
import { assertProblem, type Call, call } from '../api/api-fixture.js';
import { backends } from '../helpers/backends.js';
import { testSigner } from '../helpers/evidence-backends.js';
import { AGED, AGED_VALUES, createEvidenceFixture, type EvidenceFixture } from './evidence-fixture.js';

interface FieldJson {
  salt?: string;
  value?: unknown;
  redactedBy?: number;
}

interface EntryJson {
  seq: number;
  prevHash: string;
  hash: string;
  recordedAt: number;
  occurredAt: number;
  tenant: string;
  correlationId: string | null;
  kind: string;
  subject: string;
  sourceSeq: number | null;
  commitments: Record<string, string>;
  fields: Record<string, FieldJson>;
}

interface HoldJson {
  id: string;
  tenant: string;
  correlationId: string | null;
  placedBy: string;
  bySystem: boolean;
  reason: string;
  placedSeq: number;
  placedAt: number;
  releasedSeq: number | null;
  releasedAt: number | null;
}

interface ReportJson {
  ok: boolean;
  entries: number;
  stubs: number;
  checkpoints: number;
  redactedFields: number;
  gaps: Array<{ fromSeq: number; toSeq: number }>;
  head: { seq: number; hash: string } | null;
  firstBad: { seq: number | null; reason: string } | null;
}

type BundleLine =
  | ({ type: 'entry' } & EntryJson)
  | { type: 'stub'; seq: number; prevHash: string; bodyHash: string; hash: string }
  | {
      type: 'header';
      fromSeq: number;
      toSeq: number;
      filter: Record<string, string>;
      keyIds: string[];
      exportedAt: number;
    }
  | { type: 'manifest'; sha256: string; keyId: string; signature: string };

/** Kinds every bundle discloses in full, whoever exports it. */
const ALWAYS_DISCLOSED = new Set(['checkpoint', 'retention', 'gap']);
const DAY = 86_400_000;

const value = (e: EntryJson | undefined, name: string): unknown => e?.fields[name]?.value;
const kinds = (entries: EntryJson[]) => entries.map((e) => e.kind);
const show = (entries: EntryJson[]) =>
  entries.map((e) => `${e.seq} ${e.kind} ${JSON.stringify(e.fields)}`).join('\n');

function assertAscending(entries: EntryJson[]): void {
  for (let i = 1; i < entries.length; i++) {
    const a = entries[i - 1] as EntryJson;
    const b = entries[i] as EntryJson;
    assert.ok(a.seq < b.seq, `seq order: ${a.seq} before ${b.seq}\n${show(entries)}`);
    if (a.sourceSeq !== null && b.sourceSeq !== null)
      assert.ok(a.sourceSeq < b.sourceSeq, `outbox order: ${a.sourceSeq} before ${b.sourceSeq}`);
  }
}

for (const backend of backends()) {
  describe(`evidence API (${backend.dialect} ledger, ${backend.dialect} evidence store)`, () => {
    let fx: EvidenceFixture;
    /** The system tenant's auditor and admin, and tenant keys. */
    let sysAuditor = '';
    let sysAdmin = '';

    before(async () => {
      fx = await createEvidenceFixture(backend);
      sysAuditor = fx.keys.default.auditor;
      sysAdmin = fx.keys.default.admin;
    });
    after(async () => {
      await fx?.close();
    });

    const req = (c: Call) => call(fx.app, c);

    async function ok<T>(c: Call, status = 200): Promise<T> {
      const res = await req(c);
      assert.equal(res.statusCode, status, `${c.method ?? 'GET'} ${c.url}: ${res.body.slice(0, 500)}`);
      return res.json() as T;
    }

    const trail = async (key: string, query: string) =>
      (await ok<{ entries: EntryJson[] }>({ url: `/v1/evidence?${query}`, key })).entries;

    async function verifyLog(): Promise<ReportJson> {
      const r = await ok<ReportJson>({ url: '/v1/evidence/verify', key: sysAuditor });
      assert.equal(r.ok, true, `the log verifies: ${JSON.stringify(r.firstBad)}`);
      assert.equal(r.firstBad, null);
      return r;
    }

    async function exportText(key: string, query = ''): Promise<string> {
      const res = await req({ url: `/v1/evidence/export${query}`, key });
      assert.equal(res.statusCode, 200, res.body.slice(0, 500));
      assert.match(String(res.headers['content-type']), /^application\/x-ndjson/);
      return res.body;
    }

    const parseBundle = (text: string) => bundleTextLines(text).map((l) => JSON.parse(l) as BundleLine);

    async function verifyText(text: string) {
      const r = await verifyBundle(bundleTextLines(text), [fx.publicKey]);
      assert.equal(r.ok, true, `the bundle verifies: ${JSON.stringify(r.firstBad)}`);
      return r;
    }

    /** Every stored row, as text (values, salts and all). */
    async function logText(): Promise<string> {
      return JSON.stringify(await fx.evidence.service.store.readRows(1, 1_000_000));
    }

    /** The SQLite evidence files' raw bytes (the database, its WAL and shared memory), by name. */
    function evidenceFiles(): Array<[string, Buffer]> {
      const base = fx.evidenceFile;
      if (base === null) return [];
      return [base, `${base}-wal`, `${base}-shm`]
        .filter((f) => existsSync(f))
        .map((f) => [f, readFileSync(f)] as [string, Buffer]);
    }

    const filesHolding = (text: string) =>
      evidenceFiles()
        .filter(([, bytes]) => bytes.includes(Buffer.from(text, 'utf8')))
        .map(([name]) => name);

    // ── access ────────────────────────────────────────────────────────────────────────────────

    const routes = (): Array<Call & { name: string }> => [
      { name: 'trail', url: `/v1/evidence?correlationId=${AGED.free}` },
      { name: 'verify', url: '/v1/evidence/verify' },
      { name: 'verify (progress)', url: '/v1/evidence/verify?progress=true' },
      { name: 'export', url: '/v1/evidence/export' },
      {
        name: 'redact',
        method: 'POST',
        url: '/v1/evidence/redact',
        body: { correlationId: 'no-such-correlation', field: 'message', reason: 'access check' },
      },
      {
        name: 'corrections',
        method: 'POST',
        url: '/v1/evidence/corrections',
        body: { seq: 99_999_999, note: 'access check' },
      },
      { name: 'holds', url: '/v1/evidence/holds' },
      {
        name: 'place hold',
        method: 'POST',
        url: '/v1/evidence/holds',
        body: { correlationId: 'access-check', reason: 'access check' },
      },
      {
        name: 'release hold',
        method: 'POST',
        url: '/v1/evidence/holds/hold_nope/release',
        body: { reason: 'access check' },
      },
      { name: 'retention', method: 'POST', url: '/v1/evidence/retention', body: { days: 36_500 } },
    ];

    it('access: 401 without a valid key; 403 for submitter, operator, approver and worker keys on every route', async () => {
      for (const r of routes()) {
        assertProblem(await req({ ...r, key: null }), 401, 'unauthorized');
        assertProblem(await req({ ...r, key: `bh_0123456789abcdef_${'A'.repeat(43)}` }), 401, 'unauthorized');
        for (const tenant of ['default', 'acme'] as const)
          for (const role of ['submitter', 'operator', 'approver', 'worker'] as const) {
            const p = assertProblem(await req({ ...r, key: fx.keys[tenant][role] }), 403, 'forbidden');
            assert.match(p.detail, new RegExp(`roles \\(${role}\\).*needs one of: admin`), `${r.name}`);
          }
      }
      const holds = await ok<{ holds: HoldJson[] }>({ url: '/v1/evidence/holds', key: sysAdmin });
      assert.deepEqual(holds.holds, [], 'the refused requests placed no hold');
    });

    it('access: auditor and admin keys get through on every route (retention is admin-only, verify system-only)', async () => {
      for (const role of ['auditor', 'admin'] as const) {
        const key = fx.keys.default[role];
        for (const r of routes()) {
          const res = await req({ ...r, key });
          const what = `${role} ${r.name}: ${res.statusCode} ${res.body.slice(0, 300)}`;
          switch (r.name) {
            case 'redact':
            case 'corrections':
              assertProblem(res, 404, 'evidence_not_found');
              break;
            case 'release hold':
              assertProblem(res, 404, 'hold_not_found');
              break;
            case 'place hold': {
              assert.equal(res.statusCode, 201, what);
              const h = res.json() as HoldJson;
              // A correlation id no tenant has yet, held by a system key: held in every tenant.
              assert.equal(h.tenant, '*', what);
              assert.equal(h.bySystem, true, what);
              assert.equal(h.placedBy, fx.keyIds.default[role], what);
              const released = await ok<HoldJson>({
                method: 'POST',
                url: `/v1/evidence/holds/${h.id}/release`,
                key,
                body: { reason: 'access check done' },
              });
              assert.equal(typeof released.releasedSeq, 'number');
              break;
            }
            case 'retention':
              if (role === 'admin') {
                assert.equal(res.statusCode, 200, what);
                assert.equal((res.json() as { erased: number }).erased, 0);
              } else assertProblem(res, 403, 'forbidden');
              break;
            default:
              assert.equal(res.statusCode, 200, what);
          }
        }
      }
      // A tenant's auditor reads its own evidence, but not the whole log's verification; a tenant's
      // admin may not apply retention to the whole log.
      assert.equal((await req({ url: '/v1/evidence/holds', key: fx.keys.acme.auditor })).statusCode, 200);
      assert.equal((await req({ url: '/v1/evidence/export', key: fx.keys.acme.auditor })).statusCode, 200);
      assert.equal(
        (await req({ url: `/v1/evidence?correlationId=${AGED.free}`, key: fx.keys.acme.auditor })).statusCode,
        200,
      );
      assertProblem(await req({ url: '/v1/evidence/verify', key: fx.keys.acme.auditor }), 403, 'forbidden');
      assertProblem(
        await req({ url: '/v1/evidence/verify?progress=true', key: fx.keys.acme.admin }),
        403,
        'forbidden',
      );
      assertProblem(
        await req({
          method: 'POST',
          url: '/v1/evidence/retention',
          key: fx.keys.acme.admin,
          body: { days: 1 },
        }),
        403,
        'forbidden',
      );
      await verifyLog();
    });

    // ── bad input ─────────────────────────────────────────────────────────────────────────────

    it('bad input is a 400 with a specific message, never a 500', async () => {
      const key = sysAdmin;
      const cases: Array<[string, Call, string, RegExp]> = [
        [
          'both correlationId and jobId',
          { url: '/v1/evidence?correlationId=a&jobId=b' },
          'invalid_argument',
          /^give exactly one of correlationId or jobId$/,
        ],
        [
          'neither id',
          { url: '/v1/evidence' },
          'invalid_argument',
          /^give exactly one of correlationId or jobId$/,
        ],
        [
          'fromSeq > toSeq',
          { url: '/v1/evidence/export?fromSeq=5&toSeq=2' },
          'invalid_argument',
          /^fromSeq \(5\) must not be after toSeq \(2\)$/,
        ],
        [
          'a hold on both scopes',
          {
            method: 'POST',
            url: '/v1/evidence/holds',
            body: { correlationId: 'x', tenant: 'acme', reason: 'r' },
          },
          'invalid_argument',
          /^give exactly one of correlationId or tenant$/,
        ],
        [
          'a hold on neither scope',
          { method: 'POST', url: '/v1/evidence/holds', body: { reason: 'r' } },
          'invalid_argument',
          /^give exactly one of correlationId or tenant$/,
        ],
        [
          'an unknown trail parameter',
          { url: '/v1/evidence?jobId=x&tenant=acme' },
          'invalid_request',
          /querystring: must NOT have additional properties/,
        ],
        [
          'an unknown verify parameter',
          { url: '/v1/evidence/verify?full=true' },
          'invalid_request',
          /querystring: must NOT have additional properties/,
        ],
        [
          'an unknown export parameter',
          { url: '/v1/evidence/export?tenant=globex' },
          'invalid_request',
          /querystring: must NOT have additional properties/,
        ],
        [
          'an unknown redact field',
          {
            method: 'POST',
            url: '/v1/evidence/redact',
            body: { correlationId: 'x', field: 'message', reason: 'r', everywhere: true },
          },
          'invalid_request',
          /body: must NOT have additional properties/,
        ],
        [
          'an unknown correction field',
          { method: 'POST', url: '/v1/evidence/corrections', body: { seq: 1, note: 'n', by: 'me' } },
          'invalid_request',
          /body: must NOT have additional properties/,
        ],
        [
          'an unknown hold field',
          {
            method: 'POST',
            url: '/v1/evidence/holds',
            body: { correlationId: 'x', reason: 'r', until: 'never' },
          },
          'invalid_request',
          /body: must NOT have additional properties/,
        ],
        [
          'an unknown release field',
          { method: 'POST', url: '/v1/evidence/holds/hold_x/release', body: { reason: 'r', force: true } },
          'invalid_request',
          /body: must NOT have additional properties/,
        ],
        [
          'an unknown retention field',
          { method: 'POST', url: '/v1/evidence/retention', body: { days: 1, dryRun: true } },
          'invalid_request',
          /body: must NOT have additional properties/,
        ],
        [
          'a redaction without a reason',
          { method: 'POST', url: '/v1/evidence/redact', body: { correlationId: 'x', field: 'message' } },
          'invalid_request',
          /body: must have required property 'reason'/,
        ],
        [
          'retention of 0 days',
          { method: 'POST', url: '/v1/evidence/retention', body: { days: 0 } },
          'invalid_request',
          /body\/days: must be >= 1/,
        ],
        [
          'a correction of seq 0',
          { method: 'POST', url: '/v1/evidence/corrections', body: { seq: 0, note: 'n' } },
          'invalid_request',
          /body\/seq: must be >= 1/,
        ],
        [
          'a correction of a seq that is not a number',
          { method: 'POST', url: '/v1/evidence/corrections', body: { seq: 'abc', note: 'n' } },
          'invalid_request',
          /body\/seq: must be integer/,
        ],
        [
          'a fromSeq that is not a number',
          { url: '/v1/evidence/export?fromSeq=abc' },
          'invalid_request',
          /querystring\/fromSeq: must be integer/,
        ],
        [
          'an empty correlation id',
          { url: '/v1/evidence?correlationId=' },
          'invalid_request',
          /querystring\/correlationId: must NOT have fewer than 1 characters/,
        ],
        [
          'a correlation id of 201 characters',
          { url: `/v1/evidence?correlationId=${'c'.repeat(201)}` },
          'invalid_request',
          /querystring\/correlationId: must NOT have more than 200 characters/,
        ],
        [
          'a control character in a correlation id',
          { url: '/v1/evidence?correlationId=a%01b' },
          'invalid_request',
          /querystring\/correlationId: must match pattern/,
        ],
      ];
      for (const [what, c, code, detail] of cases) {
        const res = await req({ ...c, key });
        const p = assertProblem(res, 400, code);
        assert.match(p.detail, detail, what);
      }

      // Odd input of every shape: a problem below 500, whatever it is.
      const odd: Call[] = [
        { url: '/v1/evidence?jobId=00000000-0000-0000-0000-000000000000' },
        { url: '/v1/evidence?jobId=not-a-uuid' },
        { url: '/v1/evidence?jobId=../../etc/passwd' },
        { url: '/v1/evidence?correlationId=%F0%9F%9A%80' },
        { url: '/v1/evidence?correlationId=a&correlationId=b' },
        { url: '/v1/evidence/export?fromSeq=-1' },
        { url: '/v1/evidence/export?fromSeq=1e400' },
        { url: '/v1/evidence/export?fromSeq=99999999999' },
        { url: '/v1/evidence/export?toSeq=9007199254740993' },
        { url: '/v1/evidence/export?fromSeq=1.5' },
        { url: '/v1/evidence/verify?progress=maybe' },
        {
          method: 'POST',
          url: '/v1/evidence/redact',
          raw: '{not json',
          headers: { 'content-type': 'application/json' },
        },
        { method: 'POST', url: '/v1/evidence/redact', body: [] },
        { method: 'POST', url: '/v1/evidence/redact', body: null },
        {
          method: 'POST',
          url: '/v1/evidence/redact',
          body: { correlationId: AGED.free, field: '__proto__', reason: 'r' },
        },
        {
          method: 'POST',
          url: '/v1/evidence/redact',
          body: { correlationId: AGED.free, field: 'constructor', reason: 'r' },
        },
        { method: 'POST', url: '/v1/evidence/corrections', body: { seq: 1e300, note: 'n' } },
        { method: 'POST', url: '/v1/evidence/corrections', body: { seq: 1, note: '' } },
        { method: 'POST', url: '/v1/evidence/holds', body: { tenant: 'no-such-tenant', reason: 'r' } },
        { method: 'POST', url: `/v1/evidence/holds/${'h'.repeat(300)}/release`, body: { reason: 'r' } },
        { method: 'POST', url: '/v1/evidence/holds/%00/release', body: { reason: 'r' } },
        { method: 'POST', url: '/v1/evidence/retention', body: { days: 36_501 } },
        { method: 'POST', url: '/v1/evidence/retention', body: { days: '36500' } },
        {
          method: 'POST',
          url: '/v1/evidence/retention',
          raw: 'days=1',
          headers: { 'content-type': 'text/plain' },
        },
      ];
      for (const c of odd) {
        for (const k of [key, fx.keys.acme.auditor]) {
          const res: LightMyRequestResponse = await req({ ...c, key: k });
          const what = `${c.method ?? 'GET'} ${c.url} ${JSON.stringify(c.body ?? c.raw)}: ${res.statusCode} ${res.body.slice(0, 300)}`;
          assert.ok(res.statusCode < 500, what);
          if (res.statusCode >= 400)
            assert.match(String(res.headers['content-type']), /^application\/problem\+json/, what);
        }
      }
      await verifyLog();
    });

    // ── trails ────────────────────────────────────────────────────────────────────────────────

    let stepsJob: { id: string; correlationId: string };
    let stepsTrail: EntryJson[] = [];

    it("a job's trail: admission → lease → start (with configVersion) → steps → outcome, in seq order; the authority record verifies", async () => {
      const input = { n: 20 };
      stepsJob = await fx.submit(fx.keys.acme.submitter, { task: 'ev.steps', input });
      const done = await fx.finished(fx.keys.acme.submitter, stepsJob.id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done));
      await fx.settle();

      stepsTrail = await trail(fx.keys.acme.auditor, `jobId=${stepsJob.id}`);
      assert.deepEqual(
        kinds(stepsTrail),
        ['admission', 'lease', 'start', 'step', 'step', 'outcome'],
        show(stepsTrail),
      );
      assert.deepEqual(
        stepsTrail.map((e) => value(e, 'event')),
        ['job.queued', 'job.leased', 'job.running', 'step.committed', 'step.committed', 'job.succeeded'],
      );
      assertAscending(stepsTrail);
      for (const e of stepsTrail) {
        assert.equal(e.tenant, 'acme');
        assert.equal(e.subject, `job:${stepsJob.id}`);
        assert.equal(e.correlationId, stepsJob.correlationId);
        assert.equal(typeof e.sourceSeq, 'number');
      }
      assert.deepEqual(
        stepsTrail.filter((e) => e.kind === 'step').map((e) => value(e, 'stepKey')),
        ['first', 'second'],
      );

      // Admission: the authority record, signed by the control key, covering this input only.
      const admission = stepsTrail[0];
      const authority = value(admission, 'authority') as Record<string, unknown>;
      assert.ok(authority, `the admission entry has an authority field: ${show(stepsTrail.slice(0, 1))}`);
      const held = await fx.store.get(stepsJob.id);
      assert.ok(held);
      const trust = {
        publicKey: fx.publicKey,
        keyId: String(authority.keyId),
        deploymentId: String(authority.deploymentId),
      };
      const facts = { ...held, authority };
      assert.equal(verifyAuthority(facts, trust).ok, true, 'the authority record verifies');
      assert.equal(verifyAuthority({ ...facts, input: { n: 21 } }, trust).ok, false, 'not for another input');
      const other = testSigner();
      assert.equal(
        verifyAuthority(facts, { ...trust, publicKey: other.publicKey }).ok,
        false,
        'not with another key',
      );
      assert.equal(
        verifyAuthority({ ...facts, authority: { ...authority, tenant: 'globex' } }, trust).ok,
        false,
        'not when a claim is changed',
      );
      assert.equal(authority.tenant, 'acme');
      assert.equal(authority.principal, fx.keyIds.acme.submitter);
      assert.deepEqual(authority.roles, ['submitter']);
      assert.equal(authority.task, 'ev.steps');
      assert.equal(authority.configVersion, 1);
      assert.equal(authority.keyId, fx.config.key.keyId);
      assert.equal(
        JSON.stringify(admission?.fields).includes('"n":20'),
        false,
        'the input itself is not recorded',
      );

      // Start: the config version the attempt ran under.
      const start = stepsTrail.find((e) => e.kind === 'start');
      assert.equal(value(start, 'configVersion'), 1, show(stepsTrail));
      assert.equal(value(start, 'attempt') ?? 1, 1);
      assert.equal(value(stepsTrail[5], 'to'), 'succeeded');

      // The same trail by correlation id; the system tenant's auditor sees it too.
      assert.deepEqual(
        await trail(fx.keys.acme.admin, `correlationId=${stepsJob.correlationId}`),
        stepsTrail,
      );
      assert.deepEqual(await trail(sysAuditor, `jobId=${stepsJob.id}`), stepsTrail);
    });

    let flakyJob: { id: string; correlationId: string };
    let failureSeqs: number[] = [];
    const MARKER = 'PII-4711-SECRET';

    it('a job that fails twice and then succeeds: failure and retry entries, in order', async () => {
      flakyJob = await fx.submit(fx.keys.acme.submitter, {
        task: 'ev.flaky',
        input: { code: 4711, failures: 2 },
      });
      const done = await fx.finished(fx.keys.acme.submitter, flakyJob.id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done));
      assert.equal(done.attempt, 3);
      await fx.settle();

      const entries = await trail(fx.keys.acme.auditor, `jobId=${flakyJob.id}`);
      assert.deepEqual(
        kinds(entries),
        [
          'admission',
          'lease',
          'start',
          'step',
          'failure',
          'retry',
          'lease',
          'start',
          'failure',
          'retry',
          'lease',
          'start',
          'outcome',
        ],
        show(entries),
      );
      assertAscending(entries);
      const failures = entries.filter((e) => e.kind === 'failure');
      failureSeqs = failures.map((e) => e.seq);
      assert.deepEqual(
        failures.map((e) => [value(e, 'attempt'), value(e, 'message')]),
        [
          [1, `upstream timed out for customer ${MARKER}`],
          [2, `upstream timed out for customer ${MARKER}`],
        ],
      );
      const retries = entries.filter((e) => e.kind === 'retry');
      assert.deepEqual(
        retries.map((e) => [value(e, 'event'), value(e, 'reason'), value(e, 'attempt')]),
        [
          ['job.queued', 'retry_scheduled', 1],
          ['job.queued', 'retry_scheduled', 2],
        ],
      );
      assert.deepEqual(
        entries.filter((e) => e.kind === 'start').map((e) => value(e, 'configVersion')),
        [1, 1, 1],
      );
      assert.equal(value(entries[entries.length - 1], 'event'), 'job.succeeded');
    });

    // ── tenant scoping ────────────────────────────────────────────────────────────────────────

    let globexJob: { id: string; correlationId: string };
    const GLOBEX_MARKER = 'GLOBEX-9090-SECRET';

    it("tenant scoping: acme's auditor cannot read globex's trail, and in acme's export every globex entry is a stub", async () => {
      globexJob = await fx.submit(fx.keys.globex.submitter, {
        task: 'ev.flaky',
        input: { code: 9090, prefix: 'GLOBEX', permanent: true },
        correlationId: 'globex-case-1',
      });
      const done = await fx.finished(fx.keys.globex.submitter, globexJob.id);
      assert.equal(done.state, 'dead');
      await fx.settle();

      // globex sees its own trail; the system tenant sees it; acme does not (by job or correlation id).
      const own = await trail(fx.keys.globex.auditor, `jobId=${globexJob.id}`);
      assert.deepEqual(kinds(own), ['admission', 'lease', 'start', 'step', 'failure', 'outcome'], show(own));
      assert.ok(JSON.stringify(own).includes(GLOBEX_MARKER));
      assert.deepEqual(await trail(sysAuditor, `jobId=${globexJob.id}`), own);
      assert.deepEqual(await trail(sysAuditor, 'correlationId=globex-case-1'), own);
      for (const q of [`jobId=${globexJob.id}`, 'correlationId=globex-case-1']) {
        for (const key of [fx.keys.acme.auditor, fx.keys.acme.admin]) {
          const p = assertProblem(await req({ url: `/v1/evidence?${q}`, key }), 404, 'evidence_not_found');
          assert.doesNotMatch(p.detail, /GLOBEX-9090/);
        }
      }
      // …and globex does not see acme's.
      assertProblem(
        await req({ url: `/v1/evidence?jobId=${stepsJob.id}`, key: fx.keys.globex.auditor }),
        404,
        'evidence_not_found',
      );

      // acme's export: acme's entries (and checkpoints) in full, everything else a stub.
      const text = await exportText(fx.keys.acme.auditor);
      const r = await verifyText(text);
      assert.ok(r.stubs > 0);
      const lines = parseBundle(text);
      const header = lines[0] as Extract<BundleLine, { type: 'header' }>;
      assert.equal(header.type, 'header');
      assert.deepEqual(header.filter, { tenant: 'acme' });
      const full = new Map<number, EntryJson>();
      const stubs = new Set<number>();
      for (const l of lines.slice(1)) {
        if (l.type === 'entry') full.set(l.seq, l);
        else if (l.type === 'stub') stubs.add(l.seq);
      }
      for (const e of full.values())
        assert.ok(
          e.tenant === 'acme' || ALWAYS_DISCLOSED.has(e.kind),
          `disclosed to acme: ${e.seq} ${e.kind} ${e.tenant}`,
        );
      for (const e of own) assert.ok(stubs.has(e.seq), `globex entry ${e.seq} is a stub in acme's export`);
      for (const e of stepsTrail) assert.ok(full.has(e.seq), `acme entry ${e.seq} is in full`);
      for (const secret of [
        'globex',
        globexJob.id,
        globexJob.correlationId,
        GLOBEX_MARKER,
        'GLOBEX',
        fx.keyIds.globex.submitter,
        'upstream refused customer',
      ])
        assert.equal(text.includes(secret), false, `acme's export holds no '${secret}'`);

      // acme filtering by globex's correlation id: nothing disclosed but checkpoints.
      const cross = await exportText(fx.keys.acme.auditor, `?correlationId=${globexJob.correlationId}`);
      await verifyText(cross);
      assert.deepEqual(
        parseBundle(cross)
          .filter((l) => l.type === 'entry')
          .map((l) => (l as EntryJson).kind)
          .filter((k) => !ALWAYS_DISCLOSED.has(k)),
        [],
      );
      assert.equal(cross.includes(GLOBEX_MARKER), false);
      assert.equal(cross.replace(globexJob.correlationId, '').includes(globexJob.correlationId), false);

      // The system tenant's export has everything in full.
      const all = await exportText(sysAuditor);
      const allReport = await verifyText(all);
      assert.equal(allReport.stubs, 0);
      assert.ok(all.includes(GLOBEX_MARKER) && all.includes(MARKER));
      const allLines = parseBundle(all);
      assert.deepEqual((allLines[0] as Extract<BundleLine, { type: 'header' }>).filter, {});
      const allFull = new Set(allLines.filter((l) => l.type === 'entry').map((l) => l.seq));
      for (const e of [...own, ...stepsTrail]) assert.ok(allFull.has(e.seq));
    });

    // ── verify and export ─────────────────────────────────────────────────────────────────────

    it('verify: ok on the untouched log; progress=true streams progress lines, then the result', async () => {
      await fx.settle();
      const head = await fx.evidence.service.store.head();
      const r = await verifyLog();
      assert.equal(r.entries, head.seq);
      assert.equal(r.head?.seq, head.seq);
      assert.equal(r.head?.hash, head.hash);
      assert.equal(r.redactedFields, 0);
      assert.deepEqual(r.gaps, []);

      const res = await req({ url: '/v1/evidence/verify?progress=true', key: fx.keys.default.admin });
      assert.equal(res.statusCode, 200, res.body);
      assert.match(String(res.headers['content-type']), /^application\/x-ndjson/);
      assert.ok(res.body.endsWith('\n'));
      const lines = bundleTextLines(res.body).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(lines.length >= 2, res.body);
      const result = lines[lines.length - 1] as Record<string, unknown>;
      const progress = lines.slice(0, -1);
      for (const p of progress) {
        assert.equal(p.type, 'progress', res.body);
        assert.ok(typeof p.done === 'number' && typeof p.total === 'number' && p.done <= p.total, res.body);
      }
      assert.equal(progress[progress.length - 1]?.done, head.seq);
      assert.equal(progress[progress.length - 1]?.total, head.seq);
      assert.equal(result.type, 'result');
      assert.equal(result.ok, true);
      assert.equal(result.entries, head.seq);
      assert.equal(result.firstBad, null);
    });

    it('export: the bundle verifies against the control public key; a correlation-filtered export verifies with stubs', async () => {
      const text = await exportText(sysAuditor);
      const lines = parseBundle(text);
      const header = lines[0] as Extract<BundleLine, { type: 'header' }>;
      assert.equal(header.fromSeq, 1);
      assert.deepEqual(header.keyIds, [fx.config.key.keyId]);
      const r = await verifyText(text);
      assert.equal(r.entries, lines.length - 2, 'every line but the header and the manifest is an entry');
      assert.equal(r.stubs, 0);
      assert.ok(r.checkpoints >= 1);
      const last = lines[lines.length - 2] as EntryJson & { type: string };
      assert.equal(last.kind, 'checkpoint', 'the last entry is the checkpoint that signs the bundle');
      assert.equal(last.seq, header.toSeq);

      // The manifest: the last line, over every line before it, signed with the control key.
      const textLines = bundleTextLines(text);
      const manifestText = textLines[textLines.length - 1] as string;
      const manifest = parseManifest(manifestText);
      assert.ok(manifest, `the last line is a manifest: ${manifestText}`);
      assert.equal(manifest.keyId, fx.config.key.keyId);
      const sha = createHash('sha256');
      for (const l of textLines.slice(0, -1)) sha.update(`${l}\n`);
      assert.equal(manifest.sha256, sha.digest('hex'));
      assert.equal(verifyManifest(manifest, fx.publicKey), true);
      assert.equal(verifyManifest(manifest, testSigner().publicKey), false);
      // What the chain does not cover, the manifest does: the header's export time, the filter.
      for (const [what, changed] of [
        ['exportedAt', { ...header, exportedAt: header.exportedAt + 1 }],
        ['filter', { ...header, filter: { tenant: 'acme' } }],
      ] as const) {
        const forged = [JSON.stringify(changed), ...textLines.slice(1)];
        assert.ok(parseHeader(forged[0] as string), `${what}: still a header`);
        const report = await verifyBundle(forged, [fx.publicKey]);
        assert.equal(report.ok, false, `a changed ${what} is rejected`);
        assert.equal(report.firstBad?.seq, null, `${what}: ${JSON.stringify(report.firstBad)}`);
        assert.match(report.firstBad?.reason ?? '', /manifest/);
      }
      // Cut short: no manifest.
      const cut = await verifyBundle(textLines.slice(0, -1), [fx.publicKey]);
      assert.equal(cut.ok, false);
      assert.equal(cut.firstBad?.seq, header.toSeq + 1);
      assert.match(cut.firstBad?.reason ?? '', /no manifest/);

      // Not with another key.
      const wrong = await verifyBundle(bundleTextLines(text), [testSigner().publicKey]);
      assert.equal(wrong.ok, false);
      assert.equal(wrong.firstBad?.seq, null);

      // One correlation id: its entries in full, the rest stubs; still verifies.
      const one = await exportText(sysAuditor, `?correlationId=${flakyJob.correlationId}`);
      const oneReport = await verifyText(one);
      assert.ok(oneReport.stubs > 0);
      // A disclosed line swapped for its stub still links; the manifest rejects it.
      {
        const oneText = bundleTextLines(one);
        const i = oneText.findIndex((l) => {
          const o = JSON.parse(l) as { type: string; kind?: string };
          return o.type === 'entry' && o.kind === 'failure';
        });
        assert.ok(i > 0);
        const rec = recordFromLine(oneText[i] as string, i + 1);
        assert.equal(rec.type, 'entry');
        const swapped = [...oneText];
        swapped[i] = stubLine((rec as { entry: Entry }).entry);
        const report = await verifyBundle(swapped, [fx.publicKey]);
        assert.equal(report.ok, false, 'a disclosed line swapped for its stub is rejected');
        assert.equal(report.firstBad?.seq, null, JSON.stringify(report.firstBad));
        assert.match(report.firstBad?.reason ?? '', /which entries are disclosed/);
      }
      const oneLines = parseBundle(one);
      assert.deepEqual((oneLines[0] as Extract<BundleLine, { type: 'header' }>).filter, {
        correlationId: flakyJob.correlationId,
      });
      const disclosed = oneLines.filter((l): l is { type: 'entry' } & EntryJson => l.type === 'entry');
      const flakyEntries = await trail(sysAuditor, `jobId=${flakyJob.id}`);
      assert.deepEqual(
        disclosed.filter((e) => !ALWAYS_DISCLOSED.has(e.kind)).map((e) => e.seq),
        flakyEntries.map((e) => e.seq),
      );
      assert.equal(one.includes(stepsJob.id), false);
      // acme's own correlation filter: the same, for a tenant caller.
      const acmeOne = await exportText(fx.keys.acme.auditor, `?correlationId=${flakyJob.correlationId}`);
      await verifyText(acmeOne);
      assert.deepEqual((parseBundle(acmeOne)[0] as Extract<BundleLine, { type: 'header' }>).filter, {
        correlationId: flakyJob.correlationId,
        tenant: 'acme',
      });

      // A range: from seq 3 to 6, running on to the checkpoint that signs it.
      const range = await exportText(sysAuditor, '?fromSeq=3&toSeq=6');
      await verifyText(range);
      const rangeLines = parseBundle(range);
      assert.equal((rangeLines[0] as Extract<BundleLine, { type: 'header' }>).fromSeq, 3);
      assert.equal((rangeLines[1] as EntryJson).seq, 3);
      assert.equal(rangeLines[rangeLines.length - 1]?.type, 'manifest');
    });

    // ── redaction ─────────────────────────────────────────────────────────────────────────────

    it("redaction erases a failing job's message: the trail shows redactedBy, verify stays ok, the text is gone from the files", async () => {
      assert.ok(failureSeqs.length === 2, 'the retried job ran first');
      if (fx.dialect === 'sqlite')
        assert.notDeepEqual(filesHolding(MARKER), [], 'before: the message is in the evidence files');
      assert.ok((await logText()).includes(MARKER));
      const before = await trail(fx.keys.acme.auditor, `correlationId=${flakyJob.correlationId}`);

      // Another tenant cannot redact it (it sees no such correlation id).
      assertProblem(
        await req({
          method: 'POST',
          url: '/v1/evidence/redact',
          key: fx.keys.globex.auditor,
          body: { correlationId: flakyJob.correlationId, field: 'message', reason: 'not mine' },
        }),
        404,
        'evidence_not_found',
      );

      const red = await ok<EntryJson>(
        {
          method: 'POST',
          url: '/v1/evidence/redact',
          key: fx.keys.acme.auditor,
          body: { correlationId: flakyJob.correlationId, field: 'message', reason: 'erasure request #12' },
        },
        201,
      );
      assert.equal(red.kind, 'redaction');
      assert.equal(red.tenant, 'acme');
      assert.equal(red.correlationId, flakyJob.correlationId);
      assert.deepEqual(value(red, 'seqs'), failureSeqs);
      assert.equal(value(red, 'field'), 'message');
      assert.equal(value(red, 'reason'), 'erasure request #12');
      assert.equal(value(red, 'by'), fx.keyIds.acme.auditor);

      const afterTrail = await trail(fx.keys.acme.auditor, `correlationId=${flakyJob.correlationId}`);
      assert.equal(afterTrail.length, before.length + 1);
      assert.deepEqual(afterTrail[afterTrail.length - 1], red);
      for (const [i, e] of afterTrail.slice(0, -1).entries()) {
        const was = before[i] as EntryJson;
        assert.deepEqual(e.commitments, was.commitments, 'commitments are never changed');
        assert.equal(e.hash, was.hash);
        if (failureSeqs.includes(e.seq)) {
          assert.deepEqual(e.fields.message, { redactedBy: red.seq });
          assert.deepEqual(e.fields.error, was.fields.error, 'other fields stay');
          assert.deepEqual(e.fields.attempt, was.fields.attempt);
        } else assert.deepEqual(e.fields, was.fields);
      }

      const r = await verifyLog();
      assert.equal(r.redactedFields, 2);
      const bundle = await exportText(sysAuditor);
      await verifyText(bundle);
      assert.equal(bundle.includes(MARKER), false, 'not in an export');
      assert.equal((await logText()).includes(MARKER), false, 'not in any stored row');
      if (fx.dialect === 'sqlite')
        assert.deepEqual(
          filesHolding(MARKER),
          [],
          'after: no byte of the message in evidence.db, -wal or -shm',
        );

      // A bundle that ends before the redaction entry (at the first checkpoint after the first
      // failure) still verifies: its erased values are accounted to entries after its end.
      const early = await exportText(sysAuditor, `?toSeq=${failureSeqs[0]}`);
      const earlyLines = parseBundle(early);
      assert.equal(earlyLines[earlyLines.length - 1]?.type, 'manifest');
      const earlyEnd = (earlyLines[earlyLines.length - 2] as EntryJson).seq;
      assert.ok(earlyEnd < red.seq, `the bundle ends (${earlyEnd}) before the redaction (${red.seq})`);
      const earlyReport = await verifyText(early);
      assert.ok(earlyReport.erasedAfter >= 1, JSON.stringify(earlyReport));
      assert.equal(early.includes(MARKER), false);

      // Again: nothing left to erase.
      const again = assertProblem(
        await req({
          method: 'POST',
          url: '/v1/evidence/redact',
          key: fx.keys.acme.admin,
          body: { correlationId: flakyJob.correlationId, field: 'message', reason: 'again' },
        }),
        404,
        'evidence_not_found',
      );
      assert.match(again.detail, /already redacted, or no such field/);
    });

    // ── legal holds and retention ─────────────────────────────────────────────────────────────

    it('legal hold: a held correlation id cannot be redacted (409, nothing changed) and retention skips it; once released, both work', async () => {
      // The same correlation id in two tenants: acme's job and globex's, each with its own evidence.
      const caseJob = await fx.submit(fx.keys.acme.submitter, {
        task: 'ev.flaky',
        input: { code: 77, prefix: 'CASE', permanent: true },
        correlationId: 'case-77',
      });
      const globexCase = await fx.submit(fx.keys.globex.submitter, {
        task: 'ev.flaky',
        input: { code: 77, prefix: 'GCASE', permanent: true },
        correlationId: 'case-77',
      });
      assert.equal((await fx.finished(fx.keys.acme.submitter, caseJob.id)).state, 'dead');
      assert.equal((await fx.finished(fx.keys.globex.submitter, globexCase.id)).state, 'dead');
      await fx.settle();

      // acme's auditor holds case-77: acme's entries of it, nobody else's.
      const hold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: fx.keys.acme.auditor,
          body: { correlationId: 'case-77', reason: 'litigation: case 77' },
        },
        201,
      );
      assert.match(hold.id, /^hold_/);
      assert.equal(hold.tenant, 'acme');
      assert.equal(hold.correlationId, 'case-77');
      assert.equal(hold.placedBy, fx.keyIds.acme.auditor);
      assert.equal(hold.bySystem, false);
      assert.equal(hold.reason, 'litigation: case 77');
      assert.equal(hold.releasedSeq, null);
      const held = await trail(fx.keys.acme.auditor, 'correlationId=case-77');
      assert.ok(held.every((e) => e.tenant === 'acme'));
      const holdEntry = held[held.length - 1];
      assert.equal(holdEntry?.kind, 'hold');
      assert.equal(holdEntry?.tenant, 'acme');
      assert.equal(holdEntry?.seq, hold.placedSeq);
      assert.equal(value(holdEntry, 'holdId'), hold.id);
      assert.deepEqual(value(holdEntry, 'scope'), { tenant: 'acme', correlationId: 'case-77' });
      assert.equal(value(holdEntry, 'by'), fx.keyIds.acme.auditor);
      // globex's trail of the same id: its own entries, no hold entry.
      const globexHeld = await trail(fx.keys.globex.auditor, 'correlationId=case-77');
      assert.deepEqual(kinds(globexHeld), ['admission', 'lease', 'start', 'step', 'failure', 'outcome']);
      assert.ok(globexHeld.every((e) => e.tenant === 'globex'));
      // Listed for acme and the system tenant, not for globex.
      const listed = async (key: string) =>
        (await ok<{ holds: HoldJson[] }>({ url: '/v1/evidence/holds', key })).holds.map((h) => h.id);
      assert.ok((await listed(fx.keys.acme.auditor)).includes(hold.id));
      assert.ok((await listed(sysAuditor)).includes(hold.id));
      assert.equal((await listed(fx.keys.globex.auditor)).includes(hold.id), false);
      await verifyLog();

      // Redaction of acme's entries is refused, with acme's key and with a system key (which reaches
      // both tenants' entries: refused as a whole); nothing changes in either tenant.
      const headBefore = await fx.evidence.service.store.head();
      for (const key of [fx.keys.acme.auditor, sysAdmin]) {
        const p = assertProblem(
          await req({
            method: 'POST',
            url: '/v1/evidence/redact',
            key,
            body: { correlationId: 'case-77', field: 'message', reason: 'erase' },
          }),
          409,
          'legal_hold',
        );
        assert.match(p.detail, new RegExp(`under legal hold ${hold.id}`));
      }
      assert.deepEqual(await trail(fx.keys.acme.auditor, 'correlationId=case-77'), held);
      assert.deepEqual(await trail(fx.keys.globex.auditor, 'correlationId=case-77'), globexHeld);
      assert.deepEqual(await fx.evidence.service.store.head(), headBefore);
      assert.match(
        String(
          value(
            held.find((e) => e.kind === 'failure'),
            'message',
          ),
        ),
        /CASE-77-SECRET/,
      );

      // acme's hold does not block globex: it redacts its own entries of case-77.
      const globexErrorSeqs = globexHeld.filter((e) => value(e, 'error') !== undefined).map((e) => e.seq);
      assert.ok(globexErrorSeqs.length >= 1);
      const globexRed = await ok<EntryJson>(
        {
          method: 'POST',
          url: '/v1/evidence/redact',
          key: fx.keys.globex.auditor,
          body: { correlationId: 'case-77', field: 'error', reason: 'globex erasure' },
        },
        201,
      );
      assert.equal(globexRed.tenant, 'globex');
      assert.deepEqual(value(globexRed, 'seqs'), globexErrorSeqs);
      assert.deepEqual(await trail(fx.keys.acme.auditor, 'correlationId=case-77'), held, 'acme: untouched');

      // Retention erases the values of old entries, but not of held ones. A system key's hold on a
      // correlation id is the hold of the tenant whose entries carry it (acme): acme sees it, and may
      // not release it.
      const agedHold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: sysAdmin,
          body: { correlationId: AGED.held, reason: 'regulator inquiry' },
        },
        201,
      );
      assert.equal(agedHold.tenant, 'acme');
      assert.equal(agedHold.bySystem, true);
      assert.equal(agedHold.placedBy, fx.keyIds.default.admin);
      assert.ok((await listed(fx.keys.acme.auditor)).includes(agedHold.id));
      assert.equal((await listed(fx.keys.globex.auditor)).includes(agedHold.id), false);
      for (const key of [fx.keys.acme.auditor, fx.keys.acme.admin, fx.keys.globex.admin])
        assertProblem(
          await req({
            method: 'POST',
            url: `/v1/evidence/holds/${agedHold.id}/release`,
            key,
            body: { reason: 'not with a tenant key' },
          }),
          404,
          'hold_not_found',
        );
      const agedHeldBefore = await trail(sysAuditor, `correlationId=${AGED.held}`);
      const ret = await ok<{ erased: number; entries: EntryJson[] }>({
        method: 'POST',
        url: '/v1/evidence/retention',
        key: sysAdmin,
        body: { days: 1 },
      });
      assert.equal(ret.erased, 2, 'the two aged entries not under a hold');
      assert.ok(ret.entries.length >= 1 && ret.entries.every((e) => e.kind === 'retention'));
      const retSeqs = new Set(ret.entries.map((e) => e.seq));
      const freed = await trail(sysAuditor, `correlationId=${AGED.free}`);
      assert.equal(freed.length, 2);
      for (const e of freed)
        for (const [name, f] of Object.entries(e.fields)) {
          assert.ok(f.redactedBy !== undefined && retSeqs.has(f.redactedBy), `${e.seq}.${name} erased`);
          assert.equal(f.value, undefined);
          assert.equal(f.salt, undefined);
        }
      const stillHeld = await trail(sysAuditor, `correlationId=${AGED.held}`);
      assert.deepEqual(
        stillHeld.filter((e) => e.kind !== 'hold'),
        agedHeldBefore.filter((e) => e.kind !== 'hold'),
      );
      assert.equal(value(stillHeld[0], 'note'), AGED_VALUES.held);
      assert.deepEqual(await trail(fx.keys.acme.auditor, 'correlationId=case-77'), held, 'recent: untouched');
      assert.equal((await logText()).includes(AGED_VALUES.free), false);
      if (fx.dialect === 'sqlite') assert.deepEqual(filesHolding(AGED_VALUES.free), []);
      await verifyLog();

      // Released by acme: the hold_released entry (acme's), then redaction works.
      const released = await ok<HoldJson>({
        method: 'POST',
        url: `/v1/evidence/holds/${hold.id}/release`,
        key: fx.keys.acme.auditor,
        body: { reason: 'case settled' },
      });
      assert.equal(released.id, hold.id);
      assert.equal(typeof released.releasedSeq, 'number');
      assert.equal(typeof released.releasedAt, 'number');
      const afterRelease = await trail(fx.keys.acme.auditor, 'correlationId=case-77');
      const rel = afterRelease[afterRelease.length - 1];
      assert.equal(rel?.kind, 'hold_released');
      assert.equal(rel?.tenant, 'acme');
      assert.equal(rel?.seq, released.releasedSeq);
      assert.equal(value(rel, 'holdId'), hold.id);
      assert.equal(value(rel, 'reason'), 'case settled');
      assertProblem(
        await req({
          method: 'POST',
          url: `/v1/evidence/holds/${hold.id}/release`,
          key: fx.keys.acme.auditor,
          body: { reason: 'twice' },
        }),
        404,
        'hold_not_found',
      );

      // A system redaction of case-77 reaches both tenants: one redaction entry per tenant, each
      // listing its own tenant's entries.
      const messageSeqs = (entries: EntryJson[]) =>
        entries.filter((e) => value(e, 'message') !== undefined).map((e) => e.seq);
      const acmeMessages = messageSeqs(held);
      const globexMessages = messageSeqs(globexHeld);
      assert.ok(acmeMessages.length >= 1 && globexMessages.length >= 1);
      const red = await ok<EntryJson>(
        {
          method: 'POST',
          url: '/v1/evidence/redact',
          key: sysAdmin,
          body: { correlationId: 'case-77', field: 'message', reason: 'erase after the case' },
        },
        201,
      );
      const redactions = (await trail(sysAuditor, 'correlationId=case-77')).filter(
        (e) => e.kind === 'redaction' && value(e, 'field') === 'message',
      );
      // (In the order of each tenant's first listed entry: the two jobs ran side by side.)
      const byTenant = [...redactions].sort((a, b) => a.tenant.localeCompare(b.tenant));
      assert.deepEqual(
        byTenant.map((e) => [e.tenant, value(e, 'seqs'), value(e, 'by')]),
        [
          ['acme', acmeMessages, fx.keyIds.default.admin],
          ['globex', globexMessages, fx.keyIds.default.admin],
        ],
        show(redactions),
      );
      assert.deepEqual(red, redactions[0], 'the answer is the first of them');
      assert.equal(red.tenant, acmeMessages[0]! < globexMessages[0]! ? 'acme' : 'globex');
      const [acmeRed, globexMsgRed] = byTenant as [EntryJson, EntryJson];
      const redacted = await trail(fx.keys.acme.auditor, 'correlationId=case-77');
      assert.deepEqual(redacted.find((e) => e.kind === 'failure')?.fields.message, {
        redactedBy: acmeRed.seq,
      });
      assert.equal(redacted.filter((e) => e.kind === 'redaction').length, 1, 'acme sees only its own');
      const globexRedacted = await trail(fx.keys.globex.auditor, 'correlationId=case-77');
      assert.deepEqual(globexRedacted.find((e) => e.kind === 'failure')?.fields.message, {
        redactedBy: globexMsgRed.seq,
      });
      assert.ok(globexRedacted.every((e) => e.tenant === 'globex'));
      for (const marker of ['CASE-77-SECRET', 'GCASE-77-SECRET'])
        assert.equal((await logText()).includes(marker), false, `${marker} is gone`);
      await verifyLog();

      // The aged hold released (with a system key): retention erases what it kept.
      await ok<HoldJson>({
        method: 'POST',
        url: `/v1/evidence/holds/${agedHold.id}/release`,
        key: sysAuditor,
        body: { reason: 'inquiry closed' },
      });
      const ret2 = await ok<{ erased: number }>({
        method: 'POST',
        url: '/v1/evidence/retention',
        key: sysAdmin,
        body: { days: 1 },
      });
      assert.equal(ret2.erased, 2);
      assert.equal((await logText()).includes(AGED_VALUES.held), false);

      const holds = await ok<{ holds: HoldJson[] }>({ url: '/v1/evidence/holds', key: sysAuditor });
      const ours = holds.holds.filter((h) => h.id === hold.id || h.id === agedHold.id);
      assert.equal(ours.length, 2);
      assert.ok(ours.every((h) => h.releasedSeq !== null));
      await verifyLog();
    });

    it("a tenant's auditor may not hold a whole other tenant, nor apply retention", async () => {
      const headBefore = await fx.evidence.service.store.head();
      const holdsBefore = await ok<{ holds: HoldJson[] }>({ url: '/v1/evidence/holds', key: sysAuditor });
      for (const [key, tenant, detail] of [
        [fx.keys.acme.auditor, 'globex', /^tenant 'globex' does not exist \(or is not yours to hold\)$/],
        [fx.keys.acme.admin, 'default', /^tenant 'default' does not exist \(or is not yours to hold\)$/],
        [
          fx.keys.acme.auditor,
          'no-such-tenant',
          /^tenant 'no-such-tenant' does not exist \(or is not yours to hold\)$/,
        ],
        [sysAdmin, 'no-such-tenant', /^tenant 'no-such-tenant' does not exist$/],
      ] as const) {
        const p = assertProblem(
          await req({
            method: 'POST',
            url: '/v1/evidence/holds',
            key,
            body: { tenant, reason: 'not mine' },
          }),
          404,
          'evidence_not_found',
        );
        assert.match(p.detail, detail);
      }
      assertProblem(
        await req({
          method: 'POST',
          url: '/v1/evidence/retention',
          key: fx.keys.acme.auditor,
          body: { days: 1 },
        }),
        403,
        'forbidden',
      );
      assert.deepEqual(await fx.evidence.service.store.head(), headBefore, 'nothing recorded');
      assert.deepEqual(
        await ok<{ holds: HoldJson[] }>({ url: '/v1/evidence/holds', key: sysAuditor }),
        holdsBefore,
        'no hold placed',
      );

      // acme holds itself: acme's hold, released by another acme key; globex neither sees nor releases it.
      const own = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: fx.keys.acme.auditor,
          body: { tenant: 'acme', reason: 'audit of acme' },
        },
        201,
      );
      assert.equal(own.tenant, 'acme');
      assert.equal(own.correlationId, null);
      assert.equal(own.placedBy, fx.keyIds.acme.auditor);
      assert.equal(own.bySystem, false);
      const globexList = await ok<{ holds: HoldJson[] }>({
        url: '/v1/evidence/holds',
        key: fx.keys.globex.auditor,
      });
      assert.equal(
        globexList.holds.some((h) => h.id === own.id),
        false,
      );
      assertProblem(
        await req({
          method: 'POST',
          url: `/v1/evidence/holds/${own.id}/release`,
          key: fx.keys.globex.admin,
          body: { reason: 'not mine' },
        }),
        404,
        'hold_not_found',
      );
      await ok({
        method: 'POST',
        url: `/v1/evidence/holds/${own.id}/release`,
        key: fx.keys.acme.admin,
        body: { reason: 'audit done' },
      });

      // A system key holds all of globex: globex sees the hold, is blocked by it and may not release
      // it; acme neither sees it nor is blocked by it.
      const sysHold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: sysAdmin,
          body: { tenant: 'globex', reason: 'regulator: all of globex' },
        },
        201,
      );
      try {
        assert.equal(sysHold.tenant, 'globex');
        assert.equal(sysHold.correlationId, null);
        assert.equal(sysHold.bySystem, true);
        assert.equal(sysHold.placedBy, fx.keyIds.default.admin);
        const seen = async (key: string) =>
          (await ok<{ holds: HoldJson[] }>({ url: '/v1/evidence/holds', key })).holds.some(
            (h) => h.id === sysHold.id,
          );
        assert.equal(await seen(fx.keys.globex.auditor), true);
        assert.equal(await seen(fx.keys.acme.auditor), false);
        for (const key of [fx.keys.globex.auditor, fx.keys.globex.admin])
          assertProblem(
            await req({
              method: 'POST',
              url: `/v1/evidence/holds/${sysHold.id}/release`,
              key,
              body: { reason: 'lifting the regulator hold' },
            }),
            404,
            'hold_not_found',
          );
        const globexBefore = await trail(fx.keys.globex.auditor, `correlationId=${globexJob.correlationId}`);
        const blocked = assertProblem(
          await req({
            method: 'POST',
            url: '/v1/evidence/redact',
            key: fx.keys.globex.auditor,
            body: { correlationId: globexJob.correlationId, field: 'message', reason: 'GDPR request' },
          }),
          409,
          'legal_hold',
        );
        assert.match(blocked.detail, new RegExp(`under legal hold ${sysHold.id}`));
        assert.deepEqual(
          await trail(fx.keys.globex.auditor, `correlationId=${globexJob.correlationId}`),
          globexBefore,
        );
        // acme redacts a job of its own meanwhile.
        const mine = await fx.submit(fx.keys.acme.submitter, {
          task: 'ev.steps',
          input: { n: 5 },
          correlationId: 'acme-own-11',
        });
        assert.equal((await fx.finished(fx.keys.acme.submitter, mine.id)).state, 'succeeded');
        await fx.settle();
        const r = await ok<EntryJson>(
          {
            method: 'POST',
            url: '/v1/evidence/redact',
            key: fx.keys.acme.auditor,
            body: { correlationId: 'acme-own-11', field: 'workerId', reason: 'not held' },
          },
          201,
        );
        assert.equal(r.tenant, 'acme');
      } finally {
        await ok({
          method: 'POST',
          url: `/v1/evidence/holds/${sysHold.id}/release`,
          key: sysAdmin,
          body: { reason: 'regulator done' },
        });
      }

      // A system key's hold on a correlation id only globex has: globex's hold.
      const corrHold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: sysAuditor,
          body: { correlationId: globexJob.correlationId, reason: 'globex case' },
        },
        201,
      );
      assert.equal(corrHold.tenant, 'globex');
      assert.equal(corrHold.bySystem, true);
      await ok({
        method: 'POST',
        url: `/v1/evidence/holds/${corrHold.id}/release`,
        key: sysAdmin,
        body: { reason: 'done' },
      });
      await verifyLog();
    });

    it("a tenant does not see another tenant's correlation holds (their reasons)", async () => {
      const hold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: fx.keys.acme.auditor,
          body: { correlationId: stepsJob.correlationId, reason: 'acme-confidential matter 31' },
        },
        201,
      );
      try {
        const seen = await ok<{ holds: HoldJson[] }>({
          url: '/v1/evidence/holds',
          key: fx.keys.globex.auditor,
        });
        assert.deepEqual(
          seen.holds.filter((h) => h.id === hold.id),
          [],
          `globex's auditor is shown acme's hold: ${JSON.stringify(seen.holds.find((h) => h.id === hold.id))}`,
        );
      } finally {
        await req({
          method: 'POST',
          url: `/v1/evidence/holds/${hold.id}/release`,
          key: sysAdmin,
          body: { reason: 'test cleanup' },
        });
      }
    });

    it("a tenant cannot release another tenant's legal hold", async () => {
      const hold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: fx.keys.acme.auditor,
          body: { correlationId: stepsJob.correlationId, reason: 'litigation: acme v. someone' },
        },
        201,
      );
      try {
        const res = await req({
          method: 'POST',
          url: `/v1/evidence/holds/${hold.id}/release`,
          key: fx.keys.globex.auditor,
          body: { reason: 'globex lifts acme hold' },
        });
        assertProblem(res, 404, 'hold_not_found');
        const holds = await ok<{ holds: HoldJson[] }>({
          url: '/v1/evidence/holds',
          key: fx.keys.acme.auditor,
        });
        assert.equal(
          holds.holds.find((h) => h.id === hold.id)?.releasedSeq,
          null,
          'the hold is still in place',
        );
      } finally {
        await req({
          method: 'POST',
          url: `/v1/evidence/holds/${hold.id}/release`,
          key: sysAdmin,
          body: { reason: 'test cleanup' },
        });
      }
    });

    it("a tenant's hold on a correlation id does not block another tenant's redaction of its own entries", async () => {
      // acme holds globex's correlation id (acme cannot see it, but may guess it).
      const hold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: fx.keys.acme.auditor,
          body: { correlationId: globexJob.correlationId, reason: 'acme interferes' },
        },
        201,
      );
      try {
        const res = await req({
          method: 'POST',
          url: '/v1/evidence/redact',
          key: fx.keys.globex.auditor,
          body: { correlationId: globexJob.correlationId, field: 'message', reason: 'GDPR request' },
        });
        assert.equal(
          res.statusCode,
          201,
          `globex's redaction of its own entries is blocked by acme's hold: ${res.body.slice(0, 400)}`,
        );
      } finally {
        await req({
          method: 'POST',
          url: `/v1/evidence/holds/${hold.id}/release`,
          key: sysAdmin,
          body: { reason: 'test cleanup' },
        });
      }
      await verifyLog();
    });

    it("a system hold on a correlation id that two tenants carry covers both tenants' entries", async () => {
      const hold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: sysAdmin,
          body: { correlationId: 'case-77', reason: 'regulator: case 77 everywhere' },
        },
        201,
      );
      try {
        const problems: string[] = [];
        const globexHolds = await ok<{ holds: HoldJson[] }>({
          url: '/v1/evidence/holds',
          key: fx.keys.globex.auditor,
        });
        if (!globexHolds.holds.some((h) => h.releasedSeq === null && h.correlationId === 'case-77'))
          problems.push(
            `globex is shown no hold on its case-77 entries (the hold went to tenant ${hold.tenant})`,
          );
        const res = await req({
          method: 'POST',
          url: '/v1/evidence/redact',
          key: fx.keys.globex.auditor,
          body: { correlationId: 'case-77', field: 'attempt', reason: 'under the system hold?' },
        });
        if (res.statusCode !== 409)
          problems.push(
            `globex redacted its case-77 entries under the system hold: ${res.statusCode} ${res.body.slice(0, 160)}`,
          );
        assert.deepEqual(problems, []);
      } finally {
        await req({
          method: 'POST',
          url: `/v1/evidence/holds/${hold.id}/release`,
          key: sysAdmin,
          body: { reason: 'test cleanup' },
        });
      }
      await verifyLog();
    });

    // ── corrections ───────────────────────────────────────────────────────────────────────────

    it('correction: a correction entry pointing at the amended entry; the original is kept; another tenant’s seq is 404', async () => {
      const target = stepsTrail[stepsTrail.length - 1] as EntryJson;
      const c = await ok<EntryJson>(
        {
          method: 'POST',
          url: '/v1/evidence/corrections',
          key: fx.keys.acme.admin,
          body: { seq: target.seq, note: 'the output was recorded under the wrong order number' },
        },
        201,
      );
      assert.equal(c.kind, 'correction');
      assert.equal(c.subject, `entry:${target.seq}`);
      assert.equal(c.tenant, 'acme');
      assert.equal(c.correlationId, target.correlationId);
      assert.ok(c.seq > target.seq);
      assert.equal(value(c, 'targetSeq'), target.seq);
      assert.equal(value(c, 'note'), 'the output was recorded under the wrong order number');
      assert.equal(value(c, 'by'), fx.keyIds.acme.admin);
      const now = await trail(fx.keys.acme.auditor, `jobId=${stepsJob.id}`);
      assert.deepEqual(
        now.find((e) => e.seq === target.seq),
        target,
        'the original is unchanged',
      );
      assert.deepEqual(now[now.length - 1], c);

      // Another tenant's entry: not found, for either side.
      const globexSeq = (await trail(sysAuditor, `jobId=${globexJob.id}`))[0]?.seq ?? 0;
      for (const [key, seq] of [
        [fx.keys.acme.auditor, globexSeq],
        [fx.keys.globex.admin, target.seq],
      ] as const) {
        const p = assertProblem(
          await req({
            method: 'POST',
            url: '/v1/evidence/corrections',
            key,
            body: { seq, note: 'not mine' },
          }),
          404,
          'evidence_not_found',
        );
        assert.match(p.detail, new RegExp(`evidence entry ${seq} does not exist`));
      }
      // The system tenant corrects any entry.
      const sys = await ok<EntryJson>(
        {
          method: 'POST',
          url: '/v1/evidence/corrections',
          key: sysAuditor,
          body: { seq: globexSeq, note: 'admitted under an outdated contract' },
        },
        201,
      );
      assert.equal(sys.tenant, 'globex');
      assert.equal(value(sys, 'targetSeq'), globexSeq);
      await verifyLog();
    });

    // ── health ────────────────────────────────────────────────────────────────────────────────

    it('health: an evidence section with headSeq, shippedThrough, shipperLag, the signed lastCheckpoint, lastVerify and gaps', async () => {
      await exportText(sysAuditor); // signs the head
      await verifyLog();
      await fx.settle();
      // The sections' details are the deployment's: a key of the system tenant reads them.
      const res = await req({ url: '/v1/health', key: fx.keys.default.worker });
      assert.equal(res.statusCode, 200, res.body);
      const ev = (res.json() as { sections: Record<string, Record<string, unknown>> }).sections.evidence;
      assert.ok(ev, res.body);
      const head = await fx.evidence.service.store.head();
      assert.equal(ev.status, 'ok', res.body);
      assert.equal(ev.store, fx.dialect);
      assert.equal(ev.headSeq, head.seq);
      assert.equal(ev.shippedThrough, await fx.store.outboxHead());
      assert.equal(ev.shipperLag, 0);
      assert.equal(ev.gaps, 0);

      const cp = ev.lastCheckpoint as {
        seq: number;
        headHash: string;
        at: number;
        keyId: string;
        signature: string;
      };
      assert.deepEqual(Object.keys(cp).sort(), ['at', 'headHash', 'keyId', 'seq', 'signature']);
      assert.equal(cp.keyId, fx.config.key.keyId);
      assert.equal(
        verifySignature(
          null,
          Buffer.from(checkpointMessage({ seq: cp.seq, headHash: cp.headHash, at: cp.at, keyId: cp.keyId })),
          fx.publicKey,
          Buffer.from(cp.signature, 'base64'),
        ),
        true,
        'the checkpoint signature verifies with the control key',
      );
      const [signed] = await fx.evidence.service.store.readRows(cp.seq, 1, cp.seq);
      assert.equal(signed?.hash, cp.headHash, 'it signs the hash of the entry it names');

      const lv = ev.lastVerify as Record<string, unknown>;
      assert.equal(lv.ok, true);
      assert.equal(lv.firstBadSeq, null);
      assert.equal(lv.reason, null);
      assert.equal(typeof lv.at, 'number');
      assert.equal(typeof lv.headSeq, 'number');
    });

    // ── secrets ───────────────────────────────────────────────────────────────────────────────

    it('creating an API key records an admin entry with the key id, never the secret', async () => {
      const res = await req({
        method: 'POST',
        url: '/v1/tenants/acme/keys',
        key: sysAdmin,
        body: { roles: ['auditor'], name: 'external auditor' },
      });
      assert.equal(res.statusCode, 201, res.body);
      const { key, apiKey } = res.json() as { key: string; apiKey: { id: string } };
      const secret = key.slice(`bh_${apiKey.id}_`.length);
      assert.equal(secret.length, 43);
      await fx.settle();

      const bundle = await exportText(sysAuditor);
      const created = parseBundle(bundle).filter(
        (l): l is { type: 'entry' } & EntryJson =>
          l.type === 'entry' && l.kind === 'admin' && value(l, 'keyId') === apiKey.id,
      );
      assert.equal(created.length, 1, 'one admin entry names the key');
      const e = created[0] as EntryJson;
      assert.equal(e.tenant, 'acme');
      assert.equal(value(e, 'event'), 'admin.key_created');
      assert.deepEqual(value(e, 'roles'), ['auditor']);
      assert.equal(value(e, 'by'), fx.keyIds.default.admin);

      // The new key works, and acme's own export shows its creation.
      const acme = await exportText(key);
      assert.ok(acme.includes(apiKey.id));

      const texts: Array<[string, string]> = [
        ['the system export', bundle],
        ["acme's export", acme],
        ['the stored rows', await logText()],
      ];
      for (const [what, text] of texts) {
        assert.equal(text.includes(secret), false, `no secret in ${what}`);
        assert.equal(text.includes(key), false, `no key text in ${what}`);
      }
      if (fx.dialect === 'sqlite')
        assert.deepEqual(filesHolding(secret), [], 'no secret in the evidence files');
    });

    // ── pruned outbox events ──────────────────────────────────────────────────────────────────

    it('outbox events pruned before they were shipped: a gap entry, reported by verify and health', async () => {
      await fx.settle();
      await fx.evidence.shipper.stop();
      let pruned = { deleted: 0, prunedThrough: 0 };
      try {
        const job = await fx.submit(fx.keys.acme.submitter, { task: 'ev.steps', input: { n: 1 } });
        assert.equal((await fx.finished(fx.keys.acme.submitter, job.id)).state, 'succeeded');
        const through = await fx.store.outboxHead();
        assertProblem(
          await req({
            method: 'POST',
            url: '/v1/events/prune',
            key: fx.keys.acme.admin,
            body: { throughSeq: through },
          }),
          403,
          'forbidden',
        );
        pruned = await ok({
          method: 'POST',
          url: '/v1/events/prune',
          key: sysAdmin,
          body: { throughSeq: through },
        });
        assert.equal(pruned.prunedThrough, through);
        assert.ok(pruned.deleted > 0);
      } finally {
        fx.evidence.shipper.start();
      }
      await fx.settle();
      const r = await verifyLog();
      assert.equal(r.gaps.length, 1, JSON.stringify(r.gaps));
      assert.equal(r.gaps[0]?.toSeq, pruned.prunedThrough);
      const res = await req({ url: '/v1/health', key: sysAuditor });
      const ev = (res.json() as { sections: Record<string, Record<string, unknown>> }).sections.evidence;
      assert.equal(ev?.gaps, 1, res.body);
      await verifyText(await exportText(sysAuditor));
    });

    // ── retention of everything ───────────────────────────────────────────────────────────────

    it('retention three days on: every unheld value is erased; held correlation ids and tenants keep theirs; the log verifies', async () => {
      const corrHold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: fx.keys.acme.auditor,
          body: { correlationId: stepsJob.correlationId, reason: 'keep the steps job' },
        },
        201,
      );
      const tenantHold = await ok<HoldJson>(
        {
          method: 'POST',
          url: '/v1/evidence/holds',
          key: sysAdmin,
          body: { tenant: 'globex', reason: 'keep globex' },
        },
        201,
      );
      assert.deepEqual(
        [corrHold.tenant, corrHold.bySystem, tenantHold.tenant, tenantHold.bySystem],
        ['acme', false, 'globex', true],
      );
      const keptSteps = await trail(sysAuditor, `correlationId=${stepsJob.correlationId}`);
      const keptGlobex = await trail(sysAuditor, `correlationId=${globexJob.correlationId}`);
      const r = await fx.evidence.service.applyRetention(1, Date.now() + 3 * DAY);
      assert.ok(r.erased > 0);

      assert.deepEqual(await trail(sysAuditor, `correlationId=${stepsJob.correlationId}`), keptSteps);
      assert.deepEqual(await trail(sysAuditor, `correlationId=${globexJob.correlationId}`), keptGlobex);
      const flaky = await trail(sysAuditor, `jobId=${flakyJob.id}`);
      for (const e of flaky.filter((x) => x.kind !== 'redaction'))
        assert.ok(
          Object.values(e.fields).every((f) => f.value === undefined && typeof f.redactedBy === 'number'),
          `entry ${e.seq} (${e.kind}) is erased: ${JSON.stringify(e.fields)}`,
        );
      const redaction = flaky.find((x) => x.kind === 'redaction');
      assert.equal(value(redaction, 'field'), 'message', "the evidence plane's own entries are kept");
      const rows = await fx.evidence.service.store.readRows(1, 1_000_000);
      const held = new Set([stepsJob.correlationId]);
      for (const row of rows) {
        const fields = JSON.parse(row.fields) as Record<string, FieldJson>;
        const structural = [
          'redaction',
          'retention',
          'correction',
          'hold',
          'hold_released',
          'gap',
          'checkpoint',
        ];
        if (structural.includes(row.kind) || row.tenant === 'globex' || held.has(row.correlation_id ?? ''))
          continue;
        for (const [name, f] of Object.entries(fields))
          assert.equal(
            f.value,
            undefined,
            `entry ${row.seq} (${row.kind}, ${row.tenant}) field ${name} erased`,
          );
      }
      await verifyLog();
      await verifyText(await exportText(sysAuditor));
      for (const h of [corrHold, tenantHold])
        await ok({
          method: 'POST',
          url: `/v1/evidence/holds/${h.id}/release`,
          key: sysAdmin,
          body: { reason: 'done' },
        });
    });
  });
}
