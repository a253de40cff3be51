/**
 * The commands that run Bulkhead: `dev` (embedded), `init` (prepare a store), `control` (HTTP API)
 * and `worker`.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { pino } from 'pino';
import { keyIdOf } from '../control/api-keys.js';
import { openStore } from '../ledger/open.js';
import {
  ensureControlIdentity,
  ensureInitialConfig,
  httpSource,
  inProcessSource,
  readDeployment,
  readPinnedKey,
} from './control-setup.js';
import { startEvidence } from './evidence-setup.js';
import { loadTasks, UsageError } from './load-tasks.js';
import {
  bootstrapStore,
  embeddedAdminKey,
  startControl,
  startWorker,
  untilSignal,
  workerHealth,
} from './runtime.js';

/** The demo task pack `npm start` runs (compiled next to this file). */
export const DEMO_TASKS = fileURLToPath(new URL('../../examples/demo/tasks.js', import.meta.url));

export const logger = () => pino({ level: process.env.BULKHEAD_LOG_LEVEL ?? 'info' });

export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new UsageError(`${name} must be an integer in [${min}, ${max}], got '${value}'`);
    return n;
  };
}

export function storeOption(value: string | undefined): string {
  const url = value ?? process.env.BULKHEAD_STORE;
  if (!url)
    throw new UsageError(
      '--store is required (a postgres:// URL or a SQLite file path), or set BULKHEAD_STORE',
    );
  return url;
}

