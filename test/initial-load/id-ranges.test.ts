import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Binary, BSON, Decimal128, Double, Int32, Long, MaxKey, MinKey, MongoClient, ObjectId, Timestamp, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { canBound, chooseBounds, decodeBound, encodeBound, rangeFilter, rangeQueryJson, rangesFromBounds } from '../../src/initial-load/id-ranges.js';
import { partitionCount, sampleIdBounds } from '../../src/initial-load/partition-plan.js';
import { loadScale, parseSize } from '../../src/config/size.js';
import { partitionable } from '../../src/orchestration/load-plan.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { compareBson } from '../../src/model/bson-order.js';
import { EXACT_BSON_OPTIONS } from '../../src/model/change-envelope.js';

/**
 * `_id`s of every type class an `_id` can have, several per orderable class. (Not null: a driver
 * treats a null `_id` as missing and generates one; the ranges' `$type: 'null'` clause covers it.)
 */
function mixedIds(): unknown[] {
  const ids: unknown[] = [new MinKey(), new MaxKey(), NaN];
  for (let i = 0; i < 40; i++) {
    ids.push(new Int32(i), new Long(1000 + i), new Double(i + 0.5), new Int32(-i - 1), Decimal128.fromString(`${5000 + i}.25`));
    ids.push(`s${String(i).padStart(3, '0')}`, `S${i}`, '');
    ids.push({ a: i }, { a: i, b: 'x' }, { z: { n: i } });
    ids.push(new Binary(Buffer.from([i, 1, 2]), 0), new Binary(Buffer.alloc(16, i), 4));
    ids.push(ObjectId.createFromTime(1_700_000_000 + i));
    ids.push(new Date(1_600_000_000_000 + i * 1000));
    ids.push(new Timestamp({ t: 1000 + i, i: 1 }));
  }
  ids.push(true, false, '');
  // Distinct only (an _id is unique): the same value twice would be one document.
  const out: unknown[] = [];
  for (const v of ids.sort(compareBson)) if (!out.length || compareBson(out[out.length - 1], v) !== 0 || (typeof v === 'number' && Number.isNaN(v))) out.push(v);
  return out.filter((v, i, a) => !(typeof v === 'number' && Number.isNaN(v) && a.findIndex((x) => typeof x === 'number' && Number.isNaN(x)) !== i));
}

test('sizes: binary units', () => {
  assert.equal(parseSize('4MiB'), 4 * 1024 ** 2);
  assert.equal(parseSize('1GiB'), 1024 ** 3);
  assert.equal(parseSize('64KiB'), 65536);
  assert.equal(parseSize('512mb'), 512 * 1024 ** 2);
  assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3);
  assert.equal(parseSize('lots'), undefined);
  assert.equal(partitionCount(10, 100), 1, 'small collections stay whole');
  assert.equal(partitionCount(1000, 100), 10);
  assert.equal(partitionCount(1001, 100), 11);
  assert.deepEqual(loadScale({ 'partition-size': '256MiB', 'load-parallelism': 4 }), { partitionSize: 256 * 1024 ** 2, parallelism: 4 });
  for (const bad of [{ 'partition-size': '64' }, { 'partition-size': 'big' }, { 'load-parallelism': 0 }, { 'load-parallelism': 1.5 }]) {
    assert.throws(() => loadScale(bad), (e: { exitCode?: number; message: string }) => e.exitCode === ExitCode.USAGE && /--partition-size|--load-parallelism/.test(e.message));
  }
});

test('only plain collections with the simple collation are split', () => {
  assert.equal(partitionable({ type: 'collection', options: {} }), true);
  assert.equal(partitionable({ type: 'collection', options: { collation: { locale: 'simple' } } }), true);
  assert.equal(partitionable({ type: 'collection', options: { collation: { locale: 'en', strength: 2 } } }), false, 'string _ids compare by the collation');
  assert.equal(partitionable({ type: 'collection', options: { capped: true, size: 4096 } }), false);
  assert.equal(partitionable({ type: 'timeseries', options: {} }), false);
  assert.equal(partitionable({ type: 'view', options: {} }), false);
  assert.equal(partitionable({ type: 'collection', options: { clusteredIndex: { key: { _id: 1 }, unique: true } } }), false);
});

test('a range inside one type class is a plain $gte/$lt; across classes it is a $or by class', () => {
  assert.deepEqual(rangeFilter({}), {});
  // NaN: whether $gte/$lt match it is undocumented, so a numeric lower bound excludes it explicitly.
  assert.deepEqual(rangeFilter({ lower: 5, upper: 10 }), { _id: { $gte: 5, $lt: 10, $ne: NaN } });
  assert.deepEqual(rangeFilter({ lower: 'a', upper: 'b' }), { _id: { $gte: 'a', $lt: 'b' } });
  const across = rangeFilter({ lower: 5, upper: new ObjectId('000000000000000000000000') });
  const or = across.$or as Document[];
  assert.deepEqual(or[0], { _id: { $gte: 5, $ne: NaN } });
  assert.deepEqual(
    or.slice(1, -1).map((c) => c._id.$type),
    ['string', 'symbol', 'object', 'binData'],
    'every class between numbers and ObjectId, whole',
  );
  assert.ok(or[or.length - 1]!._id.$lt instanceof ObjectId);
  // The first range reaches down to MinKey, and holds NaN (it starts below the numbers and ends inside them).
  const first = rangeFilter({ upper: 7 }).$or as Document[];
  assert.deepEqual(first.map((c) => Object.keys(c._id ?? {})[0] ?? 'eq'), ['$type', '$type', '$lt', 'eq']);
  assert.ok(Number.isNaN(first[3]!._id));
  // The last reaches up to MaxKey.
  const last = rangeFilter({ lower: true }).$or as Document[];
  assert.deepEqual(last.slice(1).map((c) => c._id.$type), ['date', 'timestamp', 'regex', 'javascript', 'javascriptWithScope', 'maxKey']);
  assert.throws(() => rangeFilter({ lower: 10, upper: 5 }), /inverted/);
  assert.throws(() => rangeFilter({ lower: null }), /not a range bound/);
});

