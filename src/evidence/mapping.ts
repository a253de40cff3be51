/**
 * What each outbox event becomes in the evidence log: its kind, subject and fields. Every key of
 * the event's data is a field of its own (committed separately, so it can be redacted alone), plus
 * `event`, the outbox type. Nothing is dropped: an event type this table does not know is recorded
 * as a `state` entry (job events) or an `admin` entry (others).
 */
import type { OutboxEvent } from '../ledger/types.js';
import type { Draft, EvidenceKind } from './format.js';

const TERMINAL = new Set(['job.succeeded', 'job.dead', 'job.cancelled', 'job.expired', 'job.rejected']);

export function kindOf(e: OutboxEvent): EvidenceKind {
  const reason = e.data.reason;
  if (e.type.startsWith('job.')) {
    if (e.data.from === 'submitted') return 'admission';
    if (reason === 'approved' || reason === 'rejected' || e.type === 'job.approval_recorded')
      return 'approval';
    if (TERMINAL.has(e.type)) return 'outcome';
    if (e.type === 'job.failed') return 'failure';
    if (reason === 'retry_scheduled') return 'retry';
    if (reason === 'lease_expired') return 'recovery';
    if (e.type === 'job.leased' || reason === 'released') return 'lease';
    if (e.type === 'job.running') return 'start';
    return 'state';
  }
  if (e.type.startsWith('step.')) return 'step';
  if (e.type.startsWith('blob.')) return 'blob';
  if (e.type.startsWith('config.')) return 'config';
  if (e.type === 'worker.lost') return 'recovery';
  return 'admin';
}

function subjectOf(e: OutboxEvent): string {
  if (e.jobId !== null) return `job:${e.jobId}`;
  if (e.type.startsWith('config.') && typeof e.data.version === 'number') return `config:${e.data.version}`;
  if (typeof e.data.workerId === 'string') return `worker:${e.data.workerId}`;
  return `tenant:${e.tenant}`;
}

export function draftOf(e: OutboxEvent): Draft {
  return {
    occurredAt: e.at,
    tenant: e.tenant,
    correlationId: e.correlationId,
    kind: kindOf(e),
    subject: subjectOf(e),
    sourceSeq: e.seq,
    fields: { event: e.type, ...e.data },
  };
}

/** The entry recording outbox events lost before they were shipped (`sourceSeq` is the range's end). */
export function gapDraft(fromSeq: number, toSeq: number, at: number): Draft {
  return {
    occurredAt: at,
    tenant: 'default',
    correlationId: null,
    kind: 'gap',
    subject: 'outbox',
    sourceSeq: toSeq,
    fields: {
      fromSeq,
      toSeq,
      reason: 'outbox events were pruned before the shipper recorded them',
    },
  };
}
