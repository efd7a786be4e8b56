// MongoDB 7.0 → 7.0 with access control, the migrator holding only the roles README "Privileges"
// lists (test/support/migrator-users.ts), and NO `--writes-stopped`: the cutover blocks user
// writes itself (setUserWriteBlockMode) and writes its marker through the block
// (bypassWriteBlockingMode). Writes during the copy and after (by an application user with
// readWrite only), kill -9 during replication, SIGTERM inside the cutover (writes unblocked, the
// cutover starts over on the rerun), kill -9 inside the cutover (the block stays until the rerun,
// which blocks again and sends a new barrier), cutover, verify; then the documented end state.
//
// Then issue #11 defect 1 and the failure paths after blocking writes: a user that can block but
// not bypass the block is stopped by preflight (exit 4, naming the role); a marker the source
// refuses after the block aborts the cutover and unblocks the writes; so does a verification
// mismatch. In no case is the source left read-only.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ResultPromise } from 'execa';
import { MongoClient, type Document, type MongoServerError } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { startKinesisFaultProxy, type KinesisFaultProxy } from '../support/kinesis-fault-proxy.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { ROOT_ONLY, ROOT_USER, createMigratorUser, sourceRoles, uriAs } from '../support/migrator-users.js';
import { StateStore, type MigrationPhase } from '../../src/state/store.js';
import { spawnMigrator } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number | string };
const APP = { user: 'app', pwd: 'apppw' };

/** An application writing to shop.items as a readWrite user; counts the writes the block refused (371). */
function appWorkload(client: MongoClient) {
  let running = true;
  let n = 0;
  let blocked = 0;
  const done = (async () => {
    while (running) {
      const items = client.db('shop').collection<AnyDoc>('items');
      try {
        await items.updateOne({ _id: n % 3000 }, { $inc: { v: 1 } });
        await items.insertOne({ _id: `new-${n}`, at: new Date() });
        if (n % 3 === 0) await items.deleteOne({ _id: 2999 - (n % 1000) });
        n++;
      } catch (err) {
        if ((err as MongoServerError).code !== 371) throw err;
        blocked++;
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 3));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return { rounds: n, blocked };
    },
    get blocked() {
      return blocked;
    },
  };
}

