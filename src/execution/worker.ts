/**
 * The worker supervisor: claims work up to its free capacity, starts it, keeps its leases alive,
 * runs handlers, and commits outcomes, all fenced. It also keeps the ledger healthy: it sweeps
 * expired leases and lost workers (every worker does; the sweeps are conditional writes, so
 * concurrent sweepers never double-transition).
 *
 * A worker's own states: `starting -> running -> draining -> stopped`. While the store is
 * unreachable its health says `store_unreachable`, it keeps in-flight handlers going, retries with
 * backoff, and resumes claiming by itself.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { type Logger, pino } from 'pino';
import {
  CONTRACT_FIELDS,
  contractDrift,
  contractOfRow,
  registryRow,
  type TaskContract,
} from '../control/contract.js';
import type { SnapshotView } from '../control/snapshot-view.js';
import { StaleLeaseError } from '../ledger/errors.js';
import type { Store } from '../ledger/store.js';
import type {
  AttemptContext,
  Classification,
  CompleteInput,
  FailInput,
  FailResult,
  HeartbeatInput,
  HeartbeatResult,
  Job,
  Lease,
  Transitioned,
  WorkerInfo,
} from '../ledger/types.js';
import type { BlockReason } from '../lifecycle/lifecycle.js';
import { runAttempt } from './attempt.js';
import { AuthorityGate, type AuthorityPin } from './authority-gate.js';
import { Batcher } from './batcher.js';
import type { ConfigAgent } from './config-agent.js';
import { EvidenceGate } from './evidence-gate.js';
import { canEnforceNoEgress, createProcessRuntime } from './runtimes/process-runtime.js';
import { inlineRuntime, type Runtime } from './runtimes/runtime.js';
import { createThreadRuntime } from './runtimes/thread-runtime.js';
import type { RuntimeName, TaskDefinition } from './task.js';

export const WORKER_PROTOCOL_VERSION = 1;

type StoreSource = 'claim' | 'sweep' | 'liveness' | 'attempt';

/** While without fresh control contact, how often newly admitted freshControl jobs are blocked (at most). */
const BLOCK_SWEEP_MS = 1000;

export interface WorkerOptions {
  store: Store;
  tasks: TaskDefinition[];
  /** Most jobs running at once. @default 10 */
  concurrency?: number;
  /** Queues to claim from. @default the queues of `tasks` */
  queues?: string[];
  /** @default `<host>-<pid>-<random>` */
  workerId?: string;
  /** @default 'internal' */
  clearance?: Classification;
  labels?: string[];
  /** @default a pino logger at level `info` */
  logger?: Logger;
  /** Claim even without a wake-up this often. @default 1000 */
  pollIntervalMs?: number;
  /** Sweep expired leases and lost workers this often. @default 1000 */
  reapIntervalMs?: number;
  /** Report liveness this often. @default 2000 */
  livenessIntervalMs?: number;
  /** A worker silent this long is marked lost and its leases are reaped. @default 15000 */
  lostAfterMs?: number;
  /** Register the tasks' contracts in the registry at start. @default true */
  registerTaskTypes?: boolean;
  /** Package version reported with the worker row. */
  version?: string;
  /** The config agent: claims follow the applied snapshot (none when it is missing or expired). */
  config?: ConfigAgent;
  /** The id of the API key the config agent uses with the control plane, recorded as `meta.keyId`. */
  controlKeyId?: string;
  /**
   * How jobs' authority records are verified before every attempt: the control plane's pinned
   * public key and deployment id. With a `config` agent its pin is used. `'unverified'` runs every
   * job without a check (a library user with no control plane); it must be said explicitly.
   */
  authority?: AuthorityPin | 'unverified';
  /**
   * Without a config: how many outbox events the evidence shipper may be behind before
   * `evidence: required` work stops starting (a config sets its own). @default 10000
   */
  evidenceMaxLag?: number;
  /** The evidence shipper counts as gone when silent this long. @default 10000 */
  evidenceStaleMs?: number;
}

