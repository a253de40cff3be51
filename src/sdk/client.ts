/**
 * The HTTP client: `createClient({ url, apiKey })`. Every non-2xx answer becomes a
 * `BulkheadApiError` carrying the problem+json body's `code`, `status` and `detail`.
 */
import type { Entry } from '../evidence/format.js';
import type { Hold } from '../evidence/store.js';
import type { VerifyReport } from '../evidence/verify.js';
import type { TaskDefinition } from '../execution/task.js';
import { TERMINAL_STATES } from '../lifecycle/lifecycle.js';

export interface ClientOptions {
  /** @default process.env.BULKHEAD_URL ?? 'http://127.0.0.1:8080' */
  url?: string;
  /** @default process.env.BULKHEAD_API_KEY */
  apiKey?: string;
  /** Per-request timeout, on top of any long-poll wait. @default 30000 */
  timeoutMs?: number;
}

/** A job as the API returns it (times are ISO 8601 strings). */
export interface JobView<O = unknown> {
  id: string;
  /** `compensation` jobs undo their parent's committed steps. */
  kind: 'run' | 'compensation';
  task: string;
  taskVersion: number;
  tenant: string;
  queue: string;
  state: string;
  reason?: string;
  input: unknown;
  output?: O;
  error?: { code: string; message: string };
  attempt: number;
  maxAttempts: number;
  idempotencyKey?: string;
  correlationId: string;
  parentId?: string;
  priority: number;
  classification: string;
  cancelRequested: boolean;
  progress?: unknown;
  runAt: string;
  deadline?: string;
  /**
   * The signed authority record the job was admitted under: who, which config version and digest,
   * the contract (`scope`) and the approvals. Verifiable with the control plane's public key.
   */
  authority?: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export interface SubmitOptions {
  idempotencyKey?: string;
  correlationId?: string;
  priority?: number;
  taskVersion?: number;
  runAt?: Date | string;
  deadline?: Date | string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  [member: string]: unknown;
}

export class BulkheadApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(readonly problem: Problem) {
    super(`${problem.detail} [${problem.code}]`);
    this.name = 'BulkheadApiError';
    this.status = problem.status;
    this.code = problem.code;
  }
}

/** States a job never leaves, as the lifecycle defines them. */
const TERMINAL: ReadonlySet<string> = TERMINAL_STATES;

type InputOf<T> = T extends TaskDefinition<infer I, unknown> ? I : unknown;
type OutputOf<T> = T extends TaskDefinition<unknown, infer O> ? Awaited<O> : unknown;

export class BulkheadClient {
  readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? process.env.BULKHEAD_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
    this.apiKey = options.apiKey ?? process.env.BULKHEAD_API_KEY;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Submit one job. `task` is a definition (typed input) or a task name. */
  async submit<T extends TaskDefinition | string>(
    task: T,
    input: T extends TaskDefinition ? InputOf<T> : unknown,
    options: SubmitOptions = {},
  ): Promise<JobView<T extends TaskDefinition ? OutputOf<T> : unknown>> {
    return this.request('POST', '/v1/jobs', submission(task, input, options));
  }

  /** Submit up to 1000 jobs in one transaction: all are admitted or none. */
  async submitMany(
    items: { task: TaskDefinition | string; input: unknown; options?: SubmitOptions }[],
  ): Promise<{ created: boolean; job: JobView }[]> {
    const body = { jobs: items.map((i) => submission(i.task, i.input, i.options ?? {})) };
    const res = await this.request<{ results: { created: boolean; job: JobView }[] }>(
      'POST',
      '/v1/jobs/batch',
      body,
    );
    return res.results;
  }

