/**
 * The producer keeps to its per-shard record budget (adaptive linger, linger-policy.ts) however
 * fast payloads come: Kinesis accepts 1,000 records/s per shard
 * (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html), the default
 * budget is 50. Counts records, never durations: a slower machine only makes fewer records.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OrderedProducer } from '../../src/transport/ordered-producer.js';
import { FakeKinesis } from './fake-kinesis.js';
import { prng } from './test-helpers.js';
import { makePayload } from './transport-check.js';

/** Most records any one shard received within one second (arrival times). */
function busiestSecond(fake: FakeKinesis): number {
  let busiest = 0;
  for (const s of fake.shards) {
    const t = s.records.map((r) => r.arrival.getTime()).sort((a, b) => a - b);
    for (let i = 0, j = 0; i < t.length; i++) {
      while (t[i]! - t[j]! >= 1000) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
  }
  return busiest;
}

describe('OrderedProducer: records per shard per second', () => {
  it('a fast sender with no linger floor gets at most the budget (+ burst) of records per shard per second', async () => {
    const fake = new FakeKinesis({ shardCount: 2 });
    // lingerMs 0: without the record budget every acknowledgement would start the next record
    const p = await OrderedProducer.create({ client: fake.client, streamName: fake.streamName, lingerMs: 0, maxRecordsPerShardSecond: 20 });
    const rand = prng(3);
    const started = Date.now();
    let tag = 0;
    while (Date.now() - started < 2500) {
      for (let i = 0; i < 10; i++) {
        tag++;
        const key = `k${Math.floor(rand() * 100)}`;
        await p.send(key, makePayload(key, tag, tag, 100, rand), tag);
      }
      await new Promise((r) => setImmediate(r));
    }
    await p.close();
    const s = p.stats;
    assert.equal(s.payloadsSent, tag, 'every payload was sent');
    // budget 20/s + burst 2, + the final flush on close (one record per shard)
    const busiest = busiestSecond(fake);
    assert.ok(busiest <= 20 + 2 + 1, `busiest second: ${busiest} records in one shard (${s.recordsSent} records for ${tag} payloads)`);
    assert.ok(s.recordsSent < tag, `aggregated: ${s.recordsSent} records for ${tag} payloads`);
  });
});
