import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OrderedProducer } from '../../src/transport/ordered-producer.js';
import { decodeFrame } from '../../src/transport/record-framing.js';
import { ShardReader, type ShardBatch, type ShardCheckpoint } from '../../src/transport/shard-reader.js';
import { StreamConsumer, laterCheckpoint } from '../../src/transport/stream-consumer.js';
import { FakeKinesis } from './fake-kinesis.js';
import { prng, randInt } from './test-helpers.js';
import { makePayload, parsePayload } from './transport-check.js';
import { waitUntil } from '../support/wait.js';

const FAST = { minCallIntervalMs: 0, idlePollMinMs: 1, idlePollMaxMs: 5, shardDiscoveryIntervalMs: 20 } as const;

/** Fills a fake stream through the real producer; returns the payload labels sent per shard. */
async function fill(
  fake: FakeKinesis,
  n: number,
  opts: { keys?: number; bigEvery?: number; seed?: number; yieldEvery?: number } = {},
): Promise<string[]> {
  const rand = prng(opts.seed ?? 1);
  const p = await OrderedProducer.create({
    client: fake.client,
    streamName: fake.streamName,
    lingerMs: 0,
    // many small records (the reader's paths per record are under test, not the producer's budget)
    maxRecordsPerShardSecond: 1e6,
    maxRecordSizeBytes: fake.maxRecordSizeBytes,
  });
  const labels: string[] = [];
  for (let t = 1; t <= n; t++) {
    const key = `k${Math.floor(rand() * (opts.keys ?? 50))}`;
    const size = opts.bigEvery && t % opts.bigEvery === 0 ? randInt(rand, 20_000, 40_000) : randInt(rand, 20, 200);
    await p.send(key, makePayload(key, t, t, size, rand), t);
    labels.push(`${key}#${t}`);
    if (t % (opts.yieldEvery ?? 7) === 0) await new Promise((r) => setImmediate(r));
  }
  await p.close();
  return labels;
}

async function collect(consumer: StreamConsumer, until: (all: ShardBatch[]) => boolean, timeoutMs = 10_000): Promise<ShardBatch[]> {
  const batches: ShardBatch[] = [];
  const running = consumer.run((b) => {
    batches.push(b);
  });
  await waitUntil(() => until(batches), timeoutMs, 'batches');
  consumer.stop();
  await running;
  return batches;
}

/** Iterates a reader until it reports being caught up (it yields nothing while idle, so watch it from outside). */
async function readUntilCaughtUp(reader: ShardReader, abort: AbortController, onBatch?: (b: ShardBatch) => void): Promise<ShardBatch[]> {
  const out: ShardBatch[] = [];
  const watch = setInterval(() => {
    if (reader.caughtUp) abort.abort();
  }, 2);
  try {
    for await (const b of reader) {
      out.push(b);
      onBatch?.(b);
    }
  } finally {
    clearInterval(watch);
  }
  return out;
}

const labelsOf = (batches: ShardBatch[]): string[] =>
  batches.flatMap((b) => b.payloads.map((p) => {
    const x = parsePayload(p);
    return `${x.key}#${x.tag}`;
  }));

