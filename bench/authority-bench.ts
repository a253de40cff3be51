/**
 * What signing and verifying authority records cost, side by side in one run:
 * 1. admission: single submissions (sequential, awaited) and batches of 1,000 through `Admission`
 *    with a signing key vs without one;
 * 2. the worker's check: `verifyAuthority` per record, and the gate's kept verdict;
 * 3. drain through the real worker (inline no-op jobs, all signed): verifying vs `unverified`.
 * Rounds alternate off/on so drift on a busy machine hits both; the median of the rounds is printed.
 *
 *   npm run bench:authority -- [--backend sqlite|postgres|all] [--single 2000] [--batch 20000]
 *                              [--drain 10000] [--concurrency 50] [--rounds 3]
 *
 * PostgreSQL: BULKHEAD_BENCH_PG_URL (admin URL; a throwaway database per run), default
 * postgres://postgres@127.0.0.1:5432/postgres.
 */
import { generateKeyPairSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadTasks } from '../src/cli/load-tasks.js';
import { Admission } from '../src/control/admission.js';
import type { Principal } from '../src/control/api-keys.js';
import { verifyAuthority } from '../src/control/authority.js';
import { CONTRACT_FIELDS, registryRow, type TaskContract } from '../src/control/contract.js';
import type { SigningKey } from '../src/control/signing-keys.js';
import { AuthorityGate } from '../src/execution/authority-gate.js';
import { createWorker } from '../src/execution/worker.js';
import type { Store } from '../src/ledger/store.js';
import { keyIdOf } from '../src/util/ed25519.js';
import { openBenchStore } from './stores.js';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    single: { type: 'string', default: '2000' },
    batch: { type: 'string', default: '20000' },
    drain: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
  },
});
const SINGLE = Number(args.single);
const BATCH = Number(args.batch);
const DRAIN = Number(args.drain);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);
const backends = args.backend === 'all' ? ['sqlite', 'postgres'] : [String(args.backend)];
const TASKS = fileURLToPath(new URL('./fixtures/bench-tasks.js', import.meta.url));
const TASK = 'bench.noop.inline';
const DEPLOYMENT = 'bench';
const silent = pino({ level: 'silent' });
const principal: Principal = { tenant: 'bench', keyId: 'bench', roles: ['submitter'] };

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const key: SigningKey = {
  privateKey,
  publicKey,
  keyId: keyIdOf(publicKey),
  publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const rate = (n: number, t0: number) => n / ((performance.now() - t0) / 1000);

async function withStore<T>(backend: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const { store, cleanup } = await openBenchStore(backend);
  try {
    const task = (await loadTasks(TASKS)).find((t) => t.name === TASK);
    if (!task) throw new Error(`${TASK} missing`);
    const contract = Object.fromEntries(
      CONTRACT_FIELDS.filter((k) => task[k] !== undefined).map((k) => [k, task[k]]),
    ) as TaskContract;
    await store.registry.putTaskType(
      registryRow({
        name: task.name,
        version: task.version,
        inputSchema: task.inputJsonSchema,
        contract,
        compensable: false,
        source: 'bench',
      }),
    );
    return await fn(store);
  } finally {
    await cleanup();
  }
}

async function single(backend: string, signed: boolean): Promise<number> {
  return withStore(backend, async (store) => {
    const admission = new Admission(store, signed ? { key, deploymentId: DEPLOYMENT } : undefined);
    const t0 = performance.now();
    for (let i = 0; i < SINGLE; i++) await admission.submit(principal, [{ task: TASK, input: {} }]);
    return rate(SINGLE, t0);
  });
}

async function batch(backend: string, signed: boolean): Promise<number> {
  return withStore(backend, async (store) => {
    const admission = new Admission(store, signed ? { key, deploymentId: DEPLOYMENT } : undefined);
    const t0 = performance.now();
    for (let i = 0; i < BATCH; i += 1000) {
      const n = Math.min(1000, BATCH - i);
      await admission.submit(
        principal,
        Array.from({ length: n }, () => ({ task: TASK, input: {} })),
      );
    }
    return rate(BATCH, t0);
  });
}

async function drain(backend: string, verify: boolean): Promise<number> {
  return withStore(backend, async (store) => {
    const admission = new Admission(store, { key, deploymentId: DEPLOYMENT });
    for (let i = 0; i < DRAIN; i += 1000) {
      const n = Math.min(1000, DRAIN - i);
      await admission.submit(
        principal,
        Array.from({ length: n }, () => ({ task: TASK, input: {} })),
      );
    }
    const tasks = (await loadTasks(TASKS)).filter((t) => t.name === TASK);
    const worker = createWorker({
      store,
      tasks,
      concurrency: CONCURRENCY,
      logger: silent,
      registerTaskTypes: false,
      authority: verify ? { publicKeyPem: key.publicPem, deploymentId: DEPLOYMENT } : 'unverified',
    });
    const t0 = performance.now();
    await worker.start();
    for (;;) {
      const open = await store.list({ states: ['queued', 'leased', 'running', 'blocked'] }, { limit: 1 });
      if (open.jobs.length === 0) break;
      if (open.jobs[0]?.state === 'blocked')
        throw new Error(`a job was refused: ${open.jobs[0].error?.message}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const out = rate(DRAIN, t0);
    await worker.stop({ graceMs: 5000 });
    return out;
  });
}

async function verifyCost(): Promise<{ verifyUs: number; cachedUs: number }> {
  return withStore('sqlite', async (store) => {
    const admission = new Admission(store, { key, deploymentId: DEPLOYMENT });
    const [r] = await admission.submit(principal, [{ task: TASK, input: { n: 1 } }]);
    if (!r) throw new Error('no job');
    const trust = { publicKey, keyId: key.keyId, deploymentId: DEPLOYMENT };
    const n = 20_000;
    let t0 = performance.now();
    for (let i = 0; i < n; i++) if (!verifyAuthority(r.job, trust).ok) throw new Error('does not verify');
    const verifyUs = ((performance.now() - t0) * 1000) / n;
    const gate = new AuthorityGate({ publicKeyPem: key.publicPem, deploymentId: DEPLOYMENT });
    t0 = performance.now();
    for (let i = 0; i < n; i++) if (!gate.check(r.job).ok) throw new Error('does not verify');
    return { verifyUs, cachedUs: ((performance.now() - t0) * 1000) / n };
  });
}

async function both(label: string, run: (on: boolean) => Promise<number>): Promise<void> {
  const off: number[] = [];
  const on: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    off.push(await run(false));
    on.push(await run(true));
  }
  const a = median(off);
  const b = median(on);
  console.log(
    `${label.padEnd(44)} off ${a.toFixed(0).padStart(7)}/s   on ${b.toFixed(0).padStart(7)}/s   on/off ${(b / a).toFixed(2)}`,
  );
}

console.log(
  `authority bench: single ${SINGLE}, batch ${BATCH} (1,000 per call), drain ${DRAIN} at concurrency ${CONCURRENCY}, ${ROUNDS} rounds (median), Node ${process.version}; SQLite synchronous=FULL (WAL), PostgreSQL synchronous_commit as the server sets it`,
);
const cost = await verifyCost();
console.log(
  `verifyAuthority: ${cost.verifyUs.toFixed(1)} µs per record; the gate's kept verdict: ${cost.cachedUs.toFixed(1)} µs`,
);
for (const backend of backends) {
  await both(`${backend}: single submit through admission (signing)`, (on) => single(backend, on));
  await both(`${backend}: batch submit through admission (signing)`, (on) => batch(backend, on));
  await both(`${backend}: drain through the worker (verifying)`, (on) => drain(backend, on));
}
