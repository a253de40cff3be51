/**
 * `bulkhead config validate|diff|publish|rollback|show|versions|promote|abort`, `bulkhead workers`
 * and `bulkhead control-mode`: config as the control plane's product, from the command line.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { parseConfig } from '../control/config/document.js';
import { client } from './client-commands.js';
import { loadTasks, UsageError } from './load-tasks.js';
import { EXIT, printJson, printTable } from './output.js';
import { intOption } from './server-commands.js';

function readDocument(file: string): string {
  if (!existsSync(file)) throw new UsageError(`no config file at ${file}`);
  return readFileSync(file, 'utf8');
}

/** The paths where two JSON values differ: `+ path`, `- path`, `~ path: old -> new`. */
export function diffJson(before: unknown, after: unknown, path = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (isObj(before) && isObj(after) && Array.isArray(before) === Array.isArray(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => {
      const p = Array.isArray(after) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
      if (!(k in before)) return [`+ ${p}: ${JSON.stringify(after[k])}`];
      if (!(k in after)) return [`- ${p}: ${JSON.stringify(before[k])}`];
      return diffJson(before[k], after[k], p);
    });
  }
  return JSON.stringify(before) === JSON.stringify(after)
    ? []
    : [`~ ${path || '(document)'}: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`];
}

