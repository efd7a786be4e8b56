// Conformance: queries on `_id` over mixed BSON types. A server answers them from the default _id
// index (https://www.mongodb.com/docs/manual/indexes/#default-_id-index), a single-field index
// (https://www.mongodb.com/docs/manual/core/index-single/) ordered by the BSON comparison order
// (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/), with type bracketing
// (https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#type-bracketing): a range
// returns exactly the `_id`s of its operand's type class between its bounds, and the same documents
// as a collection scan forced by a `{$natural: 1}` hint
// (https://www.mongodb.com/docs/manual/reference/operator/meta/natural/). What the initial load's
// `_id` ranges rely on (src/initial-load/id-ranges.ts). Runs unchanged against a real server (MONGODB_URI).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Binary, BSON, Decimal128, Double, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp, type Collection, type Document } from 'mongodb';
import { openTarget, type AnyDoc, type Target } from './target.js';
import { rangeFilter, rangesFromBounds } from '../../../src/initial-load/id-ranges.js';
import { compareBson, typeRank } from '../../../src/model/bson-order.js';

let target: Target;
before(async () => {
  target = await openTarget();
});
after(async () => target.close());

/** Distinct `_id`s of every type an `_id` can have (not null: the driver replaces a null `_id`), in BSON order. */
function mixedIds(): unknown[] {
  const ids: unknown[] = [new MinKey(), new MaxKey(), NaN, true, false];
  for (let i = 0; i < 30; i++) {
    ids.push(new Int32(i), new Long(1000 + i), new Double(i + 0.5), new Int32(-i - 1), Decimal128.fromString(`${5000 + i}.25`));
    ids.push(`s${String(i).padStart(3, '0')}`, `S${i}`);
    ids.push({ a: i }, { a: i, b: 'x' }, { z: { n: i } });
    ids.push(new Binary(Buffer.from([i, 1, 2]), 0), new Binary(Buffer.alloc(16, i), 4));
    ids.push(ObjectId.createFromTime(1_700_000_000 + i), new Date(1_600_000_000_000 + i * 1000), new Timestamp({ t: 1000 + i, i: 1 }));
  }
  return ids.sort(compareBson);
}

const isNaNId = (v: unknown) => typeof v === 'number' && Number.isNaN(v);
const show = (v: unknown) => BSON.EJSON.stringify({ v } as Document, { relaxed: false });