export interface WorkerHealth {
  workerId: string;
  state: 'starting' | 'running' | 'draining' | 'stopped';
  store: 'ok' | 'store_unreachable';
  /** `stale_config`: the snapshot expired (or none was ever had): nothing new is claimed. */
  config?: Record<string, unknown>;
  inFlight: number;
  completed: number;
  failed: number;
  /** Attempts refused because the job's authority record did not verify. */
  refused: number;
  lastStoreError?: string;
  /** `evidence_unavailable`: evidence-required work is held back (see `evidenceReason`). */
  evidence: 'ok' | 'evidence_unavailable';
  evidenceReason?: string;
}

interface Hold {
  reason: BlockReason;
  blocked: boolean;
  lastAt: number;
}

export class Worker {
  readonly id: string;
  private readonly store: Store;
  private readonly tasks = new Map<string, TaskDefinition>();
  private readonly concurrency: number;
  /** The queues claimed from: the option, or the queues of the tasks' contracts (known at start). */
  private queues: string[];
  private readonly clearance: Classification;
  private readonly log: Logger;
  private readonly opts: Required<
    Pick<
      WorkerOptions,
      'pollIntervalMs' | 'reapIntervalMs' | 'livenessIntervalMs' | 'lostAfterMs' | 'evidenceMaxLag'
    >
  >;
  private state: WorkerHealth['state'] = 'starting';
  private readonly storeErrors = new Map<StoreSource, string>();
  private readonly inFlight = new Map<string, AbortController>();
  private counts = { completed: 0, failed: 0, refused: 0 };
  private wakeResolve: (() => void) | undefined;
  private timers: NodeJS.Timeout[] = [];
  private loop: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly running = new Set<Promise<void>>();
  private configState: 'ok' | 'no_config' | 'stale_config' = 'ok';
  private readonly freshnessHold: Hold = { reason: 'fresh_control_required', blocked: false, lastAt: 0 };
  private readonly evidenceHold: Hold = { reason: 'evidence_unavailable', blocked: false, lastAt: 0 };
  private readonly evidenceGate: EvidenceGate;
  private evidenceState: 'ok' | 'evidence_unavailable' = 'ok';
  private evidenceReason: string | undefined;
  private readonly runtimes: Record<RuntimeName, Runtime>;
  /** Tasks this worker refuses to claim (an `egress: 'none'` it cannot enforce), with why. */
  readonly refused = new Map<string, string>();
  /** Each task's contract as published (or, for a task no config names, as its code declares it). */
  private readonly contracts = new Map<string, TaskContract>();
  private readonly authority: AuthorityGate;
  /** The applied config's per-tenant `maxRunning` ceilings, passed with every claim. */
  private maxRunning: Record<string, number> | undefined;

  readonly starts: Batcher<Lease, Transitioned>;
  readonly heartbeats: Batcher<HeartbeatInput, HeartbeatResult>;
  readonly completions: Batcher<CompleteInput, Transitioned>;
  readonly failures: Batcher<FailInput, FailResult>;
  readonly cancels: Batcher<Lease, Transitioned>;

