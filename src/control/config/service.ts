/**
 * The config service: publish, roll back, canary, promote, abort and the control plane's mode, and
 * the signed snapshot each worker should run. A version's document and digest never change; what
 * the control plane refreshes on every serve is the signed validity window (issuedAt .. expiresAt
 * = now + configTtlMs), so a worker that keeps in contact never sees its snapshot expire, and one
 * that loses contact stops claiming once the window closes (freeze protection).
 *
 * Every change is recorded as an outbox event (`config.*`, `control.mode_changed`) with who, what
 * and the versions; the evidence plane ships those.
 */
import type { ConfigReport, ConfigVersion, Rollout } from '../../ledger/config-store.js';
import { ConfigConflictError } from '../../ledger/errors.js';
import { SYSTEM_TENANT } from '../../ledger/registry.js';
import type { Store } from '../../ledger/store.js';
import type { Principal } from '../api-keys.js';
import { registryRow } from '../contract.js';
import { ConfigInvalidError, NoConfigError, ReadOnlyError, ReportRefusedError } from '../errors.js';
import type { SigningKey } from '../signing-keys.js';
import { signSnapshot } from '../signing-keys.js';
import { canonical, documentDigest, type Snapshot } from '../snapshot.js';
import { type ConfigDocument, parseConfig, validateConfig } from './document.js';
import { recordedKeyId, reportRefusal } from './reports.js';

export interface PublishRequest {
  /** YAML/JSON text, or an already-parsed value. */
  document: unknown;
  /** Apply only to workers with this label until promoted. */
  canaryLabel?: string;
  /** Task-code contracts (name, version, input JSON Schema) to merge into taskTypes. */
  taskSchemas?: { name: string; version: number; input: Record<string, unknown> }[];
  by: string;
}

export class ConfigService {
  constructor(
    private readonly store: Store,
    readonly key: SigningKey,
    readonly deploymentId: string,
  ) {}

  /** Parse, validate and normalise a document (defaults applied), merging task-code schemas. */
  prepare(document: unknown, taskSchemas: PublishRequest['taskSchemas'] = []): ConfigDocument {
    const parsed = typeof document === 'string' ? parseConfig(document) : validateConfig(document);
    if (!parsed.ok) throw new ConfigInvalidError(parsed.problems);
    const doc = parsed.document;
    for (const s of taskSchemas) {
      const t = doc.taskTypes.find((x) => x.name === s.name && x.version === s.version);
      if (t) t.input = s.input;
      else {
        const added = validateConfig({ taskTypes: [{ name: s.name, version: s.version, input: s.input }] });
        if (!added.ok) throw new ConfigInvalidError(added.problems);
        doc.taskTypes.push(...added.document.taskTypes);
      }
    }
    return doc;
  }

  async publish(req: PublishRequest): Promise<ConfigVersion> {
    await this.refuseWhenReadOnly('publishing config');
    const doc = this.prepare(req.document, req.taskSchemas);
    const version = await this.store.configs.publish({
      documentJson: canonical(doc),
      digest: documentDigest(doc),
      kind: req.canaryLabel === undefined ? 'publish' : 'canary',
      ...(req.canaryLabel !== undefined && { canaryLabel: req.canaryLabel }),
      publishedBy: req.by,
    });
    await this.syncRegistry(doc);
    await this.audit(req.canaryLabel === undefined ? 'config.published' : 'config.canary_published', req.by, {
      version: version.version,
      digest: version.digest,
      previousDigest: version.previousDigest,
      ...(req.canaryLabel !== undefined && { canaryLabel: req.canaryLabel }),
    });
    return version;
  }

  /** Publish the document of an older version as a new version. */
  async rollback(toVersion: number, by: string): Promise<ConfigVersion> {
    await this.refuseWhenReadOnly('rolling back config');
    const old = await this.store.configs.get(toVersion);
    if (!old) throw new ConfigConflictError(`config version ${toVersion} does not exist`);
    const rollout = await this.store.configs.rollout();
    if (rollout.canary)
      throw new ConfigConflictError('a canary is in flight; promote or abort it before a rollback');
    const doc = JSON.parse(old.documentJson) as ConfigDocument;
    const version = await this.store.configs.publish({
      documentJson: old.documentJson,
      digest: old.digest,
      kind: 'rollback',
      publishedBy: by,
    });
    await this.syncRegistry(doc);
    await this.audit('config.rolled_back', by, {
      version: version.version,
      content: toVersion,
      digest: version.digest,
    });
    return version;
  }

  /** Make the canary current, unless a worker of the canary refused it. */
  async promote(by: string): Promise<Rollout> {
    await this.refuseWhenReadOnly('promoting a canary');
    const rollout = await this.store.configs.rollout();
    if (!rollout.canary) throw new ConfigConflictError('there is no canary to promote');
    const nacks = (await this.store.listWorkers()).filter(
      (w) => w.state !== 'lost' && w.state !== 'stopped' && w.config.nackVersion === rollout.canary?.version,
    );
    if (nacks.length > 0) {
      throw new ConfigConflictError(
        `canary version ${rollout.canary.version} was refused by ${nacks
          .map((w) => `${w.id} (${w.config.nackReason ?? 'no reason'})`)
          .join(', ')}; fix it and publish a new canary, or abort`,
      );
    }
    const promoted = await this.store.configs.promote();
    const version = await this.store.configs.get(rollout.canary.version);
    if (version) await this.syncRegistry(JSON.parse(version.documentJson) as ConfigDocument);
    await this.audit('config.promoted', by, { version: rollout.canary.version, label: rollout.canary.label });
    return promoted;
  }

