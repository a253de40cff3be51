/**
 * Shared pieces of the execution-plane tests: the compiled fixture module, a quiet worker, submitting
 * a job the way admission would (the task's contract fills in queue, lease, attempts and backoff),
 * waiting for states, and a Store proxy that lets a test make operations fail.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { loadTasks } from '../../src/cli/load-tasks.js';
import type { TaskDefinition } from '../../src/execution/task.js';
import { createWorker, type Worker, type WorkerOptions } from '../../src/execution/worker.js';
import type { Store } from '../../src/ledger/store.js';
import type { Job, SubmitInput } from '../../src/ledger/types.js';
import type { JobState } from '../../src/lifecycle/lifecycle.js';

/** The compiled fixture module (this file runs as dist/test/execution/helpers.js). */
export const FIXTURES = fileURLToPath(new URL('./fixtures/tasks.js', import.meta.url));

export const TENANT = 'acme';

let cached: TaskDefinition[] | undefined;
/** Every fixture task, loaded like `--tasks` does (so `module` is set). */
export async function fixtureTasks(): Promise<TaskDefinition[]> {
  cached ??= await loadTasks(FIXTURES);
  return cached;
}

export async function task(name: string): Promise<TaskDefinition> {
  const t = (await fixtureTasks()).find((d) => d.name === name);
  assert.ok(t, `no fixture task ${name}`);
  return t;
}

/** Fixture tasks by name (all of them when no names are given). */
export async function tasks(...names: string[]): Promise<TaskDefinition[]> {
  return names.length === 0 ? fixtureTasks() : Promise.all(names.map(task));
}

export const silent = pino({ level: 'silent' });

/** A started worker with test-friendly intervals; stop it in the test's cleanup. */
export async function startWorker(
  store: Store,
  taskList: TaskDefinition[],
  options: Partial<WorkerOptions> = {},
): Promise<Worker> {
  const worker = createWorker({
    store,
    tasks: taskList,
    logger: silent,
    pollIntervalMs: 50,
    reapIntervalMs: 100,
    livenessIntervalMs: 200,
    authority: 'unverified',
    ...options,
  });
  await worker.start();
  return worker;
}

/** Submit a job of `def` as admission would: the contract supplies queue, lease, attempts and backoff. */
export async function submit(
  store: Store,
  def: TaskDefinition,
  input: unknown,
  extra: Partial<SubmitInput> = {},
): Promise<Job> {
  const { job } = await store.submit({
    tenant: TENANT,
    task: def.name,
    taskVersion: def.version,
    queue: def.queue,
    input,
    maxAttempts: def.maxAttempts,
    backoff: def.backoff,
    leaseMs: def.leaseMs,
    classification: def.maxClassification,
    ...extra,
  });
  return job;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `probe` until it returns a value that is not undefined; fail after `timeoutMs`. */
export async function eventually<T>(
  what: string | (() => string),
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
  everyMs = 25,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      assert.fail(
        `${typeof what === 'string' ? what : what()}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`,
      );
    await sleep(everyMs);
  }
}

/** The job once it is in one of `states`. */
export function waitForState(
  store: Store,
  jobId: string,
  states: JobState | JobState[],
  timeoutMs = 15_000,
): Promise<Job> {
  const want = Array.isArray(states) ? states : [states];
  let seen: JobState | undefined;
  return eventually(
    () => `job ${jobId} to reach ${want.join('|')} (last seen ${seen})`,
    async () => {
      const job = await store.get(jobId);
      seen = job?.state;
      return job && want.includes(job.state) ? job : undefined;
    },
    timeoutMs,
  );
}

/** Outbox event types of one job, in order. */
export async function eventTypes(store: Store, jobId: string): Promise<string[]> {
  const out: string[] = [];
  let after = 0;
  for (;;) {
    const page = await store.readEvents(after, 500);
    if (page.length === 0) return out;
    for (const e of page) if (e.jobId === jobId) out.push(e.type);
    after = page[page.length - 1]?.seq ?? after;
  }
}

/**
 * `store` with some methods replaced (the rest bound to the real store): the worker under test
 * sees a store that fails, or hands out less work, while the test keeps using the real one.
 */
export function overrideStore(store: Store, overrides: Partial<Record<keyof Store, unknown>>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof Store];
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
