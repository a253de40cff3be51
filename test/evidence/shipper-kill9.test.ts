/**
 * The evidence shipper under kill -9: real shipper processes (`fixtures/ship.ts`) SIGKILLed at
 * seeded random moments while this process keeps writing outbox events from several concurrent
 * lanes (jobs submitted, claimed, started, completed, failed, released, cancelled and reaped, steps
 * committed, admin events). A kill lands during startup, at the ready line, 0–150 ms into shipping
 * (often inside an append), or after the shipper has caught up and tails the outbox right behind
 * transactions still in flight. Some rounds run two shippers at once, most of those released at the
 * same moment from the same head, so they race for the same events.
 *
 * Then one last shipper catches up and the evidence log must hold every outbox event exactly once,
 * in seq order, as the entry `draftOf` makes of it, with no gap entry, a chain that verifies, and
 * signed checkpoints; the ledger's mirror of the position is never ahead of the evidence.
 *
 * One run per backend: a SQLite ledger with a SQLite evidence file, and (with BULKHEAD_TEST_PG_URL)
 * a PostgreSQL ledger with a separate PostgreSQL evidence database.
 *
 *   BULKHEAD_SHIP_KILLS=500   more kills per backend (default 60)
 *   BULKHEAD_SHIP_SEED=42     replay a seed (kill moments, batch sizes, pairs, the producer's choices;
 *                             real processes' timing never repeats exactly)
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { type EntryRow, entryFromRow } from '../../src/evidence/codec.js';
import { draftOf, kindOf } from '../../src/evidence/mapping.js';
import { EvidenceService } from '../../src/evidence/service.js';
import { EVIDENCE_CONSUMER, EvidenceShipper } from '../../src/evidence/shipper.js';
import type { EvidenceStore } from '../../src/evidence/store.js';
import { JobNotFoundError, JobStateConflictError, StaleLeaseError } from '../../src/ledger/errors.js';
import type { Store } from '../../src/ledger/store.js';
import type { Job, Lease, OutboxEvent, SubmitInput } from '../../src/ledger/types.js';
import { canonical } from '../../src/util/canonical-json.js';
import { childEnv } from '../e2e/procs.js';
import { prng, randomSeed } from '../faults/harness.js';
import { backends, sleep } from '../helpers/backends.js';
import { evidenceBackends } from '../helpers/evidence-backends.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/ship.js', import.meta.url));
const KILLS = Number(process.env.BULKHEAD_SHIP_KILLS ?? 60);
const SEED = Number(process.env.BULKHEAD_SHIP_SEED ?? randomSeed());
const READY_TIMEOUT_MS = 30_000;
const FIRST_APPEND_WAIT_MS = 5_000;
const TAIL_WAIT_MS = 10_000;
const PRODUCER_LANES = 3;
const MAX_LAG = 3000;
const CATCH_UP_TIMEOUT_MS = 120_000;

/** `promise`'s value, or undefined after `ms` (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------
// Shipper processes

const live = new Set<ChildProcess>();

/** SIGKILL every shipper process still alive (for `after()`, failures, and this process's exit). */
function killAll(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAll);
after(killAll);

interface Crash {
  label: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

class ShipperProc {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  /** Set just before this test sends SIGKILL: any other exit is a crash. */
  killedByUs = false;
  /** Whether the ready line came before the kill. */
  wasReady = false;
  /** Appends committed, and drafts they skipped (already recorded by another shipper). */
  appends = 0;
  skipped = 0;
  /** An append announced and not yet reported committed. */
  appending = false;
  private line = '';
  private onReady: (ready: boolean) => void = () => undefined;
  private onOpen: (open: boolean) => void = () => undefined;
  /** BULKHEAD_SHIP_WAIT: true once the stores are open and it waits for `go` (false if it ends first). */
  readonly opened: Promise<boolean> = new Promise((resolve) => {
    this.onOpen = resolve;
  });
  private onFirstAppend: () => void = () => undefined;
  /** Reads that reached the end of the outbox (fewer events than the batch). */
  tailReads = 0;
  private onTail: () => void = () => undefined;
  /** Resolves at the first read that reached the end of the outbox (or when the process ends). */
  readonly atTail: Promise<void> = new Promise((resolve) => {
    this.onTail = resolve;
  });
  /** Resolves at the first committed append (or when the process ends). */
  readonly firstAppend: Promise<void> = new Promise((resolve) => {
    this.onFirstAppend = resolve;
  });
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the ready line is printed; false if the process ends first. */
  readonly ready: Promise<boolean>;

