// Schema changes made on the source during replication (issue #12 item 1): a unique index built, a
// TTL changed (collMod expireAfterSeconds), an index dropped, a collection created with a collation
// and a validator. On a source with expanded change events (mongodb-7.0) apply replays them while
// replicating (also under --map names); on one without (mongodb-5.0) the cutover reconciles them.
// Either way the target has them at the cutover, the unique index holds, and verify says equal.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ResultPromise } from 'execa';
import { MongoClient, type Document } from 'mongodb';
import { useLocalStack, type LocalStack } from '../support/local-stack.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore } from '../../src/state/store.js';
import { HELD_EXPIRE_AFTER_SECONDS } from '../../src/db/ttl-hold.js';
import { waitUntil } from '../support/wait.js';
import { spawnMigrator, toolArgs, whileRunning, cutoverAndWait } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number | string };
const FUTURE = new Date(Date.now() + 365 * 86400_000); // nothing expires during the test
const FR = { locale: 'fr', strength: 2 };
const VALIDATOR = { n: { $type: 'int' } };

/** Two collections in `shop` before the load, each with a TTL index and an index to drop later. */
async function seed(src: MongoClient): Promise<void> {
  for (const name of ['items', 'orders']) {
    const c = src.db('shop').collection<AnyDoc>(name);
    await c.insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, sku: `s-${i}`, at: FUTURE, old: i })));
    await c.createIndex({ at: 1 }, { name: 'at_1', expireAfterSeconds: 3600 });
    await c.createIndex({ old: 1 }, { name: 'old_1' });
  }
}

/** The schema changes, made while replicating; then a marker document written after them. */
async function changeSchema(src: MongoClient): Promise<void> {
  const shop = src.db('shop');
  for (const name of ['items', 'orders']) {
    await shop.collection(name).createIndex({ sku: 1 }, { name: 'sku_1', unique: true });
    await shop.command({ collMod: name, index: { name: 'at_1', expireAfterSeconds: 60 } });
    await shop.collection(name).dropIndex('old_1');
    await shop.collection<AnyDoc>(name).insertOne({ _id: 'late', sku: 'late', at: FUTURE });
  }
  for (const name of ['fresh', 'fresh2']) {
    await shop.createCollection(name, { collation: FR, validator: VALIDATOR });
    await shop.collection<AnyDoc>(name).insertOne({ _id: 1, n: 1 });
  }
  await shop.collection<AnyDoc>('items').insertOne({ _id: 'marker', sku: 'marker' });
}

/** What the target holds of the changes (under the target names). */
async function targetSchema(dst: MongoClient, names: { items: string; orders: string; fresh: string; fresh2: string }) {
  const shop = dst.db('shop');
  const indexes = async (coll: string) => Object.fromEntries((await shop.collection(coll).listIndexes().toArray().catch(() => [])).map((s) => [String(s.name), s as Document]));
  const options = async (coll: string) => ((await shop.listCollections({ name: coll }).toArray())[0] as { options?: Document } | undefined)?.options;
  const out: Document = {};
  for (const coll of [names.items, names.orders]) {
    const ix = await indexes(coll);
    out[coll] = { names: Object.keys(ix).sort(), skuUnique: ix.sku_1?.unique === true, ttl: ix.at_1 ? Number(ix.at_1.expireAfterSeconds) : undefined };
  }
  for (const coll of [names.fresh, names.fresh2]) {
    const o = await options(coll);
    out[coll] = { locale: o?.collation?.locale, strength: o?.collation?.strength, validator: o?.validator };
  }
  return out;
}

/** `ttl`: the TTL index's expireAfterSeconds on the target (held during the sync, 60 after the cutover). */
function expected(names: { items: string; orders: string; fresh: string; fresh2: string }, ttl = 60): Document {
  const changed = { names: ['_id_', 'at_1', 'sku_1'], skuUnique: true, ttl };
  const created = { locale: 'fr', strength: 2, validator: VALIDATOR };
  return { [names.items]: changed, [names.orders]: changed, [names.fresh]: created, [names.fresh2]: created };
}

