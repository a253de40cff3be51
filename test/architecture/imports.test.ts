/**
 * DESIGN.md §1's import rules, checked over every .ts file under src/: no import cycles, and each
 * plane imports only what the table below allows. Type-only imports count, for the plane rules (a
 * plane's types are part of its internals) and for cycles alike. Only relative specifiers are ours:
 * packages and `node:` builtins are ignored. An import of a file that does not exist (yet) still counts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * One import rule. `importers`/`except` select files by repo-relative glob (`**` = any depth, `*` =
 * within one path segment). An import of ours by a selected file breaks the rule when `allow` is set
 * and matches none of it, or when it matches `deny`.
 */
interface Rule {
  id: string;
  text: string;
  importers: string[];
  except?: string[];
  allow?: string[];
  deny?: string[];
}

const UTIL = 'src/util/**';
const RULES: readonly Rule[] = [
  {
    id: 'lifecycle-is-pure',
    text: 'src/lifecycle imports nothing of ours outside src/lifecycle',
    importers: ['src/lifecycle/**'],
    allow: ['src/lifecycle/**'],
  },
  {
    id: 'ledger-below-planes',
    text: 'src/ledger imports only src/ledger, src/lifecycle and src/util',
    importers: ['src/ledger/**'],
    allow: ['src/ledger/**', 'src/lifecycle/**', UTIL],
  },
  {
    id: 'execution-uses-clients-and-snapshot-types',
    text: 'src/execution imports lifecycle, ledger, data, evidence, util and, of control, only the signed formats it verifies (snapshot*.ts, authority.ts, contract.ts) and control/types',
    importers: ['src/execution/**'],
    allow: [
      'src/execution/**',
      'src/lifecycle/**',
      'src/ledger/**',
      'src/data/**',
      'src/evidence/**',
      UTIL,
      'src/control/**/snapshot*.ts',
      'src/control/authority.ts',
      'src/control/contract.ts',
      'src/control/types/**',
    ],
  },
  {
    id: 'control-not-execution',
    text: 'src/control never imports src/execution',
    importers: ['src/control/**'],
    deny: ['src/execution/**'],
  },
  {
    id: 'data-evidence-independent',
    text: 'src/data and src/evidence import neither src/control nor src/execution',
    importers: ['src/data/**', 'src/evidence/**'],
    deny: ['src/control/**', 'src/execution/**'],
  },
  {
    id: 'util-is-leaf',
    text: 'src/util imports nothing of ours outside src/util',
    importers: [UTIL],
    allow: [UTIL],
  },
  // Later planes (src/api, src/cli, src/sdk, src/web, src/events) may import anything, except:
  {
    id: 'nothing-imports-cli',
    text: 'nothing under src/ outside src/cli imports src/cli',
    importers: ['src/**'],
    except: ['src/cli/**'],
    deny: ['src/cli/**'],
  },
  {
    id: 'sdk-not-api-or-cli',
    text: 'src/sdk imports neither src/api nor src/cli',
    importers: ['src/sdk/**'],
    deny: ['src/api/**', 'src/cli/**'],
  },
];

/** Repo-relative file -> repo-relative files it imports (ours only). */
type Graph = ReadonlyMap<string, readonly string[]>;
interface Violation {
  importer: string;
  imported: string;
  rule: string;
  message: string;
}