  get(id: string): Promise<JobView> {
    return this.request('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  list(
    filter: {
      state?: string[];
      task?: string;
      queue?: string;
      correlationId?: string;
      limit?: number;
      cursor?: string;
    } = {},
  ): Promise<{ jobs: JobView[]; nextCursor?: string }> {
    const q = new URLSearchParams();
    if (filter.state?.length) q.set('state', filter.state.join(','));
    for (const k of ['task', 'queue', 'correlationId', 'cursor'] as const) {
      const v = filter[k];
      if (v !== undefined) q.set(k, v);
    }
    if (filter.limit !== undefined) q.set('limit', String(filter.limit));
    const qs = q.toString();
    return this.request('GET', `/v1/jobs${qs ? `?${qs}` : ''}`);
  }

  /**
   * Wait for a job to end and return it (in whatever terminal state). Long-polls in slices of up
   * to 30 s until `timeoutMs` (default: wait forever).
   */
  async result(id: string, options: { timeoutMs?: number } = {}): Promise<JobView> {
    const until = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
    for (;;) {
      const waitMs = Math.max(0, Math.min(30_000, until - Date.now()));
      const job = await this.request<JobView>(
        'GET',
        `/v1/jobs/${encodeURIComponent(id)}/result?waitMs=${Math.floor(waitMs)}`,
      );
      if (TERMINAL.has(job.state) || Date.now() >= until) return job;
    }
  }

  cancel(id: string): Promise<JobView> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);
  }

  retry(id: string): Promise<JobView> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(id)}/retry`);
  }

  /** Approve a job awaiting approval (an approver or admin of its tenant, not its submitter). */
  approve(id: string, options: { comment?: string } = {}): Promise<JobView> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(id)}/approve`, options);
  }

  /** Reject a job awaiting approval: it ends `rejected`. */
  reject(id: string, options: { comment?: string } = {}): Promise<JobView> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(id)}/reject`, options);
  }

  /** Readmit a job blocked for invalid_authority (admin): admission signs a new authority record. */
  readmit(id: string): Promise<JobView> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(id)}/readmit`);
  }

  health(): Promise<{ status: string; sections: Record<string, { status: string; [k: string]: unknown }> }> {
    return this.request('GET', '/v1/health', undefined, [503]);
  }

  createTenant(name: string): Promise<{ name: string; createdAt: string }> {
    return this.request('POST', '/v1/tenants', { name });
  }

  createKey(tenant: string, roles: string[], name?: string): Promise<{ key: string; apiKey: ApiKeyView }> {
    return this.request('POST', `/v1/tenants/${encodeURIComponent(tenant)}/keys`, {
      roles,
      ...(name && { name }),
    });
  }

  async listKeys(tenant: string): Promise<ApiKeyView[]> {
    return (
      await this.request<{ keys: ApiKeyView[] }>('GET', `/v1/tenants/${encodeURIComponent(tenant)}/keys`)
    ).keys;
  }

  revokeKey(id: string): Promise<ApiKeyView> {
    return this.request('POST', `/v1/keys/${encodeURIComponent(id)}/revoke`);
  }

  /** Publish a config document (an object, or YAML/JSON text), to all workers or as a canary. */
  publishConfig(
    document: unknown,
    options: {
      canary?: string;
      taskSchemas?: { name: string; version: number; input: Record<string, unknown> }[];
    } = {},
  ): Promise<ConfigVersionView> {
    return this.request('POST', '/v1/config', { document, ...options });
  }

  /** Validate a config document; returns it with defaults applied, or throws with every problem. */
  validateConfig(document: unknown): Promise<{ document: Record<string, unknown> }> {
    return this.request('POST', '/v1/config/validate', { document });
  }

  configVersions(limit = 50): Promise<{ versions: ConfigVersionView[]; rollout: RolloutView }> {
    return this.request('GET', `/v1/config/versions?limit=${limit}`);
  }

  configVersion(version: number): Promise<ConfigVersionView & { document: Record<string, unknown> }> {
    return this.request('GET', `/v1/config/versions/${version}`);
  }

  rollbackConfig(version: number): Promise<ConfigVersionView> {
    return this.request('POST', '/v1/config/rollback', { version });
  }

  promoteCanary(): Promise<RolloutView> {
    return this.request('POST', '/v1/config/promote');
  }

  abortCanary(): Promise<RolloutView> {
    return this.request('POST', '/v1/config/abort');
  }

  setControlMode(mode: 'normal' | 'read_only'): Promise<RolloutView> {
    return this.request('POST', '/v1/control/mode', { mode });
  }

  recoveryReport(since: Date | string): Promise<Record<string, unknown>> {
    const iso = typeof since === 'string' ? since : since.toISOString();
    return this.request('GET', `/v1/recovery?since=${encodeURIComponent(iso)}`);
  }

  workers(): Promise<{ workers: Record<string, unknown>[]; rollout: RolloutView }> {
    return this.request('GET', '/v1/workers');
  }

  // ── evidence ──────────────────────────────────────────────────────────────────────────────

  /** The evidence entries of a job (by id) or a correlation id, in order. */
  async evidenceTrail(
    id: string,
    by: 'jobId' | 'correlationId' = 'correlationId',
  ): Promise<EvidenceEntryView[]> {
    return (
      await this.request<{ entries: EvidenceEntryView[] }>(
        'GET',
        `/v1/evidence?${by}=${encodeURIComponent(id)}`,
      )
    ).entries;
  }

  /** Verify the whole evidence log; `onProgress` follows the server's progress. */
  async verifyEvidence(onProgress?: (done: number, total: number) => void): Promise<EvidenceReportView> {
    if (!onProgress) return this.request('GET', '/v1/evidence/verify');
    for await (const line of this.lines('GET', '/v1/evidence/verify?progress=true')) {
      const msg = JSON.parse(line) as {
        type: string;
        done?: number;
        total?: number;
        code?: string;
        detail?: string;
      };
      if (msg.type === 'progress') onProgress(msg.done ?? 0, msg.total ?? 0);
      else if (msg.type === 'result') {
        const { type: _type, ...report } = msg;
        return report as unknown as EvidenceReportView;
      } else
        throw new BulkheadApiError({
          type: 'about:blank',
          title: 'Service Unavailable',
          status: 503,
          code: msg.code ?? 'evidence_unavailable',
          detail: msg.detail ?? 'verification failed',
        });
    }
    throw new Error('the server ended the verification stream without a result');
  }

  /** An evidence bundle, line by line (JSONL), streamed. */
  exportEvidence(
    options: { fromSeq?: number; toSeq?: number; correlationId?: string } = {},
  ): AsyncGenerator<string> {
    const q = new URLSearchParams();
    if (options.fromSeq !== undefined) q.set('fromSeq', String(options.fromSeq));
    if (options.toSeq !== undefined) q.set('toSeq', String(options.toSeq));
    if (options.correlationId !== undefined) q.set('correlationId', options.correlationId);
    return this.lines('GET', `/v1/evidence/export${q.size ? `?${q}` : ''}`);
  }

  redactEvidence(r: { correlationId: string; field: string; reason: string }): Promise<EvidenceEntryView> {
    return this.request('POST', '/v1/evidence/redact', r);
  }

  correctEvidence(c: { seq: number; note: string }): Promise<EvidenceEntryView> {
    return this.request('POST', '/v1/evidence/corrections', c);
  }

  placeHold(h: { correlationId?: string; tenant?: string; reason: string }): Promise<EvidenceHoldView> {
    return this.request('POST', '/v1/evidence/holds', h);
  }

  releaseHold(id: string, reason: string): Promise<EvidenceHoldView> {
    return this.request('POST', `/v1/evidence/holds/${encodeURIComponent(id)}/release`, { reason });
  }

  async holds(): Promise<EvidenceHoldView[]> {
    return (await this.request<{ holds: EvidenceHoldView[] }>('GET', '/v1/evidence/holds')).holds;
  }

  applyEvidenceRetention(days: number): Promise<{ erased: number }> {
    return this.request('POST', '/v1/evidence/retention', { days });
  }

  pruneEvents(throughSeq: number): Promise<{ deleted: number; prunedThrough: number }> {
    return this.request('POST', '/v1/events/prune', { throughSeq });
  }

  /** A streamed NDJSON answer, line by line; a refusal before the stream is thrown as for `request`. */
  private async *lines(method: string, path: string): AsyncGenerator<string> {
    const headers: Record<string, string> = { accept: 'application/x-ndjson, application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const res = await fetch(this.url + path, { method, headers });
    if (!res.ok || !res.body) {
      const text = await res.text();
      const parsed = text ? safeJson(text) : undefined;
      throw new BulkheadApiError(
        parsed && typeof parsed === 'object' && 'code' in parsed
          ? (parsed as Problem)
          : {
              type: 'about:blank',
              title: res.statusText,
              status: res.status,
              code: `http_${res.status}`,
              detail: text.slice(0, 500),
            },
      );
    }
    const decoder = new TextDecoder();
    let rest = '';
    for await (const chunk of res.body) {
      rest += decoder.decode(chunk as Uint8Array, { stream: true });
      let nl = rest.indexOf('\n');
      while (nl !== -1) {
        yield rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        nl = rest.indexOf('\n');
      }
    }
    rest += decoder.decode();
    if (rest !== '') yield rest;
  }

  private async request<T>(
    method: string,
    path: string,
    body?: unknown,
    okStatuses: number[] = [],
  ): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const waitMs = Number(/[?&]waitMs=(\d+)/.exec(path)?.[1] ?? 0);
    const res = await fetch(this.url + path, {
      method,
      headers,
      ...(body !== undefined && { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(this.timeoutMs + waitMs),
    });
    const text = await res.text();
    const parsed = text ? safeJson(text) : undefined;
    if (res.ok || okStatuses.includes(res.status)) return parsed as T;
    const problem =
      parsed && typeof parsed === 'object' && 'code' in parsed
        ? (parsed as Problem)
        : {
            type: 'about:blank',
            title: res.statusText,
            status: res.status,
            code: `http_${res.status}`,
            detail: text.slice(0, 500),
          };
    throw new BulkheadApiError(problem);
  }
}

/** An evidence entry as the API returns it: its stored, verifiable form (docs/EVIDENCE.md). */
export type EvidenceEntryView = Entry;
export type EvidenceReportView = VerifyReport;
export type EvidenceHoldView = Hold;

export interface ConfigVersionView {
  version: number;
  digest: string;
  previousDigest: string | null;
  kind: 'publish' | 'rollback' | 'canary';
  canaryLabel?: string;
  publishedBy: string;
  publishedAt: string;
}

export interface RolloutView {
  currentVersion: number | null;
  canary?: { version: number; label: string };
  mode: 'normal' | 'read_only';
}

export interface ApiKeyView {
  id: string;
  tenant: string;
  roles: string[];
  name: string;
  createdAt: string;
  revokedAt?: string;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function submission(
  task: TaskDefinition | string,
  input: unknown,
  o: SubmitOptions,
): Record<string, unknown> {
  const isDef = typeof task !== 'string';
  const body: Record<string, unknown> = { task: isDef ? task.name : task, input: input ?? null };
  const version = o.taskVersion ?? (isDef ? task.version : undefined);
  if (version !== undefined) body.taskVersion = version;
  if (o.idempotencyKey !== undefined) body.idempotencyKey = o.idempotencyKey;
  if (o.correlationId !== undefined) body.correlationId = o.correlationId;
  if (o.priority !== undefined) body.priority = o.priority;
  const iso = (d: Date | string) => (typeof d === 'string' ? d : d.toISOString());
  if (o.runAt !== undefined) body.runAt = iso(o.runAt);
  if (o.deadline !== undefined) body.deadline = iso(o.deadline);
  return body;
}

export function createClient(options: ClientOptions = {}): BulkheadClient {
  return new BulkheadClient(options);
}
