/**
 * An outbox consumer: reads events after its cursor in batches, hands them to its handler, and moves
 * its cursor only after the handler succeeded (at least once; handlers are idempotent). Each
 * consumer owns its cursor and its failures: a failing handler is retried with backoff and its
 * failures are recorded on the consumer, and it never blocks another consumer.
 */
import type { Logger } from 'pino';
import type { Store } from '../ledger/store.js';
import type { OutboxEvent } from '../ledger/types.js';

export interface ConsumerOptions {
  store: Store;
  /** Unique per consumer; several processes running the same consumer share its cursor. */
  name: string;
  handle(events: OutboxEvent[]): Promise<void>;
  logger: Logger;
  /** @default 200 */
  batch?: number;
  /** @default 500 */
  pollMs?: number;
  /** @default 30000 */
  maxBackoffMs?: number;
}

export class OutboxConsumer {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;

  constructor(private readonly options: ConsumerOptions) {}

  /** Handle one batch; returns how many events it handled (0: caught up, or lost a race). */
  async runOnce(): Promise<number> {
    const { store, name, handle } = this.options;
    const { cursor } = await store.readConsumer(name);
    const events = await store.readEvents(cursor, this.options.batch ?? 200);
    if (events.length === 0) return 0;
    await handle(events);
    const last = events[events.length - 1] as OutboxEvent;
    return (await store.advanceConsumer(name, cursor, last.seq)) ? events.length : 0;
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const log = this.options.logger.child({ consumer: this.options.name });
    let backoff = 0;
    while (!this.stopped) {
      let handled = 0;
      try {
        handled = await this.runOnce();
        backoff = 0;
      } catch (err) {
        const message = (err as Error).message;
        backoff = Math.min(Math.max(backoff * 2, 250), this.options.maxBackoffMs ?? 30_000);
        log.warn({ err: message, retryInMs: backoff }, 'consumer failed; retrying');
        await this.options.store.recordConsumerFailure(this.options.name, message).catch(() => undefined);
      }
      if (handled > 0 && backoff === 0) continue;
      await new Promise<void>((resolve) => {
        this.wakeUp = resolve;
        this.timer = setTimeout(resolve, backoff || (this.options.pollMs ?? 500));
      });
    }
  }
}
