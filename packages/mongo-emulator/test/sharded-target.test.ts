// Conformance: a mongos in front of sharded collections, as documented (pages cited in
// packages/mongo-emulator/src/sharding.ts): hello says isdbgrid, shard keys are read from
// config.collections, and single-document writes must be targetable (full shard key or _id;
// upserts the full shard key, else ShardKeyNotFound 61); a shard key value changes only as a
// retryable write with the full shard key in the filter; a dropped sharded collection comes
// back unsharded. Runs on the emulator in sharded mode with the mongodb-6.0 profile (7.0 relaxed
// some targeting rules for updateOne/deleteOne/findAndModify; the emulator keeps the stricter
// rule on every profile, so the rejections are asserted where every version documents them), or
// on a real 6.0 mongos with MONGODB_URI=… MONGODB_PROFILE=mongodb-6.0 MONGODB_SHARDED=1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoBulkWriteError, MongoClient, MongoServerError, type Db, type Document } from 'mongodb';
import { startMongoEmulator } from '../src/index.js';
import { REAL_SERVER_URI, onProfile, openTarget, type AnyDoc, type Target } from './target.js';

const skip = REAL_SERVER_URI && process.env.MONGODB_SHARDED !== '1' ? 'needs a mongos (MONGODB_SHARDED=1)' : onProfile('mongodb-6.0');
const codeOf = (err: unknown): unknown => {
  if (err instanceof MongoBulkWriteError) {
    const w = err.writeErrors;
    return (Array.isArray(w) ? w[0] : w)?.code ?? err.code;
  }
  return (err as MongoServerError).code;
};

describe('sharded target (mongos)', { skip }, () => {
  let t: Target;
  let db: Db;
  let noRetry: MongoClient;

  before(async () => {
    t = await openTarget({ shardKeys: {}, profile: 'mongodb-6.0' });
    db = t.client.db(t.dbName('sh'));
    noRetry = new MongoClient(t.uri, { retryWrites: false });
    await t.client.db('admin').command({ enableSharding: db.databaseName }).catch(() => undefined);
    await t.client.db('admin').command({ shardCollection: `${db.databaseName}.orders`, key: { region: 1 } });
  });
  after(async () => {
    await noRetry.close();
    await t.close();
  });

  test('hello answers as a mongos; the shard key is in config.collections', async () => {
    const hello = await t.client.db('admin').command({ hello: 1 });
    assert.equal(hello.msg, 'isdbgrid');
    assert.equal(hello.setName, undefined);
    const meta = await t.client.db('config').collection('collections').findOne({ _id: `${db.databaseName}.orders` as never });
    assert.deepEqual(meta?.key, { region: 1 });
    const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    assert.ok(names.includes('orders'), 'shardCollection created the collection');
  });

  test('single-document writes must be targetable: the full shard key or _id; upserts the full shard key', async () => {
    const orders = db.collection<AnyDoc>('orders');
    await orders.insertMany([
      { _id: 1, region: 'eu', n: 1 },
      { _id: 2, region: 'us', n: 1 },
      { _id: 3, n: 1 }, // a document may lack the shard key (4.4+)
    ]);
    await assert.rejects(orders.replaceOne({ _id: 1 }, { region: 'eu', n: 2 }, { upsert: true }), (err) => codeOf(err) === 61);
    await assert.rejects(orders.bulkWrite([{ replaceOne: { filter: { _id: 9 }, replacement: { region: 'eu' }, upsert: true } }]), (err) => codeOf(err) === 61);
    assert.equal((await orders.replaceOne({ _id: 1, region: 'eu' }, { region: 'eu', n: 2 }, { upsert: true })).modifiedCount, 1);
    assert.equal((await orders.replaceOne({ _id: 4, region: 'ap' }, { region: 'ap', n: 1 }, { upsert: true })).upsertedCount, 1);
    // A missing shard key field is matched with null.
    assert.equal((await orders.replaceOne({ _id: 3, region: null }, { n: 2 }, { upsert: true })).modifiedCount, 1);
    await assert.rejects(orders.updateOne({ n: 2 }, { $set: { m: 1 } }), MongoServerError);
    assert.equal((await orders.updateOne({ _id: 2 }, { $set: { m: 1 } })).modifiedCount, 1);
    await assert.rejects(orders.deleteOne({ n: 2 }), MongoServerError);
    assert.equal((await orders.deleteOne({ _id: 4 })).deletedCount, 1);
    await assert.rejects(orders.findOneAndUpdate({ _id: 2 }, { $set: { m: 2 } }), MongoServerError);
  });

  test('a shard key value changes only as a retryable write with the full shard key in the filter', async () => {
    const orders = db.collection<AnyDoc>('orders');
    await orders.insertOne({ _id: 10, region: 'eu' });
    await assert.rejects(orders.updateOne({ _id: 10 }, { $set: { region: 'us' } }), MongoServerError);
    await assert.rejects(noRetry.db(db.databaseName).collection<AnyDoc>('orders').updateOne({ _id: 10, region: 'eu' }, { $set: { region: 'us' } }), MongoServerError);
    assert.equal((await orders.updateOne({ _id: 10, region: 'eu' }, { $set: { region: 'us' } })).modifiedCount, 1);
  });

  test('showExpandedEvents reports shardCollection with the shard key (6.0+)', async () => {
    const stream = db.watch([], { showExpandedEvents: true, maxAwaitTimeMS: 100 });
    await stream.tryNext();
    await t.client.db('admin').command({ shardCollection: `${db.databaseName}.events`, key: { k: 1 } });
    let ev: Document | null = null;
    const end = Date.now() + 10_000;
    while (Date.now() < end && ev?.operationType !== 'shardCollection') ev = (await stream.tryNext()) as Document | null;
    assert.equal(ev?.operationType, 'shardCollection');
    assert.deepEqual(ev?.operationDescription.shardKey, { k: 1 });
    assert.deepEqual(ev?.ns, { db: db.databaseName, coll: 'events' });
    await stream.close();
  });

  test('a dropped sharded collection is gone from config.collections; recreated, it is unsharded', async () => {
    await db.collection('orders').drop();
    assert.equal(await t.client.db('config').collection('collections').countDocuments({ _id: `${db.databaseName}.orders` as never }), 0);
    await db.collection<AnyDoc>('orders').replaceOne({ _id: 1 }, { n: 1 }, { upsert: true });
  });
});

test('emulator: shardKeys at start shard the collections (a mongos uri without replicaSet)', { skip: REAL_SERVER_URI ? 'emulator option' : false }, async () => {
  const emu = await startMongoEmulator({ shardKeys: { 'bar.products': { region: 1 } }, profile: 'mongodb-4.4' });
  const client = new MongoClient(emu.uri);
  try {
    assert.ok(!emu.uri.includes('replicaSet'));
    const meta = await client.db('config').collection('collections').find({}).toArray();
    assert.deepEqual(meta.map((m) => [m._id, m.key]), [['bar.products', { region: 1 }]]);
    // 4.4 cannot rename a sharded collection.
    await assert.rejects(client.db('admin').command({ renameCollection: 'bar.products', to: 'bar.p2' }), MongoServerError);
  } finally {
    await client.close();
    await emu.stop();
  }
});
