/**
 * A private PostgreSQL server for the restart tests: `initdb` into a temp dir, its own port on
 * 127.0.0.1 and its own socket dir, started and stopped with `pg_ctl`. initdb refuses to run as
 * root, so as root every command runs as the `postgres` user (`runuser -u postgres --`) in a
 * directory chowned to it. `destroy()` stops the server (immediate, then SIGKILL of the postmaster
 * if needed) and removes the directory.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The newest `/usr/lib/postgresql/<version>/bin` that has initdb and pg_ctl (or PG_BIN_DIR). */
export function findPgBin(): string | undefined {
  const candidates: string[] = [];
  if (process.env.PG_BIN_DIR) candidates.push(process.env.PG_BIN_DIR);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join(root, v, 'bin'));
  }
  return candidates.find((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl')));
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

export interface PgInstance {
  /** Admin URL: postgres://postgres@127.0.0.1:PORT/postgres. */
  url: string;
  port: number;
  dir: string;
  /** `pg_ctl -m fast stop`: connections are terminated, nothing committed is lost. */
  stop(): Promise<void>;
  /** `pg_ctl start`, waiting until it accepts connections. */
  start(): Promise<void>;
  /** The server's log so far (for failure messages). */
  log(): string;
  /** Stop the server whatever its state and remove its directory. Never throws. */
  destroy(): void;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

function owner(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** Create, configure and start a fresh server. Throws (with its output) when any step fails. */
export async function startPgInstance(bin: string): Promise<PgInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'bulkhead-pg-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const ids = owner();
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const argvOf = (cmd: string, args: string[]) =>
    ids ? ['runuser', '-u', 'postgres', '--', join(bin, cmd), ...args] : [join(bin, cmd), ...args];
  // Async while workers run (the harness must keep polling), sync in setup and teardown.
  const execAsync = (cmd: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const argv = argvOf(cmd, args);
      execFile(argv[0] as string, argv.slice(1), { cwd: dir, timeout: 90_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${argv.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve(),
      );
    });
  const exec = (cmd: string, args: string[], timeoutMs = 60_000) => {
    const argv = argvOf(cmd, args);
    const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: timeoutMs, cwd: dir });
    if (r.status !== 0) {
      throw new Error(
        `${argv.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}${r.error ? `\n${r.error.message}` : ''}`,
      );
    }
    return r.stdout;
  };
  const port = await freePort();
  let started = false;
  const instance: PgInstance = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async start() {
      await execAsync('pg_ctl', [
        '-D',
        data,
        '-l',
        logFile,
        '-o',
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`,
        '-w',
        '-t',
        '60',
        'start',
      ]);
      started = true;
    },
    async stop() {
      await execAsync('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
      started = false;
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    destroy() {
      try {
        if (started || existsSync(join(data, 'postmaster.pid')))
          exec('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], 30_000);
      } catch {
        // Fall back to killing the postmaster by the pid it wrote.
        try {
          const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
          if (pid > 0) process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      started = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    exec('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], 120_000);
    await instance.start();
  } catch (err) {
    instance.destroy();
    throw err;
  }
  return instance;
}
