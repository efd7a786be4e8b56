// Conformance: server behaviours the emulator gained for MongoDB's unified spec tests (test/spec),
// each as MongoDB 7.0 documents it; these run unchanged against a real replica set (MONGODB_URI).
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoServerError, type Db, type Document, type MongoClient } from 'mongodb';
import { nextEvents, onProfile, openTarget, started, type AnyDoc, type Target } from './target.js';

let target: Target;
let db: Db;

before(async () => {
  target = await openTarget({ profile: 'mongodb-7.0' });
  db = target.client.db(target.dbName('specb'));
});
afterEach(async () => {
  for (const name of ['failCommand', 'onPrimaryTransactionalWrite']) {
    await target.client.db('admin').command({ configureFailPoint: name, mode: 'off' });
  }
});
after(async () => target.close());

const ci = { locale: 'en_US', strength: 2 };

describe('collation (https://www.mongodb.com/docs/manual/reference/collation/)', () => {
  test('strength 2 ignores case in find, count, distinct, sort, update and delete; simple collation does not', async () => {
    const coll = db.collection<AnyDoc>('coll_ci');
    await coll.insertMany([
      { _id: 1, x: 'ping' },
      { _id: 2, x: 'PING' },
      { _id: 3, x: 'pong' },
      { _id: 4, x: 'b' },
      { _id: 5, x: 'A' },
    ]);
    assert.deepEqual((await coll.find({ x: 'Ping' }, { collation: ci }).toArray()).map((d) => d._id), [1, 2]);
    assert.deepEqual(await coll.find({ x: 'Ping' }).toArray(), []);
    assert.equal(await coll.countDocuments({ x: 'PING' }, { collation: ci }), 2);
    assert.equal((await coll.distinct('x', { x: { $in: ['ping', 'PONG'] } }, { collation: ci })).length, 2);
    const sorted = await coll.find({ _id: { $in: [4, 5] } }, { collation: ci, sort: { x: 1 } }).toArray();
    assert.deepEqual(sorted.map((d) => d._id), [5, 4], "'A' before 'b' under en_US");
    assert.deepEqual((await coll.find({ _id: { $in: [4, 5] } }, { sort: { x: 1 } }).toArray()).map((d) => d._id), [5, 4]);
    const u = await coll.updateMany({ x: 'ping' }, { $set: { y: 1 } }, { collation: ci });
    assert.equal(u.matchedCount, 2);
    const d = await coll.deleteOne({ x: 'PONG' }, { collation: ci });
    assert.equal(d.deletedCount, 1);
    assert.equal((await coll.aggregate([{ $match: { x: 'PiNg' } }], { collation: ci }).toArray()).length, 2);
  });
});

describe('writes', () => {
  test('an _id with a $-prefixed field is refused (https://www.mongodb.com/docs/manual/core/dot-dollar-considerations/)', async () => {
    const coll = db.collection<AnyDoc>('dollar_id');
    await assert.rejects(coll.insertOne({ _id: { $a: 1 } as unknown as number }), MongoServerError);
    assert.equal(await coll.countDocuments(), 0);
  });

  test('a pipeline update whose output drops _id keeps the document _id', async () => {
    const coll = db.collection<AnyDoc>('pipeline_id');
    await coll.insertOne({ _id: 1, t: { u: 1 } });
    await coll.updateOne({ _id: 1 }, [{ $replaceRoot: { newRoot: '$t' } }, { $addFields: { foo: 1 } }]);
    assert.deepEqual(await coll.findOne({ _id: 1 }), { _id: 1, u: 1, foo: 1 });
  });

  test('let variables reach $expr filters and pipeline updates', async () => {
    const coll = db.collection<AnyDoc>('let_vars');
    await coll.insertMany([{ _id: 1 }, { _id: 2 }]);
    const r = await coll.updateOne({ $expr: { $eq: ['$_id', '$$id'] } }, [{ $set: { x: '$$x' } }], { let: { id: 2, x: 'foo' } });
    assert.equal(r.modifiedCount, 1);
    assert.deepEqual(await coll.find({ $expr: { $eq: ['$x', '$$v'] } }, { let: { v: 'foo' } }).toArray(), [{ _id: 2, x: 'foo' }]);
  });

  test('an update statement with sort is an unknown field before 8.0 (https://www.mongodb.com/docs/manual/reference/command/update/)', { skip: onProfile('mongodb-7.0') }, async () => {
    const coll = db.collection<AnyDoc>('update_sort');
    await coll.insertOne({ _id: 1 });
    const reply = await db.command({ update: 'update_sort', updates: [{ q: {}, u: { $set: { x: 1 } }, sort: { _id: -1 } }] }).catch((e: MongoServerError) => e);
    const errors = reply instanceof MongoServerError ? [reply] : ((reply as Document).writeErrors as Document[] | undefined) ?? [];
    assert.ok(errors.length === 1, `expected a refusal, got ${JSON.stringify(reply)}`);
    assert.deepEqual(await coll.findOne({ _id: 1 }), { _id: 1 });
  });
});

