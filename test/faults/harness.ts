/**
 * The crash battery's harness: real `bulkhead worker` processes over one ledger, a batch of
 * `fault.effects` jobs, and faults injected at seeded random moments while the jobs run:
 *
 * - `kill`: SIGKILL a random ready worker, then start it again (a new process);
 * - `stop`: SIGSTOP a random ready worker past its lease, then SIGCONT it (the others keep going);
 * - `pg-restart`: stop the PostgreSQL server (`pg_ctl -m fast`) and start it again; the workers are
 *   never restarted.
 *
 * Fault i of F fires once i/F of the jobs (less a short tail) are terminal, after a seeded random
 * delay, so faults are spread over the run and land while jobs are in flight, the last one too (it
 * has about two rounds of work after it; the recovery time is measured from it). Then every job
 * must end, and the checker reads back the ledger and the external store. The seed is printed; the same
 * seed replays the same victims, delays and job shapes (real processes' timing never repeats
 * exactly).
 */
import { openStore } from '../../src/ledger/open.js';
import type { Store } from '../../src/ledger/store.js';
import type { SubmitInput } from '../../src/ledger/types.js';
import type { JobState } from '../../src/lifecycle/lifecycle.js';
import { type CheckReport, check, type Pause } from './checker.js';
import { prepareExternal } from './external.js';
import { BACKOFF, MAX_ATTEMPTS, TASK_NAME } from './fixtures/effect-tasks.js';
import { Fleet, type Slot, sleep } from './fleet.js';

export { killAll } from './fleet.js';

export const TENANT = 'faults';

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const randomSeed = () => Math.floor(Math.random() * 2 ** 31);

export type Fault =
  | { kind: 'kill'; count: number }
  | { kind: 'stop'; count: number; pauseMs: number }
  | { kind: 'pg-restart'; count: number; server: { stop(): Promise<void>; start(): Promise<void> } };

