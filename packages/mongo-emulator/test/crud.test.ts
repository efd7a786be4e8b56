// Conformance: CRUD, BSON fidelity, indexes and catalog commands through the official driver.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Binary,
  BSON,
  Double,
  Int32,
  Long,
  MongoBulkWriteError,
  MongoServerError,
  ObjectId,
  Timestamp,
  type CollectionInfo,
  type Db,
} from 'mongodb';
import { storableAllTypesDocument } from '../../../test/support/bson-samples.js';
import { openTarget, type AnyDoc, type Target } from './target.js';

let target: Target;
let db: Db;

before(async () => {
  target = await openTarget();
  db = target.client.db(target.dbName('crud'));
});
after(async () => target.close());

describe('BSON fidelity', () => {
  test('every BSON type and field order round-trips byte for byte', async () => {
    const coll = db.collection<AnyDoc>('types');
    const docs = [storableAllTypesDocument(0), storableAllTypesDocument(1)];
    await coll.insertMany(docs);
    const raw = (await coll.find({}, { raw: true, sort: { _id: 1 } }).toArray()) as unknown as Buffer[];
    assert.equal(raw.length, 2);
    for (let i = 0; i < 2; i++) assert.ok(Buffer.from(BSON.serialize(docs[i])).equals(Buffer.from(raw[i])), `doc ${i} differs`);
    const typed = await coll.findOne({ _id: docs[0]._id as ObjectId }, { promoteValues: false, promoteLongs: false, bsonRegExp: true });
    assert.ok(typed!.int32 instanceof Int32);
    assert.ok(typed!.double instanceof Double);
    assert.ok(typed!.long instanceof Long);
    assert.ok(typed!.longSmall instanceof Long);
  });

  test('queries compare numbers across types and match typed values', async () => {
    const coll = db.collection<AnyDoc>('numbers');
    await coll.insertMany([{ _id: 1, v: new Int32(5) }, { _id: 2, v: new Double(5) }, { _id: 3, v: Long.fromNumber(5) }, { _id: 4, v: new Double(5.5) }]);
    assert.deepEqual((await coll.find({ v: 5 }).toArray()).map((d) => d._id), [1, 2, 3]);
    assert.deepEqual((await coll.find({ v: { $gt: 5 } }).toArray()).map((d) => d._id), [4]);
    const date = new Date('2020-01-01');
    await coll.insertOne({ _id: 5, d: date, oid: new ObjectId('65a000000000000000000000') });
    assert.equal((await coll.findOne({ d: { $gte: date } }))?._id, 5);
    assert.equal((await coll.findOne({ oid: new ObjectId('65a000000000000000000000') }))?._id, 5);
  });

  test('update operators keep numeric types and order new fields lexicographically', async () => {
    const coll = db.collection<AnyDoc>('typed_updates');
    await coll.insertOne({ _id: 1, i: new Int32(1), l: Long.fromNumber(1), d: new Double(1.5) });
    await coll.updateOne({ _id: 1 }, { $inc: { i: new Int32(2), l: new Int32(1), d: new Int32(1) }, $set: { zz: 1, aa: 2 } });
    const doc = await coll.findOne({ _id: 1 }, { promoteValues: false, promoteLongs: false });
    assert.ok(doc!.i instanceof Int32 && doc!.i.value === 3);
    assert.ok(doc!.l instanceof Long && doc!.l.toNumber() === 2);
    assert.ok(doc!.d instanceof Double && doc!.d.value === 2.5);
    assert.deepEqual(Object.keys(doc!), ['_id', 'i', 'l', 'd', 'aa', 'zz']);
    await coll.updateOne({ _id: 1 }, { $inc: { i: new Int32(2147483647) } });
    const overflow = await coll.findOne({ _id: 1 }, { promoteValues: false, promoteLongs: false });
    assert.ok(overflow!.i instanceof Long, 'int32 overflow promotes to long');
  });
});

