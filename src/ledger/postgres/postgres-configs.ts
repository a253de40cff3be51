/** The config store on PostgreSQL. Publishing locks the rollout row, so versions are gapless. */
import type pg from 'pg';
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
import { NOW_MS, run, type Sql, transaction, withRetry } from './postgres-db.js';

const Q = {
  lockRollout: {
    name: 'bulkhead_cfg_lock',
    text: 'SELECT * FROM bulkhead.config_rollout WHERE id = 1 FOR UPDATE',
  },
  rollout: { name: 'bulkhead_cfg_rollout', text: 'SELECT * FROM bulkhead.config_rollout WHERE id = 1' },
  newest: {
    name: 'bulkhead_cfg_newest',
    text: 'SELECT * FROM bulkhead.config_versions ORDER BY version DESC LIMIT 1',
  },
  get: { name: 'bulkhead_cfg_get', text: 'SELECT * FROM bulkhead.config_versions WHERE version = $1' },
  list: {
    name: 'bulkhead_cfg_list',
    text: 'SELECT * FROM bulkhead.config_versions ORDER BY version DESC LIMIT $1',
  },
  insert: {
    name: 'bulkhead_cfg_insert',
    text: `INSERT INTO bulkhead.config_versions (version, document, digest, previous_digest, kind, canary_label,
             published_by, published_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, ${NOW_MS}) RETURNING *`,
  },
  setCurrent: {
    name: 'bulkhead_cfg_set_current',
    text: `UPDATE bulkhead.config_rollout SET current_version = $1, canary_version = NULL, canary_label = NULL,
             updated_at = ${NOW_MS} WHERE id = 1 RETURNING *`,
  },
  setCanary: {
    name: 'bulkhead_cfg_set_canary',
    text: `UPDATE bulkhead.config_rollout SET canary_version = $1, canary_label = $2, updated_at = ${NOW_MS}
           WHERE id = 1 RETURNING *`,
  },
  dropCanary: {
    name: 'bulkhead_cfg_drop_canary',
    text: `UPDATE bulkhead.config_rollout SET canary_version = NULL, canary_label = NULL, updated_at = ${NOW_MS}
           WHERE id = 1 RETURNING *`,
  },
  setMode: {
    name: 'bulkhead_cfg_set_mode',
    text: `UPDATE bulkhead.config_rollout SET mode = $1, updated_at = ${NOW_MS} WHERE id = 1 RETURNING *`,
  },
  ack: {
    name: 'bulkhead_cfg_ack',
    text: `UPDATE bulkhead.workers SET config_version = $2, config_at = ${NOW_MS} WHERE id = $1`,
  },
  nack: {
    name: 'bulkhead_cfg_nack',
    text: `UPDATE bulkhead.workers SET config_nack_version = $2, config_nack_reason = $3, config_at = ${NOW_MS}
           WHERE id = $1`,
  },
} satisfies Record<string, Sql>;

export class PostgresConfigs implements ConfigStore {
  constructor(private readonly pool: pg.Pool) {}

  async publish(input: NewConfigVersion): Promise<ConfigVersion> {
    const v = checkNewConfigVersion(input);
    return withRetry(() =>
      transaction(this.pool, async (c) => {
        const [state] = await run<RolloutRow>(c, Q.lockRollout);
        const rollout = rowToRollout(state!);
        if (v.kind === 'canary' && rollout.canary) {
          throw new ConfigConflictError(
            `canary version ${rollout.canary.version} (label ${rollout.canary.label}) is in flight; promote or abort it first`,
          );
        }
        const [newest] = await run<ConfigVersionRow>(c, Q.newest);
        const version = newest ? Number(newest.version) + 1 : 1;
        const [row] = await run<ConfigVersionRow>(c, Q.insert, [
          version,
          v.documentJson,
          v.digest,
          newest?.digest ?? null,
          v.kind,
          v.canaryLabel ?? null,
          v.publishedBy,
        ]);
        if (v.kind === 'canary') await run(c, Q.setCanary, [version, v.canaryLabel]);
        else await run(c, Q.setCurrent, [version]);
        return rowToConfigVersion(row!);
      }),
    );
  }

  async get(version: number): Promise<ConfigVersion | undefined> {
    const [row] = await run<ConfigVersionRow>(this.pool, Q.get, [
      checkInt('config.version', version, 1, Number.MAX_SAFE_INTEGER),
    ]);
    return row && rowToConfigVersion(row);
  }

  async list(limit: number): Promise<ConfigVersion[]> {
    return (await run<ConfigVersionRow>(this.pool, Q.list, [checkInt('config.limit', limit, 1, 1000)])).map(
      rowToConfigVersion,
    );
  }

  async rollout(): Promise<Rollout> {
    const [row] = await run<RolloutRow>(this.pool, Q.rollout);
    return rowToRollout(row!);
  }

  private async changeCanary(action: 'promote' | 'abort'): Promise<Rollout> {
    return withRetry(() =>
      transaction(this.pool, async (c) => {
        const [state] = await run<RolloutRow>(c, Q.lockRollout);
        const rollout = rowToRollout(state!);
        if (!rollout.canary) throw new ConfigConflictError(`there is no canary to ${action}`);
        const [row] =
          action === 'promote'
            ? await run<RolloutRow>(c, Q.setCurrent, [rollout.canary.version])
            : await run<RolloutRow>(c, Q.dropCanary);
        return rowToRollout(row!);
      }),
    );
  }

  promote(): Promise<Rollout> {
    return this.changeCanary('promote');
  }

  abort(): Promise<Rollout> {
    return this.changeCanary('abort');
  }

  async setMode(mode: ControlMode): Promise<Rollout> {
    const [row] = await withRetry(() => run<RolloutRow>(this.pool, Q.setMode, [checkMode(mode)]));
    return rowToRollout(row!);
  }

  async report(report: ConfigReport): Promise<void> {
    const r = checkReport(report);
    await withRetry(() =>
      r.status === 'ack'
        ? run(this.pool, Q.ack, [r.workerId, r.version])
        : run(this.pool, Q.nack, [r.workerId, r.version, r.reason ?? 'unspecified']),
    );
  }
}
