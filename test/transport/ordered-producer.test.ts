import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OrderedProducer, ProducerClosedError, type OrderedProducerOptions, type ProducerStats } from '../../src/transport/ordered-producer.js';
import { decodeFrame, recordIdOf } from '../../src/transport/record-framing.js';
import { listAllShards } from '../../src/transport/shard-map.js';
import type { ShardBatch } from '../../src/transport/shard-reader.js';
import { StreamConsumer } from '../../src/transport/stream-consumer.js';
import { FakeKinesis, type PutRecordsCallInfo } from './fake-kinesis.js';
import { prng, randInt } from './test-helpers.js';
import { AcceptanceTracker, BROADCAST_KEY, makePayload, verifyLineageOrder, type OrderReport } from './transport-check.js';
import { waitUntil } from '../support/wait.js';

interface Scenario {
  seed: number;
  shards: number;
  keys: number;
  payloads: number;
  /** Every n-th tag is a broadcast. */
  broadcastEvery?: number;
  payloadSize: (rand: () => number, i: number) => number;
  /** Random (incompressible) filler instead of a repeated letter. */
  incompressible?: boolean;
  maxRecordSizeBytes?: number;
  producer?: Partial<OrderedProducerOptions>;
  /** `progress.tag` = the last tag sent so far (for triggers that must not depend on timing). */
  setup?: (fake: FakeKinesis, rand: () => number, progress: { tag: number }) => void;
  /** Check per-send invariants (e.g. the buffer bound). */
  afterSend?: (producer: OrderedProducer) => void;
  /** Let I/O and timers run every n sends, like a capture reading a change stream (default 25). */
  yieldEvery?: number;
}

interface ScenarioResult {
  fake: FakeKinesis;
  stats: ProducerStats;
  report: OrderReport;
  tracker: AcceptanceTracker;
  lastTag: number;
  batches: ShardBatch[];
}

/** Reads the whole fake stream with the real consumer (lineage respected) until caught up. */
async function readAll(fake: FakeKinesis): Promise<{ perShard: Map<string, Uint8Array[]>; batches: ShardBatch[] }> {
  const perShard = new Map<string, Uint8Array[]>();
  const batches: ShardBatch[] = [];
  const consumer = new StreamConsumer({
    client: fake.client,
    streamName: fake.streamName,
    minCallIntervalMs: 0,
    idlePollMinMs: 1,
    idlePollMaxMs: 5,
    shardDiscoveryIntervalMs: 20,
  });
  const running = consumer.run((b) => {
    batches.push(b);
    const list = perShard.get(b.shardId) ?? [];
    list.push(...b.payloads);
    perShard.set(b.shardId, list);
  });
  await waitUntil(() => consumer.caughtUp, 20_000, 'consumer caught up');
  consumer.stop();
  await running;
  return { perShard, batches };
}

async function runScenario(sc: Scenario): Promise<ScenarioResult> {
  const rand = prng(sc.seed);
  const fake = new FakeKinesis({
    shardCount: sc.shards,
    maxRecordSizeBytes: sc.maxRecordSizeBytes,
    reportMaxRecordSize: sc.maxRecordSizeBytes !== undefined,
  });
  const broadcastTags: number[] = [];
  for (let t = 1; t <= sc.payloads; t++) if (sc.broadcastEvery && t % sc.broadcastEvery === 0) broadcastTags.push(t);
  const tracker = new AcceptanceTracker((id) => fake.shard(id).range, new Set(broadcastTags));
  fake.onAppend = (shard, rec) => tracker.append(shard.shardId, rec.sequenceNumber, rec.data);
  const progress = { tag: 0 };
  sc.setup?.(fake, rand, progress);
  const producer = await OrderedProducer.create({
    client: fake.client,
    streamName: fake.streamName,
    lingerMs: 1,
    retryBackoff: { baseMs: 1, maxMs: 8 },
    onDurable: (t) => tracker.onDurable(t),
    ...sc.producer,
  });
  const keys = Array.from({ length: sc.keys }, (_, i) => `db.coll|{"_id":${i}}`);
  const sentPerKey = new Map<string, number>();
  const bset = new Set(broadcastTags);
  for (let tag = 1; tag <= sc.payloads; tag++) {
    progress.tag = tag;
    const size = sc.payloadSize(rand, tag);
    if (bset.has(tag)) {
      await producer.sendBroadcast(makePayload(BROADCAST_KEY, tag, tag, size), tag);
    } else {
      const key = keys[Math.floor(rand() * keys.length)];
      const index = sentPerKey.get(key) ?? 0;
      sentPerKey.set(key, index + 1);
      await producer.send(key, makePayload(key, index, tag, size, sc.incompressible ? rand : undefined), tag);
    }
    sc.afterSend?.(producer);
    if (tag % (sc.yieldEvery ?? 25) === 0) await new Promise((r) => setImmediate(r));
  }
  await producer.flush();
  assert.equal(producer.durableTag, sc.payloads, 'after flush every tag is durable');
  await producer.close();
  await assert.rejects(producer.send('k', new Uint8Array(1), sc.payloads + 1), ProducerClosedError);
  assert.deepEqual(fake.violations, [], 'Kinesis limits / one record in flight per shard');
  const { perShard, batches } = await readAll(fake);
  const report = verifyLineageOrder(await listAllShards(fake.client, fake.streamName), perShard, sentPerKey, broadcastTags);
  return { fake, stats: producer.stats, report, tracker, lastTag: sc.payloads, batches };
}