describe('writes', () => {
  test('insert generates ObjectId _id first; replies n / nModified / upserted', async () => {
    const coll = db.collection<AnyDoc>('writes');
    const res = await db.command({ insert: 'writes', documents: [{ a: 1 }, { b: 2, _id: 'explicit' }] });
    assert.equal(res.n, 2);
    const docs = await coll.find().toArray();
    assert.ok(docs[0]._id instanceof ObjectId);
    assert.deepEqual(Object.keys(docs[1]), ['_id', 'b']);
    const upd = await db.command({
      update: 'writes',
      updates: [
        { q: { a: 1 }, u: { $set: { a: 1 } } },
        { q: { _id: 'explicit' }, u: { $set: { b: 3 } } },
        { q: { _id: 'new' }, u: { $set: { c: 1 } }, upsert: true },
      ],
    });
    assert.equal(upd.n, 3);
    assert.equal(upd.nModified, 1);
    assert.deepEqual(upd.upserted, [{ index: 2, _id: 'new' }]);
    const del = await db.command({ delete: 'writes', deletes: [{ q: {}, limit: 1 }] });
    assert.equal(del.n, 1);
    assert.equal((await coll.deleteMany({})).deletedCount, 2);
  });

  test('update forms: replacement, upsert seeds, multi, positional, arrayFilters, pipeline', async () => {
    const coll = db.collection<AnyDoc>('update_forms');
    await coll.insertMany([
      { _id: 1, tags: ['a', 'b'], grades: [{ g: 80, n: 1 }, { g: 95, n: 2 }], k: 1 },
      { _id: 2, tags: ['b'], grades: [{ g: 70, n: 1 }], k: 1 },
    ]);
    assert.equal((await coll.updateMany({ k: 1 }, { $addToSet: { tags: 'c' } })).modifiedCount, 2);
    await coll.updateOne({ _id: 1, tags: 'b' }, { $set: { 'tags.$': 'B' } });
    await coll.updateOne({ _id: 1 }, { $inc: { 'grades.$[hi].g': 1 } }, { arrayFilters: [{ 'hi.g': { $gte: 90 } }] });
    await coll.updateOne({ _id: 2 }, { $set: { 'grades.$[].n': 9 } });
    await coll.updateOne({ _id: 2 }, [{ $set: { total: { $sum: '$grades.g' } } }]);
    assert.deepEqual(await coll.findOne({ _id: 1 }), { _id: 1, tags: ['a', 'B', 'c'], grades: [{ g: 80, n: 1 }, { g: 96, n: 2 }], k: 1 });
    assert.deepEqual(await coll.findOne({ _id: 2 }), { _id: 2, tags: ['b', 'c'], grades: [{ g: 70, n: 9 }], k: 1, total: 70 });
    await coll.replaceOne({ _id: 2 }, { replaced: true });
    assert.deepEqual(await coll.findOne({ _id: 2 }), { _id: 2, replaced: true });
    await coll.updateOne({ name: 'seed', 'x.y': 3 }, { $set: { z: 1 }, $setOnInsert: { created: true } }, { upsert: true });
    const seeded = await coll.findOne({ name: 'seed' }, { projection: { _id: 0 } });
    assert.deepEqual(seeded, { name: 'seed', x: { y: 3 }, created: true, z: 1 });
    await assert.rejects(coll.updateOne({ _id: 1 }, { $set: { _id: 5 } }), (e: MongoServerError) => e.code === 66);
    await assert.rejects(coll.updateOne({ _id: 1 }, { $inc: { tags: 1 } }), (e: MongoServerError) => e.code === 14);
  });

  test('findAndModify: new, upsert, remove, sort, fields', async () => {
    const coll = db.collection<AnyDoc>('fam');
    await coll.insertMany([{ _id: 1, v: 1 }, { _id: 2, v: 2 }]);
    const before = await coll.findOneAndUpdate({}, { $inc: { v: 10 } }, { sort: { v: -1 } });
    assert.deepEqual(before, { _id: 2, v: 2 });
    const after = await coll.findOneAndUpdate({ _id: 1 }, { $inc: { v: 10 } }, { returnDocument: 'after', projection: { v: 1, _id: 0 } });
    assert.deepEqual(after, { v: 11 });
    const ups = await coll.findOneAndUpdate({ _id: 3 }, { $set: { v: 3 } }, { upsert: true, returnDocument: 'after', includeResultMetadata: true });
    assert.deepEqual(ups.value, { _id: 3, v: 3 });
    assert.equal(ups.lastErrorObject?.updatedExisting, false);
    assert.equal(ups.lastErrorObject?.upserted, 3);
    const replaced = await coll.findOneAndReplace({ _id: 3 }, { w: 1 }, { returnDocument: 'after' });
    assert.deepEqual(replaced, { _id: 3, w: 1 });
    const removed = await coll.findOneAndDelete({}, { sort: { _id: -1 } });
    assert.deepEqual(removed, { _id: 3, w: 1 });
    assert.equal(await coll.findOneAndDelete({ _id: 99 }), null);
  });
});

