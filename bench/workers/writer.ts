/**
 * Steady-rate source writer for the lag runs: `rate` operations per second for `seconds`
 * (open loop: operation i is due at start + i/rate, whatever the latency of earlier ones), 70%
 * inserts of new documents and 30% updates of earlier ones, each carrying `t` = wall-clock ms of
 * the write. Prints one JSON line: writes done, writes carrying `t`, achieved rate.
 */
import { MongoClient } from 'mongodb';
import { makeDoc, prng } from '../lib/workload.js';
import { wallMs } from '../lib/lag.js';

const a = JSON.parse(process.argv[2]!) as { uri: string; db: string; rate: number; seconds: number; bytes: number };
const client = new MongoClient(a.uri, { maxPoolSize: 32 });
await client.connect();
const coll = client.db(a.db).collection<{ _id: number; [k: string]: unknown }>('lag');
const rand = prng(7);
const total = Math.round(a.rate * a.seconds);
let nextId = 1_000_000_000;
const ids: number[] = [];
let done = 0;
let inFlight = 0;
const errors: string[] = [];
const start = performance.now();
const one = async (i: number) => {
  inFlight++;
  try {
    if (ids.length < 20 || rand() < 0.7) {
      const id = nextId++;
      await coll.insertOne(makeDoc(id, a.bytes, rand, { t: wallMs() }) as { _id: number });
      ids.push(id); // only acknowledged inserts are updated later (an update must match)
      done++;
    } else {
      const id = ids[Math.floor(rand() * ids.length)]!;
      const r = await coll.updateOne({ _id: id }, { $set: { t: wallMs(), name: `n${i}` } });
      done += r.matchedCount; // one change event per matched update
    }
  } catch (err) {
    errors.push(String(err));
  } finally {
    inFlight--;
  }
};
let issued = 0;
while (issued < total) {
  const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * a.rate) + 1);
  while (issued < due) void one(issued++);
  await new Promise((r) => setTimeout(r, 2));
}
while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
const seconds = (performance.now() - start) / 1000;
await client.close();
process.stdout.write(JSON.stringify({ writes: done, seconds, achievedRate: done / seconds, errors: errors.slice(0, 3) }) + '\n');
process.exit(errors.length > 0 ? 1 : 0);
