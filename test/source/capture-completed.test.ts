// A capture beside full-migrate (`exitWhenCompleted`, what `migrator capture` sets without
// --cdc-only) returns by itself once the migration is COMPLETED: the active one after flushing and
// checkpointing, a standby without ever taking the lease (full-migrate releases it during the
// cutover, and a standby would otherwise capture on for good). Without the option it keeps going.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Timestamp } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { readStreamEnvelopes } from '../support/stream-contents.js';
import { runCapture } from '../../src/source/capture-runner.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { createLogger } from '../../src/util/logger.js';
import { waitUntil } from '../support/wait.js';

const log = createLogger({ format: 'json', verbose: false, out: { write: () => true } as unknown as NodeJS.WritableStream });

describe('capture and a COMPLETED migration', () => {
  let source: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;
  let store: StateStore;

  before(async () => {
    [source, kinesis] = await Promise.all([startMongoEmulator(), startKinesisLocal()]);
    src = new MongoClient(source.uri);
    store = await StateStore.open({ client: src });
  });
  after(async () => {
    await src.close();
    await Promise.all([source.stop(), kinesis.stop()]);
  });

  /** runCapture in the background for migration `id` (created, phase READY_FOR_CUTOVER, resume point now). */
  async function start(id: string, exitWhenCompleted: boolean) {
    const stream = kinesis.uniqueStreamName(id);
    await kinesis.createStream(stream, 1);
    await store.createMigration(id);
    await store.setPhase(id, 'READY_FOR_CUTOVER');
    const ct = (await src.db(id).command({ insert: 'items', documents: [{ _id: 'before' }] })).operationTime as Timestamp;
    await store.setResumePoint(id, { ct });
    const abort = new AbortController();
    const done = runCapture({
      source: src,
      store,
      migrationId: id,
      rules: new NamespaceRules({ include: [`${id}.*`] }),
      kinesis: kinesis.client,
      streamName: stream,
      exitWhenCompleted,
      leaseTtlMs: 3_000,
      checkpointIntervalMs: 100,
      maxAwaitTimeMs: 100,
      signal: abort.signal,
      log,
    });
    let ended = false;
    void done.then(() => (ended = true), () => (ended = true));
    return { stream, done, abort, ended: () => ended };
  }

  test('the active capture: captures while replicating and cutting over, returns after COMPLETED, checkpointed, lease released', { timeout: 120_000 }, async () => {
    const id = 'cdone1';
    const cap = await start(id, true);
    try {
      await waitUntil(async () => (await store.getCaptureCheckpoint(id)) !== null, 30_000, 'the change stream to open');
      await src.db(id).collection<{ _id: number }>('items').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i })));
      await waitUntil(async () => ((await store.getCaptureCheckpoint(id))?.counters.events ?? 0) >= 21, 30_000, 'the inserts to be captured');
      await store.setPhase(id, 'CUTTING_OVER');
      await new Promise((r) => setTimeout(r, 4_500)); // two polls (every 2 s)
      assert.equal(cap.ended(), false, 'still capturing while CUTTING_OVER');
      await store.setPhase(id, 'COMPLETED');
      await waitUntil(async () => cap.ended(), 20_000, 'capture to return after COMPLETED');
      const progress = await cap.done;
      assert.equal(progress.events, 21);
      assert.equal(await store.getCaptureLease(id), null, 'capture lease released');
      const ids = [...(await readStreamEnvelopes(kinesis.client, cap.stream)).values()].flat().filter((e) => e.op === 'insert').map((e) => e.key?._id);
      assert.equal(ids.length, 21, 'every insert is in the stream');
    } finally {
      cap.abort.abort();
      await cap.done.catch(() => undefined);
    }
  });

  test('a standby: returns after COMPLETED without taking the lease; without exitWhenCompleted it keeps standing by', { timeout: 120_000 }, async () => {
    const other = 'another-host:4242:feedbeef'; // a live holder elsewhere
    const id = 'cdone2';
    const idKeep = 'cdone3';
    for (const m of [id, idKeep]) assert.ok(await store.acquireLease(m, 'capture', other, { ttlMs: 600_000, scope: 'capture' }));
    const standby = await start(id, true);
    const keeps = await start(idKeep, false);
    try {
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal(standby.ended(), false, 'standing by while the migration replicates');
      await store.setPhase(id, 'COMPLETED');
      await store.setPhase(idKeep, 'COMPLETED');
      await waitUntil(async () => standby.ended(), 20_000, 'the standby to return after COMPLETED');
      const progress = await standby.done;
      assert.equal(progress.events, 0);
      assert.equal((await store.getCaptureLease(id))?.owner, other, 'the lease was never taken');
      await new Promise((r) => setTimeout(r, 4_500));
      assert.equal(keeps.ended(), false, 'without exitWhenCompleted (plain CDC) it keeps standing by');
    } finally {
      standby.abort.abort();
      keeps.abort.abort();
      await Promise.allSettled([standby.done, keeps.done]);
    }
  });
});
