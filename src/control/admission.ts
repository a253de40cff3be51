/**
 * Admission: a submission from an authenticated principal becomes a job. The task type must be
 * registered; the input must match its JSON Schema (every failing path is reported); the job takes
 * its contract's queue, lease, attempts, backoff and classification, and lands in the caller's
 * tenant, idempotently per tenant and key.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { TaskType } from '../ledger/registry.js';
import type { Store } from '../ledger/store.js';
import type { SubmitInput, SubmitResult } from '../ledger/types.js';
import type { Principal } from './api-keys.js';
import { signAuthority } from './authority.js';
import { InvalidInputError, UnknownTaskError } from './errors.js';
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

export class Admission {
  private readonly ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
  private readonly validators = new Map<string, { updatedAt: number; validate: ValidateFunction }>();

  /** The current config version, read at most once a second. */
  private configVersion: { at: number; version: Promise<number | null> } | undefined;

  /** With `signer`, every admitted job carries a signed authority record. */
  constructor(
    private readonly store: Store,
    private readonly signer?: SigningKey,
  ) {
    addFormats.default(this.ajv);
  }

  private currentConfigVersion(): Promise<number | null> {
    const now = Date.now();
    if (!this.configVersion || now - this.configVersion.at > 1000) {
      const version = this.store.configs.rollout().then(
        (r) => r.currentVersion,
        () => null,
      );
      this.configVersion = { at: now, version };
    }
    return this.configVersion.version;
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
    for (const [i, s] of submissions.entries()) {
      const type = await typeOf(s.task, s.taskVersion);
      inputs.push(await this.prepare(principal, s, type, submissions.length > 1 ? `/jobs/${i}/input` : ''));
    }
    return inputs.length === 1
      ? [await this.store.submit(inputs[0] as SubmitInput)]
      : this.store.submitMany(inputs);
  }

  /** `where` prefixes the paths of input errors (the item of a batch). */
  private async prepare(
    principal: Principal,
    s: Submission,
    type: TaskType | undefined,
    where: string,
  ): Promise<SubmitInput> {
    if (!type) {
      const known = (await this.store.registry.listTaskTypes()).map((t) => `${t.name}@${t.version}`);
      throw new UnknownTaskError(s.task, s.taskVersion, known);
    }
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
    if (this.signer) {
      const job = { task: type.name, taskVersion: type.version, input };
      out.authority = signAuthority(
        this.signer,
        principal,
        s.idempotencyKey === undefined ? job : { ...job, idempotencyKey: s.idempotencyKey },
        await this.currentConfigVersion(),
      );
    }
    return out;
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