  constructor(
    readonly label: string,
    env: Record<string, string>,
    crashes: Crash[],
  ) {
    const child = spawn(process.execPath, [FIXTURE], {
      env: childEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    this.ready = new Promise((resolve) => {
      this.onReady = resolve;
    });
    child.stdin?.on('error', () => undefined);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      const lines = (this.line + d).split('\n');
      this.line = lines.pop() ?? '';
      for (const l of lines) this.onLine(l);
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => {
        this.stderr += `spawn error: ${err.message}\n`;
      });
      child.on('close', (code, signal) => {
        live.delete(child);
        if (!this.killedByUs || signal !== 'SIGKILL')
          crashes.push({ label: this.label, code, signal, stderr: this.stderr.slice(-4000) });
        this.onReady(false);
        this.onOpen(false);
        this.onFirstAppend();
        this.onTail();
        resolve({ code, signal });
      });
    });
  }

  private onLine(l: string): void {
    if (l.startsWith('ship-fixture open')) {
      this.onOpen(true);
    } else if (l.startsWith('ship-fixture ready')) {
      this.wasReady = true;
      this.onReady(true);
    } else if (l.startsWith('appending ')) {
      this.appending = true;
    } else if (l.startsWith('tail ')) {
      this.tailReads++;
      this.onTail();
    } else if (l.startsWith('appended ')) {
      this.appending = false;
      this.appends++;
      this.skipped += Number(/skipped (\d+)/.exec(l)?.[1] ?? 0);
      this.onFirstAppend();
    } else {
      this.stdout += `${l}\n`;
    }
  }

  /** Let a waiting shipper (BULKHEAD_SHIP_WAIT) start. */
  go(): void {
    this.child.stdin?.write('go\n');
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL, and wait until the process is gone. Returns whether a live process was killed. */
  async kill(): Promise<boolean> {
    const wasAlive = this.alive;
    if (wasAlive) {
      this.killedByUs = true;
      this.child.kill('SIGKILL');
    }
    await this.exited;
    return wasAlive;
  }

  /** The errors this process logged for failed shipping rounds (once per streak; the shipper retries). */
  shippingErrors(): string[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.includes('evidence shipping failed'))
      .map((l) => {
        try {
          return String((JSON.parse(l) as { err?: unknown }).err);
        } catch {
          return l;
        }
      });
  }
}

// ---------------------------------------------------------------------------------------------------
// The producer: outbox events of every sort, all the time

const TENANTS = ['acme', 'globex', 'initech'];
const TASKS = ['render', 'bill', 'mail'];
const QUEUE = 'ship-kill9';
const ADMIN_EVENTS: Array<(n: number) => { type: string; data: Record<string, unknown> }> = [
  (n) => ({ type: 'admin.api_key_created', data: { keyId: `key-${n}`, by: 'test' } }),
  (n) => ({ type: 'config.published', data: { version: n, by: 'test' } }),
  (n) => ({ type: 'worker.lost', data: { workerId: `w-${n}`, leases: n % 3 } }),
  (n) => ({ type: 'tenant.updated', data: { name: `t-${n}`, quota: n } }),
  (n) => ({ type: 'blob.stored', data: { blobId: `b-${n}`, bytes: n * 7 } }),
];

