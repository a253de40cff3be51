/**
 * The evidence plane's operations over a store: verify, export, trails, redaction, retention, legal
 * holds, corrections and health. Tenant scoping happens here: a caller of tenant T sees and changes
 * only T's entries; the system tenant sees all.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { newJobId } from '../ledger/ids.js';
import type { Store } from '../ledger/store.js';
import { entryLine, headerLine, recordFromRow, stubLine } from './codec.js';
import {
  EvidenceNotFoundError,
  EvidenceUnavailableError,
  HoldNotFoundError,
  LegalHoldError,
} from './errors.js';
import { type CheckpointSigner, type Draft, type Entry, STRUCTURAL_KINDS } from './format.js';
import { manifestLine } from './manifest.js';
import { EVIDENCE_CONSUMER } from './shipper.js';
import type { EvidenceStore, Hold, LastVerification } from './store.js';
import { keyMap, Verifier, type VerifierOptions, type VerifyReport } from './verify.js';

/** Entries every bundle discloses in full: they say nothing about any tenant's work. */
const ALWAYS_DISCLOSED = new Set(['checkpoint', 'retention', 'gap']);
const PAGE = 5000;

export interface Caller {
  tenant: string;
  /** The key id, recorded as `by` on what the caller changes. */
  by: string;
  /** The system tenant: sees and acts across tenants. */
  system: boolean;
}

export interface EvidenceServiceOptions {
  store: EvidenceStore;
  /** For the shipper's lag and resolving a job id to its correlation id. */
  ledger?: Store;
  /** Keys trusted for checkpoints; without them, the keys recorded in the store. */
  trustedKeys?: KeyObject[];
  /** Signs the manifest line of exported bundles (the deployment's key). */
  signer?: CheckpointSigner;
}

export interface ExportOptions {
  fromSeq?: number;
  toSeq?: number;
  correlationId?: string;
}

export class EvidenceService {
  constructor(private readonly options: EvidenceServiceOptions) {}

  get store(): EvidenceStore {
    return this.options.store;
  }

  private async keys(): Promise<Map<string, KeyObject>> {
    if (this.options.trustedKeys) return keyMap(this.options.trustedKeys);
    const pems = await this.store.signingKeys();
    return keyMap([...pems.values()].map((pem) => createPublicKey(pem)));
  }

  /** Check the whole log; the result is kept for `health()`. */
  async verify(
    options: { onProgress?: (done: number, total: number) => void; pinned?: VerifierOptions['pinned'] } = {},
  ): Promise<VerifyReport> {
    const head = await this.store.head();
    const verifier = new Verifier({
      mode: 'log',
      keys: await this.keys(),
      ...(options.pinned && { pinned: options.pinned }),
    });
    let next = 1;
    while (verifier.healthy) {
      const rows = await this.store.readRows(next, PAGE);
      if (rows.length === 0) break;
      for (const row of rows) if (!verifier.push(recordFromRow(row))) break;
      next = (rows[rows.length - 1]?.seq ?? next) + 1;
      options.onProgress?.(Math.min(next - 1, head.seq), head.seq);
      if (rows.length < PAGE) break;
    }
    const report = verifier.finish();
    const record: LastVerification = {
      at: Date.now(),
      ok: report.ok,
      entries: report.entries,
      headSeq: report.head?.seq ?? null,
      firstBadSeq: report.firstBad?.seq ?? null,
      reason: report.firstBad?.reason ?? null,
    };
    await this.store.recordVerification(record).catch(() => undefined);
    return report;
  }

