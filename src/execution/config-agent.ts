/**
 * The worker's config agent: keeps the worker on the newest valid signed snapshot.
 *
 *   fetch (long-poll) -> verify (pinned key, deployment, not older, not expired)
 *     valid:   apply, cache on disk (last-known-good), ACK a new version
 *     invalid: keep last-known-good, NACK the version with the reason (once per version and reason)
 *     control unreachable: keep last-known-good until it expires, retry with backoff
 *
 * The worker asks `gate()` before every claim: no snapshot or an expired one -> claim nothing
 * (`stale_config`); freshControl tasks only while the last control contact is inside the
 * freshness window.
 */

import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { loadPublicKey, type Snapshot, verifySnapshot } from '../control/snapshot.js';
import { type SnapshotView, viewOf } from '../control/snapshot-view.js';

/** Where snapshots come from: the control plane over HTTP, or in-process in embedded mode. */
export interface ConfigSource {
  /** The snapshot to run; waits up to `waitMs` for a version other than `after`; stops waiting on `signal`. */
  fetch(after: number, waitMs: number, signal: AbortSignal): Promise<unknown>;
  report(report: { version: number; status: 'ack' | 'nack'; reason?: string }): Promise<void>;
}

export interface ConfigAgentOptions {
  source: ConfigSource;
  /** The control plane's public key (PEM), pinned. */
  publicKeyPem: string;
  deploymentId: string;
  /** Last-known-good snapshot file. */
  cacheFile?: string;
  logger: Logger;
  /** Longest long-poll. @default 25000 */
  maxWaitMs?: number;
}

export interface ConfigGate {
  /** False: claim nothing. */
  claim: boolean;
  /** Why not, when not. */
  reason?: 'no_config' | 'stale_config';
  /** Whether freshControl tasks may start now. */
  fresh: boolean;
  view?: SnapshotView;
  version?: number;
  /** Running on a snapshot the control plane has not confirmed since this process started or lost contact. */
  cached: boolean;
}

export class ConfigAgent {
  private readonly publicKey: KeyObject;
  private snapshot: Snapshot | undefined;
  private view: SnapshotView | undefined;
  /** Epoch ms of the last successful fetch (any answer from the control plane). */
  private lastContactAt: number | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private readonly nacked = new Set<string>();
  private readonly stopping = new AbortController();
  private lastError: string | undefined;

  constructor(private readonly options: ConfigAgentOptions) {
    this.publicKey = loadPublicKey(options.publicKeyPem);
  }

  /** The pinned control key and deployment: authority records are verified against them too. */
  get pin(): { publicKeyPem: string; deploymentId: string } {
    return { publicKeyPem: this.options.publicKeyPem, deploymentId: this.options.deploymentId };
  }

  /** Load the cached snapshot (if it still verifies), try one fetch, then keep fetching. */
  async start(): Promise<void> {
    this.loadCache();
    await this.fetchOnce(0).catch(() => undefined);
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    clearTimeout(this.wakeTimer);
    this.wake?.();
    await this.loop;
  }

  gate(now = Date.now()): ConfigGate {
    const s = this.snapshot;
    if (!s || !this.view) return { claim: false, reason: 'no_config', fresh: false, cached: true };
    const fresh = this.lastContactAt !== undefined && now - this.lastContactAt <= this.view.freshnessMs;
    // Without a recent control contact the worker runs on its cached authority.
    const cached = !fresh;
    if (s.expiresAt <= now)
      return { claim: false, reason: 'stale_config', fresh, version: s.version, view: this.view, cached };
    return { claim: true, fresh, version: s.version, view: this.view, cached };
  }

  health(now = Date.now()): Record<string, unknown> {
    const g = this.gate(now);
    return {
      state: g.claim ? (g.fresh ? 'ok' : 'cached') : g.reason,
      version: this.snapshot?.version ?? null,
      digest: this.snapshot?.digest ?? null,
      expiresInMs: this.snapshot ? this.snapshot.expiresAt - now : null,
      lastContactAgeMs: this.lastContactAt === undefined ? null : now - this.lastContactAt,
      ...(this.lastError !== undefined && { lastError: this.lastError }),
    };
  }

