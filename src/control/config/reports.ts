/**
 * Who may report a worker's config (ACK or NACK) through the API: the worker's own credential, and
 * nobody else. A worker row belongs to no tenant — a worker claims every tenant's work — so it is
 * the deployment's, and the rule is, in this order:
 *
 *   1. the key has the `worker` role;
 *   2. the key belongs to the system tenant;
 *   3. the worker is registered, and recorded the id of the key it talks to the control plane with
 *      (`meta.keyId`, written when the worker process registers);
 *   4. that recorded id is this key's id.
 *
 * Anything else is refused, recorded (`security.report_refused`) and changes nothing: a forged NACK
 * cannot hold back a canary's promotion, nor a forged ACK hide a worker that refuses a version.
 * Reports made in process (embedded `bulkhead dev`, where the control plane and the worker are one
 * process) carry no credential and do not pass here.
 */
import { SYSTEM_TENANT } from '../../ledger/registry.js';
import type { WorkerRecord } from '../../ledger/types.js';
import type { Principal } from '../api-keys.js';

export type ReportRefusalReason =
  | 'not_a_worker_key'
  | 'not_the_system_tenant'
  | 'unknown_worker'
  | 'no_recorded_key'
  | 'not_the_workers_key';

export interface ReportRefusal {
  reason: ReportRefusalReason;
  detail: string;
}

/** The id of the API key a worker registered with, when it recorded one. */
export function recordedKeyId(worker: WorkerRecord): string | undefined {
  const id = worker.meta?.keyId;
  return typeof id === 'string' && id.length > 0 ? id : undefined;
}

/** Why `principal` may not report config for worker `workerId` (its row, if registered); undefined when it may. */
export function reportRefusal(
  principal: Principal,
  workerId: string,
  worker: WorkerRecord | undefined,
): ReportRefusal | undefined {
  const refuse = (reason: ReportRefusalReason, why: string): ReportRefusal => ({
    reason,
    detail: `config report for worker '${workerId}' refused: ${why}`,
  });
  if (!principal.roles.includes('worker'))
    return refuse(
      'not_a_worker_key',
      `only a worker reports its config, with its own 'worker' key; this key's roles are ${principal.roles.join(', ')}`,
    );
  if (principal.tenant !== SYSTEM_TENANT)
    return refuse(
      'not_the_system_tenant',
      `workers serve the whole deployment, so their keys belong to the system tenant '${SYSTEM_TENANT}'; this key belongs to tenant '${principal.tenant}'`,
    );
  if (!worker)
    return refuse(
      'unknown_worker',
      'no worker of that id is registered (a worker registers before it reports)',
    );
  const recorded = recordedKeyId(worker);
  if (recorded === undefined)
    return refuse(
      'no_recorded_key',
      'the worker registered without a control key, so no key may report for it; a worker started with --control and its key in BULKHEAD_API_KEY records its key',
    );
  if (recorded !== principal.keyId)
    return refuse(
      'not_the_workers_key',
      `the worker registered with another key (this is key ${principal.keyId}); its reports are accepted only with the key it registered with`,
    );
  return undefined;
}
