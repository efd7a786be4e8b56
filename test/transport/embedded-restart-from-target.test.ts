// restartFromTarget: what the embedded transport does to the state store for its fresh stream.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hostname } from 'node:os';
import { execa } from 'execa';
import { MongoClient } from 'mongodb';
import { pino } from 'pino';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { StateStore, sequenceKey } from '../../src/state/store.js';
import { positionKey } from '../../src/model/change-envelope.js';
import { restartFromTarget } from '../../src/transport/embedded-kinesis.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { streamPosition as pos } from '../support/stream-positions.js';

const log = pino({ level: 'silent' });
const SHARD0 = 'shardId-000000000000';
const SHARD1 = 'shardId-000000000001';

/** The pid of a process that has exited (so it is not alive). */
async function deadPid(): Promise<number> {
  const child = execa(process.execPath, ['-e', '0']);
  const pid = child.pid!;
  await child;
  return pid;
}

describe('restartFromTarget (embedded transport)', { timeout: 60_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let store: StateStore;

  before(async () => {
    emu = await startMongoEmulator();
    client = await MongoClient.connect(emu.uri);
    store = await StateStore.open({ client, dbName: 'estate' });
  });
  after(async () => {
    await client?.close();
    await emu?.stop();
  });

  /** A shard with an applied checkpoint, held by `owner` (lease still unexpired). */
  async function appliedShard(id: string, shardId: string, owner: string, at: ReturnType<typeof pos>, seq: string) {
    const lease = await store.acquireLease(id, shardId, owner, { ttlMs: 60_000 });
    assert.ok(lease);
    assert.equal(await store.saveApplyCheckpoint(lease, { sequenceNumber: seq, position: at, counters: { events: 7 } }), 'saved');
  }

  it('moves capture back to the minimum applied position, resets sequence numbers, frees dead owners, drops unknown shards', async () => {
    const id = 'm-applied';
    await store.createMigration(id);
    const dead = `${hostname()}:${await deadPid()}:abcd1234`;
    await appliedShard(id, SHARD0, dead, pos(200), '49650000000000000000000000000000000000000000000000000000');
    await appliedShard(id, SHARD1, dead, pos(150), '49650000000000000000000000000000000000000000000000000099');
    // Capture was ahead of apply (its events were in the lost stream).
    await store.saveCaptureCheckpoint(id, pos(300), { events: 42 });

    const started = Date.now();
    const r = await restartFromTarget({ store, migrationId: id, shardIds: [SHARD0], log });
    assert.ok(Date.now() - started < 2_000, 'a dead local owner is not waited for');
    assert.equal(r.releasedLeases, 2);
    assert.equal(positionKey(r.captureFrom!), positionKey(pos(150)));

    const cc = await store.getCaptureCheckpoint(id);
    assert.equal(cc?.pos, positionKey(pos(150)), 'capture checkpoint moved back to the minimum applied position');
    assert.equal(cc?.counters.events, 42, 'counters kept');
    // The monotonic guard still holds after the reset.
    assert.equal(await store.saveCaptureCheckpoint(id, pos(100)), false);
    assert.equal(await store.saveCaptureCheckpoint(id, pos(160)), true);

    const shards = await store.listShards(id);
    assert.deepEqual(shards.map((s) => s.shardId), [SHARD0], 'shard of the old stream removed');
    const cp = await store.getApplyCheckpoint(id, SHARD0);
    assert.equal(cp?.sequenceNumber, '0');
    assert.equal(cp?.seqKey, sequenceKey('0'));
    assert.equal(cp?.pos, positionKey(pos(150)), 'every shard restarts at the minimum (the rest is replayed idempotently)');
    assert.equal(cp?.counters.events, 7);
    assert.equal(shards[0]!.lease.owner, null, 'lease released');

    // The new stream's sequence numbers can be smaller than the old ones: the guard accepts them.
    const lease = await store.acquireLease(id, SHARD0, 'new-owner', { ttlMs: 10_000 });
    assert.equal(await store.saveApplyCheckpoint(lease!, { sequenceNumber: '1000', position: pos(151) }), 'saved');
  });

  it('nothing applied yet: capture starts over from the resume point', async () => {
    const id = 'm-nothing-applied';
    await store.createMigration(id);
    await store.saveCaptureCheckpoint(id, pos(300), { events: 5 });
    // A shard lease taken, but nothing applied (no checkpoint).
    await store.acquireLease(id, SHARD0, `${hostname()}:${process.pid}:ffff0000`, { ttlMs: 60_000 });
    const r = await restartFromTarget({ store, migrationId: id, shardIds: [SHARD0], log });
    assert.equal(r.captureFrom, null);
    assert.equal(r.keptCaptureCheckpoint, false);
    assert.equal(await store.getCaptureCheckpoint(id), null);
  });

  it('a shard that applied nothing pins capture to the resume point even if another shard applied', async () => {
    const id = 'm-one-shard-empty';
    await store.createMigration(id);
    const dead = `${hostname()}:${await deadPid()}:abcd1234`;
    await appliedShard(id, SHARD0, dead, pos(200), '1');
    await store.acquireLease(id, SHARD1, dead, { ttlMs: 60_000 });
    await store.saveCaptureCheckpoint(id, pos(300), { events: 5 });
    const r = await restartFromTarget({ store, migrationId: id, shardIds: [SHARD0], log });
    assert.equal(r.captureFrom, null);
    assert.equal(await store.getCaptureCheckpoint(id), null);
    assert.equal((await store.getApplyCheckpoint(id, SHARD0)) ?? null, null, 'checkpoint removed: apply starts at the start of the stream');
  });

  it('keeps the capture checkpoint when capture never sent anything', async () => {
    const id = 'm-idle';
    await store.createMigration(id);
    await store.saveCaptureCheckpoint(id, pos(300), { events: 0, markers: 0 });
    const r = await restartFromTarget({ store, migrationId: id, shardIds: [SHARD0], log });
    assert.equal(r.keptCaptureCheckpoint, true);
    assert.equal((await store.getCaptureCheckpoint(id))?.pos, positionKey(pos(300)));
  });

  it('waits for the lease of a silent owner on another machine to expire', async () => {
    const id = 'm-wait';
    await store.createMigration(id);
    await store.acquireLease(id, SHARD0, 'other-host:1:aaaa', { ttlMs: 600 });
    const started = Date.now();
    await restartFromTarget({ store, migrationId: id, shardIds: [SHARD0], log, graceMs: 100 });
    assert.ok(Date.now() - started >= 500, 'waited for the expiry');
    assert.equal((await store.listShards(id))[0]!.lease.owner, null);
  });

  it('refuses to run next to a live owner that keeps renewing its lease', async () => {
    const id = 'm-live';
    await store.createMigration(id);
    let lease = (await store.acquireLease(id, SHARD0, 'other-host:1:bbbb', { ttlMs: 500 }))!;
    const renew = setInterval(() => void store.renewLease(lease).then((l) => l && (lease = l)), 100);
    try {
      await assert.rejects(
        restartFromTarget({ store, migrationId: id, shardIds: [SHARD0], log, graceMs: 100 }),
        (err: unknown) => err instanceof MigratorError && err.exitCode === ExitCode.STATE_CONFLICT && /other-host:1:bbbb/.test(err.message),
      );
    } finally {
      clearInterval(renew);
    }
    assert.equal((await store.listShards(id))[0]!.lease.owner, 'other-host:1:bbbb', 'a live lease is left alone');
  });
});
