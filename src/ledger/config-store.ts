/**
 * The config-store port: published config versions (immutable, numbered 1, 2, 3…), the rollout
 * state (current version, a canary and its label, the control plane's mode), and what each worker
 * reported about them (ACK of the version it applied, NACK of one it refused, with the reason).
 * The control plane signs and serves; the ledger only keeps.
 */

export type ConfigVersionKind = 'publish' | 'rollback' | 'canary';
export type ControlMode = 'normal' | 'read_only';

export interface ConfigVersion {
  version: number;
  /** Canonical JSON of the document. */
  documentJson: string;
  digest: string;
  previousDigest: string | null;
  kind: ConfigVersionKind;
  canaryLabel?: string;
  publishedBy: string;
  publishedAt: number;
}

export interface Rollout {
  /** What workers outside the canary run; null before the first publish. */
  currentVersion: number | null;
  canary?: { version: number; label: string };
  mode: ControlMode;
  updatedAt: number;
}

export interface NewConfigVersion {
  documentJson: string;
  digest: string;
  kind: ConfigVersionKind;
  /** With kind `canary`: only workers with this label get the version until it is promoted. */
  canaryLabel?: string;
  publishedBy: string;
}

export interface ConfigReport {
  workerId: string;
  version: number;
  status: 'ack' | 'nack';
  /** Why a NACK: the verification failure. */
  reason?: string;
}

export interface ConfigStore {
  /**
   * Append a version (the newest + 1; previousDigest = the newest's digest) and, in the same
   * transaction, make it current — or, for a canary, the canary (replacing none: a canary in
   * flight must be promoted or aborted first, else `ConfigConflictError`).
   */
  publish(input: NewConfigVersion): Promise<ConfigVersion>;
  get(version: number): Promise<ConfigVersion | undefined>;
  /** Newest first. */
  list(limit: number): Promise<ConfigVersion[]>;
  rollout(): Promise<Rollout>;
  /** The canary becomes current. `ConfigConflictError` when there is no canary. */
  promote(): Promise<Rollout>;
  /** Drop the canary; its workers return to the current version. */
  abort(): Promise<Rollout>;
  setMode(mode: ControlMode): Promise<Rollout>;
  /** Record a worker's ACK or NACK (an unknown worker is ignored). */
  report(report: ConfigReport): Promise<void>;
}