test('bounds: sorted in BSON order, distinct, never a single-valued class or NaN; bounds round-trip through canonical Extended JSON', () => {
  const ids = mixedIds();
  const shuffled = [...ids].sort(() => Math.random() - 0.5);
  const bounds = chooseBounds(shuffled, 12);
  assert.ok(bounds.length >= 8 && bounds.length <= 11, `bounds: ${bounds.length}`);
  for (let i = 1; i < bounds.length; i++) assert.ok(compareBson(bounds[i - 1], bounds[i]) < 0, 'strictly increasing');
  assert.ok(bounds.every(canBound));
  for (const b of [...bounds, new Long('9007199254740993'), new Int32(3), new Double(3), Decimal128.fromString('1.10'), new Binary(Buffer.alloc(16, 7), 4), new Timestamp({ t: 1, i: 2 })]) {
    const back = decodeBound(encodeBound(b));
    assert.equal(compareBson(back, b), 0);
    // Same BSON type (a subtype-4 binary comes back as the driver's UUID, a Binary subclass).
    const bsonType = (v: unknown) => (v as { _bsontype?: string })?._bsontype ?? typeof v;
    assert.equal(bsonType(back), bsonType(b), `${encodeBound(b)} keeps its type`);
  }
  // mongodump reads the query as canonical Extended JSON: types are explicit.
  assert.match(rangeQueryJson({ lower: new Int32(3), upper: new Long(9) }), /"\$numberInt":"3".*"\$numberLong":"9"/);
  assert.equal(rangesFromBounds([]).length, 1);
  assert.deepEqual(rangesFromBounds([1, 2]), [{ upper: 1 }, { lower: 1, upper: 2 }, { lower: 2 }]);
});

describe('ranges on a server: every document in exactly one range', () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  before(async () => {
    emu = await startMongoEmulator();
    client = new MongoClient(emu.uri);
  });
  after(async () => {
    await client.close();
    await emu.stop();
  });

  test('mixed _id types (MinKey, null, NaN, numbers of every type, strings, documents, binData, ObjectId, bool, Date, Timestamp, MaxKey)', { timeout: 60_000 }, async () => {
    const coll = client.db('ranges').collection<Document>('mixed');
    const ids = mixedIds();
    await coll.insertMany(ids.map((_id, n) => ({ _id, n })) as Document[]);
    assert.equal(await coll.countDocuments(), ids.length);
    for (const parts of [2, 5, 17]) {
      // Bounds from the server's $sample, as the load computes them.
      const bounds = await sampleIdBounds(client, 'ranges', 'mixed', parts, ids.length);
      assert.ok(bounds.length >= 1, `${parts} parts: some bounds`);
      const seen = new Map<number, number>();
      for (const range of rangesFromBounds(bounds)) {
        // The filter exactly as mongodump gets it (canonical Extended JSON), parsed back.
        const filter = BSON.EJSON.parse(rangeQueryJson(range), { relaxed: false }) as Document;
        for (const d of await coll.find(filter, { ...EXACT_BSON_OPTIONS }).toArray()) {
          const n = Number((d.n as { valueOf(): number }).valueOf());
          seen.set(n, (seen.get(n) ?? 0) + 1);
        }
      }
      const missing = ids.filter((_, n) => !seen.has(n));
      const twice = [...seen].filter(([, c]) => c > 1).map(([n]) => ids[n]);
      assert.deepEqual(missing.map((m) => BSON.EJSON.stringify({ m } as Document)), [], `${parts} parts: no document left out (bounds ${BSON.EJSON.stringify({ bounds } as Document)})`);
      assert.deepEqual(twice, [], `${parts} parts: no document in two ranges`);
      assert.equal(seen.size, ids.length);
    }
    // The same filter removes exactly its range (a reload's deleteMany), and nothing else.
    const bounds = await sampleIdBounds(client, 'ranges', 'mixed', 5, ids.length);
    const ranges = rangesFromBounds(bounds);
    const mid = ranges[Math.floor(ranges.length / 2)]!;
    const inRange = await coll.countDocuments(rangeFilter(mid));
    const { deletedCount } = await coll.deleteMany(rangeFilter(mid));
    assert.equal(deletedCount, inRange);
    assert.equal(await coll.countDocuments(), ids.length - inRange);
  });
});
