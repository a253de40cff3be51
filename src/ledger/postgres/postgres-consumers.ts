/** Outbox consumer cursors on PostgreSQL: each moves only from where its owner last saw it. */
import type pg from 'pg';
import { type ConsumerRow, rowToConsumer } from '../rows.js';
import type { ConsumerState } from '../types.js';
import { checkInt, checkName } from '../validate.js';
import { NOW_MS, run, type Sql, withRetry } from './postgres-db.js';

const Q = {
  get: { name: 'bulkhead_consumer_get', text: 'SELECT * FROM bulkhead.consumers WHERE name = $1' },
  /** Move the cursor from $2 to $3; a consumer seen at 0 may not exist yet and is created. */
  advance: {
    name: 'bulkhead_consumer_advance',
    text: `INSERT INTO bulkhead.consumers AS c (name, cursor, failures, last_error, updated_at)
           SELECT $1, $3, 0, NULL, ${NOW_MS} WHERE $2::bigint = 0
           ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, failures = 0, last_error = NULL,
             updated_at = excluded.updated_at
           WHERE c.cursor = $2::bigint
           RETURNING name`,
  },
  move: {
    name: 'bulkhead_consumer_move',
    text: `UPDATE bulkhead.consumers SET cursor = $3, failures = 0, last_error = NULL, updated_at = ${NOW_MS}
           WHERE name = $1 AND cursor = $2 RETURNING name`,
  },
  failure: {
    name: 'bulkhead_consumer_failure',
    text: `INSERT INTO bulkhead.consumers AS c (name, cursor, failures, last_error, updated_at)
           VALUES ($1, 0, 1, $2, ${NOW_MS})
           ON CONFLICT (name) DO UPDATE SET failures = c.failures + 1, last_error = excluded.last_error,
             updated_at = excluded.updated_at
           RETURNING *`,
  },
} satisfies Record<string, Sql>;

export class PostgresConsumers {
  constructor(private readonly pool: pg.Pool) {}

  async read(name: string): Promise<ConsumerState> {
    checkName('consumer.name', name);
    const [row] = await run<ConsumerRow>(this.pool, Q.get, [name]);
    return rowToConsumer(name, row);
  }

  async advance(name: string, from: number, to: number): Promise<boolean> {
    checkName('consumer.name', name);
    checkInt('consumer.from', from, 0, Number.MAX_SAFE_INTEGER);
    checkInt('consumer.to', to, from, Number.MAX_SAFE_INTEGER);
    const q = from === 0 ? Q.advance : Q.move;
    return withRetry(async () => (await run(this.pool, q, [name, from, to])).length === 1);
  }

  async fail(name: string, error: string): Promise<ConsumerState> {
    checkName('consumer.name', name);
    const message = String(error).slice(0, 2000).replaceAll('\u0000', '\ufffd');
    const [row] = await withRetry(() => run<ConsumerRow>(this.pool, Q.failure, [name, message]));
    return rowToConsumer(name, row);
  }
}
