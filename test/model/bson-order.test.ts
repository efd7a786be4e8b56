import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Binary, Decimal128, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp } from 'mongodb';
import { compareBson } from '../../src/model/bson-order.js';

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

// Issue #11, defect 6: numbers compare exactly, as the server orders them, not rounded to doubles
// (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/#numeric-types).
test('numbers compare exactly: Long beyond 2^53, Decimal128 with 34 digits, doubles, NaN and infinities', () => {
  const ordered: unknown[] = [
    Number.NaN,
    new Decimal128('-Infinity'),
    -1e300,
    Long.fromString('-9007199254740993'),
    -9007199254740992,
    new Decimal128('-0.0000000000000000000000000000000001'),
    0,
    new Decimal128('0.1'),
    0.1, // the double nearest 0.1 is 0.1000000000000000055511151231257827…
    new Decimal128('0.1000000000000000055511151231257828'),
    9007199254740992,
    Long.fromString('9007199254740993'),
    new Decimal128('9007199254740993.5'),
    Long.fromString('9223372036854775807'),
    new Decimal128('9223372036854775808'),
    1e300,
    Number.POSITIVE_INFINITY,
  ];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const c = Math.sign(compareBson(ordered[i], ordered[j]));
      assert.equal(c, Math.sign(i - j), `compare #${i} ${String(ordered[i])} with #${j} ${String(ordered[j])}`);
    }
  }
  assert.equal(compareBson(new Decimal128('1.50'), 1.5), 0, 'equal values of different types compare equal');
  assert.equal(compareBson(-0, new Long(0)), 0);
  assert.equal(compareBson(new Decimal128('NaN'), Number.NaN), 0);
});
