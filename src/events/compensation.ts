/**
 * The compensation consumer: when a job of a task with `compensate` ends `dead`, `cancelled` or
 * `expired` after committing steps, it submits one compensation job (kind `compensation`, parent =
 * that job, same correlation id), through admission: it carries an authority record like any job. The submission's idempotency key (`compensate:<job id>`) makes
 * it exactly once however often the event is handled. The compensation runs as its own durable,
 * fenced, retried job, and its outcome is in its own history.
 */
import type { Submission } from '../control/admission.js';
import type { Store } from '../ledger/store.js';
import type { OutboxEvent, SubmitInput, SubmitResult } from '../ledger/types.js';

/** Admit a job the system starts, as admission does for a submission (validated, signed). */
export type AdmitSystemJob = (
  tenant: string,
  submission: Submission & Pick<SubmitInput, 'kind'>,
) => Promise<SubmitResult>;

const ENDINGS = new Set(['job.dead', 'job.cancelled', 'job.expired']);

export const COMPENSATION_CONSUMER = 'compensation';

export function compensationHandler(
  store: Store,
  admit: AdmitSystemJob,
): (events: OutboxEvent[]) => Promise<void> {
  return async (events) => {
    for (const e of events) {
      if (!ENDINGS.has(e.type) || e.jobId === null) continue;
      const job = await store.get(e.jobId);
      if (job?.kind !== 'run') continue;
      const type = await store.registry.getTaskType(job.task, job.taskVersion);
      if (!type?.compensable) continue;
      if ((await store.listSteps(job.id)).length === 0) continue;
      await admit(job.tenant, {
        task: job.task,
        taskVersion: job.taskVersion,
        input: job.input,
        kind: 'compensation',
        parentId: job.id,
        correlationId: job.correlationId,
        idempotencyKey: `compensate:${job.id}`,
      });
    }
  };
}
