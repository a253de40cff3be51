/** The config store on SQLite. */
import type Database from 'better-sqlite3';
import { checkMode, checkNewConfigVersion, checkReport } from '../config-checks.js';
import type {
  ConfigReport,
  ConfigStore,
  ConfigVersion,
  ControlMode,
  NewConfigVersion,
  Rollout,
} from '../config-store.js';
import { ConfigConflictError } from '../errors.js';
import { type ConfigVersionRow, type RolloutRow, rowToConfigVersion, rowToRollout } from '../rows.js';
import { checkInt } from '../validate.js';

export class SqliteConfigs implements ConfigStore {
  private readonly q;

  constructor(
    db: Database.Database,
    private readonly write: <T>(fn: () => T) => Promise<T>,
  ) {
    const p = (sql: string): Database.Statement => db.prepare(sql);
    this.q = {
      newest: p('SELECT * FROM config_versions ORDER BY version DESC LIMIT 1'),
      get: p('SELECT * FROM config_versions WHERE version = ?'),
      list: p('SELECT * FROM config_versions ORDER BY version DESC LIMIT ?'),
      insert: p(`INSERT INTO config_versions (version, document, digest, previous_digest, kind, canary_label,
          published_by, published_at)
        VALUES (@version, @document, @digest, @previousDigest, @kind, @canaryLabel, @publishedBy, @now)`),
      rollout: p('SELECT * FROM config_rollout WHERE id = 1'),
      setCurrent:
        p(`UPDATE config_rollout SET current_version = @version, canary_version = NULL, canary_label = NULL,
          updated_at = @now WHERE id = 1`),
      setCanary: p(
        'UPDATE config_rollout SET canary_version = @version, canary_label = @label, updated_at = @now WHERE id = 1',
      ),
      dropCanary: p(
        'UPDATE config_rollout SET canary_version = NULL, canary_label = NULL, updated_at = @now WHERE id = 1',
      ),
      setMode: p('UPDATE config_rollout SET mode = @mode, updated_at = @now WHERE id = 1'),
      ack: p(`UPDATE workers SET config_version = @version, config_at = @now WHERE id = @workerId`),
      nack: p(`UPDATE workers SET config_nack_version = @version, config_nack_reason = @reason, config_at = @now
        WHERE id = @workerId`),
    };
  }

  async publish(input: NewConfigVersion): Promise<ConfigVersion> {
    const v = checkNewConfigVersion(input);
    return this.write(() => {
      const now = Date.now();
      const state = rowToRollout(this.q.rollout.get() as RolloutRow);
      if (v.kind === 'canary' && state.canary) {
        throw new ConfigConflictError(
          `canary version ${state.canary.version} (label ${state.canary.label}) is in flight; promote or abort it first`,
        );
      }
      const newest = this.q.newest.get() as ConfigVersionRow | undefined;
      const version = newest ? Number(newest.version) + 1 : 1;
      this.q.insert.run({
        version,
        document: v.documentJson,
        digest: v.digest,
        previousDigest: newest?.digest ?? null,
        kind: v.kind,
        canaryLabel: v.canaryLabel ?? null,
        publishedBy: v.publishedBy,
        now,
      });
      if (v.kind === 'canary') this.q.setCanary.run({ version, label: v.canaryLabel, now });
      else this.q.setCurrent.run({ version, now });
      return rowToConfigVersion(this.q.get.get(version) as ConfigVersionRow);
    });
  }

  async get(version: number): Promise<ConfigVersion | undefined> {
    const row = this.q.get.get(checkInt('config.version', version, 1, Number.MAX_SAFE_INTEGER)) as
      | ConfigVersionRow
      | undefined;
    return row && rowToConfigVersion(row);
  }

  async list(limit: number): Promise<ConfigVersion[]> {
    return (this.q.list.all(checkInt('config.limit', limit, 1, 1000)) as ConfigVersionRow[]).map(
      rowToConfigVersion,
    );
  }

  async rollout(): Promise<Rollout> {
    return rowToRollout(this.q.rollout.get() as RolloutRow);
  }

  async promote(): Promise<Rollout> {
    return this.write(() => {
      const state = rowToRollout(this.q.rollout.get() as RolloutRow);
      if (!state.canary) throw new ConfigConflictError('there is no canary to promote');
      this.q.setCurrent.run({ version: state.canary.version, now: Date.now() });
      return rowToRollout(this.q.rollout.get() as RolloutRow);
    });
  }

  async abort(): Promise<Rollout> {
    return this.write(() => {
      const state = rowToRollout(this.q.rollout.get() as RolloutRow);
      if (!state.canary) throw new ConfigConflictError('there is no canary to abort');
      this.q.dropCanary.run({ now: Date.now() });
      return rowToRollout(this.q.rollout.get() as RolloutRow);
    });
  }

  async setMode(mode: ControlMode): Promise<Rollout> {
    checkMode(mode);
    return this.write(() => {
      this.q.setMode.run({ mode, now: Date.now() });
      return rowToRollout(this.q.rollout.get() as RolloutRow);
    });
  }

  async report(report: ConfigReport): Promise<void> {
    const r = checkReport(report);
    await this.write(() => {
      const now = Date.now();
      if (r.status === 'ack') this.q.ack.run({ workerId: r.workerId, version: r.version, now });
      else
        this.q.nack.run({ workerId: r.workerId, version: r.version, reason: r.reason ?? 'unspecified', now });
    });
  }
}
