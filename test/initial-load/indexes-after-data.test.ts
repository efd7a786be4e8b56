// Indexes after data for every collection (issue #13 item 4): collections loaded whole are restored
// without their indexes, which their own load units build afterwards, with progress in the state
// store and `status`; a crash between the data and the indexes leaves the build to the rerun; a
// unique index the loaded data violates names the index and the collection; --no-index-restore
// builds none. Real mongodump/mongorestore between two emulators.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient, type Document } from 'mongodb';
import { pino } from 'pino';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runInitialLoad } from '../../src/orchestration/initial-load-runner.js';
import { buildStatusReport, readStatusInputs } from '../../src/orchestration/status-report.js';
import { DEFAULT_LOAD_OPTIONS } from '../../src/initial-load/dump-restore-plan.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore, loadKey, type LoadUnitDoc, type MigrationDoc } from '../../src/state/store.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';

type AnyDoc = Document & { _id: unknown };

describe('indexes after data', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  let store: StateStore;
  const workDir = mkdtempSync(join(tmpdir(), 'indexes-after-data-'));
  const log = pino({ level: 'silent' });

  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri);
    store = await StateStore.open({ client: dst });
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), target.stop()]);
  });

  const load = async (id: string, db: string, opts: { noIndexRestore?: boolean; map?: string[] } = {}) => {
    await store.createMigration(id);
    const rules = new NamespaceRules({ include: [`${db}.*`], map: opts.map ?? [] });
    const namespaces = (await src.db(db).listCollections().toArray()).map((c) => ({ db, coll: c.name }));
    return runInitialLoad({
      source: src, target: dst, sourceEndpoint: { uri: source.uri }, targetEndpoint: { uri: target.uri }, store, migrationId: id, rules, namespaces,
      bins: { mongodump: goToolPath('mongodump'), mongorestore: goToolPath('mongorestore') },
      options: { ...DEFAULT_LOAD_OPTIONS, noIndexRestore: opts.noIndexRestore ?? false }, workDir, log, owner: `test-host:1:${id}`, leaseTtlMs: 10_000,
    });
  };
  const targetIndexes = async (db: string, coll: string) => (await dst.db(db).collection(coll).indexes()).map((i) => i.name).sort();

  async function seed(db: string): Promise<void> {
    const users = src.db(db).collection<AnyDoc>('users');
    await users.insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i, email: `u${i}@x`, city: `c${i % 7}`, at: i })));
    await users.createIndex({ email: 1 }, { unique: true, name: 'email_unique' });
    await users.createIndex({ city: 1, at: -1 }, { name: 'city_at', sparse: true });
    await src.db(db).collection<AnyDoc>('orders').insertMany(Array.from({ length: 200 }, (_, i) => ({ _id: `o${i}`, user: i % 50 })));
    await src.db(db).collection('orders').createIndex({ user: 1 }, { name: 'user_1' });
    await src.db(db).collection<AnyDoc>('plain').insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i })));
  }

  test('whole collections load without indexes; each collection\'s indexes are its own unit after the data; status shows them built', { timeout: 180_000 }, async () => {
    await seed('shop');
    const r = await load('ia', 'shop', { map: ['shop:shop_new'] });
    assert.equal(r.restored, 750);
    const units = await store.listLoadUnits('ia');
    const db = units.find((u) => u.kind === 'database')!;
    assert.equal(db.noIndexRestore, true, 'the pipe restores no index');
    assert.deepEqual(db.collections, [
      { coll: 'orders', target: 'shop_new.orders', indexesAfter: true },
      { coll: 'plain', target: 'shop_new.plain' },
      { coll: 'users', target: 'shop_new.users', indexesAfter: true },
    ]);
    const ix = units.filter((u) => u.kind === 'indexes');
    assert.deepEqual(ix.map((u) => `${u.sourceDb}.${u.coll}→${u.target}`), ['shop.orders→shop_new.orders', 'shop.users→shop_new.users'], 'one unit per collection with indexes');
    assert.ok(ix.every((u) => u.state === 'done' && u.seq > db.seq));
    assert.deepEqual(await targetIndexes('shop_new', 'users'), ['_id_', 'city_at', 'email_unique']);
    assert.deepEqual(await targetIndexes('shop_new', 'orders'), ['_id_', 'user_1']);
    assert.deepEqual(await targetIndexes('shop_new', 'plain'), ['_id_']);
    const specs = await dst.db('shop_new').collection('users').indexes();
    assert.equal(specs.find((i) => i.name === 'email_unique')?.unique, true);
    assert.equal(specs.find((i) => i.name === 'city_at')?.sparse, true);

    const m = await store.getMigration('ia');
    assert.deepEqual(m?.load?.collections[loadKey('shop.users')]?.indexes, { built: ['email_unique', 'city_at'], pending: [], building: null });
    const report = buildStatusReport(await readStatusInputs(store, 'ia'));
    const users = report.load!.namespaces.find((n) => n.ns === 'shop.users')!;
    assert.deepEqual(users.indexes, { total: 2, built: 2, pending: 0, building: null });
    assert.equal(users.done, true);
    assert.equal(report.load!.namespaces.find((n) => n.ns === 'shop.plain')!.indexes, null, 'nothing built after the data of a collection with only _id_');
    assert.deepEqual(report.load!.indexes, { total: 3, built: 3, pending: 0, building: [] });
  });

  test('a crash after the data but before the indexes: the rerun builds them and reloads nothing', { timeout: 180_000 }, async () => {
    // The state a SIGKILL during the index build leaves: the data unit done, the 'indexes' unit
    // running under the lease of a process that is gone, the target without the index.
    await dst.db('shop_new').collection('users').dropIndex('city_at');
    await store.db.collection<LoadUnitDoc>('load_partitions').updateOne(
      { migrationId: 'ia', kind: 'indexes', coll: 'users' },
      { $set: { state: 'running', lease: { owner: 'gone-host:4242:dead', epoch: 3, expiresAt: new Date(0) } } },
    );
    await store.updateLoadProgress('ia', 'shop.users', { done: false, indexes: { built: ['email_unique'], pending: ['city_at'], building: 'city_at' } });
    await store.db.collection<MigrationDoc>('migrations').updateOne({ _id: 'ia' }, { $unset: { 'load.finishedAt': '' } });
    const before = buildStatusReport(await readStatusInputs(store, 'ia'));
    assert.deepEqual(before.load!.namespaces.find((n) => n.ns === 'shop.users')!.indexes, { total: 2, built: 1, pending: 1, building: null }, 'a dead builder\'s index is not shown as building');

    const r = await load('ia', 'shop', { map: ['shop:shop_new'] });
    assert.equal(r.restored, 0, 'no data copied again');
    const units = await store.listLoadUnits('ia');
    assert.equal(units.find((u) => u.kind === 'database')!.attempts, 1, 'the database pipe was not redone');
    const users = units.find((u) => u.kind === 'indexes' && u.coll === 'users')!;
    assert.equal(users.state, 'done');
    assert.equal(users.attempts, 2);
    assert.equal(units.find((u) => u.kind === 'indexes' && u.coll === 'orders')!.attempts, 1);
    assert.deepEqual(await targetIndexes('shop_new', 'users'), ['_id_', 'city_at', 'email_unique']);
    assert.equal(await dst.db('shop_new').collection('users').countDocuments(), 500);
    const report = buildStatusReport(await readStatusInputs(store, 'ia'));
    assert.deepEqual(report.load!.indexes, { total: 3, built: 3, pending: 0, building: [] });
    assert.equal(report.load!.namespaces.find((n) => n.ns === 'shop.users')!.done, true);
  });

  test('a unique index the data violates fails the load naming the index and the collection (exit 11)', { timeout: 180_000 }, async () => {
    await src.db('dup').collection<AnyDoc>('items').insertMany([{ _id: 1, sku: 'A' }, { _id: 2, sku: 'B' }]);
    await src.db('dup').collection('items').createIndex({ sku: 1 }, { unique: true, name: 'sku_unique' });
    // Already on the target (a load without --drop into a collection that had data): loaded beside it, no index to refuse it.
    await dst.db('dup').collection<AnyDoc>('items').insertOne({ _id: 99, sku: 'A' });
    await assert.rejects(load('iu', 'dup'), (err: unknown) => {
      assert.ok(err instanceof MigratorError, String(err));
      assert.equal(err.exitCode, ExitCode.TOOL_FAILED);
      assert.match(err.message, /unique index sku_unique \{"sku":1\} of dup\.items \(from dup\.items\) could not be built: the loaded data violates it/);
      return true;
    });
    const units = await store.listLoadUnits('iu');
    assert.equal(units.find((u) => u.kind === 'database')!.state, 'done', 'the data is in: a rerun redoes only the index build');
  });

  test('--no-index-restore: no index is built by the load, and status shows none', { timeout: 180_000 }, async () => {
    await seed('noix');
    await load('in', 'noix', { noIndexRestore: true });
    const units = await store.listLoadUnits('in');
    assert.deepEqual(units.map((u) => u.kind), ['database']);
    assert.equal(units[0]!.noIndexRestore, true);
    assert.deepEqual(await targetIndexes('noix', 'users'), ['_id_']);
    const report = buildStatusReport(await readStatusInputs(store, 'in'));
    assert.ok(report.load!.namespaces.every((n) => n.indexes === null));
    assert.deepEqual(report.load!.indexes, { total: 0, built: 0, pending: 0, building: [] });
  });
});
