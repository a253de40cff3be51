/**
 * The evidence store goes down for real while a worker runs `evidence: required` and `buffered`
 * work (no mocks):
 *
 * - PostgreSQL evidence: a private PostgreSQL server (`../faults/pg-instance.ts`) holds the
 *   evidence; it is stopped with `pg_ctl stop -m immediate` and started again. The ledger is on the
 *   shared test server (BULKHEAD_TEST_PG_URL), a separate failure domain.
 * - SQLite evidence: a separate process (`fixtures/hold-lock.ts`) holds the evidence file's write
 *   lock (`BEGIN EXCLUSIVE`), so every write of the shipper fails with SQLITE_BUSY after its busy
 *   timeout (100 ms: better-sqlite3 waits synchronously, so the wait stalls the whole process);
 *   killing that process brings the store back. The ledger is a SQLite file.
 *
 * For each: the normal path first (required jobs run while evidence is up). Then the store goes
 * down while the shipper is caught up. Its heartbeat is a write (`probe()`), so even with nothing to
 * ship it must record the failure in the ledger within the first 2 s (ten heartbeats; a read would
 * still succeed on a write-locked SQLite file), and within 3 s at the latest; after those 2 s one
 * required probe job is submitted, which must never start. No event-loop stall may reach 1 s while
 * the store is down. Once the ledger shows the failure and the worker's gate is closed,
 * N required and N buffered jobs are submitted one by one (within 15 s): no required job is ever
 * leased, started or finished (states polled, handler runs and the outbox checked) and all end
 * `blocked` (`evidence_unavailable`), while every buffered job succeeds. When the store is back,
 * the required jobs run by themselves and the evidence log holds every outbox event exactly once,
 * the buffered jobs' recorded late, and verifies. Last, a gap: events pruned from the outbox while
 * the shipper was stopped (the gate closes on a silent shipper too) are recorded as exactly one
 * `gap` entry covering them, and shipping resumes with the next event.
 *
 * Findings of the outage phase are collected and asserted together at the end, so one failing
 * property does not hide what the later phases show; every figure goes to `t.diagnostic`.
 *
 *   BULKHEAD_STORE_DOWN_JOBS=50   jobs of each task submitted while the store is down (default 20)
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Logger, pino } from 'pino';
import { z } from 'zod';
import type { EntryRow } from '../../src/evidence/codec.js';
import { lazyEvidenceStore } from '../../src/evidence/lazy-store.js';
import { openEvidenceStore } from '../../src/evidence/open.js';
import { EvidenceService } from '../../src/evidence/service.js';
import { EVIDENCE_CONSUMER, EvidenceShipper } from '../../src/evidence/shipper.js';
import type { EvidenceStore } from '../../src/evidence/store.js';
import { createWorker, type Worker } from '../../src/execution/worker.js';
import type { Store } from '../../src/ledger/store.js';
import type { Job, OutboxEvent } from '../../src/ledger/types.js';
import type { JobState } from '../../src/lifecycle/lifecycle.js';
import { defineTask } from '../../src/sdk/define-task.js';
import { childEnv } from '../e2e/procs.js';
import { eventually, sleep, submit } from '../execution/helpers.js';
import { findPgBin, type PgInstance, startPgInstance } from '../faults/pg-instance.js';
import { backends, type TestStore, tempDir } from '../helpers/backends.js';
import { testSigner } from '../helpers/evidence-backends.js';
import { pgAdminUrl } from '../helpers/pg-scratch.js';

const N = Number(process.env.BULKHEAD_STORE_DOWN_JOBS ?? 20);
/** The worker's `evidenceStaleMs`. */
const STALE_MS = 1500;
const HEARTBEAT_MS = 200;
/** How long the required jobs are watched (at least) while the store is down. */
const WINDOW_MS = 4000;
/** How long the shipper is watched, caught up, right after the store went down, before a probe job. */
const IDLE_PROBE_MS = 2000;
/** How long submitting the N + N jobs may take while the store is down. */
const SUBMIT_BUDGET_MS = 15_000;
/** The shipper records the store's failure in the ledger within this long of the store going down. */
const DETECT_BUDGET_MS = 3000;
/** No event-loop stall (a synchronous SQLite busy wait, say) may reach this while the store is down. */
const MAX_STALL_MS = 1000;
const QUEUE = 'ev-store-down';
const LOCKER = fileURLToPath(new URL('./fixtures/hold-lock.js', import.meta.url));
const ci = process.env.CI === 'true' || process.env.CI === '1';

