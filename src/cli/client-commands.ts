/**
 * The commands that talk to a running Bulkhead over HTTP: submit, jobs, keys, tenants, health.
 * They read BULKHEAD_URL and BULKHEAD_API_KEY (or --url / --api-key); with neither key given,
 * `./.bulkhead/admin-key` (written by `bulkhead dev`) is used when it exists.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { type BulkheadClient, createClient, type JobView } from '../sdk/client.js';
import { ensureControlIdentity } from './control-setup.js';
import { UsageError } from './load-tasks.js';
import { EXIT, Progress, printJson, printTable } from './output.js';
import { intOption } from './server-commands.js';

interface GlobalOptions {
  url?: string;
  apiKey?: string;
}

export function client(cmd: Command): BulkheadClient {
  const g = cmd.optsWithGlobals() as GlobalOptions;
  let apiKey = g.apiKey ?? process.env.BULKHEAD_API_KEY;
  if (!apiKey && existsSync('.bulkhead/admin-key'))
    apiKey = readFileSync('.bulkhead/admin-key', 'utf8').trim();
  const url = g.url ?? process.env.BULKHEAD_URL;
  if (url !== undefined && !/^https?:\/\/[^/\s]+/.test(url)) {
    throw new UsageError(`--url / BULKHEAD_URL '${url}' is not an http(s) URL (e.g. http://127.0.0.1:8080)`);
  }
  return createClient({ ...(url && { url }), ...(apiKey && { apiKey }) });
}

function parseInput(raw: string | undefined): unknown {
  if (raw === undefined) return {};
  const text = raw.startsWith('@') ? readFileOrFail(raw.slice(1)) : raw;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--input is not valid JSON (${(err as Error).message}); pass JSON or @file.json`);
  }
}

function readFileOrFail(path: string): string {
  if (!existsSync(path)) throw new UsageError(`--input @${path}: no such file`);
  return readFileSync(path, 'utf8');
}

const when = (iso?: string) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

function printJobs(jobs: JobView[]): void {
  printTable(
    ['id', 'task', 'state', 'reason', 'attempt', 'updated'],
    jobs.map((j) => [j.id, j.task, j.state, j.reason, `${j.attempt}/${j.maxAttempts}`, when(j.updatedAt)]),
  );
}

function printJob(job: JobView): void {
  const rows: [string, unknown][] = [
    ['id', job.id],
    ['task', `${job.task}@${job.taskVersion}`],
    ['state', job.reason ? `${job.state} (${job.reason})` : job.state],
    ['attempt', `${job.attempt} of ${job.maxAttempts}`],
    ['queue', job.queue],
    ['correlation', job.correlationId],
    ['created', when(job.createdAt)],
    ['updated', when(job.updatedAt)],
  ];
  if (job.parentId) rows.push(['parent', job.parentId]);
  if (job.cancelRequested) rows.push(['cancel', 'requested']);
  if (job.error) rows.push(['error', `${job.error.code}: ${job.error.message}`]);
  const authority = job.authority as
    | {
        configVersion?: unknown;
        principal?: unknown;
        approvalsRequired?: unknown;
        approvals?: { decision: string; principal: string }[];
      }
    | undefined;
  if (authority) {
    rows.push([
      'admitted',
      `by key ${String(authority.principal)} under config v${String(authority.configVersion ?? 'none')}`,
    ]);
    if (Number(authority.approvalsRequired) > 0) {
      const decisions = (authority.approvals ?? []).map((a) => `${a.decision} by ${a.principal}`);
      rows.push([
        'approvals',
        `${decisions.length ? decisions.join(', ') : 'none yet'} (needs ${String(authority.approvalsRequired)})`,
      ]);
    }
  }
  rows.push(['input', JSON.stringify(job.input)]);
  if (job.output !== undefined) rows.push(['output', JSON.stringify(job.output)]);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(12)}${String(v)}\n`);
}

/** Exit code for a finished job: 0 when it succeeded. */
const jobExit = (job: JobView) => (job.state === 'succeeded' ? EXIT.ok : EXIT.jobUnsuccessful);

