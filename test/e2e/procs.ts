/**
 * Real `bulkhead` processes for the end-to-end tests: long-running servers (`dev`, `control`,
 * `worker`) whose output is captured and awaited line by line, and one-shot commands that return
 * `{ code, signal, stdout, stderr }`. Every process spawned here is tracked; `stopAll()` (call it
 * from `after()`) sends SIGTERM and, after 5 s, SIGKILL, so nothing outlives the test file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/test/e2e/procs.js). */
export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const CLI = join(REPO, 'dist/src/cli/main.js');
export const DEMO_TASKS = join(REPO, 'dist/examples/demo/tasks.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  cwd: string;
  /** Added to the environment (after every inherited BULKHEAD_* variable is removed). */
  env?: Record<string, string | undefined>;
}

/** The parent environment without any BULKHEAD_* variable, plus `extra`. */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BULKHEAD_')) env[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** The environment for servers: quiet logs. */
export const serverEnv = (extra: Record<string, string | undefined> = {}) =>
  childEnv({ BULKHEAD_LOG_LEVEL: 'warn', ...extra });

const live = new Set<Proc>();

export class Proc {
  stdout = '';
  stderr = '';
  readonly exited: Promise<RunResult>;
  private result: RunResult | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    live.add(this);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      this.notify();
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      this.notify();
    });
    this.exited = new Promise((resolveExit) => {
      child.on('error', (err) => {
        this.stderr += `spawn error: ${err.message}\n`;
      });
      child.on('close', (code, signal) => {
        live.delete(this);
        this.result = { code, signal, stdout: this.stdout, stderr: this.stderr };
        this.notify();
        resolveExit(this.result);
      });
    });
  }

  get running(): boolean {
    return this.result === undefined;
  }

  /** Resolve with the first match of `re` in stdout+stderr; reject on exit or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return new Promise((resolveMatch, reject) => {
      const check = () => {
        const m = re.exec(this.stdout) ?? re.exec(this.stderr);
        if (m) return done(() => resolveMatch(m));
        if (this.result)
          return done(() =>
            reject(
              new Error(
                `${this.label} exited (${this.result?.code ?? this.result?.signal}) before printing ${re}\n${this.describe()}`,
              ),
            ),
          );
      };
      const timer = setTimeout(
        () =>
          done(() => reject(new Error(`${this.label}: no ${re} within ${timeoutMs} ms\n${this.describe()}`))),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** SIGTERM, then SIGKILL if still running after `graceMs`; resolves with how it ended. */
  async stop(graceMs = 5_000): Promise<RunResult> {
    if (this.result) return this.result;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  describe(): string {
    return `--- stdout of ${this.label}\n${this.stdout}--- stderr\n${this.stderr}---`;
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

/** Start `bulkhead <args>` and leave it running. */
export function spawnCli(args: string[], options: SpawnOptions): Proc {
  return spawnProc(process.execPath, [CLI, ...args], options, `bulkhead ${args.join(' ')}`);
}

function spawnProc(cmd: string, args: string[], options: SpawnOptions, label: string): Proc {
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Proc(child, label);
}

/** Run `bulkhead <args>` to completion (killed after `timeoutMs`). */
export function runCli(args: string[], options: SpawnOptions & { timeoutMs?: number }): Promise<RunResult> {
  return finish(spawnCli(args, options), options.timeoutMs);
}

/** Start `script` with `bash -c`, with a `bulkhead` shim (this checkout's CLI) first on PATH. */
export function spawnShell(script: string, options: SpawnOptions): Proc {
  const bin = join(options.cwd, '.e2e-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'bulkhead'),
    `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(CLI)} "$@"\n`,
    { mode: 0o755 },
  );
  const env = { ...options.env, PATH: `${bin}:${options.env?.PATH ?? process.env.PATH ?? ''}` };
  return spawnProc('bash', ['-c', script], { ...options, env }, `bash -c ${script}`);
}

/** Run `script` to completion like `spawnShell` (killed after `timeoutMs`). */
export function runShell(script: string, options: SpawnOptions & { timeoutMs?: number }): Promise<RunResult> {
  return finish(spawnShell(script, options), options.timeoutMs);
}

async function finish(proc: Proc, timeoutMs = 120_000): Promise<RunResult> {
  const timer = setTimeout(() => {
    proc.stderr += `\n[e2e] killed after ${timeoutMs} ms\n`;
    void proc.stop();
  }, timeoutMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Stop every process this file started (for `after()`). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

/**
 * Start `bulkhead <args>` `times` times and send SIGTERM as soon as `ready` is printed; returns how
 * each run ended as `code/signal` (a server that printed its ready line must shut down cleanly).
 */
export async function sigtermAtReady(
  args: string[],
  ready: RegExp,
  options: SpawnOptions,
  times = 5,
): Promise<string[]> {
  const ends: string[] = [];
  for (let i = 0; i < times; i++) {
    const p = spawnCli(args, options);
    await p.waitFor(ready);
    const r = await p.stop(10_000);
    ends.push(`${r.code}/${r.signal}`);
  }
  return ends;
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Parse stdout as JSON, with the whole output in the error when it is not. */
export function json<T = Record<string, unknown>>(r: RunResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** A readable message for assertions on a command's exit code. */
export const show = (r: RunResult) =>
  `exit ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
