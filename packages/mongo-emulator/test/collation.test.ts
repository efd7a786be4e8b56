// Conformance: collations in find's sort (https://www.mongodb.com/docs/manual/reference/collation/).
// A collection created with a default collation sorts by it when the operation names none, an
// operation's own collation wins, and {locale: 'simple'} is binary comparison. (What the migrator's
// verify relies on: issue #11, defect 6.) Runs unchanged against a real server (MONGODB_URI).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Db } from 'mongodb';
import { openTarget, type AnyDoc, type Target } from './target.js';

let target: Target;
let db: Db;

before(async () => {
  target = await openTarget();
  db = target.client.db(target.dbName('collation'));
});
after(async () => target.close());

const ids = ['b', 'B', 'a', 'A', 'é', 'e', 'item10', 'item9'];
const idsOf = (docs: AnyDoc[]) => docs.map((d) => d._id);

describe('collation in find', () => {
  test('a collection default collation (en, strength 3) orders string _ids; {locale: simple} orders them by bytes', async () => {
    await db.createCollection('en', { collation: { locale: 'en' } });
    const c = db.collection<AnyDoc>('en');
    await c.insertMany(ids.map((_id) => ({ _id })));
    const info = (await db.listCollections({ name: 'en' }).toArray())[0] as { options?: { collation?: { locale?: string } } };
    assert.equal(info.options?.collation?.locale, 'en', 'listCollections shows the default collation');
    // ICU, en, tertiary strength: lowercase before uppercase, accents after the base letter.
    assert.deepEqual(idsOf(await c.find({}).sort({ _id: 1 }).toArray()), ['a', 'A', 'b', 'B', 'e', 'é', 'item10', 'item9']);
    assert.deepEqual(idsOf(await c.find({}).sort({ _id: -1 }).toArray()), ['item9', 'item10', 'é', 'e', 'B', 'b', 'A', 'a']);
    // Binary (UTF-8 bytes): uppercase ASCII, lowercase ASCII, then 'é' (0xC3 0xA9).
    assert.deepEqual(idsOf(await c.find({}, { collation: { locale: 'simple' } }).sort({ _id: 1 }).toArray()), [
      'A', 'B', 'a', 'b', 'e', 'item10', 'item9', 'é',
    ]);
  });

  test('aggregate $sort follows the default collation too, unless the operation says simple', async () => {
    const c = db.collection<AnyDoc>('en');
    const sorted = (opts = {}) => c.aggregate<AnyDoc>([{ $match: { _id: { $in: ['a', 'A', 'b', 'B'] } } }, { $sort: { _id: 1 } }], opts).toArray();
    assert.deepEqual(idsOf(await sorted()), ['a', 'A', 'b', 'B']);
    assert.deepEqual(idsOf(await sorted({ collation: { locale: 'simple' } })), ['A', 'B', 'a', 'b']);
  });

  test('an operation collation on a collection without one: numericOrdering and caseFirst', async () => {
    const c = db.collection<AnyDoc>('plain');
    await c.insertMany(ids.map((_id) => ({ _id })));
    assert.deepEqual(idsOf(await c.find({}).sort({ _id: 1 }).toArray()), ['A', 'B', 'a', 'b', 'e', 'item10', 'item9', 'é'], 'no collation: binary');
    const numeric = await c.find({ _id: /^item/ }, { collation: { locale: 'en', numericOrdering: true } }).sort({ _id: 1 }).toArray();
    assert.deepEqual(idsOf(numeric), ['item9', 'item10']);
    const upperFirst = await c.find({ _id: { $in: ['a', 'A', 'b', 'B'] } }, { collation: { locale: 'en', caseFirst: 'upper' } }).sort({ _id: 1 }).toArray();
    assert.deepEqual(idsOf(upperFirst), ['A', 'a', 'B', 'b']);
  });
});