// ---------------------------------------------------------------------------------------------------
// The two tasks; every handler run is noted (job id -> when it first ran)

const ran = new Map<string, number>();
const note = (jobId: string) => {
  if (!ran.has(jobId)) ran.set(jobId, Date.now());
};
const requiredTask = defineTask({
  name: 'ev.required',
  queue: QUEUE,
  evidence: 'required',
  input: z.object({ n: z.number().int() }),
  maxAttempts: 3,
  backoff: { baseMs: 50, maxMs: 500 },
  run: (input, ctx) => {
    note(ctx.jobId);
    return { n: input.n, task: 'required' };
  },
});
const bufferedTask = defineTask({
  name: 'ev.buffered',
  queue: QUEUE,
  input: z.object({ n: z.number().int() }),
  maxAttempts: 3,
  backoff: { baseMs: 50, maxMs: 500 },
  run: (input, ctx) => {
    note(ctx.jobId);
    return { n: input.n, task: 'buffered' };
  },
});

// ---------------------------------------------------------------------------------------------------
// Cleanup that runs whatever happens (also on this process's exit)

const cleanups = new Set<() => void>();
function onCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}
function cleanupAll(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort
    }
  }
}
process.on('exit', cleanupAll);
after(cleanupAll);

// ---------------------------------------------------------------------------------------------------
// Outages

interface Outage {
  label: string;
  ledger: TestStore;
  evidence: EvidenceStore & { ready: Promise<void> };
  /** Make the evidence store unavailable; resolves once it is. */
  down(): Promise<void>;
  /** Bring it back; resolves once it is. */
  up(): Promise<void>;
  /** Release everything; never throws. */
  cleanup(): Promise<void>;
}

