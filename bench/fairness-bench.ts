/**
 * Fairness benchmark: one tenant's deep backlog and another tenant's few jobs in the same queue.
 * Tenant A gets `--backlog` jobs (100,000), then tenant B gets `--few` (100); one claimer then
 * claims `--batch` at a time (claim with start, then complete) until every B job has run and at
 * least `--claims` claims were made. Reported: how many A jobs were leased before B's last one (read
 * from the outbox, in seq order), the claims made, and over the first `--claims` claims the claim's
 * latency (p50, p99) and the claim+complete rate, with 100,000 jobs queued behind. Uses
 * only the `Store` API, so the same file runs against an older ledger for a before/after figure.
 *
 *   npm run bench:fairness -- [--backend sqlite|postgres|all] [--backlog 100000] [--few 100] [--batch 10] [--claims 500]
 *
 * PostgreSQL: BULKHEAD_BENCH_PG_URL (an admin URL; a throwaway database is created and dropped),
 * default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import type { Store } from '../src/ledger/store.js';
import { openBenchStore } from './stores.js';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    backlog: { type: 'string', default: '100000' },
    few: { type: 'string', default: '100' },
    batch: { type: 'string', default: '10' },
    claims: { type: 'string', default: '500' },
  },
});
const backlog = Number(args.backlog);
const few = Number(args.few);
const batch = Number(args.batch);
const timedClaims = Number(args.claims);
const wanted = args.backend === 'all' ? ['sqlite', 'postgres'] : [String(args.backend)];

async function submit(store: Store, tenant: string, n: number): Promise<Set<string>> {
  const ids = new Set<string>();
  for (let done = 0; done < n; done += 5000) {
    const size = Math.min(5000, n - done);
    const results = await store.submitMany(
      Array.from({ length: size }, (_, k) => ({
        tenant,
        task: 'bench.noop',
        queue: 'fair',
        input: { i: done + k },
      })),
    );
    for (const r of results) ids.add(r.job.id);
  }
  return ids;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
const fmt = (x: number, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits });

console.log('# fairness benchmark');
console.log(
  `settings: tenant A ${fmt(backlog)} queued, then tenant B ${fmt(few)}; claim batch ${batch} (claim+start, then complete); ` +
    `node ${process.version}, ${cpus().length} cpus`,
);
console.log('');
console.log(
  `| backend | A leased before B's last | claims made | claim p50 ms (first ${timedClaims}) | claim p99 ms | claim+complete jobs/s (first ${timedClaims}) |`,
);
console.log('|---|---:|---:|---:|---:|---:|');
for (const backend of wanted) {
  const { store, cleanup } = await openBenchStore(backend);
  try {
    await submit(store, 'bench-a', backlog);
    const fromSeq = await store.outboxHead();
    const small = await submit(store, 'bench-b', few);
    let left = small.size;
    const latencies: number[] = [];
    let jobs = 0;
    let timed = { jobs: 0, seconds: 1 };
    const t0 = performance.now();
    let claims = 0;
    while (left > 0 || claims < timedClaims) {
      const c0 = performance.now();
      const claimed = await store.claim({ workerId: 'bench', queues: ['fair'], limit: batch, start: {} });
      if (claims++ < timedClaims) {
        latencies.push(performance.now() - c0);
        if (claims === timedClaims)
          timed = { jobs: jobs + claimed.length, seconds: (performance.now() - t0) / 1000 };
      }
      if (claimed.length === 0) throw new Error('the queue ran dry before tenant B was served');
      left -= claimed.filter((j) => small.has(j.id)).length;
      await store.complete(claimed.map((j) => ({ jobId: j.id, fence: j.fence })));
      jobs += claimed.length;
    }
    // A's leases up to B's last one, in the outbox's order.
    let aLeased = 0;
    let aBefore = 0;
    for (let after = fromSeq; ; ) {
      const page = await store.readEvents(after, 1000);
      if (page.length === 0) break;
      for (const e of page) {
        if (e.type !== 'job.leased') continue;
        if (e.tenant === 'bench-a') aLeased++;
        else aBefore = aLeased;
      }
      after = page[page.length - 1]?.seq ?? after;
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `| ${backend} | ${fmt(aBefore)} | ${fmt(claims)} | ${fmt(pct(latencies, 0.5), 2)} | ${fmt(pct(latencies, 0.99), 2)} | ${fmt(timed.jobs / timed.seconds)} |`,
    );
  } finally {
    await cleanup();
  }
}
