/**
 * The evidence shipper's thread: it opens its own ledger connection and its own evidence store and
 * ships in a loop, so shipping never takes the process's main event loop (the API, the worker) and
 * a slow or locked evidence store stalls only this thread. Started by `ThreadedShipper`.
 */
import { createPrivateKey, sign } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { isPostgresUrl, openStore } from '../ledger/open.js';
import type { CheckpointSigner } from './format.js';
import { lazyEvidenceStore } from './lazy-store.js';
import { openEvidenceStore } from './open.js';
import { EvidenceShipper } from './shipper.js';
import type { ShipperThreadData } from './threaded-shipper.js';

const data = workerData as ShipperThreadData;
const port = parentPort;
if (!port) throw new Error('shipper-thread.ts runs as a worker thread');

const privateKey = createPrivateKey(data.privateKeyPem);
const signer: CheckpointSigner = {
  keyId: data.keyId,
  publicKeyPem: data.publicKeyPem,
  sign: (message) => sign(null, Buffer.from(message), privateKey).toString('base64'),
};
const logger = pino({ level: data.logLevel }).child({ plane: 'evidence', part: 'shipper' });
const ledger = await openStore(data.ledgerUrl, isPostgresUrl(data.ledgerUrl) ? { poolSize: 2 } : {});
const evidence = lazyEvidenceStore(
  isPostgresUrl(data.evidenceTarget) ? 'postgres' : 'sqlite',
  data.evidenceWhere,
  () =>
    openEvidenceStore(data.evidenceTarget, {
      signer,
      ...(data.checkpointEvery !== undefined && { checkpointEvery: data.checkpointEvery }),
    }),
);
await Promise.race([evidence.ready, new Promise((r) => setTimeout(r, 2000))]);
const shipper = new EvidenceShipper({
  ledger,
  evidence,
  logger,
  ...(data.checkpointMs !== undefined && { checkpointMs: data.checkpointMs }),
  ...(data.pollMs !== undefined && { pollMs: data.pollMs }),
});
shipper.start();
const report = setInterval(() => port.postMessage({ type: 'status', status: shipper.status() }), 250);

port.on('message', (m: { type: string }) => {
  if (m.type !== 'stop') return;
  clearInterval(report);
  void (async () => {
    await shipper.stop();
    await evidence.close();
    await ledger.close();
    port.postMessage({ type: 'stopped', status: shipper.status() });
    port.close();
  })();
});
port.postMessage({ type: 'ready' });