/** full-migrate through the load, `during` while replicating, then cutover --writes-stopped; returns full-migrate's stderr. */
async function migrate(stack: LocalStack, id: string, maps: string[], during: (proc: ResultPromise) => Promise<void>): Promise<string> {
  const { source, target, kinesis, dst } = stack;
  const stream = kinesis.uniqueStreamName(id);
  await kinesis.createStream(stream, 2);
  const common = ['--source-uri', source.uri, '--target-uri', target.uri, '--include', 'shop.*', ...maps, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', id];
  const proc = spawnMigrator(['full-migrate', ...common, '--lease-ttl', '5s', ...toolArgs(), '--data-dir', `/tmp/migrator-${id}-${process.pid}`, '--log-format', 'json']);
  const store = await StateStore.open({ client: dst });
  const done = await whileRunning(proc, async () => {
    await waitForPhase(store, id, ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
    await during(proc);
    await waitForPhase(store, id, ['READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
    await cutoverAndWait(common);
  });
  const stderr = String(done.stderr);
  const verify = await runMigrator(['verify', '--source-uri', source.uri, '--target-uri', target.uri, '--include', 'shop.*', ...maps]);
  assert.equal(verify.exitCode, 0, verify.all);
  assert.match(verify.stdout, /collections match, indexes, options and views included/);
  return stderr;
}

describe('schema changes during replication, source with expanded events (mongodb-7.0)', () => {
  const stack = useLocalStack();

  test('are replayed while replicating, also under --map names: unique index, TTL change, dropped index, collection with collation and validator', { timeout: 300_000 }, async () => {
    const { src, dst } = stack;
    await seed(src);
    const maps = ['--map', 'shop.orders:shop.orders_v2', '--map', 'shop.fresh2:shop.fresh2_v2'];
    const names = { items: 'items', orders: 'orders_v2', fresh: 'fresh', fresh2: 'fresh2_v2' };
    const stderr = await migrate(stack, 'schema70', maps, async () => {
      await changeSchema(src);
      // Replayed before the cutover: the target has every change while replication runs. The TTL
      // change is replayed held (the target's TTL must not act during the sync, ttl-hold.ts), its new
      // value recorded as the one the cutover restores.
      await waitUntil(async () => JSON.stringify(await targetSchema(dst, names)) === JSON.stringify(expected(names, HELD_EXPIRE_AFTER_SECONDS)), 90_000, 'the schema changes replayed on the target', 200);
      const store = await StateStore.open({ client: dst });
      const holds = (await store.listTtlHolds('schema70')).map((h) => [h.coll, h.name, h.originalExpireAfterSeconds, h.restoredAt]);
      assert.deepEqual(holds, [['items', 'at_1', 60, undefined], ['orders_v2', 'at_1', 60, undefined]]);
    });
    assert.deepEqual(await targetSchema(dst, names), expected(names));
    assert.match(stderr, /"msg":"schema replay: index created"/);
    // The cutover's safety net found nothing left to do.
    assert.doesNotMatch(stderr, /schema reconcile changed the target/);
    assert.match(stderr, /"changed":0,"left":0[^\n]*"msg":"schema reconciled"/);
    // The unique index holds on the target, under the mapped name too.
    for (const coll of ['items', 'orders_v2']) {
      await assert.rejects(dst.db('shop').collection<AnyDoc>(coll).insertOne({ _id: 'dup', sku: 's-1' }), /E11000|duplicate key/);
    }
    assert.equal(await dst.db('shop').listCollections({ name: 'orders' }).toArray().then((l) => l.length), 0, 'nothing under the old name');
  });
});

describe('schema changes during replication, source without expanded events (mongodb-5.0)', () => {
  const stack = useLocalStack(undefined, { source: { profile: 'mongodb-5.0' } });

  test('are reconciled at the cutover, which succeeds with the schema equal', { timeout: 300_000 }, async () => {
    const { src, dst } = stack;
    await seed(src);
    const names = { items: 'items', orders: 'orders', fresh: 'fresh', fresh2: 'fresh2' };
    const stderr = await migrate(stack, 'schema50', [], async () => {
      await changeSchema(src);
      // The data arrives; the schema changes cannot (no expanded events before 6.0).
      await waitUntil(async () => (await dst.db('shop').collection<AnyDoc>('items').countDocuments({ _id: 'marker' })) === 1, 90_000, 'the marker document on the target', 200);
      const before = await targetSchema(dst, names);
      assert.notDeepEqual(before, expected(names));
      assert.equal((before.items as Document).skuUnique, false);
    });
    assert.deepEqual(await targetSchema(dst, names), expected(names));
    assert.match(stderr, /"msg":"schema reconcile: index sku_1 missing on the target: created"/);
    await assert.rejects(dst.db('shop').collection<AnyDoc>('items').insertOne({ _id: 'dup', sku: 's-1' }), /E11000|duplicate key/);
  });
});

describe('a schema difference the target cannot hold (mongodb-7.0 → documentdb-5.0)', () => {
  const stack = useLocalStack(undefined, { target: { profile: 'documentdb-5.0' } });

  test('fails the cutover with exit 7, naming it; the documents arrived', { timeout: 300_000 }, async () => {
    const { source, target, kinesis, src, dst } = stack;
    await src.db('shop').collection<AnyDoc>('items').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i })));
    const id = 'schemadocdb';
    const stream = kinesis.uniqueStreamName(id);
    await kinesis.createStream(stream, 1);
    const common = ['--source-uri', source.uri, '--target-uri', target.uri, '--no-target-retry-writes', '--include', 'shop.*', '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', id];
    const proc = spawnMigrator(['full-migrate', ...common, '--lease-ttl', '5s', ...toolArgs(), '--data-dir', `/tmp/migrator-${id}-${process.pid}`, '--log-format', 'json']);
    // Amazon DocumentDB refuses retryable writes (https://docs.aws.amazon.com/documentdb/latest/developerguide/retryable-writes.html).
    const stateClient = new MongoClient(target.uri, { retryWrites: false });
    after(() => stateClient.close());
    const store = await StateStore.open({ client: stateClient });
    try {
      await waitForPhase(store, id, ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
      // Created during replication with a collation, which Amazon DocumentDB does not support
      // (preflight names such collections before the load; this one came later).
      await src.db('shop').createCollection('fr', { collation: FR });
      await src.db('shop').collection<AnyDoc>('fr').insertOne({ _id: 1, name: 'é' });
      await waitForPhase(store, id, ['READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
      const cut = await runMigrator(['cutover', ...common, '--writes-stopped', '--wait', '--timeout', '90s']);
      assert.equal(cut.exitCode, 7, cut.all);
    } catch (err) {
      proc.kill('SIGKILL');
      await proc;
      throw err;
    }
    const failed = await proc;
    assert.equal(failed.exitCode, 7);
    assert.match(String(failed.stderr), /Cutover verification failed: 1 schema difference\(s\) \(options: collection option collation: source \{"locale":"fr","strength":2\}, target absent \(Amazon DocumentDB 5\.0\.0 cannot hold collection option collation\)\)/);
    assert.match(String(failed.stderr), /--ignore-schema/);
    assert.equal(await dst.db('shop').collection('fr').countDocuments(), 1);
  });
});

describe('schema differences accepted knowingly (full-migrate --ignore-schema indexes)', () => {
  const stack = useLocalStack();

  test('the cutover leaves the indexes alone and completes, saying so (an index the user dropped on the target stays dropped)', { timeout: 300_000 }, async () => {
    const { src, dst } = stack;
    await seed(src);
    const { source, target, kinesis } = stack;
    const id = 'schemaignored';
    const stream = kinesis.uniqueStreamName(id);
    await kinesis.createStream(stream, 1);
    const common = ['--source-uri', source.uri, '--target-uri', target.uri, '--include', 'shop.*', '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', id];
    const proc = spawnMigrator(['full-migrate', ...common, '--ignore-schema', 'indexes', '--lease-ttl', '5s', ...toolArgs(), '--data-dir', `/tmp/migrator-${id}-${process.pid}`, '--log-format', 'json']);
    const store = await StateStore.open({ client: dst });
    const done = await whileRunning(proc, async () => {
      await waitForPhase(store, id, ['READY_FOR_CUTOVER'], { proc, timeoutMs: 120_000 });
      await dst.db('shop').collection('items').dropIndex('old_1');
      await cutoverAndWait(common);
    });
    assert.match(String(done.stdout), /1 schema difference\(s\) accepted with --ignore-schema/);
    assert.match(String(done.stderr), /"ignored":true,"msg":"schema difference \(ignored: --ignore-schema\): index old_1/);
    const names = (await dst.db('shop').collection('items').listIndexes().toArray()).map((i) => i.name).sort();
    assert.deepEqual(names, ['_id_', 'at_1'], 'the reconcile left the indexes alone');
  });
});