export function registerClientCommands(program: Command): void {
  program
    .command('submit <task>')
    .description('submit a job (or --count N of them) and optionally wait for the result')
    .option('--input <json>', 'the input as JSON, or @file.json', undefined)
    .option('--idempotency-key <key>', 'a replay with the same key and body returns the first job')
    .option(
      '--correlation-id <id>',
      'ties the job(s) together, and their evidence (default: the job id, or one per --count)',
    )
    .option('--priority <n>', 'higher runs first', intOption('--priority', -1000, 1000))
    .option('--count <n>', 'submit this many copies', intOption('--count', 1, 1_000_000), 1)
    .option('--wait', 'wait for the job(s) to end; exit 6 unless all succeeded')
    .option('--timeout <ms>', 'with --wait, give up after this long', intOption('--timeout', 1, 86_400_000))
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, task: string, opts) {
      const c = client(this);
      const input = parseInput(opts.input);
      const base = {
        ...(opts.priority !== undefined && { priority: opts.priority as number }),
      };
      const jobs: JobView[] = [];
      if (opts.count === 1) {
        jobs.push(
          await c.submit(task, input, {
            ...base,
            ...(opts.idempotencyKey && { idempotencyKey: opts.idempotencyKey }),
            ...(opts.correlationId && { correlationId: opts.correlationId }),
          }),
        );
      } else {
        const bar = new Progress(opts.count, 'submitting');
        // One correlation id for the lot, so waiting is one query per round.
        const correlationId = (opts.correlationId as string | undefined) ?? randomUUID();
        for (let i = 0; i < opts.count; i += 500) {
          const n = Math.min(500, opts.count - i);
          const batch = Array.from({ length: n }, (_, k) => ({
            task,
            input,
            options: {
              ...base,
              correlationId,
              ...(opts.idempotencyKey && { idempotencyKey: `${opts.idempotencyKey}-${i + k}` }),
            },
          }));
          jobs.push(...(await c.submitMany(batch)).map((r) => r.job));
          bar.update(jobs.length);
        }
        bar.done();
      }
      if (!opts.wait) {
        if (opts.json) printJson(opts.count === 1 ? jobs[0] : jobs);
        else if (opts.count === 1 && jobs[0]) process.stdout.write(`${jobs[0].id}\n`);
        else process.stdout.write(`submitted ${jobs.length} jobs\n`);
        return;
      }
      const until = opts.timeout === undefined ? undefined : Date.now() + (opts.timeout as number);
      const finished = await waitAll(c, jobs, until);
      if (opts.json) printJson(opts.count === 1 ? finished[0] : finished);
      else if (finished.length === 1 && finished[0]) {
        const j = finished[0];
        if (j.state === 'succeeded') process.stdout.write(`${JSON.stringify(j.output ?? null, null, 2)}\n`);
        else printJob(j);
      } else {
        const byState = new Map<string, number>();
        for (const j of finished) byState.set(j.state, (byState.get(j.state) ?? 0) + 1);
        process.stdout.write(`${[...byState].map(([s, n]) => `${n} ${s}`).join(', ')}\n`);
      }
      const bad = finished.find((j) => jobExit(j) !== EXIT.ok);
      process.exitCode = bad ? EXIT.jobUnsuccessful : EXIT.ok;
    });

  const jobs = program.command('jobs').description('list, inspect and act on jobs');
  jobs
    .command('ls')
    .description("list the tenant's jobs, newest first")
    .option('--state <list>', 'comma-separated states')
    .option('--awaiting-approval', 'only jobs awaiting approval (same as --state awaiting_approval)')
    .option('--task <name>')
    .option('--limit <n>', 'page size', intOption('--limit', 1, 500), 20)
    .option('--cursor <cursor>', 'the next page (printed after a full page)')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, opts) {
      const page = await client(this).list({
        ...((opts.state || opts.awaitingApproval) && {
          state: [
            ...(opts.state ? String(opts.state).split(',') : []),
            ...(opts.awaitingApproval ? ['awaiting_approval'] : []),
          ],
        }),
        ...(opts.task && { task: opts.task }),
        ...(opts.cursor && { cursor: opts.cursor }),
        limit: opts.limit,
      });
      if (opts.json) return printJson(page);
      printJobs(page.jobs);
      if (page.nextCursor) process.stdout.write(`more: bulkhead jobs ls --cursor ${page.nextCursor}\n`);
    });
  jobs
    .command('show <id>')
    .description('show one job')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, id: string, opts) {
      const job = await client(this).get(id);
      if (opts.json) printJson(job);
      else printJob(job);
    });
  jobs
    .command('wait <id>')
    .description('wait for a job to end; exit 6 unless it succeeded')
    .option('--timeout <ms>', 'give up after this long', intOption('--timeout', 1, 86_400_000))
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, id: string, opts) {
      const job = await client(this).result(
        id,
        opts.timeout === undefined ? {} : { timeoutMs: opts.timeout },
      );
      if (opts.json) printJson(job);
      else printJob(job);
      process.exitCode = jobExit(job);
    });
  for (const decision of ['approve', 'reject'] as const) {
    jobs
      .command(`${decision} <id>`)
      .description(
        decision === 'approve'
          ? 'approve a job awaiting approval (approver or admin of its tenant, not its submitter)'
          : 'reject a job awaiting approval (it ends rejected)',
      )
      .option('--comment <text>', 'why (kept in the authority record and the evidence)')
      .option('--json', 'machine-readable output')
      .action(async function (this: Command, id: string, opts: { comment?: string; json?: boolean }) {
        const job = await client(this)[decision](
          id,
          opts.comment === undefined ? {} : { comment: opts.comment },
        );
        if (opts.json) printJson(job);
        else printJob(job);
      });
  }
  const actions = {
    cancel: 'cancel a job (a running one is asked to stop)',
    retry: 'run a dead, cancelled or expired job again',
    readmit: 'readmit a job blocked for invalid_authority: admission signs a new authority record (admin)',
  } as const;
  for (const [action, description] of Object.entries(actions) as [keyof typeof actions, string][]) {
    jobs
      .command(`${action} <id>`)
      .description(description)
      .option('--json', 'machine-readable output')
      .action(async function (this: Command, id: string, opts) {
        const c = client(this);
        const job = await c[action](id);
        if (opts.json) printJson(job);
        else printJob(job);
      });
  }

  const keys = program.command('keys').description('API keys (admin), and the control plane signing key');
  keys
    .command('init')
    .description("create the control plane's Ed25519 signing key and deployment id in --dir (idempotent)")
    .option('--dir <dir>', 'where control.key (0600), control.pub and deployment go', 'bulkhead-keys')
    .option('--json', 'machine-readable output')
    .action((opts: { dir: string; json?: boolean }) => {
      const { identity } = ensureControlIdentity(resolve(opts.dir));
      if (opts.json) return printJson(identity);
      process.stdout.write(
        identity.created
          ? `created the signing key in ${identity.keysDir} (deployment ${identity.deploymentId}); give workers control.pub and deployment\n`
          : `the signing key in ${identity.keysDir} exists (deployment ${identity.deploymentId}); nothing changed\n`,
      );
    });
  keys
    .command('create')
    .description('create an API key; the key is printed once')
    .requiredOption('--tenant <tenant>')
    .requiredOption(
      '--role <roles>',
      'comma-separated: admin, operator, submitter, approver, auditor, worker',
    )
    .option('--name <label>', 'a label for people')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, opts) {
      const roles = String(opts.role)
        .split(',')
        .map((r) => r.trim())
        .filter(Boolean);
      const res = await client(this).createKey(opts.tenant, roles, opts.name);
      if (opts.json) return printJson(res);
      process.stdout.write(`${res.key}\n`);
      process.stderr.write(
        `key ${res.apiKey.id} for tenant ${res.apiKey.tenant} (${res.apiKey.roles.join(', ')}); store it now, it is not shown again\n`,
      );
    });
  keys
    .command('revoke <id>')
    .description('revoke an API key by id (the part after bh_)')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, id: string, opts) {
      const rec = await client(this).revokeKey(id);
      if (opts.json) printJson(rec);
      else process.stdout.write(`revoked ${rec.id} (tenant ${rec.tenant})\n`);
    });
  keys
    .command('ls')
    .description("list a tenant's keys")
    .requiredOption('--tenant <tenant>')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, opts) {
      const list = await client(this).listKeys(opts.tenant);
      if (opts.json) return printJson(list);
      printTable(
        ['id', 'roles', 'name', 'created', 'revoked'],
        list.map((k) => [k.id, k.roles.join(','), k.name, when(k.createdAt), when(k.revokedAt)]),
      );
    });

  const tenants = program.command('tenants').description('tenants (admin of the default tenant)');
  tenants
    .command('create <name>')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, name: string, opts) {
      const t = await client(this).createTenant(name);
      if (opts.json) printJson(t);
      else process.stdout.write(`tenant ${t.name}\n`);
    });

  program
    .command('health')
    .description('health of each plane; exit 1 when any is down')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, opts) {
      const h = await client(this).health();
      if (opts.json) printJson(h);
      else {
        process.stdout.write(`status: ${h.status}\n`);
        for (const [name, s] of Object.entries(h.sections)) {
          const { status, ...rest } = s;
          process.stdout.write(`  ${name.padEnd(10)} ${status.padEnd(9)} ${JSON.stringify(rest)}\n`);
        }
      }
      process.exitCode = h.status === 'down' ? EXIT.failure : EXIT.ok;
    });
}