function glob(pattern: string): RegExp {
  const body = pattern
    .split(/(\*\*\/|\*\*|\*)/)
    .map((part) =>
      part === '**/'
        ? '(?:.*/)?'
        : part === '**'
          ? '.*'
          : part === '*'
            ? '[^/]*'
            : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${body}$`);
}
const matches = (patterns: readonly string[] | undefined, file: string) =>
  (patterns ?? []).some((p) => glob(p).test(file));

function findViolations(graph: Graph, rules: readonly Rule[]): Violation[] {
  const out: Violation[] = [];
  for (const [importer, targets] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    for (const rule of rules) {
      if (!matches(rule.importers, importer) || matches(rule.except, importer)) continue;
      for (const imported of targets) {
        const broken =
          (rule.allow !== undefined && !matches(rule.allow, imported)) || matches(rule.deny, imported);
        if (broken)
          out.push({
            importer,
            imported,
            rule: rule.id,
            message: `${importer} imports ${imported}: breaks '${rule.id}' (${rule.text})`,
          });
      }
    }
  }
  return out;
}

/**
 * The cycles a depth-first walk meets (at least one if there is any), each as the files in import
 * order starting from its alphabetically first file, which is repeated at the end.
 */
function findCycles(graph: Graph): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (file: string) => {
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      const at = stack.indexOf(next);
      if (at >= 0) {
        const ring = stack.slice(at);
        const first = ring.indexOf([...ring].sort()[0]!);
        const cycle = [...ring.slice(first), ...ring.slice(0, first), ring[first]!];
        if (!cycles.some((c) => c.join() === cycle.join())) cycles.push(cycle);
      } else if (!done.has(next)) visit(next);
    }
    stack.pop();
    done.add(file);
  };
  for (const file of [...graph.keys()].sort()) if (!done.has(file)) visit(file);
  return cycles;
}

/** The module specifiers a source file names: static imports, re-exports, `import('...')`, not comments. */
function specifiers(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

/** A relative specifier of `importer` as a repo-relative source path (`.js` -> `.ts`, directory -> index). */
function resolve(importer: string, spec: string, exists: (file: string) => boolean): string | undefined {
  if (!spec.startsWith('./') && !spec.startsWith('../')) return undefined;
  const base = posix.normalize(posix.join(posix.dirname(importer), spec));
  const swapped = base
    .replace(/\.js$/, '.ts')
    .replace(/\.mjs$/, '.mts')
    .replace(/\.cjs$/, '.cts');
  const candidates = [swapped, base.replace(/\.js$/, '.tsx'), `${base}.ts`, `${base}/index.ts`];
  return candidates.find(exists) ?? swapped;
}

function buildGraph(root: string): Graph {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(posix.join(root, dir), { withFileTypes: true })) {
      const rel = posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (/\.[mc]?tsx?$/.test(entry.name)) files.push(rel);
    }
  };
  walk('src');
  const exists = (file: string) =>
    statSync(posix.join(root, file), { throwIfNoEntry: false })?.isFile() ?? false;
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = specifiers(readFileSync(posix.join(root, file), 'utf8'))
      .map((spec) => resolve(file, spec, exists))
      .filter((t): t is string => t !== undefined);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

const root = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\\/g, '/');
const graph = buildGraph(root);

describe('architecture: import rules over src/ (DESIGN.md §1)', () => {
  it('reads the source tree and sees its internal imports', () => {
    assert.ok(graph.has('src/lifecycle/lifecycle.ts'), 'src/lifecycle/lifecycle.ts not found');
    const edges = [...graph.values()].flat();
    assert.ok(
      edges.includes('src/lifecycle/lifecycle.ts'),
      'no import of src/lifecycle seen: the parser is broken',
    );
  });

  it('has no import cycles', () => {
    const cycles = findCycles(graph);
    assert.deepEqual(cycles, [], `import cycle(s):\n${cycles.map((c) => `  ${c.join(' -> ')}`).join('\n')}`);
  });

  for (const rule of RULES) {
    it(`${rule.id}: ${rule.text}`, () => {
      const found = findViolations(graph, [rule]).map((v) => v.message);
      assert.deepEqual(found, [], found.join('\n'));
    });
  }
});

describe('architecture: the checker itself', () => {
  it('reports a cycle and forbidden edges in a fake graph', () => {
    const fake: Graph = new Map([
      ['src/lifecycle/a.ts', ['src/lifecycle/b.ts', 'src/ledger/store.ts']],
      ['src/lifecycle/b.ts', []],
      ['src/ledger/store.ts', ['src/ledger/rows.ts', 'src/util/log.ts', 'src/lifecycle/b.ts']],
      ['src/ledger/rows.ts', ['src/ledger/store.ts']],
      ['src/util/log.ts', []],
      [
        'src/execution/worker.ts',
        [
          'src/control/snapshot.ts',
          'src/control/types/config.ts',
          'src/control/admission.ts',
          'src/ledger/rows.ts',
        ],
      ],
      ['src/control/admission.ts', ['src/control/snapshot.ts']],
      ['src/api/server.ts', ['src/cli/main.ts', 'src/execution/worker.ts']],
      ['src/sdk/client.ts', ['src/api/server.ts']],
    ]);
    assert.deepEqual(findCycles(fake), [['src/ledger/rows.ts', 'src/ledger/store.ts', 'src/ledger/rows.ts']]);
    const found = findViolations(fake, RULES);
    assert.deepEqual(
      found.map((v) => [v.importer, v.imported, v.rule]),
      [
        ['src/api/server.ts', 'src/cli/main.ts', 'nothing-imports-cli'],
        ['src/execution/worker.ts', 'src/control/admission.ts', 'execution-uses-clients-and-snapshot-types'],
        ['src/lifecycle/a.ts', 'src/ledger/store.ts', 'lifecycle-is-pure'],
        ['src/sdk/client.ts', 'src/api/server.ts', 'sdk-not-api-or-cli'],
      ],
    );
    for (const v of found)
      for (const part of [v.importer, v.imported, v.rule]) assert.ok(v.message.includes(part));
  });

  it('finds every kind of import and resolves it to the .ts file', () => {
    const source = [
      "// import { gone } from './commented.js';",
      "import {\n  a,\n  b,\n} from './multi.js';",
      "import type { T } from '../lifecycle/lifecycle.js';",
      "export * from './reexport.js';",
      'export { y } from "./dir";',
      "const u = 'postgres://host/db';",
      "const m = await import('./postgres/postgres-store.js');",
      "import pg from 'pg';",
    ].join('\n');
    const specs = specifiers(source);
    assert.deepEqual(specs, [
      './multi.js',
      '../lifecycle/lifecycle.js',
      './reexport.js',
      './dir',
      './postgres/postgres-store.js',
      'pg',
    ]);
    const exists = (f: string) => f === 'src/ledger/dir/index.ts';
    assert.deepEqual(
      specs.map((s) => resolve('src/ledger/open.ts', s, exists)),
      [
        'src/ledger/multi.ts',
        'src/lifecycle/lifecycle.ts',
        'src/ledger/reexport.ts',
        'src/ledger/dir/index.ts',
        'src/ledger/postgres/postgres-store.ts',
        undefined,
      ],
    );
  });
});
