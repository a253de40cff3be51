/**
 * The compensation consumer: when a job of a task with `compensate` ends `dead`, `cancelled` or
 * `expired` after committing steps, it submits one compensation job (kind `compensation`, parent =
 * that job, same correlation id). The submission's idempotency key (`compensate:<job id>`) makes
 * it exactly once however often the event is handled. The compensation runs as its own durable,
 * fenced, retried job, and its outcome is in its own history.
 */
import type { Store } from '../ledger/store.js';
import type { OutboxEvent } from '../ledger/types.js';

const ENDINGS = new Set(['job.dead', 'job.cancelled', 'job.expired']);

export const COMPENSATION_CONSUMER = 'compensation';

export function compensationHandler(store: Store): (events: OutboxEvent[]) => Promise<void> {
  return async (events) => {
    for (const e of events) {
      if (!ENDINGS.has(e.type) || e.jobId === null) continue;
      const job = await store.get(e.jobId);
      if (job?.kind !== 'run') continue;
      const type = await store.registry.getTaskType(job.task, job.taskVersion);
      if (!type?.compensable) continue;
      if ((await store.listSteps(job.id)).length === 0) continue;
      await store.submit({
        tenant: job.tenant,
        task: job.task,
        taskVersion: job.taskVersion,
        queue: job.queue,
        input: job.input,
        kind: 'compensation',
        parentId: job.id,
        correlationId: job.correlationId,
        idempotencyKey: `compensate:${job.id}`,
        maxAttempts: type.maxAttempts,
        backoff: type.backoff,
        leaseMs: type.leaseMs,
        classification: job.classification,
      });
    }
  };
}
