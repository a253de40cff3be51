/**
 * Authority records are verified where the work runs. Jobs are written straight into the ledger
 * (as an attacker with database access, or a bug, would): with no record, a forged one, an altered
 * one, or a genuine record of another job, tenant, task version, deployment or deadline. None of
 * them runs, on the inline, thread and process runtimes alike: each goes `blocked`
 * (invalid_authority) with the reason named, its attempt given back; an admin's readmission signs
 * it anew and it runs. A job whose signed deadline passes before it starts ends `expired`. Runs
 * against every backend.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureControlIdentity } from '../../src/cli/control-setup.js';
import { controlHealth } from '../../src/cli/runtime.js';
import { Admission } from '../../src/control/admission.js';
import type { Principal } from '../../src/control/api-keys.js';
import { type AuthorityClaims, inputDigest, signAuthority } from '../../src/control/authority.js';
import { contractOfRow } from '../../src/control/contract.js';
import type { SigningKey } from '../../src/control/signing-keys.js';
import type { TaskDefinition } from '../../src/execution/task.js';
import type { Worker } from '../../src/execution/worker.js';
import { newJobId } from '../../src/ledger/ids.js';
import type { Store } from '../../src/ledger/store.js';
import type { Job } from '../../src/ledger/types.js';
import { keyIdOf } from '../../src/util/ed25519.js';
import { backends, type TestStore, tempDir } from '../helpers/backends.js';
import { startWorker, TENANT, task, waitForState } from './helpers.js';

const RUNTIMES = ['inline', 'thread', 'process'] as const;
const DEPLOYMENT = 'dep-authority-test';
const INPUT = { text: 'authority', n: 3 };

function signingKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), publicPem };
}

const admin: Principal = { tenant: TENANT, keyId: 'test-admin', roles: ['admin'] };

for (const backend of backends()) {
  describe(`authority records on ${backend.dialect}`, () => {
    let t: TestStore;
    let store: Store;
    let worker: Worker | undefined;
    const key = signingKey();
    const admission = () => new Admission(store, { key, deploymentId: DEPLOYMENT });

    before(async () => {
      t = await backend.create();
      store = t.store;
      worker = await startWorker(store, await Promise.all(RUNTIMES.map((rt) => task(`exec.compute.${rt}`))), {
        authority: { publicKeyPem: key.publicPem, deploymentId: DEPLOYMENT },
        concurrency: 4,
      });
    });
    after(async () => {
      await worker?.stop({ graceMs: 2000 });
      await t.cleanup();
    });

    /** The claims admission would sign for job `id` of `def` (before any tampering). */
    const claimsFor = async (id: string, def: TaskDefinition, deadline: number | null = null) => {
      const row = await store.registry.getTaskType(def.name, def.version);
      assert.ok(row, `${def.name} is registered`);
      const scope = contractOfRow(row);
      return {
        jobId: id,
        deploymentId: DEPLOYMENT,
        tenant: TENANT,
        principal: 'test-admin',
        roles: ['admin'],
        task: def.name,
        taskVersion: def.version,
        inputDigest: inputDigest(INPUT),
        idempotencyKey: null,
        configVersion: null,
        configDigest: null,
        scope,
        deadline,
        requestedDeadline: deadline,
        approvalsRequired: 0,
        freshControl: false,
        admittedAt: Date.now(),
        approvals: [],
      } satisfies Omit<AuthorityClaims, 'type' | 'keyId'>;
    };

    /** Write a job straight into the ledger, with whatever authority it is given. */
    const write = async (
      def: TaskDefinition,
      id: string,
      authority: unknown,
      deadline?: number,
    ): Promise<Job> => {
      const { job } = await store.submit({
        id,
        tenant: TENANT,
        task: def.name,
        taskVersion: def.version,
        queue: def.queue,
        input: INPUT,
        maxAttempts: def.maxAttempts,
        backoff: def.backoff,
        leaseMs: def.leaseMs,
        classification: def.maxClassification,
        ...(authority !== undefined && { authority }),
        ...(deadline !== undefined && { deadline }),
      });
      return job;
    };

    /** Each way a record can be wrong: the record to write for job `id`, and what the refusal says. */
    const cases: {
      name: string;
      record: (id: string, def: TaskDefinition) => Promise<unknown>;
      why: RegExp;
      deadline?: number;
    }[] = [
      { name: 'no record', record: async () => undefined, why: /has no authority record/ },
      {
        name: 'signed by an unknown key',
        record: async (id, def) => signAuthority(signingKey(), await claimsFor(id, def)),
        why: /signed by key .* not the pinned/,
      },
      {
        name: 'forged under the pinned key id',
        record: async (id, def) => ({
          ...signAuthority(signingKey(), await claimsFor(id, def)),
          keyId: key.keyId,
        }),
        why: /does not verify \(forged or altered\)/,
      },
      {
        name: 'altered after signing (timeoutMs raised)',
        record: async (id, def) => {
          const r = signAuthority(key, await claimsFor(id, def));
          return { ...r, scope: { ...r.scope, timeoutMs: 999_999 } };
        },
        why: /does not verify \(forged or altered\)/,
      },
      {
        name: "another job's genuine record",
        record: async (_id, def) => signAuthority(key, await claimsFor(newJobId(), def)),
        why: /the record is for job /,
      },
      {
        name: 'a genuine record of another tenant',
        record: async (id, def) => signAuthority(key, { ...(await claimsFor(id, def)), tenant: 'globex' }),
        why: /for tenant globex, not acme/,
      },
      {
        name: 'a genuine record of another task version',
        record: async (id, def) => signAuthority(key, { ...(await claimsFor(id, def)), taskVersion: 2 }),
        why: /is for exec\.compute\.\w+@2, not/,
      },
      {
        name: 'a genuine record of another deployment',
        record: async (id, def) =>
          signAuthority(key, { ...(await claimsFor(id, def)), deploymentId: 'elsewhere' }),
        why: /for deployment elsewhere/,
      },
      {
        name: 'a signed deadline the row does not carry',
        record: async (id, def) => signAuthority(key, await claimsFor(id, def, Date.now() + 3_600_000)),
        why: /deadline is not the signed one/,
      },
      {
        name: 'input changed after admission',
        record: async (id, def) =>
          signAuthority(key, { ...(await claimsFor(id, def)), inputDigest: inputDigest({ n: 0 }) }),
        why: /input is not the one the record covers/,
      },
    ];

    for (const rt of RUNTIMES) {
      it(`on the ${rt} runtime a job with a bad record never runs, and says why`, async () => {
        const def = await task(`exec.compute.${rt}`);
        const written = await Promise.all(
          cases.map(async (c) => {
            const id = newJobId();
            return { c, job: await write(def, id, await c.record(id, def)) };
          }),
        );
        for (const { c, job } of written) {
          const done = await waitForState(store, job.id, ['blocked', 'succeeded', 'dead']);
          assert.equal(done.state, 'blocked', `${c.name}: ${JSON.stringify(done)}`);
          assert.equal(done.reason, 'invalid_authority', c.name);
          assert.equal(done.error?.code, 'invalid_authority', c.name);
          assert.match(done.error?.message ?? '', c.why, c.name);
          assert.equal(done.output, undefined, `${c.name}: the handler never ran`);
          assert.equal(done.attempt, 0, `${c.name}: the refused attempt is given back`);
        }
        assert.ok((worker?.health().refused ?? 0) >= cases.length, 'the worker counts what it refused');
        // A genuine record, from admission itself, runs.
        const [ok] = await admission().submit(admin, [{ task: def.name, input: INPUT }]);
        assert.ok(ok);
        const ran = await waitForState(store, ok.job.id, ['succeeded', 'dead', 'blocked']);
        assert.equal(ran.state, 'succeeded', JSON.stringify(ran));
        // Readmission signs anew: the refused job runs, its history says so.
        const refused = written[0]?.job;
        assert.ok(refused);
        const readmitted = await admission().readmit(admin, refused.id, { tenant: TENANT });
        assert.equal(readmitted.state, 'queued');
        assert.equal(readmitted.reason, 'readmitted');
        const after = await waitForState(store, refused.id, ['succeeded', 'dead', 'blocked']);
        assert.equal(after.state, 'succeeded', JSON.stringify(after));
      });
    }

    it('the control section of health counts the jobs blocked for invalid authority', async () => {
      const tmp = tempDir('bulkhead-authority-health-');
      try {
        const config = ensureControlIdentity(join(tmp.dir, 'keys')).service(store);
        const section = await controlHealth(store, config)();
        assert.equal(section.status, 'degraded');
        assert.ok(Number(section.invalidAuthority) >= cases.length, JSON.stringify(section));
        assert.match(String(section.reason), /blocked for invalid_authority: readmit or cancel them/);
      } finally {
        tmp.remove();
      }
    });

    it('a job whose signed deadline passes before it starts ends expired, never run', async () => {
      await worker?.stop({ graceMs: 2000 });
      worker = undefined;
      const def = await task('exec.compute.inline');
      const [r] = await admission().submit(admin, [
        { task: def.name, input: INPUT, deadline: Date.now() + 150 },
      ]);
      assert.ok(r);
      await new Promise((resolve) => setTimeout(resolve, 300)); // no worker: nothing can start it
      await store.reap();
      const job = await store.get(r.job.id);
      assert.ok(job);
      assert.equal(job.state, 'expired');
      assert.equal(job.output, undefined);
      assert.equal((job.authority as AuthorityClaims).deadline, r.job.deadline);
    });
  });
}
