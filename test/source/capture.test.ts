import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Binary, BSON, Decimal128, Double, Int32, Long, MaxKey, MinKey, MongoClient, ObjectId, Timestamp, BSONRegExp } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { readStreamEnvelopes } from '../support/stream-contents.js';
import { startKinesisFaultProxy } from '../support/kinesis-fault-proxy.js';
import { KINESIS_LOCAL_REGION } from '../support/kinesis-local.js';
import { createKinesisClient } from '../../src/transport/kinesis-client.js';
import { runCapture } from '../../src/source/capture-runner.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore, type ShardDoc } from '../../src/state/store.js';
import { createLogger } from '../../src/util/logger.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { compareEventPosition, isDataEnvelope, type ChangeEnvelope } from '../../src/model/change-envelope.js';
import { waitUntil } from '../support/wait.js';

type AnyDoc = { _id: number | string | ObjectId; [k: string]: unknown };

const log = createLogger({ format: 'json', verbose: false, out: { write: () => true } as unknown as NodeJS.WritableStream });

/** Runs capture in the background until `stop()` (plain CDC unless `cdcOnly: false`); resolves with its result. */
function startCapture(opts: Omit<Parameters<typeof runCapture>[0], 'signal' | 'log'>) {
  const controller = new AbortController();
  const done = runCapture({ cdcOnly: true, ...opts, signal: controller.signal, log, checkpointIntervalMs: 100, maxAwaitTimeMs: 100 });
  return { done, stop: async () => (controller.abort(), done) };
}

const keyOf = (e: ChangeEnvelope) => `${e.ns.db}.${e.ns.coll}/${Buffer.from(BSON.serialize({ k: e.key?._id ?? null })).toString('hex')}`;

