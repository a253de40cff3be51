/**
 * Whether `evidence: required` work may start now: the evidence shipper (an outbox consumer) must
 * have reported in recently, without a failure, and be no more than `maxLag` outbox events behind.
 * The worker learns it from the ledger alone — it needs no evidence store credentials. Checked at
 * most every `checkEveryMs`; an error reading the ledger closes the gate (fail closed).
 */

import { EVIDENCE_CONSUMER } from '../evidence/shipper.js';
import type { Store } from '../ledger/store.js';

export interface EvidenceGateState {
  open: boolean;
  /** Why it is closed. */
  reason?: string;
  lag?: number;
}

export class EvidenceGate {
  private last: { at: number; state: Promise<EvidenceGateState> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly options: { staleMs?: number; checkEveryMs?: number } = {},
  ) {}

  check(maxLag: number): Promise<EvidenceGateState> {
    const now = Date.now();
    if (!this.last || now - this.last.at >= (this.options.checkEveryMs ?? 250)) {
      this.last = { at: now, state: this.read(maxLag) };
    }
    return this.last.state;
  }

  private async read(maxLag: number): Promise<EvidenceGateState> {
    try {
      const [consumer, head, now] = await Promise.all([
        this.store.readConsumer(EVIDENCE_CONSUMER),
        this.store.outboxHead(),
        this.store.now(),
      ]);
      const lag = Math.max(0, head - consumer.cursor);
      if (consumer.updatedAt === undefined)
        return { open: false, reason: 'no evidence shipper has reported', lag };
      if (consumer.failures > 0)
        return {
          open: false,
          reason: `the evidence store is failing: ${consumer.lastError ?? 'unknown'}`,
          lag,
        };
      if (now - consumer.updatedAt > (this.options.staleMs ?? 10_000))
        return {
          open: false,
          reason: `the evidence shipper has not reported for ${now - consumer.updatedAt} ms`,
          lag,
        };
      if (lag > maxLag)
        return {
          open: false,
          reason: `the evidence shipper is ${lag} events behind (at most ${maxLag})`,
          lag,
        };
      return { open: true, lag };
    } catch (err) {
      return { open: false, reason: `cannot read the shipper's state: ${(err as Error).message}` };
    }
  }
}
