/**
 * The evidence plane in a process: its store (opened in the background, so a down evidence store
 * never stops the process), the shipper that tails the outbox into it, the service behind the
 * routes, retention from the published config, and the `evidence` health section.
 */
import { sign } from 'node:crypto';
import type { Logger } from 'pino';
import type { HealthSection } from '../api/health-routes.js';
import type { SigningKey } from '../control/signing-keys.js';
import type { CheckpointSigner } from '../evidence/format.js';
import { lazyEvidenceStore } from '../evidence/lazy-store.js';
import { openEvidenceStore } from '../evidence/open.js';
import { EvidenceService } from '../evidence/service.js';
import { EvidenceShipper, type ShipperStatus } from '../evidence/shipper.js';
import { ThreadedShipper } from '../evidence/threaded-shipper.js';
import { isPostgresUrl } from '../ledger/open.js';
import { redactUrl } from '../ledger/postgres/postgres-db.js';
import type { Store } from '../ledger/store.js';

const RETENTION_EVERY_MS = 3_600_000;

/** The shipper in-process or on its own thread. */
export interface Shipper {
  start(): void;
  stop(): Promise<void>;
  status(): ShipperStatus;
}

export interface EvidenceProcess {
  service: EvidenceService;
  shipper: Shipper;
  health(): Promise<HealthSection>;
  close(): Promise<void>;
}

/** Checkpoints are signed with the control plane's key: one key a verifier pins for the deployment. */
export function checkpointSigner(key: SigningKey): CheckpointSigner {
  return {
    keyId: key.keyId,
    publicKeyPem: key.publicPem,
    sign: (message) => sign(null, Buffer.from(message), key.privateKey).toString('base64'),
  };
}

export async function startEvidence(options: {
  ledger: Store;
  /** A SQLite file path or a postgres:// URL. */
  target: string;
  key: SigningKey;
  logger: Logger;
  checkpointEvery?: number;
  checkpointMs?: number;
  /**
   * The ledger's URL: the shipper then runs on a thread of its own with its own connections (what
   * `dev` and `control` do), so shipping never takes the main event loop. Without it, in-process.
   */
  ledgerUrl?: string;
}): Promise<EvidenceProcess> {
  const log = options.logger.child({ plane: 'evidence' });
  const signer = checkpointSigner(options.key);
  const where = isPostgresUrl(options.target) ? redactUrl(options.target) : options.target;
  let warned = false;
  const store = lazyEvidenceStore(
    isPostgresUrl(options.target) ? 'postgres' : 'sqlite',
    where,
    () =>
      openEvidenceStore(options.target, {
        signer,
        ...(options.checkpointEvery !== undefined && { checkpointEvery: options.checkpointEvery }),
      }),
    {
      onError: (err) => {
        if (!warned) log.error({ err: err.message, where }, 'evidence store unavailable; retrying');
        warned = true;
      },
      onOpen: () => log.info({ where }, 'evidence store open'),
    },
  );
  const service = new EvidenceService({
    store,
    ledger: options.ledger,
    trustedKeys: [options.key.publicKey],
    signer,
  });
  const shipper: Shipper = options.ledgerUrl
    ? new ThreadedShipper(
        {
          ledgerUrl: options.ledgerUrl,
          evidenceTarget: options.target,
          evidenceWhere: where,
          privateKeyPem: options.key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
          publicKeyPem: options.key.publicPem,
          keyId: options.key.keyId,
          logLevel: options.logger.level,
          ...(options.checkpointEvery !== undefined && { checkpointEvery: options.checkpointEvery }),
          ...(options.checkpointMs !== undefined && { checkpointMs: options.checkpointMs }),
        },
        log,
      )
    : new EvidenceShipper({
        ledger: options.ledger,
        evidence: store,
        logger: log,
        ...(options.checkpointMs !== undefined && { checkpointMs: options.checkpointMs }),
      });
  // Give the store a moment to open first (a local file opens at once), so the shipper's first
  // round does not report an outage that is only a start-up.
  await Promise.race([store.ready, new Promise((r) => setTimeout(r, 2000).unref())]);
  shipper.start();
  const retention = setInterval(() => {
    applyConfiguredRetention(options.ledger, service).then(
      (erased) => erased > 0 && log.info({ erased }, 'evidence retention applied'),
      (err: unknown) => log.warn({ err: (err as Error).message }, 'evidence retention failed; will retry'),
    );
  }, RETENTION_EVERY_MS);
  retention.unref();
  return {
    service,
    shipper,
    async health() {
      try {
        return (await service.health()) as HealthSection;
      } catch (err) {
        return {
          status: 'down',
          store: store.dialect,
          error: (err as Error).message,
          shipper: shipper.status(),
        };
      }
    },
    async close() {
      clearInterval(retention);
      await shipper.stop();
      await store.close();
    },
  };
}

/** Apply `retention.evidenceDays` of the current published config, if it sets one. */
export async function applyConfiguredRetention(ledger: Store, service: EvidenceService): Promise<number> {
  const { currentVersion } = await ledger.configs.rollout();
  if (currentVersion === null) return 0;
  const version = await ledger.configs.get(currentVersion);
  const days = (JSON.parse(version?.documentJson ?? '{}') as { retention?: { evidenceDays?: unknown } })
    .retention?.evidenceDays;
  if (typeof days !== 'number') return 0;
  return (await service.applyRetention(days)).erased;
}