describe('_id queries over mixed types', () => {
  const ids = mixedIds();
  let coll: Collection<AnyDoc>;

  before(async () => {
    coll = target.client.db(target.dbName('id_index')).collection<AnyDoc>('mixed');
    // Inserted in a shuffled (but fixed) order: the index order is not the insertion order.
    const order = ids.map((_, n) => n).sort((a, b) => ((a * 7919) % 211) - ((b * 7919) % 211) || a - b);
    await coll.insertMany(order.map((n) => ({ _id: ids[n], n })) as AnyDoc[]);
  });

  /** The `n`s a filter finds, in `_id` order (the server's sort), through the index and through a collection scan. */
  async function found(filter: Document): Promise<number[]> {
    const indexed = (await coll.find(filter).sort({ _id: 1 }).toArray()).map((d) => Number(d.n));
    const scanned = (await coll.find(filter).hint({ $natural: 1 }).sort({ _id: 1 }).toArray()).map((d) => Number(d.n));
    assert.deepEqual(indexed, scanned, `${show(filter)}: the same documents as a collection scan`);
    const unsorted = (await coll.find(filter).toArray()).map((d) => Number(d.n)).sort((a, b) => a - b);
    assert.deepEqual(unsorted, [...indexed].sort((a, b) => a - b), `${show(filter)}: the same documents without a sort`);
    return indexed;
  }

  /** The `n`s of the `_id`s in [lower, upper) of their class, in BSON order (type bracketing: the operand's class only). */
  const expected = (pred: (v: unknown) => boolean) => ids.map((v, n) => ({ v, n })).filter(({ v }) => pred(v)).map(({ n }) => n);
  const within = (lower: unknown, upper: unknown) => (v: unknown) => typeRank(v) === typeRank(lower) && !isNaNId(v) && compareBson(v, lower) >= 0 && compareBson(v, upper) < 0;

  test('a range within a type class returns the _ids of that class between its bounds, in BSON order', async () => {
    const cases: [unknown, unknown][] = [
      [new Int32(5), new Long(1003)], // Int32, Long, Double and Decimal128 compare as numbers
      [new Double(-3.5), Decimal128.fromString('5010')],
      ['S1', 's010'], // binary string order: 'S…' below 's…'
      [{ a: 3 }, { a: 7, b: 'x' }],
      [new Binary(Buffer.from([3, 1, 2]), 0), new Binary(Buffer.alloc(16, 2), 4)], // by length, then subtype, then bytes
      [ObjectId.createFromTime(1_700_000_004), ObjectId.createFromTime(1_700_000_020)],
      [new Date(1_600_000_003_000), new Date(1_600_000_011_500)],
      [new Timestamp({ t: 1002, i: 0 }), new Timestamp({ t: 1009, i: 1 })],
      [false, true],
    ];
    for (const [lower, upper] of cases) {
      const filter = typeRank(lower) === 3 ? { _id: { $gte: lower, $lt: upper, $ne: NaN } } : { _id: { $gte: lower, $lt: upper } };
      const want = expected(within(lower, upper));
      assert.ok(want.length > 0, `${show(lower)}: the case selects something`);
      assert.deepEqual(await found(filter), want, `${show(filter)}`);
    }
    // One-sided: up to the end (or from the start) of the operand's class, nothing of the others.
    assert.deepEqual(await found({ _id: { $gt: 's020' } }), expected((v) => typeof v === 'string' && v > 's020'));
    assert.deepEqual(await found({ _id: { $lte: ObjectId.createFromTime(1_700_000_002) } }), expected((v) => v instanceof ObjectId && compareBson(v, ObjectId.createFromTime(1_700_000_002)) <= 0));
    assert.deepEqual(await found({ _id: { $gte: 1020, $ne: NaN } }), expected((v) => typeRank(v) === 3 && !isNaNId(v) && compareBson(v, 1020) >= 0));
  });

  test('equality and $in find an _id whatever its numeric type; $type takes a whole class', async () => {
    const n = (v: unknown) => ids.findIndex((x) => compareBson(x, v) === 0 && typeRank(x) === typeRank(v));
    assert.deepEqual(await found({ _id: new Long(7) }), [n(new Int32(7))]);
    assert.deepEqual(await found({ _id: { $eq: new Double(1004) } }), [n(new Long(1004))]);
    assert.deepEqual(await found({ _id: { $in: [new Int32(1003), 'S3', { a: 3 }, 'absent'] } }), [n(new Long(1003)), n('S3'), n({ a: 3 })]);
    assert.deepEqual(await found({ _id: { $in: [] } }), []);
    assert.deepEqual(await found({ _id: { $type: 'objectId' } }), expected((v) => v instanceof ObjectId));
    assert.deepEqual(await found({ _id: { $type: ['minKey', 'maxKey'] } }), [n(new MinKey()), n(new MaxKey())]);
  });

  test('ranges across type classes (the load\'s partitions) hold every _id once, in BSON order', async () => {
    const boundable = ids.filter((v) => ![1, 2, 100].includes(typeRank(v)) && !isNaNId(v));
    const bounds = boundable.filter((_, i) => i % 37 === 11);
    const seen: number[] = [];
    for (const range of rangesFromBounds(bounds)) {
      const got = await found(rangeFilter(range));
      const want = expected((v) => {
        // NaN sorts below every number: in the range that starts below the numbers and ends in or above them.
        if (isNaNId(v)) return range.lower === undefined && (range.upper === undefined || typeRank(range.upper) >= 3);
        return (range.lower === undefined || compareBson(v, range.lower) >= 0) && (range.upper === undefined || compareBson(v, range.upper) < 0);
      });
      assert.deepEqual(got, want, `range ${show(range.lower)} – ${show(range.upper)}`);
      seen.push(...got);
    }
    assert.deepEqual(seen.sort((a, b) => a - b), ids.map((_, n) => n), 'every _id in exactly one range');
  });

  test('where NaN lands is undocumented, but the index and a collection scan agree on it', async () => {
    for (const filter of [{ _id: { $gte: 5 } }, { _id: { $lt: 5 } }, { _id: { $lte: new Double(NaN) } }, { _id: { $gte: NaN } }, { _id: NaN }, { _id: { $gt: -Infinity } }, { _id: { $gte: new MinKey() } }, { _id: { $lte: new MaxKey() } }]) {
      await found(filter);
    }
  });

  test('a conjunction and a disjunction with other fields narrow the same way', async () => {
    assert.deepEqual(await found({ _id: { $gte: 'S1', $lt: 's010' }, n: { $mod: [2, 0] } }), expected(within('S1', 's010')).filter((n) => n % 2 === 0));
    assert.deepEqual(
      await found({ $or: [{ _id: { $lt: { a: 2 } } }, { _id: { $gte: new Date(1_600_000_025_000) } }] }),
      expected((v) => (typeRank(v) === 5 && compareBson(v, { a: 2 }) < 0) || (v instanceof Date && v.getTime() >= 1_600_000_025_000)),
    );
    assert.deepEqual(await found({ $and: [{ _id: { $gte: new Int32(3) } }, { _id: { $lt: new Int32(9) } }, { _id: { $ne: NaN } }] }), expected(within(new Int32(3), new Int32(9))));
    assert.deepEqual(await found({ $or: [{ _id: { $gte: 'S1', $lt: 'S2' } }, { n: 0 }] }), [...new Set([...expected(within('S1', 'S2')), 0])].sort((a, b) => compareBson(ids[a], ids[b])));
  });
});

