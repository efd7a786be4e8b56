// LeaseKeeper (renewals, cap, loss) and the write fence of fenced-target.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient } from 'mongodb';
import { StateStore, type ShardDoc } from '../../src/state/store.js';
import { LeaseKeeper, LeaseLostError } from '../../src/state/lease-keeper.js';
import { fencedClient } from '../../src/apply/fenced-target.js';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';

describe('LeaseKeeper and the write fence', { timeout: 30_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let store: StateStore;

  before(async () => {
    emu = await startMongoEmulator({ port: 0 });
    client = new MongoClient(emu.uri);
    await client.connect();
    store = await StateStore.open({ client });
  });
  after(async () => {
    await client?.close();
    await emu?.stop();
  });

  it('keeps leases alive by renewing them, honours maxShards, releases them', async () => {
    const k = new LeaseKeeper({ store, migrationId: 'lk1', owner: 'me', ttlMs: 600, maxShards: 2 });
    k.start();
    try {
      assert.equal(await k.tryAcquire('s1'), true);
      assert.equal(await k.tryAcquire('s2'), true);
      assert.equal(await k.tryAcquire('s3'), false, 'cap of 2');
      const epoch = k.lease('s1')!.epoch;
      assert.equal(await k.tryAcquire('s1'), true, 'held: kept');
      assert.equal(k.lease('s1')!.epoch, epoch, 'not re-acquired (same epoch)');
      await new Promise((r) => setTimeout(r, 1500)); // > 2 TTLs
      assert.equal(k.holds('s1'), true, 'renewed in the background');
      assert.equal(await new LeaseKeeper({ store, migrationId: 'lk1', owner: 'other', ttlMs: 600 }).tryAcquire('s1'), false);
      await k.waitWritable('s1');
    } finally {
      k.stop();
      await k.releaseAll();
    }
    assert.equal(await new LeaseKeeper({ store, migrationId: 'lk1', owner: 'other', ttlMs: 600 }).tryAcquire('s1'), true, 'released');
  });

  it('reports a lease taken over as lost, and the fence then refuses writes', async () => {
    const lost: string[] = [];
    const k = new LeaseKeeper({ store, migrationId: 'lk2', owner: 'me', ttlMs: 600, onLost: (s) => lost.push(s) });
    k.start();
    try {
      assert.equal(await k.tryAcquire('s1'), true);
      const target = fencedClient(client, () => k.waitWritable('s1'));
      await target.db('fence').collection('c').insertOne({ _id: 1 } as never);
      // Another owner takes the lease (bumped epoch).
      await store.db.collection<ShardDoc>('shards').updateOne({ _id: 'lk2/s1' }, { $set: { 'lease.owner': 'thief' }, $inc: { 'lease.epoch': 1 } });
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(lost, ['s1']);
      assert.equal(k.holds('s1'), false);
      await assert.rejects(target.db('fence').collection('c').insertOne({ _id: 2 } as never), LeaseLostError);
      await assert.rejects(target.db('fence').collection('c').drop(), LeaseLostError);
      // Reads are not fenced.
      assert.equal(await target.db('fence').collection('c').countDocuments(), 1);
    } finally {
      k.stop();
    }
  });

  it('blocks writes while the lease runs short (state store unreachable) and fails them once it expired', async () => {
    const lost: string[] = [];
    const k = new LeaseKeeper({ store, migrationId: 'lk3', owner: 'me', ttlMs: 900, onLost: (s) => lost.push(s) });
    assert.equal(await k.tryAcquire('s1'), true);
    // No renewals reach the store from now on.
    const renew = store.renewLease.bind(store);
    store.renewLease = async () => {
      throw Object.assign(new Error('connection closed'), { name: 'MongoNetworkError' });
    };
    k.start();
    try {
      await k.waitWritable('s1'); // plenty left
      await new Promise((r) => setTimeout(r, 650)); // less than ttl/3 left now
      const started = performance.now();
      await assert.rejects(k.waitWritable('s1'), LeaseLostError);
      assert.ok(performance.now() - started > 50, 'waited for a renewal before giving up');
      assert.deepEqual(lost, ['s1']);
    } finally {
      store.renewLease = renew;
      k.stop();
    }
  });
});
