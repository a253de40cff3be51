/**
 * Ledger conformance: `maxQueued` at admission and the token buckets behind `submitPerSecond`. Over
 * the limit a submission fails with `QuotaExceededError` carrying the numbers and writes nothing;
 * concurrent submitters on separate connections never take a tenant over it; an idempotent replay
 * is never refused. A bucket kept in the ledger is shared by every store instance on the database.
 * Runs against every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { QuotaExceededError } from '../../src/ledger/errors.js';
import type { SubmitInput } from '../../src/ledger/types.js';
import { backends, type TestStore } from '../helpers/backends.js';
import { allJobs, counts, rejectsInvalid, rejectsWith, uniq } from './conformance-helpers.js';

for (const backend of backends()) {
  describe(backend.dialect, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    const job = (tenant: string, extra: Partial<SubmitInput> = {}): SubmitInput => ({
      tenant,
      task: 'quota.task',
      queue: uniq('q'),
      input: { n: 1 },
      ...extra,
    });

    describe('maxQueued', () => {
      it('refuses the submission that would go over, with the numbers, and writes nothing', async () => {
        const tenant = uniq('tenant');
        const quota = { maxQueued: 3 };
        for (let i = 0; i < 3; i++) await t.store.submit(job(tenant, { quota }));
        const before = await counts(t.store);
        const err = await rejectsWith(
          t.store.submit(job(tenant, { quota })),
          QuotaExceededError,
          'quota_exceeded',
        );
        assert.deepEqual(
          [err.tenant, err.quota, err.limit, err.current, err.requested, err.retryAfterMs],
          [tenant, 'maxQueued', 3, 3, 1, undefined],
        );
        assert.match(err.message, /maxQueued/);
        assert.match(err.message, /3 jobs pending/);
        assert.deepEqual(await counts(t.store), before, 'nothing was written');
        // Another tenant, and a call without the limit, are not refused.
        assert.equal((await t.store.submit(job(uniq('tenant'), { quota }))).created, true);
        assert.equal((await t.store.submit(job(tenant))).created, true);
      });

      it('counts awaiting_approval, queued and blocked jobs; claimed and finished ones make room', async () => {
        const tenant = uniq('tenant');
        const quota = { maxQueued: 3 };
        const queue = uniq('q');
        await t.store.submit(job(tenant, { quota, requiresApproval: true }));
        await t.store.submit(job(tenant, { quota, task: 'quota.blocked' }));
        assert.equal(await t.store.block({ tasks: ['quota.blocked'], reason: 'stale_config' }), 1);
        const queued = (await t.store.submit(job(tenant, { quota, queue }))).job;
        await rejectsWith(t.store.submit(job(tenant, { quota })), QuotaExceededError, 'quota_exceeded');
        const [leased] = await t.store.claim({ workerId: uniq('w'), queues: [queue], limit: 1 });
        assert.equal(leased?.id, queued.id);
        assert.equal(
          (await t.store.submit(job(tenant, { quota }))).created,
          true,
          'a claimed job frees room',
        );
        await t.store.unblock({ reason: 'stale_config', tasks: ['quota.blocked'] });
      });

      it('checks a batch as if submitted one by one: all or none', async () => {
        const tenant = uniq('tenant');
        await t.store.submit(job(tenant));
        const before = await counts(t.store);
        const batch = Array.from({ length: 5 }, () => job(tenant, { quota: { maxQueued: 4 } }));
        const err = await rejectsWith(t.store.submitMany(batch), QuotaExceededError, 'quota_exceeded');
        assert.deepEqual([err.limit, err.current, err.requested], [4, 1, 4]);
        assert.deepEqual(await counts(t.store), before, 'nothing of the batch was written');
        // Each item is held to its own limit; items without one still count for the items after them.
        const mixed = [job(tenant), job(tenant, { quota: { maxQueued: 2 } }), job(tenant)];
        const mixedErr = await rejectsWith(t.store.submitMany(mixed), QuotaExceededError, 'quota_exceeded');
        assert.deepEqual([mixedErr.current, mixedErr.requested], [1, 2]);
        assert.equal((await t.store.submitMany(batch.slice(0, 3))).length, 3);
      });

      it('never refuses an idempotent replay, and counts a key repeated in a batch once', async () => {
        const tenant = uniq('tenant');
        const quota = { maxQueued: 2 };
        const first = await t.store.submit(job(tenant, { quota, idempotencyKey: 'k1', queue: 'qk' }));
        await t.store.submit(job(tenant, { quota, idempotencyKey: 'k2', queue: 'qk' }));
        const replay = await t.store.submit(job(tenant, { quota, idempotencyKey: 'k1', queue: 'qk' }));
        assert.equal(replay.created, false);
        assert.equal(replay.job.id, first.job.id);
        const other = uniq('tenant');
        const repeated = Array.from({ length: 3 }, () =>
          job(other, { quota, idempotencyKey: 'same', queue: 'qk' }),
        );
        const results = await t.store.submitMany([...repeated, job(other, { quota, queue: 'qk' })]);
        assert.deepEqual(
          results.map((r) => r.created),
          [true, false, false, true],
        );
      });

      it('serialises concurrent submitters on separate connections: the tenant never goes over', async () => {
        const tenant = uniq('tenant');
        const limit = 25;
        const stores = await Promise.all(Array.from({ length: 4 }, () => t.reopen({ poolSize: 4 })));
        const outcomes = await Promise.all(
          stores.flatMap((store) =>
            Array.from({ length: 15 }, () =>
              store.submit(job(tenant, { quota: { maxQueued: limit } })).then(
                () => 'created',
                (err: unknown) => {
                  assert.ok(err instanceof QuotaExceededError, `unexpected ${String(err)}`);
                  assert.equal(err.current, limit);
                  return 'refused';
                },
              ),
            ),
          ),
        );
        assert.equal(outcomes.filter((o) => o === 'created').length, limit);
        assert.equal(outcomes.filter((o) => o === 'refused').length, 60 - limit);
        assert.equal((await allJobs(t.store, { tenant })).length, limit);
      });

      it('refuses a bad limit before writing anything', async () => {
        const tenant = uniq('tenant');
        await rejectsInvalid(
          t.store.submit(job(tenant, { quota: { maxQueued: -1 } })),
          'submit.quota.maxQueued',
        );
        await rejectsInvalid(
          t.store.submitMany([job(tenant), job(tenant, { quota: { maxQueued: 0.5 } })]),
          'submitMany[1].quota.maxQueued',
        );
        assert.equal((await allJobs(t.store, { tenant })).length, 0);
      });
    });

    describe('takeTokens', () => {
      it('refuses a tenant at 10x its rate with a wait, and leaves another tenant alone', async () => {
        const [busy, quiet] = [uniq('tenant'), uniq('tenant')];
        const rate = { ratePerSecond: 5 }; // burst defaults to 5
        const t0 = await t.store.now();
        const answers = [];
        for (let i = 0; i < 50; i++) answers.push(await t.store.takeTokens({ tenant: busy, ...rate }));
        const t1 = await t.store.now();
        const granted = answers.filter((a) => a.ok).length;
        assert.deepEqual(
          answers.slice(0, 5).map((a) => a.ok),
          [true, true, true, true, true],
          'a new bucket starts full',
        );
        // The burst, plus what refilled at 5 per second while the 50 takes ran.
        assert.ok(granted <= 5 + Math.floor(((t1 - t0 + 2) * 5) / 1000), `${granted} granted`);
        for (const a of answers) {
          if (a.ok) continue;
          assert.ok(a.retryAfterMs > 0 && a.retryAfterMs <= 200, `retryAfterMs ${a.retryAfterMs}`);
          assert.equal(a.remaining, 0);
        }
        assert.ok(granted < 50);
        assert.deepEqual(await t.store.takeTokens({ tenant: quiet, ...rate }), { ok: true, remaining: 4 });
      });

      it('is one bucket for every store instance on the database', async () => {
        const tenant = uniq('tenant');
        const other = await t.reopen();
        const take = { tenant, ratePerSecond: 0.01, burst: 3 };
        assert.equal((await t.store.takeTokens({ ...take, count: 2 })).ok, true);
        assert.deepEqual(await other.takeTokens(take), { ok: true, remaining: 0 });
        const refused = await t.store.takeTokens(take);
        assert.equal(refused.ok, false);
        if (!refused.ok) assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 100_000);
        const refusedToo = await other.takeTokens(take);
        assert.equal(refusedToo.ok, false, 'the other replica sees the same empty bucket');
      });

      it('keeps buckets apart by name, takes all or none, and defaults the burst to max(1, rate)', async () => {
        const tenant = uniq('tenant');
        assert.deepEqual(await t.store.takeTokens({ tenant, ratePerSecond: 0.001 }), {
          ok: true,
          remaining: 0,
        });
        const slow = await t.store.takeTokens({ tenant, ratePerSecond: 0.001 });
        assert.equal(slow.ok, false, 'a rate below 1 per second has a burst of 1');
        assert.equal(
          (await t.store.takeTokens({ tenant, bucket: 'webhooks', ratePerSecond: 0.001 })).ok,
          true,
          'another bucket of the tenant is full',
        );
        const big = { tenant, bucket: 'big', ratePerSecond: 0.001, burst: 4 };
        assert.deepEqual(await t.store.takeTokens({ ...big, count: 3 }), { ok: true, remaining: 1 });
        const refused = await t.store.takeTokens({ ...big, count: 2 });
        assert.equal(refused.ok, false);
        assert.deepEqual(
          await t.store.takeTokens(big),
          { ok: true, remaining: 0 },
          'the refusal took nothing',
        );
      });

      it('refuses bad takes before touching the bucket', async () => {
        const tenant = uniq('tenant');
        await rejectsInvalid(t.store.takeTokens({ tenant, ratePerSecond: 0 }), 'takeTokens.ratePerSecond');
        await rejectsInvalid(
          t.store.takeTokens({ tenant, ratePerSecond: 1, burst: 0.5 }),
          'takeTokens.burst',
        );
        await rejectsInvalid(t.store.takeTokens({ tenant, ratePerSecond: 1, count: 2 }), 'takeTokens.count');
        await rejectsInvalid(
          t.store.takeTokens({ tenant, ratePerSecond: 1, bucket: '' }),
          'takeTokens.bucket',
        );
      });
    });
  });
}
