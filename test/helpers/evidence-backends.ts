/**
 * Evidence stores for tests, on both backends: a SQLite file in a temp dir, or a throwaway
 * PostgreSQL database. Each comes with its own Ed25519 checkpoint signer.
 */
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { join } from 'node:path';
import type { CheckpointSigner } from '../../src/evidence/format.js';
import { openEvidenceStore } from '../../src/evidence/open.js';
import type { EvidenceStore, OpenEvidenceOptions } from '../../src/evidence/store.js';
import { keyIdOf } from '../../src/util/ed25519.js';
import { tempDir } from './backends.js';
import { createPgDatabase, pgAdminUrl } from './pg-scratch.js';

export interface TestSigner extends CheckpointSigner {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export function testSigner(): TestSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKey,
    privateKey,
    sign: (message) => sign(null, Buffer.from(message), privateKey).toString('base64'),
  };
}

export interface TestEvidenceStore {
  store: EvidenceStore;
  /** The path or URL, for other processes. */
  target: string;
  signer: TestSigner;
  reopen(options?: OpenEvidenceOptions): Promise<EvidenceStore>;
  cleanup(): Promise<void>;
}

export interface EvidenceBackend {
  dialect: 'sqlite' | 'postgres';
  create(options?: OpenEvidenceOptions): Promise<TestEvidenceStore>;
}

async function make(
  target: string,
  options: OpenEvidenceOptions | undefined,
  drop: () => Promise<void>,
): Promise<TestEvidenceStore> {
  const signer = testSigner();
  const opened: EvidenceStore[] = [];
  const open = async (o?: OpenEvidenceOptions) => {
    const s = await openEvidenceStore(target, { signer, ...options, ...o });
    opened.push(s);
    return s;
  };
  return {
    store: await open(),
    target,
    signer,
    reopen: open,
    async cleanup() {
      for (const s of opened) await s.close();
      await drop();
    },
  };
}

export const evidenceBackends: EvidenceBackend[] = [
  {
    dialect: 'sqlite',
    async create(options) {
      const tmp = tempDir('bulkhead-evidence-');
      return make(join(tmp.dir, 'evidence.db'), options, async () => tmp.remove());
    },
  },
  ...(pgAdminUrl
    ? [
        {
          dialect: 'postgres' as const,
          async create(options?: OpenEvidenceOptions) {
            const db = await createPgDatabase();
            return make(db.url, options, () => db.drop());
          },
        },
      ]
    : []),
];
