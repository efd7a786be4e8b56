import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Double, Int32, Long, type Document } from 'mongodb';
import {
  applyIgnores,
  compareIndexes,
  compareOptions,
  normalizeCollectionOptions,
  normalizeIndexSpec,
  targetLimitNote,
  type SchemaDifference,
} from '../../src/db/compare-schema.js';

const ns = { source: 'bar.products', target: 'bar_new.products' };
function diffsOf(run: (emit: (d: Omit<SchemaDifference, 'ignored'>) => void) => void) {
  const out: Omit<SchemaDifference, 'ignored'>[] = [];
  run((d) => out.push(d));
  return out;
}

test('index specs: server-added fields dropped, false flags folded, numbers by value, collation version dropped', () => {
  const fromOld = { v: 1, ns: 'bar.products', key: { a: new Int32(1), b: -1 }, name: 'a_1_b_-1', background: true, sparse: false, expireAfterSeconds: new Long(3600) };
  const fromNew = { v: 2, key: { a: new Double(1), b: new Int32(-1) }, name: 'a_1_b_-1', unique: false, expireAfterSeconds: 3600 };
  assert.deepEqual(normalizeIndexSpec(fromOld), normalizeIndexSpec(fromNew));
  assert.deepEqual(normalizeIndexSpec(fromNew), { expireAfterSeconds: 3600, key: { a: 1, b: -1 }, name: 'a_1_b_-1' });
  const c1 = normalizeIndexSpec({ v: 2, key: { s: 1 }, name: 's', collation: { locale: 'fr', strength: 2, version: '57.1' } });
  const c2 = normalizeIndexSpec({ v: 2, key: { s: 1 }, name: 's', collation: { strength: 2, locale: 'fr', version: '72.1' } });
  assert.deepEqual(c1, c2);
  // Key order is the index: {a, b} is not {b, a}.
  const ab = diffsOf((emit) => compareIndexes(ns, [{ key: { a: 1, b: 1 }, name: 'x' }], [{ key: { b: 1, a: 1 }, name: 'x' }], emit));
  assert.equal(ab.length, 1);
  assert.match(ab[0]!.detail, /key: source \{"a":1,"b":1\}, target \{"b":1,"a":1\}/);
});

test('indexes compare by key pattern and options, not by name alone', () => {
  const id = { v: 2, key: { _id: 1 }, name: '_id_' };
  const unique = { v: 2, key: { email: 1 }, name: 'email_1', unique: true };
  // Missing unique index on the target.
  let d = diffsOf((emit) => compareIndexes(ns, [id, unique], [id], emit));
  assert.equal(d.length, 1);
  assert.equal(d[0]!.difference, 'missing');
  assert.equal(d[0]!.name, 'email_1');
  assert.match(d[0]!.detail, /index email_1 .*"unique":true.* is missing on the target/);
  // Same name and key, not unique on the target: different, naming the property.
  d = diffsOf((emit) => compareIndexes(ns, [id, unique], [id, { v: 2, key: { email: 1 }, name: 'email_1' }], emit));
  assert.equal(d.length, 1);
  assert.equal(d[0]!.difference, 'different');
  assert.match(d[0]!.detail, /unique: source true, target absent/);
  // TTL and hidden changes.
  d = diffsOf((emit) =>
    compareIndexes(ns, [{ key: { at: 1 }, name: 'at_1', expireAfterSeconds: 60, hidden: true }], [{ key: { at: 1 }, name: 'at_1', expireAfterSeconds: 3600 }], emit),
  );
  assert.equal(d.length, 1);
  assert.match(d[0]!.detail, /expireAfterSeconds: source 60, target 3600; hidden: source true, target absent/);
  // Same key pattern under another name: the name is a difference too (hint() uses it).
  d = diffsOf((emit) => compareIndexes(ns, [unique], [{ ...unique, name: 'by_email' }], emit));
  assert.equal(d.length, 1);
  assert.match(d[0]!.detail, /name: source "email_1", target "by_email"/);
  // Two indexes on one key pattern with different partial filters, both present: equal.
  const p1 = { key: { s: 1 }, name: 's_a', partialFilterExpression: { a: { $gt: 1 } } };
  const p2 = { key: { s: 1 }, name: 's_b', partialFilterExpression: { b: { $gt: 1 } } };
  assert.deepEqual(diffsOf((emit) => compareIndexes(ns, [p1, p2], [p2, p1], emit)), []);
  // An index only on the target is extra.
  d = diffsOf((emit) => compareIndexes(ns, [id], [id, unique], emit));
  assert.deepEqual(d.map((x) => [x.difference, x.name, x.source]), [['extra', 'email_1', 'bar.products']]);
});

