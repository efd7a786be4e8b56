// Load units' progress samples in the state store (emulator): written only by the unit's current
// lease holder, cleared when an attempt starts, read back by status as the last minute's rate.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { StateStore } from '../../src/state/store.js';
import { buildStatusReport } from '../../src/orchestration/status-report.js';

describe('load unit progress samples (emulator state store)', { timeout: 60_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let nowMs = Date.UTC(2026, 0, 1, 12);
  const now = () => new Date(nowMs);
  let store: StateStore;

  before(async () => {
    emu = await startMongoEmulator({ port: 0 });
    client = await MongoClient.connect(emu.uri);
    store = await StateStore.open({ client, dbName: 'mstate', now });
    await store.createMigration('m', {});
    await store.startLoad('m', { 'db\u2024c': { target: 'db.c' } });
    await store.saveLoadPlan(
      'm',
      [{ shardId: 'r1', kind: 'range', seq: 0, sourceDb: 'db', targetDb: 'db', coll: 'c', target: 'db.c', part: 1, parts: 1, estimatedBytes: 600_000 }],
      { units: 1, partitionSize: 1, partitioned: ['db.c'] },
    );
  });
  after(async () => {
    await client?.close();
    await emu?.stop();
  });

  it('only the current lease holder writes samples; a new attempt starts without the old ones; status reads the rate from them', async () => {
    const a = (await store.acquireLease('m', 'r1', 'host:1:a', { ttlMs: 120_000, scope: 'load' }))!;
    assert.equal(await store.startLoadUnit(a), true);
    const t0 = nowMs;
    await store.recordLoadUnitSamples(a, [
      { at: new Date(t0), fraction: 0, documents: 0 },
      { at: new Date(t0 + 60_000), fraction: 0.5, documents: 500 },
    ]);
    nowMs = t0 + 60_000;
    const units = await store.listLoadUnits('m');
    assert.equal(units[0]!.samples!.length, 2);
    const r = buildStatusReport({ migration: (await store.getMigration('m'))!, capture: null, shards: [], cutover: null, loadUnits: units }, now());
    assert.equal(r.load!.throughput!.bytesPerSecond, 5000, 'half of 600 000 estimated bytes in the last minute');
    assert.equal(r.load!.throughput!.documents, 500);
    assert.equal(r.load!.throughputEtaSeconds, 60);

    // Another worker takes the unit over (the first lease expired): the old holder's late
    // samples are refused, and the new attempt starts from none.
    nowMs += 200_000;
    const b = (await store.acquireLease('m', 'r1', 'host:2:b', { ttlMs: 120_000, scope: 'load' }))!;
    assert.equal(await store.startLoadUnit(b), true);
    assert.deepEqual((await store.getLoadUnit('m', 'r1'))!.samples, []);
    await store.recordLoadUnitSamples(a, [{ at: now(), fraction: 0.9, documents: 900 }]);
    assert.deepEqual((await store.getLoadUnit('m', 'r1'))!.samples, [], 'a lost lease writes nothing');
    await store.recordLoadUnitSamples(b, [{ at: now(), fraction: 0.1, documents: 100 }]);
    assert.equal((await store.getLoadUnit('m', 'r1'))!.samples![0]!.fraction, 0.1);
  });
});