interface ProducerStats {
  ops: number;
  submitted: number;
  completed: number;
  failed: number;
  released: number;
  cancelled: number;
  steps: number;
  admin: number;
  staleOutcomes: number;
  /** Errors thrown by the ledger (not outcomes): reported, the op is skipped. */
  thrown: string[];
}

/** Backpressure: producers wait while the gate is closed (evidence too far behind the outbox). */
interface Gate {
  closed: boolean;
}

class Producer {
  readonly stats: ProducerStats = {
    ops: 0,
    submitted: 0,
    completed: 0,
    failed: 0,
    released: 0,
    cancelled: 0,
    steps: 0,
    admin: 0,
    staleOutcomes: 0,
    thrown: [],
  };
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly recent: string[] = [];
  private n = 0;

  constructor(
    private readonly store: Store,
    private readonly rng: () => number,
    private readonly lane: number,
    private readonly gate: Gate,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rng() * xs.length)] as T;
  }

  private int(lo: number, hi: number): number {
    return lo + Math.floor(this.rng() * (hi - lo + 1));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.gate.closed) {
        await sleep(10);
        continue;
      }
      const r = this.rng();
      try {
        if (r < 0.3) await this.submit();
        else if (r < 0.75) await this.work();
        else if (r < 0.88) await this.admin();
        else await this.maintain();
      } catch (err) {
        if (this.stats.thrown.length < 20) this.stats.thrown.push((err as Error).stack ?? String(err));
      }
      this.stats.ops++;
      await sleep(this.int(5, 25));
    }
  }

  private async submit(): Promise<void> {
    // Now and then a big batch: a long transaction holding low seqs while other lanes commit higher
    // ones, so an outbox reader sees a gap it must wait on.
    const size = this.rng() < 0.04 ? this.int(20, 50) : this.int(1, 4);
    const inputs: SubmitInput[] = Array.from({ length: size }, () => {
      const n = ++this.n;
      const input: SubmitInput = {
        tenant: this.pick(TENANTS),
        task: this.pick(TASKS),
        queue: QUEUE,
        input: { n },
        maxAttempts: this.int(1, 3),
        backoff: { baseMs: 1, maxMs: 5 },
        // Some leases run out while the job is left running: the reaper requeues them.
        leaseMs: this.rng() < 0.2 ? 50 : 30_000,
      };
      if (this.rng() < 0.5) input.correlationId = `order-${this.int(1, 50)}`;
      if (this.rng() < 0.2) input.idempotencyKey = `idem-${this.lane}-${n}`;
      if (this.rng() < 0.05) input.requiresApproval = true;
      if (this.rng() < 0.2) input.priority = this.int(-5, 5);
      return input;
    });
    const results =
      inputs.length === 1
        ? [await this.store.submit(inputs[0] as SubmitInput)]
        : await this.store.submitMany(inputs);
    for (const res of results) {
      this.recent.push(res.job.id);
      if (this.recent.length > 200) this.recent.shift();
    }
    this.stats.submitted += results.length;
  }

  private async work(): Promise<void> {
    const claimAndStart = this.rng() < 0.5;
    const jobs = await this.store.claim({
      workerId: `producer-${this.lane}`,
      queues: [QUEUE],
      limit: this.int(1, 8),
      ...(claimAndStart && { start: { configVersion: 1 } }),
    });
    if (jobs.length === 0) return;
    let running: Job[] = jobs;
    if (!claimAndStart) {
      const release = jobs.filter(() => this.rng() < 0.1);
      if (release.length > 0) {
        this.count(await this.store.release(release.map(lease)));
        this.stats.released += release.length;
      }
      running = jobs.filter((j) => !release.includes(j));
      if (running.length > 0) this.count(await this.store.start(running.map(lease), { configVersion: 1 }));
    }
    const complete: Job[] = [];
    const fail: Job[] = [];
    for (const j of running) {
      if (this.rng() < 0.3) {
        try {
          const { created } = await this.store.putStep({
            ...lease(j),
            stepKey: `s${this.int(1, 3)}`,
            result: { ok: true, n: this.int(1, 1000) },
          });
          if (created) this.stats.steps++;
        } catch (err) {
          // A short lease ran out meanwhile: this attempt is stale, the reaper takes the job back.
          if (!(err instanceof StaleLeaseError)) throw err;
          this.stats.staleOutcomes++;
          continue;
        }
      }
      const r = this.rng();
      // Left running: only short leases, which the reaper takes back.
      if (r < 0.12 && j.leaseMs <= 50) continue;
      if (r < 0.65) complete.push(j);
      else fail.push(j);
    }
    if (complete.length > 0) {
      this.count(await this.store.complete(complete.map((j) => ({ ...lease(j), output: { done: j.id } }))));
      this.stats.completed += complete.length;
    }
    if (fail.length > 0) {
      this.count(
        await this.store.fail(
          fail.map((j) => ({
            ...lease(j),
            error: { code: 'handler_error', message: `failed on purpose (${j.attempt})` },
            retryable: this.rng() < 0.7,
          })),
        ),
      );
      this.stats.failed += fail.length;
    }
  }

  private async admin(): Promise<void> {
    const n = ++this.n;
    const { type, data } = this.pick(ADMIN_EVENTS)(this.lane * 1_000_000 + n);
    await this.store.appendEvent({
      type,
      tenant: this.pick(TENANTS),
      data,
      ...(this.rng() < 0.5 && { correlationId: `admin-${this.lane}-${n}` }),
    });
    this.stats.admin++;
  }

  private async maintain(): Promise<void> {
    if (this.rng() < 0.5) {
      await this.store.reap();
      return;
    }
    const id = this.recent.length > 0 ? this.pick(this.recent) : undefined;
    if (id === undefined) return;
    try {
      await this.store.cancel(id);
      this.stats.cancelled++;
    } catch (err) {
      if (!(err instanceof JobStateConflictError || err instanceof JobNotFoundError)) throw err;
    }
  }

  private count(outcomes: Array<{ ok: boolean }>): void {
    for (const o of outcomes) if (!o.ok) this.stats.staleOutcomes++;
  }
}