describe('indexes', () => {
  test('unique indexes are enforced with E11000 and keyPattern/keyValue', async () => {
    const coll = db.collection<AnyDoc>('users');
    assert.equal(await coll.createIndex({ email: 1 }, { unique: true, partialFilterExpression: { email: { $exists: true } } }), 'email_1');
    await coll.insertOne({ _id: 1, email: 'a@x' });
    await assert.rejects(coll.insertOne({ _id: 2, email: 'a@x' }), (e: MongoServerError) => {
      assert.equal(e.code, 11000);
      assert.match(e.message, /^E11000 duplicate key error collection: \S+\.users index: email_1 dup key: \{ email: "a@x" \}$/);
      assert.deepEqual(e.keyPattern, { email: 1 });
      assert.deepEqual(e.keyValue, { email: 'a@x' });
      return true;
    });
    await assert.rejects(coll.insertOne({ _id: 1 }), (e: MongoServerError) => e.code === 11000 && /index: _id_ dup key: \{ _id: 1 \}/.test(e.message));
    await assert.rejects(coll.updateOne({ _id: 1 }, { $set: { email: 'a@x' } }).then(() => coll.insertOne({ _id: 3, email: 'b@x' })).then(() => coll.updateOne({ _id: 3 }, { $set: { email: 'a@x' } })), (e: MongoServerError) => e.code === 11000);
    await assert.rejects(coll.insertMany([{ _id: 10, email: 'c@x' }, { _id: 11, email: 'c@x' }, { _id: 12, email: 'd@x' }], { ordered: false }), (e: MongoBulkWriteError) => {
      assert.equal(e.insertedCount, 2);
      assert.deepEqual(e.writeErrors instanceof Array ? e.writeErrors.map((w) => w.index) : [(e.writeErrors as { index: number }).index], [1]);
      return true;
    });
    // numbers are equal across types for uniqueness
    await coll.createIndex({ n: 1 }, { unique: true, sparse: true });
    await coll.insertOne({ _id: 20, n: new Int32(1) });
    await assert.rejects(coll.insertOne({ _id: 21, n: new Double(1) }), (e: MongoServerError) => e.code === 11000);
    // compound
    await coll.createIndex({ a: 1, b: -1 }, { unique: true, sparse: true, name: 'ab' });
    await coll.insertOne({ _id: 30, a: 1, b: 1 });
    await coll.insertOne({ _id: 31, a: 1, b: 2 });
    await assert.rejects(coll.insertOne({ _id: 32, a: 1, b: 1 }), (e: MongoServerError) => /index: ab dup key: \{ a: 1, b: 1 \}/.test(e.message));
    // building a unique index over duplicates fails
    await assert.rejects(coll.createIndex({ a: 1 }, { unique: true, sparse: true }), (e: MongoServerError) => e.code === 11000);
    const indexes = await coll.listIndexes().toArray();
    assert.deepEqual(
      indexes.map((i) => [i.name, i.key, i.unique ?? false]),
      [['_id_', { _id: 1 }, false], ['email_1', { email: 1 }, true], ['n_1', { n: 1 }, true], ['ab', { a: 1, b: -1 }, true]],
    );
    await coll.dropIndex('ab');
    await coll.insertOne({ _id: 33, a: 1, b: 1 });
    await assert.rejects(coll.dropIndex('_id_'));
  });
});

describe('reads', () => {
  test('find with sort, skip, limit, projection, batches and getMore', async () => {
    const coll = db.collection<AnyDoc>('many');
    await coll.insertMany(Array.from({ length: 250 }, (_, i) => ({ _id: i, i: new Int32(i), mod: i % 3, pad: 'x'.repeat(10) })));
    const all = await coll.find({}, { batchSize: 7 }).toArray();
    assert.equal(all.length, 250);
    const page = await coll.find({ mod: 0 }, { sort: { i: -1 }, skip: 5, limit: 20, batchSize: 3, projection: { pad: 0 } }).toArray();
    assert.deepEqual(page.map((d) => d._id), Array.from({ length: 20 }, (_, k) => 249 - (249 % 3) - 3 * (k + 5)));
    assert.deepEqual(Object.keys(page[0]), ['_id', 'i', 'mod']);
    const multi = await coll.find({}, { sort: { mod: 1, i: -1 }, limit: 3, projection: { mod: 1 } }).toArray();
    assert.deepEqual(multi, [{ _id: 249, mod: 0 }, { _id: 246, mod: 0 }, { _id: 243, mod: 0 }]);
    const raw = await db.command({ find: 'many', filter: {}, batchSize: 2 });
    assert.equal(raw.cursor.firstBatch.length, 2);
    const more = await db.command({ getMore: raw.cursor.id, collection: 'many', batchSize: 500 });
    assert.equal(more.cursor.nextBatch.length, 248);
    assert.equal(Number(more.cursor.id), 0);
    await assert.rejects(db.command({ getMore: raw.cursor.id, collection: 'many' }), (e: MongoServerError) => e.code === 43);
    const killed = await db.command({ find: 'many', filter: {}, batchSize: 1 });
    const k = await db.command({ killCursors: 'many', cursors: [killed.cursor.id] });
    assert.equal(k.cursorsKilled.length, 1);
  });

  test('aggregate, count, distinct, countDocuments, estimatedDocumentCount', async () => {
    const coll = db.collection<AnyDoc>('agg');
    await coll.insertMany([
      { _id: 1, cat: 'a', v: 1, tags: ['x', 'y'] },
      { _id: 2, cat: 'b', v: 2, tags: ['y'] },
      { _id: 3, cat: 'a', v: 3, tags: [] },
    ]);
    const grouped = await coll.aggregate([{ $group: { _id: '$cat', total: { $sum: '$v' } } }, { $sort: { _id: 1 } }]).toArray();
    assert.deepEqual(grouped, [{ _id: 'a', total: 4 }, { _id: 'b', total: 2 }]);
    assert.equal(await coll.countDocuments({ cat: 'a' }), 2);
    assert.equal(await coll.estimatedDocumentCount(), 3);
    assert.equal((await db.command({ count: 'agg', query: { v: { $gte: 2 } } })).n, 2);
    assert.deepEqual(await coll.distinct('tags'), ['x', 'y']);
    assert.deepEqual(await coll.distinct('cat', { v: { $lt: 3 } }), ['a', 'b']);
    const looked = await coll.aggregate([{ $match: { _id: 1 } }, { $lookup: { from: 'agg', localField: 'cat', foreignField: 'cat', as: 'same' } }, { $project: { n: { $size: '$same' } } }]).toArray();
    assert.deepEqual(looked, [{ _id: 1, n: 2 }]);
  });
});

