// A sharded target whose shard key is not in the source's documentKey (issue #11, defect 5): the
// target presents a mongos with shop.orders sharded on {region: 1}; the source is a replica set
// whose change events carry documentKey {_id} only. The target collection holds stale data, so
// the load runs with --drop, which must leave it sharded. Writes during the copy and after (also
// changing region values and documents without a region), kill -9 while replicating, rerun,
// cutover, verify; the collection is still sharded on {region: 1} at the end.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { ensureGoTools } from '../support/go-tools.js';
import { runKillRerunCutover } from './scenario.js';

type AnyDoc = Document & { _id: number | string };
const REGIONS = ['eu', 'us', 'ap'];

let source: MongoEmulator;
let target: MongoEmulator;
let kinesis: KinesisLocal;

before(async () => {
  await ensureGoTools();
  [source, target, kinesis] = await Promise.all([
    startMongoEmulator({ profile: 'mongodb-7.0' }),
    startMongoEmulator({ profile: 'mongodb-7.0', shardKeys: { 'shop.orders': { region: 1 } } }),
    startKinesisLocal(),
  ]);
});
after(async () => {
  await Promise.all([source.stop(), target.stop(), kinesis.stop()]);
});

test('source documentKey {_id} → target sharded on {region: 1}: load with --drop, kill -9, rerun, cutover; stays sharded', { timeout: 180_000 }, async () => {
  const seed = new MongoClient(source.uri);
  await seed
    .db('shop')
    .collection<AnyDoc>('orders')
    .insertMany(Array.from({ length: 2000 }, (_, i) => (i % 10 === 0 ? { _id: i, n: 0 } : { _id: i, region: REGIONS[i % 3], n: 0 })));
  await seed.close();
  const dst = new MongoClient(target.uri);
  await dst.db('shop').collection<AnyDoc>('orders').insertOne({ _id: 'stale', region: 'eu' });
  try {
    const result = await runKillRerunCutover({
      sourceUri: source.uri,
      targetUri: target.uri,
      kinesis,
      migrationId: 'sharded-target',
      extraArgs: ['--drop'],
      round: async (src, n) => {
        const orders = src.db('shop').collection<AnyDoc>('orders');
        await orders.updateOne({ _id: n % 2000 }, { $inc: { n: 1 } });
        // The shard key value changes on the source (and a missing one appears).
        await orders.updateOne({ _id: (n * 7) % 2000 }, { $set: { region: REGIONS[n % 3] } });
        await orders.insertOne(n % 4 === 0 ? { _id: `new-${n}`, n } : { _id: `new-${n}`, region: REGIONS[n % 3], n });
        if (n % 3 === 0) await orders.deleteOne({ _id: 1999 - (n % 500) });
      },
    });
    assert.ok(result.rounds > 50, `workload ran (${result.rounds} rounds)`);
    const meta = await dst.db('config').collection('collections').findOne({ _id: 'shop.orders' as never });
    assert.deepEqual(meta?.key, { region: 1 }, 'the target collection is still sharded on {region: 1}');
    assert.equal(await dst.db('shop').collection<AnyDoc>('orders').countDocuments({ _id: 'stale' }), 0, '--drop emptied it');
    assert.ok(result.logs.join('\n').includes('emptied instead of dropped'), 'the load says what it did with the sharded collection');
  } finally {
    await dst.close();
  }
});
