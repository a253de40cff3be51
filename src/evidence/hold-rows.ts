/** Legal-hold rows, the same columns in both dialects. */
import type { Hold } from './store.js';

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
