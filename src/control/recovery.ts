/**
 * The recovery report: after an outage, what happened since a moment, read from the outbox — what
 * was accepted, what ran on cached authority (no recent control contact), what was blocked and for
 * which reason, what the reaper took back, how jobs ended, and the config changes. The jobs that
 * ran on cached authority or lost their lease are the ones to reconcile.
 *
 * For the whole deployment (a system-tenant caller), or for one tenant: then only that tenant's jobs
 * are counted and the config changes are left out — config is the deployment's, not the tenant's.
 */
import type { Store } from '../ledger/store.js';
import type { OutboxEvent } from '../ledger/types.js';

export interface RecoveryReport {
  /** The tenant whose jobs the report counts; absent when it covers the whole deployment. */
  tenant?: string;
  since: string;
  until: string;
  eventsScanned: number;
  accepted: number;
  cachedAuthority: { attempts: number; jobs: string[] };
  blocked: Record<string, number>;
  stillBlocked: number;
  reaped: { count: number; jobs: string[] };
  ended: Record<string, number>;
  /** Config and control-mode events: in the deployment's report only. */
  configChanges?: { seq: number; type: string; at: string; data: Record<string, unknown> }[];
  /** Jobs to check against external systems: ran on cached authority, or lost a lease. */
  needsReconciliation: string[];
}

const SAMPLE = 200;

/**
 * The read cursor from which events happened at or after `at`: the smallest cursor c whose next
 * event is at or after `at` (seq and time grow together), found by galloping then bisecting, one
 * indexed read per probe instead of a scan of the whole outbox.
 */
async function cursorAt(store: Store, at: number): Promise<number> {
  const reached = async (c: number) => {
    const next = (await store.readEvents(c, 1))[0];
    return next === undefined || next.at >= at;
  };
  if (await reached(0)) return 0;
  let lo = 0; // reached(lo) is false
  let step = 1024;
  while (!(await reached(lo + step))) {
    lo += step;
    step *= 2;
  }
  let hi = lo + step; // reached(hi) is true
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (await reached(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

export async function recoveryReport(
  store: Store,
  since: number,
  options: { tenant?: string } = {},
): Promise<RecoveryReport> {
  const until = Date.now();
  const whole = options.tenant === undefined;
  const configChanges: NonNullable<RecoveryReport['configChanges']> = [];
  const report: RecoveryReport = {
    ...(options.tenant !== undefined && { tenant: options.tenant }),
    since: new Date(since).toISOString(),
    until: new Date(until).toISOString(),
    eventsScanned: 0,
    accepted: 0,
    cachedAuthority: { attempts: 0, jobs: [] },
    blocked: {},
    stillBlocked: 0,
    reaped: { count: 0, jobs: [] },
    ended: {},
    ...(whole && { configChanges }),
    needsReconciliation: [],
  };
  const reconcile = new Set<string>();
  const add = (list: string[], id: string | null) => {
    if (id && list.length < SAMPLE && !list.includes(id)) list.push(id);
  };
  const visit = (e: OutboxEvent) => {
    if (e.at < since || e.at > until) return;
    if (!whole && e.tenant !== options.tenant) return;
    if (e.type.startsWith('config.') || e.type.startsWith('control.')) {
      if (whole)
        configChanges.push({ seq: e.seq, type: e.type, at: new Date(e.at).toISOString(), data: e.data });
      return;
    }
    report.eventsScanned++;
    const d = e.data;
    if (d.from === 'submitted') report.accepted++;
    if (e.type === 'job.running' && d.cachedAuthority === true) {
      report.cachedAuthority.attempts++;
      add(report.cachedAuthority.jobs, e.jobId);
      if (e.jobId) reconcile.add(e.jobId);
    }
    if (e.type === 'job.blocked')
      report.blocked[String(d.reason)] = (report.blocked[String(d.reason)] ?? 0) + 1;
    if (d.reason === 'lease_expired') {
      report.reaped.count++;
      add(report.reaped.jobs, e.jobId);
      if (e.jobId) reconcile.add(e.jobId);
    }
    if (['job.succeeded', 'job.dead', 'job.cancelled', 'job.expired', 'job.rejected'].includes(e.type)) {
      const state = e.type.slice(4);
      report.ended[state] = (report.ended[state] ?? 0) + 1;
    }
  };
  let after = await cursorAt(store, since);
  for (;;) {
    const page = await store.readEvents(after, 5000);
    for (const e of page) visit(e);
    const last = page[page.length - 1];
    if (!last || page.length < 5000 || last.at > until) break;
    after = last.seq;
  }
  let cursor: string | undefined;
  do {
    const page = await store.list(
      { states: ['blocked'], ...(options.tenant !== undefined && { tenant: options.tenant }) },
      { limit: 500, ...(cursor !== undefined && { cursor }) },
    );
    report.stillBlocked += page.jobs.length;
    cursor = page.nextCursor;
  } while (cursor);
  report.needsReconciliation = [...reconcile].slice(0, SAMPLE);
  return report;
}
