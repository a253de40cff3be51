/**
 * Approvals: a job admitted `awaiting_approval` (its contract or the policy that allowed it asks for
 * approval) runs once `approvalsRequired` distinct approvers of its tenant have approved it; one
 * rejection ends it `rejected`. The key that submitted a job never decides on it. Every decision is
 * re-signed into the job's authority record (who, when, comment, config version), so the worker
 * verifies the approvals with the rest, and is an outbox event, so the evidence plane records it.
 * An approval window (`approvalTimeoutMs` in the contract) is the job's deadline while it waits:
 * the reaper expires it; approval restores the deadline the submitter asked for.
 */
import { JobNotFoundError, JobStateConflictError } from '../ledger/errors.js';
import type { Store } from '../ledger/store.js';
import type { Job } from '../ledger/types.js';
import type { Principal } from './api-keys.js';
import { type ApprovalDecision, type AuthorityRecord, signAuthority } from './authority.js';
import { ControlError } from './errors.js';
import type { SigningKey } from './signing-keys.js';

export class ApprovalRefusedError extends ControlError {
  readonly code = 'approval_refused';
}

/** Compare-and-set retries when two approvers decide on one job at the same moment. */
const RETRIES = 5;

export interface Decision {
  decision: ApprovalDecision['decision'];
  comment?: string;
}

export class Approvals {
  constructor(
    private readonly store: Store,
    private readonly signer: { key: SigningKey; deploymentId: string },
  ) {}

  /** Record `principal`'s decision on job `jobId` of its tenant; returns the job after it. */
  async decide(principal: Principal, jobId: string, d: Decision): Promise<Job> {
    for (let attempt = 1; ; attempt++) {
      const job = await this.store.get(jobId, { tenant: principal.tenant });
      if (!job) throw new JobNotFoundError(jobId);
      if (job.state !== 'awaiting_approval')
        throw new JobStateConflictError(jobId, job.state, `${d.decision}`);
      const record = job.authority as AuthorityRecord | undefined;
      if (!record || typeof record.signature !== 'string') {
        throw new ApprovalRefusedError(
          `job ${jobId} has no authority record to approve; readmit or cancel it`,
        );
      }
      if (record.principal === principal.keyId) {
        throw new ApprovalRefusedError(
          `key ${principal.keyId} submitted job ${jobId} and cannot ${d.decision} it: another approver of tenant '${principal.tenant}' must`,
        );
      }
      if (record.approvals.some((a) => a.principal === principal.keyId)) {
        throw new ApprovalRefusedError(`key ${principal.keyId} has already decided on job ${jobId}`);
      }
      const decision: ApprovalDecision = {
        decision: d.decision,
        principal: principal.keyId,
        at: Date.now(),
        comment: d.comment ?? null,
        configVersion: (await this.store.configs.rollout()).currentVersion,
      };
      const approvals = [...record.approvals, decision];
      const approved = approvals.filter((a) => a.decision === 'approve').length;
      const to =
        d.decision === 'reject'
          ? 'rejected'
          : approved >= record.approvalsRequired
            ? 'queued'
            : 'awaiting_approval';
      // Approved: the job's deadline is the one asked for again, not the approval window's end.
      const deadline = to === 'queued' ? record.requestedDeadline : record.deadline;
      const { signature: _old, proof: _proof, type: _type, keyId: _keyId, ...claims } = record;
      const authority = signAuthority(this.signer.key, { ...claims, approvals, deadline });
      try {
        return await this.store.decideApproval({
          jobId,
          tenant: principal.tenant,
          expectedSignature: record.signature,
          authority,
          to,
          deadline,
          event: {
            decision: d.decision,
            by: principal.keyId,
            approvals: approved,
            required: record.approvalsRequired,
            ...(d.comment !== undefined && { comment: d.comment }),
          },
        });
      } catch (err) {
        // Another approver decided first: read the job again and decide on what it is now.
        if (err instanceof JobStateConflictError && attempt < RETRIES) continue;
        throw err;
      }
    }
  }
}
