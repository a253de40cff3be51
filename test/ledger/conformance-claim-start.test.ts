/**
 * Ledger conformance: a claim that also starts (`start`), as workers claim only what they start at
 * once — one write, the same two transitions and events as claim then start.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends, type TestStore } from '../helpers/backends.js';

for (const backend of backends()) {
  describe(`claim with start (${backend.dialect})`, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    it('returns running jobs with a fence, writes job.leased then job.running carrying the context', async () => {
      const { job } = await t.store.submit({ tenant: 't', task: 'cs.task', queue: 'cs', input: { n: 1 } });
      const [claimed] = await t.store.claim({
        workerId: 'w-cs',
        queues: ['cs'],
        limit: 5,
        start: { configVersion: 7, cachedAuthority: true },
      });
      assert.ok(claimed);
      assert.equal(claimed.id, job.id);
      assert.equal(claimed.state, 'running');
      assert.equal(claimed.reason, 'started');
      assert.equal(claimed.fence, 1);
      assert.equal(claimed.attempt, 1);
      const events = (await t.store.readEvents(0, 100)).filter((e) => e.jobId === job.id);
      assert.deepEqual(
        events.map((e) => e.type),
        ['job.queued', 'job.leased', 'job.running'],
      );
      const running = events[2];
      assert.equal(running?.data.configVersion, 7);
      assert.equal(running?.data.cachedAuthority, true);
      assert.equal(running?.data.from, 'leased');
      // The owner completes it as usual; a second start is refused (it is not leased).
      const [again] = await t.store.start([{ jobId: job.id, fence: claimed.fence }]);
      assert.equal(again?.ok, false);
      const [done] = await t.store.complete([{ jobId: job.id, fence: claimed.fence, output: 'ok' }]);
      assert.equal(done?.ok, true);
    });

    it('refuses a bad start context before writing anything', async () => {
      await t.store.submit({ tenant: 't', task: 'cs.task', queue: 'cs2', input: null });
      await assert.rejects(
        t.store.claim({ workerId: 'w-cs', queues: ['cs2'], limit: 1, start: { configVersion: -1 } }),
        (err: Error & { code?: string }) =>
          err.code === 'invalid_argument' && /start\.context\.configVersion/.test(err.message),
      );
      const queued = await t.store.list({ queue: 'cs2', states: ['queued'] });
      assert.equal(queued.jobs.length, 1, 'still queued');
    });
  });
}