  /**
   * A JSONL bundle: a header, then every entry of the range — in full when the caller may see it
   * and it matches the filter, else as a stub — through the first checkpoint that covers the
   * range's end (signing the head first when none does yet).
   */
  async *exportBundle(caller: Caller, options: ExportOptions = {}): AsyncGenerator<string> {
    const head = await this.store.head();
    if (head.seq === 0) throw new EvidenceNotFoundError('the evidence log is empty: nothing to export');
    const fromSeq = options.fromSeq ?? 1;
    const toSeq = Math.min(options.toSeq ?? head.seq, head.seq);
    if (fromSeq > toSeq)
      throw new EvidenceNotFoundError(
        `no entries in the range ${fromSeq}..${toSeq} (the head is ${head.seq})`,
      );
    // The first checkpoint at or after the range's end signs everything up to it.
    let [cp] = await this.store.byKind(['checkpoint'], { afterSeq: toSeq - 1, limit: 1 });
    cp ??= (await this.store.checkpoint()) ?? undefined;
    if (!cp)
      throw new EvidenceUnavailableError(
        'the log has no checkpoint covering the range and this process has no signing key',
      );
    const keyIds = [...(await this.keys()).keys()];
    const filter: { tenant?: string; correlationId?: string } = {};
    if (!caller.system) filter.tenant = caller.tenant;
    if (options.correlationId !== undefined) filter.correlationId = options.correlationId;
    const signer = this.options.signer;
    if (!signer)
      throw new EvidenceUnavailableError('this process has no signing key: it cannot sign an export');
    const digest = createHash('sha256');
    const emit = (line: string) => {
      digest.update(`${line}\n`);
      return line;
    };
    yield emit(headerLine({ fromSeq, toSeq: cp.seq, keyIds, filter, exportedAt: Date.now() }));
    for (let next = fromSeq; next <= cp.seq; ) {
      const rows = await this.store.readRows(next, PAGE, cp.seq);
      if (rows.length === 0) break;
      for (const row of rows) {
        const r = recordFromRow(row);
        if (r.type !== 'entry')
          throw new Error(
            `entry ${row.seq} is malformed (${r.type === 'malformed' ? r.reason : ''}); run verify`,
          );
        yield emit(disclosed(r.entry, filter) ? entryLine(r.entry) : stubLine(r.entry));
      }
      next = (rows[rows.length - 1]?.seq ?? next) + 1;
    }
    yield manifestLine(digest.digest('hex'), signer);
  }

  /** The entries of a job (by id) or a correlation id, in order. */
  async trail(caller: Caller, id: string): Promise<Entry[]> {
    const scope = caller.system ? {} : { tenant: caller.tenant };
    let entries = await this.store.byCorrelation(id, scope);
    if (entries.length === 0 && this.options.ledger) {
      const job = await this.options.ledger.get(id, scope).catch(() => undefined);
      if (job) entries = await this.store.byCorrelation(job.correlationId, scope);
    }
    if (entries.length === 0)
      throw new EvidenceNotFoundError(`no evidence for '${id}' (a job id or correlation id)`);
    return entries;
  }

  /**
   * Erase one field's value in every entry of a correlation id, and record it: one `redaction`
   * entry per tenant whose entries carry the id (a system caller may reach several). Refused, and
   * nothing changed, when a legal hold covers any of them.
   */
  async redact(caller: Caller, r: { correlationId: string; field: string; reason: string }): Promise<Entry> {
    const entries = await this.store.byCorrelation(
      r.correlationId,
      caller.system ? {} : { tenant: caller.tenant },
    );
    const targets = entries.filter(
      (e) =>
        !STRUCTURAL_KINDS.has(e.kind) &&
        (e.fields[r.field] as { value?: unknown } | undefined)?.value !== undefined,
    );
    if (targets.length === 0) {
      throw new EvidenceNotFoundError(
        entries.length === 0
          ? `no evidence for correlation id '${r.correlationId}'`
          : `no entry of correlation id '${r.correlationId}' holds a value for field '${r.field}' (already redacted, or no such field)`,
      );
    }
    const byTenant = new Map<string, Entry[]>();
    for (const e of targets) byTenant.set(e.tenant, [...(byTenant.get(e.tenant) ?? []), e]);
    for (const tenant of byTenant.keys()) {
      const hold = await this.holdCovering(tenant, r.correlationId);
      if (hold) throw new LegalHoldError(hold.id, `correlation id '${r.correlationId}'`);
    }
    // One transaction for all tenants: each tenant's entries are erased by its own redaction entry.
    const groups = [...byTenant];
    const drafts: Draft[] = groups.map(([tenant, list]) => ({
      occurredAt: Date.now(),
      tenant,
      correlationId: r.correlationId,
      kind: 'redaction',
      subject: `correlation:${r.correlationId}`,
      sourceSeq: null,
      fields: {
        correlationId: r.correlationId,
        field: r.field,
        seqs: list.map((e) => e.seq),
        reason: r.reason,
        by: caller.by,
      },
    }));
    const { entries: written } = await this.store.append(drafts, {
      erase: groups.flatMap(([, list], i) => list.map((e) => ({ seq: e.seq, fields: [r.field], by: i }))),
    });
    const first = written[0];
    return first as Entry;
  }

