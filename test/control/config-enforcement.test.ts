/**
 * Every field the config document accepts is enforced somewhere, or it is not in the schema
 * (DESIGN.md §4). The test walks the schema's fields and requires each to be named below with the
 * code that enforces it and the test that shows it; each named file must exist and hold the named
 * identifier. A new field without an entry fails here, before it can be published and ignored.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { z } from 'zod';
import { configSchema, validateConfig } from '../../src/control/config/document.js';
import { REPO } from '../e2e/procs.js';

/** Where a field is enforced: `file#text` of the code, and `file#text` of a test that shows it (plain text). */
const ENFORCED: Record<string, { code: string; test: string }> = {
  configTtlMs: {
    code: 'src/control/config/service.ts#ttlMs: doc.configTtlMs',
    test: 'test/control/degraded.test.ts#configTtlMs',
  },
  freshnessMs: {
    code: 'src/execution/config-agent.ts#freshnessMs',
    test: 'test/control/agent.test.ts#fresh',
  },
  evidenceMaxLag: {
    code: 'src/execution/worker.ts#evidenceMaxLag',
    test: 'test/execution/evidence-gate.test.ts#evidenceMaxLag: 2',
  },
  'tenants[].name': {
    code: 'src/control/policy.ts#TenantNotAdmittedError',
    test: 'test/e2e/approvals.test.ts#is not listed in the published config',
  },
  'taskTypes[].name': {
    code: 'src/control/config/service.ts#syncRegistry',
    test: 'test/control/rollout.test.ts#taskTypes',
  },
  'taskTypes[].version': {
    code: 'src/control/config/service.ts#syncRegistry',
    test: 'test/execution/authority.test.ts#another task version',
  },
  'taskTypes[].input': {
    code: 'src/control/admission.ts#validator',
    test: 'test/api/jobs-api.test.ts#invalid_input',
  },
  'taskTypes[].queue': {
    code: 'src/execution/worker.ts#map((c) => c.queue)',
    test: 'test/execution/contract.test.ts#contract-q',
  },
  'taskTypes[].runtime': {
    code: 'src/execution/worker.ts#verdict.claims?.scope',
    test: 'test/execution/contract.test.ts#it ran in a process of its own',
  },
  'taskTypes[].timeoutMs': {
    code: 'src/execution/attempt.ts#task.timeoutMs',
    test: 'test/execution/contract.test.ts#times out at 100 ms',
  },
  'taskTypes[].leaseMs': {
    code: 'src/control/admission.ts#leaseMs: type.leaseMs',
    test: 'test/execution/contract.test.ts#leaseMs: 4000',
  },
  'taskTypes[].maxAttempts': {
    code: 'src/control/admission.ts#maxAttempts: type.maxAttempts',
    test: 'test/execution/contract.test.ts#the job takes the contract, not the code',
  },
  'taskTypes[].backoff.baseMs': {
    code: 'src/control/admission.ts#backoff: type.backoff',
    test: 'test/execution/contract.test.ts#baseMs: 7',
  },
  'taskTypes[].backoff.maxMs': {
    code: 'src/control/admission.ts#backoff: type.backoff',
    test: 'test/execution/contract.test.ts#maxMs: 70',
  },
  'taskTypes[].effect': {
    code: 'src/control/contract.ts#needsFreshControl',
    test: 'test/control/degraded.test.ts#destructive',
  },
  'taskTypes[].freshControl': {
    code: 'src/control/snapshot-view.ts#freshControlTasks',
    test: 'test/control/config-document.test.ts#needsFreshControl',
  },
  'taskTypes[].evidence': {
    code: 'src/control/snapshot-view.ts#evidenceRequiredTasks',
    test: 'test/evidence/store-down.test.ts#required',
  },
  'taskTypes[].approval': {
    code: 'src/control/admission.ts#scope.approval',
    test: 'test/e2e/approvals.test.ts#awaiting_approval',
  },
  'taskTypes[].approvals': {
    code: 'src/control/admission.ts#scope.approvals',
    test: 'test/e2e/approvals.test.ts#one approval of two',
  },
  'taskTypes[].approvalTimeoutMs': {
    code: 'src/control/admission.ts#scope.approvalTimeoutMs',
    test: 'test/e2e/approvals.test.ts#approval window that runs out',
  },
  'taskTypes[].maxClassification': {
    code: 'src/control/admission.ts#classification: type.classification',
    test: "test/execution/contract.test.ts#maxClassification: 'public'",
  },
  'taskTypes[].egress': {
    code: 'src/execution/runtimes/process-runtime.ts#egress',
    test: 'test/execution/contract.test.ts#could not open a socket',
  },
  'policies[].tenant': {
    code: 'src/control/policy.ts#matches(p.tenant',
    test: 'test/e2e/approvals.test.ts#policies and tenants refuse',
  },
  'policies[].roles': {
    code: 'src/control/policy.ts#p.roles.some',
    test: 'test/e2e/approvals.test.ts#no policy lets roles operator',
  },
  'policies[].tasks': {
    code: 'src/control/policy.ts#p.tasks.some',
    test: 'test/e2e/approvals.test.ts#/policies\\[0\\]/',
  },
  'policies[].approval': {
    code: 'src/control/policy.ts#approval: free === undefined',
    test: 'test/control/policy.test.ts#approval',
  },
  'quotas.*.maxQueued': {
    code: 'src/control/admission.ts#input.quota = { maxQueued: quota.maxQueued }',
    test: 'test/control/quotas-api.test.ts#maxQueued refuses the submission',
  },
  'quotas.*.maxRunning': {
    code: 'src/execution/worker.ts#maxRunning: this.maxRunning',
    test: 'test/execution/max-running.test.ts#acme never ran two at once',
  },
  'quotas.*.submitPerSecond': {
    code: 'src/control/admission.ts#this.store.takeTokens',
    test: 'test/control/quotas-api.test.ts#ten times its rate',
  },
  'quotas.*.maxPayloadBytes': {
    code: 'src/control/admission.ts#new PayloadQuotaError',
    test: 'test/control/quotas-api.test.ts#maxPayloadBytes refuses a larger input',
  },
  'retention.evidenceDays': {
    code: 'src/cli/evidence-setup.ts#evidenceDays',
    test: 'test/evidence/configured-retention.test.ts#evidenceDays: 3',
  },
};