const lease = (j: Job): Lease => ({ jobId: j.id, fence: j.fence });

// ---------------------------------------------------------------------------------------------------
// Reading everything back

/** Every outbox event, paging; waits (bounded) until the pages reach the outbox head. */
async function allEvents(store: Store): Promise<OutboxEvent[]> {
  const head = await store.outboxHead();
  const out: OutboxEvent[] = [];
  let after = 0;
  const deadline = Date.now() + 30_000;
  while (after < head) {
    const page = await store.readEvents(after, 1000);
    if (page.length === 0) {
      assert.ok(Date.now() < deadline, `readEvents stopped at seq ${after} below the outbox head ${head}`);
      await sleep(20);
      continue;
    }
    for (const e of page) {
      assert.ok(e.seq > after, `readEvents went backwards: ${e.seq} after ${after}`);
      out.push(e);
      after = e.seq;
    }
  }
  return out;
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

/** The field values an entry records, as `draftOf` gave them (null when a field was erased). */
function fieldValues(row: EntryRow): Record<string, unknown> | null {
  const entry = entryFromRow(row);
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(entry.fields)) {
    if (!('value' in f)) return null;
    out[name] = f.value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The run

interface Figures {
  /** The most the outbox was ahead of the evidence, and how often the producers had to wait. */
  maxLag: number;
  gateClosed: number;
  kills: number;
  /** Before the ready line. */
  killsInStartup: number;
  /** Ready, but no append committed yet. */
  killsBeforeFirstAppend: number;
  /** After at least one committed append. */
  killsWhileShipping: number;
  /** After the shipper had read to the end of the outbox at least once. */
  killsAfterTail: number;
  /** With an append announced and not reported committed: the kill landed inside a batch. */
  killsMidAppend: number;
  /** Drafts an append skipped because another shipper had recorded them (pairs contended). */
  skippedDrafts: number;
  rounds: number;
  pairRounds: number;
  /** Pairs told to start shipping at the same moment. */
  syncedPairs: number;
  roundsThatShipped: number;
  shippingErrors: number;
  events: number;
  entries: number;
  shipped: number;
  checkpoints: number;
  duplicates: number;
  holes: number;
  extras: number;
  gaps: number;
  wallMs: number;
}

for (const backend of backends()) {
  const evidenceBackend = evidenceBackends.find((b) => b.dialect === backend.dialect);
  describe(`evidence shipper under kill -9 (${backend.dialect} ledger, ${backend.dialect} evidence)`, () => {
    it(`${KILLS}+ SIGKILLs while the outbox grows: every event shipped exactly once, in order, verifiable`, async (t) => {
      assert.ok(evidenceBackend, `no ${backend.dialect} evidence backend`);
      const started = Date.now();
      const rng = prng(SEED);
      t.diagnostic(`seed ${SEED} (replay with BULKHEAD_SHIP_SEED=${SEED}), kills ${KILLS}`);
      const ledger = await backend.create(backend.dialect === 'postgres' ? { poolSize: 4 } : {});
      const ev = await evidenceBackend.create({ checkpointEvery: 25 });
      const f: Figures = {
        kills: 0,
        killsInStartup: 0,
        killsBeforeFirstAppend: 0,
        killsWhileShipping: 0,
        killsMidAppend: 0,
        killsAfterTail: 0,
        skippedDrafts: 0,
        rounds: 0,
        pairRounds: 0,
        syncedPairs: 0,
        roundsThatShipped: 0,
        shippingErrors: 0,
        events: 0,
        entries: 0,
        shipped: 0,
        checkpoints: 0,
        duplicates: 0,
        holes: 0,
        extras: 0,
        gaps: 0,
        wallMs: 0,
        maxLag: 0,
        gateClosed: 0,
      };
      // The outbox may run at most MAX_LAG events ahead of the evidence (shippers are down half the
      // time): this bounds the run's size and lets a shipper catch up now and then.
      const gate: Gate = { closed: false };
      let producing = true;
      const monitor = (async () => {
        while (producing) {
          try {
            const [outbox, head] = await Promise.all([ledger.store.outboxHead(), ev.store.head()]);
            const lag = outbox - head.shippedThrough;
            f.maxLag = Math.max(f.maxLag, lag);
            if (lag > MAX_LAG && !gate.closed) f.gateClosed++;
            gate.closed = lag > MAX_LAG || (gate.closed && lag > MAX_LAG / 2);
          } catch {
            gate.closed = false;
          }
          await sleep(50);
        }
        gate.closed = false;
      })();
      // Several lanes write at once, like several workers: on PostgreSQL their transactions commit
      // out of seq order, which the outbox reader must not skip over.
      const producers = Array.from(
        { length: PRODUCER_LANES },
        (_, lane) => new Producer(ledger.store, prng((SEED ^ 0x5bd1e995) + lane), lane, gate),
      );
      const producerStats = () => {
        const sum: Record<string, number> = {};
        for (const p of producers)
          for (const [k, v] of Object.entries(p.stats)) if (typeof v === 'number') sum[k] = (sum[k] ?? 0) + v;
        return sum;
      };
      const crashes: Crash[] = [];
      const procs: ShipperProc[] = [];
      const key = ev.signer.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      let spawned = 0;
      const spawnShipper = (wait = false) => {
        const batch = 1 + Math.floor(rng() * 200);
        const p = new ShipperProc(
          `shipper #${++spawned} (batch ${batch})`,
          {
            BULKHEAD_SHIP_LEDGER: ledger.url,
            BULKHEAD_SHIP_EVIDENCE: ev.target,
            BULKHEAD_SHIP_KEY: key,
            BULKHEAD_SHIP_BATCH: String(batch),
            BULKHEAD_SHIP_WAIT: wait ? '1' : '0',
          },
          crashes,
        );
        procs.push(p);
        return p;
      };
      const crashReport = () =>
        crashes.map((c) => `${c.label} exited by itself (${c.code ?? c.signal}):\n${c.stderr}`).join('\n');

      // One shipper's life: started, then SIGKILLed at a random moment.
      const life = async (p: ShipperProc, pair: boolean, startupKills = true): Promise<void> => {
        const mode = startupKills ? rng() : 0.1 + rng() * 0.9;
        if (mode < 0.1) {
          // During startup: loading modules, opening the stores (before the ready line, if any).
          await sleep(rng() * 250);
        } else {
          const ready = await within(p.ready, READY_TIMEOUT_MS);
          if (ready !== true)
            throw new Error(`${p.label}: no ready line within ${READY_TIMEOUT_MS} ms\n${p.stderr}`);
          // mode < 0.2: right at the ready line. Else once it has shipped (or had its chance to),
          // 0–150 ms into shipping (a pair: up to 300 ms, so the two contend for longer). Now and
          // then a shipper catches up and tails the outbox for up to a second: there it reads right
          // behind transactions still in flight (the seq gaps an outbox reader must not skip).
          if (mode >= 0.2 && mode < 0.85) {
            await within(p.firstAppend, FIRST_APPEND_WAIT_MS);
            await sleep(rng() * (pair ? 300 : 150));
          } else if (mode >= 0.85) {
            await within(p.atTail, TAIL_WAIT_MS);
            await sleep(rng() * 1000);
          }
        }
        const state = {
          ready: p.wasReady,
          appending: p.appending,
          shipped: p.appends > 0,
          tail: p.tailReads > 0,
        };
        if (await p.kill()) {
          f.kills++;
          if (!state.ready) f.killsInStartup++;
          else if (!state.shipped) f.killsBeforeFirstAppend++;
          else f.killsWhileShipping++;
          if (state.appending) f.killsMidAppend++;
          if (state.tail) f.killsAfterTail++;
        }
      };

      // The figures, as test diagnostics (also when the run fails part way).
      let reported = false;
      const report = () => {
        reported = true;
        f.wallMs = Date.now() - started;
        const retried = procs.flatMap((p) => p.shippingErrors());
        f.shippingErrors = retried.length;
        f.skippedDrafts = procs.reduce((n, p) => n + p.skipped, 0);
        t.diagnostic(
          `${backend.dialect}: kills ${f.kills} (${f.killsInStartup} in startup, ${f.killsBeforeFirstAppend} before ` +
            `the first append, ${f.killsWhileShipping} while shipping, ${f.killsMidAppend} with an append in flight, ` +
            `${f.killsAfterTail} after tailing the outbox), ` +
            `rounds ${f.rounds} (${f.pairRounds} with two shippers, ${f.syncedPairs} of them started together, ` +
            `${f.roundsThatShipped} moved the head), ` +
            `drafts skipped as already recorded ${f.skippedDrafts}, shipper retries ${f.shippingErrors}, ` +
            `outbox ahead of evidence by at most ${f.maxLag} (producers held back ${f.gateClosed} times)`,
        );
        t.diagnostic(
          `${backend.dialect}: events ${f.events}, entries ${f.entries} (${f.shipped} shipped, ${f.checkpoints} checkpoints, ` +
            `${f.gaps} gaps), duplicates ${f.duplicates}, holes ${f.holes}, extras ${f.extras}, ` +
            `time ${(f.wallMs / 1000).toFixed(1)} s`,
        );
        t.diagnostic(
          `${backend.dialect}: producer (${PRODUCER_LANES} lanes) ${JSON.stringify(producerStats())}`,
        );
        for (const e of producers.flatMap((p) => p.stats.thrown))
          t.diagnostic(`producer error (op skipped): ${e}`);
        // A shipper logs a failed round once, then retries it (with backoff): which errors those were.
        for (const e of new Set(retried)) t.diagnostic(`shipper retried after: ${e}`);
      };

      let failed = true;
      try {
        for (const p of producers) p.start();
        // Let a backlog build up so the first shipper starts behind.
        await sleep(300);
        let lastHead = await ev.store.head();
        while (f.kills < KILLS) {
          assert.equal(crashes.length, 0, crashReport());
          f.rounds++;
          const pair = rng() < 0.35;
          if (pair) f.pairRounds++;
          // Most pairs start shipping at the same moment, from the same head: they race for the same
          // events from their first append on.
          const sync = pair && rng() < 0.7;
          if (sync) f.syncedPairs++;
          const round = pair ? [spawnShipper(sync), spawnShipper(sync)] : [spawnShipper()];
          if (sync) {
            const open = await Promise.all(round.map((p) => within(p.opened, READY_TIMEOUT_MS)));
            if (!open.every((o) => o === true))
              throw new Error(`a shipper did not open its stores\n${round.map((p) => p.stderr).join('\n')}`);
            for (const p of round) p.go();
          }
          await Promise.all(round.map((p) => life(p, pair, !sync)));
          const head = await ev.store.head();
          assert.ok(
            head.shippedThrough >= lastHead.shippedThrough && head.seq >= lastHead.seq,
            `the evidence head went backwards: ${JSON.stringify(lastHead)} -> ${JSON.stringify(head)}`,
          );
          if (head.shippedThrough > lastHead.shippedThrough) f.roundsThatShipped++;
          lastHead = head;
          // Sometimes no shipper runs for a while: the backlog grows.
          if (rng() < 0.2) await sleep(rng() * 200);
        }
        await Promise.all(producers.map((p) => p.stop()));
        producing = false;
        await monitor;
        assert.equal(crashes.length, 0, crashReport());

        // One last shipper, in this process, until it has caught up with the whole outbox.
        const final = new EvidenceShipper({
          ledger: ledger.store,
          evidence: ev.store,
          logger: pino({ level: 'silent' }),
          batch: 500,
        });
        const outboxHead = await ledger.store.outboxHead();
        const deadline = Date.now() + CATCH_UP_TIMEOUT_MS;
        for (;;) {
          const n = await final.shipOnce();
          if (n > 0) continue;
          if ((await ev.store.head()).shippedThrough >= outboxHead) break;
          assert.ok(Date.now() < deadline, 'the final shipper did not catch up with the outbox');
          await sleep(20);
        }

        const events = await allEvents(ledger.store);
        const rows = await allRows(ev.store);
        const head = await ev.store.head();
        f.events = events.length;
        f.entries = rows.length;
        const lastEvent = events[events.length - 1];
        assert.ok(lastEvent, 'no outbox events were written');
        assert.equal(lastEvent.seq, outboxHead);

        // The chain: entry seqs 1..n, no gap entry.
        rows.forEach((row, i) => {
          assert.equal(Number(row.seq), i + 1, `entry ${i + 1} has seq ${row.seq}`);
        });
        const gaps = rows.filter((r) => r.kind === 'gap');
        f.gaps = gaps.length;
        const checkpoints = rows.filter((r) => r.kind === 'checkpoint');
        f.checkpoints = checkpoints.length;

        // What was shipped: every outbox event exactly once, ascending.
        const shipped = rows.filter((r) => r.source_seq !== null && r.kind !== 'gap');
        f.shipped = shipped.length;
        const eventBySeq = new Map(events.map((e) => [e.seq, e]));
        const seen = new Map<number, number>();
        for (const r of shipped) seen.set(Number(r.source_seq), (seen.get(Number(r.source_seq)) ?? 0) + 1);
        const duplicated = [...seen].filter(([, n]) => n > 1).map(([s]) => s);
        const holes = events.filter((e) => !seen.has(e.seq)).map((e) => e.seq);
        const extras = [...seen.keys()].filter((s) => !eventBySeq.has(s));
        f.duplicates = duplicated.length;
        f.holes = holes.length;
        f.extras = extras.length;
        report();

        assert.deepEqual(
          duplicated.slice(0, 20),
          [],
          `${f.duplicates} outbox events recorded more than once`,
        );
        assert.deepEqual(holes.slice(0, 20), [], `${f.holes} outbox events never recorded`);
        assert.deepEqual(extras.slice(0, 20), [], `${f.extras} entries ship events the outbox does not have`);
        assert.deepEqual(
          gaps.map((g) => g.fields),
          [],
          'gap entries recorded (nothing was pruned)',
        );
        assert.deepEqual(
          shipped.map((r) => Number(r.source_seq)),
          events.map((e) => e.seq),
          'entries are not in outbox seq order',
        );
        assert.equal(head.shippedThrough, lastEvent.seq);
        // The ledger's mirror of the position (what workers go by) is never ahead of the evidence.
        const mirror = await ledger.store.readConsumer(EVIDENCE_CONSUMER);
        assert.ok(
          mirror.cursor <= head.shippedThrough,
          `the ledger's evidence cursor ${mirror.cursor} is ahead of the evidence (${head.shippedThrough})`,
        );

        // Each entry is what draftOf makes of its event.
        for (const r of shipped) {
          const e = eventBySeq.get(Number(r.source_seq)) as OutboxEvent;
          const d = draftOf(e);
          const where = `entry ${r.seq} (event ${e.seq}, ${e.type})`;
          assert.equal(r.kind, kindOf(e), `${where}: kind`);
          assert.equal(r.tenant, e.tenant, `${where}: tenant`);
          assert.equal(r.correlation_id, e.correlationId, `${where}: correlation id`);
          assert.equal(r.subject, d.subject, `${where}: subject`);
          assert.equal(Number(r.occurred_at), e.at, `${where}: occurredAt`);
          const values = fieldValues(r);
          assert.ok(values, `${where}: a field was erased`);
          assert.equal(canonical(values), canonical(d.fields), `${where}: fields`);
        }
        assert.ok(
          events.some((e) => kindOf(e) === 'admin') && events.some((e) => kindOf(e) === 'failure'),
          'the producer wrote admin and failure events',
        );

        // The chain verifies, signed.
        const verified = await new EvidenceService({ store: ev.store }).verify();
        assert.equal(verified.firstBad, null, `verify: ${JSON.stringify(verified.firstBad)}`);
        assert.equal(verified.ok, true);
        assert.deepEqual(verified.gaps, []);
        assert.equal(verified.entries, rows.length);
        assert.ok(f.checkpoints > 0 && verified.checkpoints === f.checkpoints, 'checkpoints were signed');

        // The run covered what it is for (a short run, BULKHEAD_SHIP_KILLS < 30, may not).
        assert.ok(f.kills >= KILLS);
        if (KILLS >= 30) {
          assert.ok(f.killsWhileShipping > 0, 'no kill landed while a shipper was shipping');
          assert.ok(f.killsMidAppend > 0, 'no kill landed inside an append');
          assert.ok(f.pairRounds > 0, 'no round ran two shippers at once');
          assert.ok(f.skippedDrafts > 0, 'two shippers never raced for the same events');
          assert.ok(f.killsAfterTail > 0, 'no shipper ever caught up with the outbox');
        }
        failed = false;
      } finally {
        killAll();
        await Promise.all(procs.map((p) => p.exited));
        await Promise.all(producers.map((p) => p.stop()));
        producing = false;
        await monitor;
        if (failed) {
          if (!reported) report();
          const tails = procs.filter((p) => p.stderr.trim() !== '').slice(-3);
          for (const p of tails) t.diagnostic(`${p.label} stderr:\n${p.stderr.slice(-2000)}`);
        }
        await ev.cleanup();
        await ledger.cleanup();
      }
    });
  });
}
