/**
 * The messages between a worker and an isolated runtime (a worker thread or a child process). The
 * handler runs on the far side; everything that touches the ledger (steps, heartbeats) is asked of
 * the worker, which does it under the attempt's fence. The far side never holds store credentials.
 */

/** What the handler needs to know about its attempt. */
export interface AttemptMeta {
  jobId: string;
  tenant: string;
  correlationId: string;
  attempt: number;
  fence: number;
}

export type ToRunner =
  | {
      t: 'run';
      id: number;
      module: string;
      task: string;
      input: unknown;
      meta: AttemptMeta;
      mode: 'run' | 'compensate';
      steps: Record<string, unknown>;
    }
  | { t: 'abort'; id: number; reason: string }
  | { t: 'reply'; id: number; seq: number; ok: true; value: unknown }
  | { t: 'reply'; id: number; seq: number; ok: false; error: SerializedError };

export type FromRunner =
  | { t: 'ready' }
  | { t: 'call'; id: number; seq: number; op: 'getStep'; key: string }
  | { t: 'call'; id: number; seq: number; op: 'putStep'; key: string; result: unknown }
  | { t: 'call'; id: number; seq: number; op: 'heartbeat'; progress?: unknown }
  | {
      t: 'log';
      id: number;
      level: 'debug' | 'info' | 'warn' | 'error';
      msg: string;
      obj?: Record<string, unknown>;
    }
  /** The task module is loaded and the handler is being called: its time limit starts now. */
  | { t: 'started'; id: number }
  | { t: 'done'; id: number; output: unknown }
  | { t: 'failed'; id: number; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  retryable?: boolean;
}

export function serializeError(err: unknown): SerializedError {
  const e = err as { name?: unknown; message?: unknown; code?: unknown; retryable?: unknown };
  const out: SerializedError = {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
  if (typeof e?.code === 'string') out.code = e.code;
  if (typeof e?.retryable === 'boolean') out.retryable = e.retryable;
  return out;
}

export function deserializeError(s: SerializedError): Error & { code?: string; retryable?: boolean } {
  const err = new Error(s.message) as Error & { code?: string; retryable?: boolean };
  err.name = s.name;
  if (s.code !== undefined) err.code = s.code;
  if (s.retryable !== undefined) err.retryable = s.retryable;
  return err;
}
