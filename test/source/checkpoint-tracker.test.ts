import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Timestamp } from 'mongodb';
import { CheckpointTracker } from '../../src/source/checkpoint-tracker.js';

const pos = (n: number) => ({ ct: new Timestamp({ t: 100, i: n }), rt: { _data: `tok${String(n).padStart(4, '0')}` } });

test('the checkpoint never runs ahead of what the producer acknowledged', () => {
  const t = new CheckpointTracker();
  t.record(1, pos(1));
  t.record(2, pos(2));
  t.record(2, pos(3)); // filtered event after payload 2: durable with 2
  t.record(3, pos(4));
  assert.equal(t.checkpoint, undefined, 'nothing acknowledged yet');
  t.markDurable(1);
  assert.deepEqual(t.takeCheckpoint(), pos(1));
  assert.equal(t.takeCheckpoint(), undefined, 'unchanged');
  t.markDurable(2);
  assert.deepEqual(t.checkpoint, pos(3), 'the filtered event after 2 is durable too');
  t.markDurable(3);
  assert.deepEqual(t.checkpoint, pos(4));
  assert.equal(t.pendingCount, 0);
});

test('positions without new payloads advance at once when everything before is durable', () => {
  const t = new CheckpointTracker();
  t.record(0, pos(1)); // idle postBatchResumeToken before any event
  assert.deepEqual(t.checkpoint, pos(1));
  t.record(1, pos(2));
  t.record(1, pos(3));
  assert.deepEqual(t.checkpoint, pos(1), 'waits for payload 1');
  t.markDurable(1);
  assert.deepEqual(t.checkpoint, pos(3));
  t.record(1, pos(4));
  assert.deepEqual(t.checkpoint, pos(4));
});