/** True when the call carries a chunk frame with index ≥ 1. */
function carriesLaterChunk(call: PutRecordsCallInfo): boolean {
  return call.records.some((r) => {
    const f = decodeFrame(r.Data!);
    return f.kind === 'chunk' && f.index >= 1;
  });
}

describe('OrderedProducer against a fake stream', () => {
  it('baseline: 20k small payloads over 2,000 keys + broadcasts, 4 shards: in order, aggregated, limits respected', async () => {
    const t0 = performance.now();
    const r = await runScenario({
      seed: 1,
      shards: 4,
      keys: 2000,
      payloads: 20_000,
      broadcastEvery: 2500,
      payloadSize: (rand) => randInt(rand, 100, 300),
    });
    assert.ok(r.stats.payloadsPerRecord >= 20, `aggregation ratio ${r.stats.payloadsPerRecord}`);
    assert.equal(r.stats.retries, 0);
    assert.ok(r.tracker.durableReports > 0);
    console.log(
      `baseline: ${Math.round(performance.now() - t0)} ms, ${r.stats.putRecordsCalls} calls, ${r.stats.recordsSent} records, ` +
        `${r.stats.payloadsPerRecord.toFixed(1)} payloads/record, ${r.stats.compressedRecords} compressed, ${r.stats.bytesSent} bytes`,
    );
  });

  it('partial failures, throttled/failed calls and lost responses: every key in order, nothing lost, no duplicate, durable tag never ahead', async () => {
    const r = await runScenario({
      seed: Number(process.env.TRANSPORT_SEED ?? 2),
      shards: 4,
      keys: 500,
      payloads: 8000,
      broadcastEvery: 1000,
      payloadSize: (rand) => randInt(rand, 50, 400),
      producer: { lingerMs: 0, maxRecordsPerShardSecond: 1e6, maxConcurrentCalls: 3, maxCallRecords: 3 },
      setup: (fake, rand) => {
        fake.putLatencyMs = () => randInt(rand, 0, 2);
        fake.recordFault = () => {
          const x = rand();
          return x < 0.1 ? 'ProvisionedThroughputExceededException' : x < 0.15 ? 'InternalFailure' : undefined;
        };
        fake.callFault = () => {
          const x = rand();
          return x < 0.05 ? 'throttle' : x < 0.08 ? 'internal' : x < 0.11 ? 'network' : x < 0.15 ? 'applied-then-network' : undefined;
        };
      },
    });
    assert.ok(r.stats.retries > 20, `retries ${r.stats.retries}`);
    assert.ok(r.stats.throttles > 10, `throttles ${r.stats.throttles}`);
    assert.ok(r.stats.callErrors > 10, `call errors ${r.stats.callErrors}`);
    // Lost responses left stored duplicates (adjacent, same record id) that the reader dropped.
    let storedDuplicates = 0;
    for (const shard of r.fake.shards) {
      shard.records.forEach((rec, i) => {
        if (i > 0 && recordIdOf(rec.data) === recordIdOf(shard.records[i - 1].data)) storedDuplicates++;
      });
    }
    assert.ok(storedDuplicates > 0, 'the scenario produced stored duplicates');
    console.log(
      `faults: retries ${r.stats.retries}, throttles ${r.stats.throttles}, call errors ${r.stats.callErrors}, ` +
        `stored duplicates dropped by readers ${storedDuplicates}, durable reports ${r.tracker.durableReports}`,
    );
  });

  it('resharding mid-stream (splits incl. during a chunked payload, then a merge) with failures: per-key order along the lineage, nothing lost', async () => {
    let splitDuringChunk = false;
    const r = await runScenario({
      seed: Number(process.env.TRANSPORT_SEED ?? 3),
      shards: 3,
      keys: 300,
      payloads: 6000,
      broadcastEvery: 700,
      maxRecordSizeBytes: 64 * 1024,
      incompressible: true,
      payloadSize: (rand) => (rand() < 0.01 ? randInt(rand, 100_000, 200_000) : randInt(rand, 50, 600)),
      producer: { lingerMs: 0, maxRecordsPerShardSecond: 1e6, maxCallRecords: 2 },
      setup: (fake, rand, progress) => {
        fake.checkOneInFlightPerShard = false; // a merge legitimately lands two lanes in one shard
        fake.recordFault = () => (rand() < 0.05 ? 'ProvisionedThroughputExceededException' : undefined);
        fake.callFault = () => (rand() < 0.03 ? 'throttle' : undefined);
        const done = new Set<string>();
        const once = (name: string, when: boolean, action: () => void): void => {
          if (when && !done.has(name)) {
            done.add(name);
            action();
          }
        };
        fake.beforeApply = (call) => {
          once('split-0', progress.tag >= 1000, () => fake.split('shardId-000000000000'));
          once('split-during-chunk', progress.tag >= 2000 && carriesLaterChunk(call), () => {
            splitDuringChunk = true;
            const target = fake.shard(call.targets[call.records.findIndex((x) => decodeFrame(x.Data!).kind === 'chunk')]);
            fake.split(target.shardId);
          });
          once('merge', progress.tag >= 3500, () => {
            const open = fake.openShards.sort((a, b) => (a.range.start < b.range.start ? -1 : 1));
            fake.merge(open[0].shardId, open[1].shardId);
          });
          once('split-last', progress.tag >= 4500, () => fake.split(fake.openShards[fake.openShards.length - 1].shardId));
        };
      },
    });
    assert.ok(splitDuringChunk, 'a split happened while a chunked payload was in flight');
    assert.ok(r.stats.shardMapRefreshes >= 3, `refreshes ${r.stats.shardMapRefreshes}`);
    assert.ok(r.stats.misroutedRecords >= 3, `misrouted ${r.stats.misroutedRecords}`);
    assert.ok(r.stats.chunkedPayloads > 10);
    console.log(
      `reshard: refreshes ${r.stats.shardMapRefreshes}, misrouted ${r.stats.misroutedRecords}, re-sent ${r.stats.resentRecords}, ` +
        `chunk restarts ${r.stats.chunkRestarts}, shards now ${r.fake.shards.length}`,
    );
  });

  it('random splits and merges every few hundred payloads, chunked payloads, broadcasts, throttling and lost responses: exactly once, in order', async () => {
    let reshards = 0;
    const r = await runScenario({
      seed: Number(process.env.TRANSPORT_SEED ?? 7),
      shards: 2,
      keys: 200,
      payloads: 6000,
      broadcastEvery: 400,
      maxRecordSizeBytes: 32 * 1024,
      incompressible: true,
      yieldEvery: 10,
      payloadSize: (rand) => (rand() < 0.05 ? randInt(rand, 40_000, 120_000) : randInt(rand, 50, 600)),
      producer: { lingerMs: 0, maxRecordsPerShardSecond: 1e6, maxCallRecords: 3, maxConcurrentCalls: 3 },
      setup: (fake, rand, progress) => {
        fake.checkOneInFlightPerShard = false;
        fake.putLatencyMs = () => randInt(rand, 0, 3);
        fake.recordFault = () => (rand() < 0.05 ? 'ProvisionedThroughputExceededException' : undefined);
        fake.callFault = () => {
          const x = rand();
          return x < 0.03 ? 'throttle' : x < 0.06 ? 'applied-then-network' : x < 0.08 ? 'network' : undefined;
        };
        let next = 300;
        fake.beforeApply = () => {
          if (progress.tag < next) return;
          next += 300 + Math.floor(rand() * 400);
          const open = fake.openShards.sort((a, b) => (a.range.start < b.range.start ? -1 : 1));
          if (open.length >= 6 || (open.length > 1 && rand() < 0.4)) {
            const i = Math.floor(rand() * (open.length - 1));
            fake.merge(open[i].shardId, open[i + 1].shardId);
          } else {
            fake.split(open[Math.floor(rand() * open.length)].shardId);
          }
          reshards++;
        };
      },
    });
    assert.ok(reshards >= 10, `reshards ${reshards}`);
    assert.ok(r.stats.chunkedPayloads > 100);
    console.log(
      `random reshards: ${reshards} splits/merges, refreshes ${r.stats.shardMapRefreshes}, misrouted ${r.stats.misroutedRecords}, ` +
        `re-sent ${r.stats.resentRecords}, ambiguous writes found stored ${r.stats.resolvedAmbiguous}, chunk restarts ${r.stats.chunkRestarts}, ` +
        `adjacent broadcast repeats ${r.report.adjacentBroadcastRepeats}`,
    );
  });

  it('batching limits: ≤ 500 records per call with 600 shards; ≤ 5 MiB per call and ≤ max record size with large payloads', async () => {
    const many = await runScenario({
      seed: 4,
      shards: 600,
      keys: 5000,
      payloads: 6000,
      payloadSize: () => 100,
      // A linger far longer than the sending takes: all 6000 wait together, so only the 500-record
      // cap can split them (a short linger made this depend on the machine's speed).
      producer: { lingerMs: 5_000 },
    });
    const biggestCall = Math.max(...many.fake.calls.map((c) => c.records.length));
    assert.ok(biggestCall === 500, `largest call had ${biggestCall} records`);

    const big = await runScenario({
      seed: 5,
      shards: 8,
      keys: 40,
      payloads: 400,
      incompressible: true,
      payloadSize: (rand) => (rand() < 0.1 ? randInt(rand, 1_100_000, 2_500_000) : randInt(rand, 200_000, 400_000)),
      // One call at a time against a slow stream: many shards are ready together, so calls fill up.
      producer: { lingerMs: 20, maxConcurrentCalls: 1 },
      setup: (fake) => {
        fake.putLatencyMs = () => 10;
      },
    });
    const sizes = big.fake.calls.map((c) => c.records.reduce((n, r) => n + r.Data!.length + r.PartitionKey!.length, 0));
    const maxCall = Math.max(...sizes);
    assert.ok(maxCall <= 5 * 1024 * 1024 && maxCall > 4 * 1024 * 1024, `largest call ${maxCall} bytes`);
    const maxRecord = Math.max(...big.fake.calls.flatMap((c) => c.records.map((r) => r.Data!.length + r.PartitionKey!.length)));
    assert.ok(maxRecord <= 1024 * 1024 && maxRecord > 1000 * 1024, `largest record ${maxRecord}`);
    assert.ok(big.stats.chunkedPayloads > 10);
    console.log(`limits: largest call ${biggestCall} records / ${maxCall} bytes, largest record ${maxRecord} bytes`);
  });

  it('uses the max record size reported by DescribeStreamSummary', async () => {
    const fake = new FakeKinesis({ shardCount: 1, maxRecordSizeBytes: 2 * 1024 * 1024, reportMaxRecordSize: true });
    const p = await OrderedProducer.create({ client: fake.client, streamName: fake.streamName });
    assert.equal(p.maxRecordSize, 2 * 1024 * 1024);
    const q = await OrderedProducer.create({ client: new FakeKinesis({ shardCount: 1 }).client, streamName: 'fake-stream' });
    assert.equal(q.maxRecordSize, 1024 * 1024);
  });
});

