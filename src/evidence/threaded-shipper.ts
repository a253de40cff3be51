/**
 * The evidence shipper on a thread of its own (`shipper-thread.ts`): what `bulkhead dev` and
 * `bulkhead control` run. If the thread dies it is started again after a pause; its position is in
 * the evidence store, so a restart neither repeats nor skips an event.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { ShipperStatus } from './shipper.js';

export interface ShipperThreadData {
  ledgerUrl: string;
  evidenceTarget: string;
  /** The target for messages (a URL without its password). */
  evidenceWhere: string;
  privateKeyPem: string;
  publicKeyPem: string;
  keyId: string;
  logLevel: string;
  checkpointEvery?: number;
  checkpointMs?: number;
  pollMs?: number;
}

const RESTART_MS = 1000;

export class ThreadedShipper {
  private worker: Worker | undefined;
  private last: ShipperStatus = { shippedThrough: 0, lastError: null, shipped: 0, gaps: 0 };
  private stopping = false;
  private restart: NodeJS.Timeout | undefined;

  constructor(
    private readonly data: ShipperThreadData,
    private readonly logger: Logger,
  ) {}

  status(): ShipperStatus & { thread: 'running' | 'restarting' | 'stopped' } {
    return { ...this.last, thread: this.worker ? 'running' : this.stopping ? 'stopped' : 'restarting' };
  }

  start(): void {
    this.stopping = false;
    const worker = new Worker(new URL('./shipper-thread.js', import.meta.url), { workerData: this.data });
    this.worker = worker;
    worker.on('message', (m: { type: string; status?: ShipperStatus }) => {
      if (m.status) this.last = m.status;
    });
    worker.on('error', (err) => this.logger.error({ err: err.message }, 'evidence shipper thread failed'));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined;
      if (this.stopping) return;
      this.logger.error({ code }, `evidence shipper thread exited; restarting in ${RESTART_MS} ms`);
      this.restart = setTimeout(() => this.start(), RESTART_MS);
    });
  }

  /** Stop shipping: what is in flight commits or rolls back; the thread ends (killed after `graceMs`). */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restart);
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'stop' });
    const timer = setTimeout(() => void worker.terminate(), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