  /**
   * Drop the canary. Its workers already run a version newer than the current one, and never step
   * back (rollback protection): so the current content is re-published as a new version, which
   * every worker — canary or not — moves forward to.
   */
  async abort(by: string): Promise<Rollout> {
    await this.refuseWhenReadOnly('aborting a canary');
    const before = await this.store.configs.rollout();
    await this.store.configs.abort();
    await this.audit('config.canary_aborted', by, {
      version: before.canary?.version,
      label: before.canary?.label,
    });
    const current =
      before.currentVersion === null ? undefined : await this.store.configs.get(before.currentVersion);
    if (current) {
      const v = await this.store.configs.publish({
        documentJson: current.documentJson,
        digest: current.digest,
        kind: 'rollback',
        publishedBy: by,
      });
      await this.audit('config.rolled_back', by, {
        version: v.version,
        content: current.version,
        digest: v.digest,
      });
    }
    return this.store.configs.rollout();
  }

  async setMode(mode: 'normal' | 'read_only', by: string): Promise<Rollout> {
    const before = await this.store.configs.rollout();
    const after = await this.store.configs.setMode(mode);
    if (before.mode !== mode) await this.audit('control.mode_changed', by, { from: before.mode, to: mode });
    return after;
  }

  async refuseWhenReadOnly(action: string): Promise<void> {
    if ((await this.store.configs.rollout()).mode === 'read_only') throw new ReadOnlyError(action);
  }

  /** The version a worker with these labels should run: the canary's when it carries the label. */
  async versionFor(labels: string[]): Promise<ConfigVersion | undefined> {
    const rollout = await this.store.configs.rollout();
    const v =
      rollout.canary && labels.includes(rollout.canary.label)
        ? rollout.canary.version
        : rollout.currentVersion;
    return v === null ? undefined : this.store.configs.get(v);
  }

  /** A freshly signed snapshot of the version a worker with these labels should run. */
  async snapshotFor(labels: string[], now = Date.now()): Promise<Snapshot> {
    const v = await this.versionFor(labels);
    if (!v) throw new NoConfigError();
    const doc = JSON.parse(v.documentJson) as ConfigDocument;
    return signSnapshot(
      this.key,
      {
        version: v.version,
        deploymentId: this.deploymentId,
        previousDigest: v.previousDigest,
        issuedAt: now,
        ttlMs: doc.configTtlMs,
      },
      doc,
    );
  }

  /**
   * The published task types become the admission contracts (the registry's `config` source), and
   * the tenants it lists exist.
   */
  private async syncRegistry(doc: ConfigDocument): Promise<void> {
    for (const t of doc.tenants) await this.store.registry.createTenant(t.name);
    for (const t of doc.taskTypes) {
      // Whether the code defines compensate() is the code's to say (the worker registers it).
      const existing = await this.store.registry.getTaskType(t.name, t.version);
      const { name, version, input, ...contract } = t;
      await this.store.registry.putTaskType(
        registryRow({
          name,
          version,
          inputSchema: input ?? {},
          contract,
          compensable: existing?.compensable ?? false,
          source: 'config',
        }),
      );
    }
  }

  /**
   * A report that arrived with an API key: accepted only from the worker's own key (reports.ts).
   * A refusal changes nothing, is recorded as `security.report_refused` (who tried, for which
   * worker; never a secret, nor the report's free text), and throws `ReportRefusedError`.
   */
  async reportAs(principal: Principal, report: ConfigReport): Promise<void> {
    const worker = (await this.store.listWorkers()).find((w) => w.id === report.workerId);
    const refusal = reportRefusal(principal, report.workerId, worker);
    if (refusal) {
      const recorded = worker && recordedKeyId(worker);
      await this.store.appendEvent({
        type: 'security.report_refused',
        tenant: SYSTEM_TENANT,
        data: {
          workerId: report.workerId,
          keyId: principal.keyId,
          tenant: principal.tenant,
          roles: principal.roles,
          reason: refusal.reason,
          status: report.status,
          version: report.version,
          ...(recorded !== undefined && { workerKeyId: recorded }),
        },
      });
      throw new ReportRefusedError(report.workerId, refusal.reason, refusal.detail);
    }
    await this.report(report);
  }

  /**
   * A worker applied (ack) or refused (nack) a version: recorded, and kept for the fleet view. Called
   * as is only in process (embedded mode); a report over the API goes through `reportAs`.
   */
  async report(report: ConfigReport): Promise<void> {
    await this.store.configs.report(report);
    await this.store.appendEvent({
      type: report.status === 'ack' ? 'config.applied' : 'config.nacked',
      tenant: SYSTEM_TENANT,
      data: {
        workerId: report.workerId,
        version: report.version,
        ...(report.reason !== undefined && { reason: report.reason }),
      },
    });
  }

  private async audit(type: string, by: string, data: Record<string, unknown>): Promise<void> {
    await this.store.appendEvent({ type, tenant: SYSTEM_TENANT, data: { ...data, by } });
  }
}