/** Wait for every job to end (or `until`), with a progress bar; returns the jobs as they are then. */
async function waitAll(c: BulkheadClient, jobs: JobView[], until: number | undefined): Promise<JobView[]> {
  const first = jobs[0];
  if (jobs.length === 1 && first) {
    const left = until === undefined ? {} : { timeoutMs: Math.max(0, until - Date.now()) };
    return [await c.result(first.id, left)];
  }
  // Many jobs share one correlation id: count the unfinished ones with one query per round.
  const correlationId = first?.correlationId ?? '';
  const open = ['awaiting_approval', 'queued', 'blocked', 'leased', 'running'];
  const bar = new Progress(jobs.length, 'waiting');
  for (;;) {
    let pending = 0;
    let cursor: string | undefined;
    do {
      const page = await c.list({ correlationId, state: open, limit: 500, ...(cursor && { cursor }) });
      pending += page.jobs.length;
      cursor = page.nextCursor;
    } while (cursor);
    bar.update(jobs.length - pending);
    if (pending === 0 || (until !== undefined && Date.now() >= until)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  bar.done();
  const all: JobView[] = [];
  let cursor: string | undefined;
  do {
    const page = await c.list({ correlationId, limit: 500, ...(cursor && { cursor }) });
    all.push(...page.jobs);
    cursor = page.nextCursor;
  } while (cursor);
  const ids = new Set(jobs.map((j) => j.id));
  return all.filter((j) => ids.has(j.id));
}