const isObject = (schema: unknown): boolean => {
  const def = (schema as { _zod: { def: { type: string; innerType?: unknown } } })._zod.def;
  return def.type === 'object' || (def.innerType !== undefined && isObject(def.innerType));
};

/** The leaf fields of a zod schema, as `a.b[].c` paths. */
function fields(schema: z.ZodType, path = ''): string[] {
  const def = (schema as unknown as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
  switch (def.type) {
    case 'default':
    case 'optional':
    case 'nullable':
      return fields(def.innerType as z.ZodType, path);
    case 'object': {
      const shape = def.shape as Record<string, z.ZodType>;
      return Object.entries(shape).flatMap(([k, v]) => fields(v, path ? `${path}.${k}` : k));
    }
    // A list or map of plain values is one field; of objects, each of their fields is.
    case 'array':
      return isObject(def.element) ? fields(def.element as z.ZodType, `${path}[]`) : [path];
    case 'record':
      return isObject(def.valueType) ? fields(def.valueType as z.ZodType, `${path}.*`) : [path];
    default:
      return [path];
  }
}

describe('every config field is enforced', () => {
  const accepted = fields(configSchema);

  it('each field the schema accepts is in the table, and the table names no field it lacks', () => {
    const missing = accepted.filter((f) => !(f in ENFORCED));
    assert.deepEqual(
      missing,
      [],
      'fields the config accepts with no enforcing code named here: enforce them or drop them',
    );
    const stale = Object.keys(ENFORCED).filter((f) => !accepted.includes(f));
    assert.deepEqual(stale, [], 'fields named here that the schema no longer has');
  });

  it('the code and test each entry names exist and say what the entry claims', () => {
    for (const [field, where] of Object.entries(ENFORCED)) {
      for (const ref of [where.code, where.test]) {
        const [file, text] = ref.split('#') as [string, string];
        const path = join(REPO, file);
        assert.ok(existsSync(path), `${field}: ${file} does not exist`);
        const source = readFileSync(path, 'utf8');
        assert.ok(source.includes(text), `${field}: ${file} does not contain ${JSON.stringify(text)}`);
      }
    }
  });

  it('fields that are not enforced yet are refused by name, not accepted and ignored', () => {
    for (const key of ['routes', 'triggers']) {
      const r = validateConfig({ [key]: [] });
      assert.equal(r.ok, false, key);
      if (r.ok) continue;
      assert.match(
        r.problems.map((p) => `${p.path}: ${p.message}`).join('; '),
        new RegExp(`^${key}: .*not enforced`),
      );
    }
    const jobs = validateConfig({ retention: { jobsDays: 30 } });
    assert.equal(jobs.ok, false);
  });
});
