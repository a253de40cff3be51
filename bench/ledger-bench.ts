/**
 * Ledger benchmark: submit N jobs in batches, then drain them with batched claim -> start -> complete
 * from one process, with `concurrency` claim loops of `batch` jobs each, on each backend. Then the
 * same drain with a deep queue (1,000,000 jobs by default) to show the claim does not slow down as
 * the queue deepens. Every transition writes its outbox event, as in production.
 *
 *   npm run bench:ledger -- [--backend sqlite|postgres|all] [--jobs 20000] [--deep 1000000]
 *                           [--concurrency 10,50] [--batch 20] [--submit-batch 1000] [--synchronous full|normal]
 *
 * PostgreSQL: BULKHEAD_BENCH_PG_URL (an admin URL; a throwaway database is created and dropped),
 * default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../src/ledger/open.js';
import type { Store } from '../src/ledger/store.js';
import { createPgDatabase } from '../test/helpers/pg-scratch.js';
import { drain as drainWith, job, submitAll as submitAllWith } from './drain.js';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    jobs: { type: 'string', default: '20000' },
    deep: { type: 'string', default: '1000000' },
    concurrency: { type: 'string', default: '10,50' },
    batch: { type: 'string', default: '20' },
    'submit-batch': { type: 'string', default: '1000' },
    synchronous: { type: 'string', default: 'full' },
  },
});

const jobs = Number(args.jobs);
const deep = Number(args.deep);
const concurrencies = String(args.concurrency).split(',').map(Number);
const submitBatch = Number(args['submit-batch']);
const batch = Number(args.batch);
const synchronous = args.synchronous === 'normal' ? 'normal' : 'full';
const pgAdmin = process.env.BULKHEAD_BENCH_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const backendsWanted = args.backend === 'all' ? ['sqlite', 'postgres'] : [String(args.backend)];

interface Opened {
  store: Store;
  cleanup(): Promise<void>;
}

async function open(backend: string): Promise<Opened> {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'bulkhead-bench-'));
    const store = await openStore(join(dir, 'ledger.db'), { synchronous });
    return {
      store,
      async cleanup() {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const db = await createPgDatabase(pgAdmin);
  const store = await openStore(db.url, { poolSize: 10 });
  return {
    store,
    async cleanup() {
      await store.close();
      await db.drop();
    },
  };
}

const submitAll = (store: Store, n: number, queue: string) => submitAllWith(store, n, queue, submitBatch);
const drain = (store: Store, n: number, queue: string, concurrency: number) =>
  drainWith(store, n, queue, concurrency, batch);

const fmt = (x: number) => Math.round(x).toLocaleString('en-US');

console.log('# ledger benchmark');
console.log(
  `settings: jobs=${jobs} deep=${deep} concurrency=${concurrencies.join(',')} (claim loops) claim-batch=${batch} submit-batch=${submitBatch} ` +
    `sqlite synchronous=${synchronous} (WAL) postgres synchronous_commit=on pool=10; outbox events on; ` +
    `node ${process.version}, ${cpus().length} cpus`,
);
console.log('');
console.log(
  '| backend | queued before drain | concurrency | submit jobs/s | drain claim+start+complete jobs/s |',
);
console.log('|---|---:|---:|---:|---:|');

for (const backend of backendsWanted) {
  for (const depth of deep > 0 ? [0, deep] : [0]) {
    const { store, cleanup } = await open(backend);
    try {
      // The deep backlog sits in the same queue at a lower priority, behind the jobs being drained,
      // so every claim has to find its rows at the head of a deep index.
      if (depth > 0) {
        for (let done = 0; done < depth; done += 5000) {
          const size = Math.min(5000, depth - done);
          await store.submitMany(
            Array.from({ length: size }, (_, k) => ({ ...job(done + k, 'main'), priority: -1 })),
          );
        }
      }
      for (const c of concurrencies) {
        const submitRate = await submitAll(store, jobs, 'main');
        const drainRate = await drain(store, jobs, 'main', c);
        console.log(`| ${backend} | ${fmt(depth + jobs)} | ${c} | ${fmt(submitRate)} | ${fmt(drainRate)} |`);
        (globalThis as { gc?: () => void }).gc?.();
      }
    } finally {
      await cleanup();
    }
  }
}
