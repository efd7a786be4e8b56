import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ResultPromise } from 'execa';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { StateStore, type MigrationPhase } from '../../src/state/store.js';
import { waitForPhase } from '../support/phases.js';
import { spawnMigrator, cutoverAndWait } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number | string };
const ID = 'kill-restart';

describe('full-migrate survives SIGKILL during the load and during replication', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;
  let dst: MongoClient;
  let store: StateStore;

  before(async () => {
    await ensureGoTools();
    [source, target, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri);
    store = await StateStore.open({ client: dst });
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), target.stop(), kinesis.stop()]);
  });

  test('kill, rerun, kill, rerun, cutover: target equals source', { timeout: 300_000 }, async () => {
    const pad = 'x'.repeat(2000);
    for (let b = 0; b < 20; b++) {
      await src.db('shop').collection<AnyDoc>('items').insertMany(Array.from({ length: 1000 }, (_, i) => ({ _id: b * 1000 + i, v: 0, pad })));
    }
    const stream = kinesis.uniqueStreamName('kill');
    await kinesis.createStream(stream, 2);
    const args = [
      '--source-uri', source.uri, '--target-uri', target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint,
      '--migration-id', ID, '--lease-ttl', '3s', '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
      '--data-dir', `/tmp/migrator-kill-${process.pid}`, '--log-format', 'json',
    ];
    const start = () => spawnMigrator(['full-migrate', ...args]);
    const phaseIs = (want: MigrationPhase[], proc: ResultPromise) => waitForPhase(store, ID, want, { proc });

    // Writes all along: updates, inserts, deletes.
    let writing = true;
    let n = 0;
    const workload = (async () => {
      while (writing) {
        const items = src.db('shop').collection<AnyDoc>('items');
        await items.updateOne({ _id: n % 20000 }, { $inc: { v: 1 } });
        await items.insertOne({ _id: `new-${n}`, at: new Date() });
        if (n % 3 === 0) await items.deleteOne({ _id: 19999 - (n % 5000) });
        n++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    // 1. Kill during the initial load.
    const first = start();
    await phaseIs(['INITIAL_LOAD'], first);
    first.kill('SIGKILL');
    await first;
    const killed = await store.getMigration(ID);
    assert.equal(killed?.phase, 'INITIAL_LOAD', 'killed in the load');
    const resumePoint = killed?.resumePoint;
    // Killed after the load began (its progress document exists) → the rerun is a second attempt.
    const attemptsBefore = killed?.load?.attempt ?? 0;

    // 2. Rerun: the load restarts (with drop), keeping the original resume point; kill while replicating.
    const second = start();
    await phaseIs(['CATCHING_UP', 'READY_FOR_CUTOVER'], second);
    assert.deepEqual((await store.getMigration(ID))?.resumePoint?.ct, resumePoint?.ct, 'the original resume point is kept');
    assert.equal((await store.getMigration(ID))?.load?.attempt, attemptsBefore + 1, 'the load ran again');
    await new Promise((r) => setTimeout(r, 2000));
    second.kill('SIGKILL');
    await second;

    // 3. Rerun again: replication resumes from the checkpoints; then stop writes and cut over.
    const third = start();
    await phaseIs(['READY_FOR_CUTOVER'], third);
    await new Promise((r) => setTimeout(r, 1000));
    writing = false;
    await workload;
    await cutoverAndWait(args.slice(0, 10), { timeout: '120s' });
    const done = await third;
    assert.equal(done.exitCode, 0, String(done.stderr).slice(-2000));
    const verify = await runMigrator(['verify', '--source-uri', source.uri, '--target-uri', target.uri]);
    assert.equal(verify.exitCode, 0, verify.all);
    assert.ok(n > 100, `workload ran (${n} rounds)`);
  });
});
