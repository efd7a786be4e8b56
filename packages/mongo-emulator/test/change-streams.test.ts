// Conformance: change streams as MongoDB documents them (event shapes, update descriptions,
// resume semantics, invalidation, scopes, postBatchResumeToken).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoServerError, Timestamp, type ChangeStreamDocument, type Db, type Document, type ResumeToken } from 'mongodb';
import { nextEvents, openTarget, started, type AnyDoc, type Target } from './target.js';

let target: Target;
let db: Db;

before(async () => {
  target = await openTarget();
  db = target.client.db(target.dbName('cs'));
});
after(async () => target.close());

type Ev = ChangeStreamDocument<Document> & Document;

function summary(e: Ev): Document {
  const { _id, clusterTime, wallTime, ...rest } = e as Document;
  assert.equal(typeof _id._data, 'string');
  assert.ok(clusterTime instanceof Timestamp);
  if (e.operationType !== 'invalidate') assert.ok(wallTime instanceof Date);
  return rest;
}

describe('event shapes', () => {
  const events: Ev[] = [];

  test('insert, update ($set/$unset/$pop/$push/element set), pipeline truncation, replace, delete, drop, invalidate', async () => {
    const coll = db.collection<AnyDoc>('shapes');
    await coll.insertOne({ _id: 0, seed: true });
    const stream = await started(coll.watch([], { fullDocument: 'updateLookup', maxAwaitTimeMS: 100 }));
    const ns = { db: db.databaseName, coll: 'shapes' };
    const step = async (write: () => Promise<unknown>, expected: Document): Promise<void> => {
      await write();
      const [ev] = await nextEvents(stream, 1);
      events.push(ev as Ev);
      assert.deepEqual(summary(ev as Ev), expected);
    };
    const doc1 = { _id: 1, a: 1, b: 'gone', arr: [1, 2, 3, 4], nested: { x: 1, y: 2 }, long: 'p'.repeat(64) };
    await step(() => coll.insertOne(doc1), { operationType: 'insert', fullDocument: doc1, ns, documentKey: { _id: 1 } });

    await step(() => coll.updateOne({ _id: 1 }, { $set: { a: 2, 'nested.x': 5, added: true }, $unset: { b: '', missing: '' } }), {
      operationType: 'update',
      fullDocument: { _id: 1, a: 2, arr: [1, 2, 3, 4], nested: { x: 5, y: 2 }, long: 'p'.repeat(64), added: true },
      ns,
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: { a: 2, 'nested.x': 5, added: true }, removedFields: ['b'], truncatedArrays: [] },
    });

    await step(() => coll.updateOne({ _id: 1 }, { $pop: { arr: 1 } }), {
      operationType: 'update',
      fullDocument: { _id: 1, a: 2, arr: [1, 2, 3], nested: { x: 5, y: 2 }, long: 'p'.repeat(64), added: true },
      ns,
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: { arr: [1, 2, 3] }, removedFields: [], truncatedArrays: [] },
    });

    await step(() => coll.updateOne({ _id: 1 }, { $set: { 'arr.1': 9 }, $push: { 'nested.list': 'n' } } as Document), {
      operationType: 'update',
      fullDocument: { _id: 1, a: 2, arr: [1, 9, 3], nested: { x: 5, y: 2, list: ['n'] }, long: 'p'.repeat(64), added: true },
      ns,
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: { 'arr.1': 9, 'nested.list': ['n'] }, removedFields: [], truncatedArrays: [] },
    });

    await step(() => coll.updateOne({ _id: 1 }, { $push: { arr: { $each: [7, 8] } } } as Document), {
      operationType: 'update',
      fullDocument: { _id: 1, a: 2, arr: [1, 9, 3, 7, 8], nested: { x: 5, y: 2, list: ['n'] }, long: 'p'.repeat(64), added: true },
      ns,
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: { 'arr.3': 7, 'arr.4': 8 }, removedFields: [], truncatedArrays: [] },
    });

    // Pipeline-style updates are diffed: an array that only got shorter is a truncation.
    await step(() => coll.updateOne({ _id: 1 }, [{ $set: { arr: { $slice: ['$arr', 4] } } }]), {
      operationType: 'update',
      fullDocument: { _id: 1, a: 2, arr: [1, 9, 3, 7], nested: { x: 5, y: 2, list: ['n'] }, long: 'p'.repeat(64), added: true },
      ns,
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: {}, removedFields: [], truncatedArrays: [{ field: 'arr', newSize: 4 }] },
    });

    // ... while a small array that shrank and changed is logged as a whole-array update.
    await step(() => coll.updateOne({ _id: 1 }, [{ $set: { arr: [5] } }, { $unset: 'added' }]), {
      operationType: 'update',
      fullDocument: { _id: 1, a: 2, arr: [5], nested: { x: 5, y: 2, list: ['n'] }, long: 'p'.repeat(64) },
      ns,
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: { arr: [5] }, removedFields: ['added'], truncatedArrays: [] },
    });

    await step(() => coll.replaceOne({ _id: 1 }, { replaced: 1 }), {
      operationType: 'replace',
      fullDocument: { _id: 1, replaced: 1 },
      ns,
      documentKey: { _id: 1 },
    });

    // updateLookup returns the state at lookup time: null once the document is gone.
    await coll.updateOne({ _id: 0 }, { $set: { seed: false } });
    await coll.deleteOne({ _id: 0 });
    const [lookedUp, deleted] = (await nextEvents(stream, 2)) as Ev[];
    events.push(lookedUp, deleted);
    assert.equal(lookedUp.operationType, 'update');
    assert.equal((lookedUp as Document).fullDocument, null);
    assert.deepEqual(summary(deleted), { operationType: 'delete', ns, documentKey: { _id: 0 } });

    await coll.drop();
    const [drop, invalidate] = (await nextEvents(stream, 2)) as Ev[];
    events.push(drop, invalidate);
    assert.deepEqual(summary(drop), { operationType: 'drop', ns });
    assert.deepEqual(summary(invalidate), { operationType: 'invalidate' });
    assert.equal(await stream.tryNext(), null);
    assert.ok(stream.closed);
  });

  test('resume tokens sort in event order and clusterTimes increase', () => {
    const tokens = events.map((e) => (e._id as { _data: string })._data);
    assert.deepEqual([...tokens].sort(), tokens);
    for (let i = 1; i < events.length - 1; i++) {
      const a = events[i - 1].clusterTime as Timestamp;
      const b = events[i].clusterTime as Timestamp;
      assert.ok(b.compare(a) > 0, `clusterTime ${i} increases`);
    }
  });

  test('resumeAfter every token yields exactly the suffix', async () => {
    const coll = db.collection<AnyDoc>('shapes');
    for (let i = 0; i < events.length - 1; i++) {
      const stream = coll.watch([], { resumeAfter: events[i]._id as ResumeToken, maxAwaitTimeMS: 100 });
      const got = await nextEvents(stream, events.length - 1 - i);
      assert.deepEqual(
        got.map((e) => (e._id as { _data: string })._data),
        events.slice(i + 1).map((e) => (e._id as { _data: string })._data),
        `resume after event ${i}`,
      );
      await stream.close();
    }
  });

  test('resumeAfter an invalidate fails with 260; startAfter it continues with the recreated collection', async () => {
    const coll = db.collection<AnyDoc>('shapes');
    const invalidate = events[events.length - 1];
    const bad = coll.watch([], { resumeAfter: invalidate._id as ResumeToken });
    await assert.rejects(bad.tryNext(), (e: MongoServerError) => e.code === 260);
    await bad.close();
    const stream = coll.watch([], { startAfter: invalidate._id as ResumeToken, maxAwaitTimeMS: 100 });
    await coll.insertOne({ _id: 'again' });
    const [ev] = await nextEvents(stream, 1);
    assert.equal(ev.operationType, 'insert');
    assert.deepEqual((ev as Document).documentKey, { _id: 'again' });
    await stream.close();
  });
});

