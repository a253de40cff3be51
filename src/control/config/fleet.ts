/** How a worker stands on config: what it applied, and whether it refuses what it should run. */
import type { Rollout } from '../../ledger/config-store.js';
import type { WorkerRecord } from '../../ledger/types.js';

export type FleetStatus = 'none' | 'ack' | 'nack';

/**
 * `nack` only while the refused version is one the worker should still run (the current version or
 * the canary); a NACK of a version since superseded or aborted no longer counts. `none` when the
 * worker never reported anything.
 */
export function fleetStatus(w: WorkerRecord, rollout: Rollout): FleetStatus {
  const { appliedVersion, nackVersion } = w.config;
  if (appliedVersion === undefined && nackVersion === undefined) return 'none';
  const live =
    nackVersion !== undefined &&
    (nackVersion === rollout.currentVersion || nackVersion === rollout.canary?.version);
  if (live && nackVersion > (appliedVersion ?? 0)) return 'nack';
  return appliedVersion === undefined ? 'none' : 'ack';
}