export function registerServerCommands(program: Command): void {
  program
    .command('dev')
    .description('run everything in one process on an embedded SQLite ledger (state under --data-dir)')
    .option(
      '--data-dir <dir>',
      'state directory (env BULKHEAD_DATA_DIR)',
      process.env.BULKHEAD_DATA_DIR ?? '.bulkhead',
    )
    .option(
      '--port <port>',
      'HTTP port; 0 picks a free one (env BULKHEAD_PORT)',
      intOption('--port', 0, 65535),
      Number(process.env.BULKHEAD_PORT ?? 8080),
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--tasks <module>', 'task module to run (default: the demo task pack)')
    .option('--concurrency <n>', 'jobs run at once', intOption('--concurrency', 1, 1000), 10)
    .action(
      async (opts: { dataDir: string; port: number; host: string; tasks?: string; concurrency: number }) => {
        const log = logger();
        const dataDir = resolve(opts.dataDir);
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        const tasks = await loadTasks(opts.tasks ?? DEMO_TASKS);
        const store = await openStore(resolve(dataDir, 'ledger.db'));
        const keyFile = resolve(dataDir, 'admin-key');
        const admin = await embeddedAdminKey(store, keyFile);
        // The control plane's signing key and deployment id, and a first (empty) config version.
        const { service, identity } = ensureControlIdentity(resolve(dataDir, 'keys'));
        const config = service(store);
        await ensureInitialConfig(config, store);
        const { worker, stop: stopWorker } = await startWorker({
          store,
          tasks,
          concurrency: opts.concurrency,
          logger: log,
          config: {
            source: (id) => inProcessSource(config, id, []),
            publicKeyPem: readPinnedKey(identity.publicKeyFile),
            deploymentId: identity.deploymentId,
            cacheFile: resolve(dataDir, 'config-cache.json'),
          },
        });
        const evidence = await startEvidence({
          ledger: store,
          target: resolve(dataDir, 'evidence.db'),
          key: config.key,
          logger: log,
          ledgerUrl: resolve(dataDir, 'ledger.db'),
        });
        const control = await startControl({
          store,
          port: opts.port,
          host: opts.host,
          logger: log,
          config,
          evidence,
          health: { execution: workerHealth(worker) },
        });
        const lines = [
          `Bulkhead dev is running at ${control.url}`,
          `  ledger:  ${resolve(dataDir, 'ledger.db')} (SQLite)`,
          `  evidence: ${resolve(dataDir, 'evidence.db')} (SQLite, a separate file)`,
          `  tasks:   ${tasks.map((t) => t.name).join(', ')}`,
          admin.created
            ? `  admin key (shown once, also written to ${keyFile}):\n    ${admin.key}`
            : `  admin key: in ${keyFile}`,
          `  try:     BULKHEAD_URL=${control.url} BULKHEAD_API_KEY=$(cat ${keyFile}) bulkhead submit ${tasks[0]?.name ?? 'TASK'} --input '{}' --wait`,
        ];
        // Signal handlers first, then the ready line: a signal right after it must drain, not kill.
        const stopped = untilSignal(log, async () => {
          await control.close();
          await stopWorker(10_000);
          // After the worker: the shipper records what the drain wrote.
          await evidence.close();
          await store.close();
        });
        process.stdout.write(`${lines.join('\n')}\n`);
        await stopped;
        // Done: a handler that ignored its abort must not keep the process alive past the grace.
        process.exit(0);
      },
    );

  program
    .command('init')
    .description('prepare a store: schema, the default tenant and an admin key (idempotent)')
    .option('--store <url>', 'postgres:// URL or SQLite file path (env BULKHEAD_STORE)')
    .option('--admin-key-file <file>', 'also write the new admin key here (mode 0600)')
    .option(
      '--keys-dir <dir>',
      "the control plane's signing key and deployment id (created when absent)",
      'bulkhead-keys',
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { store?: string; adminKeyFile?: string; keysDir: string; json?: boolean }) => {
      const store = await openStore(storeOption(opts.store));
      try {
        const result = await bootstrapStore(
          store,
          opts.adminKeyFile ? { adminKeyFile: resolve(opts.adminKeyFile) } : {},
        );
        const { service, identity } = ensureControlIdentity(resolve(opts.keysDir));
        const firstConfig = await ensureInitialConfig(service(store), store);
        if (identity.created || firstConfig) result.changed = true;
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify({
              changed: result.changed,
              adminKey: result.adminKey ?? null,
              keysDir: identity.keysDir,
              deploymentId: identity.deploymentId,
            })}\n`,
          );
        } else if (result.adminKey) {
          process.stdout.write(
            `store initialised; admin key (shown once${opts.adminKeyFile ? `, also written to ${resolve(opts.adminKeyFile)}` : ''}):\n${result.adminKey}\n`,
          );
        } else {
          process.stdout.write(
            `store already initialised (schema current, default tenant and an admin key exist); nothing changed\n`,
          );
        }
      } finally {
        await store.close();
      }
    });

  program
    .command('control')
    .description('run the control plane: the HTTP API over a shared store')
    .option('--store <url>', 'postgres:// URL or SQLite file path (env BULKHEAD_STORE)')
    .option(
      '--port <port>',
      'HTTP port; 0 picks a free one (env BULKHEAD_PORT)',
      intOption('--port', 0, 65535),
      Number(process.env.BULKHEAD_PORT ?? 8080),
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--keys-dir <dir>', "the signing key and deployment id made by 'bulkhead init'", 'bulkhead-keys')
    .option(
      '--read-only',
      'start in read-only mode: reads and admission go on, privileged mutations are refused',
    )
    .option(
      '--evidence <url>',
      'the evidence store: a postgres:// URL (its own database and credentials) or a SQLite file (env BULKHEAD_EVIDENCE)',
    )
    .action(
      async (opts: {
        store?: string;
        port: number;
        host: string;
        keysDir: string;
        readOnly?: boolean;
        evidence?: string;
      }) => {
        const log = logger();
        const store = await openStore(storeOption(opts.store));
        const { service } = ensureControlIdentity(resolve(opts.keysDir));
        const config = service(store);
        await ensureInitialConfig(config, store);
        if (opts.readOnly) await config.setMode('read_only', 'control --read-only');
        const target = opts.evidence ?? process.env.BULKHEAD_EVIDENCE;
        const evidence = target
          ? await startEvidence({
              ledger: store,
              target,
              key: config.key,
              logger: log,
              ledgerUrl: storeOption(opts.store),
            })
          : undefined;
        if (!evidence)
          log.warn(
            'no evidence store (--evidence): evidence is not recorded and evidence-required work will not start',
          );
        const control = await startControl({
          store,
          port: opts.port,
          host: opts.host,
          logger: log,
          config,
          ...(evidence && { evidence }),
        });
        // Signal handlers first, then the ready line: a signal right after it must drain, not kill.
        const stopped = untilSignal(log, async () => {
          await control.close();
          await evidence?.close();
          await store.close();
        });
        process.stdout.write(`Bulkhead control plane listening at ${control.url}\n`);
        await stopped;
        // Done: a handler that ignored its abort must not keep the process alive past the grace.
        process.exit(0);
      },
    );

  program
    .command('worker')
    .description('run a worker: claims and runs the jobs of the tasks in --tasks')
    .option('--store <url>', 'postgres:// URL or SQLite file path (env BULKHEAD_STORE)')
    .requiredOption('--tasks <module>', 'task module to run')
    .option('--concurrency <n>', 'jobs run at once', intOption('--concurrency', 1, 1000), 10)
    .option('--queues <list>', 'comma-separated queues (default: the tasks’ queues)')
    .option(
      '--grace-ms <ms>',
      'on SIGTERM, how long in-flight work may finish',
      intOption('--grace-ms', 0, 3_600_000),
      30_000,
    )
    .option(
      '--poll-ms <ms>',
      'claim at least this often without a wake-up',
      intOption('--poll-ms', 10, 60_000),
      1000,
    )
    .option(
      '--reap-ms <ms>',
      'sweep expired leases and lost workers this often',
      intOption('--reap-ms', 10, 60_000),
      1000,
    )
    .option(
      '--lost-after-ms <ms>',
      'a worker silent this long is lost',
      intOption('--lost-after-ms', 100, 3_600_000),
      15_000,
    )
    .option('--id <id>', 'worker id (default host-pid-random)')
    .option('--labels <list>', 'comma-separated worker labels (routes and canaries select by them)')
    .option(
      '--control <url>',
      'the control plane to take config from (needs a worker key in BULKHEAD_API_KEY)',
    )
    .option(
      '--control-keys <dir>',
      "a copy of the control plane's control.pub and deployment files (pinned): authority records are verified against them",
    )
    .option('--config-cache <file>', 'where the last-known-good config snapshot is kept')
    .action(
      async (opts: {
        store?: string;
        tasks: string;
        concurrency: number;
        queues?: string;
        graceMs: number;
        pollMs: number;
        reapMs: number;
        lostAfterMs: number;
        id?: string;
        labels?: string;
        control?: string;
        controlKeys?: string;
        configCache?: string;
      }) => {
        const log = logger();
        const tasks = await loadTasks(opts.tasks);
        const labels = opts.labels
          ? opts.labels
              .split(',')
              .map((l) => l.trim())
              .filter(Boolean)
          : [];
        let config: Parameters<typeof startWorker>[0]['config'];
        if (opts.control) {
          const apiKey = process.env.BULKHEAD_API_KEY;
          if (!apiKey) throw new UsageError('--control needs a worker API key in BULKHEAD_API_KEY');
          const keyId = keyIdOf(apiKey.trim());
          if (keyId === undefined)
            throw new UsageError(
              'BULKHEAD_API_KEY is not an API key (bh_<id>_<secret>, as `bulkhead keys create` prints it)',
            );
          if (!opts.controlKeys)
            throw new UsageError('--control needs --control-keys DIR (control.pub and deployment)');
          const dir = resolve(opts.controlKeys);
          const controlUrl = opts.control;
          config = {
            source: (id) => httpSource(controlUrl, apiKey, id, labels),
            // Recorded on the worker row: the control plane takes this worker's reports from this key only.
            keyId,
            publicKeyPem: readPinnedKey(resolve(dir, 'control.pub')),
            deploymentId: readDeployment(dir),
            ...(opts.configCache && { cacheFile: resolve(opts.configCache) }),
          };
        } else {
          log.warn(
            'no --control: this worker applies no signed config (fine for a single host; not for production)',
          );
        }
        // Authority records are verified against the pinned control key: with --control through its
        // config agent, with --control-keys alone directly; with neither, not at all (said loudly).
        const authority =
          config || !opts.controlKeys
            ? 'unverified'
            : {
                publicKeyPem: readPinnedKey(resolve(opts.controlKeys, 'control.pub')),
                deploymentId: readDeployment(resolve(opts.controlKeys)),
              };
        if (!config && !opts.controlKeys) {
          log.warn(
            'no --control-keys: authority records are not verified; every admitted or written job runs',
          );
        }
        const store = await openStore(storeOption(opts.store));
        const { worker, stop: stopWorker } = await startWorker({
          store,
          tasks,
          concurrency: opts.concurrency,
          logger: log,
          labels,
          tuning: {
            pollIntervalMs: opts.pollMs,
            reapIntervalMs: opts.reapMs,
            lostAfterMs: opts.lostAfterMs,
            livenessIntervalMs: Math.max(10, Math.floor(opts.lostAfterMs / 5)),
            ...(opts.id && { workerId: opts.id }),
          },
          ...(config ? { config } : { authority }),
          ...(opts.queues && { queues: opts.queues.split(',').map((q) => q.trim()) }),
        });
        // Signal handlers first, then the ready line: a signal right after it must drain, not kill.
        const stopped = untilSignal(log, async () => {
          await stopWorker(opts.graceMs);
          await store.close();
        });
        process.stdout.write(`Bulkhead worker ${worker.id} running ${tasks.map((t) => t.name).join(', ')}\n`);
        await stopped;
        // Done: a handler that ignored its abort must not keep the process alive past the grace.
        process.exit(0);
      },
    );
}
