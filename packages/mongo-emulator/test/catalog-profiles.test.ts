// Conformance: catalog behaviours the migrator meets on real sources, as documented (pages cited
// next to the emulator code): time-series collections (5.0+) listed as 'timeseries' and refusing
// change streams, views listed as 'view' and queryable, TTL indexes expiring documents (deletes
// that change streams report) and collMod changing expireAfterSeconds; $bsonSize (4.4+, not DocumentDB).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BSON, MongoClient, MongoServerError, type Document } from 'mongodb';
import { nextEvents, onProfile, openTarget, started, type AnyDoc } from './target.js';
import { waitUntil } from '../../../test/support/wait.js';

for (const profile of ['mongodb-5.0', 'mongodb-7.0'] as const) {
  test(`${profile}: a time-series collection is listed as 'timeseries', is queryable, and refuses change streams; its writes are not in database streams`, { skip: onProfile(profile) }, async () => {
    const t = await openTarget({ profile });
    try {
      const db = t.client.db(t.dbName('ts'));
      await db.createCollection('weather', { timeseries: { timeField: 'ts', metaField: 'm' } });
      const [info] = (await db.listCollections({ name: 'weather' }).toArray()) as Document[];
      assert.equal(info?.type, 'timeseries');
      assert.equal((info?.options as Document).timeseries.timeField, 'ts');
      assert.equal((info?.options as Document).timeseries.granularity, 'seconds');
      await assert.rejects(started(db.collection('weather').watch([], { maxAwaitTimeMS: 100 })), MongoServerError);
      const stream = await started(db.watch([], { maxAwaitTimeMS: 100 }));
      await db.collection('weather').insertOne({ ts: new Date(), m: 'a', temp: 20 });
      await db.collection<AnyDoc>('plain').insertOne({ _id: 1 });
      const [ev] = (await nextEvents(stream, 1)) as unknown as Document[];
      assert.deepEqual(ev!.ns, { db: db.databaseName, coll: 'plain' }, 'the time-series insert is not reported');
      await stream.close();
      assert.equal(await db.collection('weather').countDocuments({ m: 'a' }), 1);
    } finally {
      await t.close();
    }
  });
}

test('mongodb-4.4: there are no time-series collections', { skip: onProfile('mongodb-4.4') }, async () => {
  const t = await openTarget({ profile: 'mongodb-4.4' });
  try {
    await assert.rejects(t.client.db(t.dbName('ts44')).createCollection('weather', { timeseries: { timeField: 'ts' } }), MongoServerError);
  } finally {
    await t.close();
  }
});

test('mongodb-7.0: a view is listed as type view, answers queries through its pipeline, and refuses change streams', { skip: onProfile('mongodb-7.0') }, async () => {
  const t = await openTarget({ profile: 'mongodb-7.0' });
  try {
    const db = t.client.db(t.dbName('views'));
    await db.collection<AnyDoc>('src').insertMany([{ _id: 1, a: 1 }, { _id: 2, a: 2 }]);
    await db.createCollection('v', { viewOn: 'src', pipeline: [{ $match: { a: 1 } }] });
    const [info] = await db.listCollections({ name: 'v' }).toArray();
    assert.equal(info?.type, 'view');
    assert.deepEqual(await db.collection('v').find({}).toArray(), [{ _id: 1, a: 1 }]);
    await assert.rejects(started(db.collection('v').watch([], { maxAwaitTimeMS: 100 })), MongoServerError);
  } finally {
    await t.close();
  }
});

