/**
 * Composing the planes into processes: the store bootstrap (`init`), the control process (HTTP API),
 * the worker process, and the embedded `dev` process that runs both on one SQLite ledger.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { HealthSection } from '../api/health-routes.js';
import { buildApi } from '../api/server.js';
import { Admission } from '../control/admission.js';
import { authenticate, createApiKey } from '../control/api-keys.js';
import { fleetStatus } from '../control/config/fleet.js';
import type { ConfigService } from '../control/config/service.js';
import { COMPENSATION_CONSUMER, compensationHandler } from '../events/compensation.js';
import { OutboxConsumer } from '../events/consumer.js';
import { ConfigAgent, type ConfigSource } from '../execution/config-agent.js';
import type { TaskDefinition } from '../execution/task.js';
import { createWorker, type Worker, type WorkerOptions } from '../execution/worker.js';
import { SYSTEM_TENANT } from '../ledger/registry.js';
import type { Store } from '../ledger/store.js';
import type { EvidenceProcess } from './evidence-setup.js';

export const VERSION = '0.1.0';

export interface Bootstrap {
  /** True when this call created the system tenant or its admin key. */
  changed: boolean;
  /** The admin key, when this call created it (shown once). */
  adminKey?: string;
}

/**
 * Make a store ready: schema (applied on open), the system tenant, and one admin key. Idempotent: a
 * store that has them is left alone. With `adminKeyFile`, a new key is written there (mode 0600).
 */
export async function bootstrapStore(
  store: Store,
  options: { adminKeyFile?: string } = {},
): Promise<Bootstrap> {
  const { created } = await store.registry.createTenant(SYSTEM_TENANT);
  const keys = await store.registry.listApiKeys({ tenant: SYSTEM_TENANT });
  const hasAdmin = keys.some((k) => k.revokedAt === undefined && k.roles.includes('admin'));
  if (hasAdmin) return { changed: created };
  const { key } = await createApiKey(store.registry, {
    tenant: SYSTEM_TENANT,
    roles: ['admin'],
    name: 'bootstrap admin',
  });
  if (options.adminKeyFile) writeSecret(options.adminKeyFile, key);
  return { changed: true, adminKey: key };
}

