/**
 * Who may submit what, by the published config: `tenants` and `policies`.
 *
 * - `tenants`: once the config lists any, only those tenants may submit (the list is the set of
 *   tenants the deployment serves; publishing creates them).
 * - `policies`: once the config lists any, a submission is allowed only when some policy names the
 *   principal's tenant (`tenant`: a name, a prefix ending in `*`, or `*`), the task (`tasks`: names
 *   or prefixes) and one of the principal's roles. A policy with `approval: true` makes the jobs it
 *   allows wait for approvers. With no policies, every role that may submit may submit every task.
 *
 * A refusal names the policies that were considered and why none allowed it.
 */
import { ControlError } from './errors.js';

export interface PolicyRule {
  tenant: string;
  roles: string[];
  tasks: string[];
  approval: boolean;
}

/** The part of the config document admission enforces. */
export interface SubmitRules {
  tenants: string[];
  policies: PolicyRule[];
}

export type PolicyDecision = { approval: boolean; policy: number | null };

export class PolicyDeniedError extends ControlError {
  readonly code = 'policy_denied';
  constructor(
    message: string,
    /** The index in `policies` of the rule that came closest (named the tenant and task), or null. */
    readonly policy: number | null,
  ) {
    super(message);
  }
}

export class TenantNotAdmittedError extends ControlError {
  readonly code = 'tenant_not_admitted';
  constructor(
    readonly tenant: string,
    readonly known: string[],
  ) {
    super(
      `tenant '${tenant}' is not listed in the published config's tenants (${known.join(', ')}); add it to 'tenants' and publish`,
    );
  }
}

/** Whether `pattern` (a name, a prefix ending in '*', or '*') covers `name`. */
export function matches(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

const describe = (p: PolicyRule, i: number) =>
  `policies[${i}] (tenant ${p.tenant}, tasks ${p.tasks.join(', ')}, roles ${p.roles.join(', ')})`;

/** Decide whether `principal` may submit `task` under `rules`; throws the refusal. */
export function decideSubmission(
  rules: SubmitRules,
  principal: { tenant: string; roles: readonly string[] },
  task: string,
): PolicyDecision {
  if (rules.tenants.length > 0 && !rules.tenants.includes(principal.tenant)) {
    throw new TenantNotAdmittedError(principal.tenant, rules.tenants);
  }
  if (rules.policies.length === 0) return { approval: false, policy: null };
  const naming = rules.policies
    .map((p, i) => ({ p, i }))
    .filter(({ p }) => matches(p.tenant, principal.tenant) && p.tasks.some((t) => matches(t, task)));
  const allowing = naming.filter(({ p }) => p.roles.some((r) => principal.roles.includes(r)));
  if (allowing.length === 0) {
    const first = naming[0];
    throw new PolicyDeniedError(
      first
        ? `no policy lets roles ${principal.roles.join(', ')} of tenant '${principal.tenant}' submit '${task}': ${naming
            .map(({ p, i }) => describe(p, i))
            .join('; ')} allow(s) other roles only`
        : `no policy names task '${task}' for tenant '${principal.tenant}' (${rules.policies.length} policies in the published config); add one and publish`,
      first?.i ?? null,
    );
  }
  // The least demanding allowing rule decides: approval only when every rule that allows it asks for one.
  const free = allowing.find(({ p }) => !p.approval);
  const chosen = free ?? allowing[0];
  return { approval: free === undefined, policy: chosen?.i ?? null };
}
