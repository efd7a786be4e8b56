import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FragmentAssembler, isSplitStageRefused, splitLargeEventSupported } from '../../src/source/large-events.js';

test('$changeStreamSplitLargeEvent is used from MongoDB 7.0 and 6.0.9 on', () => {
  for (const v of ['7.0.0', '7.0.14', '8.0.4', '6.0.9', '6.0.19', '6.1.0']) assert.equal(splitLargeEventSupported(v), true, v);
  for (const v of ['4.4.29', '5.0.30', '6.0.0', '6.0.8', '', 'unknown']) assert.equal(splitLargeEventSupported(v), false, v);
  assert.equal(isSplitStageRefused(40324, "Unrecognized pipeline stage name: '$changeStreamSplitLargeEvent'"), true);
  assert.equal(isSplitStageRefused(286, 'history lost'), false);
});

test('fragments are reassembled into one event carrying the token of its last fragment', () => {
  const a = new FragmentAssembler();
  assert.deepEqual(a.add({ _id: { _data: 'e0' }, operationType: 'insert' }), { _id: { _data: 'e0' }, operationType: 'insert' });
  assert.equal(a.add({ _id: { _data: 'f1' }, splitEvent: { fragment: 1, of: 2 }, operationType: 'update', ns: { db: 'a' } }), undefined);
  assert.equal(a.pending, true);
  assert.deepEqual(a.add({ _id: { _data: 'f2' }, splitEvent: { fragment: 2, of: 2 }, fullDocument: { x: 1 } }), {
    _id: { _data: 'f2' },
    operationType: 'update',
    ns: { db: 'a' },
    fullDocument: { x: 1 },
  });
  assert.equal(a.pending, false);
  assert.throws(() => a.add({ _id: { _data: 'g2' }, splitEvent: { fragment: 2, of: 2 } }), /out of sequence/);
});
