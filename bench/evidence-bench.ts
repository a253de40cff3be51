/**
 * Evidence benchmark, on each backend:
 * 1. append: entries/s sealed and written in batches (salts, per-field commitments, chain hash,
 *    checkpoints every 1,000 entries), durable commits;
 * 2. verify: entries/s checked by `EvidenceService.verify` (chain, every commitment, signatures);
 * 3. drain with evidence off and on, side by side in alternating rounds: the same ledger drain as
 *    bench:ledger, with and without an evidence shipper tailing the outbox at the same time.
 *
 *   npm run bench:evidence -- [--backend sqlite|postgres|all] [--entries 100000] [--batch 1000]
 *                             [--jobs 10000] [--rounds 3] [--concurrency 50]
 *
 * PostgreSQL: BULKHEAD_BENCH_PG_URL (an admin URL; throwaway databases are created and dropped),
 * default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { CheckpointSigner, Draft } from '../src/evidence/format.js';
import { openEvidenceStore } from '../src/evidence/open.js';
import { EvidenceService } from '../src/evidence/service.js';
import { EvidenceShipper } from '../src/evidence/shipper.js';
import type { EvidenceStore } from '../src/evidence/store.js';
import { ThreadedShipper } from '../src/evidence/threaded-shipper.js';
import { openStore } from '../src/ledger/open.js';
import type { Store } from '../src/ledger/store.js';
import { keyIdOf } from '../src/util/ed25519.js';
import { createPgDatabase } from '../test/helpers/pg-scratch.js';
import { drain, submitAll } from './drain.js';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    entries: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '1000' },
    jobs: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '50' },
  },
});
const entries = Number(args.entries);
const batch = Number(args.batch);
const jobs = Number(args.jobs);
const rounds = Number(args.rounds);
const concurrency = Number(args.concurrency);
const pgAdmin = process.env.BULKHEAD_BENCH_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const backendsWanted = args.backend === 'all' ? ['sqlite', 'postgres'] : [String(args.backend)];

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const signer: CheckpointSigner = {
  keyId: keyIdOf(publicKey),
  publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  sign: (m) => sign(null, Buffer.from(m), privateKey).toString('base64'),
};

interface Place {
  ledger: string;
  evidence: string;
  cleanup(): Promise<void>;
}

/** A fresh ledger and evidence store location: two files, or two PostgreSQL databases. */
async function place(backend: string): Promise<Place> {
  if (backend === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'bulkhead-bench-'));
    return {
      ledger: join(dir, 'ledger.db'),
      evidence: join(dir, 'evidence.db'),
      async cleanup() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const [a, b] = await Promise.all([createPgDatabase(pgAdmin), createPgDatabase(pgAdmin)]);
  return {
    ledger: a.url,
    evidence: b.url,
    async cleanup() {
      await Promise.all([a.drop(), b.drop()]);
    },
  };
}

/** Drafts shaped like the shipper's: a job event with seven fields. */
function draft(i: number): Draft {
  return {
    occurredAt: Date.now(),
    tenant: 'bench',
    correlationId: `corr-${i >> 3}`,
    kind: 'lease',
    subject: `job:01a21370-0000-7000-8000-${String(i).padStart(12, '0')}`,
    sourceSeq: i,
    fields: {
      event: 'job.leased',
      from: 'queued',
      to: 'leased',
      reason: 'claimed',
      attempt: 1,
      fence: i,
      workerId: 'bench-worker-1',
    },
  };
}

async function appendRate(store: EvidenceStore, n: number): Promise<number> {
  const t0 = performance.now();
  for (let done = 0; done < n; done += batch) {
    const size = Math.min(batch, n - done);
    await store.append(
      Array.from({ length: size }, (_, k) => draft(done + k + 1)),
      { shippedThrough: done + size },
    );
  }
  return n / ((performance.now() - t0) / 1000);
}

