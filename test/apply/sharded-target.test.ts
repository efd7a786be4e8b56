// Apply into a sharded target (issue #11, defect 5): the target collection is sharded on a key
// that is not in the source's documentKey ({region: 1}). A mongos refuses an upsert whose filter
// lacks the full shard key (61); apply reads the target's shard keys from config.collections and
// adds them to its upsert filters, moves documents whose shard key value changed, and deletes by
// _id. Runs against the emulator presenting a mongos (sharded-target mode).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { decodeEnvelope, encodeEnvelope, type ChangeEnvelope } from '../../src/model/change-envelope.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { ApplyWriter } from '../../src/apply/writer.js';
import { del, ins, rep, updFull } from './helpers.js';
import { Clock } from '../support/stream-positions.js';

const NS = { db: 'bar', coll: 'orders' };

describe('apply into a collection sharded on a key the source does not have', () => {
  let emu: MongoEmulator;
  let client: MongoClient;

  before(async () => {
    emu = await startMongoEmulator({ shardKeys: { 'bar.orders': { region: 1 } } });
    client = new MongoClient(emu.uri);
  });
  after(async () => {
    await client.close();
    await emu.stop();
  });

  it('inserts, updates (also of the shard key value), replaces, deletes and documents missing the shard key all arrive', async () => {
    const writer = new ApplyWriter({ client, rules: new NamespaceRules({}) });
    const clock = new Clock();
    const streams: ChangeEnvelope[][] = [
      [
        ins(clock, { _id: 1, region: 'eu', n: 1 }, NS),
        ins(clock, { _id: 2, region: 'us', n: 1 }, NS),
        ins(clock, { _id: 3, n: 1 }, NS), // no shard key field
        ins(clock, { _id: 4, region: 'ap', n: 1 }, NS),
      ],
      [
        updFull(clock, { _id: 1, region: 'eu', n: 2 }, 1, NS),
        updFull(clock, { _id: 2, region: 'ap', n: 2 }, 2, NS), // shard key value changes
        rep(clock, { _id: 3, region: 'eu', n: 2 }, NS), // gains a shard key value
        del(clock, 4, NS),
      ],
    ];
    for (const batch of streams) {
      const result = await writer.applyBatch(batch.map((e) => decodeEnvelope(encodeEnvelope(e))));
      assert.equal(result.conflicts.length, 0);
    }
    // A replay of everything changes nothing (idempotent).
    for (const batch of streams) await writer.applyBatch(batch.map((e) => decodeEnvelope(encodeEnvelope(e))));
    const docs = await client.db('bar').collection<Document>('orders').find({}, { sort: { _id: 1 } }).toArray();
    assert.deepEqual(docs, [
      { _id: 1, region: 'eu', n: 2 },
      { _id: 2, region: 'ap', n: 2 },
      { _id: 3, region: 'eu', n: 2 },
    ]);
    const meta = await client.db('config').collection('collections').findOne({ _id: 'bar.orders' as never });
    assert.deepEqual(meta?.key, { region: 1 }, 'still sharded');
  });
});
