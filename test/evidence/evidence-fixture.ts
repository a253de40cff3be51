/**
 * Fixture of the evidence API tests: a ledger on one backend and an evidence store on the same
 * backend (a SQLite file beside the ledger, or a PostgreSQL database of its own), wired as a control
 * process wires them — the control identity (signing key, deployment, config v1), `startEvidence`
 * (store, service, health, and the shipper on a thread of its own with its own ledger connection;
 * exports signed with the control key), `buildApi` with the config and evidence services — plus a
 * worker that takes signed config in process, so attempts record the config version they ran under.
 *
 * Tenants: `default` (the system tenant), `acme` and `globex`, with a key per role in each. Before
 * anything else is recorded, the evidence log gets a prefix of entries recorded ten days ago (the
 * clock is turned back while they are appended), so retention has something old to erase.
 */
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { z } from 'zod';
import { buildApi } from '../../src/api/server.js';
import { ensureControlIdentity, ensureInitialConfig, inProcessSource } from '../../src/cli/control-setup.js';
import { checkpointSigner, type EvidenceProcess, startEvidence } from '../../src/cli/evidence-setup.js';
import { startWorker, type WorkerProcess } from '../../src/cli/runtime.js';
import { createApiKey } from '../../src/control/api-keys.js';
import type { ConfigService } from '../../src/control/config/service.js';
import type { Draft } from '../../src/evidence/format.js';
import { openEvidenceStore } from '../../src/evidence/open.js';
import { ROLES, type Role } from '../../src/ledger/registry.js';
import type { Store } from '../../src/ledger/store.js';
import { defineTask, NonRetryableError } from '../../src/sdk/index.js';
import { call } from '../api/api-fixture.js';
import { type Backend, sleep, type TestStore, tempDir } from '../helpers/backends.js';
import { createPgDatabase } from '../helpers/pg-scratch.js';

export const TENANTS = ['default', 'acme', 'globex'] as const;
export type TenantName = (typeof TENANTS)[number];

/** How long ago the aged prefix was recorded. */
export const AGED_MS = 10 * 86_400_000;
/** Correlation ids of the aged prefix (tenant acme). */
export const AGED = { free: 'aged-free', held: 'aged-held' } as const;
/** Values only the aged entries hold. */
export const AGED_VALUES = { free: 'AGED-FREE-VALUE-1234', held: 'AGED-HELD-VALUE-5678' } as const;

/** Two durable steps, then its input back. */
export const stepsTask = defineTask({
  name: 'ev.steps',
  input: z.object({ n: z.number().int() }),
  backoff: { baseMs: 10, maxMs: 20 },
  async run(input, ctx) {
    const a = await ctx.step('first', () => input.n + 1);
    const b = await ctx.step('second', () => a * 2);
    return { n: input.n, b };
  },
});

/**
 * One durable step, then `failures` failed attempts whose error message names the customer
 * (`PII-<code>-SECRET`, built here so the input never holds the text), then success — or, with
 * `permanent`, a non-retryable failure.
 */
export const flakyTask = defineTask({
  name: 'ev.flaky',
  input: z.object({
    code: z.number().int(),
    failures: z.number().int().min(0).max(3).default(0),
    permanent: z.boolean().default(false),
    prefix: z.string().default('PII'),
  }),
  maxAttempts: 4,
  backoff: { baseMs: 10, maxMs: 20 },
  async run(input, ctx) {
    await ctx.step('prepare', () => ({ on: ctx.attempt }));
    const marker = `${input.prefix}-${input.code}-SECRET`;
    if (input.permanent)
      throw new NonRetryableError(`upstream refused customer ${marker} for good`, 'upstream_refused');
    if (ctx.attempt <= input.failures) throw new Error(`upstream timed out for customer ${marker}`);
    return { attempt: ctx.attempt };
  },
});

