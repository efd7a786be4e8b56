// Two shards receive the same broadcast DDL: it runs once, after both applied what precedes it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { ApplyWriter } from '../../src/apply/writer.js';
import { createDdlGate } from '../../src/apply/ddl-gate.js';
import { StateStore, type DdlRendezvousDoc } from '../../src/state/store.js';
import { ins, rename } from './helpers.js';
import { Clock } from '../support/stream-positions.js';
import { TARGETS, type TestTarget } from './targets.js';

/** A stream whose shards are all open, never resharded. */
const openShards = (ids: string[]) => ids.map((shardId) => ({ shardId, open: true }));

describe('DDL gate across shards (emulator)', { timeout: 60_000 }, () => {
  let target: TestTarget;
  before(async () => {
    target = await TARGETS.find((t) => t.name === 'emulator')!.start();
  });
  after(async () => {
    await target?.stop();
  });

  it('runs a broadcast rename once, after every shard applied what came before it', async () => {
    const store = await StateStore.open({ client: target.client, dbName: 'gate_state' });
    const rules = new NamespaceRules();
    const shards = ['shard-0', 'shard-1'];
    const waits: string[] = [];
    const writerFor = (shardId: string) => {
      const gate = createDdlGate({ store, migrationId: 'm', shardId, shards: () => openShards(shards), pollMs: 20, onWait: () => void waits.push(shardId) });
      return new ApplyWriter({ client: target.client, rules, beforeDdl: gate.beforeDdl, afterDdl: gate.afterDdl });
    };
    const c = new Clock();
    const p = { db: 'g', coll: 'p' };
    const one = ins(c, { _id: 1 }, p); // routed to shard-0
    const two = ins(c, { _id: 2 }, p); // routed to shard-1
    const ddl = rename(c, p, { db: 'g', coll: 'p2' }); // broadcast to both
    const three = ins(c, { _id: 3 }, p); // a new 'p' after the rename, routed to shard-1

    // shard-1 runs ahead; shard-0 is late. Without the gate shard-1 would rename before
    // document 1 arrived, and shard-0's copy would then clobber p2.
    const fast = writerFor('shard-1').applyBatch([two, ddl, three]);
    await sleep(200);
    assert.equal(await target.client.db('g').collection('p').countDocuments({ _id: 3 as never }), 0, 'shard-1 waits at the DDL');
    const slow = writerFor('shard-0').applyBatch([one, ddl]);
    const [r1, r0] = await Promise.all([fast, slow]);
    assert.equal(r0.stats.ddl + r1.stats.ddl, 1, 'the rename ran once');
    assert.equal(r0.stats.ddl, 1, 'by the smallest shard id');
    assert.ok(waits.includes('shard-1'));
    const db = target.client.db('g');
    assert.deepEqual(await db.collection('p2').find({}).sort({ _id: 1 }).toArray(), [{ _id: 1 }, { _id: 2 }]);
    assert.deepEqual(await db.collection('p').find({}).toArray(), [{ _id: 3 }]);
    const rv = await store.db.collection<DdlRendezvousDoc>('ddl_rendezvous').findOne({});
    assert.deepEqual(rv!.arrived.sort(), shards);
    assert.equal(rv!.appliedBy, 'shard-0');

    // A replayed copy of an applied DDL is skipped.
    const again = await writerFor('shard-1').applyBatch([ddl]);
    assert.equal(again.stats.ddl, 0);
  });

  it('a DDL copied before a split exists only in the parent: the parent runs it without waiting for the children', async () => {
    const store = await StateStore.open({ client: target.client, dbName: 'gate_state3' });
    // shard-0 held the DDL, then split into shard-1 and shard-2 (which hold only later records)
    const shards = [
      { shardId: 'shard-0', open: false },
      { shardId: 'shard-1', parentShardId: 'shard-0', open: true },
      { shardId: 'shard-2', parentShardId: 'shard-0', open: true },
    ];
    const gate = createDdlGate({ store, migrationId: 'm', shardId: 'shard-0', shards: () => shards, pollMs: 10 });
    const ddl = rename(new Clock(), { db: 'g3', coll: 'a' }, { db: 'g3', coll: 'b' });
    assert.equal(await gate.beforeDdl(ddl), 'apply');
  });

  it('one of two shards split after the DDL: the other waits for the closed parent, not for its children', async () => {
    const store = await StateStore.open({ client: target.client, dbName: 'gate_state4' });
    const shards = [
      { shardId: 'shard-a', open: false },
      { shardId: 'shard-b', open: true },
      { shardId: 'shard-a1', parentShardId: 'shard-a', open: true },
      { shardId: 'shard-a2', parentShardId: 'shard-a', open: true },
    ];
    const gateFor = (shardId: string) => createDdlGate({ store, migrationId: 'm', shardId, shards: () => shards, pollMs: 10 });
    const ddl = rename(new Clock(), { db: 'g4', coll: 'a' }, { db: 'g4', coll: 'b' });
    let bDone = false;
    const b = gateFor('shard-b')
      .beforeDdl(ddl)
      .then((r) => ((bDone = true), r));
    await sleep(150);
    assert.equal(bDone, false, 'shard-b waits for the parent that holds the other copy');
    const gateA = gateFor('shard-a');
    assert.equal(await gateA.beforeDdl(ddl), 'apply', 'the parent (smallest arrived id) runs it');
    await gateA.afterDdl(ddl);
    assert.equal(await b, 'skip');
  });

  it('stops waiting when aborted', async () => {
    const store = await StateStore.open({ client: target.client, dbName: 'gate_state2' });
    const ac = new AbortController();
    const gate = createDdlGate({ store, migrationId: 'm', shardId: 'shard-1', shards: () => openShards(['shard-0', 'shard-1']), pollMs: 10, signal: ac.signal });
    const c = new Clock();
    const waiting = gate.beforeDdl(rename(c, { db: 'g', coll: 'a' }, { db: 'g', coll: 'b' }));
    setTimeout(() => ac.abort(new Error('lease lost')), 50);
    await assert.rejects(waiting, /lease lost/);
  });
});
