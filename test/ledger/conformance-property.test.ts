/**
 * Ledger conformance, property-based: random sequences of owner operations with right and wrong
 * fences, checked against a model of one job. A write with a wrong fence, or one the job's state does
 * not allow, is rejected and changes nothing; an allowed one makes exactly the model's transition and
 * writes exactly its events. Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { StaleLeaseError } from '../../src/ledger/errors.js';
import type { Store } from '../../src/ledger/store.js';
import type { Outcome } from '../../src/ledger/types.js';
import { backends, type TestStore } from '../helpers/backends.js';
import { assertSameJob, eventsFor, submitJob, uniq } from './conformance-helpers.js';

type Op = 'claim' | 'start' | 'heartbeat' | 'complete' | 'fail' | 'release';

interface Model {
  state: 'queued' | 'leased' | 'running' | 'succeeded';
  fence: number;
  attempt: number;
  events: number;
}

/** What an operation with the current fence does to the model, or undefined when the state refuses it. */
function expected(op: Op, m: Model): Model | undefined {
  switch (op) {
    case 'claim':
      return m.state === 'queued'
        ? { state: 'leased', fence: m.fence + 1, attempt: m.attempt + 1, events: m.events + 1 }
        : undefined;
    case 'start':
      return m.state === 'leased' ? { ...m, state: 'running', events: m.events + 1 } : undefined;
    case 'heartbeat':
      // a lease holder may extend a lease it has not started on yet
      return m.state === 'leased' || m.state === 'running' ? m : undefined;
    case 'complete':
      return m.state === 'running' ? { ...m, state: 'succeeded', events: m.events + 1 } : undefined;
    case 'fail':
      // job.failed + job.queued; attempts are plenty, backoff is zero
      return m.state === 'running' ? { ...m, state: 'queued', events: m.events + 2 } : undefined;
    case 'release':
      return m.state === 'leased'
        ? { ...m, state: 'queued', attempt: m.attempt - 1, events: m.events + 1 }
        : undefined;
  }
}

async function ownerOp(
  store: Store,
  op: Exclude<Op, 'claim'>,
  jobId: string,
  fence: number,
): Promise<Outcome<unknown>> {
  const lease = { jobId, fence };
  let outcomes: Outcome<unknown>[];
  switch (op) {
    case 'start':
      outcomes = await store.start([lease]);
      break;
    case 'heartbeat':
      outcomes = await store.heartbeat([lease]);
      break;
    case 'complete':
      outcomes = await store.complete([{ ...lease, output: { fence } }]);
      break;
    case 'fail':
      outcomes = await store.fail([{ ...lease, error: { code: 'random', message: 'failed on purpose' } }]);
      break;
    case 'release':
      outcomes = await store.release([lease]);
      break;
  }
  assert.equal(outcomes.length, 1);
  const [outcome] = outcomes;
  assert.ok(outcome);
  assert.equal(outcome.jobId, jobId);
  return outcome;
}

const step = fc.record({
  op: fc.constantFrom<Op>('claim', 'start', 'start', 'heartbeat', 'complete', 'fail', 'fail', 'release'),
  /** The fence used, relative to the current one. */
  offset: fc.constantFrom(0, 0, 0, -1, 1, 2),
});

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    it('owner operations follow the model; wrong fences and wrong states change nothing', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 20 }), async (steps) => {
          const job = await submitJob(t.store, {
            maxAttempts: 1000,
            backoff: { baseMs: 0, maxMs: 0 },
            leaseMs: 60_000,
          });
          let model: Model = { state: 'queued', fence: 0, attempt: 0, events: 1 };
          for (const { op, offset } of steps) {
            const before = await t.store.get(job.id);
            const next = expected(op, model);
            if (op === 'claim') {
              const claimed = await t.store.claim({ workerId: uniq('w'), queues: [job.queue], limit: 1 });
              assert.equal(claimed.length, next ? 1 : 0, `claim in state ${model.state}`);
            } else {
              const fence = model.fence + offset;
              if (fence < 1) continue; // not a lease at all: validation, not fencing
              const outcome = await ownerOp(t.store, op, job.id, fence);
              const allowed = offset === 0 && next !== undefined;
              if (!allowed) {
                assert.equal(
                  outcome.ok,
                  false,
                  `${op} with fence ${fence} (current ${model.fence}) in ${model.state}`,
                );
                if (!outcome.ok && offset !== 0) assert.ok(outcome.error instanceof StaleLeaseError);
                assertSameJob(await t.store.get(job.id), before, `job after rejected ${op}`);
                assert.equal((await eventsFor(t.store, job.id)).length, model.events);
                continue;
              }
              assert.equal(outcome.ok, true, `${op} with the current fence in ${model.state}`);
            }
            if (next) model = next;
            const now = await t.store.get(job.id);
            assert.equal(now?.state, model.state, `state after ${op}`);
            assert.equal(now?.fence, model.fence, `fence after ${op}`);
            assert.equal(now?.attempt, model.attempt, `attempt after ${op}`);
            assert.equal((await eventsFor(t.store, job.id)).length, model.events, `events after ${op}`);
          }
        }),
        { numRuns: 40 },
      );
    });
  });
}