async function verifyRate(store: EvidenceStore): Promise<{ rate: number; ok: boolean; n: number }> {
  const service = new EvidenceService({ store });
  const t0 = performance.now();
  const r = await service.verify();
  return { rate: r.entries / ((performance.now() - t0) / 1000), ok: r.ok, n: r.entries };
}

/**
 * One drain of `jobs` jobs; with `evidence`, the shipper runs beside it as `bulkhead dev` and
 * `bulkhead control` run it: on its own thread, with its own connections. Returns jobs/s and how
 * long after the drain started the evidence had caught up with the outbox.
 */
async function drainRound(
  backend: string,
  withEvidence: boolean,
): Promise<{ rate: number; caughtUpMs: number }> {
  const where = await place(backend);
  const ledger: Store = await openStore(where.ledger, backend === 'postgres' ? { poolSize: 10 } : {});
  let evidence: EvidenceStore | undefined;
  let shipper: ThreadedShipper | undefined;
  try {
    await submitAll(ledger, jobs, 'main');
    if (withEvidence) {
      evidence = await openEvidenceStore(where.evidence, { signer });
      // Ship the admissions first: the round measures the drain's own events.
      const first = new EvidenceShipper({ ledger, evidence, logger: pino({ level: 'silent' }) });
      while ((await first.shipOnce()) > 0);
      shipper = new ThreadedShipper(
        {
          ledgerUrl: where.ledger,
          evidenceTarget: where.evidence,
          evidenceWhere: 'bench',
          privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
          publicKeyPem: signer.publicKeyPem,
          keyId: signer.keyId,
          logLevel: 'silent',
          pollMs: 20,
        },
        pino({ level: 'silent' }),
      );
      shipper.start();
    }
    const t0 = performance.now();
    const rate = await drain(ledger, jobs, 'main', concurrency);
    let caughtUpMs = 0;
    if (shipper && evidence) {
      const head = await ledger.outboxHead();
      while ((await evidence.head()).shippedThrough < head) await new Promise((r) => setTimeout(r, 5));
      caughtUpMs = performance.now() - t0;
    }
    return { rate, caughtUpMs };
  } finally {
    await shipper?.stop();
    await evidence?.close();
    await ledger.close();
    await where.cleanup();
  }
}

const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

console.log('# evidence benchmark');
console.log(
  `settings: entries=${entries} append-batch=${batch} (7 fields per entry, checkpoint every 1000) ` +
    `drain jobs=${jobs} concurrency=${concurrency} claim-batch=20 rounds=${rounds} (alternating off/on); ` +
    `sqlite synchronous=full (WAL), postgres synchronous_commit=on; node ${process.version}, ${cpus().length} cpus`,
);
console.log('');
console.log(
  '| backend | append entries/s | verify entries/s | drain off jobs/s | drain on jobs/s | on/off | evidence caught up after |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|');

for (const backend of backendsWanted) {
  const where = await place(backend);
  let append = 0;
  let verified = { rate: 0, ok: false, n: 0 };
  try {
    const store = await openEvidenceStore(where.evidence, { signer });
    try {
      append = await appendRate(store, entries);
      verified = await verifyRate(store);
      if (!verified.ok) throw new Error('the benchmark log did not verify');
    } finally {
      await store.close();
    }
  } finally {
    await where.cleanup();
  }
  const off: number[] = [];
  const on: number[] = [];
  const caught: number[] = [];
  for (let r = 0; r < rounds; r++) {
    off.push((await drainRound(backend, false)).rate);
    const withEvidence = await drainRound(backend, true);
    on.push(withEvidence.rate);
    caught.push(withEvidence.caughtUpMs);
  }
  const offM = median(off);
  const onM = median(on);
  console.log(
    `| ${backend} | ${fmt(append)} | ${fmt(verified.rate)} | ${fmt(offM)} | ${fmt(onM)} | ${(onM / offM).toFixed(2)} | ${fmt(median(caught))} ms |`,
  );
}
