// The cutover's schema reconcile (src/orchestration/schema-reconcile.ts) against two emulators:
// what differs is built, dropped, changed or rebuilt so that verify's schema comparison is equal;
// a second run changes nothing; ignored kinds are left alone; what the target refuses is reported.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient, type Document } from 'mongodb';
import { reconcileSchema } from '../../src/orchestration/schema-reconcile.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { verifyMigration } from '../../src/verify/verify-migration.js';
import { startMongoEmulator, type MongoEmulator, type ProfileName } from '../../packages/mongo-emulator/src/index.js';

const quiet = { info: () => undefined, warn: () => undefined };

describe('schema reconcile at the cutover', () => {
  const emus: MongoEmulator[] = [];
  const clients: MongoClient[] = [];
  const open = async (profile?: ProfileName) => {
    const e = await startMongoEmulator({ profile });
    emus.push(e);
    // Amazon DocumentDB refuses retryable writes (https://docs.aws.amazon.com/documentdb/latest/developerguide/retryable-writes.html).
    const c = new MongoClient(e.uri, profile?.startsWith('documentdb') ? { retryWrites: false } : {});
    clients.push(c);
    return c;
  };
  let src: MongoClient;
  before(async () => {
    src = await open();
    const db = src.db('app');
    await db.collection('a').insertMany([{ _id: 1, sku: 'x', at: new Date(Date.now() + 86400_000) }, { _id: 2, sku: 'y' }] as Document[]);
    await db.collection('a').createIndex({ sku: 1 }, { name: 'sku_1', unique: true });
    await db.collection('a').createIndex({ at: 1 }, { name: 'at_1', expireAfterSeconds: 60 });
    await db.collection('a').createIndex({ h: 1 }, { name: 'h_1', hidden: true });
    await db.command({ collMod: 'a', validator: { sku: { $type: 'string' } }, validationAction: 'warn' });
    await db.createCollection('fr', { collation: { locale: 'fr', strength: 2 } });
    await db.collection('fr').insertMany([{ _id: 1, name: 'é' }, { _id: 2, name: 'e' }] as Document[]);
    await db.collection('fr').createIndex({ name: 1 }, { name: 'name_1' });
    await db.createCollection('empty');
    await db.createCollection('cheap', { viewOn: 'a', pipeline: [{ $match: { sku: 'x' } }] });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(emus.map((e) => e.stop()));
  });

  /** The target as a load before the changes left it. */
  async function staleTarget(profile?: ProfileName): Promise<MongoClient> {
    const dst = await open(profile);
    const db = dst.db('app');
    await db.collection('a').insertMany([{ _id: 1, sku: 'x', at: new Date(Date.now() + 86400_000) }, { _id: 2, sku: 'y' }] as Document[]);
    await db.collection('a').createIndex({ sku: 1 }, { name: 'sku_1' }); // not unique yet
    await db.collection('a').createIndex({ at: 1 }, { name: 'at_1', expireAfterSeconds: 3600 });
    await db.collection('a').createIndex({ h: 1 }, { name: 'h_1' });
    await db.collection('a').createIndex({ gone: 1 }, { name: 'gone_1' }); // dropped on the source since
    await db.collection('fr').insertMany([{ _id: 1, name: 'é' }, { _id: 2, name: 'e' }] as Document[]); // created implicitly: no collation
    return dst;
  }

  const rules = new NamespaceRules({ include: ['app.*'] });
  const schemaOf = async (dst: MongoClient) => (await verifyMigration(src, dst, rules, { skipDbs: new Set() })).schema;

  it('builds, drops, alters and rebuilds until verify finds the schema equal; the documents stay; a second run changes nothing', async () => {
    const dst = await staleTarget();
    const before = await schemaOf(dst);
    assert.equal(before.match, false);
    const report = await reconcileSchema({ source: src, target: dst, rules, skipDbs: new Set(), log: quiet });
    assert.deepEqual(report.left, []);
    const actions = report.changed.map((c) => `${c.target} ${c.name}: ${c.action}`).sort();
    assert.deepEqual(actions, [
      'app.a at_1: index modified',
      'app.a gone_1: index dropped',
      'app.a h_1: index modified',
      'app.a sku_1: index dropped',
      'app.a sku_1: index rebuilt',
      'app.a validationAction,validator: options modified',
      'app.cheap app.cheap: view created',
      'app.empty (collection): collection created',
      'app.fr collation: collection rebuilt',
      'app.fr name_1: index created',
    ]);
    const after = await schemaOf(dst);
    assert.deepEqual(after.differences, []);
    const docs = await dst.db('app').collection('fr').find({}, { sort: { _id: 1 } }).toArray();
    assert.deepEqual(docs, [{ _id: 1, name: 'é' }, { _id: 2, name: 'e' }]);
    assert.equal((await dst.db('app').listCollections({ name: 'fr__migrator_rebuild' }).toArray()).length, 0);
    const again = await reconcileSchema({ source: src, target: dst, rules, skipDbs: new Set(), log: quiet });
    assert.deepEqual(again, { changed: [], left: [] });
  });

  it('leaves the kinds passed in `ignore` alone', async () => {
    const dst = await staleTarget();
    const report = await reconcileSchema({ source: src, target: dst, rules, skipDbs: new Set(), log: quiet, ignore: ['indexes'] });
    assert.ok(report.changed.every((c) => c.kind !== 'indexes'), JSON.stringify(report.changed));
    const left = await schemaOf(dst);
    assert.ok(left.differences.length > 0 && left.differences.every((d) => d.kind === 'indexes'));
  });

  it('reports what the target refuses (DocumentDB: collation) instead of failing, and verify still lists it', async () => {
    const dst = await staleTarget('documentdb-5.0');
    const report = await reconcileSchema({ source: src, target: dst, rules, skipDbs: new Set(), log: quiet });
    const refused = report.left.filter((l) => l.target === 'app.fr');
    assert.ok(refused.some((l) => l.action === 'failed' && /collation/.test(l.name)), JSON.stringify(report.left));
    // The collection kept its documents.
    assert.equal(await dst.db('app').collection('fr').countDocuments(), 2);
    const after = await schemaOf(dst);
    assert.ok(after.differences.some((d) => d.target === 'app.fr' && d.name === 'collation'));
  });
});
