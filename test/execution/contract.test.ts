/**
 * The published contract is what runs. A task whose code says `inline`, 5 s and 3 attempts, and
 * whose published contract says `process`, `egress: none`, 100 ms and 1 attempt, runs in a process
 * of its own, cannot open a socket, and times out at 100 ms; the worker names every field where the
 * code and the contract differ when it starts. The store is not the subject: SQLite only.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { Admission } from '../../src/control/admission.js';
import { parseContract, registryRow } from '../../src/control/contract.js';
import { canEnforceNoEgress } from '../../src/execution/runtimes/process-runtime.js';
import type { Worker } from '../../src/execution/worker.js';
import { keyIdOf } from '../../src/util/ed25519.js';
import { backends } from '../helpers/backends.js';
import { startWorker, TENANT, task, waitForState } from './helpers.js';

const sqlite = backends().find((b) => b.dialect === 'sqlite');
assert.ok(sqlite);

describe('the contract wins over the code', () => {
  test('code inline/5 s/3 attempts, contract process/egress none/100 ms/1 attempt: the contract runs', async (ctx) => {
    const check = canEnforceNoEgress();
    if (!check.enforced) {
      ctx.skip(`egress 'none' cannot be enforced on this machine: ${check.why}`);
      return;
    }
    const t = await (sqlite as NonNullable<typeof sqlite>).create();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key = {
      privateKey,
      publicKey,
      keyId: keyIdOf(publicKey),
      publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
    const lines: string[] = [];
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk, _enc, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    let worker: Worker | undefined;
    try {
      const def = await task('exec.contract.probe');
      assert.equal(def.runtime, 'inline', 'the code says inline');
      // The published contract, as `config publish` writes it.
      await t.store.registry.putTaskType(
        registryRow({
          name: def.name,
          version: def.version,
          inputSchema: def.inputJsonSchema,
          contract: parseContract(
            {
              runtime: 'process',
              egress: 'none',
              timeoutMs: 100,
              maxAttempts: 1,
              queue: 'contract-q',
              leaseMs: 4000,
              backoff: { baseMs: 7, maxMs: 70 },
              maxClassification: 'public',
            },
            'test',
          ),
          compensable: false,
          source: 'config',
        }),
      );
      worker = await startWorker(t.store, [def], {
        authority: { publicKeyPem: key.publicPem, deploymentId: 'dep' },
        logger,
      });
      const drift = lines.map((l) => JSON.parse(l) as { msg: string; drift?: string[] }).find((l) => l.drift);
      assert.ok(drift, `a drift warning at start: ${lines.join('')}`);
      for (const field of ['runtime', 'egress', 'timeoutMs', 'maxAttempts']) {
        assert.ok(
          drift.drift?.some((d) => d.startsWith(`${field} `)),
          `${field} named: ${JSON.stringify(drift.drift)}`,
        );
      }
      assert.match(drift.msg, /this worker follows the contract/);

      const admission = new Admission(t.store, { key, deploymentId: 'dep' });
      const [r] = await admission.submit({ tenant: TENANT, keyId: 'k', roles: ['submitter'] }, [
        { task: def.name, input: { host: '127.0.0.1', port } },
      ]);
      assert.ok(r);
      assert.equal(r.job.maxAttempts, 1, 'the job takes the contract, not the code');
      assert.deepEqual(
        [r.job.queue, r.job.leaseMs, r.job.backoff, r.job.classification],
        ['contract-q', 4000, { baseMs: 7, maxMs: 70 }, 'public'],
        "the job's queue, lease, backoff and classification are the contract's (and the worker claims from that queue)",
      );
      const done = await waitForState(t.store, r.job.id, ['succeeded', 'dead']);
      assert.equal(done.state, 'dead', JSON.stringify(done));
      assert.equal(done.error?.code, 'timeout');
      assert.match(done.error?.message ?? '', /\(100 ms\)/);
      const [probe] = await t.store.listSteps(r.job.id);
      const seen = probe?.result as { pid: number; connected: boolean; error: string | null };
      assert.notEqual(seen.pid, process.pid, 'it ran in a process of its own');
      assert.equal(seen.connected, false, 'it could not open a socket');
      assert.equal(seen.error, 'ENETUNREACH');
      assert.equal(connections, 0, 'nothing reached the server');
    } finally {
      await worker?.stop({ graceMs: 2000 });
      await new Promise((resolve) => server.close(resolve));
      await t.cleanup();
    }
  });
});
