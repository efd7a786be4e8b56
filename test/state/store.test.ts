// State store against the MongoDB emulator.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient, Timestamp } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { STATE_SCHEMA_VERSION, StateStore, leaseRemainingMs, phaseBeforeFailure, sequenceKey, type ShardDoc } from '../../src/state/store.js';
import { streamPosition as pos } from '../support/stream-positions.js';


describe('StateStore (emulator)', { timeout: 60_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let nowMs = Date.UTC(2025, 0, 1);
  const now = () => new Date(nowMs);
  let store: StateStore;

  before(async () => {
    emu = await startMongoEmulator({ port: 0 });
    client = await MongoClient.connect(emu.uri);
    store = await StateStore.open({ client, dbName: 'mstate', now });
  });
  after(async () => {
    await client?.close();
    await emu?.stop();
  });

  it('creates its indexes idempotently', async () => {
    await store.ensureIndexes();
    await StateStore.open({ client, dbName: 'mstate', now });
    const names = (await store.db.collection<ShardDoc>('shards').listIndexes().toArray()).map((i) => i.name);
    assert.ok(names.includes('migration_shard'));
  });

  it('creates a migration once, guards phase transitions, sets the resume point once, records errors', async () => {
    const m = await store.createMigration('m1', { config: { source: 'x' } });
    assert.equal(m.phase, 'CREATED');
    nowMs += 1000;
    const again = await store.createMigration('m1', { config: { source: 'other' } });
    assert.deepEqual(again.config, { source: 'x' }, 'existing migration unchanged');
    assert.equal(again.createdAt.getTime(), m.createdAt.getTime());

    assert.equal(await store.setPhase('m1', 'INITIAL_LOAD', { from: ['CREATED'] }), true);
    assert.equal(await store.setPhase('m1', 'INITIAL_LOAD', { from: ['CREATED'] }), false, 'guarded');
    assert.equal(await store.setPhase('missing', 'FAILED'), false);

    assert.equal(await store.setResumePoint('m1', pos(100)), true);
    assert.equal(await store.setResumePoint('m1', pos(200)), false, 'never moved');
    assert.equal((await store.getMigration('m1'))!.resumePoint!.ct.t, 100);

    await store.recordError('m1', new TypeError('boom'));
    const withErr = await store.getMigration('m1');
    assert.equal(withErr!.lastError!.message, 'boom');
    assert.equal(withErr!.lastError!.phase, 'INITIAL_LOAD');
    await store.clearError('m1');
    assert.equal((await store.getMigration('m1'))!.lastError, undefined);
    assert.deepEqual((await store.listMigrations()).map((x) => x._id), ['m1']);
  });

  it('never moves the capture checkpoint backwards', async () => {
    assert.equal(await store.saveCaptureCheckpoint('m1', pos(10), { events: 1 }), true, 'first');
    assert.equal(await store.saveCaptureCheckpoint('m1', pos(12), { events: 5 }), true, 'forward');
    assert.equal(await store.saveCaptureCheckpoint('m1', pos(11), { events: 9 }), false, 'backwards refused');
    assert.equal(await store.saveCaptureCheckpoint('m1', pos(12), { events: 9 }), false, 'same position: no-op');
    assert.equal(await store.saveCaptureCheckpoint('m1', pos(12, 2), { events: 6 }), true, 'same second, later increment');
    const cp = await store.getCaptureCheckpoint('m1');
    assert.equal(cp!.ct.t, 12);
    assert.equal(cp!.ct.i, 2);
    assert.deepEqual(cp!.counters, { events: 6 });
    assert.deepEqual(cp!.rt, pos(12, 2).rt);
    // Concurrent writers: the highest position wins whatever the order.
    const order = [20, 25, 21, 24, 22, 23];
    await Promise.all(order.map((t) => store.saveCaptureCheckpoint('m1', pos(t))));
    assert.equal((await store.getCaptureCheckpoint('m1'))!.ct.t, 25);
  });

  it('hands shard leases over only when free or expired, bumping the epoch', async () => {
    const ttlMs = 10_000;
    const a = await store.acquireLease('m1', 'shard-0', 'proc-a', { ttlMs, graceMs: 1000 });
    assert.ok(a);
    assert.equal(a.epoch, 1);
    assert.equal(leaseRemainingMs(a, now()), ttlMs);
    assert.equal(await store.acquireLease('m1', 'shard-0', 'proc-b', { ttlMs, graceMs: 1000 }), null, 'held by a');

    nowMs += 4000;
    const renewed = await store.renewLease(a);
    assert.ok(renewed);
    assert.equal(leaseRemainingMs(renewed, now()), ttlMs);

    nowMs += ttlMs + 500; // expired, but within the grace period
    assert.equal(await store.acquireLease('m1', 'shard-0', 'proc-b', { ttlMs, graceMs: 1000 }), null, 'grace for clock skew');
    assert.equal(await store.renewLease(renewed), null, 'an expired lease cannot be renewed');
    nowMs += 1000;
    const b = await store.acquireLease('m1', 'shard-0', 'proc-b', { ttlMs, graceMs: 1000 });
    assert.ok(b, 'stolen after expiry + grace');
    assert.equal(b.epoch, 2);
    assert.equal(b.owner, 'proc-b');
    assert.equal(await store.renewLease(renewed), null, 'the old owner lost it');

    // Release lets another process take it at once.
    assert.equal(await store.releaseLease(renewed), false, 'not ours any more');
    assert.equal(await store.releaseLease(b), true);
    const c = await store.acquireLease('m1', 'shard-0', 'proc-c', { ttlMs });
    assert.equal(c!.epoch, 3);

    // Two processes racing for a free shard: exactly one wins.
    const racers = await Promise.all(['p1', 'p2', 'p3', 'p4'].map((o) => store.acquireLease('m1', 'shard-race', o, { ttlMs })));
    assert.equal(racers.filter(Boolean).length, 1);
    const shards = await store.listShards('m1');
    assert.deepEqual(shards.map((s) => s.shardId), ['shard-0', 'shard-race']);
  });

  it('writes an apply checkpoint only for the current lease holder, never backwards', async () => {
    const ttlMs = 5_000;
    const a = (await store.acquireLease('m2', 'shard-1', 'proc-a', { ttlMs }))!;
    assert.equal(await store.saveApplyCheckpoint(a, { sequenceNumber: '49590338271490256608559692538361571095921575989136588898', position: pos(50), counters: { applied: 3 } }), 'saved');
    assert.equal(await store.saveApplyCheckpoint(a, { sequenceNumber: '49590338271490256608559692538361571095921575989136588999', position: pos(51) }), 'saved');
    assert.equal(await store.saveApplyCheckpoint(a, { sequenceNumber: '49590338271490256608559692538361571095921575989136588900' }), 'stale', 'backwards refused');
    const cp = await store.getApplyCheckpoint('m2', 'shard-1');
    assert.equal(cp!.sequenceNumber, '49590338271490256608559692538361571095921575989136588999');
    assert.equal(cp!.position!.ct.t, 51);
    assert.equal(cp!.epoch, 1);

    // The lease expires and another process steals it: the old owner's write is refused.
    nowMs += ttlMs + 2000;
    assert.equal(await store.saveApplyCheckpoint(a, { sequenceNumber: '49590338271490256608559692538361571095921575989136589000' }), 'lease-lost', 'expired');
    const b = (await store.acquireLease('m2', 'shard-1', 'proc-b', { ttlMs }))!;
    assert.equal(await store.saveApplyCheckpoint(a, { sequenceNumber: '49590338271490256608559692538361571095921575989136589000' }), 'lease-lost', 'not the owner');
    assert.equal(await store.saveApplyCheckpoint({ ...b, epoch: 1 }, { sequenceNumber: '49590338271490256608559692538361571095921575989136589000' }), 'lease-lost', 'stale epoch (fencing)');
    assert.equal(await store.saveApplyCheckpoint(b, { sequenceNumber: '49590338271490256608559692538361571095921575989136589000', shardEnded: true }), 'saved');
    const after = await store.getApplyCheckpoint('m2', 'shard-1');
    assert.equal(after!.epoch, 2);
    assert.equal(after!.shardEnded, true);
    assert.equal(await store.getApplyCheckpoint('m2', 'no-such-shard'), null);
  });

  it('a FAILED migration resumes where it failed; with no usable record of that, where its progress says — never a reload after the load', () => {
    const at = new Date();
    const failed = (extra: object) => phaseBeforeFailure({ phase: 'FAILED', ...extra });
    assert.equal(phaseBeforeFailure({ phase: 'CATCHING_UP' }), 'CATCHING_UP');
    assert.equal(failed({ lastError: { message: 'x', at, phase: 'READY_FOR_CUTOVER' } }), 'READY_FOR_CUTOVER');
    const loaded = { load: { attempt: 1, startedAt: at, finishedAt: at, collections: {} } };
    assert.equal(failed({ lastError: { message: 'x', at, phase: 'FAILED' }, ...loaded }), 'CATCHING_UP');
    assert.equal(failed({ load: { attempt: 1, startedAt: at, collections: {} } }), 'INITIAL_LOAD');
    assert.equal(failed({ resumePoint: { ct: new Timestamp({ t: 1, i: 1 }), takenAt: at } }), 'INITIAL_LOAD');
    assert.equal(failed({}), 'CREATED');
  });

  it('orders Kinesis sequence numbers numerically', () => {
    assert.ok(sequenceKey('9') < sequenceKey('10'));
    assert.ok(sequenceKey('0010') === sequenceKey('10'));
    assert.throws(() => sequenceKey('12a'), /invalid Kinesis sequence number/);
  });

  it('tracks a cutover request: request, barrier, shards reached, abort, re-request, complete', async () => {
    const r1 = await store.requestCutover('m3');
    assert.equal(r1.state, 'requested');
    assert.equal((await store.requestCutover('m3')).requestedAt.getTime(), r1.requestedAt.getTime(), 'idempotent');
    const sent = await store.setCutoverBarrier('m3', 'barrier-1');
    assert.equal(sent!.state, 'barrier-sent');
    assert.equal((await store.setCutoverBarrier('m3', 'barrier-1'))!.barrierId, 'barrier-1', 'same barrier again: ok');
    assert.equal(await store.setCutoverBarrier('m3', 'barrier-2'), null, 'another barrier: refused');
    await store.recordBarrierReached('m3', 'barrier-1', 'shard-0');
    await store.recordBarrierReached('m3', 'barrier-1', 'shard-0');
    const reached = await store.recordBarrierReached('m3', 'barrier-1', 'shard-1');
    assert.deepEqual(reached!.reachedShards, ['shard-0', 'shard-1']);
    assert.equal(await store.recordBarrierReached('m3', 'other-barrier', 'shard-2'), null);

    assert.equal(await store.abortCutover('m3', 'operator said no'), true);
    const aborted = await store.getCutover('m3');
    assert.equal(aborted!.state, 'aborted');
    assert.equal(aborted!.abortReason, 'operator said no');
    assert.equal(await store.abortCutover('m3', 'again'), false);

    nowMs += 1000;
    const r2 = await store.requestCutover('m3');
    assert.equal(r2.state, 'requested');
    assert.deepEqual(r2.reachedShards, []);
    assert.equal(r2.barrierId, undefined);
    await store.setCutoverBarrier('m3', 'barrier-3');
    assert.equal(await store.completeCutover('m3'), true);
    assert.equal(await store.abortCutover('m3', 'too late'), false);
    assert.equal((await store.requestCutover('m3')).state, 'completed', 'a completed cutover stays');
  });
  it('rides out a database refusing writes for a while (retries transient errors), and gives up on other errors at once', async () => {
    const fp = (mode: unknown, data: object = {}) => client.db('admin').command({ configureFailPoint: 'failCommand', mode, data });
    const resilient = await StateStore.open({ client, dbName: 'mstate_retry', now, retry: { retryForMs: 20_000, baseDelayMs: 20 } });
    await resilient.createMigration('r1');
    // NotWritablePrimary on the next 4 updates (the driver's own retryable-write retry takes one more).
    await fp({ times: 4 }, { failCommands: ['update'], errorCode: 10107 });
    assert.equal(await resilient.setPhase('r1', 'INITIAL_LOAD'), true);
    assert.equal((await resilient.getMigration('r1'))?.phase, 'INITIAL_LOAD');
    // A refusal that outlasts the retry budget surfaces (the CLI maps it to exit 3).
    const brief = await StateStore.open({ client, dbName: 'mstate_retry', now, retry: { retryForMs: 300, baseDelayMs: 20 } });
    await fp('alwaysOn', { failCommands: ['update'], errorCode: 10107 });
    try {
      await assert.rejects(brief.setPhase('r1', 'CATCHING_UP'), (e: Error & { code?: number }) => e.code === 10107);
    } finally {
      await fp('off');
    }
    // Not transient (a bad value): no retry, the error comes back at once.
    await fp({ times: 1 }, { failCommands: ['update'], errorCode: 2 });
    await assert.rejects(resilient.setPhase('r1', 'CATCHING_UP'), (e: Error & { code?: number }) => e.code === 2);
    assert.equal((await resilient.getMigration('r1'))?.phase, 'INITIAL_LOAD');
  });
});

describe('StateStore schema version', () => {
  it('stamps a new store and refuses one written by a newer migrator', async () => {
    const emu = await startMongoEmulator();
    const client = new MongoClient(emu.uri);
    try {
      await StateStore.open({ client, dbName: 'schema_test' });
      const meta = client.db('schema_test').collection<{ _id: string; version: number }>('meta');
      assert.equal((await meta.findOne({ _id: 'schema' }))?.version, STATE_SCHEMA_VERSION);
      await meta.updateOne({ _id: 'schema' }, { $set: { version: STATE_SCHEMA_VERSION + 1 } });
      await assert.rejects(StateStore.open({ client, dbName: 'schema_test' }), /schema version 2; this migrator understands up to 1/);
    } finally {
      await client.close();
      await emu.stop();
    }
  });
});