/** A SQLite evidence file whose write lock a separate process takes (down) and loses when killed (up). */
async function sqliteOutage(): Promise<Outage> {
  const backend = backends().find((b) => b.dialect === 'sqlite');
  assert.ok(backend);
  const ledger = await backend.create();
  const tmp = tempDir('bulkhead-store-down-');
  const path = join(tmp.dir, 'evidence.db');
  const signer = testSigner();
  const evidence = lazyEvidenceStore(
    'sqlite',
    path,
    () => openEvidenceStore(path, { signer, checkpointEvery: 25 }),
    { retryMs: 200 },
  );
  let locker: ChildProcess | undefined;
  let forget: (() => void) | undefined;
  const kill = async () => {
    const child = locker;
    if (!child) return;
    locker = undefined;
    forget?.();
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill('SIGKILL');
      await gone;
    }
  };
  return {
    label: 'sqlite',
    ledger,
    evidence,
    async down() {
      assert.equal(locker, undefined, 'the store is already down');
      const child = spawn(process.execPath, [LOCKER, path], {
        env: childEnv(),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      locker = child;
      forget = onCleanup(() => child.kill('SIGKILL'));
      child.stdin?.on('error', () => undefined);
      let out = '';
      let err = '';
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        err += d;
      });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the lock fixture did not lock in 30 s: ${err}`)),
          30_000,
        );
        child.stdout?.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (out.includes('lock-fixture locked')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('close', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`the lock fixture exited (${code ?? signal}) before locking: ${err}`));
        });
      });
    },
    async up() {
      await kill();
    },
    async cleanup() {
      await kill().catch(() => undefined);
      await evidence.close().catch(() => undefined);
      await ledger.cleanup().catch(() => undefined);
      tmp.remove();
    },
  };
}

/** Evidence on a private PostgreSQL server, stopped with `-m immediate` (down) and started again (up). */
async function postgresOutage(bin: string): Promise<Outage> {
  const backend = backends().find((b) => b.dialect === 'postgres');
  assert.ok(backend, 'BULKHEAD_TEST_PG_URL is not set');
  const instance: PgInstance = await startPgInstance(bin);
  const forget = onCleanup(() => instance.destroy());
  let ledger: TestStore;
  try {
    ledger = await backend.create({ poolSize: 6 });
  } catch (err) {
    forget();
    instance.destroy();
    throw err;
  }
  const signer = testSigner();
  const evidence = lazyEvidenceStore(
    'postgres',
    instance.url,
    () => openEvidenceStore(instance.url, { signer, checkpointEvery: 25 }),
    { retryMs: 200 },
  );
  const asPostgres = typeof process.getuid === 'function' && process.getuid() === 0;
  return {
    label: `postgres (private server on port ${instance.port})`,
    ledger,
    evidence,
    down: () =>
      new Promise<void>((resolve, reject) => {
        const args = ['-D', join(instance.dir, 'data'), '-m', 'immediate', '-w', '-t', '60', 'stop'];
        const pgCtl = join(bin, 'pg_ctl');
        const argv = asPostgres ? ['runuser', '-u', 'postgres', '--', pgCtl, ...args] : [pgCtl, ...args];
        execFile(
          argv[0] as string,
          argv.slice(1),
          { cwd: instance.dir, timeout: 90_000 },
          (err, out, errOut) =>
            err
              ? reject(new Error(`${argv.join(' ')} failed: ${err.message}\n${out}\n${errOut}`))
              : resolve(),
        );
      }),
    up: () => instance.start(),
    async cleanup() {
      await evidence.close().catch(() => undefined);
      await ledger.cleanup().catch(() => undefined);
      forget();
      instance.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Reading things back

async function allEvents(store: Store, afterSeq = 0): Promise<OutboxEvent[]> {
  const out: OutboxEvent[] = [];
  let after = afterSeq;
  for (;;) {
    const page = await store.readEvents(after, 1000);
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1]?.seq ?? after;
  }
}

async function allRows(evidence: EvidenceStore): Promise<EntryRow[]> {
  const out: EntryRow[] = [];
  let next = 1;
  for (;;) {
    const rows = await evidence.readRows(next, 5000);
    out.push(...rows);
    const last = rows[rows.length - 1];
    if (!last || rows.length < 5000) return out;
    next = Number(last.seq) + 1;
  }
}

/** Until the evidence store has recorded (or gapped) everything the outbox holds now. */
async function caughtUp(ledger: Store, evidence: EvidenceStore, timeoutMs = 20_000): Promise<number> {
  const head = await ledger.outboxHead();
  await eventually(
    `the shipper to catch up with outbox seq ${head}`,
    async () => ((await evidence.head()).shippedThrough >= head ? true : undefined),
    timeoutMs,
    20,
  );
  return head;
}

async function statesOf(ledger: Store, jobs: Job[]): Promise<Map<string, Job>> {
  const out = new Map<string, Job>();
  for (const j of jobs) {
    const now = await ledger.get(j.id);
    assert.ok(now, `job ${j.id} vanished`);
    out.set(j.id, now);
  }
  return out;
}

async function allIn(
  ledger: Store,
  jobs: Job[],
  state: JobState,
  what: string,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  let last = '';
  await eventually(
    () => `${what} (last seen: ${last})`,
    async () => {
      const states = await statesOf(ledger, jobs);
      const counts: Record<string, number> = {};
      for (const j of states.values()) counts[j.state] = (counts[j.state] ?? 0) + 1;
      last = JSON.stringify(counts);
      return [...states.values()].every((j) => j.state === state) ? true : undefined;
    },
    timeoutMs,
    50,
  );
  return Date.now() - started;
}

const countBy = <T>(xs: T[], key: (x: T) => string): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
};

/** A logger whose lines are kept (the shipper's errors and gap reports are checked). */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger: Logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  return { logger, lines };
}

// ---------------------------------------------------------------------------------------------------
// The scenario

interface Figures {
  idleDetectMs: number | null;
  detectMs: number;
  gateClosedMs: number;
  downWindowMs: number;
  bufferedDoneWhileDownMs: number;
  submitMs: number;
  slowestSubmitMs: number;
  maxLoopStallMs: number;
  shipperErrorsLogged: number;
  consumerFailures: number;
  upMs: number;
  requiredDoneAfterUpMs: number;
  catchUpAfterUpMs: number;
  events: number;
  entries: number;
  checkpoints: number;
  lateEntries: number;
  maxLateMs: number;
  gapFrom: number;
  gapTo: number;
  pruned: number;
}

async function scenario(t: TestContext, outage: Outage): Promise<void> {
  const { ledger: testLedger, evidence } = outage;
  const ledger = testLedger.store;
  const started = Date.now();
  const f: Partial<Figures> = {};
  // Findings that do not stop the run (the later phases still say something): asserted at the end.
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => {
    if (!ok) problems.push(problem);
  };
  const log = capturingLogger();
  const workerLog = capturingLogger();
  await evidence.ready;
  let shipper = new EvidenceShipper({
    ledger,
    evidence,
    logger: log.logger,
    pollMs: 20,
    heartbeatMs: HEARTBEAT_MS,
  });
  let worker: Worker | undefined;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  const submitBoth = async (count: number, from: number) => {
    const req: Job[] = [];
    const buf: Job[] = [];
    for (let i = 0; i < count; i++) {
      req.push(await submit(ledger, requiredTask, { n: from + i }));
      buf.push(await submit(ledger, bufferedTask, { n: from + i }));
    }
    return { req, buf };
  };
  try {
    // ----- 1. The normal path: evidence up, both tasks run.
    shipper.start();
    await eventually('the shipper to report to the ledger', async () => {
      const c = await ledger.readConsumer(EVIDENCE_CONSUMER);
      return c.updatedAt !== undefined && c.failures === 0 ? c : undefined;
    });
    worker = createWorker({
      store: ledger,
      tasks: [requiredTask, bufferedTask],
      logger: workerLog.logger,
      concurrency: 8,
      pollIntervalMs: 50,
      reapIntervalMs: 200,
      livenessIntervalMs: 200,
      evidenceStaleMs: STALE_MS,
      authority: 'unverified',
    });
    await worker.start();
    const warm = await submitBoth(3, 0);
    await allIn(ledger, [...warm.req, ...warm.buf], 'succeeded', 'the warm-up jobs to succeed', 15_000);
    assert.equal(worker.health().evidence, 'ok');
    const shippedBeforeDown = await caughtUp(ledger, evidence);
    t.diagnostic(
      `${outage.label}: normal path: 3 required + 3 buffered succeeded, outbox seq ${shippedBeforeDown} recorded`,
    );

    // ----- 2. The store goes down.
    loop.enable();
    const downAt = Date.now();
    await outage.down();
    const downDone = Date.now();
    // Caught up, nothing to ship: does the shipper notice by itself (its idle heartbeat is every
    // 200 ms, the worker's gate reads the ledger every 250 ms)? Watched for IDLE_PROBE_MS.
    let idleDetectMs: number | null = null;
    let idleGateClosedMs: number | null = null;
    while (Date.now() - downDone < IDLE_PROBE_MS) {
      if (idleDetectMs === null && (await ledger.readConsumer(EVIDENCE_CONSUMER)).failures > 0)
        idleDetectMs = Date.now() - downDone;
      if (idleGateClosedMs === null && worker.health().evidence === 'evidence_unavailable')
        idleGateClosedMs = Date.now() - downDone;
      await sleep(20);
    }
    f.idleDetectMs = idleDetectMs;
    const gateAtProbe = worker.health().evidence;
    // One required job now, however the shipper is doing: the store has been down for IDLE_PROBE_MS,
    // ten heartbeats; the job must not start.
    const probe = await submit(ledger, requiredTask, { n: 99 });
    const probeAt = Date.now();
    if (idleDetectMs === null)
      t.diagnostic(
        `${outage.label}: with nothing to ship, the shipper still reported healthy ${IDLE_PROBE_MS} ms after the ` +
          `store went down (worker evidence gate: ${gateAtProbe}); submitted a required probe job`,
      );
    const failing = await eventually(
      'the shipper to record a failure in the ledger',
      async () => {
        const c = await ledger.readConsumer(EVIDENCE_CONSUMER);
        return c.failures > 0 ? c : undefined;
      },
      30_000,
      20,
    );
    f.detectMs = idleDetectMs ?? Date.now() - downDone;
    check(
      idleDetectMs !== null,
      `with nothing to ship, the shipper's heartbeat did not record the failure within ${IDLE_PROBE_MS} ms of the ` +
        `store going down (it did after ${f.detectMs} ms, once the probe job gave it something to ship)`,
    );
    check(
      f.detectMs < DETECT_BUDGET_MS,
      `the failure was recorded ${f.detectMs} ms after the store went down (budget ${DETECT_BUDGET_MS} ms)`,
    );
    await eventually(
      'the worker to close its evidence gate',
      () => (worker?.health().evidence === 'evidence_unavailable' ? true : undefined),
      10_000,
      20,
    );
    f.gateClosedMs = idleGateClosedMs ?? Date.now() - downDone;
    const probeNow = (await ledger.get(probe.id)) as Job;
    let probeBad: string | undefined;
    const probeSeen = (j: Job) => {
      if (probeBad === undefined && (!['queued', 'blocked'].includes(j.state) || ran.has(j.id)))
        probeBad = `${j.state}${ran.has(j.id) ? `, its handler ran ${(ran.get(j.id) ?? 0) - downDone} ms after the store went down` : ''}`;
    };
    probeSeen(probeNow);
    t.diagnostic(
      `${outage.label}: store down in ${downDone - downAt} ms; failure recorded after ${f.detectMs} ms ` +
        `(${failing.lastError ?? '?'}), gate closed after ${f.gateClosedMs} ms; required probe job: ${probeNow.state}`,
    );

    // N of each, one admission at a time, as the API admits them; within a budget.
    const seqBeforeSubmit = await ledger.outboxHead();
    const submitAt = Date.now();
    const down: { req: Job[]; buf: Job[] } = { req: [], buf: [] };
    let slowestSubmitMs = 0;
    for (let i = 0; i < N && Date.now() - submitAt < SUBMIT_BUDGET_MS; i++) {
      for (const [def, list] of [
        [requiredTask, down.req],
        [bufferedTask, down.buf],
      ] as const) {
        const t0 = Date.now();
        list.push(await submit(ledger, def, { n: 100 + i }));
        slowestSubmitMs = Math.max(slowestSubmitMs, Date.now() - t0);
      }
    }
    f.submitMs = Date.now() - submitAt;
    f.slowestSubmitMs = slowestSubmitMs;
    const admitted = down.req.length;
    check(
      admitted === N,
      `only ${admitted} of ${N} required + buffered pairs could be submitted in ${SUBMIT_BUDGET_MS} ms while the ` +
        `store was down (slowest submit ${slowestSubmitMs} ms)`,
    );
    const downIds = new Set([...down.req, ...down.buf].map((j) => j.id));
    const reqIds = new Set(down.req.map((j) => j.id));
    const violations: string[] = [];
    let bufferedDoneAt: number | undefined;
    for (;;) {
      const states = await statesOf(ledger, [...down.req, ...down.buf, probe]);
      let blocked = 0;
      let bufDone = 0;
      for (const j of states.values()) {
        if (reqIds.has(j.id)) {
          if (!['queued', 'blocked'].includes(j.state))
            violations.push(`required job ${j.id} was ${j.state} while the store was down`);
          if (j.state === 'blocked' && j.reason === 'evidence_unavailable') blocked++;
          if (ran.has(j.id))
            violations.push(`the handler of required job ${j.id} ran while the store was down`);
        } else if (j.id === probe.id) probeSeen(j);
        else if (j.state === 'succeeded') bufDone++;
      }
      if (bufDone === admitted && bufferedDoneAt === undefined) bufferedDoneAt = Date.now();
      const elapsed = Date.now() - submitAt;
      if (bufDone === admitted && blocked === admitted && elapsed >= WINDOW_MS) break;
      if (violations.length > 0 || elapsed > SUBMIT_BUDGET_MS + WINDOW_MS) break;
      await sleep(50);
    }
    f.downWindowMs = Date.now() - submitAt;
    const probeStarted = (await allEvents(ledger, shippedBeforeDown)).find(
      (e) => e.jobId === probe.id && e.type === 'job.running',
    );
    if (probeStarted && probeBad !== undefined)
      probeBad += ` (its job.running event is stamped ${probeStarted.at - downDone} ms after the store went down)`;
    check(
      probeBad === undefined,
      `a required job submitted ${probeAt - downDone} ms after the store went down (worker gate then: ${gateAtProbe}; ` +
        `the shipper's first failure was recorded ${f.detectMs} ms after the store went down) was ${probeBad} ` +
        'while the store was still down',
    );
    f.bufferedDoneWhileDownMs = bufferedDoneAt === undefined ? -1 : bufferedDoneAt - submitAt;
    check(
      violations.length === 0,
      `required work started while the store was down: ${violations.slice(0, 5)}`,
    );
    const whileDown = await statesOf(ledger, [...down.req, ...down.buf]);
    const reqStates = down.req.map((j) => whileDown.get(j.id) as Job);
    const bufStates = down.buf.map((j) => whileDown.get(j.id) as Job);
    const reqCounts = countBy(reqStates, (j) => `${j.state}/${j.reason}`);
    check(
      reqCounts['blocked/evidence_unavailable'] === admitted,
      `required jobs while down: ${JSON.stringify(reqCounts)}, expected all ${admitted} blocked/evidence_unavailable`,
    );
    const bufCounts = countBy(bufStates, (j) => j.state);
    check(
      bufCounts.succeeded === admitted && bufferedDoneAt !== undefined,
      `buffered jobs while down: ${JSON.stringify(bufCounts)} ${f.downWindowMs} ms after the first submit, ` +
        `expected all ${admitted} succeeded`,
    );
    // The outbox agrees: no required job was ever leased, started or finished.
    const eventsWhileDown = (await allEvents(ledger, seqBeforeSubmit)).filter(
      (e) => e.jobId !== null && downIds.has(e.jobId),
    );
    const reqTypes = countBy(
      eventsWhileDown.filter((e) => reqIds.has(e.jobId as string)),
      (e) => e.type,
    );
    check(
      JSON.stringify(reqTypes) === JSON.stringify({ 'job.queued': admitted, 'job.blocked': admitted }) ||
        JSON.stringify(reqTypes) === JSON.stringify({ 'job.blocked': admitted, 'job.queued': admitted }),
      `outbox events of the required jobs while the store was down: ${JSON.stringify(reqTypes)}`,
    );
    const bufTypes = countBy(
      eventsWhileDown.filter((e) => !reqIds.has(e.jobId as string)),
      (e) => e.type,
    );
    check(
      bufTypes['job.running'] === admitted && bufTypes['job.succeeded'] === admitted,
      `outbox events of the buffered jobs while the store was down: ${JSON.stringify(bufTypes)}`,
    );
    const health = worker.health();
    check(
      health.evidence === 'evidence_unavailable' &&
        /evidence store is failing/.test(health.evidenceReason ?? ''),
      `worker health while down: ${JSON.stringify(health)}`,
    );
    const consumerDown = await ledger.readConsumer(EVIDENCE_CONSUMER);
    check(consumerDown.failures > 0, 'the consumer row no longer shows the failure');
    assert.ok(
      consumerDown.cursor <= shippedBeforeDown,
      `the consumer cursor moved to ${consumerDown.cursor} while the store was down`,
    );
    f.consumerFailures = consumerDown.failures;
    f.maxLoopStallMs = Math.round(loop.max / 1e6);
    loop.disable();
    check(
      f.maxLoopStallMs < MAX_STALL_MS,
      `the event loop stalled for ${f.maxLoopStallMs} ms while the store was down (limit ${MAX_STALL_MS} ms)`,
    );
    check(
      slowestSubmitMs < MAX_STALL_MS,
      `a submit took ${slowestSubmitMs} ms while the store was down (limit ${MAX_STALL_MS} ms)`,
    );
    f.shipperErrorsLogged = log.lines.filter((l) => l.includes('evidence shipping failed')).length;
    t.diagnostic(
      `${outage.label}: ${admitted} required + ${admitted} buffered submitted while down in ${f.submitMs} ms ` +
        `(slowest submit ${slowestSubmitMs} ms); watched ${f.downWindowMs} ms: required ${JSON.stringify(countBy(reqStates, (j) => j.state))}, ` +
        `buffered ${JSON.stringify(bufCounts)} (all succeeded after ${f.bufferedDoneWhileDownMs} ms); consumer failures ` +
        `${f.consumerFailures}; longest event-loop stall ${f.maxLoopStallMs} ms`,
    );

    // ----- 3. The store comes back.
    const upAt = Date.now();
    await outage.up();
    f.upMs = Date.now() - upAt;
    f.requiredDoneAfterUpMs =
      (await allIn(
        ledger,
        down.req,
        'succeeded',
        'the required jobs to succeed once the store is back',
        15_000,
      )) + f.upMs;
    await eventually(
      'the worker to open its evidence gate',
      () => (worker?.health().evidence === 'ok' ? true : undefined),
      5000,
    );
    await allIn(ledger, [probe], 'succeeded', 'the required probe job to succeed', 15_000);
    for (const j of down.req) {
      const at = ran.get(j.id);
      check(
        at !== undefined && at >= upAt,
        `required job ${j.id} ran ${at === undefined ? 'never' : `${upAt - at} ms before the store was back`}`,
      );
    }
    const head = await caughtUp(ledger, evidence);
    f.catchUpAfterUpMs = Date.now() - upAt;
    const events = await allEvents(ledger);
    const rows = await allRows(evidence);
    assert.equal(events[events.length - 1]?.seq, head);
    assert.equal(
      rows.filter((r) => r.kind === 'gap').length,
      0,
      'a gap entry was recorded (nothing was pruned)',
    );
    const shipped = rows.filter((r) => r.source_seq !== null);
    assert.deepEqual(
      shipped.map((r) => Number(r.source_seq)),
      events.map((e) => e.seq),
      'the evidence log holds every outbox event once, in order',
    );
    // Recorded late: everything that happened while the store was down, once it was back.
    const eventBySeq = new Map(events.map((e) => [e.seq, e]));
    let late = 0;
    let maxLate = 0;
    for (const r of shipped) {
      const e = eventBySeq.get(Number(r.source_seq)) as OutboxEvent;
      assert.equal(Number(r.occurred_at), e.at, `entry ${r.seq}: occurredAt is the event's time`);
      if (e.seq <= shippedBeforeDown) continue;
      const recordedAt = Number(r.recorded_at);
      assert.ok(
        recordedAt >= upAt,
        `entry ${r.seq} (event ${e.seq} ${e.type}) recorded at ${recordedAt}, before the store was back (${upAt})`,
      );
      if (e.jobId !== null && downIds.has(e.jobId) && !reqIds.has(e.jobId)) {
        assert.ok(e.at < upAt, `buffered event ${e.seq} happened after the store was back`);
        assert.ok(recordedAt > e.at, `entry ${r.seq}: recordedAt ${recordedAt} <= occurredAt ${e.at}`);
        late++;
        maxLate = Math.max(maxLate, recordedAt - e.at);
      }
    }
    assert.ok(late >= 4 * down.buf.length, `only ${late} late entries of buffered jobs`);
    f.lateEntries = late;
    f.maxLateMs = maxLate;
    f.events = events.length;
    f.entries = rows.length;
    f.checkpoints = rows.filter((r) => r.kind === 'checkpoint').length;
    const report = await new EvidenceService({ store: evidence }).verify();
    assert.equal(report.firstBad, null, `verify: ${JSON.stringify(report.firstBad)}`);
    assert.equal(report.ok, true);
    assert.deepEqual(report.gaps, []);
    assert.equal(report.entries, rows.length);
    assert.ok(
      log.lines.some((l) => l.includes('shipping resumed')),
      'the shipper logged that it resumed',
    );
    t.diagnostic(
      `${outage.label}: store back in ${f.upMs} ms; required jobs all succeeded ${f.requiredDoneAfterUpMs} ms ` +
        `after; evidence caught up after ${f.catchUpAfterUpMs} ms: ${f.events} events, ${f.entries} entries ` +
        `(${f.checkpoints} checkpoints), ${f.lateEntries} buffered entries recorded late (up to ${f.maxLateMs} ms)`,
    );

    // ----- 4. A gap: events pruned while the shipper was stopped.
    await shipper.stop();
    const shippedThrough = (await evidence.head()).shippedThrough;
    assert.equal(shippedThrough, head);
    // Silent shipper: the gate closes (stale) and required work waits again; buffered work runs.
    await eventually(
      'the worker to see the stopped shipper as gone',
      () => (worker?.health().evidence === 'evidence_unavailable' ? true : undefined),
      STALE_MS + 5000,
      20,
    );
    assert.match(worker.health().evidenceReason ?? '', /has not reported/);
    const later = await submitBoth(5, 1000);
    await allIn(
      ledger,
      later.buf,
      'succeeded',
      'the buffered jobs to succeed with the shipper stopped',
      15_000,
    );
    await allIn(
      ledger,
      later.req,
      'blocked',
      'the required jobs to be blocked with the shipper stopped',
      15_000,
    );
    const beforePrune = await allEvents(ledger);
    const unshipped = beforePrune.filter((e) => e.seq > shippedThrough);
    assert.ok(unshipped.length >= 6, `only ${unshipped.length} events after the shipped position`);
    const pruneThrough = (unshipped[Math.floor(unshipped.length / 2)] as OutboxEvent).seq;
    const pruned = await ledger.pruneEvents(pruneThrough);
    assert.equal(pruned.prunedThrough, pruneThrough);
    assert.equal(pruned.deleted, beforePrune.filter((e) => e.seq <= pruneThrough).length);
    f.gapFrom = shippedThrough + 1;
    f.gapTo = pruneThrough;
    f.pruned = unshipped.filter((e) => e.seq <= pruneThrough).length;
    const gapLog = capturingLogger();
    shipper = new EvidenceShipper({
      ledger,
      evidence,
      logger: gapLog.logger,
      pollMs: 20,
      heartbeatMs: HEARTBEAT_MS,
    });
    shipper.start();
    await allIn(ledger, later.req, 'succeeded', 'the required jobs to run once the shipper is back', 15_000);
    const finalHead = await caughtUp(ledger, evidence);
    const afterPrune = await allEvents(ledger);
    assert.ok(
      afterPrune.every((e) => e.seq > pruneThrough),
      'the outbox still holds events at or below the prune seq',
    );
    assert.equal(afterPrune[afterPrune.length - 1]?.seq, finalHead);
    const rows2 = await allRows(evidence);
    const gaps = rows2.filter((r) => r.kind === 'gap');
    assert.equal(gaps.length, 1, `gap entries: ${JSON.stringify(gaps.map((g) => g.fields))}`);
    const gap = gaps[0] as EntryRow;
    const gapFields = JSON.parse(gap.fields) as Record<string, { value?: unknown }>;
    assert.equal(gapFields.fromSeq?.value, shippedThrough + 1, 'gap fromSeq');
    assert.equal(gapFields.toSeq?.value, pruneThrough, 'gap toSeq');
    assert.equal(Number(gap.source_seq), pruneThrough);
    // Entries around the gap: the last shipped event before it, the first event after the prune next.
    const sourced = rows2.filter((r) => r.source_seq !== null);
    const gapAt = sourced.indexOf(gap);
    assert.equal(Number(sourced[gapAt - 1]?.source_seq), shippedThrough, 'the entry before the gap');
    assert.equal(
      Number(sourced[gapAt + 1]?.source_seq),
      (afterPrune[0] as OutboxEvent).seq,
      'the entry after the gap is the next event',
    );
    assert.equal((afterPrune[0] as OutboxEvent).seq, pruneThrough + 1);
    const expected = [
      ...beforePrune.filter((e) => e.seq <= shippedThrough).map((e) => e.seq),
      pruneThrough,
      ...afterPrune.map((e) => e.seq),
    ];
    assert.deepEqual(
      sourced.map((r) => Number(r.source_seq)),
      expected,
      'no pruned event recorded, no later event missing, each once',
    );
    const report2 = await new EvidenceService({ store: evidence }).verify();
    assert.equal(report2.firstBad, null, `verify: ${JSON.stringify(report2.firstBad)}`);
    assert.equal(report2.ok, true);
    assert.deepEqual(report2.gaps, [{ fromSeq: shippedThrough + 1, toSeq: pruneThrough }]);
    assert.equal(shipper.status().gaps, 1);
    assert.equal(
      gapLog.lines.filter((l) => l.includes('recorded as a gap')).length,
      1,
      'the gap is logged once, as an error',
    );
    t.diagnostic(
      `${outage.label}: gap: pruned ${f.pruned} unshipped events (${f.gapFrom}..${f.gapTo}) with the shipper stopped; ` +
        `one gap entry, shipping resumed at seq ${(afterPrune[0] as OutboxEvent).seq}; verify ok with gaps ` +
        `${JSON.stringify(report2.gaps)}; ${rows2.length} entries`,
    );
    t.diagnostic(`${outage.label}: figures ${JSON.stringify(f)}; total ${Date.now() - started} ms`);
    assert.deepEqual(problems, [], `${outage.label}: ${problems.length} problems`);
  } catch (err) {
    for (const p of problems) t.diagnostic(`${outage.label}: problem: ${p}`);
    const tail = log.lines.slice(-5).join('');
    if (tail) t.diagnostic(`${outage.label}: last shipper log lines:\n${tail}`);
    const wtail = workerLog.lines.slice(-15).join('');
    if (wtail) t.diagnostic(`${outage.label}: last worker log lines:\n${wtail}`);
    if (worker) t.diagnostic(`${outage.label}: worker health ${JSON.stringify(worker.health())}`);
    throw err;
  } finally {
    loop.disable();
    await worker?.stop({ graceMs: 2000 }).catch(() => undefined);
    await shipper.stop().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------

describe('evidence store down (sqlite ledger, SQLite evidence write-locked by another process)', () => {
  it('required work waits, buffered work runs, evidence catches up; pruned events become one gap', {
    timeout: 120_000,
  }, async (t) => {
    const outage = await sqliteOutage();
    try {
      await scenario(t, outage);
    } finally {
      await outage.cleanup();
    }
  });
});

const pgBin = findPgBin();
const pgSkip = !pgAdminUrl
  ? 'BULKHEAD_TEST_PG_URL is not set (the ledger runs on the shared test server)'
  : !pgBin && !ci
    ? 'no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin; set PG_BIN_DIR'
    : false;

describe('evidence store down (postgres ledger, PostgreSQL evidence on a private server stopped -m immediate)', () => {
  it('required work waits, buffered work runs, evidence catches up; pruned events become one gap', {
    skip: pgSkip,
    timeout: 120_000,
  }, async (t) => {
    assert.ok(pgBin, 'CI=true requires PostgreSQL binaries (initdb, pg_ctl)');
    const outage = await postgresOutage(pgBin);
    t.diagnostic(`private PostgreSQL for evidence: ${outage.label}`);
    try {
      await scenario(t, outage);
    } finally {
      await outage.cleanup();
    }
  });
});
