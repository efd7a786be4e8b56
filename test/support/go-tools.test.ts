// The Go-built test tools: mongodump/mongorestore (mongo-tools) and FerretDB (SQLite backend).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import {
  Binary,
  Decimal128,
  Double,
  Long,
  MaxKey,
  MinKey,
  MongoClient,
  MongoServerError,
  ObjectId,
  BSONRegExp,
  Timestamp,
  UUID,
  type Document,
} from 'mongodb';
import { ensureGoTools, goToolPath } from './go-tools.js';
import { startFerretDB, type FerretDB } from './ferretdb.js';

// A cold build takes minutes; later runs are cached.
before(() => ensureGoTools(), { timeout: 20 * 60_000 });

describe('mongo-tools', () => {
  for (const tool of ['mongodump', 'mongorestore'] as const) {
    it(`${tool} --version names the pinned build`, async () => {
      const { stdout } = await execa(goToolPath(tool), ['--version']);
      assert.match(stdout, new RegExp(`^${tool} version: 100\\.\\d+\\.\\d+`, 'm'));
      assert.match(stdout, /^git version: [0-9a-f]{7,}/m);
    });
  }
});

describe('FerretDB', () => {
  let ferret: FerretDB;
  let client: MongoClient;
  before(async () => {
    ferret = await startFerretDB();
    client = await MongoClient.connect(ferret.uri);
  });
  after(async () => {
    await client?.close();
    await ferret?.stop();
  });

  it('stores and returns documents with many BSON types unchanged', async () => {
    const doc: Document = {
      _id: new ObjectId(),
      str: 'héllo ✓',
      int: 42,
      long: Long.fromString('9007199254740993'),
      double: 1.5,
      wholeDouble: new Double(2),
      bool: true,
      nil: null,
      date: new Date('2024-02-29T12:34:56.789Z'),
      bin: new Binary(Buffer.from([0, 1, 2, 255])),
      uuid: new UUID('01234567-89ab-cdef-0123-456789abcdef'),
      ts: new Timestamp({ t: 1_700_000_000, i: 7 }),
      regex: new BSONRegExp('^a.c$', 'im'),
      arr: [1, 'two', { three: 3 }],
      nested: { a: { b: { c: [new Date(0), new ObjectId()] } } },
      order: { z: 1, a: 2, m: 3 },
    };
    const coll = client.db('types').collection('docs');
    await coll.insertOne(doc);
    const back = await coll.findOne({ _id: doc._id }, { promoteLongs: false, bsonRegExp: true });
    assert.deepStrictEqual(back, { ...doc, wholeDouble: 2 });
    assert.deepEqual(Object.keys(back!.order), ['z', 'a', 'm']);
    // The numeric BSON types survive too, not just the values.
    const types = { int: 'int', long: 'long', double: 'double', wholeDouble: 'double', ts: 'timestamp', uuid: 'binData' };
    for (const [field, type] of Object.entries(types)) {
      assert.equal(await coll.countDocuments({ _id: doc._id, [field]: { $type: type } }), 1, `${field} is a ${type}`);
    }
  });

  // FerretDB v1 limitations, pinned here so that a FerretDB upgrade that lifts them shows up.
  // Tests that need these values must use real MongoDB (or the emulator), not FerretDB.
  const unsupported: [string, unknown][] = [
    ['Decimal128', Decimal128.fromString('1.5')], // FerretDB panics on it and drops the connection
    ['MinKey', new MinKey()], // drops the connection
    ['MaxKey', new MaxKey()], // drops the connection
    ['NaN', NaN], // drops the connection
    ['Infinity', Infinity], // "infinity values are not allowed"
    ['nested array', [1, [2]]], // "nested arrays are not supported"
    ['dotted key', { 'a.b': 1 }], // "key must not contain '.' sign"
    ['$-prefixed key', { $x: 1 }], // "key must not start with '$' sign"
  ];
  for (const [what, value] of unsupported) {
    it(`rejects ${what} (FerretDB v1 limitation)`, async () => {
      await assert.rejects(client.db('types').collection('unsupported').insertOne({ value }));
    });
  }

  it('creates a unique index and enforces it', async () => {
    const coll = client.db('idx').collection('users');
    await coll.createIndex({ email: 1 }, { unique: true, name: 'email_unique' });
    await coll.insertOne({ email: 'a@example.com' });
    await assert.rejects(coll.insertOne({ email: 'a@example.com' }), (err: unknown) => {
      assert.ok(err instanceof MongoServerError);
      assert.equal(err.code, 11000);
      return true;
    });
    const indexes = await coll.listIndexes().toArray();
    assert.ok(indexes.some((i) => i.name === 'email_unique' && i.unique === true));
  });
});

describe('mongodump --archive | mongorestore --archive between two FerretDBs', () => {
  let source: FerretDB;
  let target: FerretDB;
  before(async () => {
    [source, target] = await Promise.all([startFerretDB(), startFerretDB()]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('copies the documents and the indexes of a database', async () => {
    const docs = Array.from({ length: 500 }, (_, i) => ({
      _id: i,
      sku: `sku-${i}`,
      price: i + 0.99,
      at: new Date(1_700_000_000_000 + i),
      tags: [`t${i % 7}`],
    }));
    const src = await MongoClient.connect(source.uri);
    try {
      const items = src.db('shop').collection<(typeof docs)[number]>('items');
      await items.insertMany(docs);
      await items.createIndex({ sku: 1 }, { unique: true, name: 'sku_unique' });
      await items.createIndex({ at: -1, tags: 1 }, { name: 'at_tags' });
      await src.db('shop').collection('empty').createIndex({ x: 1 });
    } finally {
      await src.close();
    }

    await execa(goToolPath('mongodump'), ['--uri', source.uri, '--db', 'shop', '--archive', '--quiet']).pipe(
      goToolPath('mongorestore'),
      ['--uri', target.uri, '--archive', '--quiet'],
    );

    const dst = await MongoClient.connect(target.uri);
    try {
      const db = dst.db('shop');
      const names = (await db.listCollections().toArray()).map((c) => c.name).sort();
      assert.deepEqual(names, ['empty', 'items']);
      const copied = await db.collection('items').find().sort({ _id: 1 }).toArray();
      assert.deepStrictEqual(copied, docs);
      const indexes = async (coll: string) =>
        (await db.collection(coll).listIndexes().toArray())
          .map(({ name, key, unique }) => ({ name, key, unique }))
          .sort((a, b) => a.name.localeCompare(b.name));
      assert.deepEqual(await indexes('items'), [
        { name: '_id_', key: { _id: 1 }, unique: undefined },
        { name: 'at_tags', key: { at: -1, tags: 1 }, unique: undefined },
        { name: 'sku_unique', key: { sku: 1 }, unique: true },
      ]);
      assert.deepEqual((await indexes('empty')).map((i) => i.name), ['_id_', 'x_1']);
      await assert.rejects(db.collection('items').insertOne({ sku: 'sku-1' }), { code: 11000 });
    } finally {
      await dst.close();
    }
  });
});
