/**
 * The crash battery's own checks must be able to fail: the checker on hand-made histories (legal and
 * illegal lifecycle walks, stale writes accepted or refused), and the fixture's fenced external write
 * on both kinds of external store (a lower fence after a higher one is refused).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { OutboxEvent } from '../../src/ledger/types.js';
import { tempDir } from '../helpers/backends.js';
import { createPgDatabase, pgAdminUrl } from '../helpers/pg-scratch.js';
import { checkExternal, emptyReport, walkProblem } from './checker.js';
import type { AuditRow, EffectRow } from './external.js';
import { prepareExternal } from './external.js';
import { closeSinks, sinkFor } from './fixtures/effect-tasks.js';

let seq = 0;
const ev = (type: string, data: Record<string, unknown> = {}): OutboxEvent => ({
  seq: ++seq,
  type,
  tenant: 'faults',
  jobId: 'j1',
  correlationId: 'j1',
  data,
  at: seq,
});
const move = (from: string, to: string, reason: string) => ev(`job.${to}`, { from, to, reason });

describe('walkProblem', () => {
  it('accepts a walk through a crash, a reap and a retry to succeeded', () => {
    const walk = [
      move('submitted', 'queued', 'admitted'),
      move('queued', 'leased', 'claimed'),
      move('leased', 'running', 'started'),
      ev('step.committed', { stepKey: 's0' }),
      move('running', 'queued', 'lease_expired'),
      move('queued', 'leased', 'claimed'),
      move('leased', 'running', 'started'),
      move('running', 'failed', 'attempt_failed'),
      move('failed', 'queued', 'retry_scheduled'),
      move('queued', 'leased', 'claimed'),
      move('leased', 'running', 'started'),
      ev('step.committed', { stepKey: 's1' }),
      move('running', 'succeeded', 'completed'),
    ];
    assert.equal(walkProblem(walk), undefined);
  });

  it('names what is wrong with an illegal walk', () => {
    const start = [move('submitted', 'queued', 'admitted'), move('queued', 'leased', 'claimed')];
    assert.match(walkProblem([...start, move('leased', 'succeeded', 'completed')]) ?? '', /not a transition/);
    assert.match(
      walkProblem([...start, move('running', 'succeeded', 'completed')]) ?? '',
      /from 'running' but the job was 'leased'/,
    );
    assert.match(walkProblem([...start, ev('step.committed')]) ?? '', /step.committed while leased/);
    assert.match(walkProblem(start) ?? '', /ends in 'leased'/);
    const done = [...start, move('leased', 'running', 'started'), move('running', 'succeeded', 'completed')];
    assert.equal(walkProblem(done), undefined);
    assert.match(walkProblem([...done, move('succeeded', 'queued', 'admitted')]) ?? '', /not a transition/);
  });
});

describe('checkExternal', () => {
  const row = (id: number, fence: number, accepted: boolean, key = 'j1:s0'): AuditRow => ({
    id,
    key,
    jobId: 'j1',
    step: 's0',
    fence,
    accepted,
    pid: 1,
    at: id,
  });
  const effect = (fence: number, writes: number): EffectRow => ({
    key: 'j1:s0',
    jobId: 'j1',
    fence,
    value: `j1/s0@${fence}`,
    writes,
  });

  it('counts a refused stale write and a superseded one, and nothing wrong', () => {
    const r = emptyReport(1);
    checkExternal([row(1, 2, true), row(2, 3, true), row(3, 2, false)], [effect(3, 2)], ['j1'], r);
    assert.deepEqual(r.violations, []);
    assert.equal(r.staleAccepted, 0);
    assert.equal(r.staleRejected, 1);
    assert.equal(r.superseded, 1);
  });

  it('flags a stale write accepted over a newer one, an unjustified refusal and a count mismatch', () => {
    const r = emptyReport(1);
    checkExternal([row(1, 3, true), row(2, 2, true), row(3, 4, false)], [effect(2, 1)], ['j1'], r);
    assert.equal(r.staleAccepted, 1);
    assert.equal(r.violations.length, 3, r.violations.join('\n'));
  });
});

describe('the fixture’s fenced write', () => {
  const tmp = tempDir('bulkhead-faults-sink-');
  const drops: (() => Promise<void>)[] = [];
  after(async () => {
    await closeSinks();
    for (const d of drops) await d();
    tmp.remove();
  });

  const urls: [string, () => Promise<string>][] = [
    ['SQLite', async () => `${tmp.dir}/effects.db`],
    ...(pgAdminUrl
      ? [
          [
            'PostgreSQL',
            async () => {
              const db = await createPgDatabase();
              drops.push(db.drop);
              return db.url;
            },
          ] as [string, () => Promise<string>],
        ]
      : []),
  ];
  for (const [name, make] of urls) {
    it(`refuses a lower fence after a higher one, and logs every attempt (${name})`, async () => {
      const url = await make();
      const external = await prepareExternal(url);
      try {
        const sink = sinkFor(url);
        const w = (fence: number) => ({ key: 'j:s0', jobId: 'j', step: 's0', fence, value: `v${fence}` });
        assert.equal(await sink.write(w(2)), true);
        assert.equal(await sink.write(w(2)), true);
        assert.equal(await sink.write(w(5)), true);
        assert.equal(await sink.write(w(3)), false);
        const effects = await external.readEffects();
        assert.deepEqual(
          effects.map((e) => [e.key, e.fence, e.value, e.writes]),
          [['j:s0', 5, 'v5', 3]],
        );
        const audit = await external.readAudit();
        assert.deepEqual(
          audit.map((a) => [a.fence, a.accepted]),
          [
            [2, true],
            [2, true],
            [5, true],
            [3, false],
          ],
        );
      } finally {
        await external.close();
      }
    });
  }
});
