// A stop (SIGTERM, `docker stop`: 10 s of grace, then SIGKILL) while the source is down must end
// capture within seconds: neither the reopen backoff (up to 30 s between attempts) nor a change
// stream read blocked in server selection (serverSelectionTimeoutMS, 30 s by default) may hold it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { runCapture } from '../../src/source/capture-runner.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { createLogger } from '../../src/util/logger.js';
import { waitUntil } from '../support/wait.js';

/** A JSON logger whose lines the test can read. */
function recordingLog() {
  const lines: Record<string, unknown>[] = [];
  const out = { write: (s: string) => (lines.push(JSON.parse(s) as Record<string, unknown>), true) } as unknown as NodeJS.WritableStream;
  return { log: createLogger({ format: 'json', verbose: false, out }), lines };
}

describe('capture: a stop during a source outage', () => {
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

  /** Capture from a source that then goes away; returns how long the stop took once `ready` says so. */
  async function stopDuringOutage(name: string, serverSelectionTimeoutMS: number, ready: (lines: Record<string, unknown>[]) => boolean): Promise<number> {
    const source = await startMongoEmulator();
    const src = new MongoClient(source.uri, { serverSelectionTimeoutMS });
    const stream = kinesis.uniqueStreamName(name);
    await kinesis.createStream(stream, 1);
    const { log, lines } = recordingLog();
    const controller = new AbortController();
    const done = runCapture({
      source: src, store, migrationId: name, rules: new NamespaceRules(), kinesis: kinesis.client, streamName: stream, cdcOnly: true,
      signal: controller.signal, log, checkpointIntervalMs: 100, maxAwaitTimeMs: 100,
    });
    try {
      await waitUntil(async () => (await store.getCaptureCheckpoint(name)) !== null, 20_000, 'the change stream to open');
      await source.stop(); // the source goes away (failover gone wrong, network partition)
      await waitUntil(async () => ready(lines), 90_000, 'capture to be in the state under test');
      const t0 = performance.now();
      controller.abort(); // SIGTERM
      await done;
      return performance.now() - t0;
    } finally {
      controller.abort();
      await done.catch(() => undefined);
      await src.close(true).catch(() => undefined);
    }
  }

  test('in the reopen backoff: stops at once, not after the wait', { timeout: 180_000 }, async () => {
    // Attempt 5 waits 8 s or more (it waited exactly 8 s before the fix): a stop must not wait it out.
    const reopening = (lines: Record<string, unknown>[]) => lines.some((l) => l.msg === 'change stream error; reopening' && Number(l.attempt) >= 5);
    const ms = await stopDuringOutage('outage-backoff', 1000, reopening);
    assert.ok(ms < 5000, `stopped ${Math.round(ms)} ms after the signal, during a wait of 8 s or more`);
  });

  test('in a read blocked on server selection: stops at once, not after the selection times out', { timeout: 180_000 }, async () => {
    // serverSelectionTimeoutMS 30 s (the driver's default): the first read after the outage waits
    // for a server that does not come back.
    let since = 0; // the first poll comes right after the source stopped
    const threeSecondsIn = () => Date.now() - (since ||= Date.now()) >= 3000;
    const ms = await stopDuringOutage('outage-read', 30_000, threeSecondsIn);
    assert.ok(ms < 5000, `stopped ${Math.round(ms)} ms after the signal, during a read waiting up to 30 s for the source`);
  });
});
