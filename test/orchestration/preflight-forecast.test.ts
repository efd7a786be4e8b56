// Preflight's retention forecast on the local stack (emulators + kinesis-local): the stream's
// RetentionPeriodHours (DescribeStreamSummary) against the estimated load, and the source's
// change-stream history (DocumentDB: the 3 h default unless the user passes it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, Timestamp, type Document } from 'mongodb';
import { IncreaseStreamRetentionPeriodCommand } from '@aws-sdk/client-kinesis';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { runPreflight, sourceHistory, type PreflightInput } from '../../src/orchestration/preflight.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';

describe('preflight retention forecast', { timeout: 300_000 }, () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let docdb: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  let doc: MongoClient;
  let kinesis: KinesisLocal;
  let stream: string;
  let bytes = 0;
  before(async () => {
    [source, target, docdb, kinesis] = await Promise.all([
      startMongoEmulator(),
      startMongoEmulator(),
      startMongoEmulator({ profile: 'documentdb-5.0' }),
      startKinesisLocal(),
    ]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri);
    doc = new MongoClient(docdb.uri, { retryWrites: false });
    await src.db('shop').collection<{ _id: number; pad?: string }>('items').insertMany(Array.from({ length: 200 }, (_, i) => ({ _id: i, pad: 'x'.repeat(500) })));
    await doc.db('shop').collection<{ _id: number }>('items').insertOne({ _id: 1 });
    bytes = Number((await src.db('shop').command({ collStats: 'items' })).size);
    stream = kinesis.uniqueStreamName();
    await kinesis.createStream(stream, 1); // 24 h retention, Kinesis' default
  });
  after(async () => {
    await Promise.all([src?.close(), dst?.close(), doc?.close()]);
    await Promise.all([source?.stop(), target?.stop(), docdb?.stop(), kinesis?.stop()]);
  });

  const run = (extra: Partial<PreflightInput> = {}) =>
    runPreflight({
      source: src,
      sourceUri: source.uri,
      target: dst,
      targetUri: target.uri,
      rules: new NamespaceRules({}),
      stateDb: 'migrator_state',
      kinesis: { client: kinesis.client, streamName: stream },
      requireEmptyTarget: true,
      enableChangeStreams: false,
      loadAhead: true,
      ...extra,
    });

  test('a load that fits the 24 h retention easily: ok, with its margin, no warning', async () => {
    const report = await run();
    assert.deepEqual(report.problems, []);
    const f = report.forecast!;
    assert.equal(f.streamRetentionHours, 24);
    assert.equal(f.estimatedBytes, bytes);
    assert.ok(bytes > 100_000, String(bytes));
    assert.equal(f.ok, true);
    assert.ok(f.marginHours! > 23, String(f.marginHours));
    assert.ok(f.assumptions.some((a) => /load rate assumed 5 MiB\/s/.test(a)), f.assumptions.join('; '));
    assert.ok(!report.warnings.some((w) => /retention forecast/.test(w)), report.warnings.join('\n'));
  });

  test('an estimated load longer than the 24 h retention: a warning naming the hours and the command, not a failure', async () => {
    // The same collection at a few bytes per second: a load of days (30 h, plus the catch-up of
    // the changes the oplog shows the source making meanwhile).
    const report = await run({ loadBytesPerSecond: bytes / (30 * 3600) });
    assert.deepEqual(report.problems, [], 'not clearly impossible: the rate is an estimate');
    const f = report.forecast!;
    assert.equal(f.ok, false);
    assert.ok(f.requiredHours! >= 30 && f.marginHours! < 0, `${f.requiredHours} ${f.marginHours}`);
    const w = report.warnings.find((x) => /retention forecast/.test(x));
    // The hours named are the forecast's (≥ 30: the catch-up adds what the young oplog's rate
    // predicts, which depends on how many seconds the emulator's oplog spans so far).
    const m = /keeps records 24 h, but the load and catch-up need about (\d+(?:\.\d)?) h.*increase-stream-retention-period --retention-period-hours \d+/.exec(w ?? '');
    assert.ok(m, w);
    assert.ok(Math.abs(Number(m[1]) - f.requiredHours!) < 0.1, `${m[1]} h named, ${f.requiredHours} h forecast`);
  });

  test('after IncreaseStreamRetentionPeriod to a week the same load is fine', async () => {
    await kinesis.client.send(new IncreaseStreamRetentionPeriodCommand({ StreamName: stream, RetentionPeriodHours: 168 }));
    const report = await run({ loadBytesPerSecond: bytes / (30 * 3600) });
    assert.equal(report.forecast!.streamRetentionHours, 168);
    assert.equal(report.forecast!.ok, true);
    assert.ok(!report.warnings.some((x) => /retention forecast/.test(x)), report.warnings.join('\n'));
  });

  test("a MongoDB source: the history is the oplog window read from local.oplog.rs (first to last entry by $natural), in hours, and the changes per second over it", async () => {
    const report = await run();
    const oplog = src.db('local').collection<Document>('oplog.rs');
    const [first] = await oplog.find({}).sort({ $natural: 1 }).limit(1).toArray();
    const [last] = await oplog.find({}).sort({ $natural: -1 }).limit(1).toArray();
    const window = Math.max(1, (last!.ts as Timestamp).t - (first!.ts as Timestamp).t);
    assert.deepEqual(report.sourceHistory, {
      hours: Math.round((window / 3600) * 10) / 10,
      basis: 'oplog window (first to last entry)',
      changeEventsPerSecond: Math.round(((await oplog.estimatedDocumentCount()) / window) * 10) / 10,
    });
    assert.ok(report.sourceHistory!.changeEventsPerSecond! > 0, 'the source\'s inserts are in it');
    assert.equal(report.forecast!.sourceHistoryHours, report.sourceHistory!.hours);
    assert.equal(report.forecast!.sourceHistoryBasis, 'oplog window (first to last entry)');
    // The DocumentDB profile has no oplog: the forecast carries the documented default instead.
    const docdbReport = await run({ source: doc, sourceUri: docdb.uri });
    assert.equal(docdbReport.forecast!.sourceHistoryHours, 3);
    assert.match(docdbReport.forecast!.sourceHistoryBasis!, /^DocumentDB default change_stream_log_retention_duration/);
  });

  test('the oplog window in hours: 36 h between the first and last entries, 1.2 M entries → 36 h, about 9.3 changes/s', async () => {
    const t0 = 1_700_000_000;
    const entries = [{ ts: new Timestamp({ t: t0, i: 1 }) }, { ts: new Timestamp({ t: t0 + 36 * 3600, i: 5 }) }];
    const fake = {
      db: () => ({
        collection: () => ({
          find: () => ({
            sort: (s: { $natural: number }) => ({ limit: () => ({ toArray: async () => [s.$natural === 1 ? entries[0] : entries[1]] }) }),
          }),
          estimatedDocumentCount: async () => 1_200_000,
        }),
      }),
    } as unknown as MongoClient;
    assert.deepEqual(await sourceHistory({ source: fake }, 'mongodb'), { hours: 36, basis: 'oplog window (first to last entry)', changeEventsPerSecond: 9.3 });
  });

  test("the source's change-stream history: DocumentDB's default 3 h, said so, unless --source-change-stream-retention gives it", async () => {
    const base = { source: doc, sourceUri: docdb.uri };
    const dflt = await run(base);
    assert.equal(dflt.sourceHistory!.hours, 3);
    assert.match(dflt.sourceHistory!.basis, /DocumentDB default change_stream_log_retention_duration .*cannot be read: pass --source-change-stream-retention/);
    const given = await run({ ...base, sourceChangeStreamRetentionHours: 24 });
    assert.equal(given.sourceHistory!.hours, 24);
    assert.equal(given.sourceHistory!.basis, '--source-change-stream-retention');
  });
});
