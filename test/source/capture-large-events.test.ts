// Change events over 16 MiB (issue #11, defect 4): MongoDB fails the change stream with
// BSONObjectTooLarge; capture used to stop (and, rerun, stop again at the same event). On 7.0 it
// asks for $changeStreamSplitLargeEvent and reassembles the fragments; on 5.0 (no split stage) it
// reads past the event without document images and sends the document's current state, with a WARN.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Timestamp } from 'mongodb';
import { startMongoEmulator, type MongoEmulator, type ProfileName } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { readStreamEnvelopes } from '../support/stream-contents.js';
import { runCapture } from '../../src/source/capture-runner.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { createLogger } from '../../src/util/logger.js';
import { waitUntil } from '../support/wait.js';

type AnyDoc = { _id: number | string; [k: string]: unknown };
const NINE_MIB = 9 * 1024 * 1024;

describe('capture: change events over 16 MiB', () => {
  let stateEmu: MongoEmulator;
  let kinesis: KinesisLocal;
  let stateClient: MongoClient;
  let store: StateStore;

  before(async () => {
    [stateEmu, kinesis] = await Promise.all([startMongoEmulator(), startKinesisLocal()]);
    stateClient = new MongoClient(stateEmu.uri);
    store = await StateStore.open({ client: stateClient });
  });
  after(async () => {
    await stateClient.close();
    await Promise.all([stateEmu.stop(), kinesis.stop()]);
  });

  for (const [profile, expectWarn] of [
    ['mongodb-7.0', false],
    ['mongodb-5.0', true],
  ] as [ProfileName, boolean][]) {
    test(`${profile}: capture goes on past an update event over 16 MiB and the document's new state reaches the stream`, { timeout: 120_000 }, async () => {
      const source = await startMongoEmulator({ profile });
      const src = new MongoClient(source.uri);
      const lines: string[] = [];
      const log = createLogger({ format: 'json', verbose: false, out: { write: (l: string) => (lines.push(String(l)), true) } as unknown as NodeJS.WritableStream });
      const stream = kinesis.uniqueStreamName('big');
      await kinesis.createStream(stream, 1);
      const migrationId = `big-${profile}`;
      const controller = new AbortController();
      let failed: unknown;
      const done = runCapture({
        cdcOnly: true,
        source: src,
        store,
        migrationId,
        rules: new NamespaceRules({ include: ['bar.*'] }),
        kinesis: kinesis.client,
        streamName: stream,
        signal: controller.signal,
        log,
        checkpointIntervalMs: 100,
        maxAwaitTimeMs: 100,
      }).catch((err: unknown) => {
        failed = err;
      });
      try {
        await waitUntil(async () => failed !== undefined || (await store.getCaptureCheckpoint(migrationId)) !== null, 20_000, 'the change stream to open');
        const coll = src.db('bar').collection<AnyDoc>('docs');
        await coll.insertOne({ _id: 1, big: 'a'.repeat(NINE_MIB) });
        await coll.insertOne({ _id: 2, n: 0 });
        // updatedFields (9 MiB) + the looked-up fullDocument (9 MiB): an 18 MiB change event.
        await coll.updateOne({ _id: 1 }, { $set: { big: 'b'.repeat(NINE_MIB) } });
        await coll.updateOne({ _id: 2 }, { $set: { n: 1 } });
        const lastOp = (await src.db('bar').command({ insert: 'sentinel', documents: [{ _id: 'last' }] })).operationTime as Timestamp;
        await waitUntil(async () => {
          if (failed !== undefined) return true;
          const cp = await store.getCaptureCheckpoint(migrationId);
          return !!cp && cp.ct.compare(lastOp) >= 0;
        }, 60_000, 'the capture checkpoint to reach the last write');
        assert.equal(failed, undefined, `capture failed: ${String((failed as Error | undefined)?.message)}`);
        controller.abort();
        await done;
        const envelopes = [...(await readStreamEnvelopes(kinesis.client, stream)).values()].flat();
        const ofDoc1 = envelopes.filter((e) => e.ns.coll === 'docs' && (e.key?._id as unknown as { valueOf(): number })?.valueOf() === 1);
        const last = ofDoc1[ofDoc1.length - 1]!;
        assert.equal(last.op, 'update');
        assert.equal((last.doc as AnyDoc).big, 'b'.repeat(NINE_MIB), 'the new state of the large document is in the stream');
        const ofDoc2 = envelopes.filter((e) => e.ns.coll === 'docs' && (e.key?._id as unknown as { valueOf(): number })?.valueOf() === 2);
        assert.equal(((ofDoc2[ofDoc2.length - 1]!.doc as AnyDoc).n as { valueOf(): number }).valueOf(), 1, 'events after it are captured');
        assert.ok(envelopes.some((e) => e.ns.coll === 'sentinel'));
        const warned = lines.some((l) => l.includes('over 16 MiB') && l.includes('"level":40'));
        assert.equal(warned, expectWarn, expectWarn ? 'the fallback says so in a WARN' : 'split events need no fallback');
      } finally {
        controller.abort();
        await done;
        await src.close();
        await source.stop();
      }
    });
  }
});
