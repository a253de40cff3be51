/**
 * Admission: a submission from an authenticated principal becomes a job. The task type must be
 * registered; the input must match its JSON Schema (every failing path is reported); the job takes
 * its contract's queue, lease, attempts, backoff and classification, and lands in the caller's
 * tenant, idempotently per tenant and key.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { JobNotFoundError, QuotaExceededError } from '../ledger/errors.js';
import { newJobId } from '../ledger/ids.js';
import type { TaskType } from '../ledger/registry.js';
import type { Store } from '../ledger/store.js';
import type { Job, SubmitInput, SubmitResult } from '../ledger/types.js';
import type { Principal } from './api-keys.js';
import { type AuthorityClaims, inputDigest, signAuthorities, signAuthority } from './authority.js';
import type { ConfigDocument } from './config/document.js';
import { contractOfRow, needsFreshControl, type TaskContract } from './contract.js';
import { InvalidInputError, NoSignerError, PayloadQuotaError, UnknownTaskError } from './errors.js';
import { decideSubmission, type SubmitRules } from './policy.js';
import type { SigningKey } from './signing-keys.js';

export interface Submission {
  task: string;
  taskVersion?: number;
  input?: unknown;
  idempotencyKey?: string;
  correlationId?: string;
  parentId?: string;
  priority?: number;
  /** Epoch ms. */
  runAt?: number;
  /** Epoch ms. */
  deadline?: number;
}

type Claims = Omit<AuthorityClaims, 'type' | 'keyId'>;

interface CurrentConfig {
  version: number | null;
  digest: string | null;
  /** The tenants and policies the current config enforces at admission. */
  rules: SubmitRules;
  /** Per-tenant quotas of the current config. */
  quotas: ConfigDocument['quotas'];
}

const NO_RULES: SubmitRules = { tenants: [], policies: [] };

export class Admission {
  private readonly ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
  private readonly validators = new Map<string, { updatedAt: number; validate: ValidateFunction }>();

  /** The current config version and digest, read at most once a second. */
  private config: { at: number; current: Promise<CurrentConfig> } | undefined;

  /** With `signer`, every admitted job carries a signed authority record. */
  constructor(
    private readonly store: Store,
    private readonly signer?: { key: SigningKey; deploymentId: string },
  ) {
    addFormats.default(this.ajv);
  }

  private currentConfig(): Promise<CurrentConfig> {
    const now = Date.now();
    if (!this.config || now - this.config.at > 1000) {
      const current = (async (): Promise<CurrentConfig> => {
        const { currentVersion } = await this.store.configs.rollout();
        if (currentVersion === null) return { version: null, digest: null, rules: NO_RULES, quotas: {} };
        const v = await this.store.configs.get(currentVersion);
        if (!v) return { version: currentVersion, digest: null, rules: NO_RULES, quotas: {} };
        const doc = JSON.parse(v.documentJson) as Partial<ConfigDocument>;
        return {
          version: currentVersion,
          digest: v.digest,
          rules: {
            tenants: (doc.tenants ?? []).map((t) => t.name),
            policies: doc.policies ?? [],
          },
          quotas: doc.quotas ?? {},
        };
      })();
      // A failed read is not cached: the next submission asks again.
      current.catch(() => {
        this.config = undefined;
      });
      this.config = { at: now, current };
    }
    return this.config.current;
  }

  async submit(principal: Principal, submissions: Submission[]): Promise<SubmitResult[]> {
    const inputs: SubmitInput[] = [];
    // One registry read per task type of the call, not one per submission of a batch.
    const types = new Map<string, Promise<TaskType | undefined>>();
    const typeOf = (task: string, version: number | undefined) => {
      const key = `${task}@${version ?? 'latest'}`;
      let t = types.get(key);
      if (!t) {
        t = this.store.registry.getTaskType(task, version);
        types.set(key, t);
      }
      return t;
    };
    const config = await this.currentConfig();
    const claims: Claims[] = [];
    for (const [i, s] of submissions.entries()) {
      const type = await typeOf(s.task, s.taskVersion);
      const where = submissions.length > 1 ? `/jobs/${i}/input` : '';
      const prepared = await this.prepare(principal, s, type, where, config);
      inputs.push(prepared.input);
      if (prepared.claims) claims.push(prepared.claims);
    }
    await this.applyQuotas(principal.tenant, config.quotas[principal.tenant], inputs);
    // One signature for the whole call (a Merkle root over its records).
    if (this.signer) {
      signAuthorities(this.signer.key, claims).forEach((record, i) => {
        (inputs[i] as SubmitInput).authority = record;
      });
    }
    return inputs.length === 1
      ? [await this.store.submit(inputs[0] as SubmitInput)]
      : this.store.submitMany(inputs);
  }

