/**
 * The RBAC and tenant matrix (rbac-table.ts), checked against the whole app on both backends: every
 * route, every role, a key of the system tenant and a key of an ordinary tenant, no key at all, and
 * for tenant-owned resources the caller's own and another tenant's. A GET row is checked for HEAD
 * too. The table must list exactly the app's routes (as Fastify prints them), so a route added
 * without a row fails here. docs/SECURITY.md must show the table as rendered now.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ROLES, SYSTEM_TENANT } from '../../src/ledger/registry.js';
import { backends } from '../helpers/backends.js';
import { call } from './api-fixture.js';
import { createMatrixFixture, type MatrixFixture, TENANT } from './rbac-fixture.js';
import { type Caller, type CellContext, REQUESTS } from './rbac-requests.js';
import { COLUMNS, ROWS, SECURITY_DOC, type Status, withMatrix } from './rbac-table.js';

/**
 * `METHOD /url` of every route, from `printRoutes({ commonPrefix: false })`: a tree whose lines are
 * `<indent>├── <path segment> (<METHODS>)`, the indent four characters per level. A line of any
 * other shape fails, so a change of that format cannot make routes vanish from the check.
 */
function appRoutes(app: FastifyInstance): Set<string> {
  const routes = new Set<string>();
  const path: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    if (line.trim() === '') continue;
    const m = /^((?:│ {3}| {4})*)[├└]── (\S+)(?: \(([A-Z, -]+)\))?$/.exec(line);
    if (!m) throw new Error(`printRoutes printed a line this parser does not know: '${line}'`);
    const depth = (m[1] ?? '').length / 4;
    path.length = depth;
    path.push(m[2] ?? '');
    for (const method of (m[3] ?? '').split(', ').filter((x) => /^[A-Z]+$/.test(x)))
      routes.add(`${method} ${path.join('')}`);
  }
  if (!routes.has('GET /healthz'))
    throw new Error('the printed routes lack GET /healthz: the parser is wrong');
  return routes;
}

const classOf = (code: number): string => (code >= 200 && code < 300 ? 'ok' : String(code));

/** Why the answer is not the expected one, or undefined when it is. */
function mismatch(res: LightMyRequestResponse, want: Status, head: boolean): string | undefined {
  const got = classOf(res.statusCode);
  if (got !== want) return `expected ${want}, got ${res.statusCode} ${res.body.slice(0, 200)}`;
  if (head || want === 'ok') return undefined;
  if (!String(res.headers['content-type']).startsWith('application/problem+json'))
    return `a ${want} that is not problem+json`;
  const code = (res.json() as { code?: string }).code ?? '';
  const ok =
    want === '404' ? code.endsWith('_not_found') : code === { 401: 'unauthorized', 403: 'forbidden' }[want];
  return ok ? undefined : `a ${want} with code '${code}'`;
}

for (const backend of backends()) {
  describe(`RBAC and tenant matrix on ${backend.dialect}`, () => {
    let fx: MatrixFixture;
    before(async () => {
      fx = await createMatrixFixture(backend);
    });
    after(() => fx?.close());

    it('the table lists every route of the app (HEAD with its GET), and no route the app lacks', () => {
      const inApp = [...appRoutes(fx.app)].filter((r) => {
        const [method, url] = r.split(' ');
        return !(method === 'HEAD' && ROWS.some((row) => row.route === `GET ${url}`));
      });
      const inTable = new Set(ROWS.map((r) => r.route));
      assert.deepEqual(
        inApp.filter((r) => !inTable.has(r)),
        [],
        'routes without a row in test/api/rbac-table.ts: add one (then run node scripts/security-doc.mjs)',
      );
      assert.deepEqual(
        [...inTable].filter((r) => !inApp.includes(r)),
        [],
        'rows of routes the app does not have',
      );
      assert.deepEqual(
        ROWS.filter((r) => !REQUESTS[r.key]).map((r) => r.key),
        [],
        'rows without a request in rbac-requests.ts',
      );
    });

    it('every cell answers as the table says', async () => {
      const wrong: string[] = [];
      const callers = (column: number): { caller: Caller | null; tenantKey: boolean }[] => {
        const role = ROLES[column - 1];
        if (role === undefined) return [{ caller: null, tenantKey: true }];
        return ([SYSTEM_TENANT, TENANT] as const).map((tenant) => ({
          caller: { tenant, role, ...fx.keys[tenant][role] },
          tenantKey: tenant !== SYSTEM_TENANT,
        }));
      };
      for (const row of ROWS) {
        const build = REQUESTS[row.key];
        if (!build) continue;
        for (const [column, cell] of row.cells.entries()) {
          for (const { caller, tenantKey } of callers(column)) {
            const want = tenantKey ? cell.tenant : cell.system;
            for (const method of row.method === 'GET' ? ['GET', 'HEAD'] : [row.method]) {
              const context: CellContext = { fx, caller, own: caller?.tenant ?? TENANT };
              const prepared = await build(context);
              const res = await call(fx.app, {
                method: method as 'GET',
                url: prepared.url,
                key: caller?.key ?? null,
                ...(prepared.body !== undefined && { body: prepared.body }),
              });
              await prepared.after?.();
              const why = mismatch(res, want, method === 'HEAD');
              const who = caller ? `${caller.role} of ${tenantKey ? 'a tenant' : 'the system'}` : 'no key';
              if (why) wrong.push(`${method} ${row.url} · ${row.case} [${who}]: ${why}`);
            }
          }
        }
      }
      assert.deepEqual(wrong, [], `${wrong.length} cells differ from test/api/rbac-table.ts`);
    });
  });
}

describe('docs/SECURITY.md', () => {
  it(`shows the matrix as test/api/rbac-table.ts renders it (${COLUMNS.length} columns)`, () => {
    const doc = readFileSync(SECURITY_DOC, 'utf8');
    assert.ok(
      doc === withMatrix(doc),
      'docs/SECURITY.md is out of date with test/api/rbac-table.ts: run node scripts/security-doc.mjs',
    );
  });
});
