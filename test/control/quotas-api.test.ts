/**
 * Tenant quotas at the API, as the published config sets them, on every backend. Two control
 * replicas (two API apps, each on its own store connection to the same ledger) share one token
 * bucket: a tenant at ten times its submitPerSecond gets 429 with Retry-After and a body naming the
 * quota and its use, whichever replica it asks; another tenant is never refused. maxQueued refuses
 * the submission that would pass it (429); maxPayloadBytes refuses a larger input (413). Nothing
 * refused is written.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server.js';
import { ensureControlIdentity, ensureInitialConfig } from '../../src/cli/control-setup.js';
import { createApiKey } from '../../src/control/api-keys.js';
import type { Store } from '../../src/ledger/store.js';
import { ANY, call } from '../api/api-fixture.js';
import { backends, type TestStore, tempDir } from '../helpers/backends.js';

const QUOTAS = {
  acme: { submitPerSecond: 2 },
  queuey: { maxQueued: 3 },
  small: { maxPayloadBytes: 20 },
};

for (const backend of backends()) {
  describe(`quotas through the API on ${backend.dialect}`, () => {
    const tmp = tempDir('bulkhead-quotas-');
    let t: TestStore;
    let second: Store;
    const apps: FastifyInstance[] = [];
    const keys: Record<string, string> = {};

    before(async () => {
      t = await backend.create();
      second = await t.reopen();
      const identity = ensureControlIdentity(join(tmp.dir, 'keys'));
      const config = identity.service(t.store);
      await ensureInitialConfig(config, t.store);
      await t.store.registry.putTaskType(ANY);
      for (const tenant of ['acme', 'globex', 'queuey', 'small']) {
        await t.store.registry.createTenant(tenant);
        keys[tenant] = (await createApiKey(t.store.registry, { tenant, roles: ['submitter'] })).key;
      }
      await config.publish({ document: { quotas: QUOTAS }, by: 'test' });
      apps.push(await buildApi({ store: t.store, config }));
      apps.push(await buildApi({ store: second, config: identity.service(second) }));
    });

    after(async () => {
      for (const app of apps) await app.close();
      await second?.close();
      await t.cleanup();
      tmp.remove();
    });

    const submit = (i: number, tenant: string, input: unknown = {}) =>
      call(apps[i % 2] as FastifyInstance, {
        url: '/v1/jobs',
        key: keys[tenant] ?? null,
        body: { task: ANY.name, input },
      });

    it('a tenant at ten times its rate gets 429 with Retry-After from either replica; another tenant none', async () => {
      const started = Date.now();
      const answers = [];
      // 20 submissions as fast as they go, alternating between the replicas: far over 2 per second.
      for (let i = 0; i < 20; i++) answers.push(await submit(i, 'acme'));
      const elapsedS = (Date.now() - started) / 1000;
      const accepted = answers.filter((r) => r.statusCode === 201).length;
      const refused = answers.filter((r) => r.statusCode === 429);
      assert.equal(accepted + refused.length, 20, answers.map((r) => r.statusCode).join(','));
      // One bucket for both replicas: its burst (2) plus what refilled meanwhile, never twice that.
      assert.ok(accepted <= 2 + Math.ceil(elapsedS * 2) + 1, `${accepted} accepted in ${elapsedS}s`);
      assert.ok(refused.length >= 10, `${refused.length} refused`);
      const [first] = refused;
      assert.ok(first);
      const retryAfter = Number(first.headers['retry-after']);
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1,
        `Retry-After ${first.headers['retry-after']}`,
      );
      const body = first.json() as Record<string, unknown>;
      assert.equal(first.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(body.code, 'quota_exceeded');
      assert.equal(body.quota, 'submitPerSecond');
      assert.equal(body.limit, 2);
      assert.equal(body.requested, 1);
      assert.equal(typeof body.current, 'number');
      assert.ok(Number(body.retryAfterMs) > 0);
      assert.match(String(body.detail), /tenant 'acme' is at its submitPerSecond quota \(2 per second\)/);
      const listed = await call(apps[0] as FastifyInstance, {
        url: '/v1/jobs?limit=500',
        key: keys.acme ?? null,
      });
      assert.equal(
        (listed.json() as { jobs: unknown[] }).jobs.length,
        accepted,
        'nothing refused was written',
      );

      for (let i = 0; i < 20; i++)
        assert.equal((await submit(i, 'globex')).statusCode, 201, 'globex has no quota');
    });

    it('maxQueued refuses the submission that would pass it, naming the use', async () => {
      for (let i = 0; i < 3; i++) assert.equal((await submit(i, 'queuey')).statusCode, 201);
      const over = await submit(3, 'queuey');
      assert.equal(over.statusCode, 429, over.body);
      const body = over.json() as Record<string, unknown>;
      assert.deepEqual(
        [body.code, body.quota, body.limit, body.current],
        ['quota_exceeded', 'maxQueued', 3, 3],
      );
      assert.ok(Number(over.headers['retry-after']) >= 1);
    });

    it('maxPayloadBytes refuses a larger input with 413, naming its size', async () => {
      assert.equal((await submit(0, 'small', { a: 1 })).statusCode, 201);
      const big = await submit(1, 'small', { text: 'more than twenty bytes of input' });
      assert.equal(big.statusCode, 413, big.body);
      const body = big.json() as Record<string, unknown>;
      assert.deepEqual(
        [body.code, body.quota, body.limit],
        ['payload_quota_exceeded', 'maxPayloadBytes', 20],
      );
      assert.equal(body.size, JSON.stringify({ text: 'more than twenty bytes of input' }).length);
      assert.match(String(body.detail), /at most 20 \(quotas\.small\.maxPayloadBytes\)/);
    });
  });
}
