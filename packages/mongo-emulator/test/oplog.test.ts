// local.oplog.rs on a MongoDB replica set (what preflight reads for the oplog window): entries in
// write order with their `ts`, read first and last by $natural order, counted by
// estimatedDocumentCount (https://www.mongodb.com/docs/manual/core/replica-set-oplog/,
// https://www.mongodb.com/docs/manual/reference/operator/meta/natural/). Passes unchanged on a
// real replica set of the profile (MONGODB_URI + MONGODB_PROFILE).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Timestamp, type Document } from 'mongodb';
import { onProfile, openTarget } from './target.js';

for (const profile of ['mongodb-4.4', 'mongodb-7.0'] as const) {
  describe(`${profile}: local.oplog.rs`, () => {
    test('the first and last entries by $natural bracket our writes; their ts are Timestamps in write order; the count covers them', { skip: onProfile(profile) }, async () => {
      const t = await openTarget({ profile });
      try {
        const db = t.dbName('oplog');
        const coll = t.client.db(db).collection<{ _id: number }>('c');
        const session = t.client.startSession();
        try {
          for (let i = 0; i < 3; i++) await coll.insertOne({ _id: i }, { session });
        } finally {
          await session.endSession();
        }
        const written = session.operationTime!;
        const oplog = t.client.db('local').collection<Document>('oplog.rs');
        const [first] = await oplog.find({}, { projection: { ts: 1 } }).sort({ $natural: 1 }).limit(1).toArray();
        const [last] = await oplog.find({}, { projection: { ts: 1 } }).sort({ $natural: -1 }).limit(1).toArray();
        assert.ok(first?.ts instanceof Timestamp && last?.ts instanceof Timestamp, 'entries carry a Timestamp ts');
        assert.ok(first.ts.lessThan(written), 'the first entry is older than our writes');
        assert.ok(last.ts.greaterThanOrEqual(written), 'the last entry is at or after our last write');
        // Our inserts, in write order, with their namespace and _id.
        const ours = await oplog.find({ ns: `${db}.c`, op: 'i' }).sort({ $natural: 1 }).toArray();
        assert.deepEqual(ours.map((e) => (e.o as { _id: number })._id), [0, 1, 2]);
        assert.ok(ours.every((e, i) => i === 0 || (e.ts as Timestamp).greaterThan(ours[i - 1]!.ts as Timestamp)));
        assert.ok((ours[2]!.ts as Timestamp).lessThanOrEqual(written));
        assert.ok((await oplog.estimatedDocumentCount()) >= 4, 'our three inserts and at least one older entry');
      } finally {
        await t.close();
      }
    });
  });
}
