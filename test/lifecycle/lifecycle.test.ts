/**
 * The job state machine (src/lifecycle/lifecycle.ts, DESIGN.md §3): a model job driven by random
 * command sequences through the module the way a store drives it, plus structural checks of the data.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { BlockReason, GuardFacts, JobState, TransitionReason } from '../../src/lifecycle/lifecycle.js';
import * as L from '../../src/lifecycle/lifecycle.js';

interface JobRecord {
  state: JobState;
  attempt: number;
  maxAttempts: number;
  blockReason?: BlockReason;
}
interface Step {
  from: JobState;
  to: JobState;
  reason: TransitionReason;
  facts: GuardFacts;
}
type Target = { to: JobState; reason: TransitionReason };

/** Commands with one fixed transition: [to, reason, change to `attempt`, weight in random sequences]. */
const SIMPLE = {
  admit: ['queued', 'admitted', 0, 4],
  requireApproval: ['awaiting_approval', 'approval_required', 0, 2],
  approve: ['queued', 'approved', 0, 4],
  reject: ['rejected', 'rejected', 0, 1],
  claim: ['leased', 'claimed', 1, 5],
  start: ['running', 'started', 0, 5],
  complete: ['succeeded', 'completed', 0, 1],
  release: ['queued', 'released', -1, 2],
  cancel: ['cancelled', 'cancel_requested', 0, 1],
  expire: ['expired', 'deadline_passed', 0, 1],
  unblock: ['queued', 'unblocked', 0, 4],
  refuseAuthority: ['blocked', 'authority_refused', -1, 1],
  readmit: ['queued', 'readmitted', 0, 1],
} satisfies Record<string, readonly [JobState, TransitionReason, number, number]>;
type Command =
  | { kind: keyof typeof SIMPLE | 'leaseExpire' }
  | { kind: 'fail'; retryable: boolean }
  | { kind: 'block'; reason: BlockReason };

/** Applies a command as one store transaction: every step goes through assertTransition, all or nothing. */
function apply(job: JobRecord, cmd: Command): { job: JobRecord; applied: Step[]; problem?: string } {
  const facts: GuardFacts = { attempt: job.attempt, maxAttempts: job.maxAttempts };
  let steps: Target[];
  let delta = 0;
  if (cmd.kind === 'fail') {
    facts.retryable = cmd.retryable;
    steps = [{ to: 'failed', reason: 'attempt_failed' }, L.afterFailure(facts)];
  } else if (cmd.kind === 'block') steps = [{ to: 'blocked', reason: 'blocked' }];
  else if (cmd.kind === 'leaseExpire') steps = [L.afterLeaseExpiry(facts)];
  else {
    const [to, reason, d] = SIMPLE[cmd.kind];
    steps = [{ to, reason }];
    delta = d;
  }
  const applied: Step[] = [];
  let from = job.state;
  for (const { to, reason } of steps) {
    const problem = L.checkTransition(from, to, reason, facts);
    let thrown: unknown;
    try {
      L.assertTransition(from, to, reason, facts);
    } catch (err) {
      thrown = err;
    }
    if (problem !== undefined) {
      assert.ok(thrown instanceof L.IllegalTransitionError, `assertTransition did not throw for: ${problem}`);
      assert.deepEqual([thrown.from, thrown.to, thrown.reason], [from, to, reason]);
      return { job, applied: [], problem };
    }
    assert.equal(thrown, undefined, 'assertTransition threw on a transition checkTransition allows');
    applied.push({ from, to, reason, facts });
    from = to;
  }
  const next: JobRecord = { state: from, attempt: job.attempt + delta, maxAttempts: job.maxAttempts };
  if (cmd.kind === 'block') next.blockReason = cmd.reason;
  if (cmd.kind === 'refuseAuthority') next.blockReason = 'invalid_authority';
  return { job: next, applied };
}

/** Independently of checkTransition: is this step a TRANSITIONS entry whose guard (if any) holds? */
const inTable = (s: Step) =>
  L.TRANSITIONS.some(
    (t) => t.from === s.from && t.to === s.to && t.reasons.includes(s.reason) && (t.guard?.(s.facts) ?? true),
  );
