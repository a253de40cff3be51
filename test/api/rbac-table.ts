/**
 * The RBAC and tenant matrix: what every route of the API answers to every role, with a key of the
 * system tenant and with a key of an ordinary tenant. rbac-matrix.test.ts sends each cell's request
 * and checks the answer; it fails when the app has a route this table does not list, or the table
 * a route the app does not have. docs/SECURITY.md shows this table, rendered by `renderMatrix`
 * (`node scripts/security-doc.mjs` rewrites it; the test fails when it is out of date).
 *
 * A cell is the status class of the answer: `ok` (2xx), `401`, `403` or `404`. `a/b` means `a`
 * with a key of the system tenant and `b` with a key of an ordinary tenant; a single value holds
 * for both. "Own" resources belong to the caller's tenant, "another tenant's" to a third tenant.
 */
import { fileURLToPath } from 'node:url';
import { ROLES } from '../../src/ledger/registry.js';

const TABLE = `
route                               | case                                    | no key | admin  | operator | submitter | approver | auditor | worker
GET /healthz                        | liveness                                | ok     | ok     | ok       | ok        | ok       | ok      | ok
GET /v1/openapi.json                | the API description                     | ok     | ok     | ok       | ok        | ok       | ok      | ok
GET /v1/health                      | health of each plane                    | 401    | ok     | ok       | ok        | ok       | ok      | ok
POST /v1/jobs                       | submit                                  | 401    | ok     | ok       | ok        | 403      | 403     | 403
POST /v1/jobs/batch                 | submit a batch                          | 401    | ok     | ok       | ok        | 403      | 403     | 403
GET /v1/jobs                        | list (own jobs)                         | 401    | ok     | ok       | ok        | ok       | ok      | 403
GET /v1/jobs/:id                    | own job                                 | 401    | ok     | ok       | ok        | ok       | ok      | 403
GET /v1/jobs/:id                    | another tenant's job                    | 401    | 404    | 404      | 404       | 404      | 404     | 403
GET /v1/jobs/:id/result             | own job                                 | 401    | ok     | ok       | ok        | ok       | ok      | 403
GET /v1/jobs/:id/result             | another tenant's job                    | 401    | 404    | 404      | 404       | 404      | 404     | 403
POST /v1/jobs/:id/cancel            | own job                                 | 401    | ok     | ok       | ok        | 403      | 403     | 403
POST /v1/jobs/:id/cancel            | another tenant's job                    | 401    | 404    | 404      | 404       | 403      | 403     | 403
POST /v1/jobs/:id/retry             | own job                                 | 401    | ok     | ok       | ok        | 403      | 403     | 403
POST /v1/jobs/:id/retry             | another tenant's job                    | 401    | 404    | 404      | 404       | 403      | 403     | 403
POST /v1/jobs/:id/approve           | own job awaiting approval               | 401    | ok     | 403      | 403       | ok       | 403     | 403
POST /v1/jobs/:id/approve           | another tenant's job                    | 401    | 404    | 403      | 403       | 404      | 403     | 403
POST /v1/jobs/:id/reject            | own job awaiting approval               | 401    | ok     | 403      | 403       | ok       | 403     | 403
POST /v1/jobs/:id/reject            | another tenant's job                    | 401    | 404    | 403      | 403       | 404      | 403     | 403
POST /v1/jobs/:id/readmit           | own job blocked for invalid authority   | 401    | ok     | 403      | 403       | 403      | 403     | 403
POST /v1/jobs/:id/readmit           | another tenant's job                    | 401    | 404    | 403      | 403       | 403      | 403     | 403
POST /v1/tenants                    | create a tenant                         | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
GET /v1/tenants                     | list (own; the system tenant: all)      | 401    | ok     | 403      | 403       | 403      | 403     | 403
POST /v1/tenants/:tenant/keys       | own tenant                              | 401    | ok     | 403      | 403       | 403      | 403     | 403
POST /v1/tenants/:tenant/keys       | another tenant                          | 401    | ok/404 | 403      | 403       | 403      | 403     | 403
GET /v1/tenants/:tenant/keys        | own tenant                              | 401    | ok     | 403      | 403       | 403      | 403     | 403
GET /v1/tenants/:tenant/keys        | another tenant                          | 401    | ok/404 | 403      | 403       | 403      | 403     | 403
POST /v1/keys/:id/revoke            | own tenant's key                        | 401    | ok     | 403      | 403       | 403      | 403     | 403
POST /v1/keys/:id/revoke            | another tenant's key                    | 401    | ok/404 | 403      | 403       | 403      | 403     | 403
POST /v1/events/prune               | prune the outbox                        | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
GET /v1/evidence                    | own trail                               | 401    | ok     | 403      | 403       | 403      | ok      | 403
GET /v1/evidence                    | another tenant's trail                  | 401    | ok/404 | 403      | 403       | 403      | ok/404  | 403
GET /v1/evidence/verify             | verify the whole log                    | 401    | ok/403 | 403      | 403       | 403      | ok/403  | 403
GET /v1/evidence/export             | export (others' entries as stubs)       | 401    | ok     | 403      | 403       | 403      | ok      | 403
POST /v1/evidence/redact            | own entries                             | 401    | ok     | 403      | 403       | 403      | ok      | 403
POST /v1/evidence/redact            | another tenant's entries                | 401    | ok/404 | 403      | 403       | 403      | ok/404  | 403
POST /v1/evidence/corrections       | own entry                               | 401    | ok     | 403      | 403       | 403      | ok      | 403
POST /v1/evidence/corrections       | another tenant's entry                  | 401    | ok/404 | 403      | 403       | 403      | ok/404  | 403
GET /v1/evidence/holds              | list (own)                              | 401    | ok     | 403      | 403       | 403      | ok      | 403
POST /v1/evidence/holds             | own correlation id                      | 401    | ok     | 403      | 403       | 403      | ok      | 403
POST /v1/evidence/holds             | another tenant                          | 401    | ok/404 | 403      | 403       | 403      | ok/404  | 403
POST /v1/evidence/holds/:id/release | own hold                                | 401    | ok     | 403      | 403       | 403      | ok      | 403
POST /v1/evidence/holds/:id/release | another tenant's hold                   | 401    | ok/404 | 403      | 403       | 403      | ok/404  | 403
POST /v1/evidence/retention         | apply retention now                     | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
GET /v1/config                      | the signed snapshot (whole document)    | 401    | ok/403 | ok/403   | 403       | 403      | ok/403  | ok/403
POST /v1/config                     | publish                                 | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
POST /v1/config/validate            | validate a document (reads nothing)     | 401    | ok     | ok       | ok        | ok       | ok      | 403
GET /v1/config/versions             | versions and rollout                    | 401    | ok/403 | ok/403   | 403       | 403      | ok/403  | 403
GET /v1/config/versions/:version    | one version's document                  | 401    | ok/403 | ok/403   | 403       | 403      | ok/403  | 403
POST /v1/config/rollback            | roll back                               | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
POST /v1/config/promote             | promote the canary                      | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
POST /v1/config/abort               | abort the canary                        | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
POST /v1/control/mode               | set the control plane's mode            | 401    | ok/403 | 403      | 403       | 403      | 403     | 403
POST /v1/workers/:id/config-report  | with the key the worker registered with | 401    | 403    | 403      | 403       | 403      | 403     | ok/403
POST /v1/workers/:id/config-report  | with another worker's key               | 401    | 403    | 403      | 403       | 403      | 403     | 403
POST /v1/workers/:id/config-report  | for a worker that recorded no key       | 401    | 403    | 403      | 403       | 403      | 403     | 403
POST /v1/workers/:id/config-report  | for an unregistered worker              | 401    | 403    | 403      | 403       | 403      | 403     | 403
GET /v1/recovery                    | recovery report                         | 401    | ok     | ok       | 403       | 403      | ok      | 403
GET /v1/workers                     | the fleet                               | 401    | ok/403 | ok/403   | 403       | 403      | ok/403  | 403
`;

