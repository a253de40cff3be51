/**
 * The worker processes of a fault scenario: K slots, each running one real `bulkhead worker` process
 * at a time. A slot can be killed (SIGKILL) and respawned as a new incarnation, or paused
 * (SIGSTOP/SIGCONT). Output goes straight to a log file per slot (no pipes: a stopped or blocked
 * parent never stalls a worker), and readiness is the CLI's ready line in that file. Any exit the
 * harness did not cause is recorded as a crash. Every process ever spawned is tracked; `killAll()`
 * (call it from `after()`) sends SIGKILL to whatever is still alive.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/test/faults/fleet.js). */
export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const CLI = join(REPO, 'dist/src/cli/main.js');
export const FIXTURE = fileURLToPath(new URL('./fixtures/effect-tasks.js', import.meta.url));

const live = new Set<ChildProcess>();

/** SIGKILL every worker process still alive (for `after()`). */
export function killAll(): void {
  for (const c of live) {
    try {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAll);

export interface FleetOptions {
  storeUrl: string;
  logDir: string;
  workers: number;
  concurrency: number;
  pollMs?: number;
  reapMs?: number;
  lostAfterMs?: number;
}

export interface Crash {
  slot: number;
  id: string;
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  logTail: string;
}

export class Slot {
  incarnation = 0;
  proc: ChildProcess | undefined;
  id = '';
  pid: number | undefined;
  ready = false;
  paused = false;
  private readonly killed = new WeakSet<ChildProcess>();
  private exited: Promise<void> = Promise.resolve();
  private logOffset = 0;
  readonly log: string;

  constructor(
    readonly index: number,
    private readonly fleet: Fleet,
  ) {
    this.log = join(fleet.options.logDir, `worker-${index}.log`);
  }

  spawn(): void {
    const o = this.fleet.options;
    this.incarnation++;
    this.id = `faults-w${this.index}-${this.incarnation}`;
    this.ready = false;
    this.paused = false;
    this.logOffset = existsSync(this.log) ? statSync(this.log).size : 0;
    const fd = openSync(this.log, 'a');
    const argv = [
      CLI,
      'worker',
      '--store',
      o.storeUrl,
      '--tasks',
      FIXTURE,
      '--concurrency',
      String(o.concurrency),
      '--poll-ms',
      String(o.pollMs ?? 50),
      '--reap-ms',
      String(o.reapMs ?? 200),
      '--lost-after-ms',
      String(o.lostAfterMs ?? 2000),
      '--id',
      this.id,
    ];
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BULKHEAD_')) env[k] = v;
    env.BULKHEAD_LOG_LEVEL = 'info';
    const child = spawn(process.execPath, argv, { cwd: o.logDir, env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    live.add(child);
    this.proc = child;
    this.pid = child.pid;
    const id = this.id;
    this.exited = new Promise((done) => {
      child.on('error', () => undefined);
      child.on('exit', (code, signal) => {
        live.delete(child);
        if (!this.killed.has(child)) {
          this.fleet.crashes.push({
            slot: this.index,
            id,
            pid: child.pid,
            code,
            signal,
            logTail: this.tail(),
          });
        }
        if (this.proc === child) {
          this.proc = undefined;
          this.ready = false;
        }
        done();
      });
    });
  }

  get alive(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Poll the log for this incarnation's ready line. */
  checkReady(): boolean {
    if (this.ready || !this.alive) return this.ready;
    const text = this.read();
    if (text.includes(`Bulkhead worker ${this.id} running`)) this.ready = true;
    return this.ready;
  }

  /** SIGKILL this incarnation and wait until it is gone. */
  async kill(): Promise<void> {
    if (!this.proc) return;
    this.killed.add(this.proc);
    this.proc.kill('SIGCONT');
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  pause(): void {
    if (!this.proc) return;
    this.proc.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.proc) return;
    this.proc.kill('SIGCONT');
    this.paused = false;
  }

  /** This incarnation's output so far (the log from where it started). */
  private read(): string {
    let fd: number | undefined;
    try {
      fd = openSync(this.log, 'r');
      const size = fstatSync(fd).size - this.logOffset;
      if (size <= 0) return '';
      const buf = Buffer.alloc(size);
      readSync(fd, buf, 0, size, this.logOffset);
      return buf.toString('utf8');
    } catch {
      return '';
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  tail(lines = 30): string {
    return this.read().split('\n').slice(-lines).join('\n');
  }
}

export class Fleet {
  readonly slots: Slot[];
  readonly crashes: Crash[] = [];

  constructor(readonly options: FleetOptions) {
    this.slots = Array.from({ length: options.workers }, (_, i) => new Slot(i + 1, this));
  }

  start(): void {
    for (const s of this.slots) s.spawn();
  }

  readySlots(): Slot[] {
    return this.slots.filter((s) => s.checkReady() && !s.paused);
  }

  /** Wait until every slot's current incarnation printed its ready line. */
  async waitAllReady(timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!this.slots.every((s) => s.checkReady())) {
      if (Date.now() > until) {
        const slow = this.slots.filter((s) => !s.ready).map((s) => `${s.id}:\n${s.tail()}`);
        throw new Error(`workers not ready after ${timeoutMs} ms:\n${slow.join('\n')}`);
      }
      if (this.crashes.length > 0) this.respawnCrashed();
      await sleep(25);
    }
  }

  /** Respawn slots whose process died on its own (the crash is already recorded). */
  respawnCrashed(): void {
    for (const s of this.slots) if (!s.alive) s.spawn();
  }

  /** Kill every worker (SIGKILL) and wait for them. */
  async stopAll(): Promise<void> {
    for (const s of this.slots) if (s.paused) s.resume();
    await Promise.all(this.slots.map((s) => s.kill()));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
