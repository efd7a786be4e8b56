// Indexes after data (issue #13 item 4): a partitioned collection's indexes are built on the
// target once its ranges are in; one the loaded data violates is reported by index and collection.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { pino } from 'pino';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { buildIndexes } from '../../src/orchestration/index-build.js';
import type { LoadUnitDoc } from '../../src/state/store.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';

let source: MongoEmulator;
let target: MongoEmulator;
let src: MongoClient;
let dst: MongoClient;
before(async () => {
  [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
  src = new MongoClient(source.uri);
  dst = new MongoClient(target.uri);
});
after(async () => {
  await Promise.all([src.close(), dst.close()]);
  await Promise.all([source.stop(), target.stop()]);
});

const unit = (coll: string, targetNs: string): LoadUnitDoc => ({
  _id: `m/${coll}`, migrationId: 'm', shardId: coll, kind: 'indexes', seq: 0, sourceDb: 'shop', targetDb: targetNs.split('.')[0]!, coll, target: targetNs,
  state: 'running', attempts: 1, lease: { owner: 'me', epoch: 1, expiresAt: new Date(Date.now() + 60_000) },
});
const input = () => ({ source: src, target: dst });
const log = pino({ level: 'silent' });

test('builds the source\'s indexes on the target (options kept); a rerun is a no-op', async () => {
  await src.db('shop').collection('a').insertOne({ _id: 1 as never, n: 1, s: 'x' });
  await src.db('shop').collection('a').createIndex({ n: 1 }, { unique: true, name: 'n_unique' });
  await src.db('shop').collection('a').createIndex({ s: 1, n: -1 }, { name: 's_n', sparse: true });
  await dst.db('shop_new').collection('a').insertMany([{ _id: 1 as never, n: 1, s: 'x' }, { _id: 2 as never, n: 2, s: 'y' }]);
  await buildIndexes(input(), unit('a', 'shop_new.a'), log);
  await buildIndexes(input(), unit('a', 'shop_new.a'), log);
  const ix = await dst.db('shop_new').collection('a').indexes();
  assert.deepEqual(ix.map((i) => i.name).sort(), ['_id_', 'n_unique', 's_n']);
  assert.equal(ix.find((i) => i.name === 'n_unique')?.unique, true);
  assert.equal(ix.find((i) => i.name === 's_n')?.sparse, true);
});

test('a unique index the loaded data violates fails the load naming the index and the collection', async () => {
  await src.db('shop').collection('b').createIndex({ sku: 1 }, { unique: true, name: 'sku_unique' });
  await dst.db('shop').collection('b').insertMany([{ _id: 1 as never, sku: 'A' }, { _id: 2 as never, sku: 'A' }]);
  await assert.rejects(buildIndexes(input(), unit('b', 'shop.b'), log), (err: unknown) => {
    assert.ok(err instanceof MigratorError);
    assert.equal(err.exitCode, ExitCode.TOOL_FAILED);
    assert.match(err.message, /unique index sku_unique \{"sku":1\} of shop\.b \(from shop\.b\) could not be built: the loaded data violates it/);
    assert.match(err.hint ?? '', /only the index build is redone/);
    return true;
  });
});
