#!/usr/bin/env node
/**
 * The `bulkhead` command. Exit codes: 0 success, 1 failure, 2 bad usage or input.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { LedgerError } from '../ledger/errors.js';
import { knownVersion } from '../ledger/migrations.js';
import { openStore } from '../ledger/open.js';

const program = new Command()
  .name('bulkhead')
  .description('Durable work orchestration with contained, provable failures')
  .showHelpAfterError();

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CommanderArgumentError('must be a port number (0-65535)');
  return n;
}

program
  .command('dev')
  .description('run Bulkhead embedded: all planes in one process, state under --data-dir')
  .option(
    '--data-dir <dir>',
    'where state lives (ledger.db, …)',
    process.env.BULKHEAD_DATA_DIR ?? '.bulkhead',
  )
  .option('--port <port>', 'HTTP port', port, 8080)
  .action(async (opts: { dataDir: string; port: number }) => {
    const dataDir = resolve(opts.dataDir);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const path = resolve(dataDir, 'ledger.db');
    const store = await openStore(path);
    const queued = await store.list({ states: ['queued'] }, { limit: 1 });
    console.log(
      `bulkhead dev: ledger open at ${path} (SQLite, WAL, schema version ${knownVersion('sqlite')})`,
    );
    console.log(
      `bulkhead dev: ${queued.jobs.length === 0 ? 'no jobs queued' : 'jobs are queued'}; press Ctrl-C to stop`,
    );
    await new Promise<void>((done) => {
      const stop = () => done();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await store.close();
    console.log('bulkhead dev: stopped');
  });

program.parseAsync().catch((err: unknown) => {
  if (err instanceof LedgerError) {
    console.error(`bulkhead: ${err.message} [${err.code}]`);
    process.exit(err.code === 'invalid_argument' ? 2 : 1);
  }
  console.error(`bulkhead: ${(err as Error).message}`);
  process.exit(1);
});
