import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { useLocalStack } from '../support/local-stack.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore } from '../../src/state/store.js';
import { spawnMigrator, toolArgs, cutoverAndWait } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number };

/** `--map db.coll:db2.coll2` holds for the load, the changes and verify alike. */
describe('a collection renamed with --map', () => {
  const stack = useLocalStack();

  test('ends equal under its new name after the cutover, with its index; the rest of its database follows the database map', { timeout: 240_000 }, async () => {
    const { source, target, kinesis, src, dst } = stack;
    const products = src.db('bar').collection<AnyDoc>('products');
    await products.insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i, sku: `sku-${i}`, price: i })));
    await products.createIndex({ sku: 1 }, { unique: true });
    await src.db('bar').collection<AnyDoc>('orders').insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i, total: i })));
    const stream = kinesis.uniqueStreamName('collmap');
    await kinesis.createStream(stream, 2);
    const maps = ['--map', 'bar:bar_new', '--map', 'bar.products:shop.items'];
    const common = ['--source-uri', source.uri, '--target-uri', target.uri, ...maps, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', 'collmap'];
    const proc = spawnMigrator(['full-migrate', ...common, '--lease-ttl', '5s', ...toolArgs(), '--data-dir', `/tmp/migrator-collmap-${process.pid}`, '--log-format', 'json']);
    const store = await StateStore.open({ client: dst });
    let writing = true;
    let n = 0;
    const workload = (async () => {
      while (writing) {
        const i = n++;
        await products.insertOne({ _id: 1000 + i, sku: `new-${i}`, price: i });
        await products.updateOne({ _id: i % 500 }, { $inc: { price: 1 } });
        if (i % 7 === 0) await products.deleteOne({ _id: 499 - (i % 500) });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      await waitForPhase(store, 'collmap', ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
      await new Promise((r) => setTimeout(r, 1000)); // changes after the copy too
      writing = false;
      await workload;
      await waitForPhase(store, 'collmap', ['READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
      await cutoverAndWait(common);
    } catch (err) {
      proc.kill('SIGKILL');
      await proc;
      throw err;
    } finally {
      writing = false;
      await workload;
    }
    const done = await proc;
    assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
    assert.ok(n > 0);

    const sorted = (c: MongoClient, db: string, coll: string) => c.db(db).collection<AnyDoc>(coll).find({}, { sort: { _id: 1 } }).toArray();
    const [want, got] = await Promise.all([sorted(src, 'bar', 'products'), sorted(dst, 'shop', 'items')]);
    assert.ok(want.length > 500);
    assert.deepEqual(got, want);
    assert.deepEqual(await sorted(dst, 'bar_new', 'orders'), await sorted(src, 'bar', 'orders'));
    // Nothing landed under the old name.
    assert.deepEqual(await dst.db('bar_new').listCollections({ name: 'products' }).toArray(), []);
    const ix = await dst.db('shop').collection('items').listIndexes().toArray();
    assert.ok(ix.some((x) => x.name === 'sku_1' && x.unique === true), JSON.stringify(ix));
    const verify = await runMigrator(['verify', '--source-uri', source.uri, '--target-uri', target.uri, ...maps]);
    assert.equal(verify.exitCode, 0, verify.all);
    assert.match(verify.stdout, /ok +bar\.products → shop\.items/);
  });
});
