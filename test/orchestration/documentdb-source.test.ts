// The migrator's DocumentDB-specific paths, each on the emulator's documentdb profiles
// (packages/mongo-emulator/src/documentdb.ts): flavor detection by what the server answers, the
// resume point where the server gives no token or operation time, capture resuming with
// resumeAfter on the primary, DocumentDB's error codes, retryable writes, --enable-change-streams.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { readStreamEnvelopes } from '../support/stream-contents.js';
import { describeServer } from '../../src/db/server-info.js';
import { takeResumePoint } from '../../src/orchestration/resume-point.js';
import { runPreflight } from '../../src/orchestration/preflight.js';
import { runCapture } from '../../src/source/capture-runner.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { createLogger } from '../../src/util/logger.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { toolUri } from '../../src/initial-load/dump-restore-plan.js';
import { waitUntil } from '../support/wait.js';

const log = createLogger({ format: 'json', verbose: false, out: { write: () => true } as unknown as NodeJS.WritableStream });
const enableAll = { modifyChangeStreams: 1, database: '', collection: '', enable: true };

describe('DocumentDB source (documentdb-4.0 profile)', () => {
  let source: MongoEmulator;
  let stateEmu: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;
  let stateClient: MongoClient;
  let store: StateStore;

  before(async () => {
    [source, stateEmu, kinesis] = await Promise.all([
      startMongoEmulator({ profile: 'documentdb-4.0', historyLimit: 40 }),
      startMongoEmulator(),
      startKinesisLocal(),
    ]);
    // As a DocumentDB 4.0 user might connect: no retryable writes, reads spread to replicas.
    src = new MongoClient(`${source.uri}&readPreference=secondaryPreferred`, { retryWrites: false });
    stateClient = new MongoClient(stateEmu.uri);
    store = await StateStore.open({ client: stateClient });
  });
  after(async () => {
    await Promise.all([src.close(), stateClient.close()]);
    await Promise.all([source.stop(), stateEmu.stop(), kinesis.stop()]);
  });

  test('detected as DocumentDB from getEngineVersion, on a host name that does not say so (127.0.0.1)', async () => {
    const info = await describeServer(src, source.uri);
    assert.equal(info.flavor, 'documentdb');
    assert.equal(typeof info.engineVersion, 'string');
    assert.equal(info.changeStreams.usable, false, 'change streams are off until modifyChangeStreams');
  });

  test('preflight --enable-change-streams runs modifyChangeStreams; a DocumentDB endpoint with retryable writes on is a problem named with its flag', async () => {
    const retrying = new MongoClient(source.uri, { retryWrites: true });
    try {
      const report = await runPreflight({
        source: src, sourceUri: source.uri, target: retrying, targetUri: source.uri,
        rules: new NamespaceRules({}), stateDb: 'migrator_state', requireEmptyTarget: false, enableChangeStreams: true,
      });
      assert.equal(report.source?.changeStreams.usable, true, JSON.stringify(report.problems));
      const checks = report.problems.map((p) => p.check);
      assert.ok(checks.includes('target retryable writes'), JSON.stringify(report.problems));
      assert.ok(!checks.includes('source retryable writes'));
      assert.match(report.problems.find((p) => p.check === 'target retryable writes')!.remedy, /--no-target-retry-writes/);
    } finally {
      await retrying.close();
    }
  });

  test('the resume point is a real position (token + cluster time) although the server returns neither a postBatchResumeToken nor an operationTime', async () => {
    await src.db('admin').command(enableAll);
    const point = await takeResumePoint(src, 'migrator_state');
    assert.ok(point.rt, 'a resume token');
    assert.ok(point.ct && point.ct.t > 0, 'a cluster time');
  });

  test('capture from that point, stopped and restarted, loses nothing: resumeAfter (not startAfter), primary read preference', async () => {
    await src.db('admin').command(enableAll);
    const stream = kinesis.uniqueStreamName('docdb');
    await kinesis.createStream(stream, 2);
    const migrationId = 'docdb-cap';
    const point = await takeResumePoint(src, 'migrator_state');
    const items = src.db('shop').collection<Document>('items');
    for (let i = 0; i < 10; i++) await items.insertOne({ _id: i as never, v: 0 });
    const run = () => {
      const controller = new AbortController();
      const done = runCapture({
        source: src, store, migrationId, rules: new NamespaceRules({ include: ['shop.*'] }), kinesis: kinesis.client, streamName: stream,
        start: { rt: point.rt, ct: point.ct }, signal: controller.signal, log, checkpointIntervalMs: 100, maxAwaitTimeMs: 100,
      });
      return { done, stop: async () => (controller.abort(), done) };
    };
    const first = run();
    await waitUntil(async () => ((await store.getCaptureCheckpoint(migrationId))?.counters.events ?? 0) >= 10, 20_000, 'the first 10 events');
    await first.stop();
    for (let i = 10; i < 20; i++) await items.insertOne({ _id: i as never, v: 0 });
    await items.updateOne({ _id: 3 as never }, { $set: { v: 1 } });
    const second = run();
    await waitUntil(async () => ((await store.getCaptureCheckpoint(migrationId))?.counters.events ?? 0) >= 21, 20_000, 'all 21 events');
    await second.stop();
    const envelopes = [...(await readStreamEnvelopes(kinesis.client, stream)).values()].flat();
    const ids = new Set(envelopes.filter((e) => e.op === 'insert').map((e) => Number(e.key?._id)));
    assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
    assert.ok(envelopes.some((e) => e.op === 'update' && Number(e.key?._id) === 3));
  });

  test('an idle capture keeps its checkpoint moving with heartbeats (no postBatchResumeToken to do it), sending nothing to Kinesis', async () => {
    await src.db('admin').command(enableAll);
    const stream = kinesis.uniqueStreamName('docdb-idle');
    await kinesis.createStream(stream, 1);
    const migrationId = 'docdb-idle';
    const point = await takeResumePoint(src, 'migrator_state');
    const controller = new AbortController();
    const done = runCapture({
      source: src, store, migrationId, rules: new NamespaceRules({ include: ['shop.*'] }), kinesis: kinesis.client, streamName: stream,
      start: { rt: point.rt, ct: point.ct }, signal: controller.signal, log, checkpointIntervalMs: 100, maxAwaitTimeMs: 100, idleHeartbeatMs: 300,
    });
    try {
      const after = (t: { t: number; i: number }, than: { t: number; i: number }) => t.t > than.t || (t.t === than.t && t.i > than.i);
      let first: { t: number; i: number } | undefined;
      await waitUntil(async () => {
        const ct = (await store.getCaptureCheckpoint(migrationId))?.ct;
        first ??= ct;
        return Boolean(ct && first && after(ct, first) && after(ct, point.ct));
      }, 20_000, 'the idle checkpoint to move past the resume point');
    } finally {
      controller.abort();
      await done;
    }
    assert.equal((await store.getCaptureCheckpoint(migrationId))?.counters.events ?? 0, 0, 'heartbeats are not events');
    const envelopes = [...(await readStreamEnvelopes(kinesis.client, stream, 3000)).values()].flat();
    assert.equal(envelopes.length, 0);
  });

  test('plain CDC from "now" gets a checkpoint at once (a heartbeat), not only after the first event', async () => {
    await src.db('admin').command(enableAll);
    const stream = kinesis.uniqueStreamName('docdb-now');
    await kinesis.createStream(stream, 1);
    const migrationId = 'docdb-now';
    const controller = new AbortController();
    const done = runCapture({
      source: src, store, migrationId, rules: new NamespaceRules({ include: ['shop.*'] }), kinesis: kinesis.client, streamName: stream,
      cdcOnly: true, signal: controller.signal, log, checkpointIntervalMs: 100, maxAwaitTimeMs: 100,
    });
    try {
      await waitUntil(async () => (await store.getCaptureCheckpoint(migrationId)) !== null, 20_000, 'a first checkpoint');
    } finally {
      controller.abort();
      await done;
    }
  });

  test('an unreadable resume token (DocumentDB: code 9) exits STATE_CONFLICT, a lost history (136) HISTORY_LOST', async () => {
    await src.db('admin').command(enableAll);
    const stream = kinesis.uniqueStreamName('docdb-err');
    await kinesis.createStream(stream, 1);
    const capture = (migrationId: string, start: { rt?: Document }) =>
      runCapture({
        source: src, store, migrationId, rules: new NamespaceRules({}), kinesis: kinesis.client, streamName: stream,
        start, signal: new AbortController().signal, log, maxAwaitTimeMs: 100,
      });
    await assert.rejects(capture('bad-token', { rt: { _data: '8263F0A1B2000000012B022C0100296E5A1004' } }), (err: unknown) => {
      assert.ok(err instanceof MigratorError);
      assert.equal(err.exitCode, ExitCode.STATE_CONFLICT, err.message);
      assert.match(err.message, /error 9/);
      return true;
    });
    const old = await takeResumePoint(src, 'migrator_state');
    for (let i = 0; i < 60; i++) await src.db('shop').collection<Document>('churn').insertOne({ i });
    await assert.rejects(capture('lost', { rt: old.rt }), (err: unknown) => {
      assert.ok(err instanceof MigratorError);
      assert.equal(err.exitCode, ExitCode.HISTORY_LOST, err.message);
      assert.match(err.message, /error 136/);
      return true;
    });
  });
});

