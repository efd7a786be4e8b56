// Initial-load progress writes: ordered per collection, throttled, bounded whatever the store's latency.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLoadProgressWriter } from '../../src/orchestration/load-progress-writer.js';
import type { LoadCollectionProgress } from '../../src/state/store.js';

type Call = { ns: string; fields: Partial<LoadCollectionProgress> };

/** A store whose writes complete only when the test says so. */
function slowStore() {
  const calls: Call[] = [];
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const save = (ns: string, fields: Partial<LoadCollectionProgress>) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ ns, fields });
      pending.push({ resolve, reject });
    });
  const settleNext = async (fail = false) => {
    const p = pending.shift();
    assert.ok(p, 'a write is in flight');
    if (fail) p.reject(new Error('store down'));
    else p.resolve();
    await new Promise((r) => setImmediate(r));
  };
  return { calls, pending, save, settleNext };
}

describe('load progress writer', () => {
  it('never lets an older count land after a newer one, and merges what arrives meanwhile into one write', async () => {
    const store = slowStore();
    const w = createLoadProgressWriter(store.save, 1000);
    w.write('db.a', { dumped: 1200, total: 5000 });
    w.write('db.a', { dumped: 5000, total: 5000 }, true);
    w.write('db.a', { restored: 5000, done: true }, true);
    assert.equal(store.calls.length, 1, 'one write in flight per collection');
    await store.settleNext();
    assert.deepEqual(store.calls.map((c) => c.fields), [
      { dumped: 1200, total: 5000 },
      { dumped: 5000, total: 5000, restored: 5000, done: true },
    ]);
    await store.settleNext();
    await w.flush();
  });

  it('keeps memory bounded: 10,000 updates during one slow write become two writes', async () => {
    const store = slowStore();
    const w = createLoadProgressWriter(store.save, 0);
    for (let i = 1; i <= 10_000; i++) w.write('db.big', { dumped: i }, true);
    assert.equal(store.pending.length, 1);
    await store.settleNext();
    assert.equal(store.calls.length, 2);
    assert.deepEqual(store.calls[1]!.fields, { dumped: 10_000 });
    await store.settleNext();
    await w.flush();
  });

  it('throttles unforced writes per collection, not across collections', async () => {
    const calls: Call[] = [];
    const w = createLoadProgressWriter(async (ns, fields) => void calls.push({ ns, fields }), 60_000);
    w.write('db.a', { dumped: 1 });
    w.write('db.a', { dumped: 2 });
    w.write('db.b', { dumped: 1 });
    w.write('db.a', { dumped: 3 }, true);
    await w.flush();
    assert.deepEqual(calls, [
      { ns: 'db.a', fields: { dumped: 1 } },
      { ns: 'db.b', fields: { dumped: 1 } },
      { ns: 'db.a', fields: { dumped: 3 } },
    ]);
  });

  it('a failed write is dropped; the next one still goes out and flush resolves', async () => {
    const store = slowStore();
    const w = createLoadProgressWriter(store.save, 0);
    w.write('db.a', { dumped: 1 });
    w.write('db.a', { dumped: 2 });
    await store.settleNext(true);
    assert.deepEqual(store.calls[1]!.fields, { dumped: 2 });
    const flushed = w.flush();
    await store.settleNext();
    await flushed;
  });
});
