// Issue #11, defect 6: verify merge-joins both sides in _id order. A collection with a default
// collation used to be read in that collation's order, so mixed-case string _ids threw "out of
// order" (and failed the cutover with the source blocked). Now both sides are read under the
// simple collation (https://www.mongodb.com/docs/manual/reference/collation/).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { collectionsMatch, compareCollections } from '../../src/verify/compare-collection.js';

type AnyDoc = Document & { _id: string };
let source: MongoEmulator;
let target: MongoEmulator;
let src: MongoClient;
let dst: MongoClient;

before(async () => {
  [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
  [src, dst] = await Promise.all([MongoClient.connect(source.uri), MongoClient.connect(target.uri)]);
});
after(async () => {
  await Promise.all([src.close(), dst.close()]);
  await Promise.all([source.stop(), target.stop()]);
});

test('mixed-case string _ids in collections with a default collation compare equal, and a real difference is still found', async () => {
  const ids = ['b', 'B', 'a', 'A', 'Zed', 'zed', 'é', 'e'];
  for (const c of [src, dst]) {
    await c.db('coll').createCollection('items', { collation: { locale: 'en', strength: 3 } });
    await c.db('coll').collection<AnyDoc>('items').insertMany(ids.map((_id) => ({ _id, v: 1 })));
  }
  const equal = await compareCollections(src.db('coll').collection('items'), dst.db('coll').collection('items'));
  assert.ok(collectionsMatch(equal), JSON.stringify(equal));
  assert.equal(equal.sourceCount, ids.length);

  await dst.db('coll').collection<AnyDoc>('items').updateOne({ _id: 'A' }, { $set: { v: 2 } });
  await dst.db('coll').collection<AnyDoc>('items').deleteOne({ _id: 'zed' });
  const diff = await compareCollections(src.db('coll').collection('items'), dst.db('coll').collection('items'));
  assert.deepEqual(diff.different, ['A']);
  assert.deepEqual(diff.missing, ['zed']);
});
