import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Timestamp } from 'mongodb';
import { CaptureCheckpointer, type CaptureProgress } from '../../src/source/capture-checkpointer.js';
import type { CaptureStateStore } from '../../src/state/store.js';
import type { EventPosition } from '../../src/model/change-envelope.js';
import { createLogger } from '../../src/util/logger.js';

const log = createLogger({ format: 'json', verbose: false, out: { write: () => true } as unknown as NodeJS.WritableStream });
const pos = (t: number): EventPosition => ({ ct: new Timestamp({ t, i: 1 }), rt: { _data: `82${t.toString(16).padStart(8, '0')}` } });

/** A store whose saves fail while `failing` is set; records what it saved. */
function fakeStore() {
  const saved: EventPosition[] = [];
  const s = {
    failing: false,
    saved,
    saveCaptureCheckpoint: async (_id: string, p: EventPosition) => {
      if (s.failing) throw new Error('state store unreachable');
      saved.push(p);
      return true;
    },
  };
  return s;
}

test('the saved checkpoint never runs ahead of what the producer reported durable', async () => {
  const store = fakeStore();
  const progress: CaptureProgress = { events: 0, markers: 0, bytes: 0 };
  const cp = new CaptureCheckpointer({ store: store as unknown as CaptureStateStore, migrationId: 'm', progress, intervalMs: 60_000, log });
  try {
    cp.recordEvent(1, pos(10));
    cp.recordEvent(2, pos(11));
    cp.recordIdle(2, pos(12));
    await cp.save();
    assert.equal(store.saved.length, 0, 'nothing acknowledged: nothing saved');
    cp.markDurable(1);
    await cp.save();
    assert.equal(store.saved.at(-1)?.ct.t, 10);
    cp.markDurable(2);
    await cp.save();
    assert.equal(store.saved.at(-1)?.ct.t, 12, 'the idle position after the last payload');
    assert.equal(progress.checkpoint?.ct.t, 12);
  } finally {
    await cp.stop();
  }
});

test('a failed save does not stop later saves (a state store outage, then recovery)', async () => {
  const store = fakeStore();
  const cp = new CaptureCheckpointer({ store: store as unknown as CaptureStateStore, migrationId: 'm', progress: { events: 0, markers: 0, bytes: 0 }, intervalMs: 60_000, log });
  try {
    cp.recordEvent(1, pos(10));
    cp.markDurable(1);
    store.failing = true;
    await assert.rejects(cp.save(), /state store unreachable/);
    store.failing = false;
    cp.recordEvent(2, pos(11));
    cp.markDurable(2);
    await cp.save();
    assert.equal(store.saved.at(-1)?.ct.t, 11, 'the checkpoint moves again once the store is back');
  } finally {
    await cp.stop();
  }
});
