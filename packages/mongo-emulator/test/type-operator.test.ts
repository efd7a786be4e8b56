// Conformance: the $type query operator (https://www.mongodb.com/docs/manual/reference/operator/query/type/)
// matches every BSON type by alias and by number, and an array field when it or one of its elements
// matches. What the initial load's `_id` ranges rely on (a range across type classes takes whole
// classes by $type: src/initial-load/id-ranges.ts). Runs unchanged against a real server (MONGODB_URI).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Binary, Code, Decimal128, Double, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp, type Collection, type Document } from 'mongodb';
import { openTarget, type AnyDoc, type Target } from './target.js';

let target: Target;
let coll: Collection<AnyDoc>;

before(async () => {
  target = await openTarget();
  coll = target.client.db(target.dbName('type_operator')).collection<AnyDoc>('values');
  await coll.insertMany([
    { _id: 1, v: new MinKey() },
    { _id: 2, v: null },
    { _id: 3, v: new Double(1.5) },
    { _id: 4, v: new Int32(2) },
    { _id: 5, v: new Long(3) },
    { _id: 6, v: Decimal128.fromString('4.5') },
    { _id: 7, v: 's' },
    { _id: 8, v: { a: 1 } },
    { _id: 9, v: new Binary(Buffer.from([1, 2]), 0) },
    { _id: 10, v: new Binary(Buffer.alloc(16, 3), 4) },
    { _id: 11, v: new ObjectId('650000000000000000000000') },
    { _id: 12, v: true },
    { _id: 13, v: new Date(0) },
    { _id: 14, v: new Timestamp({ t: 1, i: 1 }) },
    { _id: 15, v: new Code('function () {}') },
    { _id: 16, v: new MaxKey() },
    { _id: 17, v: [new ObjectId('650000000000000000000001'), 'x'] },
    { _id: 18, v: new Double(NaN) },
  ]);
});
after(async () => target.close());

const ids = async (type: unknown) => (await coll.find({ v: { $type: type as string } }).sort({ _id: 1 }).toArray()).map((d) => d._id as number);

test('$type matches each BSON type by alias and by number', async () => {
  assert.deepEqual(await ids('minKey'), [1]);
  assert.deepEqual(await ids(-1), [1]);
  assert.deepEqual(await ids('null'), [2]);
  assert.deepEqual(await ids('string'), [7, 17], 'an array field matches through an element');
  assert.deepEqual(await ids('object'), [8]);
  assert.deepEqual(await ids('binData'), [9, 10], 'every binary subtype');
  assert.deepEqual(await ids(5), [9, 10]);
  assert.deepEqual(await ids('objectId'), [11, 17]);
  assert.deepEqual(await ids(7), [11, 17]);
  assert.deepEqual(await ids('bool'), [12]);
  assert.deepEqual(await ids('date'), [13]);
  assert.deepEqual(await ids('timestamp'), [14]);
  assert.deepEqual(await ids(17), [14]);
  assert.deepEqual(await ids('javascript'), [15]);
  assert.deepEqual(await ids('maxKey'), [16]);
  assert.deepEqual(await ids(127), [16]);
  assert.deepEqual(await ids('array'), [17]);
  assert.deepEqual(await ids('number'), [3, 4, 5, 6, 18], 'every numeric type, NaN included');
  assert.deepEqual(await ids(['minKey', 'maxKey']), [1, 16], 'an array of types matches any of them');
});

test('binData compares by length, then subtype, then bytes, and only with binData', async () => {
  const c = target.client.db(target.dbName('type_operator')).collection<AnyDoc>('bin');
  await c.insertMany([
    { _id: 1, v: new Binary(Buffer.from([9]), 0) },
    { _id: 2, v: new Binary(Buffer.from([0, 0]), 0) },
    { _id: 3, v: new Binary(Buffer.from([0, 1]), 5) },
    { _id: 4, v: new Binary(Buffer.from([0, 0, 0]), 0) },
    { _id: 5, v: 'not binary' },
  ]);
  const found = async (f: Document) => (await c.find(f).sort({ _id: 1 }).toArray()).map((d) => d._id as number);
  assert.deepEqual(await found({ v: { $lt: new Binary(Buffer.from([0, 0]), 5) } }), [1, 2], 'shorter first, then the lower subtype');
  assert.deepEqual(await found({ v: { $gte: new Binary(Buffer.from([0, 0]), 5) } }), [3, 4]);
  assert.deepEqual(await found({ v: { $gt: new Binary(Buffer.from([5]), 0), $lte: new Binary(Buffer.from([0, 1]), 5) } }), [1, 2, 3]);
});

test('documents compare field by field (type, then name, then value), timestamps by (t, i), each only with its own type', async () => {
  const c = target.client.db(target.dbName('type_operator')).collection<AnyDoc>('docs');
  await c.insertMany([
    { _id: 1, v: { a: 1 } },
    { _id: 2, v: { a: 1, b: 'x' } },
    { _id: 3, v: { a: 2 } },
    { _id: 4, v: { a: 'text' } },
    { _id: 5, v: { b: 0 } },
    { _id: 6, v: new Timestamp({ t: 9, i: 1 }) },
    { _id: 7, v: new Timestamp({ t: 10, i: 0 }) },
    { _id: 8, v: new Timestamp({ t: 100, i: 0 }) },
    { _id: 9, v: 5 },
  ]);
  const found = async (f: Document) => (await c.find(f).sort({ _id: 1 }).toArray()).map((d) => d._id as number);
  assert.deepEqual(await found({ v: { $gt: { a: 1 } } }), [2, 3, 4, 5], 'a longer document with the same prefix is greater; a string value is above numbers; field b above a');
  assert.deepEqual(await found({ v: { $lt: { a: 2 } } }), [1, 2]);
  // Field types come before field names: {a: 'text'} is above {b: 0} (a string value above a number).
  assert.deepEqual(await found({ v: { $gte: { a: 1, b: 'x' }, $lt: { b: 0 } } }), [2, 3]);
  assert.deepEqual(await found({ v: { $gte: new Timestamp({ t: 10, i: 0 }) } }), [7, 8], 'by seconds, not by text');
  assert.deepEqual(await found({ v: { $lt: new Timestamp({ t: 10, i: 0 }) } }), [6]);
  // The same in an aggregation's $match (countDocuments runs one).
  assert.equal(await c.countDocuments({ v: { $gt: { a: 1 } } }), 4);
  assert.equal(await c.countDocuments({ v: { $type: 'timestamp' } }), 3);
});

test('$type clauses under $or split values by type class', async () => {
  const r = await coll.find({ $or: [{ v: { $type: 'objectId' } }, { v: { $type: 'timestamp' } }, { v: { $lt: 2 } }] }).sort({ _id: 1 }).toArray();
  assert.deepEqual(r.map((d) => d._id), [3, 11, 14, 17]);
});
