/**
 * Control-plane setup shared by `dev`, `init`, `control` and `worker`: the signing key and the
 * deployment id (kept together in a keys directory), the initial config version, and the two
 * config sources a worker's agent can use (in-process in embedded mode, HTTP otherwise).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigService } from '../control/config/service.js';
import { ensureSigningKey, PUBLIC_KEY_FILE } from '../control/signing-keys.js';
import type { ConfigSource } from '../execution/config-agent.js';
import { WORKER_PROTOCOL_VERSION } from '../execution/worker.js';
import type { Store } from '../ledger/store.js';
import { BulkheadApiError, type Problem } from '../sdk/client.js';
import { UsageError } from './load-tasks.js';

export const DEPLOYMENT_FILE = 'deployment';

export interface ControlIdentity {
  keysDir: string;
  deploymentId: string;
  publicKeyFile: string;
  created: boolean;
}

/** The signing key and deployment id in `keysDir`, created on first use. */
export function ensureControlIdentity(keysDir: string): {
  service: (store: Store) => ConfigService;
  identity: ControlIdentity;
} {
  const { key, created } = ensureSigningKey(keysDir);
  const file = join(keysDir, DEPLOYMENT_FILE);
  if (!existsSync(file)) writeFileSync(file, `dep-${randomBytes(6).toString('hex')}\n`, { mode: 0o644 });
  const deploymentId = readFileSync(file, 'utf8').trim();
  return {
    service: (store) => new ConfigService(store, key, deploymentId),
    identity: { keysDir, deploymentId, publicKeyFile: join(keysDir, PUBLIC_KEY_FILE), created },
  };
}

/** Publish an empty config as version 1 when nothing was ever published (idempotent). */
export async function ensureInitialConfig(service: ConfigService, store: Store): Promise<boolean> {
  if ((await store.configs.rollout()).currentVersion !== null) return false;
  await service.publish({ document: {}, by: 'bootstrap' });
  return true;
}

/** Embedded mode: the worker's agent reads the control plane in-process. */
export function inProcessSource(
  service: ConfigService,
  workerId: () => string,
  labels: string[],
): ConfigSource {
  return {
    async fetch(after, waitMs, signal) {
      const until = Date.now() + waitMs;
      for (;;) {
        const v = await service.versionFor(labels);
        if ((v && v.version !== after) || Date.now() >= until || signal.aborted) break;
        await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, until - Date.now()))));
      }
      return service.snapshotFor(labels);
    },
    report: (r) => service.report({ workerId: workerId(), ...r }),
  };
}

/** Distributed mode: the worker's agent long-polls the control plane with a `worker` key. */
export function httpSource(
  url: string,
  apiKey: string,
  workerId: () => string,
  labels: string[],
): ConfigSource {
  const base = url.replace(/\/+$/, '');
  const headers = {
    authorization: `Bearer ${apiKey}`,
    'x-bulkhead-protocol': String(WORKER_PROTOCOL_VERSION),
    accept: 'application/json',
  };
  const call = async (
    path: string,
    init: RequestInit,
    timeoutMs: number,
    stop?: AbortSignal,
  ): Promise<unknown> => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const res = await fetch(base + path, {
      ...init,
      headers: { ...headers, ...init.headers },
      signal: stop ? AbortSignal.any([stop, timeout]) : timeout,
    });
    const text = await res.text();
    if (!res.ok) {
      let problem: Problem;
      try {
        problem = JSON.parse(text) as Problem;
      } catch {
        problem = {
          type: 'about:blank',
          title: res.statusText,
          status: res.status,
          code: `http_${res.status}`,
          detail: text,
        };
      }
      throw new BulkheadApiError(problem);
    }
    return text ? JSON.parse(text) : undefined;
  };
  return {
    fetch: (after, waitMs, stop) =>
      call(
        `/v1/config?labels=${encodeURIComponent(labels.join(','))}&after=${after}&waitMs=${waitMs}`,
        { method: 'GET' },
        waitMs + 10_000,
        stop,
      ),
    report: async (r) => {
      await call(
        `/v1/workers/${encodeURIComponent(workerId())}/config-report`,
        { method: 'POST', body: JSON.stringify(r), headers: { 'content-type': 'application/json' } },
        10_000,
      );
    },
  };
}

export function readPinnedKey(file: string): string {
  if (!existsSync(file))
    throw new UsageError(
      `--control-pub: no public key at ${file} (it is control.pub in the control plane's keys directory)`,
    );
  return readFileSync(file, 'utf8');
}

export function readDeployment(dir: string): string {
  const file = join(dir, DEPLOYMENT_FILE);
  if (!existsSync(file)) throw new UsageError(`--control-keys: no deployment file at ${file}`);
  return readFileSync(file, 'utf8').trim();
}
