import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Binary, Decimal128, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp } from 'mongodb';
import { compareBson } from '../../src/verify/bson-order.js';

test('values sort in MongoDB\'s type order, numbers across numeric types', () => {
  const oid1 = new ObjectId('000000000000000000000001');
  const oid2 = new ObjectId('000000000000000000000002');
  const ordered: unknown[] = [
    new MinKey(),
    null,
    new Int32(-5),
    new Long(1),
    1.5,
    new Decimal128('2'),
    3,
    '',
    'a',
    'b',
    { a: 1 },
    { a: 2 },
    { b: 0 },
    new Binary(new Uint8Array([9])),
    new Binary(new Uint8Array([1, 2])),
    oid1,
    oid2,
    false,
    true,
    new Date(0),
    new Date(1),
    new Timestamp({ t: 1, i: 0 }),
    new MaxKey(),
  ];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const c = Math.sign(compareBson(ordered[i], ordered[j]));
      assert.equal(c, Math.sign(i - j), `compare #${i} ${String(ordered[i])} with #${j} ${String(ordered[j])}`);
    }
  }
});
