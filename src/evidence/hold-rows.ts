/** Legal-hold rows, the same columns in both dialects. */
import type { Entry } from './format.js';
import type { Hold, LastVerification } from './store.js';

export interface HoldRow {
  id: string;
  tenant: string;
  correlation_id: string | null;
  placed_by: string;
  by_system: number | boolean;
  reason: string;
  placed_seq: number;
  placed_at: number;
  released_seq: number | null;
  released_at: number | null;
}

export function holdFromRow(r: HoldRow): Hold {
  return {
    id: r.id,
    tenant: r.tenant,
    correlationId: r.correlation_id,
    placedBy: r.placed_by,
    bySystem: r.by_system === true || r.by_system === 1,
    reason: r.reason,
    placedSeq: Number(r.placed_seq),
    placedAt: Number(r.placed_at),
    releasedSeq: r.released_seq === null ? null : Number(r.released_seq),
    releasedAt: r.released_at === null ? null : Number(r.released_at),
  };
}

type NewHold = Omit<Hold, 'placedSeq' | 'placedAt' | 'releasedSeq' | 'releasedAt'>;

/** The values of a new `holds` row, in its INSERT's column order. */
export function holdValues(
  hold: NewHold,
  placed: Entry,
  bool: (b: boolean) => unknown = (b) => b,
): unknown[] {
  return [
    hold.id,
    hold.tenant,
    hold.correlationId,
    hold.placedBy,
    bool(hold.bySystem),
    hold.reason,
    placed.seq,
    placed.recordedAt,
  ];
}

export const HOLD_COLUMNS = 'id, tenant, correlation_id, placed_by, by_system, reason, placed_seq, placed_at';

/** The hold just placed by the entry `placed`. */
export function placedHold(hold: NewHold, placed: Entry): Hold {
  return { ...hold, placedSeq: placed.seq, placedAt: placed.recordedAt, releasedSeq: null, releasedAt: null };
}

export interface VerificationRow {
  at: number;
  ok: number | boolean;
  entries: number;
  head_seq: number | null;
  first_bad_seq: number | null;
  reason: string | null;
}

export function verificationFromRow(r: VerificationRow): LastVerification {
  return {
    at: Number(r.at),
    ok: r.ok === true || r.ok === 1,
    entries: Number(r.entries),
    headSeq: r.head_seq === null ? null : Number(r.head_seq),
    firstBadSeq: r.first_bad_seq === null ? null : Number(r.first_bad_seq),
    reason: r.reason,
  };
}
