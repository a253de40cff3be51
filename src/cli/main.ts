#!/usr/bin/env node
/**
 * The `bulkhead` command.
 *
 * Exit codes: 0 success; 1 failure (server error, unexpected); 2 bad usage or input; 3 not
 * authenticated or not allowed; 4 not found; 5 conflict; 6 a waited-for job did not succeed;
 * 7 the server could not be reached; 8 evidence verification failed.
 *
 * Environment: BULKHEAD_URL, BULKHEAD_API_KEY (client commands); BULKHEAD_STORE, BULKHEAD_PORT,
 * BULKHEAD_DATA_DIR, BULKHEAD_EVIDENCE, BULKHEAD_LOG_LEVEL (server commands).
 */
import { Command, CommanderError } from 'commander';
import { LedgerError } from '../ledger/errors.js';
import { BulkheadApiError } from '../sdk/client.js';
import { registerClientCommands } from './client-commands.js';
import { registerConfigCommands } from './config-commands.js';
import { registerEvidenceCommands } from './evidence-commands.js';
import { UsageError } from './load-tasks.js';
import { EXIT } from './output.js';
import { VERSION } from './runtime.js';
import { registerServerCommands } from './server-commands.js';

const program = new Command()
  .name('bulkhead')
  .description('Durable work orchestration with contained, provable failures')
  .version(VERSION)
  .option('--url <url>', 'API base URL (env BULKHEAD_URL, default http://127.0.0.1:8080)')
  .option('--api-key <key>', 'API key (env BULKHEAD_API_KEY; else ./.bulkhead/admin-key if present)')
  .showHelpAfterError()
  .exitOverride();

registerServerCommands(program);
registerClientCommands(program);
registerConfigCommands(program);
registerEvidenceCommands(program);

function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof BulkheadApiError) {
    if (err.status === 401 || err.status === 403) return EXIT.auth;
    if (err.status === 404) return EXIT.notFound;
    if (err.status === 409) return EXIT.conflict;
    return err.status < 500 ? EXIT.usage : EXIT.failure;
  }
  if (err instanceof LedgerError) return err.code === 'invalid_argument' ? EXIT.usage : EXIT.failure;
  const cause = (err as { cause?: { code?: string } }).cause;
  if (err instanceof TypeError && err.message === 'fetch failed') return EXIT.unreachable;
  if (cause?.code === 'ECONNREFUSED') return EXIT.unreachable;
  return EXIT.failure;
}

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT.usage);
  const code = exitCodeFor(err);
  const message =
    code === EXIT.unreachable
      ? `cannot reach the Bulkhead API at ${program.opts().url ?? process.env.BULKHEAD_URL ?? 'http://127.0.0.1:8080'} (is it running?)`
      : (err as Error).message;
  process.stderr.write(`bulkhead: ${message}\n`);
  process.exit(code);
}