  /** The active hold covering a tenant's correlation id (or the whole tenant), if any. */
  private async holdCovering(tenant: string, correlationId: string | null): Promise<Hold | undefined> {
    return (await this.store.holds({ active: true })).find((h) => covers(h, tenant, correlationId));
  }

  /**
   * Erase the values of entries recorded before `now - days`, except entries under a legal hold and
   * the evidence plane's own entries; one `retention` entry per batch records what was erased.
   */
  async applyRetention(days: number, now = Date.now()): Promise<{ erased: number; entries: Entry[] }> {
    const cutoff = now - days * 86_400_000;
    const end = (await this.store.firstSeqAtOrAfter(cutoff)) - 1;
    const holds = await this.store.holds({ active: true });
    let erased = 0;
    const written: Entry[] = [];
    for (let next = 1; next <= end; ) {
      const rows = await this.store.readRows(next, 1000, end);
      if (rows.length === 0) break;
      const targets: Array<{ seq: number; fields: string[] }> = [];
      for (const row of rows) {
        const r = recordFromRow(row);
        if (r.type !== 'entry') continue;
        const e = r.entry;
        if (STRUCTURAL_KINDS.has(e.kind) || e.occurredAt >= cutoff) continue;
        if (holds.some((h) => covers(h, e.tenant, e.correlationId))) continue;
        const fields = Object.entries(e.fields)
          .filter(([, f]) => 'value' in f)
          .map(([name]) => name);
        if (fields.length > 0) targets.push({ seq: e.seq, fields });
      }
      const first = rows[0]?.seq ?? next;
      const last = rows[rows.length - 1]?.seq ?? next;
      if (targets.length > 0) {
        const { entries } = await this.store.append(
          [
            {
              occurredAt: now,
              tenant: 'default',
              correlationId: null,
              kind: 'retention',
              subject: 'evidence',
              sourceSeq: null,
              fields: { cutoff, fromSeq: first, toSeq: last, count: targets.length, days },
            },
          ],
          { erase: targets },
        );
        written.push(...entries);
        erased += targets.length;
      }
      next = last + 1;
    }
    return { erased, entries: written };
  }

  /**
   * Place a legal hold on a correlation id (of the caller's tenant; for a system caller, of the
   * tenant whose entries carry it) or on a whole tenant (the caller's own, or any for a system
   * caller).
   */
  async placeHold(
    caller: Caller,
    h: { correlationId?: string; tenant?: string; reason: string },
  ): Promise<Hold> {
    let tenant: string;
    if (h.correlationId !== undefined) {
      // A tenant's key holds the id in its own tenant. A system key holds it in the one tenant
      // whose entries carry it, or — when several or none do yet — in every tenant, now and later.
      if (caller.system) {
        const carried = (await this.store.byCorrelation(h.correlationId)).filter(
          (e) => !STRUCTURAL_KINDS.has(e.kind),
        );
        const tenants = new Set(carried.map((e) => e.tenant));
        tenant = tenants.size === 1 ? ([...tenants][0] as string) : ALL_TENANTS;
      } else tenant = caller.tenant;
    } else {
      tenant = h.tenant ?? caller.tenant;
      if (!caller.system && tenant !== caller.tenant)
        throw new EvidenceNotFoundError(`tenant '${tenant}' does not exist (or is not yours to hold)`);
      if (this.options.ledger && !(await this.options.ledger.registry.getTenant(tenant)))
        throw new EvidenceNotFoundError(`tenant '${tenant}' does not exist`);
    }
    const id = `hold_${newJobId()}`;
    const correlationId = h.correlationId ?? null;
    return this.store.placeHold(
      { id, tenant, correlationId, placedBy: caller.by, bySystem: caller.system, reason: h.reason },
      {
        occurredAt: Date.now(),
        tenant: tenant === ALL_TENANTS ? caller.tenant : tenant,
        correlationId,
        kind: 'hold',
        subject: `hold:${id}`,
        sourceSeq: null,
        fields: {
          holdId: id,
          scope: correlationId !== null ? { tenant, correlationId } : { tenant },
          reason: h.reason,
          by: caller.by,
        },
      },
    );
  }

