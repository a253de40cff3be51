/**
 * The `process` runtime: a pool of child processes. Each starts with a clean environment (no store
 * URL, no keys: only PATH, HOME, LANG and TZ), a V8 heap limit, and for `egress: 'none'` tasks its
 * own empty network namespace (`unshare --net`), where the OS allows it. Killed with SIGKILL.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import type { TaskDefinition } from '../task.js';
import { type Channel, IsolatedPool, RUNNER_PATH } from './isolated-pool.js';
import type { FromRunner } from './protocol.js';
import { RuntimeCrashedError } from './runtime.js';

let egressCheck: { enforced: boolean; why?: string } | undefined;

/** Whether this host can start a process with no network (`unshare --net`); checked once. */
export function canEnforceNoEgress(): { enforced: boolean; why?: string } {
  if (!egressCheck) {
    if (process.platform !== 'linux')
      egressCheck = { enforced: false, why: `network namespaces need Linux (this is ${process.platform})` };
    else {
      const r = spawnSync('unshare', ['--net', 'true'], { stdio: 'pipe', timeout: 5000 });
      egressCheck =
        r.status === 0
          ? { enforced: true }
          : {
              enforced: false,
              why: `unshare --net failed: ${(r.stderr?.toString() || r.error?.message || 'unknown').trim()}`,
            };
    }
  }
  return egressCheck;
}

export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() };
  for (const k of ['LANG', 'TZ']) if (process.env[k]) env[k] = process.env[k];
  return env;
}

function spawnProcess(task: TaskDefinition): Channel {
  const nodeArgs = [`--max-old-space-size=${task.memoryLimitMb}`, RUNNER_PATH];
  const noNet = task.egress === 'none';
  const child: ChildProcess = noNet
    ? spawn('unshare', ['--net', '--', process.execPath, ...nodeArgs], {
        stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
        env: cleanEnv(),
      })
    : spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], env: cleanEnv() });
  let stderrTail = '';
  let fatal = false;
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-4096);
    // The handler's own stderr passes through; V8's fatal-error dump does not (the job's error says it).
    fatal ||= /<--- Last few GCs --->|FATAL ERROR|heap out of memory/.test(stderrTail);
    if (!fatal) process.stderr.write(chunk);
  });
  let killed = false;
  const exitListeners: ((e?: RuntimeCrashedError) => void)[] = [];
  child.on('exit', (code, signal) => {
    const oom = /heap out of memory|Reached heap limit/.test(stderrTail);
    const err = oom
      ? new RuntimeCrashedError(
          'out_of_memory',
          `the process ran out of memory (limit ${task.memoryLimitMb} MB)`,
        )
      : killed
        ? new RuntimeCrashedError('runtime_killed', 'the process was killed after ignoring its abort')
        : code === 0
          ? undefined
          : new RuntimeCrashedError(
              'runtime_crashed',
              `the process exited (${signal ? `signal ${signal}` : `code ${code}`})`,
            );
    for (const l of exitListeners) l(err);
  });
  child.on('error', () => undefined); // reported through 'exit'
  return {
    send: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (l) => child.on('message', (m) => l(m as FromRunner)),
    onExit: (l) => exitListeners.push(l),
    kill: () => {
      killed = true;
      child.kill('SIGKILL');
    },
  };
}

export function createProcessRuntime(size: number): IsolatedPool {
  return new IsolatedPool('process', {
    size,
    spawn: spawnProcess,
    keyOf: (t) => `mem=${t.memoryLimitMb};egress=${t.egress}`,
  });
}
