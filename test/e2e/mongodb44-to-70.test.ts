// MongoDB 4.4 → 7.0 (issue #11): the source has no wallTime in its change events, no
// $changeStreamSplitLargeEvent, no showExpandedEvents and no write blocking (so the cutover is
// confirmed with --writes-stopped). Writes during the copy and after, kill -9 of full-migrate
// while it replicates, rerun, cutover, verify.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { ensureGoTools } from '../support/go-tools.js';
import { runKillRerunCutover } from './scenario.js';

type AnyDoc = Document & { _id: number | string };

let source: MongoEmulator;
let target: MongoEmulator;
let kinesis: KinesisLocal;

before(async () => {
  await ensureGoTools();
  [source, target, kinesis] = await Promise.all([
    startMongoEmulator({ profile: 'mongodb-4.4' }),
    startMongoEmulator({ profile: 'mongodb-7.0' }),
    startKinesisLocal(),
  ]);
});
after(async () => {
  await Promise.all([source.stop(), target.stop(), kinesis.stop()]);
});

test('mongodb-4.4 → mongodb-7.0: kill -9 while replicating, rerun, cutover --writes-stopped, target equals source', { timeout: 180_000 }, async () => {
  const { MongoClient } = await import('mongodb');
  const seed = new MongoClient(source.uri);
  await seed.db('shop').collection<AnyDoc>('items').insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i, v: 0, tags: ['a', 'b'] })));
  await seed.db('shop').collection('items').createIndex({ v: 1 });
  await seed.close();
  const result = await runKillRerunCutover({
    sourceUri: source.uri,
    targetUri: target.uri,
    kinesis,
    migrationId: 'm44to70',
    round: async (src, n) => {
      const items = src.db('shop').collection<AnyDoc>('items');
      await items.updateOne({ _id: n % 3000 }, { $inc: { v: 1 }, $unset: { tags: '' } });
      await items.insertOne({ _id: `new-${n}`, at: new Date() });
      if (n % 3 === 0) await items.deleteOne({ _id: 2999 - (n % 1000) });
    },
  });
  assert.ok(result.rounds > 50, `workload ran (${result.rounds} rounds)`);
});
