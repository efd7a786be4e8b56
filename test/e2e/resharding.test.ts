/**
 * Issue #11, defect 7: resharding around DDL and barriers. A DDL or cutover-barrier copy written
 * before a Kinesis shard split exists only in the parent shard; the split's children never hold
 * one. Apply's DDL gate and the cutover must judge "every shard passed it" by shard lineage, not by
 * the shards open now (src/transport/shard-lineage.ts).
 *
 * Each test runs `migrator full-migrate` as a user would, with kinesis-local behind the fault proxy
 * so that apply's GetRecords can be held back (throttled) while the broadcast copy is in the parent
 * and the shard is split: the split then always happens after the copy and before apply read it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DescribeStreamSummaryCommand, SplitShardCommand } from '@aws-sdk/client-kinesis';
import { type ResultPromise } from 'execa';
import { MongoClient, type Document, type Timestamp } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { startKinesisFaultProxy, type KinesisFaultProxy } from '../support/kinesis-fault-proxy.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { prng } from '../support/prng.js';
import { StateStore, type MigrationPhase } from '../../src/state/store.js';
import { MARKER_COLLECTION } from '../../src/source/capture-runner.js';
import { sleep } from '../support/wait.js';
import { spawnMigrator, stderrTail, cutoverAndWait } from '../support/full-migrate-process.js';
import { waitForPhase } from '../support/phases.js';

const STATE_DB = 'migrator_state';
type AnyDoc = Document & { _id: number | string };

const tsAtOrAfter = (a: Timestamp, b: Timestamp) =>
  a.getHighBits() >>> 0 !== b.getHighBits() >>> 0 ? a.getHighBits() >>> 0 > b.getHighBits() >>> 0 : a.getLowBits() >>> 0 >= b.getLowBits() >>> 0;

describe('resharding around DDL and cutover barriers (full-migrate, kinesis-local split)', { timeout: 600_000 }, () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let proxy: KinesisFaultProxy;
  let src: MongoClient;
  let dst: MongoClient;
  let store: StateStore;

  before(async () => {
    await ensureGoTools();
    [source, target, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal()]);
    proxy = await startKinesisFaultProxy(kinesis.endpoint, prng(7));
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri);
    store = await StateStore.open({ client: dst });
  });
  after(async () => {
    await Promise.all([src?.close(), dst?.close()]);
    await proxy?.stop();
    await Promise.all([source?.stop(), target?.stop(), kinesis?.stop()]);
  });

  /** Starts full-migrate on a fresh stream through the proxy; resolves once READY_FOR_CUTOVER. */
  async function startMigration(id: string, db: string, shards: number) {
    const stream = kinesis.uniqueStreamName(id);
    await kinesis.createStream(stream, shards);
    const common = [
      '--source-uri', source.uri, '--target-uri', target.uri, '--include', `${db}.*`, '--map', `${db}:${db}_new`,
      '--kinesis-stream', stream, '--kinesis-endpoint', proxy.endpoint, '--migration-id', id,
    ];
    const env = { MIGRATOR_MONGODUMP_PATH: goToolPath('mongodump'), MIGRATOR_MONGORESTORE_PATH: goToolPath('mongorestore'), CI: 'true', MIGRATOR_DATA_DIR: `/tmp/migrator-reshard-${id}-${process.pid}` };
    const proc: ResultPromise = spawnMigrator(['full-migrate', ...common, '--lease-ttl', '3s', '--log-format', 'json'], { env });
    const failWith = async (msg: string): Promise<never> => {
      proc.kill('SIGKILL');
      const r = await proc;
      throw new Error(`${msg}\n--- full-migrate stderr (tail) ---\n${stderrTail(r.stderr, 40)}`);
    };
    const waitPhase = (phases: MigrationPhase[], ms: number) =>
      waitForPhase(store, id, phases, { proc, timeoutMs: ms, pollMs: 200, logTail: () => '' }).catch((err: Error) => failWith(err.message));
    /** Waits until capture's durable checkpoint is at or after `ct`: the event is in the stream. */
    const waitCaptured = async (ct: Timestamp) => {
      const end = Date.now() + 60_000;
      while (Date.now() < end) {
        const cp = await store.getCaptureCheckpoint(id);
        if (cp && tsAtOrAfter(cp.ct, ct)) return;
        await sleep(100);
      }
      return failWith('capture did not checkpoint past the broadcast within 60 s');
    };
    /** Splits the stream's first shard in two (SplitShard) and waits until the stream is ACTIVE. */
    const split = async () => {
      await kinesis.client.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: 'shardId-000000000000', NewStartingHashKey: (2n ** 126n).toString() }));
      for (let i = 0; i < 500; i++) {
        const s = await kinesis.client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
        if (s.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
        await sleep(20);
      }
      throw new Error('stream not ACTIVE after the split');
    };
    /** Waits for full-migrate to exit; asserts COMPLETED, then `migrator verify` (source = target). */
    const finish = async (ms: number) => {
      const done = await Promise.race([proc, sleep(ms).then(() => undefined)]);
      if (!done) return failWith(`full-migrate did not complete within ${ms} ms (cutover: ${JSON.stringify(await store.getCutover(id))})`);
      assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
      assert.equal((await store.getMigration(id))?.phase, 'COMPLETED');
      assert.equal((await store.getCutover(id))?.state, 'completed');
      const verify = await runMigrator(['verify', ...common], { env });
      assert.equal(verify.exitCode, 0, verify.all);
    };
    await waitPhase(['READY_FOR_CUTOVER'], 180_000);
    return { common, env, proc, waitPhase, waitCaptured, split, finish };
  }

  test('a split during replication with a rename in flight: the parent runs the DDL, the cutover completes, data equal', async () => {
    const id = 'reshard-ddl';
    const db = src.db('rddl');
    await db.collection<AnyDoc>('orders').insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i, total: i })));
    await db.collection<AnyDoc>('products').insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, name: `p${i}` })));
    const m = await startMigration(id, 'rddl', 1);

    const watch = db.watch([{ $match: { operationType: 'rename' } }]);
    const renameEvent = watch.next();
    // apply reads nothing from here on until the split is done
    proxy.set({ throttleRate: 1, throttleOps: ['GetRecords'] });
    await db.collection<AnyDoc>('orders').updateMany({ _id: { $lt: 10 } }, { $set: { touched: 1 } });
    await db.collection('orders').rename('orders_archive');
    await db.collection<AnyDoc>('orders').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: 1000 + i, total: -i }))); // re-created
    const ct = ((await renameEvent) as { clusterTime: Timestamp }).clusterTime;
    await watch.close();
    await m.waitCaptured(ct); // the rename's copy is in shard 0
    await m.split();
    // written after the split: into the children
    await db.collection('products').updateMany({}, { $set: { afterSplit: true } });
    await db.collection<AnyDoc>('orders_archive').insertOne({ _id: 'late', total: 0 });
    proxy.set({});

    await sleep(1000);
    await m.waitPhase(['READY_FOR_CUTOVER'], 120_000);
    await cutoverAndWait(m.common, { timeout: '120s', env: m.env });
    await m.finish(60_000);
    const t = dst.db('rddl_new');
    assert.equal(await t.collection('orders_archive').countDocuments(), 51);
    assert.equal(await t.collection('orders_archive').countDocuments({ touched: 1 }), 10);
    assert.equal(await t.collection('orders').countDocuments(), 20);
    assert.equal(await t.collection('products').countDocuments({ afterSplit: true }), 100);
  });

  test('a split inside the cutover (after the marker, before every shard reached it): the cutover completes, data equal', async () => {
    const id = 'reshard-cutover';
    const db = src.db('rcut');
    await db.collection<AnyDoc>('items').insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, v: i })));
    const m = await startMigration(id, 'rcut', 2);
    await db.collection('items').updateMany({}, { $inc: { v: 1 } });
    await db.collection<AnyDoc>('items').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: 500 + i, v: 0 })));

    const markers = src.db(STATE_DB).collection(MARKER_COLLECTION).watch([{ $match: { operationType: 'insert' } }]);
    const markerEvent = markers.next();
    proxy.set({ throttleRate: 1, throttleOps: ['GetRecords'] });
    const req = await runMigrator(['cutover', ...m.common, '--writes-stopped'], { env: m.env });
    assert.equal(req.exitCode, 0, req.all);
    const ct = ((await markerEvent) as { clusterTime: Timestamp }).clusterTime;
    await markers.close();
    await m.waitCaptured(ct); // the marker's copies are in shard 0 and shard 1
    await m.split(); // shard 0 → two children that never get a copy
    proxy.set({});
    await m.finish(120_000);
    assert.equal(await dst.db('rcut_new').collection('items').countDocuments(), 120);
    assert.equal(await dst.db('rcut_new').collection('items').countDocuments({ v: 0 }), 20);
  });
});
