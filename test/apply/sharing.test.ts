// Several runApply instances on one stream: shards split by leases, take-over after a crash.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore, type ShardDoc } from '../../src/state/store.js';
import { runApply, type ApplyCounters, type ApplyRunnerOptions } from '../../src/apply/apply-runner.js';
import { FAST_CONSUMER, Scenario, produce, startStack, targetDocs, testLogger, type Stack } from './runner-fixtures.js';
import { Clock } from '../support/stream-positions.js';
import { waitUntil } from '../support/wait.js';

describe('runApply instances sharing a stream', { timeout: 120_000 }, () => {
  let stack: Stack;
  let store: StateStore;

  before(async () => {
    stack = await startStack();
    store = await StateStore.open({ client: stack.client });
  });
  after(async () => {
    await stack?.stop();
  });

  it('split the shards through leases, and one takes over the shards of a crashed one after the TTL', async () => {
    const stream = stack.kl.uniqueStreamName('apply-share');
    await stack.kl.createStream(stream, 4);
    const ns = { db: 'sh', coll: 'items' };
    const clock = new Clock();
    const s = new Scenario(11, clock).data(ns, 1200, 300).drop(ns).data(ns, 800, 300);
    let { copies } = await produce(stack.kl.client, stream, s.envelopes);

    const ttl = 2_000;
    const base = (owner: string, extra: Partial<ApplyRunnerOptions>): ApplyRunnerOptions => ({
      target: stack.client,
      store,
      migrationId: 'share',
      rules: new NamespaceRules({ map: ['sh:sh_new'] }),
      kinesis: stack.kl.client,
      streamName: stream,
      ownerId: owner,
      logger: testLogger(),
      leaseTtlMs: ttl,
      consumer: FAST_CONSUMER,
      cdcOnly: true, // streams written by the test: no full migration behind them
      ddlPollMs: 50,
      ...extra,
    });
    const owners = async () => (await store.listShards('share')).map((d) => d.lease.owner);
    const targetMatches = async (sc: Scenario) => {
      const got = await targetDocs(stack.client, 'sh_new.items');
      const want = sc.expected('sh.items');
      return got.length === want.length && JSON.stringify(got) === JSON.stringify(want);
    };

    const abortA = new AbortController();
    const abortB = new AbortController();
    // A takes two shards; B, started once A holds them, takes the two others.
    const runA = runApply(base('owner-A', { maxShards: 2, signal: abortA.signal, releaseLeasesOnExit: false }));
    await waitUntil(async () => (await owners()).filter((o) => o === 'owner-A').length === 2, 10_000, 'A to hold 2 shards');
    const runB = runApply(base('owner-B', { signal: abortB.signal }));
    try {
      await waitUntil(async () => (await owners()).filter((o) => o === 'owner-B').length === 2, 10_000, 'B to hold 2 shards');
      // Together they apply everything (the drop is a rendezvous across both processes).
      await waitUntil(() => targetMatches(s), 20_000, 'the target to match the source');
      const split = await owners();
      assert.equal(split.filter((o) => o === 'owner-A').length, 2);
      assert.equal(split.filter((o) => o === 'owner-B').length, 2);

      // A "crashes": stops without releasing its leases. B takes its shards once they expire.
      abortA.abort();
      const ra = await runA;
      assert.equal(ra.stopReason, 'interrupted');
      const crashedAt = performance.now();
      s.data(ns, 600, 300);
      copies += (await produce(stack.kl.client, stream, s.envelopes.slice(-600), 100_000)).copies;
      await waitUntil(async () => (await owners()).every((o) => o === 'owner-B'), 15_000, 'B to take over every shard');
      const takeoverMs = performance.now() - crashedAt;
      assert.ok(takeoverMs >= ttl - 500, `take-over waited for the lease to expire (${Math.round(takeoverMs)} ms)`);
      await waitUntil(() => targetMatches(s), 20_000, 'the target to match the source after the take-over');
    } finally {
      abortA.abort();
      abortB.abort();
      await Promise.allSettled([runA, runB]);
    }
    const shards = await store.listShards('share');
    assert.equal(shards.length, 4);
    const events = shards.reduce((n, d) => n + (d.checkpoint?.counters as ApplyCounters).events, 0);
    assert.equal(events, copies, 'every envelope copy processed once over both instances');
    assert.equal(shards.reduce((n, d) => n + (d.checkpoint?.counters as ApplyCounters).ddl, 0), 1, 'the drop ran once');
    for (const d of shards) assert.equal(d.lease.owner, null, 'B released its leases');
  });

  it('stops a shard whose lease was taken over, and resumes it once the lease is free again', async () => {
    const stream = stack.kl.uniqueStreamName('apply-steal');
    await stack.kl.createStream(stream, 2);
    const ns = { db: 'st', coll: 'items' };
    const s = new Scenario(12).data(ns, 600, 200);
    await produce(stack.kl.client, stream, s.envelopes);
    const abort = new AbortController();
    let status: import('../../src/apply/apply-runner.js').ApplyStatus | undefined;
    const run = runApply({
      target: stack.client,
      store,
      migrationId: 'steal',
      rules: new NamespaceRules({ map: ['st:st_new'] }),
      kinesis: stack.kl.client,
      streamName: stream,
      ownerId: 'owner-S',
      logger: testLogger(),
      leaseTtlMs: 1_500,
      consumer: FAST_CONSUMER,
      signal: abort.signal,
      statusIntervalMs: 50,
      onStatus: (st) => (status = st),
      cdcOnly: true,
    });
    const matches = async (sc: Scenario) => JSON.stringify(await targetDocs(stack.client, 'st_new.items')) === JSON.stringify(sc.expected('st.items'));
    try {
      await waitUntil(() => matches(s), 15_000, 'phase 1 applied');
      const [victim, other] = (await store.listShards('steal')).map((d) => d.shardId);
      // An intruder takes the lease of `victim` (as a process that stole an expired lease would).
      await store.db.collection<ShardDoc>('shards').updateOne(
        { _id: `steal/${victim}` },
        { $set: { 'lease.owner': 'intruder', 'lease.expiresAt': new Date(Date.now() + 600_000) }, $inc: { 'lease.epoch': 1 } },
      );
      await waitUntil(() => status?.shards.find((x) => x.shardId === victim)?.state === 'not-owned', 10_000, 'the victim shard to stop');
      const frozen = await store.getApplyCheckpoint('steal', victim!);
      const otherBefore = await store.getApplyCheckpoint('steal', other!);
      s.data(ns, 400, 200);
      await produce(stack.kl.client, stream, s.envelopes.slice(-400), 10_000);
      await waitUntil(async () => (await store.getApplyCheckpoint('steal', other!))?.seqKey !== otherBefore?.seqKey, 10_000, 'the other shard to go on');
      await new Promise((r) => setTimeout(r, 500));
      const still = await store.getApplyCheckpoint('steal', victim!);
      assert.equal(still?.seqKey, frozen?.seqKey, 'the victim shard is not applied while the intruder holds it');
      assert.equal((await store.db.collection<ShardDoc>('shards').findOne({ _id: `steal/${victim}` }))?.lease.owner, 'intruder');
      assert.equal(await matches(s), false, 'the victim shard\'s new events are not applied');
      // The intruder goes away: the shard is taken back and finished.
      await store.db.collection<ShardDoc>('shards').updateOne({ _id: `steal/${victim}` }, { $set: { 'lease.owner': null, 'lease.expiresAt': new Date(0) } });
      await waitUntil(() => matches(s), 15_000, 'everything applied after the lease came back');
    } finally {
      abort.abort();
      await run;
    }
  });
});
