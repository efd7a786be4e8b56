// Conformance: change-stream differences between MongoDB versions, each as documented (pages cited
// in packages/mongo-emulator/src/profiles.ts):
//  - the 16 MiB limit on change events (BSONObjectTooLarge, 10334) on every version;
//  - $changeStreamSplitLargeEvent from 7.0 and 6.0.9 (fragments with splitEvent {fragment, of},
//    resumable from a fragment's token), an unknown stage before;
//  - showExpandedEvents and wallTime from 6.0 only.
// Runs on the emulator with each profile, or on a real server whose MONGODB_PROFILE matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoServerError, type Document } from 'mongodb';
import type { ProfileName } from '../src/index.js';
import { nextEvents, onProfile, openTarget, started, type AnyDoc } from './target.js';

const NINE_MIB = 9 * 1024 * 1024;

/** An update whose event (updatedFields + the looked-up fullDocument, 9 MiB each) exceeds 16 MiB. */
async function bigUpdate(profile: ProfileName, pipeline: Document[], check: (stream: ReturnType<typeof watchOf>, coll: Collection) => Promise<void>) {
  const t = await openTarget({ profile });
  try {
    const coll = t.client.db(t.dbName('big')).collection<AnyDoc>('c');
    await coll.insertOne({ _id: 1, big: 'a'.repeat(NINE_MIB) });
    const stream = await started(watchOf(coll, pipeline));
    await coll.updateOne({ _id: 1 }, { $set: { big: 'b'.repeat(NINE_MIB) } });
    try {
      await check(stream, coll);
    } finally {
      await stream.close();
    }
  } finally {
    await t.close();
  }
}
type Collection = import('mongodb').Collection<AnyDoc>;
const watchOf = (coll: Collection, pipeline: Document[], options: Document = {}) =>
  coll.watch(pipeline, { fullDocument: 'updateLookup', maxAwaitTimeMS: 100, ...options });

for (const profile of ['mongodb-4.4', 'mongodb-5.0'] as const) {
  test(`${profile}: an event over 16 MiB fails the change stream with BSONObjectTooLarge; the split stage is unknown; no wallTime; no showExpandedEvents`, { skip: onProfile(profile) }, async () => {
    await bigUpdate(profile, [], async (stream) => {
      await assert.rejects(nextEvents(stream, 1, 10_000), (err: unknown) => err instanceof MongoServerError && err.code === 10334);
    });
    const t = await openTarget({ profile });
    try {
      const coll = t.client.db(t.dbName('old')).collection<AnyDoc>('c');
      await assert.rejects(
        started(watchOf(coll, [{ $changeStreamSplitLargeEvent: {} }])),
        (err: unknown) => err instanceof MongoServerError && err.code === 40324,
      );
      await assert.rejects(
        started(watchOf(coll, [], { showExpandedEvents: true })),
        (err: unknown) => err instanceof MongoServerError && err.code === 40415,
      );
      const stream = await started(watchOf(coll, []));
      await coll.insertOne({ _id: 'x' });
      const [ev] = await nextEvents(stream, 1);
      assert.equal(ev!.operationType, 'insert');
      assert.equal('wallTime' in ev!, false, 'no wallTime before 6.0');
      await stream.close();
    } finally {
      await t.close();
    }
  });
}