describe('capture: change stream → Kinesis', () => {
  let source: MongoEmulator;
  let stateEmu: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;
  let stateClient: MongoClient;
  let store: StateStore;

  before(async () => {
    [source, stateEmu, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal()]);
    src = new MongoClient(source.uri);
    stateClient = new MongoClient(stateEmu.uri);
    store = await StateStore.open({ client: stateClient });
  });
  after(async () => {
    await Promise.all([src.close(), stateClient.close()]);
    await Promise.all([source.stop(), stateEmu.stop(), kinesis.stop()]);
  });

  test('every change of the included namespaces arrives, BSON-exact, in per-document order on 4 shards; restart resumes from the checkpoint', async () => {
    const stream = kinesis.uniqueStreamName('cap');
    await kinesis.createStream(stream, 4);
    const rules = new NamespaceRules({ include: ['bar.*'], exclude: ['bar.secret'] });
    const migrationId = 'cap-1';
    const base = { source: src, store, migrationId, rules, kinesis: kinesis.client, streamName: stream };
    const cap = startCapture(base);
    // Capture starts "now": write only once its change stream is open (its first, idle checkpoint),
    // or writes made before that would rightly not be captured.
    await waitUntil(async () => (await store.getCaptureCheckpoint(migrationId)) !== null, 20_000, 'the change stream to open');

    const products = src.db('bar').collection<AnyDoc>('products');
    const typed = {
      _id: new ObjectId(), i32: new Int32(7), d: new Double(1), l: Long.fromString('9007199254740993'),
      dec: Decimal128.fromString('3.14159265358979323846'), date: new Date(86400000), bin: new Binary(Buffer.from([1, 2, 3]), 4),
      ts: new Timestamp({ t: 5, i: 6 }), re: new BSONRegExp('^x', 'i'), min: new MinKey(), max: new MaxKey(),
      nested: { arr: [1, { deep: [new Int32(2)] }] },
    };
    await products.insertOne(typed);
    for (let i = 0; i < 200; i++) await products.insertOne({ _id: i, n: 0, tags: ['a', 'b', 'c'] });
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 200; i += 3) await products.updateOne({ _id: i }, { $set: { n: round }, $unset: { tags: '' } });
    }
    await products.replaceOne({ _id: 1 }, { replaced: true });
    await products.deleteOne({ _id: 2 });
    await src.db('bar').collection<AnyDoc>('secret').insertOne({ _id: 'never captured' });
    await src.db('other').collection<AnyDoc>('x').insertOne({ _id: 'not included' });
    const big = 'x'.repeat(3 * 1024 * 1024);
    await src.db('bar').collection<AnyDoc>('big').insertOne({ _id: 'big', big });
    await src.db('bar').collection<AnyDoc>('tmp').insertOne({ _id: 1 });
    await src.db('bar').collection<AnyDoc>('tmp').drop();
    // The operationTime of a write's own reply is that write's cluster time (a ping's may lag).
    const lastOp = (await src.db('bar').command({ insert: 'sentinel', documents: [{ _id: 'last' }] })).operationTime as Timestamp;

    await waitUntil(async () => {
      const cp = await store.getCaptureCheckpoint(migrationId);
      return !!cp && cp.ct.compare(lastOp) >= 0;
    }, 30_000, 'the capture checkpoint to reach the last write');
    const first = await cap.stop();
    const shards = await readStreamEnvelopes(kinesis.client, stream);
    assert.equal(shards.size, 4);
    const all = [...shards.values()].flat();
    const distinct = all.filter((e) => e.op !== 'drop').length + 1;
    assert.ok(first.events >= 1 + 200 + 3 * 67 + 2 + 3 + 1, `events captured: ${first.events}, distinct events in the stream: ${distinct}`);
    assert.ok(all.every((e) => e.ns.db === 'bar' && e.ns.coll !== 'secret'), 'excluded namespaces never reach the stream');
    // Per document: events in source order, all on one shard.
    const shardOf = new Map<string, string>();
    for (const [shard, envs] of shards) {
      const last = new Map<string, ChangeEnvelope>();
      for (const e of envs.filter(isDataEnvelope)) {
        const k = keyOf(e);
        assert.equal(shardOf.get(k) ?? shard, shard, `all events of ${k} on one shard`);
        shardOf.set(k, shard);
        const prev = last.get(k);
        if (prev) assert.ok(compareEventPosition(prev, e) < 0, `events of ${k} in order`);
        last.set(k, e);
      }
    }
    assert.ok(new Set(shardOf.values()).size === 4, 'documents spread over all shards');
    const drops = all.filter((e) => e.op === 'drop');
    assert.equal(drops.length, 4, 'a drop is broadcast to every shard');
    // The source has expanded events (mongodb-7.0): a collection's creation is broadcast too.
    assert.equal(all.filter((e) => e.op === 'create' && e.ns.coll === 'tmp').length, 4, 'a create is broadcast to every shard');
    // BSON types survive exactly.
    const ins = all.find((e) => e.op === 'insert' && (e.key?._id as ObjectId)?.equals?.(typed._id));
    assert.ok(ins, 'typed insert captured');
    assert.ok(Buffer.from(BSON.serialize(ins.doc!)).equals(Buffer.from(BSON.serialize(typed))), 'fullDocument byte-identical');
    const bigEnv = all.find((e) => e.ns.coll === 'big' && e.op === 'insert');
    assert.equal((bigEnv?.doc?.big as { value?: string } | string | undefined)?.toString().length, big.length, '3 MiB document chunked and reassembled');
    // An update after $unset carries the full document without the removed field.
    const upd = all.filter((e) => e.op === 'update' && e.key?._id && (e.key._id as Int32).valueOf?.() === 3);
    assert.ok(upd.length === 3 && upd.every((e) => e.doc && !('tags' in e.doc)), 'updates carry updateLookup documents');

    // Restart: resumes after the checkpoint; nothing before it is sent again.
    const countBefore = all.length;
    const cap2 = startCapture(base);
    const lastOp2 = (await src.db('bar').command({ insert: 'products', documents: [{ _id: 'after-restart' }] })).operationTime as Timestamp;
    await waitUntil(async () => (await store.getCaptureCheckpoint(migrationId))!.ct.compare(lastOp2) >= 0, 20_000, 'second checkpoint');
    await cap2.stop();
    const again = [...(await readStreamEnvelopes(kinesis.client, stream)).values()].flat();
    assert.equal(again.length, countBefore + 1, 'exactly one new event after the restart');
  });

  test('history lost: a clear error with its exit code, state store untouched', async () => {
    const small = await startMongoEmulator({ historyLimit: 5 });
    const c = new MongoClient(small.uri);
    try {
      const stream = kinesis.uniqueStreamName('lost');
      await kinesis.createStream(stream, 1);
      const opTime = (await c.db('bar').command({ ping: 1 })).operationTime as Timestamp;
      for (let i = 0; i < 20; i++) await c.db('bar').collection<AnyDoc>('c').insertOne({ _id: i });
      const migrationId = 'lost-1';
      const err = await runCapture({
        source: c, store, migrationId, rules: new NamespaceRules(), kinesis: kinesis.client, streamName: stream,
        start: { ct: opTime }, signal: new AbortController().signal, log,
      }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof MigratorError, `a MigratorError, got ${String(err)}`);
      assert.equal(err.exitCode, ExitCode.HISTORY_LOST);
      assert.match(err.message, /no longer has the change-stream history/);
      assert.equal(await store.getCaptureCheckpoint(migrationId), null, 'no checkpoint written');
    } finally {
      await c.close();
      await small.stop();
    }
  });
  test('a capture container started before full-migrate created its migration waits for the resume point, then captures from it (not from when it started)', async () => {
    const stream = kinesis.uniqueStreamName('cap-early');
    await kinesis.createStream(stream, 1);
    const migrationId = 'cap-early';
    const rules = new NamespaceRules({ include: ['early.*'] });
    const items = src.db('early').collection<AnyDoc>('items');
    const cap = startCapture({ source: src, store, migrationId, rules, kinesis: kinesis.client, streamName: stream, cdcOnly: false });
    try {
      await items.insertOne({ _id: 'before the resume point' });
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await store.getCaptureCheckpoint(migrationId), null, 'no migration yet: capture has not started');
      await store.createMigration(migrationId);
      // full-migrate records the resume point, then the source changes while capture has still not opened its stream.
      const resumeAt = (await src.db('early').command({ insert: 'items', documents: [{ _id: 'at the resume point' }] })).operationTime as Timestamp;
      await items.insertOne({ _id: 'after the resume point' });
      await store.setResumePoint(migrationId, { ct: resumeAt });
      await waitUntil(async () => (await store.getCaptureCheckpoint(migrationId))?.counters.events === 2, 20_000, 'capture to take both changes from the resume point');
    } finally {
      await cap.stop();
    }
    const ids = [...(await readStreamEnvelopes(kinesis.client, stream)).values()].flat().filter((e) => e.ns.db === 'early').map((e) => e.key?._id);
    assert.deepEqual(ids, ['at the resume point', 'after the resume point']);
  });

  test('one active capture per migration: a second one stands by, takes over when the first stops or loses its lease; nothing missing', async () => {
    const stream = kinesis.uniqueStreamName('cap-lease');
    await kinesis.createStream(stream, 2);
    const migrationId = 'cap-lease';
    const rules = new NamespaceRules({ include: ['lease.*'] });
    const base = { source: src, store, migrationId, rules, kinesis: kinesis.client, streamName: stream, leaseTtlMs: 1500 };
    const holder = async () => (await store.db.collection<ShardDoc>('capture_leases').findOne({ migrationId }))?.lease.owner ?? null;
    const items = src.db('lease').collection<AnyDoc>('items');
    const a = startCapture({ ...base, ownerId: 'cap-a' });
    await waitUntil(async () => (await store.getCaptureCheckpoint(migrationId)) !== null, 20_000, 'capture A to open its stream');
    const b = startCapture({ ...base, ownerId: 'cap-b' });
    for (let i = 0; i < 50; i++) await items.insertOne({ _id: i, v: 0 });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await holder(), 'cap-a', 'A is active, B stands by');

    // A stops (docker stop): it releases the lease and B takes over from A's checkpoint.
    const firstRun = await a.stop();
    await waitUntil(async () => (await holder()) === 'cap-b', 10_000, 'B to take the lease');
    for (let i = 0; i < 50; i++) await items.updateOne({ _id: i }, { $set: { v: 1 } });

    // B loses its lease (as if frozen past its expiry and another process took over): it stops
    // capturing and stands by; C, the new holder, continues.
    const stolen = await store.db.collection<ShardDoc>('capture_leases').findOneAndUpdate(
      { migrationId },
      { $set: { 'lease.owner': 'cap-c', 'lease.expiresAt': new Date(Date.now() + 60_000) }, $inc: { 'lease.epoch': 1 } },
      { returnDocument: 'after' },
    );
    assert.equal(stolen?.lease.owner, 'cap-c');
    await new Promise((r) => setTimeout(r, 1500)); // B's next renewal fails: B stops
    await store.db.collection<ShardDoc>('capture_leases').updateOne({ migrationId }, { $set: { 'lease.owner': null, 'lease.expiresAt': new Date(0) } });
    await waitUntil(async () => (await holder()) === 'cap-b', 10_000, 'B to take the freed lease again');
    for (let i = 0; i < 50; i++) await items.deleteOne({ _id: i });
    const lastOp = (await src.db('lease').command({ insert: 'sentinel', documents: [{ _id: 'last' }] })).operationTime as Timestamp;
    await waitUntil(async () => {
      const cp = await store.getCaptureCheckpoint(migrationId);
      return !!cp && cp.ct.compare(lastOp) >= 0;
    }, 30_000, 'the checkpoint to reach the last write');
    await b.stop();
    assert.ok(firstRun.events >= 50, `A captured the inserts (${firstRun.events})`);

    // Every document's insert, update and delete, in that order (re-sent copies allowed).
    const perDoc = new Map<string, string[]>();
    for (const envs of (await readStreamEnvelopes(kinesis.client, stream)).values()) {
      for (const e of envs.filter((x) => x.ns.coll === 'items' && isDataEnvelope(x))) {
        const k = keyOf(e);
        const ops = perDoc.get(k) ?? [];
        if (ops.at(-1) !== e.op) ops.push(e.op);
        perDoc.set(k, ops);
      }
    }
    assert.equal(perDoc.size, 50);
    for (const [k, ops] of perDoc) assert.deepEqual(ops.filter((op, i) => ops.indexOf(op) === i), ['insert', 'update', 'delete'], k);
  });
  test('a stop with a throttled stream ends after the flush deadline, checkpoints only what Kinesis took; a rerun delivers the rest', async () => {
    const stream = kinesis.uniqueStreamName('cap-stop');
    await kinesis.createStream(stream, 1);
    const proxy = await startKinesisFaultProxy(kinesis.endpoint, () => 0); // rand 0: every fault fires
    const client = createKinesisClient({ endpoint: proxy.endpoint, region: KINESIS_LOCAL_REGION, httpHandler: 'http1' });
    const migrationId = 'cap-stop';
    const rules = new NamespaceRules({ include: ['stop.*'] });
    try {
      const cap = startCapture({ source: src, store, migrationId, rules, kinesis: client, streamName: stream, stopFlushMs: 1000 });
      await waitUntil(async () => (await store.getCaptureCheckpoint(migrationId)) !== null, 20_000, 'the change stream to open');
      const before = (await store.getCaptureCheckpoint(migrationId))!.ct;
      proxy.set({ throttleRate: 1, throttleOps: ['PutRecords'] });
      for (let i = 0; i < 20; i++) await src.db('stop').collection<AnyDoc>('items').insertOne({ _id: i });
      await new Promise((r) => setTimeout(r, 500));
      const t0 = performance.now();
      const stopped = await cap.stop();
      const ms = performance.now() - t0;
      assert.ok(ms < 8000, `stopped after ${Math.round(ms)} ms (flush deadline 1 s, well inside a 10 s grace period)`);
      assert.equal(stopped.events, 21, 'the events were handed to the producer (the 20 inserts and the create of stop.items)');
      const after = (await store.getCaptureCheckpoint(migrationId))!.ct;
      const firstWrite = (await src.db('stop').collection<AnyDoc>('items').find().toArray()).length;
      assert.equal(firstWrite, 20);
      assert.ok(after.compare(before) >= 0);
      const inStream = [...(await readStreamEnvelopes(kinesis.client, stream)).values()].flat().filter((e) => e.ns.coll === 'items' && isDataEnvelope(e));
      assert.equal(inStream.length, 0, 'nothing reached the stream while every PutRecords was throttled');

      // The checkpoint did not cover the unsent events: a rerun (stream healthy) sends them all.
      proxy.set({});
      const again = startCapture({ source: src, store, migrationId, rules, kinesis: client, streamName: stream });
      const lastOp = (await src.db('stop').command({ insert: 'sentinel', documents: [{ _id: 'last' }] })).operationTime as Timestamp;
      await waitUntil(async () => (await store.getCaptureCheckpoint(migrationId))!.ct.compare(lastOp) >= 0, 30_000, 'the rerun to catch up');
      await again.stop();
      const ids = [...(await readStreamEnvelopes(kinesis.client, stream)).values()].flat().filter((e) => e.ns.coll === 'items' && isDataEnvelope(e)).map((e) => Number(e.key?._id));
      assert.deepEqual([...new Set(ids)].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i), 'all 20 inserts delivered after the rerun');
    } finally {
      client.destroy();
      await proxy.stop();
    }
  });
});
