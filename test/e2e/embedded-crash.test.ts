// The embedded transport survives a crash of the whole migrator (full-migrate and its kinesis-local
// engine killed with SIGKILL, the stream and everything in it gone) without losing a change.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { ensureGoTools } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';
import { killQuietly, processAlive, seed, spawnFullMigrate, startWorkload, waitGone } from '../support/full-migrate-process.js';
import { waitForPhase } from '../support/phases.js';

const ID = 'crash';

describe('embedded transport: crash of the whole migrator', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  let store: StateStore;

  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri);
    store = await StateStore.open({ client: dst });
  });
  after(async () => {
    await Promise.all([src?.close(), dst?.close()]);
    await Promise.all([source?.stop(), target?.stop()]);
  });

  test('SIGKILL during the load, and while replicating with writes flowing; engine killed; reruns resume; cutover; nothing lost', { timeout: 300_000 }, async () => {
    const t0 = Date.now();
    const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    await seed(src);
    // A larger collection, so that the initial load takes long enough to be killed in the middle.
    const pad = 'x'.repeat(1000);
    for (let b = 0; b < 20; b++) {
      await src.db('bar').collection('big').insertMany(Array.from({ length: 1000 }, (_, i) => ({ _id: b * 1000 + i, v: b, pad })) as never[]);
    }
    const dataDir = mkdtempSync(join(tmpdir(), 'migrator-embedded-crash-'));
    const common = ['--source-uri', source.uri, '--target-uri', target.uri, '--migration-id', ID];
    const extra = ['--migration-id', ID];
    // Paced so that apply catches up while writes keep flowing (READY_FOR_CUTOVER with a live workload).
    const workload = startWorkload(src, { pauseMs: 2 });
    const pids: number[] = [];
    const zero = spawnFullMigrate(source.uri, target.uri, dataDir, extra);
    const runs = [zero];
    try {
      // Crash 0, during the initial load (nothing applied yet).
      pids.push((await zero.waitFor(/^transport:/, 60_000)).pid as number);
      await waitForPhase(store, ID, ['INITIAL_LOAD'], { proc: zero.proc, timeoutMs: 60_000, logTail: zero.tail });
      await new Promise((r) => setTimeout(r, 300));
      zero.proc.kill('SIGKILL');
      await zero.proc;
      assert.ok(await waitGone(pids[0]!, 5_000), `kinesis-local (pid ${pids[0]}) outlived the SIGKILLed full-migrate`);
      const phase0 = (await store.getMigration(ID))?.phase;
      console.log(`# ${since()}: killed in phase ${phase0}`);

      // Rerun: nothing was applied, so capture starts over from the resume point (and the load reloads).
      const first = spawnFullMigrate(source.uri, target.uri, dataDir, extra);
      runs.push(first);
      const t1 = await first.waitFor(/^transport:/, 60_000);
      const enginePid = t1.pid as number;
      pids.push(enginePid);
      const restart0 = await first.waitFor(/^new embedded stream/, 60_000);
      if (phase0 === 'INITIAL_LOAD') assert.equal(restart0.captureFrom, 'the resume point', JSON.stringify(restart0));
      await waitForPhase(store, ID, ['READY_FOR_CUTOVER'], { proc: first.proc, timeoutMs: 180_000, logTail: first.tail });
      console.log(`# ${since()}: READY_FOR_CUTOVER after a restart from ${String(restart0.captureFrom)}`);
      await new Promise((r) => setTimeout(r, 2000)); // replicate with writes flowing for a while
      // Crash at a moment when the lost stream holds changes not yet applied: the capture checkpoint
      // (durable in the stream) is ahead of the target's applied position. A burst of inserts
      // makes apply lag behind capture.
      let cc: string | undefined;
      let applied: string | undefined;
      const burst = (async () => {
        for (let b = 0; b < 40 && !(cc && applied && cc > applied); b++) {
          await src.db('bar').collection('burst').insertMany(Array.from({ length: 250 }, (_, k) => ({ _id: b * 250 + k, pad: 'x'.repeat(200) })) as never[]);
        }
      })();
      const aheadBy = Date.now() + 30_000;
      while (Date.now() < aheadBy) {
        cc = (await store.getCaptureCheckpoint(ID))?.pos;
        applied = (await store.listShards(ID))[0]?.checkpoint?.pos;
        if (cc && applied && cc > applied) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      const before = workload.iterations;
      console.log(`# ${since()}: READY_FOR_CUTOVER; crash at iteration ${before}; capture checkpoint ${cc}, applied ${applied}`);
      assert.ok(cc && applied && cc > applied, 'crash while the stream held changes not yet applied');

      // The crash: full-migrate dies with SIGKILL (no handler runs); its engine must die with it.
      first.proc.kill('SIGKILL');
      await first.proc;
      await burst;
      assert.ok(await waitGone(enginePid, 5_000), `kinesis-local (pid ${enginePid}) outlived the SIGKILLed full-migrate`);
      assert.equal((await store.getMigration(ID))?.phase, 'READY_FOR_CUTOVER', 'a crash records nothing');
      const leaseOwner = (await store.listShards(ID))[0]?.lease.owner;
      assert.ok(leaseOwner, 'the dead process still holds its apply lease');

      // Writes go on while the migrator is down. Meanwhile: continuing this migration on another
      // stream is refused (its capture checkpoint was only backed by the lost embedded stream).
      const other = await runMigrator(['full-migrate', ...common, '--kinesis-stream', 'elsewhere', '--kinesis-endpoint', 'http://127.0.0.1:1']);
      assert.equal(other.exitCode, 10, other.all);
      assert.match(other.all, /runs on the embedded Kinesis engine/);
      assert.equal((await store.getMigration(ID))?.phase, 'READY_FOR_CUTOVER', 'the refusal changed nothing');
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(workload.iterations > before, 'writes continued during the downtime');

      // Rerun: same migration id and data dir. A fresh stream; capture restarts from the target's applied position.
      const restartAt = Date.now();
      const second = spawnFullMigrate(source.uri, target.uri, dataDir, extra);
      runs.push(second);
      const t2 = await second.waitFor(/^transport:/, 60_000);
      pids.push(t2.pid as number);
      assert.notEqual(t2.pid, enginePid);
      const restart = await second.waitFor(/^new embedded stream/, 60_000);
      assert.match(String(restart.captureFrom), /^\d+,\d+$/, `capture restarts from an applied position: ${JSON.stringify(restart)}`);
      assert.ok((restart.releasedLeases as number) >= 1, 'the dead process lease was released without waiting for its expiry');
      await second.waitFor(/^applying shard$/, 30_000);
      console.log(`# ${since()}: restarted, capture from ${String(restart.captureFrom)}, apply running after ${Date.now() - restartAt} ms`);

      await new Promise((r) => setTimeout(r, 3000)); // replicate after the restart, writes still flowing

      // The other way round: the engine dies under a running full-migrate, which must not hang on it.
      const killedAt = Date.now();
      process.kill(t2.pid as number, 'SIGKILL');
      const died = await second.proc;
      assert.equal(died.exitCode, 5, second.tail());
      const failed = await store.getMigration(ID);
      assert.equal(failed?.phase, 'FAILED');
      assert.equal(failed?.lastError?.exitCode, 5);
      assert.match(failed?.lastError?.message ?? '', /embedded Kinesis engine .* exited unexpectedly/);
      console.log(`# ${since()}: engine killed; full-migrate exited 5 after ${Date.now() - killedAt} ms`);

      const third = spawnFullMigrate(source.uri, target.uri, dataDir, extra);
      runs.push(third);
      const t3 = await third.waitFor(/^transport:/, 60_000);
      pids.push(t3.pid as number);
      await third.waitFor(/^resuming a failed migration$/, 60_000);
      await third.waitFor(/^applying shard$/, 60_000);
      await new Promise((r) => setTimeout(r, 2000));
      const { ops } = await workload.stop();
      const cut = await runMigrator(['cutover', ...common, '--writes-stopped', '--wait', '--timeout', '120s'], { timeoutMs: 150_000 });
      assert.equal(cut.exitCode, 0, `${cut.all}\n${third.tail()}`);
      const result = await third.proc;
      assert.equal(result.exitCode, 0, third.tail());
      assert.match(String(result.stdout), /COMPLETED/);
      assert.ok(await waitGone(t3.pid as number, 5_000));

      const verify = await runMigrator(['verify', ...common]);
      assert.equal(verify.exitCode, 0, verify.all);
      const products = await src.db('bar').collection('products').countDocuments();
      assert.equal(await dst.db('bar').collection('products').countDocuments(), products);
      assert.equal(await dst.db('bar').collection('orders').countDocuments(), await src.db('bar').collection('orders').countDocuments());
      assert.equal(await dst.db('bar').collection('burst').countDocuments(), await src.db('bar').collection('burst').countDocuments());
      assert.equal(await dst.db('bar').collection('big').countDocuments(), 20_000);
      // The last insert of the workload (after the restart) and one from the downtime are there.
      assert.ok(await dst.db('bar').collection('products').findOne({ _id: 100_000 + before + 1 } as never));
      assert.equal((await store.getMigration(ID))?.phase, 'COMPLETED');
      console.log(`# ${since()}: COMPLETED and verified equal; ${ops} source ops, ${products} products`);
    } finally {
      await workload.stop();
      for (const r of runs) r.proc.kill('SIGKILL');
      for (const pid of pids) if (processAlive(pid)) killQuietly(pid);
    }
  });
});
