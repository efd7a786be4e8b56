// SIGTERM (`docker stop`) in every phase of full-migrate: each time the process ends with 130, the
// phase it was in is kept (not FAILED), and rerunning the same command continues from there. Also
// the one crash window of the cutover: a process killed between recording the barrier and writing
// its marker on the source.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ResultPromise } from 'execa';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { startWorkload } from '../support/workload.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore, type MigrationPhase } from '../../src/state/store.js';
import { spawnMigrator } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number | string };
const ID = 'sigterm';

describe('SIGTERM in every phase of full-migrate, then rerun', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;
  let dst: MongoClient;
  let store: StateStore;
  const dataDir = mkdtempSync(join(tmpdir(), 'migrator-sigterm-'));

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
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('load, replication, cutover (waiting and with a lost marker): 130 each time, rerun continues, target equals source', { timeout: 300_000 }, async () => {
    const pad = 'x'.repeat(1000);
    for (let b = 0; b < 20; b++) {
      await src.db('bar').collection<AnyDoc>('products').insertMany(Array.from({ length: 1000 }, (_, i) => ({ _id: b * 1000 + i, price: i, legacy: true, pad })));
    }
    const stream = kinesis.uniqueStreamName('sigterm');
    await kinesis.createStream(stream, 2);
    const args = [
      '--source-uri', source.uri, '--target-uri', target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint,
      '--migration-id', ID, '--lease-ttl', '3s', '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
      '--data-dir', dataDir, '--log-format', 'json',
    ];
    const start = () =>
      spawnMigrator(['full-migrate', ...args], { forceKillAfterDelay: 10_000 }); // docker stop's grace period: slower than that is a SIGKILL
    const phase = async () => (await store.getMigration(ID))?.phase;
    const waitPhase = (want: MigrationPhase[], proc: ResultPromise, timeoutMs?: number) => waitForPhase(store, ID, want, { proc, timeoutMs });
    /** `inPhases`: where the process may be when the signal lands (replication may turn READY meanwhile). */
    const terminate = async (proc: ResultPromise, ...inPhases: MigrationPhase[]) => {
      const t0 = Date.now();
      proc.kill('SIGTERM');
      const r = await proc;
      const inPhase = inPhases.join('/');
      console.log(`SIGTERM in ${inPhase}: exited after ${Date.now() - t0} ms`);
      assert.equal(r.exitCode, 130, `SIGTERM in ${inPhase}: exit 130 (got ${r.exitCode}/${r.signal})\n${String(r.stderr).slice(-1500)}`);
      const after = await phase();
      assert.ok(after && inPhases.includes(after), `the phase stays ${inPhase}, not FAILED (got ${after})`);
      assert.equal((await store.getMigration(ID))?.lastError, undefined, 'no error recorded for a requested stop');
    };
    const workload = startWorkload(src, { pauseMs: 5 });

    // 1. During the initial load: the tools are stopped and leave no connection-string files.
    const first = start();
    await waitPhase(['INITIAL_LOAD'], first);
    await new Promise((r) => setTimeout(r, 300));
    await terminate(first, 'INITIAL_LOAD');
    const loadDir = join(dataDir, 'load');
    const left = existsSync(loadDir) ? readdirSync(loadDir) : [];
    assert.deepEqual(left, [], 'no tool config file (connection strings) left behind');

    // 2. During replication.
    const second = start();
    await waitPhase(['CATCHING_UP', 'READY_FOR_CUTOVER'], second);
    // Stop it once apply has committed something: a fixed delay raced apply's first batch on a
    // busy machine (leases taken, nothing applied yet, so there was no checkpoint to keep).
    const applied = async () => (await store.listShards(ID)).filter((s) => s.checkpoint).map((s) => s.shardId);
    for (const deadline = Date.now() + 60_000; (await applied()).length === 0; ) {
      assert.ok(Date.now() < deadline, 'apply committed nothing within 60 s of CATCHING_UP');
      await new Promise((r) => setTimeout(r, 200));
    }
    const appliedBefore = await applied();
    await new Promise((r) => setTimeout(r, 500));
    await terminate(second, 'CATCHING_UP', 'READY_FOR_CUTOVER');
    assert.ok((await store.getCaptureCheckpoint(ID)) !== null, 'capture checkpoint saved');
    const appliedAfter = await applied();
    assert.ok(appliedBefore.every((sh) => appliedAfter.includes(sh)), 'apply checkpoints kept through the SIGTERM');
    assert.ok((await store.listShards(ID)).every((s) => !s.lease?.owner), 'shard leases released on the way out');

    // 3. During the cutover, while it waits for the operator to confirm that writes stopped.
    const third = start();
    await waitPhase(['READY_FOR_CUTOVER'], third);
    await workload.stop();
    const request = await runMigrator(['cutover', '--target-uri', target.uri, '--migration-id', ID]);
    assert.equal(request.exitCode, 0, request.all);
    await waitPhase(['CUTTING_OVER'], third);
    await terminate(third, 'CUTTING_OVER');

    // 4. The crash window: barrier recorded, marker never written (as if killed in between).
    await store.confirmWritesStopped(ID);
    assert.ok(await store.setCutoverBarrier(ID, 'cutover-marker-never-written'));
    const fourth = start();
    await waitPhase(['COMPLETED'], fourth, 120_000);
    const done = await fourth;
    assert.equal(done.exitCode, 0, String(done.stderr).slice(-1500));
    assert.equal((await store.getCutover(ID))?.barrierId, 'cutover-marker-never-written');

    const verify = await runMigrator(['verify', '--source-uri', source.uri, '--target-uri', target.uri]);
    assert.equal(verify.exitCode, 0, verify.all);
  });
});