describe('start points and postBatchResumeToken', () => {
  test('startAtOperationTime of a write replays that write', async () => {
    const coll = db.collection<AnyDoc>('optime');
    await coll.insertOne({ _id: 'before' });
    const res = await db.command({ insert: 'optime', documents: [{ _id: 'target' }] });
    assert.ok(res.operationTime instanceof Timestamp);
    await coll.insertOne({ _id: 'after' });
    const stream = coll.watch([], { startAtOperationTime: res.operationTime, maxAwaitTimeMS: 100 });
    const got = await nextEvents(stream, 2);
    assert.deepEqual(got.map((e) => (e as Document).documentKey._id), ['target', 'after']);
    assert.ok((got[0].clusterTime as Timestamp).equals(res.operationTime));
    await stream.close();
  });

  test('postBatchResumeToken is on every batch and advances without matching events', async () => {
    const first = await db.command({ aggregate: 'pbrt', pipeline: [{ $changeStream: {} }], cursor: {} });
    const t0 = first.cursor.postBatchResumeToken._data as string;
    assert.equal(typeof t0, 'string');
    assert.deepEqual(first.cursor.firstBatch, []);
    await db.collection<AnyDoc>('elsewhere').insertOne({ x: 1 });
    const more = await db.command({ getMore: first.cursor.id, collection: 'pbrt', maxTimeMS: 200 });
    assert.deepEqual(more.cursor.nextBatch, []);
    const t1 = more.cursor.postBatchResumeToken._data as string;
    assert.ok(t1 > t0, `${t1} > ${t0}`);
    await db.collection<AnyDoc>('pbrt').insertOne({ _id: 1 });
    const withEvent = await db.command({ getMore: first.cursor.id, collection: 'pbrt', maxTimeMS: 2000 });
    assert.equal(withEvent.cursor.nextBatch.length, 1);
    assert.ok(withEvent.cursor.postBatchResumeToken._data >= withEvent.cursor.nextBatch[0]._id._data);
    await db.command({ killCursors: 'pbrt', cursors: [first.cursor.id] });
    // The driver tracks the PBRT as its resume token across empty batches.
    const stream = await started(db.collection<AnyDoc>('pbrt').watch([], { maxAwaitTimeMS: 100 }));
    const r0 = (stream.resumeToken as { _data: string })._data;
    await db.collection<AnyDoc>('elsewhere').insertOne({ x: 2 });
    await stream.tryNext();
    assert.ok((stream.resumeToken as { _data: string })._data > r0);
    await stream.close();
  });

  test('awaitData getMore returns promptly when an event arrives', async () => {
    const first = await db.command({ aggregate: 'await', pipeline: [{ $changeStream: {} }], cursor: {} });
    const started = Date.now();
    setTimeout(() => void db.collection<AnyDoc>('await').insertOne({ _id: 1 }), 150);
    const more = await db.command({ getMore: first.cursor.id, collection: 'await', maxTimeMS: 5000 });
    const elapsed = Date.now() - started;
    assert.equal(more.cursor.nextBatch.length, 1);
    assert.ok(elapsed < 2500, `returned after ${elapsed} ms`);
    await db.command({ killCursors: 'await', cursors: [first.cursor.id] });
  });

  test('insertMany yields one event per document, in order', async () => {
    const coll = db.collection<AnyDoc>('many');
    const stream = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
    await coll.insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i })));
    const got = await nextEvents(stream, 50);
    assert.deepEqual(got.map((e) => (e as Document).documentKey._id), Array.from({ length: 50 }, (_, i) => i));
    await stream.close();
  });
});

