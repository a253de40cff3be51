/**
 * An evidence store that may not be reachable yet: it keeps trying to open the real one in the
 * background, and until it has, every call fails with `EvidenceUnavailableError`. So a process
 * whose evidence store is down at start still starts (the evidence store is a failure domain of
 * its own), and evidence catches up once it is reachable.
 */
import { EvidenceUnavailableError } from './errors.js';
import type { EvidenceStore } from './store.js';

export function lazyEvidenceStore(
  dialect: 'sqlite' | 'postgres',
  where: string,
  open: () => Promise<EvidenceStore>,
  options: { retryMs?: number; onError?: (err: Error) => void; onOpen?: () => void } = {},
): EvidenceStore & { ready: Promise<void> } {
  let real: EvidenceStore | undefined;
  let closed = false;
  let lastError = 'not opened yet';
  let timer: NodeJS.Timeout | undefined;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    resolveReady = resolve;
  });
  const attempt = async () => {
    try {
      const s = await open();
      if (closed) return void (await s.close());
      real = s;
      options.onOpen?.();
      resolveReady();
    } catch (err) {
      lastError = (err as Error).message;
      options.onError?.(err as Error);
      if (!closed) timer = setTimeout(attempt, options.retryMs ?? 2000);
    }
  };
  void attempt();
  const use = (): EvidenceStore => {
    if (real) return real;
    throw new EvidenceUnavailableError(`the evidence store at ${where} is unavailable: ${lastError}`);
  };
  return {
    dialect,
    where,
    ready,
    append: (drafts, o) => use().append(drafts, o),
    checkpoint: () => use().checkpoint(),
    probe: async () => use().probe(),
    head: async () => use().head(),
    lastCheckpoint: async () => use().lastCheckpoint(),
    readRows: async (from, limit, to) => use().readRows(from, limit, to),
    byCorrelation: async (id, o) => use().byCorrelation(id, o),
    countKind: async (kind) => use().countKind(kind),
    byKind: async (kinds, o) => use().byKind(kinds, o),
    firstSeqAtOrAfter: async (at) => use().firstSeqAtOrAfter(at),
    signingKeys: async () => use().signingKeys(),
    placeHold: async (h, e) => use().placeHold(h, e),
    releaseHold: async (id, e) => use().releaseHold(id, e),
    holds: async (o) => use().holds(o),
    recordVerification: async (v) => use().recordVerification(v),
    lastVerification: async () => use().lastVerification(),
    async close() {
      closed = true;
      clearTimeout(timer);
      await real?.close();
    },
  };
}
