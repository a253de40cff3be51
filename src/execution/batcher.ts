/**
 * Coalesces calls made during one turn of the event loop into one batched store call: many jobs
 * finishing together cost one round trip (PostgreSQL) or share one commit (SQLite).
 */
import type { Outcome } from '../ledger/types.js';

export class Batcher<I extends { jobId: string }, R> {
  private pending: { item: I; resolve: (o: Outcome<R>) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  constructor(private readonly flushFn: (items: I[]) => Promise<Outcome<R>[]>) {}

  /** Resolves with this item's outcome; rejects when the whole batch failed (the store is down). */
  push(item: I): Promise<Outcome<R>> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    // A job appears at most once per batch; a second call for it waits for the next batch.
    const seen = new Set<string>();
    const batch: typeof this.pending = [];
    const later: typeof this.pending = [];
    for (const p of this.pending) {
      if (seen.has(p.item.jobId)) later.push(p);
      else {
        seen.add(p.item.jobId);
        batch.push(p);
      }
    }
    this.pending = later;
    if (later.length > 0) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
    try {
      const outcomes = await this.flushFn(batch.map((b) => b.item));
      batch.forEach((b, i) => {
        const o = outcomes[i];
        if (o) b.resolve(o);
        else b.reject(new Error(`batch answered ${outcomes.length} outcomes for ${batch.length} items`));
      });
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }
}
