/**
 * Bulkhead's public API. Everything a user imports comes from here; the list is deliberate and a
 * test (`test/architecture/public-api.test.ts`) fails when it changes by accident.
 */

export { type AuthorityRecord, verifyAuthority } from './control/authority.js';
export { type BundleReport, bundleLines, bundleTextLines, verifyBundle } from './evidence/bundle.js';
export type { Entry as EvidenceEntry } from './evidence/format.js';
export type { VerifyReport as EvidenceVerifyReport } from './evidence/verify.js';
export {
  IdempotencyConflictError,
  InvalidArgumentError,
  JobNotFoundError,
  JobStateConflictError,
  LedgerError,
  type QuotaExceededDetails,
  QuotaExceededError,
  type QuotaName,
  SchemaTooNewError,
  StaleLeaseError,
  StoreUnavailableError,
} from './ledger/errors.js';
export { type OpenStoreOptions, openStore } from './ledger/open.js';
export { type Dialect, type Store, unwrap } from './ledger/store.js';
export type {
  BackoffPolicy,
  ClaimOptions,
  Classification,
  CompleteInput,
  FailInput,
  FailResult,
  HeartbeatInput,
  HeartbeatResult,
  Job,
  JobError,
  JobPage,
  Lease,
  ListFilter,
  ListPage,
  OutboxEvent,
  Outcome,
  PutStepInput,
  ReapResult,
  Step,
  SubmitInput,
  SubmitQuota,
  SubmitResult,
  TakeTokensInput,
  TakeTokensResult,
  Transitioned,
  WorkerInfo,
  WorkerRecord,
  WorkerState,
} from './ledger/types.js';
export { CLASSIFICATIONS } from './ledger/types.js';
export {
  BLOCK_REASONS,
  type BlockReason,
  IllegalTransitionError,
  isTerminal,
  JOB_STATES,
  type JobState,
  TERMINAL_STATES,
  TRANSITION_REASONS,
  type TransitionReason,
} from './lifecycle/lifecycle.js';
export type { EvidenceEntryView, EvidenceHoldView, EvidenceReportView } from './sdk/client.js';
export {
  type ApiKeyView,
  BulkheadApiError,
  BulkheadClient,
  type ClientOptions,
  createClient,
  createWorker,
  defineTask,
  type JobView,
  NonRetryableError,
  type Problem,
  type RuntimeName,
  type SubmitOptions,
  type TaskContext,
  type TaskDefinition,
  type TaskOptions,
  Worker,
  type WorkerHealth,
  type WorkerOptions,
} from './sdk/index.js';