/** What a key that passes gets, where the table's `ok` does not say it all. */
export const NOTES: Record<string, string> = {
  'GET /v1/health':
    "a key of the system tenant gets every section's details; another tenant's key only each section's status (the details are the deployment's: config version and signer, NACKs, worker ids, store errors)",
  'GET /v1/recovery':
    "a key of the system tenant gets the whole deployment, with the config changes; another tenant's key gets its own jobs' counts and ids (`tenant` is set) and no config changes",
  'GET /v1/tenants': 'an ordinary tenant sees itself only',
  'GET /v1/evidence/export': "another tenant's entries are stubs (hash only) in an ordinary tenant's bundle",
  'GET /v1/evidence/holds':
    'an ordinary tenant sees its own holds and system holds on correlation ids its entries carry',
  'POST /v1/workers/:id/config-report':
    "403 for any key that is not the worker's own (see the rule above); every such refusal is recorded as a `security.report_refused` event",
};

export type Status = 'ok' | '401' | '403' | '404';
export const STATUSES: readonly Status[] = ['ok', '401', '403', '404'];
export const COLUMNS = ['no key', ...ROLES] as const;

export interface Row {
  method: string;
  url: string;
  case: string;
  /** `${method} ${url}` — the key of the route in the app. */
  route: string;
  /** `${route} · ${case}` — the key of the request builder. */
  key: string;
  /** Per column (no key, then ROLES order): the answer to a key of the system tenant and of an ordinary tenant. */
  cells: { system: Status; tenant: Status; text: string }[];
}