const enabled = (from: JobState, facts: GuardFacts, reason?: TransitionReason) =>
  L.transitionsFrom(from).filter(
    (t) => (!reason || t.reasons.includes(reason)) && (t.guard?.(facts) ?? true),
  );
const nonTerminal = L.JOB_STATES.filter((s) => !L.isTerminal(s));

// Weighted so random walks get deep: commands that end the job are rare, progress is common.
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  ...Object.entries(SIMPLE).map(([kind, e]) => ({
    weight: e[3],
    arbitrary: fc.constant({ kind } as Command),
  })),
  { weight: 3, arbitrary: fc.constant<Command>({ kind: 'leaseExpire' }) },
  { weight: 6, arbitrary: fc.boolean().map((retryable): Command => ({ kind: 'fail', retryable })) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...L.BLOCK_REASONS).map((reason): Command => ({ kind: 'block', reason })),
  },
);
const factsArb: fc.Arbitrary<GuardFacts> = fc
  .record({
    attempt: fc.nat(12),
    maxAttempts: fc.integer({ min: 1, max: 10 }),
    retryable: fc.option(fc.boolean()),
  })
  .map(({ retryable, ...f }) => (retryable === null ? f : { ...f, retryable }));
const fresh = (maxAttempts: number): JobRecord => ({ state: 'submitted', attempt: 0, maxAttempts });

