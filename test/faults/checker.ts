/**
 * The crash battery's checker, Jepsen-queue style: after the faults, read back everything (the
 * ledger's jobs, steps and outbox; the external store's effects and audit log) and count every way
 * the run could have gone wrong. Nothing here trusts the workers: it only reads what was committed.
 */
import type { Store } from '../../src/ledger/store.js';
import type { Job, OutboxEvent, Step } from '../../src/ledger/types.js';
import { TERMINAL_STATES, TRANSITIONS } from '../../src/lifecycle/lifecycle.js';
import type { AuditRow, EffectRow } from './external.js';
import type { StepResult } from './fixtures/effect-tasks.js';

/** Leases a paused worker held when it was stopped, and when it was resumed. */
export interface Pause {
  pid: number;
  stoppedAt: number;
  resumedAt: number;
  held: { jobId: string; fence: number }[];
}

export interface CheckInput {
  store: Store;
  tenant: string;
  jobIds: string[];
  steps: number;
  audit: AuditRow[];
  effects: EffectRow[];
  pauses?: Pause[];
}

export interface CheckReport {
  jobs: number;
  succeeded: number;
  /** Submitted jobs missing from the ledger or not terminal. */
  lost: number;
  /** Of the lost: still holding a lease that has expired (the reaper never returned them). */
  stuck: number;
  /** Terminal, but not `succeeded` (dead, cancelled, expired…). */
  notSucceeded: number;
  /** (job, step) committed more than once (ledger rows or step.committed events), or >1 terminal event. */
  duplicates: number;
  /** (job, step) of a succeeded job with no committed step. */
  missingSteps: number;
  /** Jobs whose outbox events are not a legal walk ending in job.succeeded. */
  illegalWalks: number;
  /** External writes: accepted, and refused. */
  writesAccepted: number;
  writesRejected: number;
  /** Accepted writes whose fence was below a fence already accepted for that key. */
  staleAccepted: number;
  /** Refused writes (their fence was below the key's stored fence). */
  staleRejected: number;
  /** Accepted writes overwritten later by a newer owner (re-executions after a crash). */
  superseded: number;
  /** Committed steps whose external value is not the one the committing attempt wrote. */
  effectMismatches: number;
  /** Writes a paused owner tried after resuming, with the fence of a lease it had lost. */
  postResumeWrites: number;
  postResumeRejected: number;
  /** Accepted (no newer owner had written the key yet) and later overwritten, never committed. */
  postResumeSuperseded: number;
  /** Every failed check, readable (the first ones in full). */
  violations: string[];
}

const LEGAL = new Map<string, Set<string>>();
for (const t of TRANSITIONS) {
  const k = `${t.from}>${t.to}`;
  const reasons = LEGAL.get(k) ?? new Set<string>();
  for (const r of t.reasons) reasons.add(r);
  LEGAL.set(k, reasons);
}

/** Every outbox event of the ledger, in seq order. */
export async function readAllEvents(store: Store): Promise<OutboxEvent[]> {
  const all: OutboxEvent[] = [];
  let after = 0;
  for (;;) {
    const page = await store.readEvents(after, 5000);
    if (page.length === 0) return all;
    all.push(...page);
    after = (page[page.length - 1] as OutboxEvent).seq;
  }
}

