/**
 * Kinesis records per second per shard at a given event rate (issue #16: "records per shard
 * bounded at any rate"). The product's OrderedProducer (the transport capture writes through,
 * with its aggregation, compression and adaptive linger) sends change-event payloads at a steady
 * `rate` events/s for `seconds` s into the in-memory shard log (MemoryKinesis, real SDK). The
 * payloads are BSON change events of `bytes`-byte documents (the in-process generator's), routed
 * by document key. Reported: the achieved event rate, records/s per shard (mean over the run and
 * the busiest one-second window of any shard), events per record, and how long a payload waited
 * from `send` until it was durable (p50/p99, the latency the linger adds on top of Kinesis).
 *
 * The per-shard limit that matters on real Kinesis is 1,000 records/s and 1 MiB/s in:
 * https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
 */
import { BSON } from 'mongodb';
import { ChangeEventGenerator } from '../lib/change-events.js';
import { MemoryKinesis } from '../lib/memory-kinesis.js';
import { MIXES } from '../lib/workload.js';
import { createOrderedProducer } from '../../src/transport/ordered-producer.js';
import { emitResult, sleep, workerArgs } from '../lib/worker-kit.js';

interface Args {
  label: string;
  rate: number;
  seconds: number;
  bytes: number;
  shards: number;
}

const a = workerArgs<Args>();
const mem = new MemoryKinesis('bench', a.shards);
const producer = await createOrderedProducer({ client: mem.client(), streamName: 'bench' });

// A pool of real change-event payloads (cycled), generated before the clock starts.
const gen = new ChangeEventGenerator(a.bytes, MIXES.mixed!, 7);
const pool: Array<{ key: string; payload: Uint8Array }> = [];
for (let i = 0; i < 20_000; i++) {
  const ev = gen.next();
  pool.push({ key: JSON.stringify((ev.documentKey as { _id: number })._id), payload: BSON.serialize(ev) });
}

const sentAt: number[] = [];
const waits: number[] = [];
let durableUpTo = 0; // tags are 1..n
producer.onDurable((tag) => {
  const now = performance.now();
  for (; durableUpTo < tag; durableUpTo++) waits.push(now - sentAt[durableUpTo]!);
});

const t0 = performance.now();
const end = t0 + a.seconds * 1000;
let sent = 0;
// Steady pacing: every tick sends what the rate owes since the start (ticks of ~2 ms; at 50k/s
// that is ~100 events per tick, as a change stream's getMore batches arrive).
while (performance.now() < end) {
  const owed = Math.floor(((performance.now() - t0) / 1000) * a.rate);
  while (sent < owed) {
    const p = pool[sent % pool.length]!;
    sentAt.push(performance.now());
    sent++;
    await producer.send(p.key, p.payload, sent);
  }
  await sleep(2);
}
const sendSeconds = (performance.now() - t0) / 1000;
await producer.close();

// Records per shard: over the run and in the busiest one-second window (arrival timestamps).
const perShard = mem.shards.map((s) => {
  const times = s.records.map((r) => r.arrival * 1000).sort((x, y) => x - y);
  let busiest = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= 1000) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  return { records: times.length, busiestSecond: busiest };
});
waits.sort((x, y) => x - y);
const pct = (q: number) => (waits.length === 0 ? 0 : Math.round(waits[Math.min(waits.length - 1, Math.floor(q * waits.length))]!));
const records = perShard.reduce((n, s) => n + s.records, 0);
emitResult({
  label: a.label,
  targetRate: a.rate,
  seconds: sendSeconds,
  events: sent,
  eventsPerSecond: sent / sendSeconds,
  shards: a.shards,
  bytes: a.bytes,
  records,
  recordsPerShardSecond: records / a.shards / sendSeconds,
  maxRecordsPerShardSecond: Math.max(...perShard.map((s) => s.busiestSecond)),
  eventsPerRecord: sent / Math.max(1, records),
  durableWaitMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1) },
});
process.exit(0);