describe('OrderedProducer: backpressure and durability', () => {
  it('keeps buffered bytes within maxBufferedBytes under a fast sender; sends are admitted in order', async () => {
    const max = 256 * 1024;
    let maxSeen = 0;
    const r = await runScenario({
      seed: 6,
      shards: 2,
      keys: 50,
      payloads: 3000,
      incompressible: true,
      payloadSize: () => 4096,
      producer: { maxBufferedBytes: max, lingerMs: 5 },
      setup: (fake) => {
        fake.putLatencyMs = () => 3;
      },
      afterSend: (p) => {
        maxSeen = Math.max(maxSeen, p.bufferedBytes);
        assert.ok(p.bufferedBytes <= max, `buffered ${p.bufferedBytes} > ${max}`);
      },
    });
    assert.ok(maxSeen > max / 2, `the bound was reached (max seen ${maxSeen})`);
    assert.ok(r.stats.maxBufferedBytesSeen <= max);

    // Without awaiting: admission stays FIFO and bounded.
    const fake = new FakeKinesis({ shardCount: 2 });
    fake.putLatencyMs = () => 2;
    const p = await OrderedProducer.create({ client: fake.client, streamName: fake.streamName, maxBufferedBytes: 64 * 1024, lingerMs: 1 });
    const order: number[] = [];
    const sends = Array.from({ length: 500 }, (_, i) => p.send(`k${i % 7}`, new Uint8Array(2048), i + 1).then(() => order.push(i)));
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, p.bufferedBytes)), 1);
    await Promise.all(sends);
    await p.close();
    clearInterval(sampler);
    assert.deepEqual(order, Array.from({ length: 500 }, (_, i) => i));
    assert.ok(p.stats.maxBufferedBytesSeen <= 64 * 1024, `peak ${p.stats.maxBufferedBytesSeen}`);
    assert.ok(peak <= 64 * 1024);
  });

  it('durable tag waits for a throttled shard while other shards progress', async () => {
    const fake = new FakeKinesis({ shardCount: 2 });
    const stuck = fake.shards[0].shardId;
    let blocked = true;
    fake.recordFault = (call, i) => (blocked && call.targets[i] === stuck ? 'ProvisionedThroughputExceededException' : undefined);
    const p = await OrderedProducer.create({ client: fake.client, streamName: fake.streamName, lingerMs: 1, retryBackoff: { baseMs: 1, maxMs: 5 } });
    const reports: number[] = [];
    p.onDurable((t) => reports.push(t));
    // find one key per shard
    const map = p.shardMap;
    let keyStuck = '';
    let keyFree = '';
    for (let i = 0; !keyStuck || !keyFree; i++) {
      const k = `key-${i}`;
      if (map.shardForRoutingKey(k).shardId === stuck) keyStuck ||= k;
      else keyFree ||= k;
    }
    await p.send(keyFree, new Uint8Array(10), 1);
    await p.send(keyStuck, new Uint8Array(10), 2);
    for (let t = 3; t <= 50; t++) await p.send(keyFree, new Uint8Array(10), t);
    await waitUntil(() => fake.shards[1].records.length > 0 && p.stats.throttles > 5, 2000, 'free shard written, stuck shard throttled');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(p.durableTag, 1, 'tag 2 (stuck shard) holds the durable tag back');
    assert.deepEqual(reports, [1]);
    blocked = false;
    await p.flush();
    assert.equal(p.durableTag, 50);
    assert.deepEqual(reports.slice(-1), [50]);
    await p.close();
  });

  it('rejects non-increasing tags; a fatal error rejects flush and later sends', async () => {
    const fake = new FakeKinesis({ shardCount: 1 });
    const p = await OrderedProducer.create({ client: fake.client, streamName: fake.streamName, lingerMs: 1 });
    await p.send('a', new Uint8Array(1), 5);
    await assert.rejects(p.send('a', new Uint8Array(1), 5), RangeError);
    await assert.rejects(p.sendBroadcast(new Uint8Array(1), 4), RangeError);
    await p.flush();
    let reported: unknown;
    const q = await OrderedProducer.create({
      client: fake.client,
      streamName: fake.streamName,
      onError: (e) => (reported = e),
    });
    fake.callFault = () => 'network';
    const original = fake.client.send.bind(fake.client);
    (fake.client as { send: unknown }).send = async (cmd: unknown) => {
      const e = new Error('Stream fake-stream not found');
      e.name = 'ResourceNotFoundException';
      void cmd;
      throw e;
    };
    await q.send('a', new Uint8Array(1), 1);
    await assert.rejects(q.flush(), /not found/);
    await assert.rejects(q.send('a', new Uint8Array(1), 2), /not found/);
    assert.equal((reported as Error).name, 'ResourceNotFoundException');
    (fake.client as { send: unknown }).send = original;
  });
});
