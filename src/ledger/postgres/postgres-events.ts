/**
 * The outbox reader and the wake-up listener of the PostgreSQL ledger.
 *
 * Reading the outbox in `seq` order without ever skipping an event: a sequence hands out numbers
 * at insert time, not at commit, so a transaction still in flight may hold a lower `seq` than one
 * already committed. Filtering on the event's own transaction id (`tx_id < xmin`) is not enough:
 * the in-flight one may have a *higher* transaction id than the committed one.
 *
 * So the reader hands out a visible event only when no event before it can still appear:
 * - a run of consecutive seqs right after the cursor is final (seqs are unique), which is the
 *   common case and costs nothing more;
 * - to step over a gap (a transaction in flight, or one that rolled back), it proves a horizon: it
 *   reads the newest visible seq S, then takes a fresh transaction id X. Every transaction that drew
 *   a seq <= S had its id before that (ids are taken before seqs: see the migration), so a lower one.
 *   Once the oldest running transaction is at or above X, every event up to S is visible or never
 *   will be. Until then the reader waits a little, and then returns what it has (possibly nothing);
 *   horizons not yet proven are kept and checked again on the next call.
 */
import pg from 'pg';
import { type EventRow, rowToEvent } from '../rows.js';
import type { OutboxEvent } from '../types.js';
import { run } from './postgres-db.js';
import { EVENT_HORIZON, READ_EVENTS } from './postgres-queries.js';

/** Waits between re-checks of a horizon while older transactions finish (ms). */
const HORIZON_WAITS = [1, 2, 5, 10, 20, 50, 100, 200];
const MAX_PENDING = 16;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class EventReader {
  /** Every event with a seq up to this one is visible or never will be. */
  private proven = 0;
  /** Horizons taken but not yet proven: seq and the transaction id that must be passed. */
  private pending: { seq: number; xid: string }[] = [];

  constructor(private readonly pool: pg.Pool) {}

  async read(afterSeq: number, limit: number): Promise<OutboxEvent[]> {
    for (let attempt = 0; ; attempt++) {
      const rows = await run<EventRow & { upto: number; seq: number | null }>(this.pool, READ_EVENTS, [
        afterSeq,
        limit,
        this.proven,
        this.pending.map((p) => p.seq),
        this.pending.map((p) => p.xid),
      ]);
      this.prove(rows[0]?.upto ?? 0);
      const visible = rows.filter((row) => row.seq !== null);
      const first = visible[0];
      if (!first) return []; // nothing after afterSeq has committed
      const events = this.finalPrefix(visible, afterSeq);
      if (events.length > 0) return events;
      // A gap right after the cursor: prove that nothing can still fill it.
      if (!this.pending.some((p) => p.seq >= Number(first.seq))) await this.takeHorizon(afterSeq);
      const wait = HORIZON_WAITS[attempt];
      if (wait === undefined) return [];
      await sleep(wait);
    }
  }

  /** The visible rows no earlier event can still join: consecutive from the cursor, or proven. */
  private finalPrefix(rows: (EventRow & { seq: number | null })[], afterSeq: number): OutboxEvent[] {
    const out: OutboxEvent[] = [];
    let next = afterSeq + 1;
    for (const row of rows) {
      const seq = Number(row.seq);
      if (seq !== next && seq > this.proven) break;
      out.push(rowToEvent(row));
      next = seq + 1;
    }
    return out;
  }

  private async takeHorizon(afterSeq: number): Promise<void> {
    const [h] = await run<{ max_seq: number; xid: string | null }>(this.pool, EVENT_HORIZON, [afterSeq]);
    if (!h || h.xid === null || h.max_seq <= this.proven) return;
    if (this.pending.some((p) => p.seq >= h.max_seq)) return;
    // When full (a long transaction holds every horizon back), keep the oldest ones and the newest.
    if (this.pending.length >= MAX_PENDING) this.pending.pop();
    this.pending.push({ seq: h.max_seq, xid: h.xid });
  }

  private prove(upto: number): void {
    if (upto > this.proven) this.proven = upto;
    this.pending = this.pending.filter((p) => p.seq > this.proven);
  }
}

export const WAKE_CHANNEL = 'bulkhead_jobs';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 10_000;
const PING_EVERY_MS = 30_000;

/**
 * One dedicated connection doing `LISTEN bulkhead_jobs`, opened on the first listener. A dropped
 * connection is reopened with backoff; after a reconnect every queue seen so far is woken, since
 * notifications sent meanwhile are lost. While the connection is not listening (opening, or
 * reconnecting), this process's own writes wake its listeners directly (`local`). Errors never
 * escape (this must not crash the process).
 */
export class WakeListener {
  private readonly listeners = new Set<(queue: string) => void>();
  private readonly seenQueues = new Set<string>();
  private client: pg.Client | undefined;
  private listening = false;
  private loop: Promise<void> | undefined;
  private closed = false;
  private stopWaiting: (() => void) | undefined;

  constructor(private readonly config: pg.ClientConfig) {}

  add(listener: (queue: string) => void): () => void {
    this.listeners.add(listener);
    if (!this.loop && !this.closed) this.loop = this.listen();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** This process's own write made these queues runnable: tell listeners now unless LISTEN will. */
  local(queues: Iterable<string>): void {
    if (this.listening || this.listeners.size === 0) return;
    for (const queue of new Set(queues)) this.emit(queue);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopWaiting?.();
    await this.client?.end().catch(() => {});
    await this.loop;
  }

  private emit(queue: string): void {
    this.seenQueues.add(queue);
    for (const listener of [...this.listeners]) {
      try {
        listener(queue);
      } catch {
        // A listener's failure is its own; the others still hear about the queue.
      }
    }
  }

  private async listen(): Promise<void> {
    let delay = RECONNECT_MIN_MS;
    let reconnecting = false;
    while (!this.closed) {
      const client = new pg.Client(this.config);
      this.client = client;
      const dropped = new Promise<void>((resolve) => {
        client.on('error', () => resolve());
        client.on('end', () => resolve());
      });
      client.on('notification', (message) => {
        if (message.channel === WAKE_CHANNEL && message.payload) this.emit(message.payload);
      });
      let ping: NodeJS.Timeout | undefined;
      try {
        await client.connect();
        await client.query(`LISTEN ${WAKE_CHANNEL}`);
        this.listening = true;
        delay = RECONNECT_MIN_MS;
        if (reconnecting) for (const queue of this.seenQueues) this.emit(queue);
        reconnecting = true;
        // A half-open TCP connection would stay silent forever: ping it, and drop it if it stalls.
        ping = setInterval(() => {
          client.query({ text: 'SELECT 1', query_timeout: 10_000 } as pg.QueryConfig).catch(() => {
            client.end().catch(() => {});
          });
        }, PING_EVERY_MS);
        if (!this.closed) await dropped;
      } catch {
        // Could not connect or LISTEN: try again after the backoff.
      } finally {
        this.listening = false;
        if (ping) clearInterval(ping);
      }
      this.client = undefined;
      await client.end().catch(() => {});
      if (this.closed) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay * (0.5 + Math.random() / 2));
        this.stopWaiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.stopWaiting = undefined;
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }
}
