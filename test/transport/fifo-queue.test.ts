import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FifoQueue } from '../../src/transport/fifo-queue.js';

describe('FifoQueue', () => {
  it('first in, first out; peek, at, last and iteration see the queued elements only', () => {
    const q = new FifoQueue<number>(2);
    assert.equal(q.peek(), undefined);
    assert.equal(q.shift(), undefined);
    for (let i = 1; i <= 5; i++) q.push(i);
    assert.equal(q.shift(), 1);
    assert.equal(q.shift(), 2);
    assert.equal(q.length, 3);
    assert.equal(q.peek(), 3);
    assert.equal(q.at(1), 4);
    assert.equal(q.at(3), undefined);
    assert.equal(q.at(-1), undefined);
    assert.equal(q.last(), 5);
    assert.deepEqual([...q], [3, 4, 5]);
  });

  it('keeps order across many pushes and shifts (compaction is invisible)', () => {
    const q = new FifoQueue<number>(8);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 7; i++) q.push(next++);
      for (let i = 0; i < 5; i++) assert.equal(q.shift(), expected++);
    }
    assert.equal(q.length, next - expected);
    assert.deepEqual([...q], Array.from({ length: next - expected }, (_, i) => expected + i));
  });

  it('unshiftAll puts elements back in front, in their order; clear empties and returns the rest', () => {
    const q = new FifoQueue<string>();
    q.push('c');
    q.push('d');
    q.shift();
    q.unshiftAll(['a', 'b', 'c']);
    assert.deepEqual([...q], ['a', 'b', 'c', 'd']);
    assert.deepEqual(q.clear(), ['a', 'b', 'c', 'd']);
    assert.equal(q.isEmpty(), true);
    assert.equal(q.last(), undefined);
  });
});