  /**
   * A submission checked (task registered, policy, input schema) and made a job with its contract
   * and signed record. `where` prefixes the paths of input errors (the item of a batch); a system
   * principal (`config` null) is not subject to policies and needs no approval.
   */
  private async prepare(
    principal: Pick<Principal, 'tenant' | 'keyId' | 'roles'>,
    s: Submission,
    type: TaskType | undefined,
    where: string,
    config: CurrentConfig | null,
  ): Promise<{ input: SubmitInput; claims?: Claims }> {
    if (!type) {
      const known = (await this.store.registry.listTaskTypes()).map((t) => `${t.name}@${t.version}`);
      throw new UnknownTaskError(s.task, s.taskVersion, known);
    }
    const scope = this.scopeOf(type);
    const decision = config ? decideSubmission(config.rules, principal, type.name) : { approval: false };
    const approval = config !== null && (decision.approval || scope.approval);
    const input = s.input ?? null;
    const validate = this.validator(type);
    if (!validate(input)) {
      throw new InvalidInputError(
        s.task,
        (validate.errors ?? []).map((e) => ({
          path: where + e.instancePath,
          message: e.message ?? 'is invalid',
        })),
      );
    }
    const out: SubmitInput = {
      id: newJobId(),
      tenant: principal.tenant,
      task: type.name,
      taskVersion: type.version,
      queue: type.queue,
      input,
      maxAttempts: type.maxAttempts,
      backoff: type.backoff,
      leaseMs: type.leaseMs,
      classification: type.classification,
    };
    if (s.idempotencyKey !== undefined) out.idempotencyKey = s.idempotencyKey;
    if (s.correlationId !== undefined) out.correlationId = s.correlationId;
    if (s.parentId !== undefined) out.parentId = s.parentId;
    if (s.priority !== undefined) out.priority = s.priority;
    if (s.runAt !== undefined) out.runAt = s.runAt;
    if (s.deadline !== undefined) out.deadline = s.deadline;
    let approvalsRequired = 0;
    if (approval) {
      out.requiresApproval = true;
      approvalsRequired = scope.approvals;
      // The approval window: the job expires if it is not approved in time.
      if (scope.approvalTimeoutMs !== undefined) {
        const end = Date.now() + scope.approvalTimeoutMs;
        out.deadline = s.deadline === undefined ? end : Math.min(s.deadline, end);
      }
    }
    if (!this.signer) return { input: out };
    const claims = await this.claimsFor(principal, { ...out, id: out.id ?? newJobId() }, type, {
      approvalsRequired,
      requestedDeadline: s.deadline ?? null,
    });
    return { input: out, claims };
  }

  /**
   * The tenant's quotas on this call, checked once everything else passed (so a refused submission
   * spends no tokens): `maxPayloadBytes` on each input, `submitPerSecond` from the tenant's token
   * bucket in the ledger (shared by every control replica), and `maxQueued` in the write itself.
   */
  private async applyQuotas(
    tenant: string,
    quota: ConfigDocument['quotas'][string] | undefined,
    inputs: SubmitInput[],
  ): Promise<void> {
    if (!quota) return;
    if (quota.maxPayloadBytes !== undefined) {
      inputs.forEach((input, i) => {
        const size = Buffer.byteLength(JSON.stringify(input.input ?? null));
        if (size > (quota.maxPayloadBytes as number)) {
          throw new PayloadQuotaError(
            tenant,
            quota.maxPayloadBytes as number,
            size,
            inputs.length > 1 ? i : null,
          );
        }
      });
    }
    if (quota.submitPerSecond !== undefined) {
      const rate = quota.submitPerSecond;
      const burst = Math.max(1, rate);
      const refuse = (current: number, retryAfterMs?: number) =>
        new QuotaExceededError({
          tenant,
          quota: 'submitPerSecond',
          limit: rate,
          current,
          requested: inputs.length,
          ...(retryAfterMs !== undefined && { retryAfterMs }),
        });
      // A call larger than the bucket can never pass: say so rather than ask to wait.
      if (rate <= 0 || inputs.length > burst) throw refuse(0);
      const taken = await this.store.takeTokens({ tenant, count: inputs.length, ratePerSecond: rate, burst });
      if (!taken.ok) throw refuse(Math.max(0, burst - taken.remaining), taken.retryAfterMs);
    }
    if (quota.maxQueued !== undefined)
      for (const input of inputs) input.quota = { maxQueued: quota.maxQueued };
  }

