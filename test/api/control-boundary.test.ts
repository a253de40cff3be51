/**
 * The tenant boundary around the control plane (DESIGN §4), beyond the status codes of the matrix:
 *
 * - a forged config report — another tenant's worker key, a key without the worker role, a system
 *   worker key that is not the worker's own, a worker that recorded no key — is a 403 naming why,
 *   changes nothing (a forged NACK does not hold back `promote`, a forged ACK does not hide a NACK),
 *   and is recorded as `security.report_refused` without any secret; the worker's own key, and an
 *   in-process report, still work; a worker started with a control key records it on its row;
 * - another tenant's key reads none of the deployment: fleet, snapshot, versions, health details,
 *   and its recovery report counts its own jobs only, without the config history.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { z } from 'zod';
import { inProcessSource } from '../../src/cli/control-setup.js';
import { startWorker } from '../../src/cli/runtime.js';
import { SYSTEM_TENANT } from '../../src/ledger/registry.js';
import type { OutboxEvent } from '../../src/ledger/types.js';
import { defineTask } from '../../src/sdk/index.js';
import { backends } from '../helpers/backends.js';
import { assertProblem, call } from './api-fixture.js';
import { createMatrixFixture, type MatrixFixture, OTHER, TENANT } from './rbac-fixture.js';

const idle = defineTask({ name: 'boundary.idle', input: z.object({}), run: async () => ({}) });

for (const backend of backends()) {
  describe(`the control plane's tenant boundary on ${backend.dialect}`, () => {
    let fx: MatrixFixture;
    before(async () => {
      fx = await createMatrixFixture(backend);
    });
    after(() => fx?.close());

    const sys = () => fx.keys[SYSTEM_TENANT];
    const report = (workerId: string, key: string, body: Record<string, unknown>) =>
      call(fx.app, { url: `/v1/workers/${workerId}/config-report`, key, body });
    const fleetRow = async (id: string) => (await fx.store.listWorkers()).find((w) => w.id === id);
    const refusals = async (workerId: string): Promise<OutboxEvent[]> =>
      (await fx.store.readEvents(0, 10_000)).filter(
        (e) => e.type === 'security.report_refused' && e.data.workerId === workerId,
      );

    it("a forged NACK of the canary is refused and recorded, and does not hold back promote; the worker's own NACK does", async () => {
      const workerId = await fx.worker(sys().worker.id);
      await fx.canary();
      const canary = (await fx.store.configs.rollout()).canary?.version;
      assert.ok(canary);
      const nack = { version: canary, status: 'nack', reason: 'forged: bad_signature' };

      const forged = await report(workerId, fx.keys[TENANT].worker.key, nack);
      const p = assertProblem(forged, 403, 'forbidden');
      assert.match(
        p.detail,
        new RegExp(`system tenant '${SYSTEM_TENANT}'; this key belongs to tenant '${TENANT}'`),
      );
      assert.equal(
        (await fleetRow(workerId))?.config.nackVersion,
        undefined,
        'the forged NACK changed nothing',
      );

      const [event, ...more] = await refusals(workerId);
      assert.equal(more.length, 0);
      assert.equal(event?.tenant, SYSTEM_TENANT);
      assert.deepEqual(event?.data, {
        workerId,
        keyId: fx.keys[TENANT].worker.id,
        tenant: TENANT,
        roles: ['worker'],
        reason: 'not_the_system_tenant',
        status: 'nack',
        version: canary,
        workerKeyId: sys().worker.id,
      });
      assert.doesNotMatch(JSON.stringify(event), new RegExp(fx.keys[TENANT].worker.key.slice(20)));

      // The forged NACK held nothing back.
      const promoted = await call(fx.app, {
        method: 'POST',
        url: '/v1/config/promote',
        key: sys().admin.key,
      });
      assert.equal(promoted.statusCode, 200, promoted.body);

      // The worker's own key: its NACK of the next canary is taken, and promote is refused because of it.
      await fx.canary();
      const next = (await fx.store.configs.rollout()).canary?.version;
      const own = await report(workerId, sys().worker.key, { ...nack, version: next });
      assert.equal(own.statusCode, 204, own.body);
      assert.equal((await fleetRow(workerId))?.config.nackVersion, next);
      const refused = await call(fx.app, { method: 'POST', url: '/v1/config/promote', key: sys().admin.key });
      assert.match(
        assertProblem(refused, 409, 'config_conflict').detail,
        new RegExp(`refused by ${workerId}`),
      );
      const aborted = await call(fx.app, { method: 'POST', url: '/v1/config/abort', key: sys().admin.key });
      assert.equal(aborted.statusCode, 200, aborted.body);
    });

    it("a forged ACK (a system worker key that is not the worker's, or an admin key) cannot hide a NACK", async () => {
      const workerId = await fx.worker(sys().worker.id);
      assert.equal(
        (await report(workerId, sys().worker.key, { version: 7, status: 'nack' })).statusCode,
        204,
      );
      const ack = { version: 7, status: 'ack' };
      const byOther = assertProblem(await report(workerId, fx.otherWorkerKey.key, ack), 403, 'forbidden');
      assert.match(
        byOther.detail,
        /registered with another key .*accepted only with the key it registered with/,
      );
      const byAdmin = assertProblem(await report(workerId, sys().admin.key, ack), 403, 'forbidden');
      assert.match(byAdmin.detail, /only a worker reports its config.*this key's roles are admin/);
      const row = await fleetRow(workerId);
      assert.deepEqual([row?.config.appliedVersion, row?.config.nackVersion], [undefined, 7]);
      assert.deepEqual(
        (await refusals(workerId)).map((e) => [e.data.reason, e.data.keyId]),
        [
          ['not_the_workers_key', fx.otherWorkerKey.id],
          ['not_a_worker_key', sys().admin.id],
        ],
      );
    });

    it('a worker that recorded no key, or none registered, takes no report over the API; in process it reports as before', async () => {
      const workerId = await fx.worker(null);
      const p = assertProblem(
        await report(workerId, sys().worker.key, { version: 1, status: 'ack' }),
        403,
        'forbidden',
      );
      assert.match(p.detail, /registered without a control key/);
      const ghost = assertProblem(
        await report('ghost', sys().worker.key, { version: 1, status: 'ack' }),
        403,
        'forbidden',
      );
      assert.match(ghost.detail, /no worker of that id is registered/);
      assert.equal((await refusals('ghost'))[0]?.data.reason, 'unknown_worker');
      await inProcessSource(fx.config, () => workerId, []).report({ version: 1, status: 'ack' });
      assert.equal((await fleetRow(workerId))?.config.appliedVersion, 1);
    });

    it('a worker started with a control key records its id, and its reports with that key are taken', async () => {
      const w = await startWorker({
        store: fx.store,
        tasks: [idle],
        concurrency: 1,
        logger: pino({ level: 'silent' }),
        tuning: { workerId: `boundary-${backend.dialect}` },
        authority: 'unverified',
      });
      const started = await startWorker({
        store: fx.store,
        tasks: [idle],
        concurrency: 1,
        logger: pino({ level: 'silent' }),
        tuning: { workerId: `boundary-keyed-${backend.dialect}` },
        config: {
          source: (id) => inProcessSource(fx.config, id, []),
          keyId: sys().worker.id,
          publicKeyPem: fx.config.key.publicPem,
          deploymentId: fx.config.deploymentId,
        },
      });
      try {
        assert.equal((await fleetRow(w.worker.id))?.meta?.keyId, undefined);
        assert.equal((await fleetRow(started.worker.id))?.meta?.keyId, sys().worker.id);
        const res = await report(started.worker.id, sys().worker.key, { version: 1, status: 'ack' });
        assert.equal(res.statusCode, 204, res.body);
      } finally {
        await w.stop(100);
        await started.stop(100);
      }
    });

    it("another tenant's key reads neither the fleet, nor config, nor versions; the refusal names the system tenant", async () => {
      for (const url of ['/v1/workers', '/v1/config', '/v1/config/versions', '/v1/config/versions/1']) {
        const p = assertProblem(
          await call(fx.app, { url, key: fx.keys[TENANT].admin.key }),
          403,
          'forbidden',
        );
        assert.match(p.detail, /deployment-wide: only keys of the system tenant 'default' may use it/, url);
        assert.match(p.detail, new RegExp(`belongs to tenant '${TENANT}'`), url);
      }
    });

    it("a tenant's recovery report counts its own jobs, without config changes; the system's has both", async () => {
      const since = new Date(Date.now() - 1000).toISOString();
      await fx.job(TENANT);
      await fx.job(TENANT);
      await fx.job(OTHER);
      await call(fx.app, { url: '/v1/config', key: sys().admin.key, body: { document: {} } });
      const get = (key: string) => call(fx.app, { url: `/v1/recovery?since=${since}`, key });
      const mine = (await get(fx.keys[TENANT].auditor.key)).json() as Record<string, unknown>;
      assert.equal(mine.tenant, TENANT);
      assert.equal(mine.accepted, 2);
      assert.equal('configChanges' in mine, false);
      const all = (await get(sys().auditor.key)).json() as Record<string, unknown>;
      assert.equal('tenant' in all, false);
      assert.ok(Number(all.accepted) >= 3);
      assert.ok((all.configChanges as { type: string }[]).some((c) => c.type === 'config.published'));
    });

    it("a tenant's health shows each section's status only; the system's the details", async () => {
      const get = async (key: string) =>
        (await call(fx.app, { url: '/v1/health', key })).json() as {
          sections: Record<string, Record<string, unknown>>;
        };
      const mine = await get(fx.keys[TENANT].worker.key);
      for (const [name, s] of Object.entries(mine.sections))
        assert.deepEqual(Object.keys(s), ['status'], name);
      const all = await get(sys().worker.key);
      assert.equal(all.sections.ledger?.dialect, backend.dialect);
      assert.ok(all.sections.execution?.workers, 'the fleet counts');
    });
  });
}
