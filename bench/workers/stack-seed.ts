/**
 * The seed's pipeline (github.com/bingbingliu18/DocumentDB-Data-capture: changestream_capture.py
 * and changestream_apply.py), re-created in TypeScript on the same stack and driver, keeping its
 * I/O pattern exactly:
 *  capture: watch(db, fullDocument: updateLookup, resumeAfter: state) → per event: build the JSON
 *    payload (doc + JSON string of the body + operation, coll, timestamps) → ONE PutRecord with
 *    PartitionKey = the resume token's _data → state write (update_one $set lastProcessed) in the
 *    source's state collection after every event (STATE_SYNC_COUNT=1, the sample config);
 *    `time.sleep(0.1)` after each state write when `asWritten`; sleep 1 s when try_next is empty.
 *  apply: DescribeStream → shard 0 only; iterator after the saved sequence; GetRecords(Limit=1)
 *    → insert_one / update_one($set of the full body) / delete_one → state write (lastSequence)
 *    after every record; on an empty read: sleep 1 s and start over (re-read state, new iterator).
 * Differences, none of which changes the I/O per event: `_id` keeps its type (the seed's
 * ObjectId(str) would fail on the integer ids used here), dates go through JSON as strings (the
 * seed's json.dumps would raise on them), an update whose post-image is null (document deleted
 * since) is skipped (the seed would crash on it) and counted.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { BSON, MongoClient, type ChangeStreamDocument, type Document } from 'mongodb';
import { DescribeStreamCommand, GetRecordsCommand, GetShardIteratorCommand, PutRecordCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../src/transport/kinesis-client.js';
import { CpuMeter } from '../lib/proc.js';
import { ROOT } from '../lib/stack.js';
import { LagRecorder } from '../lib/lag.js';
import { RssSampler, countKinesis, cpuSince, emitResult, sleep, workerArgs } from '../lib/worker-kit.js';

interface Args {
  mode: 'capture' | 'apply' | 'e2e' | 'lag';
  label: string;
  sourceUri: string;
  targetUri: string;
  kinesisEndpoint: string;
  stream: string;
  startToken?: string;
  count: number;
  db: string;
  pids: Record<string, number>;
  asWritten?: boolean;
  rate?: number;
  seconds?: number;
  bytes?: number;
  /** distinguishes the target database and state collections of separate runs */
  dbSuffix?: string;
  /** stop after this long even if `count` was not reached (as-written runs) */
  maxSeconds?: number;
}

const a = workerArgs<Args>();
const suffix = a.dbSuffix ?? a.mode;
const targetDb = `${a.db}_seed_${suffix}`;
const lag = a.mode === 'lag' ? new LagRecorder(targetDb) : undefined;
const source = new MongoClient(a.sourceUri);
const target = new MongoClient(a.targetUri, lag ? { monitorCommands: true } : {});
lag?.attach(target);
await Promise.all([source.connect(), target.connect()]);
const kinesis = createKinesisClient({ region: 'us-east-1', endpoint: a.kinesisEndpoint });
const counters = countKinesis(kinesis);
const stop = new AbortController();
const stats = { captured: 0, applied: 0, nullPostImages: 0, stateWrites: 0, getRecordsCalls: 0, emptyReads: 0 };