describe('aggregation', () => {
  test('$merge: into, on _id, whenMatched merge/replace/keepExisting/fail, whenNotMatched insert/discard (https://www.mongodb.com/docs/manual/reference/operator/aggregation/merge/)', async () => {
    const src = db.collection<AnyDoc>('merge_src');
    const dst = db.collection<AnyDoc>('merge_dst');
    await src.insertMany([
      { _id: 1, a: 1 },
      { _id: 2, a: 2 },
    ]);
    await dst.insertOne({ _id: 1, b: 1 });
    await src.aggregate([{ $merge: { into: 'merge_dst' } }]).toArray();
    assert.deepEqual(await dst.find().sort({ _id: 1 }).toArray(), [
      { _id: 1, b: 1, a: 1 },
      { _id: 2, a: 2 },
    ]);
    await src.aggregate([{ $set: { c: 3 } }, { $merge: { into: 'merge_dst', whenMatched: 'replace', whenNotMatched: 'discard' } }]).toArray();
    assert.deepEqual(await dst.findOne({ _id: 1 }), { _id: 1, a: 1, c: 3 });
    await src.aggregate([{ $set: { d: 4 } }, { $merge: { into: 'merge_dst', whenMatched: 'keepExisting' } }]).toArray();
    assert.deepEqual(await dst.findOne({ _id: 2 }), { _id: 2, a: 2, c: 3 });
    await assert.rejects(src.aggregate([{ $merge: { into: 'merge_dst', whenMatched: 'fail' } }]).toArray(), (e: MongoServerError) => e.code === 11000);
  });

  test('$out and $merge refuse readConcern linearizable (https://www.mongodb.com/docs/manual/reference/read-concern-linearizable/)', async () => {
    const coll = db.collection<AnyDoc>('linear', { readConcern: { level: 'linearizable' } });
    await assert.rejects(coll.aggregate([{ $out: 'linear_out' }]).toArray(), MongoServerError);
  });

  test('let values are expressions evaluated once ($literal keeps a $ string)', async () => {
    const coll = db.collection<AnyDoc>('let_expr');
    await coll.insertOne({ _id: 1 });
    const out = await coll.aggregate([{ $project: { _id: 0, y: '$$y', r: '$$r' } }], { let: { y: { $literal: '$bar' }, r: { $rand: {} } } }).toArray();
    assert.equal(out[0].y, '$bar');
    assert.equal(typeof out[0].r, 'number');
  });

  test('$listLocalSessions lists the sessions the server has seen (https://www.mongodb.com/docs/manual/reference/operator/aggregation/listLocalSessions/)', async () => {
    await db.command({ ping: 1 });
    const sessions = await target.client.db('admin').aggregate([{ $listLocalSessions: {} }, { $limit: 1 }]).toArray();
    assert.equal(sessions.length, 1);
    assert.ok(sessions[0]._id.id, 'a session id');
  });
});

describe('schema validation (https://www.mongodb.com/docs/manual/core/schema-validation/)', () => {
  test('a query validator refuses writes with 121 and errInfo unless bypassDocumentValidation; moderate skips invalid documents', async () => {
    await db.createCollection('validated', { validator: { x: { $type: 'string' } } });
    const coll = db.collection<AnyDoc>('validated');
    await coll.insertOne({ _id: 1, x: 'ok' });
    await assert.rejects(coll.insertOne({ _id: 2, x: 1 }), (e: MongoServerError) => e.code === 121);
    await assert.rejects(coll.findOneAndUpdate({ _id: 1 }, { $set: { x: 1 } }), (e: MongoServerError) => e.code === 121 && e.errInfo?.failingDocumentId === 1);
    await coll.insertOne({ _id: 3, x: 3 }, { bypassDocumentValidation: true });
    await db.command({ collMod: 'validated', validationLevel: 'moderate' });
    await coll.updateOne({ _id: 3 }, { $set: { y: 1 } });
    assert.deepEqual(await coll.findOne({ _id: 3 }), { _id: 3, x: 3, y: 1 });
    await assert.rejects(coll.updateOne({ _id: 1 }, { $set: { x: 2 } }), (e: MongoServerError) => e.code === 121);
  });
});

