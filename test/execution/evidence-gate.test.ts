/**
 * The evidence gate's lag bound, as the published config's `evidenceMaxLag` sets it: a shipper that
 * reported but is further behind than the bound closes the gate for `evidence: required` work; the
 * same lag under a looser bound leaves it open. On every backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { viewOf } from '../../src/control/snapshot-view.js';
import { EVIDENCE_CONSUMER } from '../../src/evidence/shipper.js';
import { EvidenceGate } from '../../src/execution/evidence-gate.js';
import { backends, type TestStore } from '../helpers/backends.js';

for (const backend of backends()) {
  describe(`evidence gate on ${backend.dialect}`, () => {
    let t: TestStore;
    before(async () => {
      t = await backend.create();
    });
    after(async () => {
      await t.cleanup();
    });

    it("closes when the shipper is more than the config's evidenceMaxLag events behind", async () => {
      for (let i = 0; i < 5; i++)
        await t.store.appendEvent({ type: 'test.event', tenant: 'acme', data: { i } });
      const head = await t.store.outboxHead();
      // The shipper has reported, and handled all but the last three events.
      assert.equal(await t.store.advanceConsumer(EVIDENCE_CONSUMER, 0, head - 3), true);
      const tight = viewOf({ evidenceMaxLag: 2 }).evidenceMaxLag;
      const loose = viewOf({ evidenceMaxLag: 3 }).evidenceMaxLag;
      const closed = await new EvidenceGate(t.store, { checkEveryMs: 0 }).check(tight);
      assert.deepEqual(closed, {
        open: false,
        reason: 'the evidence shipper is 3 events behind (at most 2)',
        lag: 3,
      });
      assert.deepEqual(await new EvidenceGate(t.store, { checkEveryMs: 0 }).check(loose), {
        open: true,
        lag: 3,
      });
    });
  });
}