for (const profile of ['mongodb-6.0', 'mongodb-7.0', 'mongodb-8.0'] as const) {
  test(`${profile}: $changeStreamSplitLargeEvent returns an event over 16 MiB as fragments, resumable from a fragment`, { skip: onProfile(profile) }, async () => {
    await bigUpdate(profile, [{ $changeStreamSplitLargeEvent: {} }], async (stream, coll) => {
      const fragments = await nextEvents(stream, 2, 20_000);
      const parts = fragments as unknown as Document[];
      assert.deepEqual(parts.map((f) => f.splitEvent), [{ fragment: 1, of: 2 }, { fragment: 2, of: 2 }]);
      // Top-level fields, as many as fit in the first fragment; never a sub-document split: the
      // fragments' fields (minus _id and splitEvent) together are the event.
      const merged: Document = {};
      for (const f of parts) {
        const { _id: _token, splitEvent: _split, ...fields } = f;
        for (const k of Object.keys(fields)) assert.equal(k in merged, false, `${k} in one fragment only`);
        Object.assign(merged, fields);
      }
      assert.equal(parts[0]!.operationType, 'update', 'the event context comes first');
      assert.equal(merged.updateDescription.updatedFields.big.length, NINE_MIB);
      assert.equal(merged.fullDocument.big, 'b'.repeat(NINE_MIB));
      assert.deepEqual(merged.documentKey, { _id: 1 });
      assert.notDeepEqual(parts[0]!._id, parts[1]!._id, 'every fragment has its own resume token');
      // Resuming after fragment 1 starts with fragment 2.
      const again = watchOf(coll, [{ $changeStreamSplitLargeEvent: {} }], { resumeAfter: parts[0]!._id });
      const [next] = (await nextEvents(again, 1, 20_000)) as unknown as Document[];
      assert.deepEqual(next!.splitEvent, { fragment: 2, of: 2 });
      await again.close();
      // The stage must be the last one.
      await assert.rejects(started(watchOf(coll, [{ $changeStreamSplitLargeEvent: {} }, { $match: {} }])), MongoServerError);
    });
  });

  test(`${profile}: wallTime on every event; showExpandedEvents adds create, createIndexes, dropIndexes and modify`, { skip: onProfile(profile) }, async () => {
    const t = await openTarget({ profile });
    try {
      const db = t.client.db(t.dbName('exp'));
      const stream = await started(db.watch([], { showExpandedEvents: true, maxAwaitTimeMS: 100 }));
      await db.createCollection('c');
      await db.collection('c').createIndex({ a: 1 }, { name: 'a_1' });
      await db.command({ collMod: 'c', validationLevel: 'moderate' });
      await db.collection('c').dropIndex('a_1');
      await db.collection<AnyDoc>('c').insertOne({ _id: 1 });
      const events = (await nextEvents(stream, 5)) as unknown as Document[];
      assert.deepEqual(events.map((e) => e.operationType), ['create', 'createIndexes', 'modify', 'dropIndexes', 'insert']);
      for (const e of events) assert.ok(e.wallTime instanceof Date, `${e.operationType} has wallTime`);
      for (const e of events.slice(0, 4)) {
        assert.equal(typeof e.operationDescription, 'object', `${e.operationType} has operationDescription`);
        assert.ok(e.collectionUUID, `${e.operationType} has collectionUUID`);
      }
      assert.deepEqual(events[1]!.operationDescription.indexes.map((i: Document) => i.name), ['a_1']);
      assert.deepEqual(events[3]!.operationDescription.indexes.map((i: Document) => i.name), ['a_1']);
      await stream.close();
    } finally {
      await t.close();
    }
  });

  test(`${profile}: a collMod is one modify event describing what it changed (an index's expireAfterSeconds, a validator)`, { skip: onProfile(profile) }, async () => {
    const t = await openTarget({ profile });
    try {
      const db = t.client.db(t.dbName('mod'));
      await db.collection('c').createIndex({ at: 1 }, { name: 'at_1', expireAfterSeconds: 3600 });
      const stream = await started(db.watch([], { showExpandedEvents: true, maxAwaitTimeMS: 100 }));
      await db.command({ collMod: 'c', index: { name: 'at_1', expireAfterSeconds: 60 } });
      await db.command({ collMod: 'c', validator: { n: { $type: 'int' } } });
      await db.collection<AnyDoc>('c').insertOne({ _id: 1, n: 1 });
      const events = (await nextEvents(stream, 3)) as unknown as Document[];
      assert.deepEqual(events.map((e) => e.operationType), ['modify', 'modify', 'insert']);
      const index = events[0]!.operationDescription.index as Document;
      assert.equal(index.name, 'at_1');
      assert.equal(Number(index.expireAfterSeconds), 60);
      assert.deepEqual(events[1]!.operationDescription.validator, { n: { $type: 'int' } });
      await stream.close();
    } finally {
      await t.close();
    }
  });
}