describe('ShardReader', () => {
  it('handles ExpiredIteratorException and throttling without skipping or repeating records', async () => {
    const fake = new FakeKinesis({ shardCount: 1 });
    const sent = await fill(fake, 1500, { yieldEvery: 1 });
    assert.ok(fake.shards[0].records.length > 40, `${fake.shards[0].records.length} records`);
    const rand = prng(7);
    fake.getRecordsFault = () => {
      const x = rand();
      return x < 0.2 ? 'expired' : x < 0.35 ? 'throttle' : undefined;
    };
    const abort = new AbortController();
    const shard = fake.shards[0];
    const reader = new ShardReader({
      client: fake.client,
      streamName: fake.streamName,
      shardId: shard.shardId,
      hashKeyRange: shard.range,
      limit: 1,
      minCallIntervalMs: 0,
      idlePollMinMs: 1,
      errorBackoff: { baseMs: 1, maxMs: 4 },
      signal: abort.signal,
    });
    const got = await readUntilCaughtUp(reader, abort);
    assert.deepEqual(labelsOf(got), sent);
    assert.ok(reader.stats.expiredIterators > 5, `expired ${reader.stats.expiredIterators}`);
    assert.ok(reader.stats.throttles > 5, `throttles ${reader.stats.throttles}`);
  });

  it('never calls GetRecords more than 5 times per second per shard by default; backs off when idle', async () => {
    const fake = new FakeKinesis({ shardCount: 1 });
    await fill(fake, 200);
    const shard = fake.shards[0];
    const abort = new AbortController();
    const reader = new ShardReader({ client: fake.client, streamName: fake.streamName, shardId: shard.shardId, hashKeyRange: shard.range, limit: 10, signal: abort.signal });
    const t0 = performance.now();
    const done = (async () => {
      for await (const b of reader) void b;
    })();
    await new Promise((r) => setTimeout(r, 2500));
    abort.abort();
    await done;
    const times = fake.getRecordsTimes.get(shard.shardId)!;
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(gaps.every((g) => g >= 195), `gaps ${gaps.map(Math.round).join(',')}`);
    const perSecond = times.length / ((performance.now() - t0) / 1000);
    assert.ok(perSecond <= 5.2, `${perSecond} calls/s`);
    // records returned (MillisBehindLatest > 0): back-to-back at the rate limit; then idle: spaced out to 1 s
    assert.ok(gaps.slice(-1)[0] >= 795, `idle gap ${gaps.slice(-1)[0]}`);
  });

  it('batches never checkpoint inside a chunked payload; resuming from any batch checkpoint yields exactly the rest', async () => {
    const fake = new FakeKinesis({ shardCount: 1, maxRecordSizeBytes: 8 * 1024 });
    const sent = await fill(fake, 300, { bigEvery: 10 });
    const shard = fake.shards[0];
    const chunkRecords = shard.records.filter((r) => decodeFrame(r.data).kind === 'chunk');
    assert.ok(chunkRecords.length > 50);
    const readFrom = async (checkpoint: ShardCheckpoint | undefined, limit: number): Promise<ShardBatch[]> => {
      const abort = new AbortController();
      const reader = new ShardReader({
        client: fake.client,
        streamName: fake.streamName,
        shardId: shard.shardId,
        hashKeyRange: shard.range,
        limit,
        checkpoint,
        minCallIntervalMs: 0,
        idlePollMinMs: 1,
        signal: abort.signal,
      });
      return readUntilCaughtUp(reader, abort);
    };
    const batches = await readFrom(undefined, 1);
    assert.deepEqual(labelsOf(batches), sent);
    const byIndex = new Map(shard.records.map((r, i) => [r.sequenceNumber, i]));
    for (const b of batches) {
      const i = byIndex.get(b.checkpoint.sequenceNumber!)!;
      const f = decodeFrame(shard.records[i].data);
      // the checkpoint record is never a non-final chunk
      assert.ok(f.kind !== 'chunk' || f.index === f.count - 1, `checkpoint at chunk ${f.kind === 'chunk' ? f.index : ''}`);
    }
    // resume from every 5th batch checkpoint: exactly the suffix
    let delivered = 0;
    for (let k = 0; k < batches.length; k++) {
      delivered += batches[k].payloads.length;
      if (k % 5 !== 0) continue;
      const rest = await readFrom(batches[k].checkpoint, 50);
      assert.deepEqual(labelsOf(rest), sent.slice(delivered), `resume after batch ${k}`);
    }
  });
});

