/**
 * The job state machine, written down as data. Pure: no I/O, no imports of ours.
 *
 * ```
 * submitted ─► awaiting_approval ─► queued ─► leased ─► running ─► succeeded
 *     │               │  └► rejected     ▲        │         ├─► failed ─(attempts left)─► queued (runAt = backoff)
 *     └─► queued      │                  │        │         ├─► dead (attempts exhausted)
 *                     │                  └────────┴─ lease expired (reaper) ─► queued | dead
 *  any non-terminal ─► cancelled | expired (authority deadline passed)
 *  queued ─► blocked (reason) ─► queued
 *  leased | running ─► blocked (invalid_authority: the worker refused the authority record) ─► queued (readmitted)
 * ```
 *
 * `submitted` is the state a job is in while admission decides; a job row is never stored in it: the
 * insert is the first transition (to `queued` or `awaiting_approval`). `failed` records that an
 * attempt failed; in the same transaction the job moves on to `queued` (attempts left, retryable)
 * or `dead`, so `failed` is never where a job rests either. Every store write names the transition
 * it makes; `assertTransition` is the one gate.
 */

export const JOB_STATES = [
  'submitted',
  'awaiting_approval',
  'queued',
  'blocked',
  'leased',
  'running',
  'failed',
  'succeeded',
  'dead',
  'cancelled',
  'expired',
  'rejected',
] as const;

export type JobState = (typeof JOB_STATES)[number];

/** States a job never leaves. */
export const TERMINAL_STATES: ReadonlySet<JobState> = new Set<JobState>([
  'succeeded',
  'dead',
  'cancelled',
  'expired',
  'rejected',
]);

/** States a job passes through inside one transaction and is never stored in. */
export const TRANSIENT_STATES: ReadonlySet<JobState> = new Set<JobState>(['submitted', 'failed']);

/** States that hold a lease (a worker id, a fence and a lease deadline). */
export const LEASED_STATES: ReadonlySet<JobState> = new Set<JobState>(['leased', 'running']);

/** Why a job is `blocked`. */
export const BLOCK_REASONS = [
  'stale_config',
  'fresh_control_required',
  'evidence_unavailable',
  'data_unavailable',
  // The job's signed authority record is missing, forged, altered, or not for this job: it never
  // runs. Ways out: readmission by an admin (a new record), or cancel.
  'invalid_authority',
] as const;
export type BlockReason = (typeof BLOCK_REASONS)[number];

/**
 * Why a transition happened: the `reason` vocabulary. Stored on the job and on its outbox event, so
 * every state says why.
 */
export const TRANSITION_REASONS = [
  'admitted', // submitted -> queued
  'approval_required', // submitted -> awaiting_approval
  'approved', // awaiting_approval -> queued
  'rejected', // awaiting_approval -> rejected
  'claimed', // queued -> leased
  'started', // leased -> running
  'completed', // running -> succeeded
  'attempt_failed', // running -> failed
  'retry_scheduled', // failed -> queued
  'attempts_exhausted', // failed|leased|running -> dead
  'not_retryable', // failed -> dead
  'lease_expired', // leased|running -> queued|dead
  'released', // leased -> queued (a draining worker hands back work it did not start)
  'cancel_requested', // any non-terminal -> cancelled
  'deadline_passed', // any non-terminal -> expired
  'blocked', // queued -> blocked
  'unblocked', // blocked -> queued
  'authority_refused', // leased|running -> blocked (invalid_authority); the attempt is given back
  'readmitted', // blocked (invalid_authority) -> queued, with a new authority record
] as const;
export type TransitionReason = (typeof TRANSITION_REASONS)[number];

/** Facts a guard looks at. */
export interface GuardFacts {
  /** Attempts made so far, counting the current one. */
  attempt: number;
  maxAttempts: number;
  /** For failures: whether the error allows another attempt. */
  retryable?: boolean;
}

export interface Transition {
  from: JobState;
  to: JobState;
  reasons: readonly TransitionReason[];
  /** Must hold for the transition to be allowed. */
  guard?: (facts: GuardFacts) => boolean;
  /** Why the guard exists, for error messages. */
  guardText?: string;
}

const attemptsLeft = (f: GuardFacts) => f.attempt < f.maxAttempts;
const mayRetry = (f: GuardFacts) => f.retryable !== false && attemptsLeft(f);
const mayNotRetry = (f: GuardFacts) => !mayRetry(f);

const NON_TERMINAL_STORED: readonly JobState[] = [
  'awaiting_approval',
  'queued',
  'blocked',
  'leased',
  'running',
];

