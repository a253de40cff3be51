/**
 * The PostgreSQL adapter's connection layer: a pool with this store's own type parsers, one way to
 * run a statement or a transaction, and the mapping of driver errors to ledger errors.
 */
import pg from 'pg';
import { InvalidArgumentError, StoreUnavailableError } from '../errors.js';

/** A statement with a name, prepared once per connection and reused. */
export interface Sql {
  name: string;
  text: string;
}

export type Queryable = pg.Pool | pg.PoolClient;

const INT8_OID = 20;
const JSON_OID = 114;
const JSONB_OID = 3802;

/**
 * Parsers for this store's connections only (the global `pg.types` are left alone): int8 -> number
 * (epoch ms, seq and fence stay far below 2^53), and JSON -> its text, which the shared row mappers
 * parse, exactly as they do for SQLite (so a stored JSON `null` reads back as `null` in both).
 */
export const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID) return (value: string) => Number(value);
    if (oid === JSON_OID || oid === JSONB_OID) return (value: string) => value;
    return pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** The store's clock, evaluated once per statement (the start of the transaction): epoch ms. */
export const NOW_MS = 'floor(extract(epoch FROM now()) * 1000)::bigint';
/** The store's clock at the moment it is evaluated, for checks that must not use a stale "now". */
export const CLOCK_MS = 'floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

export interface PoolOptions {
  poolSize: number;
  applicationName: string;
}

export function connectionConfig(url: string, applicationName: string): pg.ClientConfig {
  return {
    connectionString: url,
    application_name: applicationName,
    types: typeParsers,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    connectionTimeoutMillis: 10_000,
  };
}

export function createPool(url: string, options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({ ...connectionConfig(url, options.applicationName), max: options.poolSize });
  // An idle connection that dies (server restart, network) is reported here; the pool drops it and
  // the next query opens a new one. Never let it crash the process.
  pool.on('error', () => {});
  return pool;
}

/** The URL with its password removed, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1@');
  }
}

/** Run one statement (named ones are prepared once per connection) and return its rows. */
export async function run<R extends pg.QueryResultRow>(
  db: Queryable,
  sql: Sql | string,
  values: unknown[] = [],
): Promise<R[]> {
  try {
    const config =
      typeof sql === 'string' ? { text: sql, values } : { name: sql.name, text: sql.text, values };
    const result = await db.query<R>(config);
    return result.rows;
  } catch (err) {
    throw toLedgerError(err);
  }
}

/** Run `fn` inside one transaction on one connection; roll back if it throws. */
export async function transaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toLedgerError(err);
  }
  // A checked-out client has no pool listener: an error while it is between queries would crash.
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await run(client, 'BEGIN');
    const result = await fn(client);
    await run(client, 'COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackError) {
      broken ??= rollbackError as Error;
    }
    throw toLedgerError(err);
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

const RETRYABLE = new Set(['40P01', '40001']); // deadlock detected, serialization failure

/**
 * Run an operation again when PostgreSQL aborted it for a deadlock or a serialization failure: the
 * aborted attempt changed nothing, so a retry is safe.
 */
export async function withRetry<T>(fn: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (i >= attempts || typeof code !== 'string' || !RETRYABLE.has(code)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5 * i + Math.random() * 10 * i));
    }
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

/**
 * Driver errors that are not about the request become `StoreUnavailableError`; PostgreSQL's refusal
 * of a NUL character (which SQLite stores) becomes `InvalidArgumentError`. Ledger errors and
 * retryable aborts pass through unchanged (the latter keep their `code` for `withRetry`).
 */
export function toLedgerError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof StoreUnavailableError || err instanceof InvalidArgumentError)
    return err;
  const code = (err as { code?: unknown }).code;
  if (code === '22P05' || code === '22021') {
    return new InvalidArgumentError(
      'value',
      `contains the character U+0000, which PostgreSQL cannot store (${err.message})`,
    );
  }
  const unavailable =
    (typeof code === 'string' && (/^(08|53|57P)/.test(code) || NETWORK_CODES.has(code))) ||
    /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|Cannot use a pool after calling end/i.test(
      err.message,
    );
  return unavailable
    ? new StoreUnavailableError(`PostgreSQL is unavailable: ${err.message}`, { cause: err })
    : err;
}
