// Conformance: the documentdb-4.0 / documentdb-5.0 profiles behave as Amazon DocumentDB is
// documented to (packages/mongo-emulator/src/documentdb.ts cites each page). Every test also runs
// against a real cluster: MONGODB_URI=… MONGODB_PROFILE=documentdb-5.0 (its URI must carry
// retryWrites=false, as AWS requires; tests that need the emulator's history limit or toggle the
// cluster-wide switch off skip there). On a real cluster the tests enable change streams
// cluster-wide (modifyChangeStreams): use a test cluster.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, MongoServerError, Timestamp, type Db, type Document } from 'mongodb';
import { emulatorOnly, onProfile, openTarget, type Target } from './target.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMongoEmulator, type ProfileName } from '../src/index.js';

/** `{code}` of a refused command, for assert.rejects. */
const code = (c: number) => (err: unknown) => err instanceof MongoServerError && err.code === c;

const enableCluster = { modifyChangeStreams: 1, database: '', collection: '', enable: true };

function suite(profile: ProfileName): void {
  describe(profile, { skip: onProfile(profile) }, () => {
    let target: Target;
    let client: MongoClient;
    let db: Db;
    const admin = () => client.db('admin');
    const streamCmd = (spec: Document, extra: Document = {}, pipeline: Document[] = []) =>
      admin().command({ aggregate: 1, pipeline: [{ $changeStream: { allChangesForCluster: true, ...spec } }, ...pipeline], cursor: {}, ...extra });

    before(async () => {
      target = await openTarget({ profile, historyLimit: 50 });
      // "retryWrites=false" is what AWS tells every DocumentDB user to put in the connection string.
      client = new MongoClient(target.uri, { retryWrites: false, serverSelectionTimeoutMS: 5000 });
      await client.connect();
      db = client.db(target.dbName('docdb'));
      await db.collection('c').insertOne({ _id: 'seed' } as Document);
    });
    after(async () => {
      await client.close();
      await target.close();
    });

    test('getEngineVersion answers (MongoDB has no such command); buildInfo reports the API version', async () => {
      const r = await admin().command({ getEngineVersion: 1 });
      assert.equal(typeof r.engineVersion, 'string');
      const b = await admin().command({ buildInfo: 1 });
      assert.match(String(b.version), profile === 'documentdb-4.0' ? /^4\.0\./ : /^5\.0\./);
    });

    // Toggles the cluster-wide switch, so only on the emulator (a real cluster's streams stay as they are).
    test('a change stream fails until modifyChangeStreams enables it; a database-level enable covers that database only', { skip: emulatorOnly }, async () => {
      await assert.rejects(streamCmd({}), /modifyChangeStreams/);
      await admin().command({ modifyChangeStreams: 1, database: db.databaseName, collection: '', enable: true });
      const r = await db.command({ aggregate: 'c', pipeline: [{ $changeStream: {} }], cursor: {} });
      assert.ok(r.cursor);
      await assert.rejects(streamCmd({}), /modifyChangeStreams/);
      await admin().command({ modifyChangeStreams: 1, database: db.databaseName, collection: '', enable: false });
      await assert.rejects(db.command({ aggregate: 'c', pipeline: [{ $changeStream: {} }], cursor: {} }), /modifyChangeStreams/);
      await admin().command(enableCluster);
      assert.ok((await streamCmd({})).cursor);
    });

    test('only the documented options and stages: no startAfter, showExpandedEvents, fullDocumentBeforeChange, $set, $changeStreamSplitLargeEvent', async () => {
      await admin().command(enableCluster);
      const ev = await nextEvent(async () => db.collection('c').insertOne({ _id: 'opts' } as Document));
      await assert.rejects(streamCmd({ startAfter: ev._id }));
      await assert.rejects(streamCmd({ showExpandedEvents: true }));
      await assert.rejects(streamCmd({ fullDocumentBeforeChange: 'whenAvailable' }));
      await assert.rejects(streamCmd({ fullDocument: 'whenAvailable' }));
      await assert.rejects(streamCmd({}, {}, [{ $set: { x: 1 } }]));
      await assert.rejects(streamCmd({}, {}, [{ $changeStreamSplitLargeEvent: {} }]));
      // Documented: updateLookup, resumeAfter, startAtOperationTime, $match/$project/$addFields/$replaceRoot/$redact.
      assert.ok((await streamCmd({ fullDocument: 'updateLookup', resumeAfter: ev._id }, {}, [{ $match: {} }, { $project: { x: 0 } }, { $addFields: { y: 1 } }])).cursor);
      assert.ok((await streamCmd({ startAtOperationTime: ev.clusterTime })).cursor);
    });

    async function nextEvent(write: () => Promise<unknown>): Promise<Document> {
      const stream = client.watch([], { maxAwaitTimeMS: 50 });
      try {
        assert.equal(await stream.tryNext(), null);
        await write();
        for (let i = 0; i < 100; i++) {
          const e = await stream.tryNext();
          if (e) return e as Document;
        }
        throw new Error('no event');
      } finally {
        await stream.close();
      }
    }

    test('resume tokens are DocumentDB\'s own: not MongoDB KeyString hex, no postBatchResumeToken on an empty batch; resumeAfter resumes', async () => {
      await admin().command(enableCluster);
      const coll = db.collection('tok');
      const ev = await nextEvent(() => coll.insertOne({ _id: 1 } as Document));
      assert.equal(typeof ev._id._data, 'string');
      assert.doesNotMatch(ev._id._data as string, /^82/);
      assert.ok(ev.clusterTime instanceof Timestamp);
      const empty = await streamCmd({});
      assert.deepEqual(empty.cursor.firstBatch, []);
      assert.equal(empty.cursor.postBatchResumeToken, undefined);
      await coll.insertOne({ _id: 2 } as Document);
      const resumed = client.watch([{ $match: { 'ns.coll': 'tok' } }], { resumeAfter: ev._id, maxAwaitTimeMS: 50 });
      try {
        let next: Document | null = null;
        for (let i = 0; i < 100 && !next; i++) next = await resumed.tryNext();
        assert.deepEqual(next?.documentKey, { _id: 2 });
      } finally {
        await resumed.close();
      }
    });

    test('an unreadable resume token is refused with FailedToParse (9), not 260', async () => {
      await admin().command(enableCluster);
      await assert.rejects(streamCmd({ resumeAfter: { _data: 'not-a-token' } }), code(9));
      await assert.rejects(streamCmd({ resumeAfter: { _data: '8263F0A1B2000000012B022C0100296E5A1004' } }), code(9));
    });

    test('ping carries no operationTime (undocumented: the less convenient answer)', async () => {
      const r = await admin().command({ ping: 1 });
      assert.equal(r.operationTime, undefined);
    });

    test('a resume point older than the change stream log fails with 136', { skip: emulatorOnly }, async () => {
      await admin().command(enableCluster);
      const coll = db.collection('hist');
      const ev = await nextEvent(() => coll.insertOne({ _id: 0 } as Document));
      for (let i = 1; i <= 60; i++) await coll.insertOne({ _id: i } as Document);
      await assert.rejects(streamCmd({ resumeAfter: ev._id }), code(136));
    });

    test('retryable writes are refused (retryWrites=false is required before 8.0.2)', async () => {
      const retrying = new MongoClient(target.uri, { retryWrites: true, serverSelectionTimeoutMS: 5000 });
      try {
        await assert.rejects(retrying.db(db.databaseName).collection('rw').insertOne({ a: 1 }), /Retryable writes are not supported/);
        await db.collection('rw').insertOne({ a: 1 });
        assert.equal(await db.collection('rw').countDocuments(), 1);
      } finally {
        await retrying.close();
      }
    });

    test(profile === 'documentdb-4.0' ? 'change streams open only with primary read preference' : 'change streams also open with a secondary read preference', async () => {
      await admin().command(enableCluster);
      const secondary = client.watch([], { readPreference: 'secondaryPreferred', maxAwaitTimeMS: 10 });
      try {
        if (profile === 'documentdb-4.0') await assert.rejects(secondary.tryNext(), /read preference primary/);
        else assert.equal(await secondary.tryNext(), null);
      } finally {
        await secondary.close();
      }
      const primary = client.watch([], { readPreference: 'primary', maxAwaitTimeMS: 10 });
      assert.equal(await primary.tryNext(), null);
      await primary.close();
    });

    test('no setUserWriteBlockMode (command not found)', async () => {
      await assert.rejects(admin().command({ setUserWriteBlockMode: 1, global: true }), code(59));
    });

    test('capped collections and the unsupported index types and options are refused', async () => {
      await assert.rejects(db.createCollection('capped', { capped: true, size: 4096 }));
      await assert.rejects(db.createCollection('collated', { collation: { locale: 'fr' } }));
      const ix = db.collection('ix');
      await assert.rejects(ix.createIndex({ loc: '2d' }));
      await assert.rejects(ix.createIndex({ '$**': 1 }));
      await assert.rejects(ix.createIndex({ name: 1 }, { collation: { locale: 'fr', strength: 2 } }));
      await assert.rejects(ix.createIndex({ name: 1 }, { storageEngine: { wiredTiger: {} } }));
      // Supported on both: hashed, 2dsphere, unique, sparse, TTL.
      await ix.createIndex({ h: 'hashed' });
      await ix.createIndex({ geo: '2dsphere' });
      await ix.createIndex({ u: 1 }, { unique: true, sparse: true });
      await ix.createIndex({ at: 1 }, { expireAfterSeconds: 3600 });
      if (profile === 'documentdb-4.0') {
        await assert.rejects(ix.createIndex({ body: 'text' }));
        await assert.rejects(ix.createIndex({ p: 1 }, { partialFilterExpression: { p: { $gt: 1 } } }));
      } else {
        await ix.createIndex({ body: 'text' });
        await ix.createIndex({ p: 1 }, { partialFilterExpression: { p: { $gt: 1 } } });
      }
    });
  });
}