describe('catalog', () => {
  test('listDatabases, listCollections, views, rename, drop', async () => {
    const name = db.databaseName;
    await db.createCollection('plain');
    await db.createCollection('aview', { viewOn: 'agg', pipeline: [{ $match: { cat: 'a' } }] });
    const dbs = await target.client.db('admin').admin().listDatabases();
    assert.ok(dbs.databases.some((d) => d.name === name));
    const filtered = await target.client.db('admin').command({ listDatabases: 1, nameOnly: true, filter: { name } });
    assert.deepEqual(filtered.databases, [{ name }]);
    const colls = (await db.listCollections({ name: { $in: ['plain', 'aview'] } }).toArray()) as CollectionInfo[];
    const plain = colls.find((c) => c.name === 'plain')!;
    assert.equal(plain.type, 'collection');
    assert.ok(plain.info?.uuid instanceof Binary && plain.info.uuid.sub_type === 4);
    assert.deepEqual(plain.idIndex, { v: 2, key: { _id: 1 }, name: '_id_' });
    const view = colls.find((c) => c.name === 'aview')!;
    assert.equal(view.type, 'view');
    assert.deepEqual(view.options, { viewOn: 'agg', pipeline: [{ $match: { cat: 'a' } }] });
    assert.equal(await db.collection<AnyDoc>('aview').countDocuments(), 2);
    const names = await db.listCollections({}, { nameOnly: true }).toArray();
    assert.ok(names.every((c) => Object.keys(c).join() === 'name,type'));
    await db.collection<AnyDoc>('plain').insertOne({ _id: 1 });
    await db.renameCollection('plain', 'renamed');
    assert.deepEqual(await db.collection<AnyDoc>('renamed').find().toArray(), [{ _id: 1 }]);
    await db.collection<AnyDoc>('other').insertOne({ _id: 2 });
    await assert.rejects(db.renameCollection('renamed', 'other'), (e: MongoServerError) => e.code === 48);
    await db.renameCollection('renamed', 'other', { dropTarget: true });
    assert.deepEqual(await db.collection<AnyDoc>('other').find().toArray(), [{ _id: 1 }]);
    assert.equal(await db.collection<AnyDoc>('other').drop(), true);
    const stats = await db.command({ dbStats: 1 });
    assert.equal(stats.db, name);
    const collStats = await db.command({ collStats: 'agg' });
    assert.equal(collStats.count, 3);
  });

  test('server info commands and unknown commands', async () => {
    const admin = target.client.db('admin');
    const hello = await admin.command({ hello: 1 });
    assert.equal(hello.isWritablePrimary, true);
    assert.equal(typeof hello.setName, 'string');
    assert.ok(hello.maxWireVersion >= 17);
    assert.ok(hello.logicalSessionTimeoutMinutes > 0);
    const info = await admin.command({ buildInfo: 1 });
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    const fcv = await admin.command({ getParameter: 1, featureCompatibilityVersion: 1 });
    assert.ok(fcv.featureCompatibilityVersion.version);
    const ping = await admin.command({ ping: 1 });
    assert.ok(ping.operationTime instanceof Timestamp);
    assert.ok(ping.$clusterTime.clusterTime instanceof Timestamp);
    await assert.rejects(admin.command({ definitelyNotACommand: 1 }), (e: MongoServerError) => e.code === 59 && e.codeName === 'CommandNotFound');
  });
});