export interface EvidenceFixture {
  dialect: 'sqlite' | 'postgres';
  app: FastifyInstance;
  store: Store;
  config: ConfigService;
  /** The control plane's public key: checkpoints and authority records are signed with it. */
  publicKey: KeyObject;
  publicKeyFile: string;
  evidence: EvidenceProcess;
  /** The SQLite evidence file, or null on PostgreSQL. */
  evidenceFile: string | null;
  worker: WorkerProcess;
  /** `keys[tenant][role]`: a key with only that role. */
  keys: Record<TenantName, Record<Role, string>>;
  keyIds: Record<TenantName, Record<Role, string>>;
  /** Until the shipper has recorded every outbox event there is now. */
  settle(): Promise<void>;
  /** Submit through the API with `key`; returns the job id and correlation id. */
  submit(
    key: string,
    body: { task: string; input: unknown; correlationId?: string },
  ): Promise<{ id: string; correlationId: string }>;
  /** Wait for a job to end (through the API); returns its resource. */
  finished(key: string, id: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

const silent = pino({ level: 'silent' });

function agedDrafts(at: number): Draft[] {
  const job = (corr: string, value: string, tenant: string): Draft[] => [
    {
      occurredAt: at,
      tenant,
      correlationId: corr,
      kind: 'admission',
      subject: `job:${corr}-job`,
      sourceSeq: null,
      fields: { event: 'job.queued', from: 'submitted', to: 'queued', task: 'ev.flaky', note: value },
    },
    {
      occurredAt: at + 1,
      tenant,
      correlationId: corr,
      kind: 'failure',
      subject: `job:${corr}-job`,
      sourceSeq: null,
      fields: { event: 'job.failed', attempt: 1, error: 'boom', message: `failed for ${value}` },
    },
  ];
  return [...job(AGED.free, AGED_VALUES.free, 'acme'), ...job(AGED.held, AGED_VALUES.held, 'acme')];
}

export async function createEvidenceFixture(backend: Backend): Promise<EvidenceFixture> {
  const tmp = tempDir('bulkhead-evidence-api-');
  const ledger: TestStore = await backend.create();
  const { store } = ledger;
  const cleanups: Array<() => Promise<void> | void> = [() => tmp.remove(), () => ledger.cleanup()];
  try {
    const { service, identity } = ensureControlIdentity(join(tmp.dir, 'keys'));
    const config = service(store);
    await ensureInitialConfig(config, store);

    let target: string;
    let evidenceFile: string | null = null;
    if (backend.dialect === 'postgres') {
      const db = await createPgDatabase();
      cleanups.unshift(() => db.drop());
      target = db.url;
    } else {
      evidenceFile = join(tmp.dir, 'evidence.db');
      target = evidenceFile;
    }

    // The aged prefix: recorded ten days ago (the stores stamp recordedAt with Date.now()).
    {
      const s = await openEvidenceStore(target, { signer: checkpointSigner(config.key) });
      const realNow = Date.now;
      const then = realNow() - AGED_MS;
      Date.now = () => then;
      try {
        await s.append(agedDrafts(then));
      } finally {
        Date.now = realNow;
        await s.close();
      }
    }

    // No timed checkpoints: entries appear only when the test makes them (exports sign the head).
    // The shipper runs on a thread of its own with its own ledger connection, as in `control`.
    const evidence = await startEvidence({
      ledger: store,
      target,
      key: config.key,
      logger: silent,
      checkpointMs: 3_600_000,
      ledgerUrl: ledger.url,
    });
    cleanups.unshift(() => evidence.close());

    const keys = {} as Record<TenantName, Record<Role, string>>;
    const keyIds = {} as Record<TenantName, Record<Role, string>>;
    for (const tenant of TENANTS) {
      await store.registry.createTenant(tenant);
      keys[tenant] = {} as Record<Role, string>;
      keyIds[tenant] = {} as Record<Role, string>;
      for (const role of ROLES) {
        const created = await createApiKey(store.registry, {
          tenant,
          roles: [role],
          name: `${tenant}-${role}`,
        });
        keys[tenant][role] = created.key;
        keyIds[tenant][role] = created.record.id;
      }
    }

    const worker = await startWorker({
      store,
      tasks: [stepsTask, flakyTask],
      concurrency: 4,
      logger: silent,
      tuning: { workerId: `ev-api-${backend.dialect}`, pollIntervalMs: 50, reapIntervalMs: 200 },
      config: {
        source: (id) => inProcessSource(config, id, []),
        publicKeyPem: config.key.publicPem,
        deploymentId: identity.deploymentId,
      },
    });
    cleanups.unshift(() => worker.stop(2000));

    const app = await buildApi({
      store,
      config,
      evidence: evidence.service,
      health: { evidence: () => evidence.health() },
    });
    cleanups.unshift(() => app.close());

    const settle = async () => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const [head, outbox] = await Promise.all([evidence.service.store.head(), store.outboxHead()]);
        if (head.shippedThrough >= outbox) return;
        if (Date.now() > deadline)
          assert.fail(`the shipper did not catch up: shipped ${head.shippedThrough} of ${outbox}`);
        await sleep(20);
      }
    };

    const submit: EvidenceFixture['submit'] = async (key, body) => {
      const res = await call(app, { url: '/v1/jobs', key, body });
      assert.equal(res.statusCode, 201, res.body);
      const job = res.json() as { id: string; correlationId: string };
      return { id: job.id, correlationId: job.correlationId };
    };

    const finished: EvidenceFixture['finished'] = async (key, id) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const res: LightMyRequestResponse = await call(app, {
          url: `/v1/jobs/${id}/result?waitMs=2000`,
          key,
        });
        if (res.statusCode === 200) return res.json() as Record<string, unknown>;
        assert.equal(res.statusCode, 202, res.body);
        if (Date.now() > deadline) assert.fail(`job ${id} did not end: ${res.body}`);
      }
    };

    return {
      dialect: backend.dialect,
      app,
      store,
      config,
      publicKey: config.key.publicKey,
      publicKeyFile: identity.publicKeyFile,
      evidence,
      evidenceFile,
      worker,
      keys,
      keyIds,
      settle,
      submit,
      finished,
      async close() {
        for (const c of cleanups) await c();
      },
    };
  } catch (err) {
    for (const c of cleanups) await Promise.resolve(c()).catch(() => undefined);
    throw err;
  }
}
