// The compatibility doctor (issue #12, item 6): on an Amazon DocumentDB 5.0 target
// (documentdb-5.0 emulator profile), every index, collection option and feature of a fixture
// database that DocumentDB cannot hold is listed in ONE run, each with its remedy, by
// `migrator check --target-compat` (text and --json) and by full-migrate's preflight alike
// (exit 4, nothing copied). A clean selection passes (exit 0).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { ExitCode } from '../../src/util/exit-codes.js';

interface Item {
  namespace: string;
  item: string;
  problem: string;
  remedy: string;
  blocking: boolean;
}

describe('compatibility doctor against a DocumentDB 5.0 target', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;
  let dst: MongoClient;
  let conn: string[];

  before(async () => {
    await ensureGoTools();
    [source, target, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator({ profile: 'documentdb-5.0' }), startKinesisLocal()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri, { retryWrites: false });
    conn = ['--source-uri', source.uri, '--target-uri', target.uri, '--no-target-retry-writes'];
    // The fixture: several kinds of what DocumentDB refuses, a few documents each.
    const shop = src.db('shop');
    await shop.createCollection('log', { capped: true, size: 65536 });
    await shop.collection('log').insertOne({ _id: 1 as never, line: 'a' });
    await shop.createCollection('names', { collation: { locale: 'fr', strength: 2 } });
    await shop.collection('names').insertOne({ _id: 1 as never, n: 'é' });
    await shop.collection('places').createIndex({ loc: '2d' });
    await shop.collection('places').insertOne({ _id: 1 as never, loc: [1, 2] });
    await shop.collection('zones').createIndex({ area: '2dsphere' }, { sparse: true });
    await shop.collection('zones').insertMany([
      { _id: 1, area: { type: 'Point', coordinates: [1, 2] } },
      { _id: 2, area: { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]]] } },
    ] as Document[]);
    await shop.collection('items').createIndex({ '$**': 1 });
    await shop.collection('items').createIndex({ sku: 1 }, { hidden: true });
    await shop.collection('items').createIndex({ title: 1 }, { collation: { locale: 'en' } });
    await shop.collection('items').createIndex({ price: 1 }, { partialFilterExpression: { $or: [{ price: { $gt: 1 } }, { sale: true }] } });
    await shop.collection('items').createIndex({ qty: 1 }, { partialFilterExpression: { qty: { $gte: 1 } } }); // supported filter
    await shop.collection('items').insertMany([{ _id: 1, sku: 'a', price: 2 }, { _id: 2, sku: 'b', price: 3 }] as Document[]);
    await shop.collection('odd').insertMany([{ _id: 1, ok: 1 }, { _id: 2, $price: 5 }, { _id: 3, meta: { 'a.b': 1 } }] as Document[]);
    await shop.createCollection('cpu', { timeseries: { timeField: 't', metaField: 'host' } });
    await shop.collection('cpu').insertOne({ t: new Date(), host: 'h1', v: 1 });
    await shop.createCollection('cheap', { viewOn: 'items', pipeline: [{ $match: { price: { $lt: 3 } } }] });
    // 16,000,100 bytes: under MongoDB's 16 MiB, over DocumentDB's "16 MB" read as 10^6 bytes.
    await shop.collection('big').insertOne({ _id: 1 as never, blob: 'x'.repeat(16_000_100 - 35) });
    await src.db('clean').collection('things').insertMany([{ _id: 1, a: 1 }, { _id: 2, a: 2 }] as Document[]);
    await src.db('clean').collection('things').createIndex({ a: 1 }, { unique: true });
  });
  after(async () => {
    await Promise.all([src?.close(), dst?.close()]);
    await Promise.all([source?.stop(), target?.stop(), kinesis?.stop()]);
  });

  const expectEveryKind = (items: Item[]) => {
    const has = (ns: string, item: RegExp) => items.some((i) => i.namespace === ns && item.test(i.item) && i.blocking);
    const missing = [
      ['shop.log', /capped collection/],
      ['shop.names', /collection collation/],
      ['shop.places', /2d index loc_2d/],
      ['shop.items', /wildcard index/],
      ['shop.items', /index sku_1 with hidden/],
      ['shop.items', /index title_1 with collation/],
      ['shop.items', /partial index price_1 filter/],
      ['shop.odd', /field names with \$ or \./],
      ['shop.cpu', /time-series collection/],
      ['shop.cheap', /^view$/],
      ['shop.big', /documents over the size limit/],
      ['shop.zones', /2dsphere index area_2dsphere with sparse/],
      ['shop.zones', /2dsphere data other than points/],
    ].filter(([ns, re]) => !has(ns as string, re as RegExp));
    assert.deepEqual(missing, [], JSON.stringify(items, null, 1));
    // The supported partial filter is not listed; every item names a remedy.
    assert.ok(!items.some((i) => /qty_1/.test(i.item)), JSON.stringify(items));
    for (const i of items) assert.ok(i.remedy.length > 10, JSON.stringify(i));
  };

  test('check --target-compat lists every refused item at once (JSON and text), exit 4; a clean selection exits 0', { timeout: 120_000 }, async () => {
    const json = await runMigrator(['check', '--target-compat', '--json', ...conn, '--include', 'shop.*']);
    assert.equal(json.exitCode, ExitCode.PREFLIGHT_FAILED, json.all);
    const report = JSON.parse(json.stdout) as { items: Item[]; sampling: { documentsPerCollection: number; sizes: string }; target: { flavor: string } };
    assert.equal(report.target.flavor, 'documentdb');
    expectEveryKind(report.items);
    const odd = report.items.find((i) => i.namespace === 'shop.odd')!;
    assert.match(odd.problem, /"\$price"/);
    assert.match(odd.problem, /"meta\.a\.b"/);
    assert.match(odd.problem, /first 1000 documents/);
    const ts = report.items.find((i) => i.namespace === 'shop.cpu')!;
    assert.match(ts.remedy, /--exclude 'shop\.cpu'/);
    assert.equal(report.sampling.documentsPerCollection, 1000);
    // Sizes: the MongoDB 7.0 source has $bsonSize, so every document was measured, not a sample.
    assert.equal(report.sampling.sizes, 'bsonSize');

    const text = await runMigrator(['check', '--target-compat', ...conn, '--include', 'shop.*']);
    assert.equal(text.exitCode, ExitCode.PREFLIGHT_FAILED, text.all);
    assert.match(text.stdout, /\d+ incompatibilities/);
    assert.match(text.stdout, /shop\.places\s+2d index loc_2d\n\s+problem: .*2dsphere.*\n\s+remedy: {2}Drop index loc_2d/);
    assert.match(text.stdout, /examined \d+ collection\(s\): field names on the first 1000 documents of each \(\d+ read\), sizes with \$bsonSize on every document/);

    const clean = await runMigrator(['check', '--target-compat', ...conn, '--include', 'clean.*']);
    assert.equal(clean.exitCode, 0, clean.all);
    assert.match(clean.stdout, /compatible: nothing in the selection is refused/);
  });

  test('check --target-compat with a source user that cannot list indexes: exit 4 naming the privileges, no crash', { timeout: 60_000 }, async () => {
    await src.db('admin').command({ configureFailPoint: 'failCommand', mode: { times: 1 }, data: { failCommands: ['listIndexes'], errorCode: 13, errmsg: 'not authorized on shop to execute command { listIndexes: ... }' } });
    try {
      const r = await runMigrator(['check', '--target-compat', ...conn, '--include', 'shop.*']);
      assert.equal(r.exitCode, ExitCode.PREFLIGHT_FAILED, r.all);
      assert.match(r.stderr, /^error: The compatibility check could not read the source: /m);
      assert.match(r.stderr, /^hint: The source user needs listDatabases, listCollections, listIndexes and find/m);
    } finally {
      await src.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
    }
  });

  test('full-migrate preflight reports the same items in one run, exit 4, and copies nothing', { timeout: 120_000 }, async () => {
    const stream = kinesis.uniqueStreamName('doctor');
    await kinesis.createStream(stream, 1);
    const r = await runMigrator([
      'full-migrate', ...conn, '--include', 'shop.*', '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint,
      '--migration-id', 'doctor', '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
      '--data-dir', `/tmp/migrator-doctor-${process.pid}`,
    ], { timeoutMs: 90_000 });
    assert.equal(r.exitCode, ExitCode.PREFLIGHT_FAILED, r.all);
    for (const want of [
      /shop\.log: capped collection/, /shop\.names: collection collation/, /shop\.places: 2d index loc_2d/, /shop\.items: wildcard index/,
      /shop\.items: index sku_1 with hidden/, /shop\.items: partial index price_1 filter/, /shop\.odd: field names/, /shop\.cpu: time-series collection/,
      /shop\.cheap: view/, /shop\.big: documents over the size limit/, /shop\.zones: 2dsphere data other than points/,
    ]) assert.match(r.stderr, want);
    const dbs = (await dst.db('admin').admin().listDatabases({ nameOnly: true })).databases.map((d) => d.name);
    assert.ok(!dbs.includes('shop'), `nothing copied: ${dbs.join(', ')}`);
  });
});