describe('the Database Tools get the connection settings the driver gets', () => {
  test('--no-target-retry-writes reaches the tools\' URI (replacing the URI\'s own value); unset leaves the URI as given', () => {
    assert.equal(toolUri({ uri: 'mongodb://u:p@h:27017', retryWrites: false }), 'mongodb://u:p@h:27017/?retryWrites=false');
    assert.equal(toolUri({ uri: 'mongodb://h/?replicaSet=rs0&RetryWrites=true', retryWrites: false }), 'mongodb://h/?replicaSet=rs0&retryWrites=false');
    assert.equal(toolUri({ uri: 'mongodb://h/db?tls=true' }), 'mongodb://h/db?tls=true');
    assert.equal(toolUri({ uri: 'mongodb+srv://c.example.com/?w=majority', retryWrites: true }), 'mongodb+srv://c.example.com/?w=majority&retryWrites=true');
  });
});

describe('DocumentDB target (documentdb-5.0 profile) from MongoDB 6.0', () => {
  test('preflight names the source collections whose options or indexes DocumentDB would refuse, before anything is loaded', async () => {
    const [source, target] = await Promise.all([startMongoEmulator({ profile: 'mongodb-6.0' }), startMongoEmulator({ profile: 'documentdb-5.0' })]);
    const src = new MongoClient(source.uri);
    const dst = new MongoClient(target.uri, { retryWrites: false });
    try {
      const shop = src.db('shop');
      await shop.createCollection('log', { capped: true, size: 65536 });
      await shop.collection('places').createIndex({ loc: '2d' });
      await shop.collection('plain').createIndex({ name: 1 }, { unique: true });
      await shop.collection('plain').createIndex({ body: 'text' }); // text: 5.0 has it
      await shop.collection('plain').insertOne({ name: 'a' });
      await shop.createCollection('plainA', { viewOn: 'plain', pipeline: [{ $match: { name: 'a' } }] });
      const check = (rules: NamespaceRules) =>
        runPreflight({ source: src, sourceUri: source.uri, target: dst, targetUri: target.uri, rules, stateDb: 'migrator_state', requireEmptyTarget: true, enableChangeStreams: false });
      const report = await check(new NamespaceRules({ include: ['shop.*'] }));
      // One problem per refused item (the compatibility doctor, target-compat.ts), each with its remedy.
      const checks = report.problems.map((x) => x.check);
      assert.ok(checks.includes('shop.log: capped collection'), JSON.stringify(report.problems));
      assert.ok(checks.includes('shop.places: 2d index loc_2d'), JSON.stringify(report.problems));
      assert.ok(!checks.some((c) => c.startsWith('shop.plain:')), JSON.stringify(report.problems));
      assert.match(report.problems.find((x) => x.check === 'shop.places: 2d index loc_2d')!.remedy, /--exclude/);
      // Views: DocumentDB 5.0 has none; named with the --exclude that leaves them out.
      const v = report.problems.find((x) => x.check === 'shop.plainA: view');
      assert.ok(v, JSON.stringify(report.problems));
      assert.match(v.problem, /no views/);
      assert.match(v.remedy, /--exclude 'shop\.plainA'/);
      const without = await check(new NamespaceRules({ include: ['shop.*'], exclude: ['shop.log', 'shop.places', 'shop.plainA'] }));
      assert.deepEqual(without.problems, [], JSON.stringify(without.problems));
    } finally {
      await Promise.all([src.close(), dst.close()]);
      await Promise.all([source.stop(), target.stop()]);
    }
  });
});

describe('commands against a DocumentDB state store', () => {
  test('without --no-state-retry-writes: one message naming the flags (exit 2), not an internal error; with it the command works', async () => {
    const { runMigrator } = await import('../support/cli.js');
    const state = await startMongoEmulator({ profile: 'documentdb-5.0' });
    try {
      const refused = await runMigrator(['status', '--state-uri', state.uri, '--migration-id', 'none']);
      assert.equal(refused.exitCode, ExitCode.USAGE, refused.all);
      assert.match(refused.all, /^error: a database refused retryable writes: Retryable writes are not supported\.$/m);
      assert.match(refused.all, /^hint: .*--no-state-retry-writes/m);
      const ok = await runMigrator(['status', '--state-uri', state.uri, '--no-state-retry-writes', '--migration-id', 'none']);
      assert.equal(ok.exitCode, ExitCode.STATE_CONFLICT, ok.all);
    } finally {
      await state.stop();
    }
  });
});
