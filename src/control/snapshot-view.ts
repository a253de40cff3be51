/**
 * What a worker reads from a verified snapshot's document, read defensively (the document was
 * validated when it was published and its digest is signed; a worker still never trusts a shape).
 */

export interface SnapshotView {
  /** A freshControl task starts only within this long of the last control contact. */
  freshnessMs: number;
  /** Task names whose jobs need fresh control contact to start. */
  freshControlTasks: Set<string>;
  /** Task names the published config knows (empty: the config lists none). */
  taskNames: Set<string>;
  /** Task names whose jobs start only while evidence is being recorded (`evidence: required`). */
  evidenceRequiredTasks: Set<string>;
  /** How many outbox events the evidence shipper may be behind before required work stops starting. */
  evidenceMaxLag: number;
  /** Per-tenant ceilings on leased and running jobs (`quotas.<tenant>.maxRunning`); empty: none. */
  maxRunning: Record<string, number>;
}

export function viewOf(document: unknown): SnapshotView {
  const doc = (document && typeof document === 'object' ? document : {}) as Record<string, unknown>;
  const freshnessMs = typeof doc.freshnessMs === 'number' && doc.freshnessMs > 0 ? doc.freshnessMs : 30_000;
  const freshControlTasks = new Set<string>();
  const taskNames = new Set<string>();
  const evidenceRequiredTasks = new Set<string>();
  const evidenceMaxLag =
    typeof doc.evidenceMaxLag === 'number' && doc.evidenceMaxLag >= 0 ? doc.evidenceMaxLag : 10_000;
  for (const t of Array.isArray(doc.taskTypes) ? doc.taskTypes : []) {
    if (!t || typeof t !== 'object' || typeof (t as { name?: unknown }).name !== 'string') continue;
    const { name, effect, freshControl, evidence } = t as {
      name: string;
      effect?: unknown;
      freshControl?: unknown;
      evidence?: unknown;
    };
    taskNames.add(name);
    if (evidence === 'required') evidenceRequiredTasks.add(name);
    if (freshControl === true || (freshControl === undefined && effect === 'destructive'))
      freshControlTasks.add(name);
  }
  const maxRunning: Record<string, number> = {};
  const quotas = doc.quotas && typeof doc.quotas === 'object' ? (doc.quotas as Record<string, unknown>) : {};
  for (const [tenant, q] of Object.entries(quotas)) {
    const limit = (q as { maxRunning?: unknown } | null)?.maxRunning;
    if (typeof limit === 'number' && Number.isInteger(limit) && limit >= 0) maxRunning[tenant] = limit;
  }
  return { freshnessMs, freshControlTasks, taskNames, evidenceRequiredTasks, evidenceMaxLag, maxRunning };
}