/** Every job of `tenant`, by id. */
export async function readAllJobs(store: Store, tenant: string): Promise<Map<string, Job>> {
  const jobs = new Map<string, Job>();
  let cursor: string | undefined;
  do {
    const page = await store.list({ tenant }, { limit: 500, ...(cursor !== undefined && { cursor }) });
    for (const j of page.jobs) jobs.set(j.id, j);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return jobs;
}

/** Why this job's events are not a legal lifecycle walk ending in `succeeded`, or undefined. */
export function walkProblem(events: OutboxEvent[]): string | undefined {
  let state = 'submitted';
  for (const e of events) {
    const d = e.data as { from?: string; to?: string; reason?: string };
    if (e.type === 'step.committed') {
      if (state !== 'running') return `seq ${e.seq}: step.committed while ${state}`;
      continue;
    }
    if (e.type === 'job.cancel_requested') continue;
    if (d.from !== state) return `seq ${e.seq}: ${e.type} from '${d.from}' but the job was '${state}'`;
    const reasons = LEGAL.get(`${d.from}>${d.to}`);
    if (!reasons) return `seq ${e.seq}: ${d.from} -> ${d.to} is not a transition`;
    if (d.reason !== undefined && !reasons.has(d.reason))
      return `seq ${e.seq}: ${d.from} -> ${d.to} with reason '${d.reason}'`;
    if (e.type !== `job.${d.to}`) return `seq ${e.seq}: type ${e.type} for a move to ${d.to}`;
    if (TERMINAL_STATES.has(state as never)) return `seq ${e.seq}: a move out of terminal '${state}'`;
    state = d.to as string;
  }
  return state === 'succeeded' ? undefined : `ends in '${state}', not succeeded`;
}

/** A report with nothing counted yet. */
export function emptyReport(jobs: number): CheckReport {
  return {
    jobs,
    succeeded: 0,
    lost: 0,
    stuck: 0,
    notSucceeded: 0,
    duplicates: 0,
    missingSteps: 0,
    illegalWalks: 0,
    writesAccepted: 0,
    writesRejected: 0,
    staleAccepted: 0,
    staleRejected: 0,
    superseded: 0,
    effectMismatches: 0,
    postResumeWrites: 0,
    postResumeRejected: 0,
    postResumeSuperseded: 0,
    violations: [],
  };
}

/**
 * The external store: per key, accepted fences never go down (a stale owner's write is never
 * accepted over a newer one's), every refusal was justified, and the stored rows agree with the
 * audit log. Adds its counts and violations to `r`.
 */
export function checkExternal(
  audit: AuditRow[],
  effects: EffectRow[],
  jobIds: string[],
  r: CheckReport,
): void {
  const bad = (msg: string) => r.violations.push(msg);
  const finals = new Map(effects.map((e) => [e.key, e]));
  const maxAccepted = new Map<string, number>();
  const acceptedCount = new Map<string, number>();
  for (const a of audit) {
    const max = maxAccepted.get(a.key);
    if (a.accepted) {
      r.writesAccepted++;
      acceptedCount.set(a.key, (acceptedCount.get(a.key) ?? 0) + 1);
      if (max !== undefined && a.fence < max) {
        r.staleAccepted++;
        bad(
          `external key ${a.key}: accepted fence ${a.fence} after fence ${max} (audit #${a.id}, pid ${a.pid})`,
        );
      }
      maxAccepted.set(a.key, Math.max(max ?? a.fence, a.fence));
      const final = finals.get(a.key);
      if (final && a.fence < final.fence) r.superseded++;
    } else {
      r.writesRejected++;
      if (max !== undefined && a.fence < max) r.staleRejected++;
      else bad(`external key ${a.key}: fence ${a.fence} refused though the key held ${max ?? 'nothing'}`);
    }
  }
  const submitted = new Set(jobIds);
  for (const e of effects) {
    if ((acceptedCount.get(e.key) ?? 0) !== e.writes)
      bad(
        `external key ${e.key}: ${e.writes} writes stored, ${acceptedCount.get(e.key) ?? 0} accepted in the audit`,
      );
    if (!submitted.has(e.jobId)) bad(`external key ${e.key} belongs to no submitted job`);
  }
}

export async function check(input: CheckInput): Promise<CheckReport> {
  const { store, steps } = input;
  const r = emptyReport(input.jobIds.length);
  const bad = (msg: string) => r.violations.push(msg);
  const now = await store.now();
  const jobs = await readAllJobs(store, input.tenant);
  const events = await readAllEvents(store);
  const byJob = new Map<string, OutboxEvent[]>();
  for (const e of events) {
    if (e.jobId === null) continue;
    const list = byJob.get(e.jobId) ?? [];
    list.push(e);
    byJob.set(e.jobId, list);
  }
  const effects = new Map(input.effects.map((e) => [e.key, e]));
  const committed = new Map<string, Step>();

  for (const id of input.jobIds) {
    const job = jobs.get(id);
    if (!job || !TERMINAL_STATES.has(job.state)) {
      r.lost++;
      const expired = job?.leaseExpiresAt !== undefined && job.leaseExpiresAt < now;
      if (expired) r.stuck++;
      bad(
        job
          ? `job ${id} is ${job.state} (attempt ${job.attempt}, fence ${job.fence}, worker ${job.workerId ?? '-'}${expired ? `, lease expired ${now - (job.leaseExpiresAt ?? now)} ms ago` : ''})`
          : `job ${id} is missing from the ledger`,
      );
      continue;
    }
    if (job.state === 'succeeded') r.succeeded++;
    else {
      r.notSucceeded++;
      bad(`job ${id} ended ${job.state} (${job.error?.code ?? job.reason}: ${job.error?.message ?? ''})`);
    }
    const evs = byJob.get(id) ?? [];
    const terminals = evs.filter((e) => TERMINAL_STATES.has((e.data as { to?: string }).to as never));
    if (terminals.length !== 1) {
      r.duplicates += Math.max(0, terminals.length - 1);
      bad(`job ${id} has ${terminals.length} terminal events`);
    }
    const walk = walkProblem(evs);
    if (walk) {
      r.illegalWalks++;
      bad(`job ${id}: illegal lifecycle walk: ${walk}`);
    }
    const rows = await store.listSteps(id);
    const seen = new Map<string, number>();
    for (const s of rows) {
      seen.set(s.stepKey, (seen.get(s.stepKey) ?? 0) + 1);
      committed.set(`${id}:${s.stepKey}`, s);
    }
    const stepEvents = new Map<string, number>();
    for (const e of evs)
      if (e.type === 'step.committed') {
        const k = String((e.data as { stepKey?: unknown }).stepKey);
        stepEvents.set(k, (stepEvents.get(k) ?? 0) + 1);
      }
    for (let i = 0; i < steps; i++) {
      const key = `s${i}`;
      const n = seen.get(key) ?? 0;
      const m = stepEvents.get(key) ?? 0;
      if (n > 1 || m > 1) {
        r.duplicates += Math.max(n, m) - 1;
        bad(`job ${id} step ${key}: ${n} ledger rows, ${m} step.committed events`);
      }
      if (job.state === 'succeeded' && (n === 0 || m === 0)) {
        r.missingSteps++;
        bad(`job ${id} step ${key}: succeeded without it (${n} rows, ${m} events)`);
      }
      const step = committed.get(`${id}:${key}`);
      if (!step) continue;
      const result = step.result as StepResult;
      const effect = effects.get(`${id}:${key}`);
      if (
        !effect ||
        result.fence !== step.fence ||
        effect.fence !== step.fence ||
        effect.value !== result.value
      ) {
        r.effectMismatches++;
        bad(
          `job ${id} step ${key}: committed by fence ${step.fence} (${JSON.stringify(result)}), external value ${effect ? `${effect.value} (fence ${effect.fence})` : 'missing'}`,
        );
      }
    }
  }

  checkExternal(input.audit, input.effects, input.jobIds, r);

  // Paused owners: what they tried after waking up, with a lease that had expired while stopped.
  for (const p of input.pauses ?? []) {
    const held = new Set(p.held.map((h) => `${h.jobId}@${h.fence}`));
    for (const a of input.audit) {
      if (a.pid !== p.pid || a.at < p.resumedAt || !held.has(`${a.jobId}@${a.fence}`)) continue;
      r.postResumeWrites++;
      if (!a.accepted) r.postResumeRejected++;
      else if ((effects.get(a.key)?.fence ?? a.fence) > a.fence) r.postResumeSuperseded++;
      else bad(`paused owner pid ${p.pid} wrote ${a.key} at fence ${a.fence} after resuming and it stuck`);
    }
    for (const h of p.held) {
      for (const s of await store.listSteps(h.jobId)) {
        if (s.fence === h.fence && s.createdAt >= p.resumedAt)
          bad(`job ${h.jobId}: step ${s.stepKey} committed by fence ${h.fence} after its owner resumed`);
      }
    }
  }
  return r;
}