  private async run(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      let pause = 0;
      try {
        // A refused version is not asked for again at once: the next answer is awaited past it.
        if ((await this.fetchOnce(this.waitMs())) === 'refused') pause = 1000;
        backoff = 250;
      } catch (err) {
        this.lastError = (err as Error).message;
        pause = backoff;
        backoff = Math.min(backoff * 2, 5000);
      }
      if (this.stopped) break;
      // Always yield between fetches, even when the source answers at once.
      await new Promise<void>((r) => {
        this.wake = r;
        this.wakeTimer = setTimeout(r, pause);
      });
    }
  }

  /** Long-poll well inside the snapshot's validity, so renewals arrive before it closes. */
  private waitMs(): number {
    const max = this.options.maxWaitMs ?? 25_000;
    const s = this.snapshot;
    if (!s || !this.view) return Math.min(max, 1000);
    // Renew well inside the validity window, and often enough to stay inside the freshness window.
    return Math.max(
      0,
      Math.min(max, Math.floor((s.expiresAt - s.issuedAt) / 4), Math.floor(this.view.freshnessMs / 2)),
    );
  }

  /** The newest version the control plane offered, applied or refused: long-polls wait past it. */
  private offered = 0;

  private async fetchOnce(waitMs: number): Promise<'applied' | 'refused' | 'stopped'> {
    const after = Math.max(this.snapshot?.version ?? 0, this.offered);
    const value = await this.options.source.fetch(after, waitMs, this.stopping.signal);
    if (this.stopped) return 'stopped';
    this.lastContactAt = Date.now();
    this.lastError = undefined;
    const held = { version: this.snapshot?.version ?? 0, digest: this.snapshot?.digest ?? null };
    const verdict = verifySnapshot(value, {
      publicKey: this.publicKey,
      deploymentId: this.options.deploymentId,
      held,
      now: Date.now(),
    });
    if (!verdict.ok) {
      const version = Number((value as { version?: unknown } | null)?.version) || 0;
      if (Number.isSafeInteger(version)) this.offered = Math.max(this.offered, version);
      const key = `${version}:${verdict.reason}`;
      if (!this.nacked.has(key)) {
        this.nacked.add(key);
        this.options.logger.error(
          { version, reason: verdict.reason },
          `refused config version ${version}: ${verdict.detail}; staying on version ${held.version}`,
        );
        await this.options.source
          .report({ version, status: 'nack', reason: `${verdict.reason}: ${verdict.detail}` })
          .catch(() => undefined);
      }
      return 'refused';
    }
    const isNew = verdict.snapshot.version !== held.version;
    this.apply(verdict.snapshot);
    this.saveCache();
    if (isNew) {
      this.options.logger.info(
        { version: verdict.snapshot.version, digest: verdict.snapshot.digest },
        'applied config',
      );
      await this.options.source
        .report({ version: verdict.snapshot.version, status: 'ack' })
        .catch(() => undefined);
    }
    return 'applied';
  }

  private apply(s: Snapshot): void {
    this.snapshot = s;
    this.view = viewOf(s.document);
  }

  private loadCache(): void {
    const file = this.options.cacheFile;
    if (!file || !existsSync(file)) return;
    try {
      const value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      const verdict = verifySnapshot(value, {
        publicKey: this.publicKey,
        deploymentId: this.options.deploymentId,
        held: { version: 0, digest: null },
        now: Date.now(),
      });
      if (verdict.ok) this.apply(verdict.snapshot);
      else
        this.options.logger.warn(
          { file, reason: verdict.reason },
          `ignoring cached config: ${verdict.detail}`,
        );
    } catch (err) {
      this.options.logger.warn({ file, err: (err as Error).message }, 'ignoring unreadable cached config');
    }
  }

  private saveCache(): void {
    const file = this.options.cacheFile;
    if (!file || !this.snapshot) return;
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.snapshot), { mode: 0o600 });
    renameSync(tmp, file);
  }
}
