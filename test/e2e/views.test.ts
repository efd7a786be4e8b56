import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { useLocalStack } from '../support/local-stack.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore } from '../../src/state/store.js';
import { spawnMigrator, toolArgs, whileRunning, cutoverAndWait } from '../support/full-migrate-process.js';


/** Views of the selection are created on the target after the load, reading the mapped collections. */
describe('views', () => {
  const stack = useLocalStack();

  test('full-migrate recreates them (a view on a renamed collection, a view on a view); verify passes', { timeout: 240_000 }, async () => {
    const { source, target, kinesis, src, dst } = stack;
    const bar = src.db('bar');
    await bar.collection('products').insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, sku: `sku-${i}`, price: i }) as Document));
    await bar.collection('orders').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i, total: i }) as Document));
    const cheap = [{ $match: { price: { $lt: 10 } } }];
    const ids = [{ $project: { _id: 1 } }];
    const big = [{ $match: { total: { $gte: 10 } } }];
    await bar.createCollection('cheap', { viewOn: 'products', pipeline: cheap });
    await bar.createCollection('cheapIds', { viewOn: 'cheap', pipeline: ids });
    await bar.createCollection('bigOrders', { viewOn: 'orders', pipeline: big });
    // $lookup from the renamed collection: its `from` follows the map too.
    const withProduct = (from: string) => [{ $lookup: { from, localField: '_id', foreignField: '_id', as: 'product' } }];
    await bar.createCollection('orderProducts', { viewOn: 'orders', pipeline: withProduct('products') });
    const stream = kinesis.uniqueStreamName('views');
    await kinesis.createStream(stream, 1);
    const maps = ['--map', 'bar.products:bar.items'];
    const common = ['--source-uri', source.uri, '--target-uri', target.uri, ...maps, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', 'views'];
    const proc = spawnMigrator(['full-migrate', ...common, '--lease-ttl', '5s', ...toolArgs(), '--data-dir', `/tmp/migrator-views-${process.pid}`, '--log-format', 'json']);
    const store = await StateStore.open({ client: dst });
    const done = await whileRunning(proc, async () => {
      await waitForPhase(store, 'views', ['READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
      await bar.collection<{ _id: number; sku: string; price: number }>('products').insertOne({ _id: 1000, sku: 'late', price: 1 });
      await cutoverAndWait(common);
    });
    assert.match(String(done.stderr), /"target":"bar\.cheapIds"[^\n]*"msg":"view created"/);

    const info = async (name: string) => (await dst.db('bar').listCollections({ name }).toArray())[0] as (Document & { type?: string; options?: Document }) | undefined;
    assert.deepEqual((await info('cheap'))?.options, { viewOn: 'items', pipeline: cheap });
    assert.deepEqual((await info('cheapIds'))?.options, { viewOn: 'cheap', pipeline: ids });
    assert.deepEqual((await info('bigOrders'))?.options, { viewOn: 'orders', pipeline: big });
    assert.deepEqual((await info('orderProducts'))?.options, { viewOn: 'orders', pipeline: withProduct('items') });
    // The views answer with the migrated data, including the change made after the load.
    const read = (c: MongoClient, name: string) => c.db('bar').collection<{ _id: number }>(name).find({}, { sort: { _id: 1 } }).toArray();
    assert.deepEqual(await read(dst, 'cheapIds'), await read(src, 'cheapIds'));
    assert.ok((await read(dst, 'cheapIds')).some((d) => d._id === 1000));
    assert.deepEqual(await read(dst, 'bigOrders'), await read(src, 'bigOrders'));

    const verify = await runMigrator(['verify', '--source-uri', source.uri, '--target-uri', target.uri, ...maps]);
    assert.equal(verify.exitCode, 0, verify.all);
  });
});