describe('lifecycle: model job under random commands', () => {
  it('keeps every invariant of DESIGN.md §3', () => {
    const cmds = fc.array(commandArb, { minLength: 1, maxLength: 100, size: 'max' });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), cmds, (maxAttempts, cmds) => {
        let job = fresh(maxAttempts);
        let stored = false;
        for (const cmd of cmds) {
          const before = job;
          const out = apply(job, cmd);
          job = out.job;
          if (out.problem !== undefined) assert.deepEqual(job, before, 'a rejected command changed the job');
          if (L.isTerminal(before.state)) assert.ok(out.problem, `${cmd.kind} left terminal ${before.state}`);
          for (const s of out.applied) assert.ok(inTable(s), `not in TRANSITIONS: ${JSON.stringify(s)}`);
          stored ||= out.applied.length > 0;
          if (stored) assert.ok(!L.TRANSIENT_STATES.has(job.state), `job rests in transient '${job.state}'`);
          assert.ok(L.isJobState(job.state));
          assert.ok(job.attempt >= 0 && job.attempt <= maxAttempts, `attempt ${job.attempt}/${maxAttempts}`);
          if (L.LEASED_STATES.has(job.state)) assert.ok(job.attempt >= 1, 'leased without a counted attempt');
          assert.equal(job.state === 'blocked', job.blockReason !== undefined, 'blocked must say why');
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('a job that keeps failing (errors or lost leases) always ends dead', () => {
    const choice = fc.record({ lose: fc.boolean(), retryable: fc.boolean(), block: fc.boolean() });
    const arb = fc.tuple(fc.integer({ min: 1, max: 10 }), fc.boolean(), fc.array(choice, { maxLength: 40 }));
    fc.assert(
      fc.property(arb, ([maxAttempts, approval, choices]) => {
        let job = fresh(maxAttempts);
        let last: Command | undefined;
        let allRetryable = true;
        const bound = choices.length + 4 * maxAttempts + 4;
        for (let i = 0; i < bound && !L.isTerminal(job.state); i++) {
          const c = choices[i] ?? { lose: false, retryable: true, block: false };
          const byState: Partial<Record<JobState, Command>> = {
            submitted: { kind: approval ? 'requireApproval' : 'admit' },
            awaiting_approval: { kind: 'approve' },
            queued: c.block ? { kind: 'block', reason: 'data_unavailable' } : { kind: 'claim' },
            blocked: { kind: 'unblock' },
            leased: { kind: c.lose ? 'leaseExpire' : 'start' },
            running: c.lose ? { kind: 'leaseExpire' } : { kind: 'fail', retryable: c.retryable },
          };
          last = byState[job.state];
          assert.ok(last, `no progress command from ${job.state}`);
          if (last.kind === 'fail' && !last.retryable) allRetryable = false;
          const out = apply(job, last);
          assert.equal(out.problem, undefined, `${last.kind} from ${job.state} was rejected`);
          job = out.job;
        }
        assert.equal(job.state, 'dead');
        if (allRetryable) assert.equal(job.attempt, maxAttempts, 'died before using every attempt');
      }),
      { numRuns: 500 },
    );
  });

  it('runs the documented paths', () => {
    const run = (maxAttempts: number, cmds: (keyof typeof SIMPLE | 'leaseExpire' | Command)[]) =>
      cmds.reduce((job, c) => {
        const out = apply(job, typeof c === 'string' ? { kind: c } : c);
        assert.equal(out.problem, undefined, `${JSON.stringify(c)} from ${job.state}`);
        return out.job;
      }, fresh(maxAttempts));
    const ok = run(3, ['requireApproval', 'approve', 'claim', 'start', 'complete']);
    assert.deepEqual(ok, { state: 'succeeded', attempt: 1, maxAttempts: 3 });
    const retried = run(2, ['admit', 'claim', 'start', { kind: 'fail', retryable: true }]);
    assert.deepEqual(retried, { state: 'queued', attempt: 1, maxAttempts: 2 });
    const released = run(2, ['admit', 'claim', 'release', { kind: 'block', reason: 'stale_config' }]);
    assert.deepEqual(released, { state: 'blocked', attempt: 0, maxAttempts: 2, blockReason: 'stale_config' });
    const refused = run(1, ['admit', 'claim', 'start', 'refuseAuthority']);
    assert.deepEqual(refused, {
      state: 'blocked',
      attempt: 0,
      maxAttempts: 1,
      blockReason: 'invalid_authority',
    });
    const readmitted = run(1, ['admit', 'claim', 'refuseAuthority', 'readmit', 'claim', 'start', 'complete']);
    assert.deepEqual(readmitted, { state: 'succeeded', attempt: 1, maxAttempts: 1 });
    assert.equal(run(5, ['admit', 'claim', 'start', { kind: 'fail', retryable: false }]).state, 'dead');
    assert.equal(run(1, ['admit', 'claim', 'leaseExpire']).state, 'dead');
    assert.equal(run(1, ['admit', 'claim', 'start', 'cancel']).state, 'cancelled');
  });
});

describe('lifecycle: structure of the data', () => {
  const edges = new Set(L.TRANSITIONS.map((t) => `${t.from}>${t.to}`));

  it('the transition graph is exactly the one in DESIGN.md §3', () => {
    const expected = [
      'submitted>queued,awaiting_approval',
      'awaiting_approval>queued,rejected,cancelled,expired',
      'queued>leased,blocked,cancelled,expired',
      'blocked>queued,cancelled,expired',
      'leased>running,queued,dead,blocked,cancelled,expired',
      'running>succeeded,failed,queued,dead,blocked,cancelled,expired',
      'failed>queued,dead',
    ].flatMap((line) => {
      const [from, tos] = line.split('>');
      return tos!.split(',').map((to) => `${from}>${to}`);
    });
    assert.deepEqual([...edges].sort(), expected.sort());
    for (const t of L.TRANSITIONS) for (const r of t.reasons) assert.ok(L.TRANSITION_REASONS.includes(r));
  });

  it('terminal states have no way out, and every state takes part in some transition', () => {
    assert.deepEqual([...L.TERMINAL_STATES].sort(), [
      'cancelled',
      'dead',
      'expired',
      'rejected',
      'succeeded',
    ]);
    assert.deepEqual([...L.TRANSIENT_STATES].sort(), ['failed', 'submitted']);
    for (const s of L.TERMINAL_STATES) assert.deepEqual(L.transitionsFrom(s), [], `${s} has a way out`);
    for (const s of L.JOB_STATES)
      assert.ok(
        L.TRANSITIONS.some((t) => t.from === s || t.to === s),
        `${s} unused`,
      );
  });

  it('from every non-terminal state a terminal state is reachable, and some way out is always enabled', () => {
    for (const start of nonTerminal) {
      const seen = new Set<JobState>([start]);
      for (const s of seen) for (const t of L.transitionsFrom(s)) seen.add(t.to); // Set iteration visits additions
      assert.ok([...seen].some(L.isTerminal), `no terminal state reachable from ${start}`);
    }
    fc.assert(
      fc.property(factsArb, (facts) => {
        for (const s of nonTerminal)
          assert.ok(enabled(s, facts).length > 0, `${s} stuck: ${JSON.stringify(facts)}`);
      }),
    );
  });

  it('guarded alternatives are complementary and agree with afterFailure / afterLeaseExpiry', () => {
    const groups: [JobState, TransitionReason | undefined, (f: GuardFacts) => Target][] = [
      ['failed', undefined, L.afterFailure],
      ['leased', 'lease_expired', L.afterLeaseExpiry],
      ['running', 'lease_expired', L.afterLeaseExpiry],
    ];
    for (const t of L.TRANSITIONS.filter((x) => x.guard)) {
      const known = groups.some(([from, r]) => from === t.from && (!r || t.reasons.includes(r)));
      assert.ok(known, `guarded ${t.from}->${t.to} is not part of a known complementary pair`);
    }
    fc.assert(
      fc.property(factsArb, (facts) => {
        const left = facts.attempt < facts.maxAttempts;
        for (const [from, reason, next] of groups) {
          const on = enabled(from, facts, reason);
          assert.equal(on.length, 1, `${from}: ${on.length} of the guarded alternatives hold`);
          const target = next(facts);
          assert.equal(target.to, on[0]!.to);
          assert.equal(L.checkTransition(from, target.to, target.reason, facts), undefined);
          const other = target.to === 'queued' ? 'dead' : 'queued';
          for (const r of reason ? [reason] : L.TRANSITION_REASONS)
            assert.ok(L.checkTransition(from, other, r, facts), `${from} -> ${other} (${r}) also allowed`);
          const retry = left && (from !== 'failed' || facts.retryable !== false);
          assert.equal(target.to, retry ? 'queued' : 'dead');
        }
        const fail = L.afterFailure(facts);
        const deadReason = facts.retryable === false ? 'not_retryable' : 'attempts_exhausted';
        assert.equal(fail.reason, fail.to === 'queued' ? 'retry_scheduled' : deadReason);
        assert.equal(L.afterLeaseExpiry(facts).reason, 'lease_expired');
      }),
      { numRuns: 500 },
    );
  });

  it('checkTransition explains every refusal, naming the states', () => {
    const facts: GuardFacts = { attempt: 1, maxAttempts: 3 };
    for (const from of L.JOB_STATES)
      for (const to of L.JOB_STATES.filter((s) => !edges.has(`${from}>${s}`)))
        for (const reason of L.TRANSITION_REASONS) {
          const msg = L.checkTransition(from, to, reason, facts) ?? '';
          assert.ok(msg.includes(`'${from}'`), `${from}->${to}: no reason naming '${from}': ${msg}`);
          if (L.isTerminal(from)) assert.match(msg, /terminal/);
          else assert.ok(msg.includes(`'${to}'`), `${from}->${to}: message does not name '${to}': ${msg}`);
        }
    assert.match(
      L.checkTransition('running', 'succeeded', 'claimed') ?? '',
      /'claimed'.*'running' -> 'succeeded'/,
    );
    assert.match(L.checkTransition('failed', 'queued', 'retry_scheduled') ?? '', /needs facts/);
    const exhausted = L.checkTransition('failed', 'queued', 'retry_scheduled', {
      attempt: 3,
      maxAttempts: 3,
    });
    assert.match(exhausted ?? '', /'failed' -> 'queued'.*attempts must remain/);
    assert.equal(L.checkTransition('queued', 'leased', 'claimed'), undefined);
  });

  it('IllegalTransitionError carries code illegal_transition and the refused transition', () => {
    const detail = L.checkTransition('succeeded', 'queued', 'retry_scheduled');
    assert.throws(
      () => L.assertTransition('succeeded', 'queued', 'retry_scheduled'),
      (err: unknown) =>
        err instanceof L.IllegalTransitionError &&
        err instanceof Error &&
        err.code === 'illegal_transition' &&
        err.name === 'IllegalTransitionError' &&
        [err.from, err.to, err.reason].join() === 'succeeded,queued,retry_scheduled' &&
        detail !== undefined &&
        err.message.includes(detail),
    );
    assert.doesNotThrow(() => L.assertTransition('submitted', 'queued', 'admitted'));
  });
});
