/**
 * `retention.evidenceDays` of the published config is what the evidence plane applies: entries
 * recorded before the window lose their values (the chain still verifies), newer ones keep them, and
 * a config without it erases nothing. SQLite ledger and evidence store; the policy is the subject.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensureControlIdentity, ensureInitialConfig } from '../../src/cli/control-setup.js';
import { applyConfiguredRetention } from '../../src/cli/evidence-setup.js';
import { EvidenceService } from '../../src/evidence/service.js';
import { backends, tempDir } from '../helpers/backends.js';
import { evidenceBackends } from '../helpers/evidence-backends.js';

const DAY = 86_400_000;

describe('configured evidence retention', () => {
  it('erases what is older than retention.evidenceDays, keeps the rest, and nothing without it', async () => {
    const ledger = await (backends().find((b) => b.dialect === 'sqlite') ?? assert.fail('sqlite')).create();
    const ev = await (evidenceBackends.find((b) => b.dialect === 'sqlite') ?? assert.fail('sqlite')).create();
    const tmp = tempDir('bulkhead-retention-');
    try {
      const { service } = ensureControlIdentity(join(tmp.dir, 'keys'));
      const config = service(ledger.store);
      await ensureInitialConfig(config, ledger.store);
      const evidence = new EvidenceService({ store: ev.store, ledger: ledger.store, signer: ev.signer });
      const draft = (note: string) => ({
        occurredAt: Date.now(),
        tenant: 'acme',
        correlationId: `c-${note}`,
        kind: 'state' as const,
        subject: `job:${note}`,
        sourceSeq: null,
        fields: { note },
      });
      const realNow = Date.now;
      Date.now = () => realNow() - 10 * DAY;
      try {
        await ev.store.append([draft('old')]);
      } finally {
        Date.now = realNow;
      }
      await ev.store.append([draft('new')]);

      assert.equal(
        await applyConfiguredRetention(ledger.store, evidence),
        0,
        'no evidenceDays: nothing erased',
      );
      await config.publish({ document: { retention: { evidenceDays: 3 } }, by: 'test' });
      assert.equal(await applyConfiguredRetention(ledger.store, evidence), 1);
      const rows = await ev.store.readRows(1, 100);
      const note = (kind: string) =>
        (
          JSON.parse(rows.find((r) => r.subject === `job:${kind}`)?.fields ?? '{}') as Record<
            string,
            { value?: unknown }
          >
        ).note?.value;
      assert.equal(note('old'), undefined, 'the old entry lost its value');
      assert.equal(note('new'), 'new', 'the new entry kept its value');
      assert.equal((await evidence.verify()).ok, true, 'the chain still verifies');
    } finally {
      await ev.cleanup();
      await ledger.cleanup();
      tmp.remove();
    }
  });
});