export function registerConfigCommands(program: Command): void {
  const config = program
    .command('config')
    .description('the control plane config: validate, publish, roll out, roll back');

  config
    .command('validate <file>')
    .description('validate a YAML or JSON config document locally; exit 2 listing every problem')
    .option('--json', 'machine-readable output')
    .action((file: string, opts: { json?: boolean }) => {
      const r = parseConfig(readDocument(file));
      if (opts.json) printJson(r);
      else if (r.ok) {
        process.stdout.write(
          `${file}: valid (${r.document.taskTypes.length} task types, ${r.document.policies.length} policies, configTtlMs ${r.document.configTtlMs})\n`,
        );
      } else for (const p of r.problems) process.stdout.write(`${file}: ${p.path}: ${p.message}\n`);
      process.exitCode = r.ok ? EXIT.ok : EXIT.usage;
    });

  config
    .command('publish <file>')
    .description('publish a config document as the next version (to every worker, or --canary LABEL)')
    .option('--canary <label>', 'only workers with this label get it until `config promote`')
    .option(
      '--tasks <module>',
      "merge the input JSON Schemas of this task module's definitions into taskTypes",
    )
    .option('--json', 'machine-readable output')
    .action(async function (
      this: Command,
      file: string,
      opts: { canary?: string; tasks?: string; json?: boolean },
    ) {
      const text = readDocument(file);
      const taskSchemas = opts.tasks
        ? (await loadTasks(opts.tasks)).map((t) => ({
            name: t.name,
            version: t.version,
            input: t.inputJsonSchema,
          }))
        : undefined;
      const v = await client(this).publishConfig(text, {
        ...(opts.canary && { canary: opts.canary }),
        ...(taskSchemas && { taskSchemas }),
      });
      if (opts.json) return printJson(v);
      process.stdout.write(
        `published config version ${v.version}${v.canaryLabel ? ` as a canary for label '${v.canaryLabel}'` : ''} (${v.digest})\n`,
      );
    });

  config
    .command('diff <file>')
    .description('what publishing this file would change against the current (or --against) version')
    .option(
      '--against <version>',
      'compare with this version',
      intOption('--against', 1, Number.MAX_SAFE_INTEGER),
    )
    .action(async function (this: Command, file: string, opts: { against?: number }) {
      const c = client(this);
      const local = parseConfig(readDocument(file));
      if (!local.ok)
        throw new UsageError(
          `${file} is invalid: ${local.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
        );
      const version = opts.against ?? (await c.configVersions(1)).rollout.currentVersion;
      const current = version === null ? {} : (await c.configVersion(version)).document;
      const lines = diffJson(current, local.document);
      process.stdout.write(lines.length === 0 ? 'no changes\n' : `${lines.join('\n')}\n`);
    });

  config
    .command('show [version]')
    .description('print the current (or a given) version as YAML')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, version: string | undefined, opts: { json?: boolean }) {
      const c = client(this);
      const n = version === undefined ? (await c.configVersions(1)).rollout.currentVersion : Number(version);
      if (n === null || !Number.isInteger(n) || n < 1) throw new UsageError('no config version to show');
      const v = await c.configVersion(n);
      if (opts.json) return printJson(v);
      process.stdout.write(
        `# version ${v.version} (${v.kind}) ${v.digest}, by ${v.publishedBy} at ${v.publishedAt}\n`,
      );
      process.stdout.write(toYaml(v.document));
    });

  config
    .command('versions')
    .description('published versions, newest first, and the rollout state')
    .option('--limit <n>', 'how many', intOption('--limit', 1, 1000), 20)
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, opts: { limit: number; json?: boolean }) {
      const r = await client(this).configVersions(opts.limit);
      if (opts.json) return printJson(r);
      printTable(
        ['version', 'kind', 'canary', 'digest', 'by', 'published'],
        r.versions.map((v) => [
          v.version,
          v.kind,
          v.canaryLabel,
          v.digest.slice(0, 19),
          v.publishedBy,
          v.publishedAt,
        ]),
      );
      const c = r.rollout.canary;
      process.stdout.write(
        `current: ${r.rollout.currentVersion ?? 'none'}${c ? `; canary: ${c.version} for '${c.label}'` : ''}; mode: ${r.rollout.mode}\n`,
      );
    });

  config
    .command('rollback <version>')
    .description('publish the content of an older version as a new version')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, version: string, opts: { json?: boolean }) {
      const n = Number(version);
      if (!Number.isInteger(n) || n < 1)
        throw new UsageError(`version must be a positive integer, got '${version}'`);
      const v = await client(this).rollbackConfig(n);
      if (opts.json) return printJson(v);
      process.stdout.write(`published version ${v.version} with the content of version ${n}\n`);
    });

  for (const action of ['promote', 'abort'] as const) {
    config
      .command(action)
      .description(
        action === 'promote'
          ? 'roll the canary out to every worker'
          : 'return the canary to the current version',
      )
      .option('--json', 'machine-readable output')
      .action(async function (this: Command, opts: { json?: boolean }) {
        const c = client(this);
        const r = action === 'promote' ? await c.promoteCanary() : await c.abortCanary();
        if (opts.json) return printJson(r);
        process.stdout.write(`current version: ${r.currentVersion ?? 'none'}; no canary in flight\n`);
      });
  }

  program
    .command('control-mode <mode>')
    .description("switch the control plane to 'read_only' (mutations refused) or back to 'normal'")
    .action(async function (this: Command, mode: string) {
      if (mode !== 'normal' && mode !== 'read_only')
        throw new UsageError(`mode must be normal or read_only, got '${mode}'`);
      const r = await client(this).setControlMode(mode);
      process.stdout.write(`control plane mode: ${r.mode}\n`);
    });

  program
    .command('recovery')
    .description('what happened during an outage')
    .command('report')
    .description(
      'since --since: accepted, cached authority, blocked, reaped, endings, config changes, what to reconcile',
    )
    .requiredOption('--since <time>', "an ISO time, or a duration ago: '15m', '2h', '1d'")
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, opts: { since: string; json?: boolean }) {
      const r = await client(this).recoveryReport(parseSince(opts.since));
      if (opts.json) return printJson(r);
      process.stdout.write(toYaml(r));
    });

  program
    .command('workers')
    .description('every worker: state, labels, applied config version, ACK/NACK and config age')
    .option('--json', 'machine-readable output')
    .action(async function (this: Command, opts: { json?: boolean }) {
      const r = await client(this).workers();
      if (opts.json) return printJson(r);
      printTable(
        ['id', 'state', 'labels', 'config', 'status', 'nack', 'age s', 'authority', 'refuses'],
        r.workers.map((w) => {
          const c = (w.config ?? {}) as Record<string, unknown>;
          return [
            w.id,
            w.state,
            (w.labels as string[]).join(','),
            c.appliedVersion,
            c.status,
            c.nackVersion === undefined ? '' : `${c.nackVersion}: ${String(c.nackReason)}`,
            c.ageMs === undefined ? '' : Math.round(Number(c.ageMs) / 1000),
            w.authority,
            Object.entries((w.refused ?? {}) as Record<string, string>)
              .map(([task, why]) => `${task} (${why})`)
              .join('; '),
          ];
        }),
      );
    });
}

/** An ISO time, or a duration before now ('90s', '15m', '2h', '1d'). */
export function parseSince(text: string, now = Date.now()): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (m) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(m[1]) * unit);
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms))
    throw new UsageError(`--since must be an ISO time or a duration like 15m, 2h, 1d; got '${text}'`);
  return new Date(ms);
}
