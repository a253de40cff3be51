/**
 * The shipper: tails the ledger's outbox into the evidence store, in batches, exactly once per
 * event. Its position lives in the evidence store and moves in the transaction that appends (so a
 * kill -9 at any point leaves neither a duplicate nor a hole); it is mirrored to the ledger's
 * `evidence` consumer row, which is how workers see whether evidence is keeping up (fail closed).
 *
 * Several shippers may run against one pair of stores (one per control replica): appends take the
 * chain's lock and skip events already recorded, so they only cost each other a retry.
 */
import type { Logger } from 'pino';
import type { Store } from '../ledger/store.js';
import { draftOf, gapDraft } from './mapping.js';
import type { EvidenceStore } from './store.js';

/** The ledger consumer row the shipper mirrors its position and failures to. */
export const EVIDENCE_CONSUMER = 'evidence';

export interface ShipperOptions {
  ledger: Store;
  evidence: EvidenceStore;
  logger: Logger;
  /** Events per append. @default 1000 */
  batch?: number;
  /** How often to look for new events when caught up (ms). @default 100 */
  pollMs?: number;
  /** How often to tell the ledger it is alive when there is nothing to ship (ms). @default 1000 */
  heartbeatMs?: number;
  /** Sign the head when entries have waited this long unsigned (ms). @default 10000 */
  checkpointMs?: number;
}

export interface ShipperStatus {
  shippedThrough: number;
  lastError: string | null;
  /** Appended entries since start. */
  shipped: number;
  gaps: number;
}

export class EvidenceShipper {
  private stopped = true;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private release: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private lastBeat = 0;
  private lastSigned = Date.now();
  private readonly state: ShipperStatus = { shippedThrough: 0, lastError: null, shipped: 0, gaps: 0 };

  constructor(private readonly options: ShipperOptions) {}

  status(): ShipperStatus {
    return { ...this.state };
  }

  /** Ship one batch; returns how many entries were appended (0 when caught up). */
  async shipOnce(): Promise<number> {
    const { ledger, evidence } = this.options;
    const { shippedThrough: shipped } = await evidence.head();
    const events = await ledger.readEvents(shipped, this.options.batch ?? 1000);
    // Only a batch that does not start right after the position can follow a pruned range (an
    // event at `shipped + 1` proves nothing up to it was pruned unshipped).
    const floor = events[0]?.seq === shipped + 1 ? 0 : await ledger.prunedThrough();
    const drafts = [];
    let through = shipped;
    if (floor > shipped) {
      drafts.push(gapDraft(shipped + 1, floor, Date.now()));
      through = floor;
      this.state.gaps++;
      this.options.logger.error(
        { fromSeq: shipped + 1, toSeq: floor },
        'outbox events were pruned before they were shipped: recorded as a gap',
      );
    }
    for (const e of events) {
      if (e.seq <= through) continue;
      drafts.push(draftOf(e));
      through = e.seq;
    }
    if (drafts.length === 0) {
      this.state.shippedThrough = shipped;
      return 0;
    }
    const result = await evidence.append(drafts, { shippedThrough: through });
    this.state.shippedThrough = through;
    this.state.shipped += result.entries.length;
    await this.mirror(through);
    return result.entries.length;
  }

  /** Tell the ledger how far evidence has got (this also clears recorded failures). */
  private async mirror(through: number): Promise<void> {
    const { ledger } = this.options;
    const c = await ledger.readConsumer(EVIDENCE_CONSUMER);
    await ledger.advanceConsumer(EVIDENCE_CONSUMER, c.cursor, Math.max(c.cursor, through));
    this.lastBeat = Date.now();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribe = this.options.ledger.onWake(() => this.wake?.());
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    this.release?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const log = this.options.logger;
    let backoff = 0;
    while (!this.stopped) {
      let shipped = 0;
      try {
        shipped = await this.shipOnce();
        if (shipped === 0) await this.idle();
        if (this.state.lastError !== null) log.info('evidence store reachable again: shipping resumed');
        this.state.lastError = null;
        backoff = 0;
      } catch (err) {
        const message = (err as Error).message;
        if (this.state.lastError === null) log.error({ err: message }, 'evidence shipping failed; retrying');
        this.state.lastError = message;
        backoff = Math.min(Math.max(backoff * 2, 100), 5000);
        // Workers read this: while it is set, `evidence: required` work does not start.
        await this.options.ledger.recordConsumerFailure(EVIDENCE_CONSUMER, message).catch(() => undefined);
      }
      if (shipped > 0 && backoff === 0) continue;
      await new Promise<void>((resolve) => {
        // New work wakes a caught-up shipper at once, but never cuts a failure's backoff short.
        this.release = resolve;
        this.wake = backoff ? undefined : resolve;
        this.timer = setTimeout(resolve, backoff || (this.options.pollMs ?? 100));
      });
    }
  }

  /** Caught up: check the evidence store still answers, beat, and sign a head that waited long enough. */
  private async idle(): Promise<void> {
    const now = Date.now();
    if (now - this.lastSigned >= (this.options.checkpointMs ?? 10_000)) {
      await this.options.evidence.checkpoint();
      this.lastSigned = now;
    }
    if (now - this.lastBeat >= (this.options.heartbeatMs ?? 1000)) {
      // A write, not a read: a store that still answers reads but refuses writes is down.
      await this.options.evidence.probe();
      await this.mirror(this.state.shippedThrough);
    }
  }
}
