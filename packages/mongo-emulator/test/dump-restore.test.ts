// Emulator-only: the real mongodump/mongorestore (Go, Database Tools 100.x) move every document
// (all BSON types, byte for byte), index and view from one emulator to another, and into FerretDB.
// The tools are built on first use (scripts/build-go-tools.sh, cached in .tools/).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { exec } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../src/index.js';
import { storableAllTypesDocument } from '../../../test/support/bson-samples.js';
import { emulatorOnly, type AnyDoc } from './target.js';

import { ensureGoTools, goToolPath } from '../../../test/support/go-tools.js';
import { startFerretDB, type FerretDB } from '../../../test/support/ferretdb.js';
import { runDumpRestorePipe } from '../../../src/initial-load/dump-restore-pipe.js';
import { DEFAULT_LOAD_OPTIONS, planPipes } from '../../../src/initial-load/dump-restore-plan.js';
import { Binary, Double, Int32, Long, ObjectId, Timestamp, UUID, BSONRegExp } from 'mongodb';

const skip = emulatorOnly ? 'uses in-process emulators (MONGODB_URI is set)' : false;

describe('mongodump | mongorestore between emulators', { skip }, () => {
  let source: MongoEmulator;
  let dest: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;

  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    [source, dest] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(dest.uri);
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), dest.stop()]);
  });

  test('documents, indexes and views survive byte for byte', async () => {
    const db = src.db('dr');
    await db.collection<AnyDoc>('types').insertMany([storableAllTypesDocument(0), storableAllTypesDocument(1), storableAllTypesDocument(2)]);
    await db.collection('types').createIndex({ str: 1 }, { unique: true });
    await db.collection('types').createIndex({ int32: -1, 'nested.a': 1 }, { name: 'compound', sparse: true });
    await db.collection('types').createIndex({ date: 1 }, { expireAfterSeconds: 3600 });
    await db.collection<AnyDoc>('bulk').insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i, s: 'x'.repeat(200) })));
    await db.createCollection('view', { viewOn: 'types', pipeline: [{ $match: { bool: true } }] });
    await src.db('dr2').collection<AnyDoc>('o').insertOne({ _id: 'other db' });

    const [dump, restore] = [goToolPath('mongodump'), goToolPath('mongorestore')];
    await promisify(exec)(`"${dump}" --uri '${source.uri}' --archive | "${restore}" --uri '${dest.uri}' --archive`, {
      shell: '/bin/bash',
    });

    for (const [dbName, coll] of [['dr', 'types'], ['dr', 'bulk'], ['dr2', 'o']]) {
      const read = (c: MongoClient) => c.db(dbName).collection(coll).find({}, { raw: true }).toArray() as unknown as Promise<Uint8Array[]>;
      const [a, b] = await Promise.all([read(src), read(dst)]);
      assert.equal(b.length, a.length, `${dbName}.${coll} count`);
      a.forEach((doc, i) => assert.ok(Buffer.from(doc).equals(Buffer.from(b[i])), `${dbName}.${coll} doc ${i}`));
      // mongorestore may create indexes in any order: compare them by name.
      const indexes = async (c: MongoClient) =>
        (await c.db(dbName).collection(coll).listIndexes().toArray()).sort((x, y) => String(x.name).localeCompare(String(y.name)));
      assert.deepEqual(await indexes(dst), await indexes(src), `${dbName}.${coll} indexes`);
    }
    const view = (await dst.db('dr').listCollections({ name: 'view' }).toArray())[0];
    assert.deepEqual(view, (await src.db('dr').listCollections({ name: 'view' }).toArray())[0]);
  });
});