test('after inserts, deletes, reinserts and updates, _id ranges see exactly the current documents', { timeout: 60_000 }, async () => {
  const coll = target.client.db(target.dbName('id_index')).collection<AnyDoc>('churn');
  const key = (i: number) => (i % 3 === 0 ? i : i % 3 === 1 ? `k${String(i).padStart(5, '0')}` : ObjectId.createFromTime(1_700_000_000 + i));
  const all = Array.from({ length: 3000 }, (_, i) => i);
  const shuffled = [...all].sort((a, b) => ((a * 7919) % 3001) - ((b * 7919) % 3001));
  for (let i = 0; i < shuffled.length; i += 500) await coll.insertMany(shuffled.slice(i, i + 500).map((i) => ({ _id: key(i), i, v: 0 })) as AnyDoc[]);
  const gone = all.filter((i) => i % 7 === 0);
  await coll.deleteMany({ i: { $in: gone } });
  // Reinserted with another numeric type (same _id value), and updated in place.
  const back = gone.filter((i) => i % 3 === 0 && i % 2 === 0);
  await coll.insertMany(back.map((i) => ({ _id: new Long(i), i, v: 1 })) as unknown as AnyDoc[]);
  await coll.updateMany({ i: { $mod: [5, 0] } }, { $inc: { v: 10 } });
  const live = new Set(all.filter((i) => i % 7 !== 0 || back.includes(i)));
  const check = async (filter: Document, pred: (i: number) => boolean) => {
    const got = (await coll.find(filter).toArray()).map((d) => Number(d.i)).sort((a, b) => a - b);
    const scanned = (await coll.find(filter).hint({ $natural: 1 }).toArray()).map((d) => Number(d.i)).sort((a, b) => a - b);
    assert.deepEqual(got, scanned, `${show(filter)}: the same as a collection scan`);
    assert.deepEqual(got, all.filter((i) => live.has(i) && pred(i)), show(filter));
  };
  await check({ _id: { $gte: 300, $lt: 2100 } }, (i) => i % 3 === 0 && i >= 300 && i < 2100);
  await check({ _id: { $gte: 'k00100', $lt: 'k02500' } }, (i) => i % 3 === 1 && i >= 100 && i < 2500);
  await check({ _id: { $gt: ObjectId.createFromTime(1_700_001_000) } }, (i) => i % 3 === 2 && i > 1000);
  await check({ _id: { $gte: 0, $ne: NaN }, v: { $gte: 10 } }, (i) => i % 3 === 0 && i % 5 === 0);
  assert.equal(await coll.countDocuments({ _id: { $type: 'string' } }), all.filter((i) => i % 3 === 1 && live.has(i)).length);
});