describe('scopes and pipelines', () => {
  test('database-level watch sees all collections, then dropDatabase invalidates', async () => {
    const scoped = target.client.db(target.dbName('cs_db'));
    await scoped.collection<AnyDoc>('a').insertOne({ _id: 0 });
    const stream = await started(scoped.watch([], { maxAwaitTimeMS: 100 }));
    await scoped.collection<AnyDoc>('a').insertOne({ _id: 1 });
    await scoped.collection<AnyDoc>('b').insertOne({ _id: 2 });
    await scoped.dropDatabase();
    const got = (await nextEvents(stream, 6)) as Ev[];
    assert.deepEqual(
      got.map((e) => [e.operationType, (e as Document).ns?.coll ?? null]),
      [['insert', 'a'], ['insert', 'b'], ['drop', got[2].ns && (got[2] as Document).ns.coll], ['drop', (got[3] as Document).ns?.coll ?? null], ['dropDatabase', null], ['invalidate', null]],
    );
    assert.deepEqual(new Set([(got[2] as Document).ns.coll, (got[3] as Document).ns.coll]), new Set(['a', 'b']));
    assert.deepEqual((got[4] as Document).ns, { db: scoped.databaseName });
    assert.ok(stream.closed || (await stream.tryNext()) === null);
    await stream.close();
  });

  test('deployment-level watch with $match/$project, rename event', async () => {
    const d1 = target.client.db(target.dbName('cs_c1'));
    const d2 = target.client.db(target.dbName('cs_c2'));
    const stream = await started(
      target.client.watch(
        [
          { $match: { 'ns.db': { $in: [d1.databaseName, d2.databaseName] }, operationType: { $in: ['insert', 'rename'] } } },
          { $project: { operationType: 1, ns: 1, to: 1, 'fullDocument.v': 1 } },
        ],
        { maxAwaitTimeMS: 100 },
      ),
    );
    await d1.collection<AnyDoc>('x').insertOne({ _id: 1, v: 'one', hidden: true });
    await d2.collection<AnyDoc>('y').insertOne({ _id: 2, v: 'two' });
    await d1.collection<AnyDoc>('x').updateOne({ _id: 1 }, { $set: { v: 'filtered out' } });
    await d1.renameCollection('x', 'z');
    const got = (await nextEvents(stream, 3)) as Document[];
    assert.deepEqual(
      got.map(({ _id, ...rest }) => (assert.ok(_id._data), rest)),
      [
        { operationType: 'insert', ns: { db: d1.databaseName, coll: 'x' }, fullDocument: { v: 'one' } },
        { operationType: 'insert', ns: { db: d2.databaseName, coll: 'y' }, fullDocument: { v: 'two' } },
        { operationType: 'rename', ns: { db: d1.databaseName, coll: 'x' }, to: { db: d1.databaseName, coll: 'z' } },
      ],
    );
    await stream.close();
  });

  test('a pipeline that modifies _id is rejected', async () => {
    const coll = db.collection<AnyDoc>('badpipe');
    const stream = await started(coll.watch([{ $project: { _id: 0 } }], { maxAwaitTimeMS: 100 }));
    await coll.insertOne({ _id: 1 });
    await assert.rejects(nextEvents(stream, 1), (e: MongoServerError) => e.code === 280);
    await stream.close();
  });

  test('collection stream ends with invalidate on rename', async () => {
    const coll = db.collection<AnyDoc>('torename');
    await coll.insertOne({ _id: 1 });
    const stream = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
    await db.renameCollection('torename', 'renamed_cs');
    const got = (await nextEvents(stream, 2)) as Document[];
    assert.deepEqual(got.map((e) => e.operationType), ['rename', 'invalidate']);
    assert.deepEqual(got[0].to, { db: db.databaseName, coll: 'renamed_cs' });
    await stream.close();
  });
});
