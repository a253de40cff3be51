/**
 * `bulkhead dev` as a user runs it: one real process on an embedded SQLite ledger in a temp data
 * dir, driven by the `bulkhead` client commands (exit codes, states and outputs checked exactly).
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/backends.js';
import {
  closedPort,
  json,
  type Proc,
  type RunResult,
  runCli,
  serverEnv,
  show,
  sigtermAtReady,
  spawnCli,
  stopAll,
} from './procs.js';

interface Job {
  id: string;
  kind: string;
  task: string;
  state: string;
  reason?: string;
  input: unknown;
  output?: Record<string, unknown>;
  error?: { code: string; message: string };
  attempt: number;
  parentId?: string;
  correlationId: string;
}

const tmp = tempDir('bulkhead-e2e-embedded-');
const dataDir = join(tmp.dir, 'data');
const keyFile = join(dataDir, 'admin-key');
let dev: Proc;
let url = '';
let adminKey = '';

after(async () => {
  await stopAll();
  tmp.remove();
});

async function startDev(): Promise<Proc> {
  const p = spawnCli(['dev', '--data-dir', dataDir, '--port', '0'], { cwd: tmp.dir, env: serverEnv() });
  const m = await p.waitFor(/running at (http:\S+)/);
  await p.waitFor(/^ {2}try: /m);
  url = m[1] ?? '';
  return p;
}

/** A client command against the dev server, with BULKHEAD_URL and BULKHEAD_API_KEY set. */
const bh = (args: string[], key = adminKey): Promise<RunResult> =>
  runCli(args, { cwd: tmp.dir, env: { BULKHEAD_URL: url, BULKHEAD_API_KEY: key } });

function expectExit(r: RunResult, code: number): void {
  assert.equal(r.code, code, show(r));
}

/** The `key  value` lines of `jobs show` (and of a waited-for job that did not succeed). */
function fields(stdout: string): Map<string, string> {
  return new Map(
    stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, 12).trim(), l.slice(12)]),
  );
}