  /** Release a hold: the caller's tenant's own holds; a hold placed by a system key needs a system key. */
  async releaseHold(caller: Caller, id: string, reason: string): Promise<Hold> {
    const hold = (await this.store.holds({ active: true })).find((h) => h.id === id);
    if (!hold || (!caller.system && (hold.tenant !== caller.tenant || hold.bySystem)))
      throw new HoldNotFoundError(id);
    return this.store.releaseHold(id, {
      occurredAt: Date.now(),
      tenant: hold.tenant === ALL_TENANTS ? caller.tenant : hold.tenant,
      correlationId: hold.correlationId,
      kind: 'hold_released',
      subject: `hold:${id}`,
      sourceSeq: null,
      fields: { holdId: id, reason, by: caller.by },
    });
  }

  /** A tenant sees its own holds, and system holds on correlation ids its entries carry. */
  async holds(caller: Caller): Promise<Hold[]> {
    const all = await this.store.holds();
    if (caller.system) return all;
    const out: Hold[] = [];
    for (const h of all) {
      if (h.tenant === caller.tenant) out.push(h);
      else if (h.tenant === ALL_TENANTS && h.correlationId !== null) {
        const mine = await this.store.byCorrelation(h.correlationId, { tenant: caller.tenant });
        if (mine.length > 0) out.push(h);
      }
    }
    return out;
  }

  /** Amend an earlier entry: a new entry that points at it by seq (the original is never rewritten). */
  async correct(caller: Caller, c: { seq: number; note: string }): Promise<Entry> {
    const [row] = await this.store.readRows(c.seq, 1, c.seq);
    if (!row || (!caller.system && row.tenant !== caller.tenant))
      throw new EvidenceNotFoundError(
        `evidence entry ${c.seq} does not exist (or belongs to another tenant)`,
      );
    const { entries } = await this.store.append([
      {
        occurredAt: Date.now(),
        tenant: row.tenant,
        correlationId: row.correlation_id,
        kind: 'correction',
        subject: `entry:${c.seq}`,
        sourceSeq: null,
        fields: { targetSeq: c.seq, note: c.note, by: caller.by },
      },
    ]);
    return entries[0] as Entry;
  }

  /** The `evidence` section of /v1/health. */
  async health(): Promise<Record<string, unknown>> {
    const [head, last, verification, gaps] = await Promise.all([
      this.store.head(),
      this.store.lastCheckpoint(),
      this.store.lastVerification(),
      this.store.countKind('gap'),
    ]);
    const ledger = this.options.ledger;
    const outboxHead = ledger ? await ledger.outboxHead().catch(() => null) : null;
    const consumer = ledger ? await ledger.readConsumer(EVIDENCE_CONSUMER).catch(() => null) : null;
    const lag = outboxHead === null ? null : Math.max(0, outboxHead - head.shippedThrough);
    const ok = (verification?.ok ?? true) && (consumer?.failures ?? 0) === 0;
    return {
      status: ok ? 'ok' : 'degraded',
      store: this.store.dialect,
      headSeq: head.seq,
      shippedThrough: head.shippedThrough,
      shipperLag: lag,
      ...(consumer?.lastError && consumer.failures > 0 && { shipperError: consumer.lastError }),
      // The signed checkpoint itself, to keep outside the store (`evidence verify --checkpoint`).
      lastCheckpoint: last ? checkpointOf(last) : null,
      lastVerify: verification,
      gaps,
    };
  }
}

/** The tenant of a hold placed with a system key on a correlation id: it covers every tenant. */
export const ALL_TENANTS = '*';

function covers(h: Hold, tenant: string, correlationId: string | null): boolean {
  return (
    (h.tenant === tenant || h.tenant === ALL_TENANTS) &&
    (h.correlationId === null || h.correlationId === correlationId)
  );
}

function checkpointOf(e: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of ['seq', 'headHash', 'at', 'keyId', 'signature']) {
    const f = e.fields[name];
    out[name] = f && 'value' in f ? f.value : null;
  }
  return out;
}

function disclosed(e: Entry, filter: { tenant?: string; correlationId?: string }): boolean {
  if (ALWAYS_DISCLOSED.has(e.kind)) return true;
  if (filter.tenant !== undefined && e.tenant !== filter.tenant) return false;
  if (filter.correlationId !== undefined && e.correlationId !== filter.correlationId) return false;
  return true;
}
