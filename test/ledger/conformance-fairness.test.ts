/**
 * Ledger conformance: fair claiming. Within a queue, runnable jobs are taken round-robin across
 * tenants (one per tenant per round, resuming after the tenant served last), each tenant's own jobs
 * in priority, runAt, FIFO order; one tenant's deep backlog never holds back another's few jobs.
 * Order is read from the claims themselves and from the outbox (event seq), never from timings.
 * Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Store } from '../../src/ledger/store.js';
import type { Job, SubmitInput } from '../../src/ledger/types.js';
import { backends, type TestStore } from '../helpers/backends.js';
import { allEvents, uniq } from './conformance-helpers.js';

/** Submit `n` jobs of one tenant in batches of 5,000 (the API's own bulk path). */
async function submitBulk(store: Store, n: number, job: (i: number) => SubmitInput): Promise<string[]> {
  const ids: string[] = [];
  for (let done = 0; done < n; done += 5000) {
    const batch = Array.from({ length: Math.min(5000, n - done) }, (_, k) => job(done + k));
    ids.push(...(await store.submitMany(batch)).map((r) => r.job.id));
  }
  return ids;
}

/** Tenants whose names sort in the order given (a, b, c…), unique to the test. */
function tenantsNamed(...suffixes: string[]): string[] {
  const base = uniq('tenant');
  return suffixes.map((s) => `${base}-${s}`);
}

/**
 * The model of a drain by one claimer: the picks form one rotation over the tenants (in name order,
 * each taking its turn only while it has jobs left), each tenant's jobs in priority, runAt, id order;
 * successive claims continue the rotation where the last one stopped.
 */
function rotation(jobs: Job[]): string[] {
  const lines = new Map<string, Job[]>();
  for (const job of jobs) lines.set(job.tenant, [...(lines.get(job.tenant) ?? []), job]);
  for (const line of lines.values())
    line.sort((a, b) => b.priority - a.priority || a.runAt - b.runAt || (a.id < b.id ? -1 : 1));
  const order = [...lines.keys()].sort();
  const out: string[] = [];
  for (let turn = 0; out.length < jobs.length; turn++) {
    const line = lines.get(order[turn % order.length] as string) as Job[];
    const next = line.shift();
    if (next) out.push(next.id);
  }
  return out;
}