  /** The contract of a registry row, parsed once per row read. */
  private readonly scopes = new WeakMap<TaskType, TaskContract>();
  private scopeOf(type: TaskType): TaskContract {
    let scope = this.scopes.get(type);
    if (!scope) {
      scope = contractOfRow(type);
      this.scopes.set(type, scope);
    }
    return scope;
  }

  /** What the authority record of a job about to be written (or readmitted) says. */
  private async claimsFor(
    principal: Pick<Principal, 'tenant' | 'keyId' | 'roles'>,
    job: SubmitInput & { id: string },
    type: TaskType,
    approval: { approvalsRequired: number; requestedDeadline: number | null },
  ): Promise<Claims> {
    const scope = this.scopeOf(type);
    const config = await this.currentConfig();
    return {
      jobId: job.id,
      deploymentId: (this.signer as { deploymentId: string }).deploymentId,
      tenant: job.tenant,
      principal: principal.keyId,
      roles: [...principal.roles],
      task: type.name,
      taskVersion: type.version,
      inputDigest: inputDigest(job.input),
      idempotencyKey: job.idempotencyKey ?? null,
      configVersion: config.version,
      configDigest: config.digest,
      scope,
      deadline: job.deadline ?? null,
      ...approval,
      freshControl: needsFreshControl(scope),
      admittedAt: Date.now(),
      approvals: [],
    };
  }

  /**
   * Readmit a job a worker refused for invalid authority: admission runs again on the job as the
   * ledger holds it (its task version must still be registered, its input must still validate) and
   * a new record is signed for it, by `principal` (an admin of the job's tenant or of the system).
   */
  async readmit(principal: Principal, jobId: string, options: { tenant?: string } = {}): Promise<Job> {
    const job = await this.store.get(jobId, options);
    if (!job) throw new JobNotFoundError(jobId);
    const type = await this.store.registry.getTaskType(job.task, job.taskVersion);
    if (!type) {
      const known = (await this.store.registry.listTaskTypes()).map((t) => `${t.name}@${t.version}`);
      throw new UnknownTaskError(job.task, job.taskVersion, known);
    }
    const validate = this.validator(type);
    if (!validate(job.input)) {
      throw new InvalidInputError(
        job.task,
        (validate.errors ?? []).map((e) => ({ path: e.instancePath, message: e.message ?? 'is invalid' })),
      );
    }
    if (!this.signer) throw new NoSignerError('readmitting a job');
    const claims = await this.claimsFor(
      principal,
      {
        id: job.id,
        tenant: job.tenant,
        task: job.task,
        input: job.input,
        ...(job.idempotencyKey !== undefined && { idempotencyKey: job.idempotencyKey }),
        ...(job.deadline !== undefined && { deadline: job.deadline }),
      },
      {
        ...type,
        queue: job.queue,
        maxAttempts: job.maxAttempts,
        leaseMs: job.leaseMs,
        backoff: job.backoff,
        classification: job.classification,
      },
      // An admin's readmission stands for any approval the refused record carried.
      { approvalsRequired: 0, requestedDeadline: job.deadline ?? null },
    );
    const authority = signAuthority(this.signer.key, claims);
    return this.store.readmit({ jobId, ...options, authority });
  }

  /**
   * Admit a job the system itself starts (a compensation, later triggers, schedules and children):
   * the same contract, validation and signing as a submission, by principal `system:<part>` in the
   * job's tenant.
   */
  async admitSystem(
    part: string,
    tenant: string,
    submission: Submission & Pick<SubmitInput, 'kind'>,
  ): Promise<SubmitResult> {
    const principal = { tenant, keyId: `system:${part}`, roles: [] };
    const type = await this.store.registry.getTaskType(submission.task, submission.taskVersion);
    const { input, claims } = await this.prepare(principal, submission, type, '', null);
    if (submission.kind !== undefined) input.kind = submission.kind;
    if (this.signer && claims) input.authority = signAuthority(this.signer.key, claims);
    return this.store.submit(input);
  }

  private validator(type: TaskType): ValidateFunction {
    const key = `${type.name}@${type.version}`;
    const cached = this.validators.get(key);
    if (cached && cached.updatedAt === type.updatedAt) return cached.validate;
    const { $schema: _ignored, ...schema } = type.inputSchema;
    const validate = this.ajv.compile(schema);
    this.validators.set(key, { updatedAt: type.updatedAt, validate });
    return validate;
  }
}