export const TRANSITIONS: readonly Transition[] = [
  { from: 'submitted', to: 'queued', reasons: ['admitted'] },
  { from: 'submitted', to: 'awaiting_approval', reasons: ['approval_required'] },
  { from: 'awaiting_approval', to: 'queued', reasons: ['approved'] },
  { from: 'awaiting_approval', to: 'rejected', reasons: ['rejected'] },
  { from: 'queued', to: 'leased', reasons: ['claimed'] },
  { from: 'queued', to: 'blocked', reasons: ['blocked'] },
  { from: 'blocked', to: 'queued', reasons: ['unblocked', 'readmitted'] },
  // A worker that refuses a job's authority record hands the attempt back without running it.
  { from: 'leased', to: 'blocked', reasons: ['authority_refused'] },
  { from: 'running', to: 'blocked', reasons: ['authority_refused'] },
  { from: 'leased', to: 'running', reasons: ['started'] },
  { from: 'leased', to: 'queued', reasons: ['released'] },
  {
    from: 'leased',
    to: 'queued',
    reasons: ['lease_expired'],
    guard: attemptsLeft,
    guardText: 'attempts must remain (attempt < maxAttempts)',
  },
  {
    from: 'leased',
    to: 'dead',
    reasons: ['lease_expired', 'attempts_exhausted'],
    guard: (f) => !attemptsLeft(f),
    guardText: 'attempts must be exhausted (attempt >= maxAttempts)',
  },
  { from: 'running', to: 'succeeded', reasons: ['completed'] },
  { from: 'running', to: 'failed', reasons: ['attempt_failed'] },
  {
    from: 'running',
    to: 'queued',
    reasons: ['lease_expired'],
    guard: attemptsLeft,
    guardText: 'attempts must remain (attempt < maxAttempts)',
  },
  {
    from: 'running',
    to: 'dead',
    reasons: ['lease_expired', 'attempts_exhausted'],
    guard: (f) => !attemptsLeft(f),
    guardText: 'attempts must be exhausted (attempt >= maxAttempts)',
  },
  {
    from: 'failed',
    to: 'queued',
    reasons: ['retry_scheduled'],
    guard: mayRetry,
    guardText: 'the error must be retryable and attempts must remain',
  },
  {
    from: 'failed',
    to: 'dead',
    reasons: ['attempts_exhausted', 'not_retryable'],
    guard: mayNotRetry,
    guardText: 'the error must be non-retryable or attempts exhausted',
  },
  ...NON_TERMINAL_STORED.flatMap((from): Transition[] => [
    { from, to: 'cancelled', reasons: ['cancel_requested'] },
    { from, to: 'expired', reasons: ['deadline_passed'] },
  ]),
];

export function isJobState(value: unknown): value is JobState {
  return typeof value === 'string' && (JOB_STATES as readonly string[]).includes(value);
}

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.has(state);
}

export function isBlockReason(value: unknown): value is BlockReason {
  return typeof value === 'string' && (BLOCK_REASONS as readonly string[]).includes(value);
}

/** The transitions that leave `state`. */
export function transitionsFrom(state: JobState): Transition[] {
  return TRANSITIONS.filter((t) => t.from === state);
}

/** Why a transition is not allowed, or undefined when it is. */
export function checkTransition(
  from: JobState,
  to: JobState,
  reason: TransitionReason,
  facts?: GuardFacts,
): string | undefined {
  const candidates = TRANSITIONS.filter((t) => t.from === from && t.to === to);
  if (candidates.length === 0) {
    const allowed = transitionsFrom(from).map((t) => t.to);
    return allowed.length === 0
      ? `'${from}' is a terminal state: no transition leaves it`
      : `no transition from '${from}' to '${to}' (allowed: ${[...new Set(allowed)].join(', ')})`;
  }
  const withReason = candidates.filter((t) => t.reasons.includes(reason));
  if (withReason.length === 0) {
    const reasons = candidates.flatMap((t) => t.reasons);
    return `'${reason}' is not a reason for '${from}' -> '${to}' (allowed: ${reasons.join(', ')})`;
  }
  const unguarded = withReason.find((t) => !t.guard);
  if (unguarded) return undefined;
  if (!facts) return `'${from}' -> '${to}' has a guard and needs facts (attempt, maxAttempts)`;
  const passing = withReason.find((t) => t.guard?.(facts));
  if (passing) return undefined;
  return `'${from}' -> '${to}' (${reason}) not allowed: ${withReason.map((t) => t.guardText).join('; ')}`;
}

/** Thrown when code asks for a transition the state machine does not allow: a bug, never user input. */
export class IllegalTransitionError extends Error {
  readonly code = 'illegal_transition';
  constructor(
    readonly from: JobState,
    readonly to: JobState,
    readonly reason: TransitionReason,
    detail: string,
  ) {
    super(`illegal job transition: ${detail}`);
    this.name = 'IllegalTransitionError';
  }
}

export function assertTransition(
  from: JobState,
  to: JobState,
  reason: TransitionReason,
  facts?: GuardFacts,
): void {
  const problem = checkTransition(from, to, reason, facts);
  if (problem !== undefined) throw new IllegalTransitionError(from, to, reason, problem);
}

/**
 * The state a failed attempt ends in (never `failed` itself: see the module comment), with its reason.
 */
export function afterFailure(facts: GuardFacts): { to: 'queued' | 'dead'; reason: TransitionReason } {
  if (mayRetry(facts)) return { to: 'queued', reason: 'retry_scheduled' };
  return { to: 'dead', reason: facts.retryable === false ? 'not_retryable' : 'attempts_exhausted' };
}

/** The state a job whose lease expired goes to, with its reason. */
export function afterLeaseExpiry(facts: GuardFacts): { to: 'queued' | 'dead'; reason: TransitionReason } {
  return attemptsLeft(facts)
    ? { to: 'queued', reason: 'lease_expired' }
    : { to: 'dead', reason: 'lease_expired' };
}
