/**
 * The transport against kinesis-local behind the fault proxy: throttled calls, partial PutRecords
 * failures and lost responses (records stored, client told nothing). Per key nothing is lost, the
 * order holds, and re-sent copies of a record are dropped by the consumer (record ids).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-kinesis';
import { OrderedProducer } from '../../src/transport/ordered-producer.js';
import { recordIdOf } from '../../src/transport/record-framing.js';
import { createKinesisClient } from '../../src/transport/kinesis-client.js';
import { listAllShards } from '../../src/transport/shard-map.js';
import { StreamConsumer } from '../../src/transport/stream-consumer.js';
import { startKinesisLocal, KINESIS_LOCAL_REGION, type KinesisLocal } from '../support/kinesis-local.js';
import { startKinesisFaultProxy, type KinesisFaultProxy } from '../support/kinesis-fault-proxy.js';
import { prng } from './test-helpers.js';
import { BROADCAST_KEY, makePayload, parsePayload, verifyLineageOrder } from './transport-check.js';
import { waitUntil } from '../support/wait.js';

let kl: KinesisLocal;
let proxy: KinesisFaultProxy;

before(async () => {
  kl = await startKinesisLocal();
  proxy = await startKinesisFaultProxy(kl.endpoint, prng(5));
});
after(async () => {
  await proxy?.stop();
  await kl?.stop();
});

async function run(faults: Parameters<KinesisFaultProxy['set']>[0], total: number) {
  const stream = kl.uniqueStreamName('faults');
  await kl.createStream(stream, 2);
  const client = createKinesisClient({ endpoint: proxy.endpoint, region: KINESIS_LOCAL_REGION, httpHandler: 'http1' });
  const rand = prng(17);
  const keys = Array.from({ length: 100 }, (_, i) => `shop.orders|{"_id":${i}}`);
  const sentPerKey = new Map<string, number>();
  const broadcastTags: number[] = [];
  proxy.set(faults);
  const producer = await OrderedProducer.create({ client, streamName: stream, lingerMs: 5, retryBackoff: { baseMs: 20, maxMs: 200 } });
  for (let tag = 1; tag <= total; tag++) {
    if (tag % 1000 === 0) {
      broadcastTags.push(tag);
      await producer.sendBroadcast(makePayload(BROADCAST_KEY, tag, tag, 100), tag);
      continue;
    }
    const key = keys[Math.floor(rand() * keys.length)]!;
    const index = sentPerKey.get(key) ?? 0;
    sentPerKey.set(key, index + 1);
    await producer.send(key, makePayload(key, index, tag, 300, rand, true), tag);
    if (tag % 50 === 0) await producer.flush(); // many small calls, whatever the machine's speed
  }
  await producer.flush();
  assert.equal(producer.durableTag, total, 'every payload acknowledged');
  const stats = producer.stats;
  await producer.close();
  proxy.set({});

  const perShard = new Map<string, Uint8Array[]>();
  const expected = total - broadcastTags.length;
  const consumer = new StreamConsumer({ client: kl.client, streamName: stream });
  let keyed = 0;
  const running = consumer.run((b) => {
    const list = perShard.get(b.shardId) ?? [];
    list.push(...b.payloads);
    perShard.set(b.shardId, list);
    keyed += b.payloads.filter((p) => parsePayload(p).key !== BROADCAST_KEY).length;
  });
  await waitUntil(() => keyed >= expected && consumer.caughtUp, 60_000, `${expected} payloads read`);
  await new Promise((r) => setTimeout(r, 300));
  consumer.stop();
  await running;
  client.destroy();
  return { stream, perShard, sentPerKey, broadcastTags, stats };
}

describe('transport under injected Kinesis faults', { timeout: 300_000 }, () => {
  it('throttling and partial PutRecords failures: every payload exactly once, per-key order kept', async () => {
    const before = { ...proxy.counts };
    const r = await run({ throttleRate: 0.2, partialRate: 0.5, recordFailRate: 0.4 }, 4000);
    const injected = { throttled: proxy.counts.throttled - before.throttled, failedRecords: proxy.counts.failedRecords - before.failedRecords };
    assert.ok(injected.throttled > 0 && injected.failedRecords > 0, `faults were injected: ${JSON.stringify(injected)}`);
    assert.ok(r.stats.retries > 0 && r.stats.throttles > 0, `the producer saw and retried them: ${JSON.stringify(r.stats)}`);
    // Exactly once per key, in order, broadcasts after everything sent before them.
    const report = verifyLineageOrder(await listAllShards(kl.client, r.stream), r.perShard, r.sentPerKey, r.broadcastTags);
    assert.equal(report.payloads, 4000 - r.broadcastTags.length);
  });

  it('lost responses: the stream holds re-sent copies, the consumer still delivers every payload once, in order', async () => {
    const before = proxy.counts.lostResponses;
    const r = await run({ lostResponseRate: 0.25, throttleRate: 0.1 }, 3000);
    assert.ok(proxy.counts.lostResponses > before, 'responses were dropped');
    // Raw records: the same record id stored more than once (re-sent after a lost response).
    const ids = new Map<string, number>();
    for (const shard of await listAllShards(kl.client, r.stream)) {
      const it = await kl.client.send(new GetShardIteratorCommand({ StreamName: r.stream, ShardId: shard.shardId, ShardIteratorType: 'TRIM_HORIZON' }));
      let iterator = it.ShardIterator;
      for (;;) {
        const out = await kl.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
        for (const rec of out.Records ?? []) {
          const id = `${shard.shardId}/${recordIdOf(rec.Data!).toString(16)}`;
          ids.set(id, (ids.get(id) ?? 0) + 1);
        }
        if (!out.Records?.length || !out.NextShardIterator) break;
        iterator = out.NextShardIterator;
      }
    }
    const copies = [...ids.values()].filter((n) => n > 1).length;
    assert.ok(copies > 0, 'lost responses left re-sent copies in the stream');
    const report = verifyLineageOrder(await listAllShards(kl.client, r.stream), r.perShard, r.sentPerKey, r.broadcastTags);
    assert.equal(report.payloads, 3000 - r.broadcastTags.length, 'copies dropped by record id: exactly once');
  });
});