test('mongodb-7.0: a TTL index expires documents (deletes in the change stream); collMod changes expireAfterSeconds', { skip: onProfile('mongodb-7.0'), timeout: 300_000 }, async () => {
  // The emulator's monitor runs every second here; a real server's every 60 s (ttlMonitorSleepSecs).
  const t = await openTarget({ profile: 'mongodb-7.0', ttlMonitorSleepSecs: 1 });
  try {
    const db = t.client.db(t.dbName('ttl'));
    const coll = db.collection<AnyDoc>('sessions');
    await coll.createIndex({ at: 1 }, { expireAfterSeconds: 0 });
    await coll.createIndex({ seen: 1 }, { expireAfterSeconds: 3600 });
    const stream = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
    const old = new Date(Date.now() - 60_000);
    await coll.insertMany([
      { _id: 1, at: old },
      { _id: 2, at: 'not a date' },
      { _id: 3 },
      { _id: 4, at: [new Date(Date.now() + 3_600_000), old] }, // the earliest date counts
      { _id: 5, seen: old },
    ]);
    await waitUntil(async () => (await coll.countDocuments({ _id: { $in: [1, 4] } })) === 0, 150_000, 'the TTL monitor to remove expired documents', 200);
    const events = (await nextEvents(stream, 7, 10_000)) as unknown as Document[];
    const deletes = events.filter((e) => e.operationType === 'delete').map((e) => e.documentKey._id).sort();
    assert.deepEqual(deletes, [1, 4]);
    assert.deepEqual((await coll.find({}, { sort: { _id: 1 } }).toArray()).map((d) => d._id), [2, 3, 5]);
    const reply = await db.command({ collMod: 'sessions', index: { keyPattern: { seen: 1 }, expireAfterSeconds: 10 } });
    assert.equal(reply.expireAfterSeconds_old, 3600);
    assert.equal(reply.expireAfterSeconds_new, 10);
    const [seenIndex] = (await coll.listIndexes().toArray()).filter((i) => i.name === 'seen_1');
    assert.equal(seenIndex?.expireAfterSeconds, 10);
    await waitUntil(async () => (await coll.countDocuments({ _id: 5 })) === 0, 150_000, 'the shortened TTL to expire _id 5', 200);
    await stream.close();
  } finally {
    await t.close();
  }
});

// $bsonSize (new in 4.4: https://www.mongodb.com/docs/manual/reference/operator/aggregation/bsonSize/):
// the compatibility doctor (src/orchestration/target-compat.ts) finds documents over a target's size limit with it.
for (const profile of ['mongodb-4.4', 'mongodb-7.0'] as const) {
  test(`${profile}: $bsonSize gives a document's BSON size, null for a missing value, and filters in $expr`, { skip: onProfile(profile) }, async () => {
    const t = await openTarget({ profile });
    try {
      const coll = t.client.db(t.dbName('bsonsize')).collection<AnyDoc>('c');
      const docs: AnyDoc[] = [
        { _id: 1, n: 1, d: 1.5, s: 'x'.repeat(100), sub: { a: [1, 2, { b: 'c' }] }, at: new Date(0) },
        { _id: 2, s: 'y'.repeat(5000) },
      ];
      await coll.insertMany(docs);
      const sizes = await coll.aggregate([{ $project: { size: { $bsonSize: '$$ROOT' }, none: { $bsonSize: '$missing' } } }, { $sort: { _id: 1 } }]).toArray();
      assert.deepEqual(sizes, docs.map((d) => ({ _id: d._id, size: BSON.calculateObjectSize(d), none: null })));
      const big = await coll.aggregate([{ $match: { $expr: { $gte: [{ $bsonSize: '$$ROOT' }, 1000] } } }, { $project: { _id: 1 } }]).toArray();
      assert.deepEqual(big, [{ _id: 2 }]);
    } finally {
      await t.close();
    }
  });
}

test('documentdb-5.0: $bsonSize is not an operator (not in AWS\'s supported-API list)', { skip: onProfile('documentdb-5.0') }, async () => {
  const t = await openTarget({ profile: 'documentdb-5.0' });
  const client = new MongoClient(t.uri, { retryWrites: false }); // DocumentDB refuses retryable writes
  try {
    const coll = client.db(t.dbName('bsonsize')).collection<AnyDoc>('c');
    await coll.insertOne({ _id: 1 });
    await assert.rejects(coll.aggregate([{ $project: { size: { $bsonSize: '$$ROOT' } } }]).toArray());
  } finally {
    await client.close();
    await t.close();
  }
});