describe('StreamConsumer', () => {
  it('reads a child only after its parent was read to its end and the last batch handled', async () => {
    const fake = new FakeKinesis({ shardCount: 2 });
    await fill(fake, 500, { seed: 2 });
    const [c1, c2] = fake.split(fake.shards[0].shardId);
    await fill(fake, 500, { seed: 3 });
    fake.merge(c1.shardId, c2.shardId);
    await fill(fake, 300, { seed: 4 });
    const events: string[] = [];
    let parentHandling = false;
    const consumer = new StreamConsumer({ client: fake.client, streamName: fake.streamName, ...FAST });
    const total = fake.shards.reduce((n, s) => n + s.records.length, 0);
    let records = 0;
    const running = consumer.run(async (b) => {
      records += b.recordCount;
      if (b.shardId === 'shardId-000000000000') {
        parentHandling = true;
        await new Promise((r) => setTimeout(r, 5)); // slow handler on the parent
        parentHandling = false;
      } else if (b.shardId === c1.shardId || b.shardId === c2.shardId) {
        assert.ok(!parentHandling, 'child batch while the parent batch is being handled');
      }
      events.push(`${b.shardId}${b.shardEnded ? ':end' : ''}`);
    });
    await waitUntil(() => records >= total && consumer.caughtUp, 10_000, 'all records');
    consumer.stop();
    await running;
    const first = (id: string): number => events.findIndex((e) => e.startsWith(id));
    const end = (id: string): number => events.indexOf(`${id}:end`);
    assert.ok(end('shardId-000000000000') >= 0);
    assert.ok(first(c1.shardId) > end('shardId-000000000000'));
    assert.ok(first(c2.shardId) > end('shardId-000000000000'));
    const merged = fake.shards[fake.shards.length - 1].shardId;
    assert.ok(first(merged) > end(c1.shardId) && first(merged) > end(c2.shardId));
  });

  it('resumes from checkpoints: exactly the suffix, nothing before it', async () => {
    const fake = new FakeKinesis({ shardCount: 3 });
    const sent = await fill(fake, 2000, { seed: 5 });
    // first consumer stops after ~half the payloads; keep its last handled checkpoint per shard
    const checkpoints = new Map<string, ShardCheckpoint>();
    const seen: string[] = [];
    const first = new StreamConsumer({ client: fake.client, streamName: fake.streamName, ...FAST, limit: 25 });
    const firstRun = first.run((b) => {
      seen.push(...labelsOf([b]));
      checkpoints.set(b.shardId, b.checkpoint);
      if (seen.length >= 1000) first.stop();
    });
    await firstRun;
    assert.ok(seen.length >= 1000 && seen.length < sent.length, `first consumer read ${seen.length}`);
    const second = new StreamConsumer({ client: fake.client, streamName: fake.streamName, ...FAST, checkpoints });
    const rest = labelsOf(await collect(second, (all) => all.reduce((n, b) => n + b.payloads.length, 0) >= sent.length - seen.length && second.caughtUp));
    assert.equal(seen.length + rest.length, sent.length);
    assert.deepEqual([...seen, ...rest].sort(), [...sent].sort());
    assert.equal(new Set(rest).size, rest.length);
    for (const x of seen) assert.ok(!rest.includes(x), `${x} delivered again`);
  });

  it('splits shards between consumers (ownsShard / shardIds); a child owned here waits for a parent finished elsewhere', async () => {
    const fake = new FakeKinesis({ shardCount: 2 });
    await fill(fake, 400, { seed: 6 });
    const parent = fake.shards[0].shardId;
    const [c1, c2] = fake.split(parent);
    await fill(fake, 400, { seed: 7 });
    // process B owns the parent; process A owns everything else and learns the parent's end from the checkpoint store
    const store = new Map<string, ShardCheckpoint>();
    const a = new StreamConsumer({
      client: fake.client,
      streamName: fake.streamName,
      ...FAST,
      ownsShard: (id) => id !== parent,
      checkpoints: (id) => store.get(id),
    });
    const aBatches: ShardBatch[] = [];
    const aRun = a.run((b) => {
      aBatches.push(b);
      store.set(b.shardId, b.checkpoint);
    });
    await new Promise((r) => setTimeout(r, 150));
    assert.ok(aBatches.every((b) => b.shardId !== c1.shardId && b.shardId !== c2.shardId), 'children wait for the parent');
    assert.ok(aBatches.some((b) => b.shardId === 'shardId-000000000001'));
    const statuses = a.shardStatuses();
    assert.equal(statuses.find((s) => s.shardId === parent)?.state, 'not-owned');
    assert.equal(statuses.find((s) => s.shardId === c1.shardId)?.state, 'waiting-for-parents');
    const b = new StreamConsumer({ client: fake.client, streamName: fake.streamName, ...FAST, shardIds: [parent] });
    const bBatches = await collect(b, (all) => all.some((x) => x.shardEnded));
    for (const x of bBatches) store.set(x.shardId, x.checkpoint);
    await waitUntil(() => aBatches.some((x) => x.shardId === c1.shardId) && a.caughtUp, 5000, 'children read after parent ended elsewhere');
    a.stop();
    await aRun;
    const total = [...aBatches, ...bBatches].reduce((n, x) => n + x.payloads.length, 0);
    assert.equal(total, 800);
    assert.ok(bBatches.every((x) => x.shardId === parent));
  });

  it('async iteration: breaking out stops the consumer; stop() ends run() promptly', async () => {
    const fake = new FakeKinesis({ shardCount: 2 });
    await fill(fake, 100, { seed: 8 });
    const consumer = new StreamConsumer({ client: fake.client, streamName: fake.streamName, ...FAST });
    let n = 0;
    for await (const b of consumer) {
      n += b.payloads.length;
      if (n >= 100) break;
    }
    assert.equal(n, 100);
    const idle = new StreamConsumer({ client: fake.client, streamName: fake.streamName, idlePollMaxMs: 1000 });
    const running = idle.run(() => {});
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    idle.stop();
    await running;
    assert.ok(performance.now() - t0 < 100, `stop took ${performance.now() - t0} ms`);
  });

  it('emitIdleBatches: idle polls yield empty batches with the unchanged checkpoint and millisBehindLatest', async () => {
    const fake = new FakeKinesis({ shardCount: 1 });
    await fill(fake, 20, { seed: 9 });
    const consumer = new StreamConsumer({ client: fake.client, streamName: fake.streamName, ...FAST, emitIdleBatches: true });
    const batches = await collect(consumer, (all) => all.filter((b) => b.payloads.length === 0).length >= 3);
    const full = batches.filter((b) => b.payloads.length > 0);
    const idle = batches.filter((b) => b.payloads.length === 0);
    assert.equal(full.reduce((n, b) => n + b.payloads.length, 0), 20);
    const last = full[full.length - 1].checkpoint.sequenceNumber;
    for (const b of idle.slice(-2)) {
      assert.equal(b.checkpoint.sequenceNumber, last);
      assert.equal(b.millisBehindLatest, 0);
      assert.equal(b.recordCount, 0);
    }
  });

  it('a broadcast larger than a record is chunked and reaches every shard', async () => {
    const fake = new FakeKinesis({ shardCount: 3, maxRecordSizeBytes: 16 * 1024, reportMaxRecordSize: true });
    const p = await OrderedProducer.create({ client: fake.client, streamName: fake.streamName, lingerMs: 0 });
    const rand = prng(10);
    await p.send('a', makePayload('a', 0, 1, 100), 1);
    await p.sendBroadcast(makePayload('*', 0, 2, 60_000, rand), 2);
    await p.send('a', makePayload('a', 1, 3, 100), 3);
    await p.close();
    assert.ok(p.stats.chunkedPayloads >= 3);
    const consumer = new StreamConsumer({ client: fake.client, streamName: fake.streamName, ...FAST });
    const batches = await collect(consumer, () => consumer.caughtUp);
    const perShard = new Map<string, number[]>();
    for (const b of batches) perShard.set(b.shardId, [...(perShard.get(b.shardId) ?? []), ...b.payloads.map((x) => parsePayload(x).tag)]);
    assert.equal(perShard.size, 3);
    for (const [id, tags] of perShard) assert.ok(tags.includes(2) && tags.filter((t) => t === 2).length === 1, `${id}: ${tags}`);
    const aShard = p.shardMap.shardForRoutingKey('a').shardId;
    assert.deepEqual(perShard.get(aShard), [1, 2, 3]);
  });

  it('laterCheckpoint picks the further position', () => {
    assert.deepEqual(laterCheckpoint({ sequenceNumber: '10' }, { sequenceNumber: '9' }), { sequenceNumber: '10' });
    assert.deepEqual(laterCheckpoint({ sequenceNumber: '10' }, { sequenceNumber: '100' }), { sequenceNumber: '100' });
    assert.deepEqual(laterCheckpoint(undefined, { shardEnded: true }), { shardEnded: true });
    assert.deepEqual(laterCheckpoint({ sequenceNumber: '5', shardEnded: true }, { sequenceNumber: '6' }), { sequenceNumber: '5', shardEnded: true });
  });
});
