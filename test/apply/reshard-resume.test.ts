// A child shard read by another apply process than its parent: the parent's final checkpoint
// carries the last record ids per producer (the transport's ShardCheckpoint.lastRecordIds), which
// the state store keeps and gives back, so the child's reader drops the duplicate of a write that
// failed ambiguously just as the parent closed and was retried into the child.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient } from 'mongodb';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { runApply, type ApplyRunnerOptions } from '../../src/apply/apply-runner.js';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { FakeKinesis } from '../transport/fake-kinesis.js';
import { FAST_CONSUMER, Scenario, produce, targetDocs, testLogger } from './runner-fixtures.js';
import { Clock } from '../support/stream-positions.js';
import { waitUntil } from '../support/wait.js';

describe('apply across a reshard, parent and child applied by different processes', { timeout: 120_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let store: StateStore;

  before(async () => {
    emu = await startMongoEmulator({ port: 0 });
    client = new MongoClient(emu.uri, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    store = await StateStore.open({ client });
  });
  after(async () => {
    await client?.close().catch(() => undefined);
    await emu?.stop();
  });

  it('the child drops the duplicate of a write retried after the parent closed (lastRecordIds kept with the checkpoint)', async () => {
    const fake = new FakeKinesis({ shardCount: 1 });
    const parent = fake.shards[0]!.shardId;
    const ns = { db: 'rs', coll: 'items' };
    const s = new Scenario(21, new Clock()).data(ns, 60, 20);
    await produce(fake.client, fake.streamName, s.envelopes, 1, 1);

    // One more event, written as one record: the call stores it in the parent, then fails on the
    // way back (ambiguous); the shard splits before the producer retries it, so the retry (same
    // record id) lands in a child.
    let armed = true;
    fake.callFault = () => (armed ? 'applied-then-network' : undefined);
    fake.onAppend = (shard) => {
      if (!armed) return;
      armed = false;
      fake.split(shard.shardId);
    };
    const before = s.envelopes.length;
    s.data(ns, 1, 20);
    await produce(fake.client, fake.streamName, s.envelopes.slice(before), 1_000, 1);
    assert.equal(armed, false);
    const children = fake.shards.filter((x) => x.parentShardId === parent);
    assert.equal(children.length, 2);
    const retried = fake.shard(parent).records.at(-1)!;
    assert.ok(
      children.some((c) => c.records.some((r) => Buffer.from(r.data).equals(Buffer.from(retried.data)))),
      'the retried record is in a child too',
    );
    // More changes after the split, into the children.
    const afterSplit = s.envelopes.length;
    s.data(ns, 40, 20);
    await produce(fake.client, fake.streamName, s.envelopes.slice(afterSplit), 2_000, 1);

    const migrationId = 'reshard-resume';
    const options = (owner: string, extra: Partial<ApplyRunnerOptions>): ApplyRunnerOptions => ({
      target: client,
      store,
      migrationId,
      rules: new NamespaceRules({ map: ['rs:rs_new'] }),
      kinesis: fake.client,
      streamName: fake.streamName,
      ownerId: owner,
      logger: testLogger(),
      leaseTtlMs: 5_000,
      consumer: FAST_CONSUMER,
      cdcOnly: true,
      ...extra,
    });

    // Process A applies the parent only (another process holds the children) and stops.
    const blocker = [];
    for (const c of children) blocker.push((await store.acquireLease(migrationId, c.shardId, 'other-process', { ttlMs: 120_000 }))!);
    const abortA = new AbortController();
    const runA = runApply(options('owner-A', { signal: abortA.signal }));
    try {
      await waitUntil(async () => (await store.getApplyCheckpoint(migrationId, parent))?.shardEnded === true, 30_000, 'A to apply the parent to its end');
    } finally {
      abortA.abort();
      await runA;
    }
    const parentCp = await store.getApplyCheckpoint(migrationId, parent);
    assert.ok((parentCp?.lastRecordIds?.length ?? 0) > 0, 'the parent checkpoint keeps the last record ids');

    // Process B applies the children, starting from what the store says about the parent.
    for (const l of blocker) await store.releaseLease(l);
    const r = await runApply(options('owner-B', { stopWhenCaughtUp: true }));
    assert.equal(r.stopReason, 'caught-up');
    assert.deepEqual(await targetDocs(client, 'rs_new.items'), s.expected('rs.items'));
    const shards = await store.listShards(migrationId);
    const applied = shards.reduce((n, d) => n + (d.checkpoint?.counters.events ?? 0), 0);
    assert.equal(applied, s.envelopes.length, 'every change applied once: the retried write is not applied again in the child');
  });
});