export interface ScenarioOptions {
  backend: 'sqlite' | 'postgres';
  /** The ledger: a SQLite file path or a postgres:// URL. */
  ledgerUrl: string;
  /** The external store the task writes to: a SQLite file path or a postgres:// URL. */
  effectsUrl: string;
  /** Worker logs go here (one file per worker slot). */
  logDir: string;
  workers: number;
  concurrency: number;
  jobs: number;
  /** Most jobs not yet terminal at once: the rest are submitted as earlier ones end. @default all */
  backlog?: number;
  steps: number;
  /** Upper bound of each random sleep in a job (two per step). */
  maxSleepMs: number;
  leaseMs: number;
  fault: Fault;
  seed: number;
  /** Most random delay before a fault once its turn has come. @default 300 */
  jitterMs?: number;
  /** Bound for all jobs to end after the last fault. @default 120000 */
  drainTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface Figures {
  backend: string;
  fault: string;
  seed: number;
  workers: number;
  /** Faults injected. */
  faults: number;
  /** Of those, faults whose victim (pg-restart: any worker) held at least one lease at that moment. */
  faultsMidJob: number;
  /** Leases the victims held when hit. */
  interruptedLeases: number;
  jobs: number;
  succeeded: number;
  lost: number;
  stuck: number;
  duplicates: number;
  staleAccepted: number;
  staleRejected: number;
  superseded: number;
  effectMismatches: number;
  /** Worker exits the harness did not cause. */
  crashes: number;
  /** From the end of the last fault to every job terminal. */
  recoveryMs: number;
  wallMs: number;
}

export interface ScenarioResult {
  figures: Figures;
  report: CheckReport;
  fleet: Fleet;
  /** Worker pids right after start and at the end (pg-restart: must be the same). */
  pidsAtStart: (number | undefined)[];
  pidsAtEnd: (number | undefined)[];
  /** Where the worker logs are. */
  logDir: string;
}

const NON_TERMINAL: JobState[] = ['awaiting_approval', 'queued', 'blocked', 'leased', 'running'];

/** Jobs of the tenant not yet terminal, or undefined while the store cannot answer. */
async function pending(store: Store): Promise<number | undefined> {
  try {
    let n = 0;
    let cursor: string | undefined;
    do {
      const page = await store.list(
        { tenant: TENANT, states: NON_TERMINAL },
        { limit: 500, ...(cursor !== undefined && { cursor }) },
      );
      n += page.jobs.length;
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return n;
  } catch {
    return undefined;
  }
}

/** The leases a worker holds right now (empty when the store cannot answer). */
async function leasesOf(store: Store, workerId?: string): Promise<{ jobId: string; fence: number }[]> {
  try {
    const page = await store.list({ tenant: TENANT, states: ['leased', 'running'] }, { limit: 500 });
    return page.jobs
      .filter((j) => workerId === undefined || j.workerId === workerId)
      .map((j) => ({ jobId: j.id, fence: j.fence }));
  } catch {
    return [];
  }
}

export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const log = o.log ?? (() => {});
  const rng = prng(o.seed);
  const started = Date.now();
  const external = await prepareExternal(o.effectsUrl);
  const store = await openStore(o.ledgerUrl, o.backend === 'postgres' ? { poolSize: 4 } : {});
  const fleet = new Fleet({
    storeUrl: o.ledgerUrl,
    logDir: o.logDir,
    workers: o.workers,
    concurrency: o.concurrency,
  });
  try {
    log(
      `faults: ${o.fault.kind} x${o.fault.count} on ${o.backend}, ${o.jobs} jobs, ${o.workers} workers x${o.concurrency}, seed ${o.seed}`,
    );
    fleet.start();
    await fleet.waitAllReady();
    const pidsAtStart = fleet.slots.map((s) => s.pid);
    const jobRng = prng(o.seed ^ 0x5bd1e995);
    const input = (): SubmitInput => ({
      tenant: TENANT,
      task: TASK_NAME,
      input: {
        effects: o.effectsUrl,
        steps: o.steps,
        maxSleepMs: o.maxSleepMs,
        seed: Math.floor(jobRng() * 2 ** 31),
      },
      leaseMs: o.leaseMs,
      maxAttempts: MAX_ATTEMPTS,
      backoff: BACKOFF,
    });
    const jobIds: string[] = [];
    // Keep at most `backlog` jobs pending; returns how many are pending (undefined: store down).
    const feed = async (): Promise<number | undefined> => {
      const left = await pending(store);
      const room = Math.min(o.jobs - jobIds.length, (o.backlog ?? o.jobs) - (left ?? o.jobs));
      if (left === undefined || room <= 0) return left;
      try {
        const batch = Array.from({ length: room }, input);
        for (const r of await store.submitMany(batch)) jobIds.push(r.job.id);
        return left + room;
      } catch {
        return undefined; // the store is down (pg-restart): try again on the next poll
      }
    };
    await feed();
    const terminal = (left: number | undefined) => (left === undefined ? -1 : jobIds.length - left);

    let faults = 0;
    let faultsMidJob = 0;
    let interruptedLeases = 0;
    let lastFaultAt = Date.now();
    const pauses: Pause[] = [];
    const until = (deadline: number, what: string) => {
      if (Date.now() > deadline) throw new Error(`faults: ${what} took too long (seed ${o.seed})`);
    };
    // The last fault comes with about two rounds of work left: it lands on jobs in flight, and the
    // recovery time measured from it is mostly the cost of the fault, not of a long queue.
    const tail = Math.min(Math.floor(o.jobs / 10), 2 * o.workers * o.concurrency);
    const phaseDeadline = Date.now() + (o.drainTimeoutMs ?? 120_000) + o.fault.count * 5_000;
    for (let i = 1; i <= o.fault.count; i++) {
      const threshold = Math.floor(((o.jobs - tail) * i) / o.fault.count);
      for (;;) {
        if (terminal(await feed()) >= threshold) break;
        if (o.fault.kind === 'kill') fleet.respawnCrashed();
        until(phaseDeadline, `reaching ${threshold} terminal jobs before fault ${i}`);
        await sleep(25);
      }
      await sleep(Math.floor(rng() * (o.jitterMs ?? 300)));
      const pick = rng();
      if (o.fault.kind === 'pg-restart') {
        const held = await leasesOf(store);
        if (held.length > 0) faultsMidJob++;
        interruptedLeases += held.length;
        await o.fault.server.stop();
        await sleep(200 + Math.floor(rng() * 1300));
        await o.fault.server.start();
      } else {
        let ready: Slot[] = fleet.readySlots();
        while (ready.length === 0 || (o.fault.kind === 'stop' && ready.length < 2)) {
          until(phaseDeadline, `waiting for a ready worker before fault ${i}`);
          if (o.fault.kind === 'kill') fleet.respawnCrashed();
          await sleep(10);
          ready = fleet.readySlots();
        }
        const victim = ready[Math.floor(pick * ready.length)] as Slot;
        const held = await leasesOf(store, victim.id);
        if (held.length > 0) faultsMidJob++;
        interruptedLeases += held.length;
        if (o.fault.kind === 'kill') {
          await victim.kill();
          victim.spawn();
        } else {
          const stoppedAt = Date.now();
          victim.pause();
          await sleep(o.fault.pauseMs);
          const resumedAt = Date.now();
          victim.resume();
          pauses.push({ pid: victim.pid as number, stoppedAt, resumedAt, held });
        }
      }
      faults++;
      lastFaultAt = Date.now();
    }

    // Recovery: the rest of the jobs are submitted, and every job must end. (A worker that exits
    // by itself is recorded as a crash, which fails the run; kill runs start it again.)
    const drainDeadline = lastFaultAt + (o.drainTimeoutMs ?? 120_000);
    let recoveredAt: number | undefined;
    while (Date.now() < drainDeadline) {
      const left = await feed();
      if (left === 0 && jobIds.length === o.jobs) {
        recoveredAt = Date.now();
        break;
      }
      if (o.fault.kind === 'kill') fleet.respawnCrashed();
      await sleep(25);
    }
    const pidsAtEnd = fleet.slots.map((s) => (s.alive ? s.pid : undefined));
    await fleet.stopAll();

    const report = await check({
      store,
      tenant: TENANT,
      jobIds,
      steps: o.steps,
      audit: await external.readAudit(),
      effects: await external.readEffects(),
      pauses,
    });
    const figures: Figures = {
      backend: o.backend,
      fault: o.fault.kind,
      seed: o.seed,
      workers: o.workers,
      faults,
      faultsMidJob,
      interruptedLeases,
      jobs: report.jobs,
      succeeded: report.succeeded,
      lost: report.lost,
      stuck: report.stuck,
      duplicates: report.duplicates,
      staleAccepted: report.staleAccepted,
      staleRejected: report.staleRejected,
      superseded: report.superseded,
      effectMismatches: report.effectMismatches,
      crashes: fleet.crashes.length,
      recoveryMs: recoveredAt === undefined ? Number.NaN : recoveredAt - lastFaultAt,
      wallMs: Date.now() - started,
    };
    log(`faults: ${JSON.stringify(figures)}`);
    return { figures, report, fleet, pidsAtStart, pidsAtEnd, logDir: o.logDir };
  } finally {
    await fleet.stopAll();
    await store.close().catch(() => undefined);
    await external.close().catch(() => undefined);
  }
}

/** Everything that must hold after any fault scenario, as one readable failure message (or none). */
export function problems(r: ScenarioResult): string[] {
  const f = r.figures;
  const out: string[] = [];
  if (f.lost !== 0) out.push(`${f.lost} jobs lost (${f.stuck} stuck on an expired lease)`);
  if (f.succeeded !== f.jobs) out.push(`${f.jobs - f.succeeded} of ${f.jobs} jobs did not succeed`);
  if (f.duplicates !== 0) out.push(`${f.duplicates} duplicate commits`);
  if (f.staleAccepted !== 0) out.push(`${f.staleAccepted} stale writes accepted`);
  if (f.effectMismatches !== 0)
    out.push(`${f.effectMismatches} committed steps whose external value differs`);
  if (r.report.missingSteps !== 0) out.push(`${r.report.missingSteps} steps missing`);
  if (r.report.illegalWalks !== 0) out.push(`${r.report.illegalWalks} illegal lifecycle walks`);
  if (f.crashes !== 0) {
    for (const c of r.fleet.crashes)
      out.push(`worker ${c.id} (pid ${c.pid}) exited by itself: ${c.code ?? c.signal}\n${c.logTail}`);
  }
  if (Number.isNaN(f.recoveryMs)) out.push('not every job was terminal within the drain bound');
  if (out.length === 0 && r.report.violations.length === 0) return [];
  return [
    `seed ${f.seed} (${f.backend}, ${f.fault}); worker logs in ${r.logDir}`,
    ...out,
    ...r.report.violations.slice(0, 20),
  ];
}
