import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadTasks } from '../src/cli/load-tasks.js';
import { createWorker } from '../src/execution/worker.js';
import type { Store } from '../src/ledger/store.js';
import { openBenchStore } from './stores.js';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    jobs: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '20' },
    rate: { type: 'string', default: '100' },
    'latency-jobs': { type: 'string', default: '1000' },
  },
});
const jobs = Number(args.jobs);
const concurrency = Number(args.concurrency);
const rate = Number(args.rate);
const latencyJobs = Number(args['latency-jobs']);
const backends = args.backend === 'all' ? ['sqlite', 'postgres'] : [String(args.backend)];
const TASKS = fileURLToPath(new URL('./fixtures/bench-tasks.js', import.meta.url));
const silent = pino({ level: 'silent' });

/** All jobs were queued before the worker started: done when none is left open. */
async function waitDone(store: Store): Promise<void> {
  for (;;) {
    const open = await store.list({ states: ['queued', 'leased', 'running'] }, { limit: 1 });
    if (open.jobs.length === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function throughput(backend: string, runtime: string): Promise<number> {
  const { store, cleanup } = await openBenchStore(backend);
  try {
    const tasks = await loadTasks(TASKS);
    const task = `bench.noop.${runtime}`;
    for (let i = 0; i < jobs; i += 1000) {
      const n = Math.min(1000, jobs - i);
      await store.submitMany(Array.from({ length: n }, () => ({ tenant: 'bench', task, input: {} })));
    }
    const worker = createWorker({
      store,
      tasks: tasks.filter((t) => t.name === task),
      concurrency,
      logger: silent,
      authority: 'unverified',
    });
    // The clock includes starting the thread or process pool: a cold start is part of what users see.
    const t0 = performance.now();
    await worker.start();
    await waitDone(store);
    const rateOut = jobs / ((performance.now() - t0) / 1000);
    await worker.stop({ graceMs: 5000 });
    return rateOut;
  } finally {
    await cleanup();
  }
}

async function latency(backend: string): Promise<{ p50: number; p99: number; max: number }> {
  const { store, cleanup } = await openBenchStore(backend);
  try {
    const tasks = await loadTasks(TASKS);
    const starts = new Map<number, number>();
    const probe = tasks.find((t) => t.name === 'bench.probe');
    if (!probe) throw new Error('bench.probe missing');
    // The probe records when its handler starts, in this process (inline runtime).
    const task = {
      ...probe,
      run: (input: unknown) => void starts.set((input as { i: number }).i, performance.now()),
    };
    const worker = createWorker({
      store,
      tasks: [task],
      concurrency: 10,
      logger: silent,
      pollIntervalMs: 1000,
      authority: 'unverified',
    });
    await worker.start();
    const submitted = new Map<number, number>();
    const interval = 1000 / rate;
    const t0 = performance.now();
    for (let i = 0; i < latencyJobs; i++) {
      const due = t0 + i * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      submitted.set(i, performance.now());
      await store.submit({ tenant: 'bench', task: 'bench.probe', input: { i } });
    }
    while (starts.size < latencyJobs) await new Promise((r) => setTimeout(r, 20));
    await worker.stop({ graceMs: 5000 });
    const lat = [...submitted].map(([i, s]) => (starts.get(i) ?? Number.NaN) - s).sort((a, b) => a - b);
    const at = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? Number.NaN;
    return { p50: at(0.5), p99: at(0.99), max: lat[lat.length - 1] ?? Number.NaN };
  } finally {
    await cleanup();
  }
}

const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
console.log('# runtime benchmark');
console.log(
  `settings: jobs=${jobs} concurrency=${concurrency} latency: rate=${rate}/s jobs=${latencyJobs} worker idle, inline; ` +
    `sqlite synchronous=full; node ${process.version}, ${cpus().length} cpus`,
);
console.log('');
console.log('| backend | runtime | no-op drain jobs/s |');
console.log('|---|---|---:|');
for (const backend of backends) {
  for (const runtime of ['inline', 'thread', 'process']) {
    console.log(`| ${backend} | ${runtime} | ${fmt(await throughput(backend, runtime))} |`);
  }
}
console.log('');
console.log('| backend | submit -> start p50 ms | p99 ms | max ms |');
console.log('|---|---:|---:|---:|');
for (const backend of backends) {
  const l = await latency(backend);
  console.log(`| ${backend} | ${l.p50.toFixed(2)} | ${l.p99.toFixed(2)} | ${l.max.toFixed(2)} |`);
}