describe('retryable writes', () => {
  test('onPrimaryTransactionalWrite: a statement committed before the connection closed is not applied twice by the retry', async () => {
    const coll = db.collection<AnyDoc>('txn_write');
    await coll.insertOne({ _id: 1, n: 0 });
    await target.client.db('admin').command({ configureFailPoint: 'onPrimaryTransactionalWrite', mode: { skip: 1 } });
    // Two statements in one command: the first commits, the second commits and the connection
    // closes; the driver retries the command and the server returns both recorded results.
    const r = await coll.bulkWrite([{ updateOne: { filter: { _id: 1 }, update: { $inc: { n: 1 } } } }, { updateOne: { filter: { _id: 1 }, update: { $inc: { n: 10 } } } }]);
    assert.equal(r.modifiedCount, 2);
    assert.deepEqual(await coll.findOne({ _id: 1 }), { _id: 1, n: 11 });
  });

  test('onPrimaryTransactionalWrite with failBeforeCommitExceptionCode: the first attempt is not committed, the retry is', async () => {
    const coll = db.collection<AnyDoc>('txn_nocommit');
    await target.client.db('admin').command({ configureFailPoint: 'onPrimaryTransactionalWrite', mode: { times: 1 }, data: { failBeforeCommitExceptionCode: 1 } });
    await coll.insertOne({ _id: 1 });
    assert.equal(await coll.countDocuments(), 1);
  });
});

describe('change streams', () => {
  test('pre- and post-images exist only with changeStreamPreAndPostImages enabled (https://www.mongodb.com/docs/manual/changeStreams/#change-streams-with-document-pre--and-post-images)', async () => {
    await db.createCollection('images');
    const coll = db.collection<AnyDoc>('images');
    await coll.insertOne({ _id: 1, v: 0 });
    const opts = { fullDocument: 'whenAvailable', fullDocumentBeforeChange: 'whenAvailable', maxAwaitTimeMS: 100 } as const;
    const off = await started(coll.watch([], opts));
    await coll.updateOne({ _id: 1 }, { $set: { v: 1 } });
    const [a] = (await nextEvents(off, 1)) as Document[];
    assert.equal(a.fullDocument, null);
    assert.equal(a.fullDocumentBeforeChange, null);
    await off.close();
    const required = await started(coll.watch([], { fullDocumentBeforeChange: 'required', maxAwaitTimeMS: 100 }));
    await coll.updateOne({ _id: 1 }, { $set: { v: 2 } });
    await assert.rejects(nextEvents(required, 1), MongoServerError);
    await required.close();
    await db.command({ collMod: 'images', changeStreamPreAndPostImages: { enabled: true } });
    const on = await started(coll.watch([], opts));
    await coll.updateOne({ _id: 1 }, { $set: { v: 3 } });
    const [b] = (await nextEvents(on, 1)) as Document[];
    assert.deepEqual(b.fullDocument, { _id: 1, v: 3 });
    assert.deepEqual(b.fullDocumentBeforeChange, { _id: 1, v: 2 });
    await on.close();
  });

  test('showExpandedEvents: disambiguatedPaths, rename operationDescription, modify on a bare collMod', async () => {
    const coll = db.collection<AnyDoc>('expanded');
    await coll.insertOne({ _id: 1, a: [{ '1': 0 }], m: { '0': 'x' } });
    await db.createCollection('expanded_target');
    const target2 = await db.collection('expanded_target').options();
    assert.ok(target2);
    const stream = await started(coll.watch([], { showExpandedEvents: true, maxAwaitTimeMS: 100 }));
    await coll.updateOne({ _id: 1 }, { $set: { 'a.0.1': 2, 'm.0': 'y' } });
    await db.command({ collMod: 'expanded' });
    await coll.rename('expanded_target', { dropTarget: true });
    const [upd, modify, rename] = (await nextEvents(stream, 3)) as Document[];
    // Array indices are int32 (promoted to numbers by the driver), field names strings.
    assert.deepEqual(upd.updateDescription.disambiguatedPaths, { 'a.0.1': ['a', 0, '1'], 'm.0': ['m', '0'] });
    assert.equal(modify.operationType, 'modify');
    assert.equal(rename.operationType, 'rename');
    assert.deepEqual(rename.operationDescription.to, { db: db.databaseName, coll: 'expanded_target' });
    assert.ok(rename.operationDescription.dropTarget, 'the UUID of the replaced collection');
    await stream.close();
  });

  test('an unknown stage is 40324; projecting out _id fails with 280 labelled NonResumableChangeStreamError', async () => {
    const coll = db.collection<AnyDoc>('stages');
    await assert.rejects(started(coll.watch([{ $unsupported: 1 }])), (e: MongoServerError) => e.code === 40324);
    const stream = await started(coll.watch([{ $project: { _id: 0 } }], { maxAwaitTimeMS: 100 }));
    await coll.insertOne({ _id: 1 });
    await assert.rejects(nextEvents(stream, 1), (e: MongoServerError) => e.code === 280 && e.hasErrorLabel('NonResumableChangeStreamError'));
    await stream.close().catch(() => undefined);
  });
});