// ------------------------------------------------------------------ changestream_capture.py
async function seedCapture(client: KinesisClient): Promise<void> {
  const db = source.db(a.db);
  const state = source.db(`${a.db}_stat_${suffix}`).collection('bar_stat');
  const watched = a.db;
  let last = (await state.findOne({ currentState: true, dbWatched: watched }))?.lastProcessed as Document | undefined;
  if (!last) await state.insertOne({ dbWatched: watched, currentState: true });
  last ??= a.startToken ? (BSON.EJSON.parse(a.startToken) as Document) : undefined;
  const cs = db.watch([], { fullDocument: 'updateLookup', ...(last ? { resumeAfter: last } : {}) });
  try {
    while (!stop.signal.aborted) {
      const e = (await cs.tryNext()) as (ChangeStreamDocument & Document) | null;
      if (e === null) {
        await sleep(1000);
        continue;
      }
      const opId = (e._id as { _data: string })._data;
      const clusterTime = e.clusterTime as { getHighBits(): number };
      const secs = clusterTime.getHighBits();
      const readable = new Date(secs * 1000).toISOString();
      let payload: Document | undefined;
      if (e.operationType === 'insert' || e.operationType === 'update') {
        const body = e.fullDocument as Document | null;
        if (!body) {
          stats.nullPostImages++;
        } else {
          const docId = String(body._id);
          delete body._id;
          const extra: Document =
            e.operationType === 'insert'
              ? { insert_body: JSON.stringify(body) }
              : { update_body: JSON.stringify(body), updatedescription: JSON.stringify(e.updateDescription) };
          payload = { _id: docId, ...body, ...extra, operation: e.operationType, coll: e.ns.coll, timestamp: String(secs), timestampReadable: readable };
        }
      } else if (e.operationType === 'delete') {
        payload = { _id: String(e.documentKey._id), coll: e.ns.coll, operation: 'delete', timestamp: String(secs), timestampReadable: readable };
      }
      if (payload) {
        await client.send(new PutRecordCommand({ StreamName: a.stream, Data: Buffer.from(BSON.EJSON.stringify(payload)), PartitionKey: opId }));
      }
      stats.captured++;
      // state_sync_count = 1: persist the token after every event
      await state.updateOne({ dbWatched: watched }, { $set: { lastProcessed: cs.resumeToken } });
      stats.stateWrites++;
      if (a.asWritten) await sleep(100);
      if (a.mode === 'capture' && stats.captured >= a.count) break; // the apply run reads exactly these
    }
  } finally {
    await cs.close().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ changestream_apply.py
async function seedApply(client: KinesisClient): Promise<void> {
  const db = target.db(targetDb);
  const seq = target.db(targetDb).collection('sequence');
  const streamKey = a.stream;
  while (!stop.signal.aborted) {
    const desc = await client.send(new DescribeStreamCommand({ StreamName: a.stream }));
    const shard = desc.StreamDescription!.Shards![0]!;
    const seqDoc = await seq.findOne({ currentState: true, stream: streamKey });
    if (!seqDoc) await seq.insertOne({ stream: streamKey, currentState: true });
    const lastSeq = seqDoc?.lastSequence as string | undefined;
    const it = await client.send(
      new GetShardIteratorCommand(
        lastSeq
          ? { StreamName: a.stream, ShardId: shard.ShardId, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: lastSeq }
          : { StreamName: a.stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' },
      ),
    );
    let iterator = it.ShardIterator;
    while (iterator && !stop.signal.aborted) {
      const r = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1 }));
      stats.getRecordsCalls++;
      const rec = r.Records?.[0];
      if (!rec) {
        stats.emptyReads++;
        await sleep(1000); // 'no records captured, wait 1s and quit'
        break;
      }
      const m = JSON.parse(Buffer.from(rec.Data!).toString('utf8')) as Document;
      const coll = db.collection(String(m.coll));
      const id = /^\d+$/.test(String(m._id)) ? Number(m._id) : m._id;
      if (m.operation === 'insert') await coll.insertOne({ _id: id, ...(JSON.parse(String(m.insert_body)) as Document) });
      else if (m.operation === 'delete') await coll.deleteOne({ _id: id });
      else if (m.operation === 'update') await coll.updateOne({ _id: id }, { $set: JSON.parse(String(m.update_body)) as Document });
      stats.applied++;
      await seq.updateOne({ stream: streamKey }, { $set: { lastSequence: rec.SequenceNumber } });
      stats.stateWrites++;
      iterator = r.NextShardIterator;
    }
  }
}

const rss = new RssSampler(50);
const others = new CpuMeter(a.pids);
const result: Record<string, unknown> = { label: a.label, mode: a.mode, count: a.count, asWritten: Boolean(a.asWritten) };
const tasks: Promise<void>[] = [];
let failure: unknown;
const run = (f: (c: KinesisClient) => Promise<void>) =>
  tasks.push(
    f(kinesis).catch((err: unknown) => {
      if (!stop.signal.aborted) failure ??= err;
    }),
  );
const cpu0 = process.cpuUsage();
others.start();
const t0 = performance.now();
const deadline = t0 + (a.maxSeconds ?? 15 * 60) * 1000;
async function until(cond: () => boolean): Promise<boolean> {
  while (!cond()) {
    if (failure !== undefined) throw failure;
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

if (a.mode === 'capture') {
  run(seedCapture);
  result.complete = await until(() => counters.putRecordCalls + stats.nullPostImages >= a.count);
  result.events = counters.putRecordCalls + stats.nullPostImages;
} else if (a.mode === 'apply') {
  run(seedApply);
  result.complete = await until(() => stats.applied >= a.count);
  result.events = stats.applied;
} else if (a.mode === 'e2e') {
  run(seedCapture);
  run(seedApply);
  result.complete = await until(() => stats.applied + stats.nullPostImages >= a.count);
  result.events = stats.applied + stats.nullPostImages;
} else {
  run(seedCapture);
  run(seedApply);
  await sleep(2500);
  lag!.reset();
  const writer = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'bench/workers/writer.ts'), JSON.stringify({ uri: a.sourceUri, db: a.db, rate: a.rate, seconds: a.seconds, bytes: a.bytes ?? 200 })],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  writer.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((r) => writer.on('exit', r));
  if (code !== 0) throw new Error(`writer exited ${String(code)}`);
  const w = JSON.parse(out.trim().split('\n').pop()!) as { writes: number };
  result.writer = w;
  const drainStart = performance.now();
  while (lag!.count < w.writes && performance.now() - drainStart < 5_000) await sleep(20);
  result.lag = { ...lag!.summary(), notApplied: Math.max(0, w.writes - lag!.count), collapsed: 0 };
  result.events = stats.applied;
}
result.seconds = (performance.now() - t0) / 1000;
result.cpuSeconds = cpuSince(cpu0);
result.otherCpuSeconds = others.stop();
result.peakRssBytes = rss.peakBytes;
result.kinesis = { ...counters };
result.seed = { ...stats };
stop.abort();
await Promise.race([Promise.allSettled(tasks), sleep(3000)]);
rss.stop();
emitResult(result);
process.exit(0);