/** What FerretDB v1.24 can store: no Decimal128, MinKey/MaxKey, Code, NaN/Infinity or nested arrays. */
function ferretSafeDoc(i: number): Record<string, unknown> {
  return {
    _id: new ObjectId(),
    str: `unicode ✓ ${i}`,
    int: new Int32(42),
    dbl: new Double(3.25),
    dblWhole: new Double(1),
    long: Long.fromString('9007199254740993'),
    date: new Date('2024-02-29T12:34:56.789Z'),
    bin0: new Binary(Buffer.from([0, 1, 2, 255]), 0),
    uuid: new UUID('0d7a4f3e-5c1b-4a2e-9f00-123456789abc'),
    ts: new Timestamp({ t: 1700000000, i: 7 }),
    re: new BSONRegExp('^a.*z$', 'i'),
    nul: null,
    t: true,
    nested: { b: { c: [1, { d: new Int32(2) }] }, a: {} },
    arr: [new Int32(1), 'x', { k: 'v' }],
  };
}

describe('initial-load pipe (mongodump | mongorestore) from an emulator into FerretDB, with a database rename', { skip }, () => {
  let source: MongoEmulator;
  let ferret: FerretDB;
  let src: MongoClient;
  let dst: MongoClient;

  before(async () => {
    await ensureGoTools();
    source = await startMongoEmulator();
    ferret = await startFerretDB();
    src = new MongoClient(source.uri);
    dst = new MongoClient(ferret.uri);
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), ferret.stop()]);
  });

  test('every document and index arrives in bar_new, the excluded collection does not', async () => {
    const bar = src.db('bar');
    await bar.collection<AnyDoc>('products').insertMany(Array.from({ length: 50 }, (_, i) => ferretSafeDoc(i)));
    await bar.collection('products').createIndex({ str: 1 }, { unique: true });
    await bar.collection('products').createIndex({ int32: -1, 'nested.a': 1 }, { name: 'compound' });
    await bar.collection<AnyDoc>('orders').insertMany(Array.from({ length: 2000 }, (_, i) => ({ _id: i, total: new Double(i / 3) })));
    await bar.collection<AnyDoc>('logs').insertOne({ _id: 'not migrated' });

    const all = new Map([['bar', ['logs', 'orders', 'products']]]);
    const selected = [{ db: 'bar', coll: 'orders' }, { db: 'bar', coll: 'products' }];
    const [job] = planPipes(selected, all, () => 'bar_new', DEFAULT_LOAD_OPTIONS);
    const events: string[] = [];
    const result = await runDumpRestorePipe(job!, { uri: source.uri }, { uri: ferret.uri }, {
      mongodump: goToolPath('mongodump'),
      mongorestore: goToolPath('mongorestore'),
    }, { workDir: mkdtempSync(join(tmpdir(), 'load-')), onEvent: (e) => events.push(e.kind) });

    assert.equal(result.restored, 2050);
    assert.equal(result.failed, 0);
    assert.ok(events.includes('dump-finished') && events.includes('restore-finished'), 'progress was parsed');
    for (const coll of ['products', 'orders']) {
      const read = (c: MongoClient, db: string) =>
        c.db(db).collection(coll).find({}, { sort: { _id: 1 }, raw: true }).toArray() as unknown as Promise<Uint8Array[]>;
      const [a, b] = await Promise.all([read(src, 'bar'), read(dst, 'bar_new')]);
      assert.equal(b.length, a.length, `bar_new.${coll} count`);
      a.forEach((doc, i) => assert.ok(Buffer.from(doc).equals(Buffer.from(b[i]!)), `bar_new.${coll} doc ${i} byte-equal`));
    }
    const names = (await dst.db('bar_new').collection('products').listIndexes().toArray()).map((x) => x.name).sort();
    assert.deepEqual(names, ['_id_', 'compound', 'str_1']);
    assert.deepEqual(await dst.db('bar_new').listCollections({ name: 'logs' }).toArray(), []);
    await assert.rejects(dst.db('bar_new').collection<AnyDoc>('products').insertOne({ str: 'unicode ✓ 0' }), /E11000|duplicate/);
  });
});