describe('mongodb-4.4: no let, no $-prefixed field names (both new in 5.0)', { skip: onProfile('mongodb-4.4') }, () => {
  let t44: Target;
  let db44: Db;
  before(async () => {
    t44 = await openTarget({ profile: 'mongodb-4.4' });
    db44 = t44.client.db(t44.dbName('specb44'));
  });
  after(async () => t44?.close());

  test('let is an unknown field (https://www.mongodb.com/docs/manual/reference/command/find/)', async () => {
    const coll = db44.collection<AnyDoc>('let44');
    await coll.insertOne({ _id: 1 });
    await assert.rejects(coll.find({ _id: 1 }, { let: { x: 1 } }).toArray(), (e: MongoServerError) => /unrecognized field 'let'/i.test(e.message));
    await assert.rejects(coll.updateOne({ _id: 1 }, { $set: { y: 1 } }, { let: { x: 1 } }), (e: MongoServerError) => /'update.let' is an unknown field/.test(e.message));
  });

  test('$-prefixed field names are refused at the top level of inserts and anywhere in replacements (https://www.mongodb.com/docs/manual/core/dot-dollar-considerations/)', async () => {
    const coll = db44.collection<AnyDoc>('dollars44');
    await assert.rejects(coll.insertOne({ _id: 1, $a: 1 }), MongoServerError);
    await coll.insertOne({ _id: 2, a: { $b: 1 } });
    await assert.rejects(coll.replaceOne({ _id: 2 }, { a: { $c: 1 } }), MongoServerError);
    assert.deepEqual(await coll.find().toArray(), [{ _id: 2, a: { $b: 1 } }]);
  });
});

describe('mongodb-8.0: the bulkWrite command (https://www.mongodb.com/docs/manual/reference/command/bulkWrite/)', { skip: onProfile('mongodb-8.0') }, () => {
  let t80: Target;
  before(async () => {
    t80 = await openTarget({ profile: 'mongodb-8.0' });
  });
  after(async () => t80?.close());

  test('MongoClient.bulkWrite writes across namespaces and reports per-operation results and errors', async () => {
    const dbName = t80.dbName('bw80');
    const a = `${dbName}.a`;
    const b = `${dbName}.b`;
    // Namespaces are computed, so the models are cast past the driver's namespace typing.
    type Models = Parameters<MongoClient['bulkWrite']>[0];
    const r = await t80.client.bulkWrite(
      [
        { name: 'insertOne', namespace: a, document: { _id: 1, x: 1 } },
        { name: 'insertOne', namespace: b, document: { _id: 1, y: 1 } },
        { name: 'updateOne', namespace: a, filter: { _id: 1 }, update: { $inc: { x: 1 } } },
        { name: 'updateOne', namespace: b, filter: { _id: 2 }, update: { $set: { y: 2 } }, upsert: true },
        { name: 'deleteOne', namespace: b, filter: { _id: 1 } },
      ] as unknown as Models,
      { verboseResults: true },
    );
    assert.deepEqual([r.insertedCount, r.matchedCount, r.modifiedCount, r.upsertedCount, r.deletedCount], [2, 1, 1, 1, 1]);
    assert.equal(r.updateResults?.get(3)?.upsertedId, 2);
    assert.deepEqual(await t80.client.db(dbName).collection('a').find().toArray(), [{ _id: 1, x: 2 }]);
    assert.deepEqual(await t80.client.db(dbName).collection('b').find().toArray(), [{ _id: 2, y: 2 }]);
    await assert.rejects(t80.client.bulkWrite([{ name: 'insertOne', namespace: a, document: { _id: 1 } }] as unknown as Models), (e: Error & { writeErrors?: Map<number, { code: number }> }) => e.writeErrors?.get(0)?.code === 11000);
  });
});
