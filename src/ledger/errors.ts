/**
 * Ledger errors: one class per meaning, each with a stable `code` that the HTTP layer maps to a
 * problem+json response and scripts can match on.
 */

export abstract class LedgerError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A write by an owner whose lease is no longer current: its fence is old, its lease ran out, or the job moved on. */
export class StaleLeaseError extends LedgerError {
  readonly code = 'stale_lease';
  constructor(
    readonly jobId: string,
    readonly fence: number,
    /** What the store holds now, when the job exists. */
    readonly current?: { state: string; fence: number; leaseExpired: boolean },
  ) {
    super(
      `lease on job ${jobId} with fence ${fence} is stale: ${staleWhy(fence, current)}; the write was rejected and nothing changed`,
    );
  }
}

function staleWhy(fence: number, current?: { state: string; fence: number; leaseExpired: boolean }): string {
  if (!current) return 'no such job';
  if (current.fence !== fence) return `the job is '${current.state}' under fence ${current.fence}`;
  if (current.leaseExpired) return `the lease ran out (the job is '${current.state}' awaiting the reaper)`;
  return `the job is '${current.state}'`;
}

export class JobNotFoundError extends LedgerError {
  readonly code = 'job_not_found';
  constructor(readonly jobId: string) {
    super(`job ${jobId} does not exist (or belongs to another tenant)`);
  }
}

/** Same tenant + idempotency key as an earlier submission, with a different body. */
export class IdempotencyConflictError extends LedgerError {
  readonly code = 'idempotency_conflict';
  constructor(
    readonly idempotencyKey: string,
    readonly existingJobId: string,
  ) {
    super(
      `idempotency key '${idempotencyKey}' was already used for job ${existingJobId} with a different body; ` +
        'reuse a key only to repeat the same submission, or pick a new key',
    );
  }
}

/** A request that a job in its current state cannot take (cancel of a finished job, say). */
export class JobStateConflictError extends LedgerError {
  readonly code = 'job_state_conflict';
  constructor(
    readonly jobId: string,
    readonly state: string,
    action: string,
  ) {
    super(`cannot ${action} job ${jobId}: it is '${state}'`);
  }
}

/** A bad argument to a store operation. Nothing was written. */
export class InvalidArgumentError extends LedgerError {
  readonly code = 'invalid_argument';
  constructor(
    /** Where the bad value was, as a path: `input.priority`, `claim.limit`. */
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

/** The database holds a schema written by a newer Bulkhead than this one. */
export class SchemaTooNewError extends LedgerError {
  readonly code = 'schema_too_new';
  constructor(
    readonly found: number,
    readonly known: number,
    where: string,
  ) {
    super(
      `the ledger at ${where} has schema version ${found}, but this Bulkhead knows versions up to ${known}; ` +
        'upgrade Bulkhead (it refuses to run against a schema newer than it understands)',
    );
  }
}

/** The store cannot be reached or answered with a failure that is not about the request. */
export class StoreUnavailableError extends LedgerError {
  readonly code = 'store_unavailable';
}

export class TenantNotFoundError extends LedgerError {
  readonly code = 'tenant_not_found';
  constructor(readonly tenant: string) {
    super(`tenant '${tenant}' does not exist; create it first (bulkhead tenants create ${tenant})`);
  }
}

export class ApiKeyNotFoundError extends LedgerError {
  readonly code = 'api_key_not_found';
  constructor(readonly keyId: string) {
    super(`API key ${keyId} does not exist (or belongs to another tenant)`);
  }
}

/** A rollout step that the rollout state does not allow (a second canary, a promote with none). */
export class ConfigConflictError extends LedgerError {
  readonly code = 'config_conflict';
}

/** The per-tenant quotas the ledger enforces (DESIGN.md §4, flow control). */
export type QuotaName = 'maxQueued' | 'maxRunning' | 'submitPerSecond';

export interface QuotaExceededDetails {
  tenant: string;
  quota: QuotaName;
  /** The quota's value: jobs for `maxQueued` and `maxRunning`, tokens per second for `submitPerSecond`. */
  limit: number;
  /**
   * The use counted against it when the call was refused: pending jobs (`maxQueued`, counted up to
   * the limit), running jobs (`maxRunning`), or tokens spent and not yet refilled (`submitPerSecond`).
   */
  current: number;
  /** What the refused call asked for: jobs it would add, or tokens it would take. */
  requested: number;
  /** When waiting is what helps (a rate): the least wait, in ms, before the same call can succeed. */
  retryAfterMs?: number;
}

/** A call that would take a tenant over one of its quotas. Nothing was written. */
export class QuotaExceededError extends LedgerError {
  readonly code = 'quota_exceeded';
  readonly tenant: string;
  readonly quota: QuotaName;
  readonly limit: number;
  readonly current: number;
  readonly requested: number;
  readonly retryAfterMs: number | undefined;
  constructor(details: QuotaExceededDetails, options?: { cause?: unknown }) {
    super(quotaMessage(details), options);
    this.tenant = details.tenant;
    this.quota = details.quota;
    this.limit = details.limit;
    this.current = details.current;
    this.requested = details.requested;
    this.retryAfterMs = details.retryAfterMs;
  }
}

function quotaMessage(d: QuotaExceededDetails): string {
  const head = `tenant '${d.tenant}' is at its ${d.quota} quota`;
  const fix = `or raise quotas.${d.quota} for tenant '${d.tenant}' in the config`;
  switch (d.quota) {
    case 'maxQueued':
      return (
        `${head}: ${d.current} jobs pending (awaiting approval, queued or blocked) of ${d.limit} allowed, ` +
        `and this submission would add ${d.requested}; nothing was written. Submit again once some have started, ${fix}`
      );
    case 'maxRunning':
      return `${head}: ${d.current} jobs leased or running of ${d.limit} allowed; wait for some to finish, ${fix}`;
    case 'submitPerSecond':
      return (
        `${head} (${d.limit} per second): ${d.requested} asked for with ${d.current} spent and not yet refilled; ` +
        `${d.retryAfterMs === undefined ? 'retry later' : `retry after ${d.retryAfterMs} ms`}, ${fix}`
      );
  }
}