export function writeSecret(path: string, secret: string): void {
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/**
 * The embedded admin key: reuse the one in `file` while it still authenticates; otherwise make a
 * new admin key and write it there.
 */
export async function embeddedAdminKey(
  store: Store,
  file: string,
): Promise<{ key: string; created: boolean }> {
  await store.registry.createTenant(SYSTEM_TENANT);
  if (existsSync(file)) {
    const key = readFileSync(file, 'utf8').trim();
    const auth = await authenticate(store.registry, key);
    if (auth.ok && auth.principal.roles.includes('admin')) return { key, created: false };
  }
  const { key } = await createApiKey(store.registry, {
    tenant: SYSTEM_TENANT,
    roles: ['admin'],
    name: 'embedded admin',
  });
  writeSecret(file, key);
  return { key, created: true };
}

export interface ControlProcess {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/**
 * The compensation consumer runs with the control plane: a compensation job is admitted like any
 * other (validated, signed), so it carries an authority record that workers verify.
 */
function startCompensation(store: Store, config: ConfigService, logger: Logger): OutboxConsumer {
  const admission = new Admission(store, { key: config.key, deploymentId: config.deploymentId });
  const consumer = new OutboxConsumer({
    store,
    name: COMPENSATION_CONSUMER,
    handle: compensationHandler(store, (tenant, submission) =>
      admission.admitSystem('compensation', tenant, submission),
    ),
    logger: logger.child({ plane: 'events' }),
    pollMs: 200,
  });
  consumer.start();
  return consumer;
}

export async function startControl(options: {
  store: Store;
  port: number;
  host: string;
  logger: Logger;
  config: ConfigService;
  health?: Record<string, () => HealthSection | Promise<HealthSection>>;
  /** The evidence plane run by this process: its routes and its health section. */
  evidence?: EvidenceProcess;
}): Promise<ControlProcess> {
  const evidence = options.evidence;
  const app = await buildApi({
    store: options.store,
    logger: options.logger.child({ plane: 'api' }),
    version: VERSION,
    config: options.config,
    ...(evidence && { evidence: evidence.service }),
    health: {
      control: controlHealth(options.store, options.config),
      evidence: evidence
        ? () => evidence.health()
        : () => ({
            status: 'degraded',
            detail: 'no evidence store is configured for this process (--evidence)',
          }),
      ...options.health,
    },
  });
  const address = await app.listen({ port: options.port, host: options.host });
  const url = address.replace('[::1]', '127.0.0.1');
  const compensation = startCompensation(options.store, options.config, options.logger);
  return {
    app,
    url,
    async close() {
      await compensation.stop();
      await app.close();
    },
  };
}

export interface WorkerProcess {
  worker: Worker;
  /** Drain the worker (up to `graceMs`) and stop its outbox consumers. */
  stop(graceMs: number): Promise<void>;
}

/** A worker process: the worker with its config agent. */
export async function startWorker(options: {
  store: Store;
  tasks: TaskDefinition[];
  concurrency: number;
  logger: Logger;
  queues?: string[];
  labels?: string[];
  tuning?: Pick<
    WorkerOptions,
    'pollIntervalMs' | 'reapIntervalMs' | 'lostAfterMs' | 'livenessIntervalMs' | 'workerId'
  >;
  /**
   * Without `config`: the pinned control key that authority records are verified against, or
   * `'unverified'` (the worker then runs jobs without that check, and says so).
   */
  authority?: WorkerOptions['authority'];
  /** Where config comes from, and how it is trusted; without it the worker enforces no config. */
  config?: {
    source: (workerId: () => string) => ConfigSource;
    /** The id of the API key the source talks to the control plane with (none in process). */
    keyId?: string;
    publicKeyPem: string;
    deploymentId: string;
    cacheFile?: string;
  };
}): Promise<WorkerProcess> {
  let id = '';
  const agent =
    options.config &&
    new ConfigAgent({
      source: options.config.source(() => id),
      publicKeyPem: options.config.publicKeyPem,
      deploymentId: options.config.deploymentId,
      logger: options.logger.child({ plane: 'execution', part: 'config' }),
      ...(options.config.cacheFile && { cacheFile: options.config.cacheFile }),
    });
  const worker = createWorker({
    ...options.tuning,
    ...(agent && { config: agent }),
    ...(options.authority && { authority: options.authority }),
    ...(options.config?.keyId !== undefined && { controlKeyId: options.config.keyId }),
    ...(options.labels && { labels: options.labels }),
    store: options.store,
    tasks: options.tasks,
    concurrency: options.concurrency,
    logger: options.logger.child({ plane: 'execution' }),
    version: VERSION,
    ...(options.queues && { queues: options.queues }),
  });
  id = worker.id;
  await worker.start();
  return {
    worker,
    async stop(graceMs) {
      await worker.stop({ graceMs });
    },
  };
}

export function workerHealth(worker: Worker): () => HealthSection {
  return () => {
    const h = worker.health();
    const configOk = h.config === undefined || h.config.gate === 'ok';
    const status =
      h.store !== 'ok' || !configOk || h.evidence !== 'ok'
        ? 'degraded'
        : h.state === 'running'
          ? 'ok'
          : 'degraded';
    return { ...h, status };
  };
}

/** The `control` section of /v1/health: version, signer, mode, and who runs what. */
export function controlHealth(store: Store, config: ConfigService): () => Promise<HealthSection> {
  return async () => {
    const rollout = await store.configs.rollout();
    const current =
      rollout.currentVersion === null ? undefined : await store.configs.get(rollout.currentVersion);
    const workers = (await store.listWorkers()).filter((w) => w.state === 'active' || w.state === 'draining');
    const byVersion: Record<string, number> = {};
    for (const w of workers) {
      const v = String(w.config.appliedVersion ?? 'none');
      byVersion[v] = (byVersion[v] ?? 0) + 1;
    }
    const nacks = workers
      .filter((w) => fleetStatus(w, rollout) === 'nack')
      .map((w) => ({ worker: w.id, version: w.config.nackVersion, reason: w.config.nackReason }));
    // Jobs a worker refused because their authority record did not verify: each needs an admin.
    const blocked = await store.list({ states: ['blocked'] }, { limit: 500 });
    const invalidAuthority = blocked.jobs.filter((j) => j.reason === 'invalid_authority').length;
    const degraded =
      current === undefined || nacks.length > 0 || rollout.mode !== 'normal' || invalidAuthority > 0;
    return {
      status: degraded ? 'degraded' : 'ok',
      ...(invalidAuthority > 0 && {
        reason: `${invalidAuthority}${blocked.nextCursor ? '+' : ''} job(s) blocked for invalid_authority: readmit or cancel them (bulkhead jobs ls --state blocked)`,
      }),
      invalidAuthority,
      version: current?.version ?? null,
      digest: current?.digest ?? null,
      keyId: config.key.keyId,
      deploymentId: config.deploymentId,
      mode: rollout.mode,
      ...(rollout.canary && { canary: rollout.canary }),
      workersByVersion: byVersion,
      nacks,
    };
  };
}

/**
 * Run until SIGINT or SIGTERM, then `shutdown` (graceful). A second signal exits at once; leases of
 * unfinished work then run out and are reaped by the next worker.
 */
export function untilSignal(logger: Logger, shutdown: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down (send the signal again to exit at once)');
      shutdown().then(resolve, (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
  });
}
