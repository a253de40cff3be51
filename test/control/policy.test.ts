/**
 * Who may submit what, by the published config (src/control/policy.ts): tenants listed or not,
 * policies naming tenant, task and role, approval asked by a policy, and refusals that name the
 * policies considered. Pure: no store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decideSubmission,
  matches,
  PolicyDeniedError,
  type SubmitRules,
  TenantNotAdmittedError,
} from '../../src/control/policy.js';

const rules: SubmitRules = {
  tenants: [],
  policies: [
    { tenant: 'acme', roles: ['submitter'], tasks: ['media.*'], approval: false },
    { tenant: '*', roles: ['admin'], tasks: ['*'], approval: true },
    { tenant: 'acme', roles: ['operator'], tasks: ['billing.refund'], approval: true },
  ],
};
const who = (tenant: string, ...roles: string[]) => ({ tenant, roles });

describe('policy: decideSubmission', () => {
  it('no tenants and no policies: every submission is allowed, without approval', () => {
    assert.deepEqual(decideSubmission({ tenants: [], policies: [] }, who('any', 'submitter'), 'x'), {
      approval: false,
      policy: null,
    });
  });

  it('a policy naming tenant, task and role allows; approval comes from the policy that allows', () => {
    assert.deepEqual(decideSubmission(rules, who('acme', 'submitter'), 'media.resize'), {
      approval: false,
      policy: 0,
    });
    assert.deepEqual(decideSubmission(rules, who('globex', 'admin'), 'billing.refund'), {
      approval: true,
      policy: 1,
    });
    assert.deepEqual(decideSubmission(rules, who('acme', 'operator'), 'billing.refund'), {
      approval: true,
      policy: 2,
    });
    // Allowed without approval by one rule and with it by another: the rule without approval wins.
    assert.deepEqual(decideSubmission(rules, who('acme', 'submitter', 'admin'), 'media.x'), {
      approval: false,
      policy: 0,
    });
  });

  it('refusals name the policies that named the task but not the role, or say none names it', () => {
    const wrongRole = assert.throws(
      () => decideSubmission(rules, who('acme', 'auditor'), 'media.resize'),
      (err: unknown) =>
        err instanceof PolicyDeniedError &&
        err.code === 'policy_denied' &&
        err.policy === 0 &&
        /no policy lets roles auditor of tenant 'acme' submit 'media\.resize': policies\[0\] \(tenant acme, tasks media\.\*, roles submitter\); policies\[1\]/.test(
          err.message,
        ),
    );
    assert.equal(wrongRole, undefined);
    assert.throws(
      () =>
        decideSubmission({ ...rules, policies: [rules.policies[0]!] }, who('globex', 'submitter'), 'media.a'),
      (err: unknown) =>
        err instanceof PolicyDeniedError &&
        err.policy === null &&
        /no policy names task 'media\.a' for tenant 'globex'/.test(err.message),
    );
  });

  it('once the config lists tenants, an unlisted tenant cannot submit, whatever the policies', () => {
    assert.throws(
      () => decideSubmission({ tenants: ['acme'], policies: [] }, who('globex', 'admin'), 'a'),
      (err: unknown) =>
        err instanceof TenantNotAdmittedError &&
        err.code === 'tenant_not_admitted' &&
        /tenant 'globex' is not listed in the published config's tenants \(acme\)/.test(err.message),
    );
    assert.deepEqual(decideSubmission({ tenants: ['acme'], policies: [] }, who('acme', 'x'), 'a'), {
      approval: false,
      policy: null,
    });
  });

  it('patterns: * is everything, a trailing * a prefix, anything else exact', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z.]{1,12}$/), fc.stringMatching(/^[a-z.]{0,6}$/), (name, prefix) => {
        assert.equal(matches('*', name), true);
        assert.equal(matches(`${prefix}*`, name), name.startsWith(prefix));
        assert.equal(matches(name, name), true);
        assert.equal(matches(`${name}x`, name), false);
      }),
    );
  });
});
