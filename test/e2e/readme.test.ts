/**
 * README.md's commands work as written. Every ```sh block is parsed: the two set-up lines
 * (`npm ci && npm start`, `npm ci && npm test`) are checked against package.json rather than run
 * (npm ci is slow and npm test would recurse); `export` lines set the environment of the lines after
 * them; every `bulkhead …` line is run through `bash -c`, in README order, with a `bulkhead` shim on
 * PATH, in the temp directory where `bulkhead dev` runs as `npm start` would run it (state under
 * ./.bulkhead), and must exit 0. The README says the API is on http://127.0.0.1:8080; the test
 * server listens on a free port instead, so that URL is rewritten to the server's in every line. A
 * line of any other kind fails the test until this file learns to exercise it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/backends.js';
import {
  type Proc,
  REPO,
  runCli,
  runShell,
  serverEnv,
  show,
  spawnCli,
  spawnShell,
  stopAll,
} from './procs.js';

const SETUP = ['npm ci && npm start', 'npm ci && npm test'];
/** Server commands do not exit: they must start, print their ready line, and exit 0 on SIGTERM. */
const SERVER = /^(?:npx\s+)?bulkhead\s+(?:dev|control|worker)\b/;
const READY = /running at http:\S+|listening at http:\S+|worker \S+ running/;

interface Line {
  text: string;
  kind: 'setup' | 'export' | 'bulkhead' | 'other';
  /** The README's `export` lines before this one. */
  exports: string[];
}

/** The command lines of README.md's ```sh blocks (continuations joined, comments and blanks dropped). */
function readmeLines(markdown: string): Line[] {
  const lines: Line[] = [];
  const exports: string[] = [];
  for (const block of markdown.matchAll(/^```sh\n([\s\S]*?)^```\s*$/gm)) {
    const joined = (block[1] ?? '').replace(/\\\n/g, ' ');
    for (const raw of joined.split('\n')) {
      const text = raw.trim();
      if (text === '' || text.startsWith('#')) continue;
      const kind = SETUP.includes(text)
        ? 'setup'
        : /^export\s+\w+=/.test(text)
          ? 'export'
          : /^(?:npx\s+)?bulkhead(?:\s|$)/.test(text)
            ? 'bulkhead'
            : 'other';
      lines.push({ text, kind, exports: [...exports] });
      if (kind === 'export') exports.push(text);
    }
  }
  return lines;
}

const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  scripts: Record<string, string>;
};
const lines = readmeLines(readme);
const commands = lines.filter((l) => l.kind === 'bulkhead');

after(stopAll);

describe('README set-up', () => {
  it('shows `npm ci && npm start` and `npm ci && npm test` verbatim in sh blocks', () => {
    assert.deepEqual(
      lines.filter((l) => l.kind === 'setup').map((l) => l.text),
      SETUP,
    );
  });

  it('has no sh-block line this test does not exercise', () => {
    assert.deepEqual(
      lines.filter((l) => l.kind === 'other').map((l) => l.text),
      [],
      'README sh lines that are neither set-up, export nor bulkhead commands: extend readme.test.ts',
    );
  });

  it('package.json: `npm start` builds and runs the embedded mode; `npm test` exists', () => {
    assert.equal(pkg.bin.bulkhead, 'dist/src/cli/main.js');
    assert.match(pkg.scripts.start ?? '', /^npm run build --silent && node dist\/src\/cli\/main\.js dev$/);
    assert.equal(pkg.scripts.build, 'tsc -p tsconfig.json');
    const test = /^node (\S+)$/.exec(pkg.scripts.test ?? '');
    assert.ok(test, `scripts.test is '${pkg.scripts.test}'`);
    assert.ok(existsSync(join(REPO, test[1] ?? '')), `${test[1]} exists`);
  });

  it('`bulkhead dev` defaults to port 8080 and ./.bulkhead, as the tour says', async () => {
    const tmp = tempDir('bulkhead-e2e-readme-');
    try {
      const r = await runCli(['dev', '--help'], { cwd: tmp.dir });
      assert.equal(r.code, 0, show(r));
      const help = r.stdout.replace(/\s+/g, ' ');
      assert.match(help, /--data-dir <dir> [^(]*(?:\([^)]*\) )*\(default: "\.bulkhead"\)/);
      assert.match(help, /--port <port> [^(]*(?:\([^)]*\) )*\(default: 8080\)/);
    } finally {
      tmp.remove();
    }
  });
});

describe('README tour: every `bulkhead` line in an sh block exits 0', () => {
  const tmp = tempDir('bulkhead-e2e-readme-');
  let dev: Proc | undefined;
  let url = '';

  before(async () => {
    // The tour runs from the repository root: its relative paths (examples/, dist/) resolve there.
    for (const dir of ['examples', 'dist']) symlinkSync(join(REPO, dir), join(tmp.dir, dir));
    // `npm start` in a fresh checkout: `bulkhead dev` with its defaults, but on a free port.
    dev = spawnCli(['dev', '--port', '0'], { cwd: tmp.dir, env: serverEnv() });
    url = (await dev.waitFor(/running at (http:\S+)/))[1] ?? '';
    await dev.waitFor(/^ {2}try: /m);
    assert.ok(existsSync(join(tmp.dir, '.bulkhead/admin-key')), dev.describe());
  });

  after(async () => {
    await stopAll();
    tmp.remove();
  });

  it('the README has bulkhead commands in sh blocks', () => {
    assert.ok(commands.length > 0);
  });

  const local = (text: string) =>
    text
      .replace(/^npx\s+bulkhead\b/, 'bulkhead')
      .replace(/https?:\/\/(?:127\.0\.0\.1|localhost):8080\b/g, url);

  for (const line of commands) {
    it(line.text, async () => {
      const prelude = line.exports.map(local).join('\n');
      if (SERVER.test(line.text)) {
        // Another process beside the tour's dev server: on a free port, then stopped.
        const cmd = local(line.text).replace(/--port\s+\d+/, '--port 0');
        const env = serverEnv({ BULKHEAD_PORT: '0' });
        const p = spawnShell(`${prelude}\nexec ${cmd}`, { cwd: tmp.dir, env });
        await p.waitFor(READY);
        const r = await p.stop(10_000);
        assert.deepEqual([r.code, r.signal], [0, null], p.describe());
        return;
      }
      const r = await runShell(`${prelude}\n${local(line.text)}`, { cwd: tmp.dir });
      assert.equal(r.code, 0, show(r));
    });
  }
});