  constructor(private readonly options: WorkerOptions) {
    this.store = options.store;
    for (const t of options.tasks) {
      if (this.tasks.has(t.name)) throw new TypeError(`worker: task '${t.name}' is defined twice`);
      this.tasks.set(t.name, t);
    }
    if (this.tasks.size === 0)
      throw new TypeError('worker: no tasks to run (pass at least one task definition)');
    this.concurrency = options.concurrency ?? 10;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1 || this.concurrency > 1000) {
      throw new TypeError(`worker: concurrency must be an integer in [1, 1000], got ${options.concurrency}`);
    }
    this.queues = options.queues ?? [];
    this.clearance = options.clearance ?? 'internal';
    this.id = options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.log = (options.logger ?? pino({ level: 'info' })).child({ workerId: this.id });
    this.opts = {
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      reapIntervalMs: options.reapIntervalMs ?? 1000,
      livenessIntervalMs: options.livenessIntervalMs ?? 2000,
      lostAfterMs: options.lostAfterMs ?? 15_000,
      evidenceMaxLag: options.evidenceMaxLag ?? 10_000,
    };
    this.evidenceGate = new EvidenceGate(this.store, { staleMs: options.evidenceStaleMs ?? 10_000 });
    const pin = options.authority ?? options.config?.pin;
    if (pin === undefined) {
      throw new TypeError(
        "worker: pass `authority` (the control plane's public key and deployment id) so jobs' authority records are verified, or `authority: 'unverified'` to run jobs without that check",
      );
    }
    this.authority = new AuthorityGate(pin);
    const cores = availableParallelism();
    this.runtimes = {
      inline: inlineRuntime,
      thread: createThreadRuntime(Math.max(1, Math.min(this.concurrency, cores))),
      process: createProcessRuntime(this.concurrency),
    };
    this.starts = new Batcher((items) => this.store.start(items, this.attemptContext()));
    this.heartbeats = new Batcher((items) => this.store.heartbeat(items));
    this.completions = new Batcher((items) => this.store.complete(items));
    this.failures = new Batcher((items) => this.store.fail(items));
    this.cancels = new Batcher((items) => this.store.confirmCancel(items));
  }

  health(): WorkerHealth {
    const h: WorkerHealth = {
      workerId: this.id,
      state: this.state,
      store: this.storeErrors.size === 0 ? 'ok' : 'store_unreachable',
      inFlight: this.inFlight.size,
      ...this.counts,
      evidence: this.evidenceState,
    };
    if (this.options.config) h.config = { ...this.options.config.health(), gate: this.configState };
    if (this.evidenceReason !== undefined && this.evidenceState !== 'ok')
      h.evidenceReason = this.evidenceReason;
    const last = [...this.storeErrors.values()].pop();
    if (last !== undefined) h.lastStoreError = last;
    return h;
  }

  async start(): Promise<void> {
    if (this.state !== 'starting') throw new Error(`worker ${this.id} was already started`);
    for (const t of this.tasks.values())
      await this.registerTaskType(t, this.options.registerTaskTypes !== false);
    this.refuseUnkeepable();
    if (this.options.queues === undefined)
      this.queues = [...new Set([...this.contracts.values()].map((c) => c.queue))];
    if (!this.authority.verifies) {
      this.log.warn('authority records are not verified (authority: unverified): every job runs by its code');
    }
    await this.store.registerWorker(this.info());
    await this.options.config?.start();
    this.state = 'running';
    this.unsubscribe = this.store.onWake((queue) => {
      if (this.queues.includes(queue)) this.wake();
    });
    this.every(this.opts.reapIntervalMs, () => this.sweep());
    this.every(this.opts.livenessIntervalMs, () => this.reportLiveness());
    this.loop = this.claimLoop();
    this.log.info(
      { tasks: [...this.tasks.keys()], queues: this.queues, concurrency: this.concurrency },
      'worker started',
    );
  }

  /**
   * Stop claiming, let in-flight work finish for up to `graceMs`, then abort what is left (its
   * leases run out and the reaper returns the jobs), and deregister.
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    if (this.state === 'stopped' || this.state === 'draining') return;
    const wasStarting = this.state === 'starting';
    this.state = 'draining';
    this.wake();
    await this.loop;
    if (!wasStarting) {
      await this.store.workerHeartbeat(this.id, 'draining').catch(() => undefined);
      const grace = options.graceMs ?? 30_000;
      const all = Promise.allSettled([...this.running]);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), grace);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        for (const ac of this.inFlight.values()) ac.abort(new Error('shutdown'));
        await all;
      }
      await this.store.workerHeartbeat(this.id, 'stopped').catch(() => undefined);
    }
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all(Object.values(this.runtimes).map((r) => r.close()));
    await this.options.config?.stop();
    this.unsubscribe?.();
    this.state = 'stopped';
    this.log.info(this.counts, 'worker stopped');
  }

  /**
   * Publish a task's contract from its code, unless a published config owns it: then the config is
   * the authority, the worker follows it, and a difference between code and contract is reported
   * here, at start, field by field, so the two cannot drift silently.
   */
  private async registerTaskType(t: TaskDefinition, register: boolean): Promise<void> {
    const code = Object.fromEntries(CONTRACT_FIELDS.map((k) => [k, t[k]])) as TaskContract;
    const existing = await this.store.registry.getTaskType(t.name, t.version);
    const compensable = t.compensate !== undefined;
    if (existing?.source !== 'config') {
      this.contracts.set(t.name, existing && !register ? contractOfRow(existing) : code);
      if (register) {
        await this.store.registry.putTaskType(
          registryRow({ ...t, inputSchema: t.inputJsonSchema, contract: code, compensable, source: this.id }),
        );
      }
      return;
    }
    const contract = contractOfRow(existing);
    this.contracts.set(t.name, contract);
    const drift = contractDrift(contract, code);
    if (drift.length > 0) {
      this.log.warn(
        { task: `${t.name}@${t.version}`, drift },
        `task ${t.name}@${t.version}: the code differs from the published contract (${drift.join('; ')}); this worker follows the contract`,
      );
    }
    if (register && existing.compensable !== compensable) {
      await this.store.registry.putTaskType({ ...existing, compensable });
    }
  }

  /** Refuse the tasks whose contract this worker cannot keep (no-network where it cannot be enforced). */
  private refuseUnkeepable(): void {
    for (const [name, c] of this.contracts) {
      if (c.egress !== 'none') continue;
      const check =
        c.runtime === 'process'
          ? canEnforceNoEgress()
          : { enforced: false, why: `runtime is '${c.runtime}'` };
      if (!check.enforced) {
        const why = `egress 'none' cannot be enforced here: ${check.why}`;
        this.refused.set(name, why);
        this.log.warn({ task: name, why }, `refusing task ${name}: ${why}`);
      }
    }
  }

  private info(): WorkerInfo {
    return {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      version: this.options.version ?? 'dev',
      labels: this.options.labels ?? [],
      queues: this.queues,
      clearance: this.clearance,
      concurrency: this.concurrency,
      runtimes: [...new Set([...this.contracts.values()].map((c) => c.runtime))],
      meta: {
        protocol: WORKER_PROTOCOL_VERSION,
        authority: this.authority.verifies ? 'verified' : 'unverified',
        ...(this.refused.size > 0 && { refused: Object.fromEntries(this.refused) }),
        ...(this.options.controlKeyId !== undefined && { keyId: this.options.controlKeyId }),
      },
    };
  }

  private every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      // fn reports its own errors (storeDown); this only clears the busy flag.
      void fn().finally(() => {
        busy = false;
      });
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  private wake(): void {
    const r = this.wakeResolve;
    this.wakeResolve = undefined;
    r?.();
  }

  private waitForWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wakeResolve = undefined;
        resolve();
      }, ms);
      this.wakeResolve = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /**
   * Store failures are tracked per source (claims, sweeps, liveness, attempts): one path working
   * again does not hide another still failing.
   */
  private storeOk(source: StoreSource): void {
    if (this.storeErrors.delete(source) && this.storeErrors.size === 0) {
      this.log.info('store reachable again; claiming resumes');
    }
  }

  private storeDown(source: StoreSource, err: unknown): void {
    const message = (err as Error).message;
    if (this.storeErrors.size === 0)
      this.log.warn({ err: message, source }, 'store unreachable; retrying with backoff');
    this.storeErrors.set(source, message);
  }

  private async claimLoop(): Promise<void> {
    let backoff = 100;
    // Refused tasks are never claimed: they stay queued for a worker that can run them safely.
    const names = [...this.tasks.keys()].filter((n) => !this.refused.has(n));
    while (this.state === 'running') {
      const free = this.concurrency - this.inFlight.size;
      // Claim in batches: with work in flight, wait until a quarter of the slots are free, so one
      // claim (one commit) serves several jobs; an idle worker claims at once.
      const batch = this.inFlight.size === 0 ? 1 : Math.max(1, Math.ceil(this.concurrency / 4));
      const tasks = free >= batch ? await this.claimableTasks(names) : [];
      if (free >= batch && tasks.length > 0) {
        let jobs: Job[];
        const claimSentAt = performance.now();
        try {
          jobs = await this.store.claim({
            workerId: this.id,
            queues: this.queues,
            limit: free,
            tasks,
            clearance: this.clearance,
            // It claims only what it starts at once: claim and start in one write.
            start: this.attemptContext(),
            // The published per-tenant ceilings, enforced by the ledger across every worker.
            ...(this.maxRunning && { maxRunning: this.maxRunning }),
          });
          this.storeOk('claim');
          backoff = 100;
        } catch (err) {
          this.storeDown('claim', err);
          await this.waitForWake(backoff);
          backoff = Math.min(backoff * 2, 5000);
          continue;
        }
        if (jobs.length > 0) {
          for (const job of jobs) this.launch(job, claimSentAt);
          continue;
        }
      }
      await this.waitForWake(this.opts.pollIntervalMs);
    }
  }

  /**
   * The tasks this worker may claim now. By its config: none without a valid snapshot; without
   * fresh control contact, none of the freshControl tasks. By evidence: while evidence is not being
   * recorded, none of the `evidence: required` tasks. Queued jobs held back are marked `blocked`
   * with the reason, and put back when the condition clears.
   */
  private async claimableTasks(names: string[]): Promise<string[]> {
    let allowed = names;
    let view: SnapshotView | undefined;
    const config = this.options.config;
    if (config) {
      const gate = config.gate();
      this.configState = gate.claim ? 'ok' : (gate.reason ?? 'stale_config');
      if (!gate.claim || !gate.view) return [];
      view = gate.view;
      this.maxRunning = Object.keys(view.maxRunning).length > 0 ? view.maxRunning : undefined;
      const freshOnly = names.filter((n) => view?.freshControlTasks.has(n));
      await this.holdBack(this.freshnessHold, freshOnly, gate.fresh);
      if (!gate.fresh) allowed = allowed.filter((n) => !view?.freshControlTasks.has(n));
    }
    const required = allowed.filter((n) =>
      view ? view.evidenceRequiredTasks.has(n) : this.tasks.get(n)?.evidence === 'required',
    );
    if (required.length > 0) {
      const state = await this.evidenceGate.check(view?.evidenceMaxLag ?? this.opts.evidenceMaxLag);
      if (state.open !== (this.evidenceState === 'ok')) {
        if (state.open) this.log.info('evidence is being recorded again: evidence-required work starts');
        else
          this.log.warn({ reason: state.reason }, 'evidence unavailable: evidence-required work held back');
      }
      this.evidenceState = state.open ? 'ok' : 'evidence_unavailable';
      this.evidenceReason = state.reason;
      await this.holdBack(this.evidenceHold, required, state.open);
      if (!state.open) allowed = allowed.filter((n) => !required.includes(n));
    }
    return allowed;
  }

  /**
   * While `open` is false, mark the queued jobs of `tasks` blocked: at once, then every second for
   * jobs admitted since (not on every claim loop: each block scans the queued jobs). When it is
   * true again, put them back.
   */
  private async holdBack(hold: Hold, tasks: string[], open: boolean): Promise<void> {
    if (tasks.length === 0) return;
    try {
      if (!open && (!hold.blocked || Date.now() - hold.lastAt >= BLOCK_SWEEP_MS)) {
        const n = await this.store.block({ tasks, reason: hold.reason });
        if (n > 0) this.log.warn({ jobs: n, tasks, reason: hold.reason }, 'jobs blocked');
        hold.blocked = true;
        hold.lastAt = Date.now();
      } else if (open && hold.blocked) {
        const n = await this.store.unblock({ reason: hold.reason, tasks });
        if (n > 0) this.log.info({ jobs: n, reason: hold.reason }, 'jobs unblocked');
        hold.blocked = false;
      }
    } catch (err) {
      this.storeDown('claim', err);
    }
  }

  /** What an attempt started now runs under (recorded on its `job.running` event). */
  attemptContext(): AttemptContext {
    const gate = this.options.config?.gate();
    if (!gate || gate.version === undefined) return {};
    return { configVersion: gate.version, cachedAuthority: gate.cached };
  }

  private launch(job: Job, leaseStart: number): void {
    const verdict = this.authority.check(job);
    if (!verdict.ok) {
      this.refuseAuthority(job, verdict.why);
      return;
    }
    const code = this.tasks.get(job.task);
    // The contract the job was admitted under is what runs; the code's values are only defaults.
    const contract = verdict.claims?.scope ?? this.contracts.get(job.task);
    const task = code && contract ? { ...code, ...contract } : code;
    const ac = new AbortController();
    this.inFlight.set(job.id, ac);
    const runtime = this.runtimes[task?.runtime ?? 'inline'];
    const p = runAttempt({
      worker: this,
      store: this.store,
      job,
      task,
      runtime,
      leaseStart,
      abort: ac,
      log: this.log,
    })
      .then((outcome) => {
        this.storeOk('attempt');
        if (outcome === 'succeeded') this.counts.completed++;
        else if (outcome === 'failed') this.counts.failed++;
      })
      .catch((err: unknown) => {
        if (!(err instanceof StaleLeaseError)) this.storeDown('attempt', err);
      })
      .finally(() => {
        this.inFlight.delete(job.id);
        this.running.delete(p);
        this.wake();
      });
    this.running.add(p);
  }

  /** Hand back an attempt whose authority record does not verify: the job goes `blocked` (invalid_authority). */
  private refuseAuthority(job: Job, why: string): void {
    this.counts.refused++;
    this.log.error({ jobId: job.id, task: job.task, why }, `refusing job ${job.id}: ${why}`);
    const p = this.store
      .refuseAuthority([{ jobId: job.id, fence: job.fence, message: why }])
      .then(() => this.storeOk('attempt'))
      .catch((err: unknown) => this.storeDown('attempt', err))
      .finally(() => {
        this.running.delete(p);
        this.wake();
      });
    this.running.add(p);
  }

  private async sweep(): Promise<void> {
    try {
      await this.store.markLostWorkers(this.opts.lostAfterMs);
      const r = await this.store.reap();
      if (r.requeued + r.dead + r.cancelled + r.expired > 0) this.log.info(r, 'reaped');
      this.storeOk('sweep');
    } catch (err) {
      this.storeDown('sweep', err);
    }
  }

  private async reportLiveness(): Promise<void> {
    try {
      const state = await this.store.workerHeartbeat(this.id);
      if (state === 'lost' && this.state === 'running') {
        // Another sweeper declared us lost (we were silent too long) and our leases were reaped:
        // abort what we hold (its writes would be rejected anyway) and register afresh.
        this.log.warn('this worker was marked lost; aborting in-flight work and re-registering');
        for (const ac of this.inFlight.values()) ac.abort(new Error('lease_lost'));
        await this.store.registerWorker(this.info());
      }
      this.storeOk('liveness');
    } catch (err) {
      this.storeDown('liveness', err);
    }
  }
}

export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}