const by = (jobs: Job[]) => jobs.map((j) => `${j.tenant.slice(-1)}${(j.input as { n: number }).n}`);

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    const submit = (tenant: string, queue: string, n: number, extra: Partial<SubmitInput> = {}) =>
      t.store.submit({ tenant, task: 'fair.task', queue, input: { n }, ...extra });

    it('takes one job per tenant per round, in tenant order, each tenant in its own claim order', async () => {
      const queue = uniq('q');
      const [a, b, c] = tenantsNamed('a', 'b', 'c') as [string, string, string];
      for (let n = 1; n <= 4; n++) await submit(a, queue, n);
      for (let n = 1; n <= 3; n++) await submit(b, queue, n);
      await submit(c, queue, 1);
      const claimed = await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 7 });
      assert.deepEqual(by(claimed), ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'b3']);
    });

    it('keeps priority, runAt and FIFO order within each tenant while alternating tenants', async () => {
      const queue = uniq('q');
      const [a, b] = tenantsNamed('a', 'b') as [string, string];
      const now = await t.store.now();
      await submit(a, queue, 1, { priority: 0 });
      await submit(a, queue, 2, { priority: 5 });
      await submit(a, queue, 3, { priority: 5, runAt: now - 60_000 }); // earlier runAt: first at its priority
      await submit(a, queue, 4, { priority: -1 });
      await submit(b, queue, 1);
      await submit(b, queue, 2);
      // A high priority in one tenant orders that tenant's jobs, never jumps another tenant's turn.
      await submit(b, queue, 3, { priority: 1000 });
      const claimed = await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 10 });
      assert.deepEqual(by(claimed), ['a3', 'b3', 'a2', 'b1', 'a1', 'b2', 'a4']);
    });

    it('resumes after the tenant served last: claims of one job rotate through the tenants', async () => {
      const queue = uniq('q');
      const [a, b, c] = tenantsNamed('a', 'b', 'c') as [string, string, string];
      for (let n = 1; n <= 3; n++) {
        await submit(a, queue, n);
        await submit(b, queue, n);
      }
      await submit(c, queue, 1);
      const order: string[] = [];
      for (let i = 0; i < 7; i++) {
        const [job] = await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 1 });
        assert.ok(job, `claim ${i + 1} found a job`);
        order.push(...by([job]));
      }
      assert.deepEqual(order, ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'b3']);
      // A tenant that arrives is served in its place in the rotation (after the last served, b).
      const [d] = tenantsNamed('d');
      await submit(d as string, queue, 1);
      await submit(a, queue, 4);
      const next = await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 2 });
      assert.deepEqual(
        next.map((j) => j.tenant),
        [d, a],
      );
    });

    it('keeps a cursor per queue', async () => {
      const [q1, q2] = [uniq('q'), uniq('q')];
      const [a, b] = tenantsNamed('a', 'b') as [string, string];
      for (const q of [q1, q2])
        for (let n = 1; n <= 2; n++) for (const tenant of [a, b]) await submit(tenant, q, n);
      const one = async (q: string) =>
        by(await t.store.claim({ workerId: uniq('w'), queues: [q], limit: 1 }))[0];
      assert.equal(await one(q1), 'a1');
      assert.equal(await one(q1), 'b1');
      assert.equal(await one(q2), 'a1', 'the second queue starts its own rotation');
      assert.equal(await one(q1), 'a2');
      assert.equal(await one(q2), 'b1');
    });

    it('gives no turn to a tenant with nothing runnable for this claimer', async () => {
      const queue = uniq('q');
      const [a, b, c, d] = tenantsNamed('a', 'b', 'c', 'd') as [string, string, string, string];
      const now = await t.store.now();
      await submit(a, queue, 1, { runAt: now + 3_600_000 }); // not yet
      await submit(b, queue, 1, { task: 'other.task' }); // a task this claimer does not run
      await submit(c, queue, 1, { classification: 'restricted' }); // above its clearance
      for (let n = 1; n <= 3; n++) await submit(d, queue, n);
      const claimed = await t.store.claim({
        workerId: uniq('w'),
        queues: [queue],
        limit: 10,
        tasks: ['fair.task'],
      });
      assert.deepEqual(by(claimed), ['d1', 'd2', 'd3']);
    });

    it('drains any mix of tenants, priorities and claim sizes as one rotation (model-based)', async () => {
      const tenantJobs = fc.array(fc.integer({ min: -2, max: 2 }), { maxLength: 6 }); // priorities
      await fc.assert(
        fc.asyncProperty(
          fc.array(tenantJobs, { minLength: 1, maxLength: 4 }),
          fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 8 }),
          async (tenants, sizes) => {
            const queue = uniq('q');
            const names = tenantsNamed(...tenants.map((_, i) => String.fromCharCode(97 + i)));
            const submitted: Job[] = [];
            for (let round = 0; round < 6; round++) {
              for (const [i, priorities] of tenants.entries()) {
                const priority = priorities[round];
                if (priority === undefined) continue;
                submitted.push((await submit(names[i] as string, queue, round, { priority })).job);
              }
            }
            const claimed: string[] = [];
            for (let k = 0; claimed.length < submitted.length; k++) {
              const limit = sizes[k % sizes.length] as number;
              const batch = await t.store.claim({ workerId: uniq('w'), queues: [queue], limit });
              assert.equal(batch.length, Math.min(limit, submitted.length - claimed.length));
              claimed.push(...batch.map((j) => j.id));
            }
            assert.deepEqual(claimed, rotation(submitted));
          },
        ),
        { numRuns: backend.dialect === 'sqlite' ? 40 : 20 },
      );
    });

    it("serves a tenant's 100 jobs before 10% of another tenant's 100,000-job backlog is drained", async () => {
      const queue = uniq('q');
      const [big, small] = tenantsNamed('a', 'b') as [string, string];
      const job = (tenant: string) => (i: number) => ({ tenant, task: 'fair.task', queue, input: { i } });
      const backlog = await submitBulk(t.store, 100_000, job(big));
      const fromSeq = await t.store.outboxHead();
      const few = new Set(await submitBulk(t.store, 100, job(small)));
      const workerId = uniq('w');
      // Claim in batches and finish the work as it comes, until every job of the small tenant ran.
      let left = few.size;
      for (let claims = 0; left > 0; claims++) {
        assert.ok(claims < 2000, 'the small tenant was served within 2,000 claims');
        const batch = await t.store.claim({ workerId, queues: [queue], limit: 10, start: {} });
        assert.ok(batch.length > 0, 'work is left, so a claim finds some');
        left -= batch.filter((j) => few.has(j.id)).length;
        await t.store.complete(batch.map((j) => ({ jobId: j.id, fence: j.fence })));
      }
      // The ledger's own record: the leases in seq order.
      const leases = (await allEvents(t.store, fromSeq)).filter((e) => e.type === 'job.leased');
      const lastSmall = leases.findLastIndex((e) => e.tenant === small);
      const bigBefore = leases.slice(0, lastSmall).filter((e) => e.tenant === big).length;
      assert.equal(leases.filter((e) => e.tenant === small).length, 100);
      assert.ok(
        bigBefore < backlog.length / 10,
        `${bigBefore} of the big tenant's jobs were leased before the small tenant's last one`,
      );
      // Round-robin: while both had work, the two alternated, so the big one got about as many.
      assert.ok(bigBefore <= 100, `the big tenant took ${bigBefore} turns for the small tenant's 100`);
    });
  });
}