suite('documentdb-5.0');
suite('documentdb-4.0');

describe('documentdb-5.0 restart', { skip: emulatorOnly }, () => {
  test('the modifyChangeStreams switch is a cluster setting: it survives a restart (with --dbpath)', async () => {
    const dbpath = mkdtempSync(join(tmpdir(), 'emu-docdb-'));
    try {
      for (const round of [1, 2]) {
        const emu = await startMongoEmulator({ profile: 'documentdb-5.0', dbpath });
        const client = new MongoClient(emu.uri, { retryWrites: false });
        try {
          if (round === 1) await client.db('admin').command(enableCluster);
          const r = await client.db('admin').command({ aggregate: 1, pipeline: [{ $changeStream: { allChangesForCluster: true } }], cursor: {} });
          assert.ok(r.cursor, `round ${round}`);
        } finally {
          await client.close();
          await emu.stop();
        }
      }
    } finally {
      rmSync(dbpath, { recursive: true, force: true });
    }
  });
});

describe('mongodb-7.0 is unchanged', { skip: onProfile('mongodb-7.0') }, () => {
  test('change streams need no modifyChangeStreams; the DocumentDB-only commands are unknown', async () => {
    const target = await openTarget();
    try {
      const admin = target.client.db('admin');
      const r = await admin.command({ aggregate: 1, pipeline: [{ $changeStream: { allChangesForCluster: true } }], cursor: {} });
      assert.ok(r.cursor.postBatchResumeToken);
      await assert.rejects(admin.command({ getEngineVersion: 1 }), code(59));
      await assert.rejects(admin.command(enableCluster), code(59));
    } finally {
      await target.close();
    }
  });
});
