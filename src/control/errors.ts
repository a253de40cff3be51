/** Control-plane errors: admission, authorization and config refusals, each with a stable `code`. */
import type { ConfigProblem } from './config/document.js';
import type { ReportRefusalReason } from './config/reports.js';

export abstract class ControlError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class UnknownTaskError extends ControlError {
  readonly code = 'unknown_task';
  constructor(
    readonly task: string,
    readonly version: number | undefined,
    readonly known: string[],
  ) {
    super(
      version === undefined
        ? `task '${task}' is not registered (known: ${known.join(', ') || 'none'}); start a worker that defines it, or check the name`
        : `task '${task}' version ${version} is not registered (known: ${known.join(', ') || 'none'})`,
    );
  }
}

export interface InputProblem {
  /** JSON Pointer into the input, '' for the input itself. */
  path: string;
  message: string;
}

export class InvalidInputError extends ControlError {
  readonly code = 'invalid_input';
  constructor(
    readonly task: string,
    readonly errors: InputProblem[],
  ) {
    super(
      `input of task '${task}' is invalid: ${errors.map((e) => `${e.path || '(input)'} ${e.message}`).join('; ')}`,
    );
  }
}

export class ForbiddenError extends ControlError {
  readonly code = 'forbidden';
}

/** A config report (ACK/NACK) not made with the reporting worker's own key (see config/reports.ts). */
export class ReportRefusedError extends ControlError {
  readonly code = 'forbidden';
  constructor(
    readonly workerId: string,
    readonly reason: ReportRefusalReason,
    detail: string,
  ) {
    super(detail);
  }
}

export class ConfigInvalidError extends ControlError {
  readonly code = 'config_invalid';
  constructor(readonly problems: ConfigProblem[]) {
    super(
      `the config document has ${problems.length} problem(s): ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
    );
  }
}

export class ReadOnlyError extends ControlError {
  readonly code = 'read_only';
  constructor(action: string) {
    super(
      `the control plane is in read-only mode: ${action} is refused; an admin can switch it back with 'bulkhead control-mode normal'`,
    );
  }
}

export class NoConfigError extends ControlError {
  readonly code = 'no_config';
  constructor() {
    super("no config has been published yet; publish one with 'bulkhead config publish FILE'");
  }
}

/** An operation that signs (readmission, approvals) on a server that has no control signing key. */
export class NoSignerError extends ControlError {
  readonly code = 'no_signer';
  constructor(action: string) {
    super(
      `${action} needs the control plane's signing key, and this server has none; run it on 'bulkhead control' or 'bulkhead dev'`,
    );
  }
}

/** An input larger than the tenant's `maxPayloadBytes` quota. Nothing was written. */
export class PayloadQuotaError extends ControlError {
  readonly code = 'payload_quota_exceeded';
  readonly quota = 'maxPayloadBytes';
  constructor(
    readonly tenant: string,
    readonly limit: number,
    readonly size: number,
    /** The item of a batch, or null for a single submission. */
    readonly index: number | null,
  ) {
    super(
      `${index === null ? 'the input' : `jobs[${index}].input`} is ${size} bytes as JSON; tenant '${tenant}' may submit at most ${limit} (quotas.${tenant}.maxPayloadBytes): send a smaller input, or raise the quota in the config`,
    );
  }
}
