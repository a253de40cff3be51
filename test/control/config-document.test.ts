/**
 * The config document (DESIGN §4): YAML and JSON parse to the same validated document with defaults
 * applied; every problem is reported with its path, all at once; bad YAML, duplicate keys and
 * unknown enum values are refused with messages that name what was wrong; `needsFreshControl`
 * follows `effect` unless overridden; and validation never throws, whatever it is given.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type ConfigDocument,
  type ConfigProblem,
  type ParseResult,
  parseConfig,
  type TaskTypeConfig,
  validateConfig,
} from '../../src/control/config/document.js';
import { needsFreshControl } from '../../src/control/contract.js';

function okDoc(r: ParseResult): ConfigDocument {
  if (!r.ok) assert.fail(`expected a valid document, got problems: ${JSON.stringify(r.problems)}`);
  return r.document;
}
function problemsOf(r: ParseResult): ConfigProblem[] {
  if (r.ok) assert.fail(`expected problems, the document was accepted: ${JSON.stringify(r.document)}`);
  return r.problems;
}
function task(fields: Record<string, unknown>): TaskTypeConfig {
  const t = okDoc(validateConfig({ taskTypes: [{ name: 't', ...fields }] })).taskTypes[0];
  assert.ok(t, 'the task type was parsed');
  return t;
}

const YAML_DOC = `
configTtlMs: 600000
tenants:
  - name: acme
  - name: globex
taskTypes:
  - name: media.resize
  - name: billing.refund
    version: 2
    input: { type: object, required: [orderId] }
    queue: payments
    runtime: process
    timeoutMs: 120000
    leaseMs: 15000
    maxAttempts: 5
    backoff: { baseMs: 500, maxMs: 60000 }
    effect: destructive
    freshControl: true
    evidence: required
    approval: true
    maxClassification: confidential
    egress: none
policies:
  - roles: [submitter]
    tasks: ['media.*']
  - tenant: acme
    roles: [operator, admin]
    tasks: [billing.refund]
    approval: true
quotas:
  acme: { maxQueued: 1000, maxRunning: 10, submitPerSecond: 2.5, maxPayloadBytes: 65536 }
retention: { evidenceDays: 365 }
`;

const RAW_DOC = {
  configTtlMs: 600_000,
  tenants: [{ name: 'acme' }, { name: 'globex' }],
  taskTypes: [
    { name: 'media.resize' },
    {
      name: 'billing.refund',
      version: 2,
      input: { type: 'object', required: ['orderId'] },
      queue: 'payments',
      runtime: 'process',
      timeoutMs: 120_000,
      leaseMs: 15_000,
      maxAttempts: 5,
      backoff: { baseMs: 500, maxMs: 60_000 },
      effect: 'destructive',
      freshControl: true,
      evidence: 'required',
      approval: true,
      maxClassification: 'confidential',
      egress: 'none',
    },
  ],
  policies: [
    { roles: ['submitter'], tasks: ['media.*'] },
    { tenant: 'acme', roles: ['operator', 'admin'], tasks: ['billing.refund'], approval: true },
  ],
  quotas: { acme: { maxQueued: 1000, maxRunning: 10, submitPerSecond: 2.5, maxPayloadBytes: 65_536 } },
  retention: { evidenceDays: 365 },
};

const EXPECTED: ConfigDocument = {
  configTtlMs: 600_000,
  freshnessMs: 30_000,
  evidenceMaxLag: 10_000,
  tenants: [{ name: 'acme' }, { name: 'globex' }],
  taskTypes: [
    {
      name: 'media.resize',
      version: 1,
      queue: 'default',
      runtime: 'inline',
      timeoutMs: 60_000,
      leaseMs: 30_000,
      maxAttempts: 3,
      backoff: { baseMs: 1000, maxMs: 300_000 },
      effect: 'write',
      evidence: 'buffered',
      approval: false,
      approvals: 1,
      maxClassification: 'internal',
      egress: 'any',
    },
    { ...(RAW_DOC.taskTypes[1] as unknown as TaskTypeConfig), approvals: 1 },
  ],
  policies: [
    { tenant: '*', roles: ['submitter'], tasks: ['media.*'], approval: false },
    { tenant: 'acme', roles: ['operator', 'admin'], tasks: ['billing.refund'], approval: true },
  ],
  quotas: RAW_DOC.quotas,
  retention: { evidenceDays: 365 },
};

describe('config document: parsing', () => {
  it('parses a full YAML document, applying defaults to what it leaves out', () => {
    assert.deepEqual(okDoc(parseConfig(YAML_DOC)), EXPECTED);
  });

  it('parses the same document written as JSON (compact and pretty) to the same result', () => {
    assert.deepEqual(okDoc(parseConfig(JSON.stringify(RAW_DOC))), EXPECTED);
    assert.deepEqual(okDoc(parseConfig(JSON.stringify(RAW_DOC, null, 2))), okDoc(parseConfig(YAML_DOC)));
    assert.deepEqual(okDoc(validateConfig(RAW_DOC)), EXPECTED);
  });

  it('an empty document (text or object) is all defaults', () => {
    const none = { tenants: [], taskTypes: [], policies: [] };
    const defaults = {
      configTtlMs: 300_000,
      freshnessMs: 30_000,
      evidenceMaxLag: 10_000,
      quotas: {},
      retention: {},
      ...none,
    };
    assert.deepEqual(okDoc(parseConfig('')), defaults);
    assert.deepEqual(okDoc(parseConfig('# only a comment\n')), defaults);
    assert.deepEqual(okDoc(parseConfig('{}')), defaults);
    assert.deepEqual(okDoc(validateConfig({})), defaults);
  });
});

describe('config document: problems', () => {
  it('reports all problems at once, each with its path', () => {
    const text = `
configTtlMs: 1000
colour: blue
taskTypes:
  - name: a
  - name: b
    leaseMs: -5
  - name: c
    runtime: thread
    egress: none
  - name: a
    version: 1
`;
    const problems = problemsOf(parseConfig(text));
    assert.deepEqual(
      problems.map((p) => p.path).sort(),
      ['colour', 'taskTypes[1].leaseMs', 'taskTypes[2].egress', 'taskTypes[3]'],
      JSON.stringify(problems),
    );
    const at = (path: string) => problems.find((p) => p.path === path)?.message ?? '';
    assert.match(at('taskTypes[1].leaseMs'), />=\s*10/);
    assert.equal(at('colour'), "unknown key 'colour'");
    assert.equal(at('taskTypes[2].egress'), "egress 'none' needs runtime 'process' (it is 'thread')");
    assert.equal(at('taskTypes[3]'), 'a@1 is defined twice');
  });

  it('the same name at another version is not a duplicate, a repeated tenant is', () => {
    assert.equal(validateConfig({ taskTypes: [{ name: 'a' }, { name: 'a', version: 2 }] }).ok, true);
    assert.deepEqual(problemsOf(validateConfig({ tenants: [{ name: 'x' }, { name: 'y' }, { name: 'x' }] })), [
      { path: 'tenants[2]', message: 'x is listed twice' },
    ]);
  });

  it('cross-field problems are reported together with type errors', () => {
    const doc = {
      taskTypes: [{ name: 'a', leaseMs: 'abc' }, { name: 'a' }],
      tenants: [{ name: 'x' }, { name: 'x' }],
    };
    assert.deepEqual(
      problemsOf(validateConfig(doc))
        .map((p) => p.path)
        .sort(),
      ['taskTypes[0].leaseMs', 'taskTypes[1]', 'tenants[1]'],
    );
  });

  it('paths reach into nested objects, records and arrays', () => {
    const problems = problemsOf(
      validateConfig({
        configTtlMs: 0,
        freshnessMs: 1.5,
        taskTypes: [
          { name: 'ok', maxAttempts: '3' },
          { name: 'r', backoff: { baseMs: 10, maxMs: 5 } },
        ],
        quotas: { acme: { maxQueued: -1 } },
        policies: [{ roles: [], tasks: ['bad name!'] }],
        routes: [{ queue: 'q', labels: ['fine', '-leading-dash'] }],
        retention: { evidenceDays: 0 },
        triggers: [{ on: 'succeeded', start: 's' }],
      }),
    );
    assert.deepEqual(problems.map((p) => p.path).sort(), [
      'configTtlMs',
      'freshnessMs',
      'policies[0].roles',
      'policies[0].tasks[0]',
      'quotas.acme.maxQueued',
      'retention.evidenceDays',
      'routes',
      'taskTypes[0].maxAttempts',
      'taskTypes[1].backoff.maxMs',
      'triggers',
    ]);
    const at = (path: string) => problems.find((p) => p.path === path)?.message ?? '';
    assert.equal(at('taskTypes[0].maxAttempts'), 'Invalid input: expected number, received string');
    assert.equal(at('taskTypes[1].backoff.maxMs'), 'maxMs must be >= baseMs');
    assert.match(
      at('triggers'),
      /^not enforced by this version of Bulkhead, so it is refused rather than ignored/,
    );
    assert.match(at('routes'), /data plane/);
    assert.equal(at('policies[0].tasks[0]'), "must be a name, a prefix ending in '*', or '*'");
  });

  it('a document that is not an object is one problem at (document)', () => {
    for (const value of [null, [], 'text', 42, true]) {
      const problems = problemsOf(validateConfig(value));
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.equal(problems[0]?.path, '(document)');
      assert.match(problems[0]?.message ?? '', /expected object/);
    }
    assert.equal(problemsOf(parseConfig('- a\n- b\n'))[0]?.path, '(document)');
  });

  it('invalid YAML syntax is one problem at (document) naming the error and where', () => {
    for (const text of ['taskTypes: [a, b', '{"taskTypes": [1,', 'a: b: c', 'x: "unclosed\n']) {
      const problems = problemsOf(parseConfig(text));
      assert.equal(problems.length, 1, `${text}: ${JSON.stringify(problems)}`);
      assert.equal(problems[0]?.path, '(document)');
      assert.match(problems[0]?.message ?? '', /^not valid YAML or JSON: .*line \d+, column \d+/s, text);
    }
    const multi = problemsOf(parseConfig('a: 1\n---\nb: 2\n'));
    assert.match(multi[0]?.message ?? '', /multiple documents/);
  });

  it('refuses duplicate keys, in YAML and in JSON', () => {
    for (const text of [
      'configTtlMs: 1000\nconfigTtlMs: 2000\n',
      'taskTypes:\n  - name: a\n    leaseMs: 100\n    leaseMs: 200\n',
      '{"taskTypes": [], "taskTypes": [{"name": "a"}]}',
    ]) {
      const problems = problemsOf(parseConfig(text));
      assert.equal(problems.length, 1, text);
      assert.equal(problems[0]?.path, '(document)');
      assert.match(problems[0]?.message ?? '', /Map keys must be unique/, text);
    }
  });

  it('unknown enum values name the allowed ones', () => {
    const check = (doc: unknown, path: string, allowed: string) => {
      const problems = problemsOf(validateConfig(doc));
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.equal(problems[0]?.path, path);
      for (const a of allowed.split('|'))
        assert.ok(problems[0]?.message.includes(`"${a}"`), `${path} names '${a}'`);
    };
    const CLASSES = 'public|internal|confidential|restricted';
    const taskEnums: Array<[string, string, string]> = [
      ['effect', 'delete', 'read|write|destructive'],
      ['runtime', 'wasm', 'inline|thread|process'],
      ['evidence', 'maybe', 'required|buffered'],
      ['egress', 'some', 'any|none'],
      ['maxClassification', 'secret', CLASSES],
    ];
    for (const [field, value, allowed] of taskEnums) {
      check({ taskTypes: [{ name: 'a', [field]: value }] }, `taskTypes[0].${field}`, allowed);
    }
    const roles = 'admin|operator|submitter|approver|auditor|worker';
    check({ policies: [{ roles: ['root'], tasks: ['*'] }] }, 'policies[0].roles[0]', roles);
  });
});

describe('config document: needsFreshControl', () => {
  it('destructive implies fresh control unless freshControl is false', () => {
    assert.equal(needsFreshControl(task({ effect: 'destructive' })), true);
    assert.equal(needsFreshControl(task({ effect: 'destructive', freshControl: true })), true);
    assert.equal(needsFreshControl(task({ effect: 'destructive', freshControl: false })), false);
  });

  it('read and write need it only when freshControl is true', () => {
    assert.equal('freshControl' in task({}), false, 'freshControl is left out when not given');
    assert.equal(needsFreshControl(task({})), false, 'default effect write');
    assert.equal(needsFreshControl(task({ effect: 'read' })), false);
    assert.equal(needsFreshControl(task({ effect: 'write', freshControl: true })), true);
    assert.equal(needsFreshControl(task({ effect: 'read', freshControl: false })), false);
  });
});

describe('config document: never throws', () => {
  const checkResult = (r: ParseResult) => {
    if (r.ok) return;
    assert.ok(r.problems.length > 0, 'a refusal carries at least one problem');
    for (const p of r.problems) {
      assert.equal(typeof p.path, 'string');
      assert.ok(p.path.length > 0, 'a path is never empty');
      assert.equal(typeof p.message, 'string');
    }
  };

  it('validateConfig on arbitrary JSON values returns ok or a non-empty problem list', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => checkResult(validateConfig(value))),
      { numRuns: 500 },
    );
  });

  it('validateConfig on near-valid documents (the cross-field checks) never throws', () => {
    const field = fc.constantFrom('name', 'version', 'runtime', 'egress', 'leaseMs', 'effect', 'backoff');
    const value = fc.oneof(fc.constantFrom('a', 'b', 1, 2, 'thread', 'process', 'none', -1), fc.jsonValue());
    const taskTypes = fc.array(fc.dictionary(field, value), { maxLength: 5 });
    const tenants = fc.array(fc.record({ name: fc.constantFrom('x', 'y', 3) }), { maxLength: 4 });
    fc.assert(
      fc.property(fc.record({ taskTypes, tenants }, { requiredKeys: [] }), (doc) =>
        checkResult(validateConfig(doc)),
      ),
      { numRuns: 500 },
    );
  });

  it('parseConfig on arbitrary text never throws', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => checkResult(parseConfig(text))),
      { numRuns: 300 },
    );
  });
});
