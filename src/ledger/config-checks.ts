/** Argument checks for the config store, shared by both adapters. */
import type { ConfigReport, ControlMode, NewConfigVersion } from './config-store.js';
import { checkInt, checkName, checkText, fail } from './validate.js';

export function checkNewConfigVersion(v: NewConfigVersion): NewConfigVersion {
  if (typeof v !== 'object' || v === null) fail('config', 'must be an object');
  if (typeof v.documentJson !== 'string' || v.documentJson.length === 0)
    fail('config.documentJson', 'must be JSON text');
  if (typeof v.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(v.digest))
    fail('config.digest', 'must be sha256:<hex>');
  if (!['publish', 'rollback', 'canary'].includes(v.kind))
    fail('config.kind', 'must be publish, rollback or canary');
  if (v.kind === 'canary') checkName('config.canaryLabel', v.canaryLabel);
  else if (v.canaryLabel !== undefined) fail('config.canaryLabel', 'only a canary has a label');
  checkText('config.publishedBy', v.publishedBy, 200, 'who published');
  return v;
}

export function checkMode(mode: unknown): ControlMode {
  if (mode !== 'normal' && mode !== 'read_only')
    fail('mode', `must be 'normal' or 'read_only', got ${String(mode)}`);
  return mode;
}

export function checkReport(r: ConfigReport): ConfigReport {
  checkName('report.workerId', r.workerId);
  checkInt('report.version', r.version, 0, Number.MAX_SAFE_INTEGER);
  if (r.status !== 'ack' && r.status !== 'nack') fail('report.status', "must be 'ack' or 'nack'");
  if (r.reason !== undefined) checkText('report.reason', r.reason.slice(0, 2000), 2000, 'a reason');
  return r;
}
