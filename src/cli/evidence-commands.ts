/**
 * `bulkhead evidence …`: verify (over HTTP, against a store directly, or a bundle offline), export,
 * trail, redact, holds, corrections, retention, a checkpoint to keep outside the store, and `ship`
 * (a standalone shipper). Also `bulkhead events prune`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { bundleLines, verifyBundle } from '../evidence/bundle.js';
import { openEvidenceStore } from '../evidence/open.js';
import { EvidenceService } from '../evidence/service.js';
import { EvidenceShipper } from '../evidence/shipper.js';
import type { VerifierOptions, VerifyReport } from '../evidence/verify.js';
import { openStore } from '../ledger/open.js';
import type { EvidenceEntryView } from '../sdk/client.js';
import { client } from './client-commands.js';
import { ensureControlIdentity } from './control-setup.js';
import { checkpointSigner } from './evidence-setup.js';
import { UsageError } from './load-tasks.js';
import { EXIT, Progress, printJson, printTable } from './output.js';
import { untilSignal } from './runtime.js';
import { intOption, logger, storeOption } from './server-commands.js';

function readKey(path: string): KeyObject {
  if (!existsSync(path)) throw new UsageError(`--key ${path}: no such file`);
  try {
    const key = createPublicKey(readFileSync(path, 'utf8'));
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`it is a ${key.asymmetricKeyType} key`);
    return key;
  } catch (err) {
    throw new UsageError(
      `--key ${path} is not an Ed25519 public key in PEM form (${(err as Error).message})`,
    );
  }
}

function readCheckpoint(path: string): NonNullable<VerifierOptions['pinned']> {
  if (!existsSync(path)) throw new UsageError(`--checkpoint ${path}: no such file`);
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`--checkpoint ${path} is not JSON (${(err as Error).message})`);
  }
  const { seq, headHash, at, keyId, signature } = c;
  if (
    typeof seq !== 'number' ||
    typeof headHash !== 'string' ||
    typeof at !== 'number' ||
    typeof keyId !== 'string' ||
    typeof signature !== 'string'
  )
    throw new UsageError(
      `--checkpoint ${path} must hold { seq, headHash, at, keyId, signature } (as 'bulkhead evidence checkpoint' prints)`,
    );
  return { seq, headHash, at, keyId, signature };
}

function report(r: VerifyReport, json: boolean | undefined, what: string): void {
  if (json) printJson(r);
  else if (r.ok) {
    const lines = [
      `${what}: OK — ${r.entries} entries${r.stubs ? ` and ${r.stubs} stubs` : ''}, ${r.checkpoints} checkpoints verified`,
      `  head: ${r.head ? `seq ${r.head.seq} ${r.head.hash}` : 'empty'}`,
      `  last checkpoint: ${r.lastCheckpoint ? `seq ${r.lastCheckpoint.seq} (${new Date(r.lastCheckpoint.at).toISOString()}, ${r.lastCheckpoint.keyId})` : 'none'}`,
    ];
    if (r.redactedFields) lines.push(`  erased values (redaction, retention): ${r.redactedFields}`);
    if (r.erasedAfter) lines.push(`  erased by entries after this bundle: ${r.erasedAfter}`);
    if (r.gaps.length)
      lines.push(`  recorded gaps: ${r.gaps.map((g) => `outbox ${g.fromSeq}..${g.toSeq}`).join(', ')}`);
    if (r.unsignedFrom !== null) lines.push(`  not yet signed: from seq ${r.unsignedFrom}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } else {
    process.stdout.write(
      `${what}: FAILED at seq ${r.firstBad?.seq ?? '-'}: ${r.firstBad?.reason ?? 'unknown'}\n` +
        `  verified before it: ${r.entries} entries, ${r.checkpoints} checkpoints\n`,
    );
  }
  if (!r.ok) process.exitCode = EXIT.verifyFailed;
}

const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

/** One line per entry: when, seq, kind, subject and what it says. */
function summary(e: EvidenceEntryView): string {
  const v = (name: string): unknown => {
    const f = e.fields[name];
    return f && 'value' in f ? f.value : undefined;
  };
  const parts: string[] = [];
  const from = v('from');
  const to = v('to');
  if (from !== undefined || to !== undefined) parts.push(`${String(from ?? '?')} → ${String(to ?? '?')}`);
  for (const name of [
    'reason',
    'attempt',
    'workerId',
    'configVersion',
    'stepKey',
    'error',
    'message',
    'field',
  ]) {
    const x = v(name);
    if (x !== undefined && x !== null) parts.push(`${name}=${typeof x === 'string' ? x : JSON.stringify(x)}`);
  }
  const authority = v('authority') as { principal?: string; configVersion?: number } | undefined;
  if (authority)
    parts.push(`authority: key ${authority.principal} under config v${authority.configVersion ?? '-'}`);
  const erased = Object.entries(e.fields)
    .filter(([, f]) => 'redactedBy' in f)
    .map(([n]) => n);
  if (erased.length) parts.push(`[erased: ${erased.join(', ')}]`);
  return parts.join('  ');
}

