/** The drain both benchmarks measure: submit N no-op jobs, then claim -> start -> complete them. */
import type { Store } from '../src/ledger/store.js';
import type { SubmitInput } from '../src/ledger/types.js';

export const job = (i: number, queue: string): SubmitInput => ({
  tenant: 'bench',
  task: 'bench.noop',
  queue,
  input: { i },
});

export async function submitAll(store: Store, n: number, queue: string, submitBatch = 1000): Promise<number> {
  const t0 = performance.now();
  for (let done = 0; done < n; done += submitBatch) {
    const size = Math.min(submitBatch, n - done);
    await store.submitMany(Array.from({ length: size }, (_, k) => job(done + k, queue)));
  }
  return n / ((performance.now() - t0) / 1000);
}

/**
 * Drain `n` jobs of `queue` with `concurrency` claim loops running at once, each claiming up to
 * `batch` jobs, starting them and completing them (no-op handlers). Concurrent loops share commits
 * (group commit) the way a worker's concurrent slots do.
 */
export async function drain(
  store: Store,
  n: number,
  queue: string,
  concurrency: number,
  batch = 20,
): Promise<number> {
  const t0 = performance.now();
  let done = 0;
  let taken = 0;
  const loop = async () => {
    // Exactly n jobs: the deep backlog (lower priority) stays queued behind them.
    while (taken < n) {
      const limit = Math.min(batch, n - taken);
      taken += limit;
      const claimed = await store.claim({
        workerId: 'bench-worker',
        queues: [queue],
        limit,
        tasks: ['bench.noop'],
      });
      taken -= limit - claimed.length;
      if (claimed.length === 0) return;
      const leases = claimed.map((j) => ({ jobId: j.id, fence: j.fence }));
      const started = await store.start(leases);
      const completed = await store.complete(leases.map((l) => ({ ...l, output: null })));
      for (const o of [...started, ...completed]) if (!o.ok) throw o.error;
      done += claimed.length;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  if (done !== n) throw new Error(`drained ${done} jobs, expected ${n}`);
  return n / ((performance.now() - t0) / 1000);
}
