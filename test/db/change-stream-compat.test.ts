// Capture reads change streams with tryNextCachingToken: after a resumable error the driver's own
// resume continues after the last event returned, instead of re-delivering events (the pinned
// driver 6.16's tryNext() does not cache tokens by itself; NODE-4763).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { tryNextCachingToken } from '../../src/db/change-stream-compat.js';

async function readIds(stream: ReturnType<MongoClient['watch']>, n: number): Promise<unknown[]> {
  const out: unknown[] = [];
  const deadline = Date.now() + 10_000;
  while (out.length < n && Date.now() < deadline) {
    const ev = (await tryNextCachingToken(stream)) as Document | null;
    if (ev) out.push(ev.documentKey._id);
  }
  return out;
}

test('a connection closed on getMore: the driver resumes after the last event read, nothing repeats', async () => {
  const emu = await startMongoEmulator();
  const client = new MongoClient(emu.uri, { serverSelectionTimeoutMS: 3000 });
  try {
    const coll = client.db('compat').collection<{ _id: number }>('c');
    const stream = client.watch([], { maxAwaitTimeMS: 100 });
    assert.equal(await tryNextCachingToken(stream), null);
    await coll.insertMany([{ _id: 1 }, { _id: 2 }]);
    assert.deepEqual(await readIds(stream, 2), [1, 2]);
    await client.db('admin').command({ configureFailPoint: 'failCommand', mode: { times: 1 }, data: { failCommands: ['getMore'], closeConnection: true } });
    await coll.insertMany([{ _id: 3 }, { _id: 4 }]);
    assert.deepEqual(await readIds(stream, 2), [3, 4]);
    await stream.close();
  } finally {
    await client.close();
    await emu.stop();
  }
});
