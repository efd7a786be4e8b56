// The state store's shard checkpoints as the transport writes them (kept whole), older documents
// without the newer fields, and the named writes of the embedded transport's restart (the only
// ones that may move a checkpoint backwards).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient, Timestamp } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { StateStore, sequenceKey, type ShardDoc } from '../../src/state/store.js';

const pos = (t: number) => ({ ct: new Timestamp({ t, i: 1 }), rt: { _data: `82${t.toString(16).toUpperCase().padStart(8, '0')}0000000104` } });

describe('StateStore: stream checkpoints and the embedded restart (emulator)', { timeout: 60_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let store: StateStore;

  before(async () => {
    emu = await startMongoEmulator({ port: 0 });
    client = await MongoClient.connect(emu.uri);
    store = await StateStore.open({ client, dbName: 'cpstate' });
  });
  after(async () => {
    await client?.close();
    await emu?.stop();
  });

  it('keeps the reader checkpoint whole: lastRecordIds come back as saved', async () => {
    const lease = (await store.acquireLease('k1', 'shard-0', 'me', { ttlMs: 60_000 }))!;
    const ids = ['1a2b3c4d00000001', 'ffeeddcc00000007'];
    const r = await store.saveApplyCheckpoint(lease, { sequenceNumber: '42', shardEnded: true, lastRecordIds: ids, position: pos(10), counters: { events: 3 } });
    assert.equal(r, 'saved');
    const cp = await store.getApplyCheckpoint('k1', 'shard-0');
    assert.deepEqual(cp?.lastRecordIds, ids);
    assert.equal(cp?.shardEnded, true);
    assert.equal(cp?.sequenceNumber, '42');
    assert.equal(cp?.counters.events, 3);
  });

  it('reads a checkpoint written before lastRecordIds were kept (no such field) and resumes from it', async () => {
    const shards = store.db.collection<ShardDoc>('shards');
    await shards.insertOne({
      _id: 'k2/shard-0',
      migrationId: 'k2',
      shardId: 'shard-0',
      lease: { owner: null, epoch: 3, expiresAt: new Date(0) },
      checkpoint: { sequenceNumber: '7', seqKey: sequenceKey('7'), ...pos(5), pos: 'x', counters: { events: 1 }, shardEnded: true, at: new Date(), epoch: 3 },
    });
    const cp = await store.getApplyCheckpoint('k2', 'shard-0');
    assert.equal(cp?.sequenceNumber, '7');
    assert.equal(cp?.shardEnded, true);
    assert.equal(cp?.lastRecordIds, undefined);
    // the next holder continues from it, never behind it
    const lease = (await store.acquireLease('k2', 'shard-0', 'me', { ttlMs: 60_000 }))!;
    assert.equal(await store.saveApplyCheckpoint(lease, { sequenceNumber: '6' }), 'stale');
    assert.equal(await store.saveApplyCheckpoint(lease, { sequenceNumber: '8', shardEnded: true, lastRecordIds: ['01'] }), 'saved');
    assert.deepEqual((await store.getApplyCheckpoint('k2', 'shard-0'))?.lastRecordIds, ['01']);
  });

  it('the embedded restart rewinds checkpoints onto a new stream: capture to P, each shard to P at its start, keeping counters and epochs', async () => {
    assert.equal(await store.saveCaptureCheckpoint('k3', pos(100), { events: 9 }), true);
    const lease = (await store.acquireLease('k3', 's-old', 'dead-run', { ttlMs: 60_000 }))!;
    await store.saveApplyCheckpoint(lease, { sequenceNumber: '9000', position: pos(80), counters: { events: 5 } });
    const kept = (await store.acquireLease('k3', 's-new', 'dead-run', { ttlMs: 60_000 }))!;
    await store.saveApplyCheckpoint(kept, { sequenceNumber: '9100', position: pos(90), counters: { events: 4 } });

    assert.equal(await store.freeShardLeasesOfDeadRun('k3'), 2);
    await store.rewindCaptureCheckpointForNewStream('k3', pos(80));
    const cc = await store.getCaptureCheckpoint('k3');
    assert.equal(cc?.ct.getHighBits(), 80, 'moved backwards, on purpose');
    assert.equal(cc?.counters.events, 9, 'counters kept');
    // saveCaptureCheckpoint still refuses to move it back
    assert.equal(await store.saveCaptureCheckpoint('k3', pos(70)), false);

    await store.forgetShardOfOldStream('k3', 's-old');
    await store.rewindApplyCheckpointForNewStream('k3', 's-new', pos(80));
    const shards = await store.listShards('k3');
    assert.deepEqual(shards.map((d) => d.shardId), ['s-new']);
    const cp = shards[0]!.checkpoint!;
    assert.equal(cp.sequenceNumber, '0');
    assert.equal(cp.ct?.getHighBits(), 80);
    assert.equal(cp.counters.events, 4);
    assert.equal(cp.epoch, kept.epoch);
    assert.equal(shards[0]!.lease.owner, null);
    // the dead run's lease value stays fenced out
    assert.equal(await store.saveApplyCheckpoint(kept, { sequenceNumber: '1' }), 'lease-lost');

    await store.rewindApplyCheckpointForNewStream('k3', 's-new', null);
    assert.equal(await store.getApplyCheckpoint('k3', 's-new'), null);
    await store.dropCaptureCheckpointForNewStream('k3');
    assert.equal(await store.getCaptureCheckpoint('k3'), null);
  });

  it('sets one config field of a migration', async () => {
    await store.createMigration('k4', { config: { streamName: 's' } });
    await store.setConfigField('k4', 'transport', 'embedded');
    assert.deepEqual((await store.getMigration('k4'))?.config, { streamName: 's', transport: 'embedded' });
  });
});
