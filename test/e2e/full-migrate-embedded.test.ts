// full-migrate on the embedded transport: nothing but two connection strings (and a data dir).
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
import { killQuietly, seed, spawnFullMigrate, startWorkload, waitGone, cutoverAndWait } from '../support/full-migrate-process.js';
import { waitForPhase } from '../support/phases.js';

describe('full-migrate with the embedded transport', () => {
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

  test('initial-load and --kinesis-endpoint without --kinesis-stream are usage errors', async () => {
    const common = ['--source-uri', source.uri, '--target-uri', target.uri];
    const load = await runMigrator(['initial-load', ...common]);
    assert.equal(load.exitCode, 2, load.all);
    assert.match(load.all, /Missing --kinesis-stream/);
    assert.match(load.all, /full-migrate/);
    const endpoint = await runMigrator(['full-migrate', ...common, '--kinesis-endpoint', 'http://127.0.0.1:1']);
    assert.equal(endpoint.exitCode, 2, endpoint.all);
    assert.match(endpoint.all, /--kinesis-endpoint needs --kinesis-stream/);
  });

  test('writes during and after the copy, Ctrl-C and rerun, cutover --wait, verify equal', { timeout: 240_000 }, async () => {
    const started = Date.now();
    await seed(src);
    const dataDir = mkdtempSync(join(tmpdir(), 'migrator-embedded-e2e-'));
    const common = ['--source-uri', source.uri, '--target-uri', target.uri];
    const workload = startWorkload(src, { pauseMs: 1 });
    const pids: number[] = [];
    const first = spawnFullMigrate(source.uri, target.uri, dataDir);
    let fm = first;
    try {
      const transport = await fm.waitFor(/^transport:/, 60_000);
      assert.equal(transport.transport, 'embedded');
      pids.push(transport.pid as number);
      await waitForPhase(store, 'default', ['READY_FOR_CUTOVER'], { proc: fm.proc, timeoutMs: 120_000, logTail: fm.tail });

      // A graceful stop (SIGINT) with writes flowing: exit 130, the engine stopped with it.
      fm.proc.kill('SIGINT');
      const interrupted = await fm.proc;
      assert.equal(interrupted.exitCode, 130, fm.tail());
      assert.ok(await waitGone(pids[0]!, 5_000), 'the engine stopped with full-migrate');
      const errors = first.lines.filter((l) => (l.level as number) >= 50);
      assert.deepEqual(errors, [], 'a clean stop: capture flushed into the engine before it stopped');
      assert.ok(first.find(/^capture stopped$/), first.tail());
      await new Promise((r) => setTimeout(r, 1000)); // writes while stopped

      // Rerun with the same arguments: a new engine, the migration continues.
      fm = spawnFullMigrate(source.uri, target.uri, dataDir);
      pids.push((await fm.waitFor(/^transport:/, 60_000)).pid as number);
      await fm.waitFor(/^applying shard$/, 60_000);
      await new Promise((r) => setTimeout(r, 1500));
      const { ops } = await workload.stop();
      assert.ok(ops > 0);

      await cutoverAndWait(common);
      const result = await fm.proc;
      assert.equal(result.exitCode, 0, fm.tail());
      assert.match(String(result.stdout), /COMPLETED/);
      assert.ok(await waitGone(pids[1]!, 5_000), 'the engine stopped with full-migrate');

      const verify = await runMigrator(['verify', ...common]);
      assert.equal(verify.exitCode, 0, verify.all);
      assert.equal(await dst.db('bar').collection('products').countDocuments(), await src.db('bar').collection('products').countDocuments());
      const m = await store.getMigration('default');
      assert.equal(m?.phase, 'COMPLETED');
      assert.equal(m?.config?.streamName, 'migrator');
      console.log(`# embedded full-migrate: ${ops} ops, ${Math.round((Date.now() - started) / 1000)} s`);
    } finally {
      await workload.stop();
      first.proc.kill('SIGKILL');
      fm.proc.kill('SIGKILL');
      for (const pid of pids) killQuietly(pid);
    }
  });
});
