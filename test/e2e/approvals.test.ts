/**
 * Approvals end to end through the CLI, on `bulkhead dev`: a published config makes `demo.payout`
 * need two distinct approvers and `demo.echo` one within 800 ms. The key that submitted a job cannot
 * approve it; an approver decides once; the second approval lets the job run; a rejection ends a
 * job `rejected`; an approval window that runs out ends it `expired`. Policies and tenants refuse
 * with the policy named. The evidence trail shows each decision.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/backends.js';
import {
  json,
  type Proc,
  REPO,
  type RunResult,
  runCli,
  serverEnv,
  show,
  spawnCli,
  stopAll,
} from './procs.js';

interface Job {
  id: string;
  state: string;
  reason?: string;
  correlationId: string;
  output?: unknown;
}

interface Entry {
  kind: string;
  fields: Record<string, { value?: unknown }>;
}

/** A field's value in a trail entry. */
const field = (e: Entry | undefined, name: string): unknown => e?.fields[name]?.value;

const tmp = tempDir('bulkhead-e2e-approvals-');
const dataDir = join(tmp.dir, 'data');
let dev: Proc;
let url = '';
const keys: Record<string, string> = {};

const CONFIG = {
  tenants: [{ name: 'default' }],
  taskTypes: [
    { name: 'demo.payout', effect: 'destructive', approval: true, approvals: 2 },
    { name: 'demo.echo', approval: true, approvalTimeoutMs: 800 },
    { name: 'demo.summarize', effect: 'read' },
  ],
  policies: [
    { tenant: 'default', roles: ['admin', 'submitter'], tasks: ['demo.*'] },
    { tenant: 'default', roles: ['operator'], tasks: ['demo.summarize'] },
  ],
};

const bh = (args: string[], key: string): Promise<RunResult> =>
  runCli(args, { cwd: tmp.dir, env: { BULKHEAD_URL: url, BULKHEAD_API_KEY: key } });

async function ok(args: string[], key: string): Promise<RunResult> {
  const r = await bh(args, key);
  assert.equal(r.code, 0, show(r));
  return r;
}

async function submit(task: string, input: unknown, key = keys.submitter ?? ''): Promise<Job> {
  return json<Job>(await ok(['submit', task, '--input', JSON.stringify(input), '--json'], key));
}

async function show1(id: string): Promise<Job> {
  return json<Job>(await ok(['jobs', 'show', id, '--json'], keys.admin ?? ''));
}

