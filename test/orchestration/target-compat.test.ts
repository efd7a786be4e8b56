// The compatibility doctor's rules per target (src/orchestration/target-compat.ts): field names with $ or .
// only where the target rejects them (MongoDB < 5.0, DocumentDB, FerretDB), DocumentDB's partial
// filter operators, documents near the size limit as a non-blocking warning, and a FerretDB
// target's views, collation and index types.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator, type ProfileName } from '../../packages/mongo-emulator/src/index.js';
import { startFerretDB } from '../support/ferretdb.js';
import { ensureGoTools } from '../support/go-tools.js';
import { describeServer } from '../../src/db/server-info.js';
import { documentDbRefusalItems } from '../../src/db/documentdb-compat.js';
import { dotDollarFields, olderMongoDbRefusals, targetCompatibility } from '../../src/orchestration/target-compat.js';
import { listSourceNamespaces } from '../../src/verify/verify-migration.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';

test('dotDollarFields finds $-prefixed and dotted names at any depth, arrays included; BSON values are leaves', () => {
  assert.deepEqual(dotDollarFields({ a: 1, b: { c: [{ $d: 1 }] }, 'e.f': 2, g: new Date(0) }), ['"b.c[].$d"', '"e.f"']);
  assert.deepEqual(dotDollarFields({ a: { b: 1 } }), []);
  // MongoDB before 5.0 refuses only top-level $-prefixed names.
  assert.deepEqual(dotDollarFields({ $a: 1, b: { $c: 1, 'd.e': 2 }, 'f.g': 3 }, { topLevelDollarOnly: true }), ['"$a"']);
});

test('DocumentDB partial indexes: 4.0 has none; 5.0 only $eq, $exists, comparisons and a top-level $and', () => {
  const ix = (partialFilterExpression: Document) => [{ name: 'p', key: { a: 1 }, partialFilterExpression }];
  assert.match(documentDbRefusalItems('4.0.0', {}, ix({ a: { $gt: 1 } }))[0]!.item, /partial index p/);
  assert.deepEqual(documentDbRefusalItems('5.0.0', {}, ix({ $and: [{ a: { $gt: 1 } }, { b: { $exists: true } }], c: 3 })), []);
  const nested = documentDbRefusalItems('5.0.0', {}, ix({ $and: [{ $and: [{ a: 1 }] }, { b: { $in: [1, 2] } }] }));
  assert.equal(nested.length, 1);
  assert.match(nested[0]!.problem, /\$and below the top level, \$in/);
  // Text indexes exist from the 5.0 API on.
  assert.equal(documentDbRefusalItems('5.0.0', {}, [{ name: 't', key: { body: 'text' } }]).length, 0);
  assert.equal(documentDbRefusalItems('4.0.0', {}, [{ name: 't', key: { body: 'text' } }]).length, 1);
});

test('an older MongoDB target: clustered collections before 5.3, changeStreamPreAndPostImages before 6.0', () => {
  const opts = { clusteredIndex: { key: { _id: 1 }, unique: true }, changeStreamPreAndPostImages: { enabled: true } };
  assert.deepEqual(olderMongoDbRefusals('5.0.28', opts).map((r) => r.item), ['clustered collection', 'collection option changeStreamPreAndPostImages']);
  assert.deepEqual(olderMongoDbRefusals('5.3.0', opts).map((r) => r.item), ['collection option changeStreamPreAndPostImages']);
  assert.deepEqual(olderMongoDbRefusals('7.0.12', opts), []);
});

describe('the doctor against emulated targets', () => {
  let source: MongoEmulator;
  let src: MongoClient;
  const rules = new NamespaceRules({ include: ['shop.*'] });
  before(async () => {
    source = await startMongoEmulator();
    src = new MongoClient(source.uri);
    await src.db('shop').collection('odd').insertMany([{ _id: 1, $price: 5 }, { _id: 2, ok: true }, { _id: 3, meta: { 'a.b': 1, $c: 2 } }] as Document[]);
    // Near MongoDB's 16 MiB limit (within the margin), under it.
    await src.db('shop').collection('big').insertOne({ _id: 1 as never, blob: 'x'.repeat(16_500_000) });
  });
  after(async () => {
    await src?.close();
    await source?.stop();
  });

  const doctor = async (uri: string) => {
    const dst = new MongoClient(uri, { retryWrites: false });
    try {
      const namespaces = await listSourceNamespaces(src, rules, new Set(['migrator_state']));
      return await targetCompatibility({
        source: src, sourceInfo: await describeServer(src, source.uri), target: await describeServer(dst, uri), namespaces, rules, timeSeries: 'refuse', sampleSize: 10,
      });
    } finally {
      await dst.close();
    }
  };

  for (const [profile, rejects] of [['mongodb-4.4', true], ['mongodb-7.0', false], ['documentdb-4.0', true]] as [ProfileName, boolean][]) {
    test(`${profile} target: $-prefixed field names ${rejects ? 'are' : 'are not'} an item; a 16.5 MB document is over DocumentDB's limit, only near MongoDB's (a warning)`, { timeout: 60_000 }, async () => {
      const target = await startMongoEmulator({ profile });
      try {
        const r = await doctor(target.uri);
        const odd = r.items.find((i) => i.namespace === 'shop.odd');
        assert.equal(Boolean(odd), rejects, JSON.stringify(r.items));
        if (odd) {
          assert.match(odd.problem, /among the first 10 documents: _id 1 \("\$price"\)/);
          // Nested $-prefixed and dotted names: stored by MongoDB 3.6-4.4, reported for DocumentDB.
          if (profile === 'mongodb-4.4') assert.doesNotMatch(odd.problem, /_id 3/);
          else assert.match(odd.problem, /_id 3 \("meta\.a\.b", "meta\.\$c"\)/);
          assert.equal(odd.blocking, true);
        }
        const big = r.items.find((i) => i.namespace === 'shop.big')!;
        if (profile.startsWith('documentdb')) {
          assert.equal(big.item, 'documents over the size limit'); // over 16,000,000 bytes
          assert.equal(big.blocking, true);
        } else {
          assert.equal(big.item, 'documents near the size limit');
          assert.equal(big.blocking, false);
        }
        assert.equal(r.sampling.documentsPerCollection, 10);
      } finally {
        await target.stop();
      }
    });
  }

  test('FerretDB target: views, collation, index types and options it lacks, $-prefixed names — all listed', { timeout: 90_000 }, async () => {
    await ensureGoTools();
    const ferret = await startFerretDB();
    const shop = src.db('shop');
    try {
      await shop.createCollection('fr', { collation: { locale: 'fr' } });
      await shop.collection('geo').createIndex({ loc: '2dsphere' });
      await shop.collection('geo').createIndex({ at: 1 }, { expireAfterSeconds: 60 });
      await shop.createCollection('oddView', { viewOn: 'odd', pipeline: [] });
      const r = await doctor(ferret.uri);
      assert.equal(r.target.flavor, 'ferretdb');
      const got = r.items.filter((i) => i.blocking).map((i) => `${i.namespace} ${i.item}`).sort();
      assert.deepEqual(got, [
        'shop.fr collection collation',
        'shop.geo 2dsphere index loc_2dsphere',
        'shop.geo index at_1 with expireAfterSeconds',
        'shop.odd field names with $ or .',
        'shop.oddView view',
      ]);
    } finally {
      await Promise.all(['fr', 'geo', 'oddView'].map((c) => shop.collection(c).drop().catch(() => undefined)));
      await ferret.stop();
    }
  });
});
