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