function status(text: string, where: string): Status {
  if (!(STATUSES as readonly string[]).includes(text)) throw new Error(`${where}: '${text}' is not a cell`);
  return text as Status;
}

function parse(text: string): Row[] {
  const [header, ...lines] = text.trim().split('\n');
  const names = (header ?? '').split('|').map((c) => c.trim());
  if (names.slice(2).join() !== COLUMNS.join()) throw new Error(`the table's columns are ${names.join()}`);
  return lines.map((line) => {
    const [route = '', kase = '', ...cells] = line.split('|').map((c) => c.trim());
    const [method = '', url = ''] = route.split(' ');
    if (cells.length !== COLUMNS.length) throw new Error(`row '${line}' has ${cells.length} cells`);
    return {
      method,
      url,
      case: kase,
      route,
      key: `${route} · ${kase}`,
      cells: cells.map((c) => {
        const [system = '', tenant = system] = c.split('/');
        return { system: status(system, line), tenant: status(tenant, line), text: c };
      }),
    };
  });
}

export const ROWS: readonly Row[] = parse(TABLE);

/** The markdown of the matrix: a table with one row per case, then the notes. */
export function renderMatrix(): string {
  const head = ['Route', 'Case', ...COLUMNS];
  const body = ROWS.map((r) => [`\`${r.route}\``, r.case, ...r.cells.map((c) => c.text)]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const notes = Object.entries(NOTES).map(([route, note]) => `- \`${route}\`: ${note}.`);
  return [
    line(head),
    line(head.map((_, i) => (i < 2 ? '---' : ':---:'))),
    ...body.map(line),
    '',
    ...notes,
  ].join('\n');
}

/** docs/SECURITY.md (this file runs as dist/test/api/rbac-table.js). */
export const SECURITY_DOC = fileURLToPath(new URL('../../../docs/SECURITY.md', import.meta.url));

export const BEGIN =
  '<!-- rbac-matrix:begin — rendered from test/api/rbac-table.ts by `node scripts/security-doc.mjs`; do not edit -->';
export const END = '<!-- rbac-matrix:end -->';

/** `doc` with the text between the matrix markers replaced by the rendered matrix. */
export function withMatrix(doc: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/SECURITY.md needs the markers ${BEGIN} and ${END}`);
  return `${doc.slice(0, start + BEGIN.length)}\n\n${renderMatrix()}\n\n${doc.slice(end)}`;
}