describe('mongodb-7.0 → mongodb-7.0 with auth and write blocking (no --writes-stopped)', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let proxy: KinesisFaultProxy;
  let srcRoot: MongoClient;
  let dstRoot: MongoClient;
  let app: MongoClient;
  let store: StateStore;
  let sourceUri: string;
  let targetUri: string;
  const dataDir = mkdtempSync(join(tmpdir(), 'migrator-auth-'));

  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    [source, target, kinesis] = await Promise.all([
      startMongoEmulator({ profile: 'mongodb-7.0', auth: ROOT_ONLY }),
      startMongoEmulator({ profile: 'mongodb-7.0', auth: ROOT_ONLY }),
      startKinesisLocal(),
    ]);
    proxy = await startKinesisFaultProxy(kinesis.endpoint, Math.random);
    sourceUri = await createMigratorUser(source, 'source');
    targetUri = await createMigratorUser(target, 'target');
    srcRoot = new MongoClient(uriAs(source, ROOT_USER));
    dstRoot = new MongoClient(uriAs(target, ROOT_USER));
    await srcRoot.db('admin').command({ createUser: APP.user, pwd: APP.pwd, roles: [{ role: 'readWrite', db: 'shop' }] });
    app = new MongoClient(uriAs(source, APP));
    store = await StateStore.open({ client: dstRoot });
  });
  after(async () => {
    await Promise.all([srcRoot.close(), dstRoot.close(), app.close()]);
    await proxy.stop();
    await Promise.all([source.stop(), target.stop(), kinesis.stop()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const argsFor = (id: string, stream: string, o: { sourceUri?: string; map?: string } = {}) => [
    '--source-uri', o.sourceUri ?? sourceUri, '--target-uri', targetUri, '--kinesis-stream', stream, '--kinesis-endpoint', proxy.endpoint,
    '--migration-id', id, '--lease-ttl', '3s', '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
    '--data-dir', join(dataDir, id), '--log-format', 'json', '--include', 'shop.*', ...(o.map ? ['--map', o.map] : []),
  ];
  const start = (args: string[]) =>
    spawnMigrator(['full-migrate', ...args], { forceKillAfterDelay: 10_000 });
  const cutoverArgs = (id: string) => ['cutover', '--target-uri', targetUri, '--migration-id', id];
  /** Whether an application user can write to the source right now. */
  const appCanWrite = async () =>
    app
      .db('shop')
      .collection<AnyDoc>('probe')
      .insertOne({ _id: `probe-${Date.now()}-${Math.random()}` })
      .then(
        () => true,
        (err: MongoServerError) => {
          if (err.code === 371) return false;
          throw err;
        },
      );
  const untilTrue = async (what: string, f: () => Promise<boolean>, ms = 60_000) => {
    const end = Date.now() + ms;
    while (!(await f())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  test('copy with writes, kill -9, rerun, SIGTERM and kill -9 inside the cutover, cutover with write blocking, verify', { timeout: 240_000 }, async (t) => {
    const ID = 'auth-e2e';
    for (let b = 0; b < 3; b++) {
      await srcRoot.db('shop').collection<AnyDoc>('items').insertMany(Array.from({ length: 1000 }, (_, i) => ({ _id: b * 1000 + i, v: 0, pad: 'x'.repeat(500) })));
    }
    const stream = kinesis.uniqueStreamName('auth');
    await kinesis.createStream(stream, 2);
    const args = argsFor(ID, stream);
    const phaseIs = (want: MigrationPhase[], proc: ResultPromise) => waitForPhase(store, ID, want, { proc });
    const workload = appWorkload(app);
    t.after(() => workload.stop().catch(() => undefined));

    // 1. Copy with writes, then kill -9 while replicating.
    const first = start(args);
    await phaseIs(['CATCHING_UP', 'READY_FOR_CUTOVER'], first);
    await new Promise((r) => setTimeout(r, 1000));
    first.kill('SIGKILL');
    await first;

    // 2. Rerun; request the cutover while the application still writes. Apply is held back
    //    (GetRecords throttled) so the cutover stays open with the writes blocked; SIGTERM then.
    const second = start(args);
    await phaseIs(['READY_FOR_CUTOVER'], second);
    proxy.set({ throttleRate: 1, throttleOps: ['GetRecords'] });
    const request = await runMigrator(cutoverArgs(ID));
    assert.equal(request.exitCode, 0, request.all);
    await untilTrue('the migrator to block writes', async () => (await store.getCutover(ID))?.writesBlockedByMigrator === true && !(await appCanWrite()));
    await untilTrue('the application to see 371', async () => workload.blocked > 0);
    second.kill('SIGTERM');
    const stopped = await second;
    assert.equal(stopped.exitCode, 130, String(stopped.stderr).slice(-2000));
    assert.ok(await appCanWrite(), 'SIGTERM inside the cutover gave the source its writes back');
    const afterStop = await store.getCutover(ID);
    assert.equal(afterStop?.writesBlockedByMigrator, false);
    assert.equal(afterStop?.state, 'requested', 'the cutover starts over on the rerun');
    assert.equal((await store.getMigration(ID))?.phase, 'CUTTING_OVER');

    // 3. Rerun, still held back: it blocks again and sends a new barrier; kill -9 there. A killed
    //    process cannot unblock: the source stays blocked until the next run continues.
    const third = start(args);
    await untilTrue('a new barrier under a new block', async () => {
      const c = await store.getCutover(ID);
      return c?.state === 'barrier-sent' && c.writesBlockedByMigrator === true && !(await appCanWrite());
    });
    const killedBarrier = (await store.getCutover(ID))?.barrierId;
    third.kill('SIGKILL');
    await third;
    assert.equal(await appCanWrite(), false, 'after kill -9 the block stays (documented) until the next run');

    // 4. Rerun: it cannot know the block held since that barrier, so it blocks again and sends
    //    another one; then verifies and completes — no --writes-stopped.
    proxy.set({});
    const fourth = start(args);
    const wait = await runMigrator([...cutoverArgs(ID), '--wait', '--timeout', '120s'], { timeoutMs: 150_000 });
    assert.equal(wait.exitCode, 0, wait.all);
    const done = await fourth;
    assert.equal(done.exitCode, 0, String(done.stderr).slice(-2000));
    assert.notEqual((await store.getCutover(ID))?.barrierId, killedBarrier, 'a new barrier after the kill');
    const { rounds, blocked } = await workload.stop();
    assert.ok(rounds > 50 && blocked > 0, `the application wrote (${rounds} rounds) and was blocked (${blocked} refused writes)`);

    const verify = await runMigrator(['verify', '--source-uri', sourceUri, '--target-uri', targetUri, '--include', 'shop.*']);
    assert.equal(verify.exitCode, 0, verify.all);
    // Documented end state: COMPLETED, and the source stays blocked for applications (they must
    // move to the target) until the operator runs setUserWriteBlockMode {global: false}.
    const status = JSON.parse((await runMigrator(['status', '--target-uri', targetUri, '--migration-id', ID, '--json'])).stdout) as {
      phase: string;
      cutover: { writesBlockedByMigrator: boolean };
    };
    assert.equal(status.phase, 'COMPLETED');
    assert.equal(status.cutover.writesBlockedByMigrator, true);
    const text = await runMigrator(['status', '--target-uri', targetUri, '--migration-id', ID]);
    assert.match(text.stdout, /writes to the source: still blocked by the migrator \(undo on the source: db\.adminCommand\(\{setUserWriteBlockMode: 1, global: false\}\)\)/);
    assert.equal(await appCanWrite(), false, 'the source stays write-blocked after COMPLETED, as README says');
    await srcRoot.db('admin').command({ setUserWriteBlockMode: 1, global: false });
    assert.ok(await appCanWrite());
  });

  test('preflight: a user that can block writes but not bypass the block is refused (exit 4, naming the role)', { timeout: 120_000 }, async () => {
    await srcRoot.db('admin').command({ createUser: 'halfway', pwd: 'pw', roles: [...sourceRoles('migrator_state', false), { role: 'backup', db: 'admin' }] });
    const stream = kinesis.uniqueStreamName('half');
    await kinesis.createStream(stream, 1);
    const r = await runMigrator(['full-migrate', ...argsFor('halfway', stream, { sourceUri: uriAs(source, { user: 'halfway', pwd: 'pw' }), map: 'shop:shop_half' })], { timeoutMs: 90_000 });
    assert.equal(r.exitCode, 4, r.all);
    assert.match(r.all, /source privileges: the source user lacks: no bypassWriteBlockingMode for blocking writes at the cutover .*migratorWriteBlock@admin/);
    assert.ok(await appCanWrite());
  });

  test('a marker the source refuses after the block, and a verification mismatch: cutover aborted, writes unblocked', { timeout: 200_000 }, async () => {
    // A user with the write-block role but no readWrite on the state database: the marker is refused (13).
    await srcRoot.db('admin').command({
      createUser: 'nomarker',
      pwd: 'pw',
      roles: [{ role: 'readAnyDatabase', db: 'admin' }, { role: 'migratorWriteBlock', db: 'admin' }, { role: 'readWrite', db: 'migrator_state' }],
    });
    const uri = uriAs(source, { user: 'nomarker', pwd: 'pw' });
    const stream = kinesis.uniqueStreamName('marker');
    await kinesis.createStream(stream, 1);
    const ID = 'marker';
    const args = argsFor(ID, stream, { sourceUri: uri, map: 'shop:shop_marker' });
    const proc = start(args);
    await waitForPhase(store, ID, ['READY_FOR_CUTOVER'], { proc });
    // Privileges change after preflight (the marker's readWrite is revoked).
    await srcRoot.db('admin').command({ dropUser: 'nomarker' });
    await srcRoot.db('admin').command({ createUser: 'nomarker', pwd: 'pw', roles: [{ role: 'readAnyDatabase', db: 'admin' }, { role: 'migratorWriteBlock', db: 'admin' }] });
    const wait = await runMigrator([...cutoverArgs(ID), '--wait', '--timeout', '60s'], { timeoutMs: 90_000 });
    const r = await proc;
    assert.equal(r.exitCode, 4, String(r.stderr).slice(-2000));
    assert.match(String(r.stderr), /cutover marker could not be written to the source/);
    assert.equal(wait.exitCode, 4, wait.all);
    assert.ok(await appCanWrite(), 'writes unblocked after the failed marker');
    const c = await store.getCutover(ID);
    assert.equal(c?.state, 'aborted');
    assert.equal(c?.writesBlockedByMigrator, false);

    // Give the marker back; tamper with the target so verification fails after the block.
    await srcRoot.db('admin').command({ grantRolesToUser: 'nomarker', roles: [{ role: 'readWrite', db: 'migrator_state' }] });
    const again = start(args);
    await waitForPhase(store, ID, ['READY_FOR_CUTOVER'], { proc: again });
    await dstRoot.db('shop_marker').collection<AnyDoc>('items').insertOne({ _id: 'only-on-the-target' });
    const wait2 = await runMigrator([...cutoverArgs(ID), '--wait', '--timeout', '60s'], { timeoutMs: 90_000 });
    const r2 = await again;
    assert.equal(r2.exitCode, 7, String(r2.stderr).slice(-2000));
    assert.equal(wait2.exitCode, 7, wait2.all);
    assert.ok(await appCanWrite(), 'writes unblocked after the verification mismatch');
    assert.equal((await store.getCutover(ID))?.writesBlockedByMigrator, false);
  });
});