test('collection options: defaults folded, each differing option listed', () => {
  assert.deepEqual(normalizeCollectionOptions({ validator: { a: { $type: 'int' } }, validationLevel: 'strict', validationAction: 'error' }), {
    validator: { a: { $type: 'int' } },
  });
  const d = diffsOf((emit) =>
    compareOptions(ns, { collation: { locale: 'en', strength: 2, version: '57.1' }, validator: { a: 1 }, validationLevel: 'moderate' }, { validator: { a: 1 } }, emit),
  );
  assert.deepEqual(d.map((x) => [x.kind, x.name, x.difference]), [['options', 'collation', 'missing'], ['options', 'validationLevel', 'missing']]);
  assert.match(d[0]!.detail, /collection option collation: source \{"locale":"en","strength":2\}, target absent/);
});

test('a DocumentDB target says what it cannot hold; FerretDB points at its limits', () => {
  const docdb = { flavor: 'documentdb' as const, version: '5.0.0' };
  assert.match(targetLimitNote(docdb, { collation: { locale: 'fr' } }, []), /Amazon DocumentDB 5\.0\.0 cannot hold collection option collation/);
  assert.match(targetLimitNote(docdb, {}, [{ key: { s: 1 }, name: 's_1', hidden: true }]), /cannot hold index s_1 with hidden/);
  assert.equal(targetLimitNote(docdb, {}, [{ key: { s: 1 }, name: 's_1', unique: true }]), '');
  assert.equal(targetLimitNote({ flavor: 'mongodb', version: '7.0.0' }, { capped: true }, []), '');
  const d = diffsOf((emit) => compareIndexes(ns, [{ key: { g: '2d' }, name: 'g_2d' }], [], emit, docdb));
  assert.match(d[0]!.detail, /missing on the target \(Amazon DocumentDB 5\.0\.0 cannot hold 2d index g_2d\)/);
  assert.match(targetLimitNote({ flavor: 'ferretdb', version: '7.0.42' }, {}, []), /FerretDB/);
});

test('ignored kinds are listed but not a mismatch', () => {
  const one = (kind: SchemaDifference['kind']): Omit<SchemaDifference, 'ignored'> => ({
    kind, source: 'a.b', target: 'a.b', name: 'x', difference: 'missing', sourceSpec: {} as Document, targetSpec: null, detail: '',
  });
  assert.equal(applyIgnores([one('indexes')], []).match, false);
  const r = applyIgnores([one('indexes'), one('views')], ['indexes', 'views']);
  assert.equal(r.match, true);
  assert.deepEqual(r.differences.map((d) => d.ignored), [true, true]);
  assert.equal(applyIgnores([one('indexes'), one('options')], ['indexes']).match, false);
  assert.equal(applyIgnores([], []).match, true);
});

test("a sharded target's shard-key index is not an extra index; other target-only indexes are", () => {
  const id = { v: 2, key: { _id: 1 }, name: '_id_' };
  const region = { v: 2, key: { region: 1 }, name: 'region_1' };
  const other = { v: 2, key: { sku: 1 }, name: 'sku_1' };
  assert.equal(diffsOf((emit) => compareIndexes(ns, [id], [id, region], emit, undefined, { region: 1 })).length, 0);
  const d = diffsOf((emit) => compareIndexes(ns, [id], [id, region, other], emit, undefined, { region: 1 }));
  assert.deepEqual(d.map((x) => [x.difference, x.name]), [['extra', 'sku_1']]);
  // Without a shard key (an unsharded target) the same index is an extra one.
  assert.equal(diffsOf((emit) => compareIndexes(ns, [id], [id, region], emit)).length, 1);
});