export function registerEvidenceCommands(program: Command): void {
  const evidence = program
    .command('evidence')
    .description('the tamper-evident record: verify, export, trail, redact, holds, retention');

  evidence
    .command('verify')
    .description(
      'verify the evidence log (over HTTP, or --evidence directly), or a bundle offline (--bundle --key)',
    )
    .option('--bundle <file>', 'verify an exported bundle offline, with no server or database')
    .option('--key <file>', 'the public key (PEM) checkpoints must be signed with')
    .option(
      '--evidence <target>',
      'verify a store directly: a SQLite file or postgres:// URL (env BULKHEAD_EVIDENCE)',
    )
    .option(
      '--checkpoint <file>',
      'a checkpoint kept outside the store: the log must still hold it (truncation shows)',
    )
    .option('--json', 'machine-readable output')
    .action(
      async (
        opts: { bundle?: string; key?: string; evidence?: string; checkpoint?: string; json?: boolean },
        cmd: Command,
      ) => {
        const pinned = opts.checkpoint ? readCheckpoint(opts.checkpoint) : undefined;
        if (opts.bundle) {
          if (!opts.key)
            throw new UsageError(
              '--bundle needs --key <public key PEM>: a bundle is verified against a key you trust',
            );
          if (!existsSync(opts.bundle)) throw new UsageError(`--bundle ${opts.bundle}: no such file`);
          const progress = new Progress(0, 'verifying');
          const r = await verifyBundle(bundleLines(opts.bundle), [readKey(opts.key)], {
            ...(pinned && { pinned }),
            onLine: (n) => progress.update(n),
          });
          progress.done();
          return report(r, opts.json, `bundle ${opts.bundle}`);
        }
        const target = opts.evidence ?? process.env.BULKHEAD_EVIDENCE;
        if (target) {
          const store = await openEvidenceStore(target);
          try {
            const service = new EvidenceService({
              store,
              ...(opts.key && { trustedKeys: [readKey(opts.key)] }),
            });
            const head = await store.head();
            const progress = new Progress(head.seq, 'verifying');
            const r = await service.verify({
              onProgress: (d) => progress.update(d),
              ...(pinned && { pinned }),
            });
            progress.done();
            return report(r, opts.json, 'evidence log');
          } finally {
            await store.close();
          }
        }
        if (pinned) throw new UsageError('--checkpoint works with --bundle or --evidence');
        let progress: Progress | undefined;
        const r = await client(cmd).verifyEvidence((done, total) => {
          progress ??= new Progress(total, 'verifying');
          progress.update(done);
        });
        progress?.done();
        report(r as VerifyReport, opts.json, 'evidence log');
      },
    );

  evidence
    .command('export')
    .description('write a JSONL bundle (with its checkpoints) that `evidence verify --bundle` checks offline')
    .option('--from <seq>', 'first entry', intOption('--from', 1, Number.MAX_SAFE_INTEGER))
    .option(
      '--to <seq>',
      'last entry (the bundle runs on to the checkpoint that signs it)',
      intOption('--to', 1, Number.MAX_SAFE_INTEGER),
    )
    .option('--correlation-id <id>', "disclose only this correlation id's entries (others become stubs)")
    .option('--out <file>', 'write here instead of stdout')
    .action(
      async (opts: { from?: number; to?: number; correlationId?: string; out?: string }, cmd: Command) => {
        const lines = client(cmd).exportEvidence({
          ...(opts.from !== undefined && { fromSeq: opts.from }),
          ...(opts.to !== undefined && { toSeq: opts.to }),
          ...(opts.correlationId !== undefined && { correlationId: opts.correlationId }),
        });
        const out: Writable = opts.out ? createWriteStream(opts.out) : process.stdout;
        let n = 0;
        for await (const line of lines) {
          if (!out.write(`${line}\n`)) await once(out, 'drain');
          n++;
        }
        if (opts.out) {
          out.end();
          await once(out, 'finish');
          process.stderr.write(`wrote ${n - 2} entries to ${opts.out}\n`);
        }
      },
    );

  evidence
    .command('trail <id>')
    .description("a job's (or correlation id's) evidence as a timeline")
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const c = client(cmd);
      let entries: EvidenceEntryView[];
      try {
        entries = await c.evidenceTrail(id, 'correlationId');
      } catch {
        entries = await c.evidenceTrail(id, 'jobId');
      }
      if (opts.json) return printJson(entries);
      printTable(
        ['occurred', 'seq', 'kind', 'subject', 'what'],
        entries.map((e) => [iso(e.occurredAt), e.seq, e.kind, e.subject, summary(e)]),
      );
    });

  evidence
    .command('redact')
    .description("erase one field's value in every entry of a correlation id (the chain still verifies)")
    .requiredOption('--correlation-id <id>', 'whose entries')
    .requiredOption('--field <name>', 'which field (e.g. message)')
    .requiredOption('--reason <text>', 'why (recorded)')
    .option('--json', 'machine-readable output')
    .action(
      async (
        opts: { correlationId: string; field: string; reason: string; json?: boolean },
        cmd: Command,
      ) => {
        const e = await client(cmd).redactEvidence({
          correlationId: opts.correlationId,
          field: opts.field,
          reason: opts.reason,
        });
        if (opts.json) return printJson(e);
        const seqs = (e.fields.seqs as { value?: unknown } | undefined)?.value as number[] | undefined;
        process.stdout.write(
          `redacted '${opts.field}' in ${seqs?.length ?? 0} entries; recorded as entry ${e.seq}\n`,
        );
      },
    );

  evidence
    .command('hold')
    .description(
      'place a legal hold: matching entries are exempt from retention and redaction until released',
    )
    .option('--correlation-id <id>', 'hold one correlation id')
    .option('--tenant <name>', 'hold a whole tenant')
    .requiredOption('--reason <text>', 'why (recorded)')
    .option('--json', 'machine-readable output')
    .action(
      async (
        opts: { correlationId?: string; tenant?: string; reason: string; json?: boolean },
        cmd: Command,
      ) => {
        if ((opts.correlationId === undefined) === (opts.tenant === undefined))
          throw new UsageError('give exactly one of --correlation-id or --tenant');
        const h = await client(cmd).placeHold({
          reason: opts.reason,
          ...(opts.correlationId !== undefined && { correlationId: opts.correlationId }),
          ...(opts.tenant !== undefined && { tenant: opts.tenant }),
        });
        if (opts.json) return printJson(h);
        process.stdout.write(`hold ${h.id} placed (entry ${h.placedSeq})\n`);
      },
    );

  evidence
    .command('release <holdId>')
    .description('release a legal hold')
    .requiredOption('--reason <text>', 'why (recorded)')
    .option('--json', 'machine-readable output')
    .action(async (holdId: string, opts: { reason: string; json?: boolean }, cmd: Command) => {
      const h = await client(cmd).releaseHold(holdId, opts.reason);
      if (opts.json) return printJson(h);
      process.stdout.write(`hold ${h.id} released (entry ${h.releasedSeq})\n`);
    });

  evidence
    .command('holds')
    .description('list legal holds')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const holds = await client(cmd).holds();
      if (opts.json) return printJson(holds);
      printTable(
        ['id', 'scope', 'reason', 'placed', 'released'],
        holds.map((h) => [
          h.id,
          h.correlationId !== null ? `correlation ${h.correlationId}` : `tenant ${h.tenant}`,
          h.reason,
          iso(h.placedAt),
          h.releasedAt === null ? '' : iso(h.releasedAt),
        ]),
      );
    });

  evidence
    .command('correct')
    .description('amend an earlier entry: a correction entry that points at it (the original is kept)')
    .requiredOption('--seq <n>', 'the entry amended', intOption('--seq', 1, Number.MAX_SAFE_INTEGER))
    .requiredOption('--note <text>', 'the correction')
    .option('--json', 'machine-readable output')
    .action(async (opts: { seq: number; note: string; json?: boolean }, cmd: Command) => {
      const e = await client(cmd).correctEvidence({ seq: opts.seq, note: opts.note });
      if (opts.json) return printJson(e);
      process.stdout.write(`correction of entry ${opts.seq} recorded as entry ${e.seq}\n`);
    });

  evidence
    .command('retention')
    .description('erase the values of entries older than --days now (the chain and held entries are kept)')
    .requiredOption('--days <n>', 'keep values this many days', intOption('--days', 1, 36_500))
    .option('--json', 'machine-readable output')
    .action(async (opts: { days: number; json?: boolean }, cmd: Command) => {
      const r = await client(cmd).applyEvidenceRetention(opts.days);
      if (opts.json) return printJson(r);
      process.stdout.write(`erased the values of ${r.erased} entries older than ${opts.days} days\n`);
    });

  evidence
    .command('checkpoint')
    .description(
      'print the latest signed checkpoint as JSON: keep it outside the store for `verify --checkpoint`',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const health = (await client(cmd).health()) as {
        sections?: { evidence?: { lastCheckpoint?: unknown } };
      };
      const cp = health.sections?.evidence?.lastCheckpoint;
      if (!cp) throw new UsageError('the evidence log has no checkpoint yet');
      printJson(cp);
    });

  evidence
    .command('ship')
    .description('run an evidence shipper alone: tail the ledger outbox into the evidence store')
    .option('--store <url>', 'the ledger: postgres:// URL or SQLite file path (env BULKHEAD_STORE)')
    .option(
      '--evidence <target>',
      'the evidence store: SQLite file or postgres:// URL (env BULKHEAD_EVIDENCE)',
    )
    .option('--keys-dir <dir>', 'the control signing key (checkpoints are signed with it)', 'bulkhead-keys')
    .action(async (opts: { store?: string; evidence?: string; keysDir: string }) => {
      const target = opts.evidence ?? process.env.BULKHEAD_EVIDENCE;
      if (!target) throw new UsageError('--evidence (or BULKHEAD_EVIDENCE) is required');
      const log = logger();
      const ledger = await openStore(storeOption(opts.store));
      const { service } = ensureControlIdentity(resolve(opts.keysDir));
      const key = service(ledger).key;
      const store = await openEvidenceStore(target, { signer: checkpointSigner(key) });
      const shipper = new EvidenceShipper({
        ledger,
        evidence: store,
        logger: log.child({ plane: 'evidence' }),
      });
      shipper.start();
      const stopped = untilSignal(log, async () => {
        await shipper.stop();
        await store.close();
        await ledger.close();
      });
      process.stdout.write('Bulkhead evidence shipper running\n');
      await stopped;
      process.exit(0);
    });

  program
    .command('events')
    .description('the outbox')
    .command('prune')
    .description('delete outbox events up to a seq; consumers behind it lose them (evidence records a gap)')
    .requiredOption('--through <seq>', 'last seq deleted', intOption('--through', 1, Number.MAX_SAFE_INTEGER))
    .option('--json', 'machine-readable output')
    .action(async (opts: { through: number; json?: boolean }, cmd: Command) => {
      const r = await client(cmd).pruneEvents(opts.through);
      if (opts.json) return printJson(r);
      process.stdout.write(
        `deleted ${r.deleted} events; the outbox now starts after seq ${r.prunedThrough}\n`,
      );
    });
}