describe('bulkhead dev (embedded)', () => {
  before(async () => {
    dev = await startDev();
  });

  it('prints the URL and the admin key once, and writes the key to <data-dir>/admin-key (0600)', () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const m = /admin key \(shown once, also written to (.+)\):\n {4}(bh_\S+)\n/.exec(dev.stdout);
    assert.ok(m, dev.describe());
    assert.equal(m[1], keyFile);
    adminKey = m[2] ?? '';
    assert.equal(dev.stdout.split(adminKey).length - 1, 1, 'the key is printed exactly once');
    assert.equal(readFileSync(keyFile, 'utf8').trim(), adminKey);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(
      dev.stdout,
      /tasks: {3}demo\.echo, demo\.flaky, demo\.payout, demo\.summarize, demo\.thumbnail\n/,
    );
  });

  it('exits 0 on SIGTERM; a restart reuses the key without printing it', async () => {
    expectExit(await bh(['health']), 0); // serving (a SIGTERM at the ready line is tested below)
    const stopped = await dev.stop(10_000);
    assert.deepEqual([stopped.code, stopped.signal], [0, null], dev.describe());
    dev = await startDev();
    assert.doesNotMatch(dev.stdout, /bh_/, 'no key printed on restart');
    assert.match(dev.stdout, new RegExp(`admin key: in ${keyFile}\\n`));
    assert.equal(readFileSync(keyFile, 'utf8').trim(), adminKey);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  });

  it('submit --wait prints the output of a job that succeeded', async () => {
    const r = await bh(['submit', 'demo.echo', '--input', '{"hello":"world"}', '--wait']);
    expectExit(r, 0);
    assert.deepEqual(json(r), { hello: 'world' });
  });

  it('demo.flaky succeeds on attempt 2 without re-running its durable step', async () => {
    const r = await bh(['submit', 'demo.flaky', '--input', '{"failures":1}', '--wait']);
    expectExit(r, 0);
    const out = json(r);
    assert.equal(out.preparedOnAttempt, 1);
    assert.equal(out.succeededOnAttempt, 2);
    assert.match(String(out.idempotencyKey), /:upstream-call$/);
  });

  let deadId = '';
  it('a permanent failure ends dead and submit --wait exits 6', async () => {
    const r = await bh(['submit', 'demo.flaky', '--input', '{"permanent":true}', '--wait']);
    expectExit(r, 6);
    const f = fields(r.stdout);
    assert.equal(f.get('state'), 'dead (not_retryable)', r.stdout);
    assert.equal(f.get('attempt'), '1 of 5');
    assert.equal(f.get('error'), 'upstream_rejected: the upstream rejected the request for good');
    deadId = f.get('id') ?? '';
    assert.match(deadId, /^[0-9a-f-]{36}$/);
  });

  it('the dead job is compensated: a compensation job undoes its committed step', async () => {
    // The compensation consumer follows the outbox; give it a few polls.
    let comp: Job | undefined;
    for (let i = 0; i < 50 && !comp?.output; i++) {
      const page = json<{ jobs: Job[] }>(
        await bh(['jobs', 'ls', '--json', '--task', 'demo.flaky', '--limit', '50']),
      );
      comp = page.jobs.find(
        (j) => j.kind === 'compensation' && j.parentId === deadId && j.state === 'succeeded',
      );
      if (!comp) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(comp, 'a succeeded compensation job whose parent is the dead job');
    assert.deepEqual(comp.output, { undone: ['prepare'] });
    assert.equal(comp.correlationId, json<Job>(await bh(['jobs', 'show', deadId, '--json'])).correlationId);
  });

  let summarizeId = '';
  it('submit --input @file.json --wait --json prints the finished job', async () => {
    const text = 'Queues hold jobs. Workers claim jobs from queues. Leases expire.';
    writeFileSync(join(tmp.dir, 'input.json'), JSON.stringify({ text }));
    const r = await bh(['submit', 'demo.summarize', '--input', '@input.json', '--wait', '--json']);
    expectExit(r, 0);
    const job = json<Job>(r);
    assert.equal(job.task, 'demo.summarize');
    assert.equal(job.state, 'succeeded');
    assert.equal(job.attempt, 1);
    assert.deepEqual(job.input, { text });
    assert.deepEqual(job.output, {
      summary: 'Queues hold jobs. Workers claim jobs from queues.',
      sentences: 3,
      words: 10,
    });
    summarizeId = job.id;
  });

  it('submit --count 50 --wait reports "50 succeeded"', async () => {
    const r = await bh(['submit', 'demo.echo', '--input', '{"n":1}', '--count', '50', '--wait']);
    expectExit(r, 0);
    assert.equal(r.stdout, '50 succeeded\n');
  });

  it('jobs ls --json lists the newest jobs first, a page at a time', async () => {
    const r = await bh(['jobs', 'ls', '--json']);
    expectExit(r, 0);
    const page = json<{ jobs: Job[]; nextCursor?: string }>(r);
    assert.equal(page.jobs.length, 20, 'the default page size');
    assert.ok(page.nextCursor, 'more than one page: 54 jobs and more');
    // Newest first: the 50 echo jobs, unless the compensation of the dead demo.flaky job (made by
    // an outbox consumer, so a little later) is newer still.
    const echoes = page.jobs.filter((j) => j.task === 'demo.echo');
    assert.ok(echoes.length >= 19 && echoes.every((j) => j.state === 'succeeded'));
    assert.ok(
      page.jobs.every(
        (j) => j.task === 'demo.echo' || (j.task === 'demo.flaky' && j.kind === 'compensation'),
      ),
    );
    const byTask = json<{ jobs: Job[] }>(await bh(['jobs', 'ls', '--json', '--task', 'demo.summarize']));
    assert.deepEqual(
      byTask.jobs.map((j) => [j.id, j.state]),
      [[summarizeId, 'succeeded']],
    );
    const table = await bh(['jobs', 'ls', '--state', 'dead']);
    expectExit(table, 0);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^ID\s+TASK\s+STATE\s+REASON\s+ATTEMPT\s+UPDATED$/);
    assert.equal(lines.length, 2, table.stdout);
    assert.match(lines[1] ?? '', new RegExp(`^${deadId}\\s+demo\\.flaky\\s+dead\\s+not_retryable\\s+1/5\\s`));
  });

  it('jobs show prints one job; an unknown id exits 4', async () => {
    const r = await bh(['jobs', 'show', summarizeId]);
    expectExit(r, 0);
    const f = fields(r.stdout);
    assert.equal(f.get('id'), summarizeId);
    assert.equal(f.get('task'), 'demo.summarize@1');
    assert.equal(f.get('state'), 'succeeded (completed)');
    assert.equal(f.get('attempt'), '1 of 3');
    assert.match(f.get('output') ?? '', /^\{"summary":"Queues hold jobs/);
    const missing = await bh(['jobs', 'show', '01a212f5-0000-7000-8000-000000000000']);
    expectExit(missing, 4);
    assert.match(missing.stderr, /does not exist \[job_not_found\]/);
  });

  it('jobs cancel of a finished job is a conflict (exit 5) and changes nothing', async () => {
    const r = await bh(['jobs', 'cancel', summarizeId]);
    expectExit(r, 5);
    assert.match(r.stderr, /it is 'succeeded' \[job_state_conflict\]/);
    const job = json<Job>(await bh(['jobs', 'show', summarizeId, '--json']));
    assert.equal(job.state, 'succeeded');
  });

  it('jobs retry of a dead job creates a new job with parentId', async () => {
    const r = await bh(['jobs', 'retry', deadId, '--json']);
    expectExit(r, 0);
    const job = json<Job>(r);
    assert.notEqual(job.id, deadId);
    assert.equal(job.parentId, deadId);
    assert.equal(job.task, 'demo.flaky');
    assert.deepEqual(job.input, { permanent: true });
    const shown = await bh(['jobs', 'show', job.id]);
    expectExit(shown, 0);
    assert.equal(fields(shown.stdout).get('parent'), deadId);
    const old = json<Job>(await bh(['jobs', 'show', deadId, '--json']));
    assert.equal(old.state, 'dead', 'the original stays dead');
  });

  it('keys create/revoke: a submitter key submits, may not create keys, and stops working once revoked', async () => {
    const created = await bh(['keys', 'create', '--tenant', 'default', '--role', 'submitter']);
    expectExit(created, 0);
    const key = created.stdout.trim();
    assert.match(key, /^bh_[0-9a-f]+_\S+$/);
    const id = /^key (\S+) for tenant default \(submitter\)/.exec(created.stderr)?.[1] ?? '';
    assert.equal(key.split('_')[1], id, created.stderr);

    const submitted = await bh(['submit', 'demo.echo', '--input', '{"by":"submitter"}', '--wait'], key);
    expectExit(submitted, 0);
    assert.deepEqual(json(submitted), { by: 'submitter' });

    const refused = await bh(['keys', 'create', '--tenant', 'default', '--role', 'admin'], key);
    expectExit(refused, 3);
    assert.match(refused.stderr, /\[forbidden\]/);
    assert.equal(refused.stdout, '');

    const revoked = await bh(['keys', 'revoke', id]);
    expectExit(revoked, 0);
    assert.equal(revoked.stdout, `revoked ${id} (tenant default)\n`);
    const after = await bh(['submit', 'demo.echo', '--input', '{}'], key);
    expectExit(after, 3);
    assert.match(after.stderr, /\[unauthorized\]/);
  });

  it('health --json shows the ledger, execution and evidence sections ok', async () => {
    const r = await bh(['health', '--json']);
    expectExit(r, 0);
    const h = json<{ status: string; sections: Record<string, Record<string, unknown>> }>(r);
    assert.equal(h.status, 'ok');
    assert.deepEqual(Object.keys(h.sections).sort(), ['control', 'evidence', 'execution', 'ledger']);
    assert.equal(h.sections.evidence?.status, 'ok');
    assert.equal(h.sections.evidence?.store, 'sqlite');
    assert.ok((h.sections.evidence?.headSeq as number) > 0, 'the jobs so far are in the evidence log');
    assert.equal(h.sections.control?.status, 'ok');
    assert.equal(h.sections.control?.version, 1);
    assert.equal(h.sections.ledger?.status, 'ok');
    assert.equal(h.sections.ledger?.dialect, 'sqlite');
    assert.equal(h.sections.execution?.status, 'ok');
    assert.equal(h.sections.execution?.state, 'running');
  });

  it('bad input exits 2 with a clear message', async () => {
    const unknown = await bh(['submit', 'demo.nope', '--input', '{}']);
    expectExit(unknown, 2);
    assert.match(
      unknown.stderr,
      /task 'demo\.nope' is not registered \(known: demo\.echo@1, .*\[unknown_task\]/,
    );
    const notJson = await bh(['submit', 'demo.echo', '--input', '{bad']);
    expectExit(notJson, 2);
    assert.match(notJson.stderr, /^bulkhead: --input is not valid JSON \(.+\); pass JSON or @file\.json\n$/);
    const noFile = await bh(['submit', 'demo.echo', '--input', '@missing.json']);
    expectExit(noFile, 2);
    assert.match(noFile.stderr, /--input @missing\.json: no such file/);
    const schema = await bh(['submit', 'demo.flaky', '--input', '{"failures":"x"}']);
    expectExit(schema, 2);
    assert.match(schema.stderr, /input of task 'demo\.flaky' is invalid: \/failures .*\[invalid_input\]/);
    for (const r of [unknown, notJson, noFile, schema]) assert.equal(r.stdout, '');
    const none = json<{ jobs: Job[] }>(await bh(['jobs', 'ls', '--json', '--task', 'demo.nope']));
    assert.deepEqual(none.jobs, []);
  });

  it('a malformed --url is bad usage (exit 2)', async () => {
    const r = await runCli(['--url', 'notaurl', 'health'], {
      cwd: tmp.dir,
      env: { BULKHEAD_API_KEY: adminKey },
    });
    expectExit(r, 2);
    assert.match(r.stderr, /notaurl/);
  });

  it('an unreachable API exits 7', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const r = await runCli(['submit', 'demo.echo', '--input', '{}'], {
      cwd: tmp.dir,
      env: { BULKHEAD_URL: dead, BULKHEAD_API_KEY: adminKey },
    });
    expectExit(r, 7);
    assert.equal(r.stderr, `bulkhead: cannot reach the Bulkhead API at ${dead} (is it running?)\n`);
  });

  it('SIGTERM makes dev exit 0', async () => {
    const stopped = await dev.stop(10_000);
    assert.deepEqual([stopped.code, stopped.signal], [0, null], dev.describe());
  });

  it('SIGTERM sent as soon as the ready line is printed also exits 0', async () => {
    const args = ['dev', '--data-dir', dataDir, '--port', '0'];
    const ends = await sigtermAtReady(args, /^ {2}try: /m, { cwd: tmp.dir, env: serverEnv() }, 10);
    assert.deepEqual(
      ends.filter((e) => e !== '0/null'),
      [],
      `code/signal of 10 runs: ${ends.join(' ')}`,
    );
  });
});
