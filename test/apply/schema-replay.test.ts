// Apply replays the source's schema events (create, createIndexes, dropIndexes, modify) on the
// target, in stream order and idempotently (a replay after a crash changes nothing), through the
// writer as DDL segments; against the emulator (mongodb-7.0 profile).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient, type Document } from 'mongodb';
import { decodeEnvelope, encodeEnvelope, type ChangeEnvelope } from '../../src/model/change-envelope.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { ApplyWriter } from '../../src/apply/writer.js';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { ins, schemaEvent } from './helpers.js';
import { Clock } from '../support/stream-positions.js';

const through = (batch: ChangeEnvelope[]) => batch.map((e) => decodeEnvelope(encodeEnvelope(e)));

describe('schema replay (apply)', () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  before(async () => {
    emu = await startMongoEmulator({ profile: 'mongodb-7.0' });
    client = new MongoClient(emu.uri);
  });
  after(async () => {
    await client.close();
    await emu.stop();
  });

  const indexes = async (db: string, coll: string) =>
    Object.fromEntries((await client.db(db).collection(coll).listIndexes().toArray()).map((s) => [s.name as string, s as Document]));
  const options = async (db: string, coll: string) => ((await client.db(db).listCollections({ name: coll }).toArray())[0] as { options?: Document } | undefined)?.options;

  it('replays create with options, createIndexes, modify (TTL, validator) and dropIndexes in stream order; a second run changes nothing', async () => {
    const rules = new NamespaceRules({ map: ['shop.items:shop.goods'] });
    const writer = new ApplyWriter({ client, rules });
    const c = new Clock();
    const items = { db: 'shop', coll: 'items' };
    const fresh = { db: 'shop', coll: 'fresh' };
    const batch = [
      schemaEvent(c, 'create', { idIndex: { v: 2, key: { _id: 1 }, name: '_id_' } }, items),
      ins(c, { _id: 1, sku: 'a', at: new Date() }, items),
      schemaEvent(c, 'createIndexes', { indexes: [{ v: 2, key: { sku: 1 }, name: 'sku_1', unique: true }] }, items),
      schemaEvent(c, 'createIndexes', { indexes: [{ v: 2, key: { at: 1 }, name: 'at_1', expireAfterSeconds: 3600 }] }, items),
      schemaEvent(c, 'createIndexes', { indexes: [{ v: 2, key: { old: 1 }, name: 'old_1' }] }, items),
      schemaEvent(c, 'modify', { index: { name: 'at_1', expireAfterSeconds: 60 } }, items),
      schemaEvent(c, 'dropIndexes', { indexes: [{ v: 2, key: { old: 1 }, name: 'old_1' }] }, items),
      schemaEvent(c, 'create', { idIndex: { v: 2, key: { _id: 1 }, name: '_id_' }, collation: { locale: 'fr', strength: 2, version: '57.1' }, validator: { n: { $type: 'int' } } }, fresh),
      schemaEvent(c, 'modify', { validationAction: 'warn' }, fresh),
    ];
    const first = await writer.applyBatch(through(batch));
    assert.equal(first.stats.ddl, 8);
    const check = async () => {
      const ix = await indexes('shop', 'goods');
      assert.deepEqual(Object.keys(ix).sort(), ['_id_', 'at_1', 'sku_1']);
      assert.equal(ix.sku_1!.unique, true);
      assert.equal(Number(ix.at_1!.expireAfterSeconds), 60);
      const o = await options('shop', 'fresh');
      assert.equal(o?.collation?.locale, 'fr');
      assert.equal(o?.collation?.strength, 2);
      assert.deepEqual(o?.validator, { n: { $type: 'int' } });
      assert.equal(o?.validationAction, 'warn');
      assert.equal(await options('shop', 'items'), undefined, 'the mapped name is used');
    };
    await check();
    // A replay of the whole batch (crash before any checkpoint): same target, no error.
    const again = await writer.applyBatch(through(batch));
    assert.equal(again.stats.ddl, 8);
    await check();
    // The unique index holds on the target.
    await assert.rejects(client.db('shop').collection('goods').insertOne({ _id: 2, sku: 'a' } as Document), /E11000|duplicate key/);
  });

  it('a dropIndexes of a missing index, a collMod of a missing index or collection, and a createIndexes of an index the load copied in a later state are no-ops', async () => {
    const rules = new NamespaceRules({});
    const writer = new ApplyWriter({ client, rules });
    const c = new Clock();
    const ns = { db: 'later', coll: 'c' };
    // The load copied the index with its later TTL (the collMod came before the dump read it).
    await client.db('later').collection('c').createIndex({ at: 1 }, { name: 'at_1', expireAfterSeconds: 60 });
    const r = await writer.applyBatch(
      through([
        schemaEvent(c, 'createIndexes', { indexes: [{ v: 2, key: { at: 1 }, name: 'at_1', expireAfterSeconds: 3600 }] }, ns),
        schemaEvent(c, 'modify', { index: { name: 'at_1', expireAfterSeconds: 60 } }, ns),
        schemaEvent(c, 'dropIndexes', { indexes: [{ v: 2, key: { gone: 1 }, name: 'gone_1' }] }, ns),
        schemaEvent(c, 'modify', { index: { name: 'gone_1', hidden: true } }, ns),
        schemaEvent(c, 'modify', { validationLevel: 'moderate' }, { db: 'later', coll: 'missing' }),
      ]),
    );
    assert.equal(r.stats.ddl, 5);
    const ix = await indexes('later', 'c');
    assert.equal(Number(ix.at_1!.expireAfterSeconds), 60);
  });

  it('replays the create of a view, reading the mapped names of its collections', async () => {
    const writer = new ApplyWriter({ client, rules: new NamespaceRules({ map: ['v.items:v.goods'] }) });
    const c = new Clock();
    const pipeline = [{ $lookup: { from: 'items', localField: '_id', foreignField: '_id', as: 'i' } }];
    const batch = through([schemaEvent(c, 'create', { viewOn: 'items', pipeline }, { db: 'v', coll: 'withItems' })]);
    await writer.applyBatch(batch);
    await writer.applyBatch(batch); // again: an identical view is kept
    assert.deepEqual(await options('v', 'withItems'), { viewOn: 'goods', pipeline: [{ $lookup: { from: 'goods', localField: '_id', foreignField: '_id', as: 'i' } }] });
  });

  it('a schema change the target refuses (DocumentDB: a collation) is logged and replication goes on', async () => {
    const docdb = await startMongoEmulator({ profile: 'documentdb-5.0' });
    const c2 = new MongoClient(docdb.uri, { retryWrites: false });
    try {
      const warnings: string[] = [];
      const writer = new ApplyWriter({ client: c2, rules: new NamespaceRules({}), logger: { warn: (_o, msg) => void warnings.push(msg) } });
      const c = new Clock();
      const ns = { db: 'd', coll: 'fr' };
      const r = await writer.applyBatch(through([schemaEvent(c, 'create', { collation: { locale: 'fr' } }, ns), ins(c, { _id: 1, name: 'é' }, ns)]));
      assert.equal(r.stats.upserts, 1);
      assert.deepEqual(await c2.db('d').collection('fr').find().toArray(), [{ _id: 1, name: 'é' }]);
      assert.ok(warnings.some((w) => /the target refused a schema change/.test(w)), warnings.join('\n'));
    } finally {
      await c2.close();
      await docdb.stop();
    }
  });
});
