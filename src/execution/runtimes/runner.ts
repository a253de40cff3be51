/**
 * The far side of an isolated runtime: runs inside a worker thread or a child process, one attempt
 * at a time. It imports the task's module, runs the handler with a context whose ledger operations
 * are requests to the worker, and reports the outcome. It holds no store connection.
 */
import { pathToFileURL } from 'node:url';
import { parentPort } from 'node:worker_threads';
import { isTaskDefinition, type TaskContext, type TaskDefinition } from '../task.js';
import {
  type AttemptMeta,
  deserializeError,
  type FromRunner,
  serializeError,
  type ToRunner,
} from './protocol.js';
import { callCompensate } from './runtime.js';

type Send = (m: FromRunner) => void;

const send: Send = parentPort
  ? (m) => parentPort?.postMessage(m)
  : (m) => {
      process.send?.(m);
    };

const pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
const aborts = new Map<number, AbortController>();
const modules = new Map<string, Map<string, TaskDefinition>>();
let seq = 0;

function call(
  id: number,
  op: 'getStep' | 'putStep' | 'heartbeat',
  args: Record<string, unknown>,
): Promise<unknown> {
  const s = ++seq;
  return new Promise((resolve, reject) => {
    pending.set(`${id}:${s}`, { resolve, reject });
    send({ t: 'call', id, seq: s, op, ...args } as FromRunner);
  });
}

async function loadTask(module: string, name: string): Promise<TaskDefinition> {
  let tasks = modules.get(module);
  if (!tasks) {
    const mod = (await import(module.startsWith('file:') ? module : pathToFileURL(module).href)) as Record<
      string,
      unknown
    >;
    tasks = new Map();
    for (const [key, value] of Object.entries(mod)) {
      if (isTaskDefinition(value)) tasks.set(value.name, value);
      else if (key === 'default' && Array.isArray(value)) {
        for (const v of value) if (isTaskDefinition(v)) tasks.set(v.name, v);
      }
    }
    modules.set(module, tasks);
  }
  const task = tasks.get(name);
  if (!task) throw new Error(`module ${module} has no task '${name}'`);
  return task;
}

function logger(id: number, bindings: Record<string, unknown> = {}): TaskContext['logger'] {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (objOrMsg: unknown, msg?: string): void => {
      if (typeof objOrMsg === 'string') send({ t: 'log', id, level, msg: objOrMsg, obj: bindings });
      else
        send({
          t: 'log',
          id,
          level,
          msg: msg ?? '',
          obj: { ...bindings, ...(objOrMsg as Record<string, unknown>) },
        });
    };
  // The handler sees the usual logger methods; records travel to the worker's logger.
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    trace: at('debug'),
    fatal: at('error'),
    child: (b: Record<string, unknown>) => logger(id, { ...bindings, ...b }),
  } as unknown as TaskContext['logger'];
}

async function run(m: Extract<ToRunner, { t: 'run' }>): Promise<void> {
  const ac = new AbortController();
  aborts.set(m.id, ac);
  const meta: AttemptMeta = m.meta;
  try {
    const task = await loadTask(m.module, m.task);
    const input = task.parseInput(m.input);
    const ctx: TaskContext = {
      ...meta,
      signal: ac.signal,
      logger: logger(m.id),
      heartbeat: async (progress?: unknown) => {
        await call(m.id, 'heartbeat', progress === undefined ? {} : { progress });
      },
      idempotencyKey: (stepKey) => `${meta.jobId}:${stepKey}`,
      step: async <T>(key: string, fn: () => T | Promise<T>): Promise<T> => {
        const got = (await call(m.id, 'getStep', { key })) as { found: boolean; result?: unknown };
        if (got.found) return got.result as T;
        if (ac.signal.aborted) throw ac.signal.reason;
        const result = await fn();
        return (await call(m.id, 'putStep', { key, result: result === undefined ? null : result })) as T;
      },
    };
    send({ t: 'started', id: m.id });
    const output =
      m.mode === 'run' ? await task.run(input, ctx) : await callCompensate(task, input, ctx, m.steps);
    send({ t: 'done', id: m.id, output: output === undefined ? null : output });
  } catch (err) {
    send({ t: 'failed', id: m.id, error: serializeError(err) });
  } finally {
    aborts.delete(m.id);
  }
}

function onMessage(m: ToRunner): void {
  if (m.t === 'run') void run(m);
  else if (m.t === 'abort') {
    const e = new Error(m.reason);
    e.name = 'AbortError';
    aborts.get(m.id)?.abort(e);
  } else if (m.t === 'reply') {
    const key = `${m.id}:${m.seq}`;
    const p = pending.get(key);
    pending.delete(key);
    if (!p) return;
    if (m.ok) p.resolve(m.value);
    else p.reject(deserializeError(m.error));
  }
}

if (parentPort) parentPort.on('message', onMessage);
else {
  process.on('message', (m) => onMessage(m as ToRunner));
  // The worker went away: nothing this process does can be committed any more.
  process.on('disconnect', () => process.exit(0));
}
send({ t: 'ready' });
