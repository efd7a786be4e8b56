// Conformance: the failCommand failpoint (errorCode, closeConnection, times/skip, blocking) and
// the driver's recovery of change streams and retryable writes from injected failures.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoServerError, type Db, type Document } from 'mongodb';
import { nextEvents, openTarget, started, type AnyDoc, type Target } from './target.js';

let target: Target;
let db: Db;

before(async () => {
  target = await openTarget();
  db = target.client.db(target.dbName('fp'));
});
afterEach(async () => {
  for (const name of ['failCommand', 'failGetMoreAfterCursorCheckout']) await configure(name, 'off', {});
});
after(async () => target.close());

function failCommand(mode: unknown, data: Document): Promise<Document> {
  return configure('failCommand', mode, data);
}

function configure(name: string, mode: unknown, data: Document): Promise<Document> {
  return target.client.db('admin').command({ configureFailPoint: name, mode, data });
}

describe('failCommand', () => {
  test('errorCode with times fails exactly n matching commands', async () => {
    const coll = db.collection<AnyDoc>('codes');
    await coll.insertOne({ _id: 1 });
    await failCommand({ times: 2 }, { failCommands: ['find'], errorCode: 2 });
    await coll.countDocuments(); // aggregate: not affected
    for (let i = 0; i < 2; i++) {
      await assert.rejects(coll.findOne({}), (e: MongoServerError) => e.code === 2 && /failCommand/.test(e.message));
    }
    assert.deepEqual(await coll.findOne({}), { _id: 1 });
  });

  test('skip lets the first n commands through; alwaysOn until off', async () => {
    const coll = db.collection<AnyDoc>('skip');
    await failCommand({ skip: 1 }, { failCommands: ['insert'], errorCode: 96 });
    await coll.insertOne({ _id: 1 });
    await assert.rejects(coll.insertOne({ _id: 2 }), (e: MongoServerError) => e.code === 96);
    await failCommand('alwaysOn', { failCommands: ['distinct'], errorCode: 8, errorLabels: ['Custom'] });
    for (let i = 0; i < 3; i++) await assert.rejects(coll.distinct('_id'), (e: MongoServerError) => e.code === 8 && e.hasErrorLabel('Custom'));
    await failCommand('off', {});
    assert.deepEqual(await coll.distinct('_id'), [1]);
  });

  test('closeConnection on insert: the retryable write is retried and applied once', async () => {
    const coll = db.collection<AnyDoc>('retry');
    await failCommand({ times: 1 }, { failCommands: ['insert'], closeConnection: true });
    await coll.insertOne({ _id: 'once' });
    assert.equal(await coll.countDocuments({ _id: 'once' }), 1);
  });

  test('blockConnection delays the command by blockTimeMS', async () => {
    await failCommand({ times: 1 }, { failCommands: ['ping'], blockConnection: true, blockTimeMS: 300 });
    const t0 = Date.now();
    await db.command({ ping: 1 });
    assert.ok(Date.now() - t0 >= 280);
  });

  test('change stream resumes after closeConnection on getMore without losing or repeating events', async () => {
    const coll = db.collection<AnyDoc>('resume');
    const stream = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
    await coll.insertOne({ _id: 1 });
    // next(), not tryNext(): the pinned driver (6.16) caches an event's resume token only in
    // next(), so a resume after tryNext() restarts from an older token and repeats events
    // whatever the server does.
    const first = await stream.next();
    assert.deepEqual((first as Document).documentKey, { _id: 1 });
    await failCommand({ times: 1 }, { failCommands: ['getMore'], closeConnection: true });
    await coll.insertOne({ _id: 2 });
    await coll.insertOne({ _id: 3 });
    const got = [await stream.next(), await stream.next()];
    assert.deepEqual(got.map((e) => (e as Document).documentKey._id), [2, 3]);
    await stream.close();
  });

  test('change stream resumes after a resumable getMore error; non-resumable errors surface', async () => {
    // failGetMoreAfterCursorCheckout fails a getMore once its change-stream cursor is found, where
    // the server labels resumable codes ResumableChangeStreamError (change streams spec,
    // "Resumable Error"; MongoDB's spec test change-streams-resume-errorLabels.json).
    const coll = db.collection<AnyDoc>('resume_codes');
    const stream = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
    await configure('failGetMoreAfterCursorCheckout', { times: 1 }, { errorCode: 6 });
    await coll.insertOne({ _id: 1 });
    const [ev] = await nextEvents(stream, 1);
    assert.deepEqual((ev as Document).documentKey, { _id: 1 });
    await configure('failGetMoreAfterCursorCheckout', { times: 1 }, { errorCode: 2 });
    await assert.rejects(nextEvents(stream, 1), (e: MongoServerError) => e.code === 2 && !e.hasErrorLabel('ResumableChangeStreamError'));
    await stream.close();
  });

  test('failCommand attaches exactly the errorLabels it is given, so a labelless getMore error is not resumed', async () => {
    // "errorLabels: If set, this list overrides the server's normal behavior for adding error
    // labels" (unified test format, failCommand); failCommand fails a getMore before its cursor is
    // checked out, so the server adds no ResumableChangeStreamError (change-streams-resume-errorLabels.json,
    // "change stream does not resume if error does not contain ResumableChangeStreamError").
    const coll = db.collection<AnyDoc>('labels');
    const stream = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
    await failCommand({ times: 1 }, { failCommands: ['getMore'], errorCode: 6 });
    await coll.insertOne({ _id: 1 });
    await assert.rejects(nextEvents(stream, 1), (e: MongoServerError) => e.code === 6 && e.errorLabels.length === 0);
    await stream.close();
    const resumed = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
    await failCommand({ times: 1 }, { failCommands: ['getMore'], errorCode: 50, errorLabels: ['ResumableChangeStreamError'] });
    await coll.insertOne({ _id: 2 });
    const [ev] = await nextEvents(resumed, 1);
    assert.deepEqual((ev as Document).documentKey, { _id: 2 });
    await resumed.close();
    await failCommand({ times: 1 }, { failCommands: ['insert'], errorCode: 91, errorLabels: [] });
    await assert.rejects(coll.insertOne({ _id: 3 }), (e: MongoServerError) => e.code === 91 && !e.hasErrorLabel('RetryableWriteError'));
    assert.equal(await coll.countDocuments({ _id: 3 }), 0, 'not retried without the label');
  });
});