/** The trail's entries of a job, once the shipper has recorded what `until` waits for. */
async function trail(id: string, until: (entries: Entry[]) => boolean): Promise<Entry[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const entries = json<Entry[]>(await ok(['evidence', 'trail', id, '--json'], keys.admin ?? ''));
    if (until(entries)) return entries;
    if (Date.now() > deadline) assert.fail(`the trail of ${id} never showed it: ${JSON.stringify(entries)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('approvals through the CLI (bulkhead dev)', () => {
  before(async () => {
    dev = spawnCli(['dev', '--data-dir', dataDir, '--port', '0'], { cwd: tmp.dir, env: serverEnv() });
    url = (await dev.waitFor(/running at (http:\S+)/))[1] ?? '';
    await dev.waitFor(/^ {2}try: /m);
    keys.admin = readFileSync(join(dataDir, 'admin-key'), 'utf8').trim();
    for (const [name, roles] of [
      ['submitter', 'submitter'],
      ['both', 'submitter,approver'],
      ['alice', 'approver'],
      ['bob', 'approver'],
      ['operator', 'operator'],
    ] as const) {
      keys[name] = (
        await ok(['keys', 'create', '--tenant', 'default', '--role', roles], keys.admin)
      ).stdout.trim();
    }
    const file = join(tmp.dir, 'config.json');
    writeFileSync(file, JSON.stringify(CONFIG));
    await ok(['config', 'publish', file, '--tasks', join(REPO, 'dist/examples/demo/tasks.js')], keys.admin);
  });

  after(async () => {
    await stopAll();
    tmp.remove();
  });

  it('a quorum of two distinct approvers, never the submitter: then the job runs', async () => {
    const job = await submit('demo.payout', { to: 'acct-7', amountCents: 4200 }, keys.both);
    assert.equal(job.state, 'awaiting_approval');
    const listed = json<{ jobs: Job[] }>(
      await ok(['jobs', 'ls', '--awaiting-approval', '--json'], keys.admin ?? ''),
    );
    assert.ok(
      listed.jobs.some((j) => j.id === job.id),
      'jobs ls --awaiting-approval lists it',
    );

    const self = await bh(['jobs', 'approve', job.id], keys.both ?? '');
    assert.equal(self.code, 3, show(self));
    assert.match(self.stderr, /submitted job .* cannot approve it/);

    const first = json<Job>(
      await ok(['jobs', 'approve', job.id, '--comment', 'matches invoice 7', '--json'], keys.alice ?? ''),
    );
    assert.equal(first.state, 'awaiting_approval', 'one approval of two: still waiting');
    const twice = await bh(['jobs', 'approve', job.id], keys.alice ?? '');
    assert.equal(twice.code, 3, show(twice));
    assert.match(twice.stderr, /already decided/);
    const notApprover = await bh(['jobs', 'approve', job.id], keys.submitter ?? '');
    assert.equal(notApprover.code, 3, show(notApprover));

    const second = json<Job>(await ok(['jobs', 'approve', job.id, '--json'], keys.bob ?? ''));
    assert.equal(second.state, 'queued');
    assert.equal(second.reason, 'approved');
    const done = json<Job>(
      await ok(['jobs', 'wait', job.id, '--timeout', '20000', '--json'], keys.admin ?? ''),
    );
    assert.equal(done.state, 'succeeded', JSON.stringify(done));

    const entries = await trail(job.id, (es) => es.some((e) => field(e, 'event') === 'job.succeeded'));
    const approvals = entries.filter((e) => e.kind === 'approval');
    assert.deepEqual(
      approvals.map((e) => [field(e, 'event'), field(e, 'decision'), field(e, 'approvals')]),
      [
        ['job.approval_recorded', 'approve', 1],
        ['job.queued', 'approve', 2],
      ],
    );
    assert.equal(field(approvals[0], 'comment'), 'matches invoice 7');
  });

  it('a rejection ends the job rejected, with the comment in the evidence', async () => {
    const job = await submit('demo.payout', { to: 'acct-9', amountCents: 999_999 });
    const rejected = json<Job>(
      await ok(['jobs', 'reject', job.id, '--comment', 'amount over the limit', '--json'], keys.alice ?? ''),
    );
    assert.equal(rejected.state, 'rejected');
    const late = await bh(['jobs', 'approve', job.id], keys.bob ?? '');
    assert.equal(late.code, 5, show(late));
    const entries = await trail(job.id, (es) => es.some((e) => field(e, 'event') === 'job.rejected'));
    const rejection = entries.find((e) => field(e, 'event') === 'job.rejected');
    assert.equal(rejection?.kind, 'approval');
    assert.equal(field(rejection, 'comment'), 'amount over the limit');
  });

  it('an approval window that runs out ends the job expired', async () => {
    const job = await submit('demo.echo', { hello: 'window' });
    assert.equal(job.state, 'awaiting_approval');
    const deadline = Date.now() + 15_000;
    let now = await show1(job.id);
    while (now.state === 'awaiting_approval' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      now = await show1(job.id);
    }
    assert.equal(now.state, 'expired');
    const late = await bh(['jobs', 'approve', job.id], keys.alice ?? '');
    assert.equal(late.code, 5, show(late));
    await trail(job.id, (es) => es.some((e) => field(e, 'event') === 'job.expired'));
  });

  it('policies and tenants refuse at admission, naming the policy', async () => {
    const ran = await submit(
      'demo.summarize',
      { text: 'Policies decide. Admission enforces.' },
      keys.operator,
    );
    assert.equal(ran.state, 'queued');
    const refused = await bh(['submit', 'demo.echo', '--input', '{}'], keys.operator ?? '');
    assert.equal(refused.code, 3, show(refused));
    assert.match(refused.stderr, /no policy lets roles operator of tenant 'default' submit 'demo\.echo'/);
    assert.match(refused.stderr, /policies\[0\]/);
    // A tenant the config does not list cannot submit.
    await ok(['tenants', 'create', 'newco'], keys.admin ?? '');
    const newco = (
      await ok(['keys', 'create', '--tenant', 'newco', '--role', 'submitter'], keys.admin ?? '')
    ).stdout.trim();
    const outside = await bh(['submit', 'demo.summarize', '--input', '{"text":"x"}'], newco);
    assert.equal(outside.code, 3, show(outside));
    assert.match(outside.stderr, /tenant 'newco' is not listed in the published config's tenants/);
  });
});
