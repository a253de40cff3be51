/** Evidence plane errors, each with a stable `code` the HTTP layer maps to problem+json. */
import { LedgerError } from '../ledger/errors.js';

/** The evidence store cannot be reached (or refused the write): nothing was recorded. */
export class EvidenceUnavailableError extends LedgerError {
  readonly code = 'evidence_unavailable';
}

/** A legal hold covers what was to be redacted: nothing was erased. */
export class LegalHoldError extends LedgerError {
  readonly code = 'legal_hold';
  constructor(
    readonly holdId: string,
    what: string,
  ) {
    super(`${what} is under legal hold ${holdId}; release the hold first (nothing was changed)`);
  }
}

export class HoldNotFoundError extends LedgerError {
  readonly code = 'hold_not_found';
  constructor(readonly holdId: string) {
    super(`legal hold ${holdId} does not exist, is already released, or belongs to another tenant`);
  }
}

/** Nothing matched: no entry to redact, no entry to correct, no trail to show. */
export class EvidenceNotFoundError extends LedgerError {
  readonly code = 'evidence_not_found';
}
