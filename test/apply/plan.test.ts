import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Int32 } from 'mongodb';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { dedupeEnvelopes, deltaToUpdates, keyFilter, planBatch, rounds, toBulkOperation, type Segment } from '../../src/apply/plan.js';
import { barrier, del, drop, ins, rename, rep, schemaEvent, updDelta, updFull } from './helpers.js';
import { Clock } from '../support/stream-positions.js';

const rules = new NamespaceRules({ map: ['bar:bar_new'] });
const allKept = (n: number) => [...Array(n).keys()];
const data = (s: Segment) => {
  assert.equal(s.kind, 'data');
  return s as Extract<Segment, { kind: 'data' }>;
};

describe('dedupeEnvelopes', () => {
  it('skips envelopes at or before the last applied position and re-sent ones in the batch', () => {
    const c = new Clock();
    const e = [ins(c, { _id: 1 }), ins(c, { _id: 2 }), ins(c, { _id: 3 }), ins(c, { _id: 4 })];
    // Capture restarted after e[2] was sent and re-sent e[1], e[2], then e[3].
    const batch = [e[0]!, e[1]!, e[2]!, e[1]!, e[2]!, e[3]!];
    const r = dedupeEnvelopes(batch);
    assert.deepEqual(r.keep, [0, 1, 2, 5]);
    assert.deepEqual(r.skipped, [3, 4]);
    assert.equal(r.last!.ct.t, e[3]!.ct.t);

    const after = dedupeEnvelopes(batch, { ct: e[1]!.ct, rt: e[1]!.rt });
    assert.deepEqual(after.keep, [2, 5]);
    assert.deepEqual(after.skipped, [0, 1, 3, 4]);
  });

  it('never skips barriers and keeps `after` when nothing is new', () => {
    const c = new Clock();
    const old = ins(c, { _id: 1 });
    const b = barrier(c, 'b1');
    const pos = { ct: c.next().ct, rt: c.next().rt };
    const r = dedupeEnvelopes([old, b], pos);
    assert.deepEqual(r.keep, [1]);
    assert.deepEqual(r.skipped, [0]);
    assert.equal(r.last, pos);
  });
});

describe('deltaToUpdates', () => {
  it('builds $set/$unset and separate array truncations', () => {
    assert.deepEqual(deltaToUpdates({ updatedFields: { a: 1, 'b.c': 2 }, removedFields: ['x'], truncatedArrays: [] }), [
      { $set: { a: 1, 'b.c': 2 }, $unset: { x: '' } },
    ]);
    assert.deepEqual(deltaToUpdates({ updatedFields: { 'arr.1': 5 }, removedFields: [], truncatedArrays: [{ field: 'arr', newSize: 2 }] }), [
      { $push: { arr: { $each: [], $slice: 2 } } },
      { $set: { 'arr.1': 5 } },
    ]);
    assert.deepEqual(deltaToUpdates({ updatedFields: {}, removedFields: [], truncatedArrays: [] }), []);
  });
});

describe('planBatch', () => {
  it('collapses each document to its last state and maps the namespace', () => {
    const c = new Clock();
    const batch = [
      ins(c, { _id: 1, v: 1 }),
      ins(c, { _id: 2, v: 1 }),
      updFull(c, { _id: 1, v: 2 }, 1),
      rep(c, { _id: 1, v: 3 }),
      del(c, 2),
      ins(c, { _id: 3, v: 1 }),
    ];
    const plan = planBatch(batch, allKept(batch.length), rules);
    assert.equal(plan.segments.length, 1);
    const s = data(plan.segments[0]!);
    assert.equal(s.collapsed, 3);
    assert.equal(s.collections.length, 1);
    const coll = s.collections[0]!;
    assert.deepEqual(coll.target, { db: 'bar_new', coll: 'products' });
    assert.deepEqual(
      coll.docs.map((d) => d.ops.map((o) => [o.op.kind, o.index])),
      [[['upsert', 3]], [['delete', 4]], [['upsert', 5]]],
    );
    assert.deepEqual(toBulkOperation(coll.docs[0]!.ops[0]!.op), {
      replaceOne: { filter: { _id: 1 }, replacement: { _id: 1, v: 3 }, upsert: true },
    });
    assert.deepEqual(toBulkOperation(coll.docs[1]!.ops[0]!.op), { deleteOne: { filter: { _id: 2 } } });
  });

  it('keeps deltas after the last full state, in order, and skips null post-images', () => {
    const c = new Clock();
    const batch = [
      ins(c, { _id: 1, a: 1 }),
      updDelta(c, 1, { updatedFields: { a: 2 } }),
      updDelta(c, 1, { removedFields: ['a'], truncatedArrays: [{ field: 'l', newSize: 1 }] }),
      updFull(c, null, 2),
    ];
    const plan = planBatch(batch, allKept(batch.length), rules);
    const s = data(plan.segments[0]!);
    assert.equal(s.skippedNullDoc, 1);
    assert.equal(s.collections[0]!.docs.length, 1, 'document 2 has nothing to write');
    const ops = s.collections[0]!.docs[0]!.ops.map((o) => o.op);
    assert.deepEqual(ops.map((o) => o.kind), ['upsert', 'update', 'update', 'update']);
    assert.deepEqual(ops.slice(1).map((o) => (o.kind === 'update' ? o.update : null)), [
      { $set: { a: 2 } },
      { $push: { l: { $each: [], $slice: 1 } } },
      { $unset: { a: '' } },
    ]);
    // One op per document per round.
    const rs = rounds(s.collections[0]!);
    assert.equal(rs.length, 4);
    assert.ok(rs.every((r) => r.length === 1));
  });

  it('splits at DDL, separates collections and reports barriers without splitting', () => {
    const c = new Clock();
    const other = { db: 'bar', coll: 'other' };
    const batch = [
      ins(c, { _id: 1 }),
      ins(c, { _id: 1 }, other),
      barrier(c, 'cut'),
      drop(c, other),
      ins(c, { _id: 2 }),
      rename(c, { db: 'bar', coll: 'products' }, { db: 'bar', coll: 'p2' }),
      ins(c, { _id: 1 }, { db: 'elsewhere', coll: 'x' }),
    ];
    const plan = planBatch(batch, allKept(batch.length), new NamespaceRules({ include: ['bar.*'] }));
    assert.deepEqual(plan.segments.map((s) => (s.kind === 'ddl' ? `ddl@${s.index}` : `data..${s.lastIndex}`)), [
      'data..1',
      'ddl@3',
      'data..4',
      'ddl@5',
    ]);
    assert.equal(data(plan.segments[0]!).collections.length, 2);
    assert.deepEqual(plan.barriers, [{ id: 'cut', index: 2 }]);
    assert.deepEqual(plan.filtered, [6]);
  });

  it('makes each schema event (create, createIndexes, dropIndexes, modify) a DDL segment in stream order; excluded and state namespaces are filtered', () => {
    const c = new Clock();
    const excluded = { db: 'bar', coll: 'secret' };
    const state = { db: 'migrator_state', coll: 'x' };
    const batch = [
      ins(c, { _id: 1 }),
      schemaEvent(c, 'createIndexes', { indexes: [{ v: 2, key: { sku: 1 }, name: 'sku_1', unique: true }] }),
      ins(c, { _id: 2 }),
      schemaEvent(c, 'modify', { index: { name: 'at_1', expireAfterSeconds: 60 } }),
      schemaEvent(c, 'dropIndexes', { indexes: [{ v: 2, key: { old: 1 }, name: 'old_1' }] }),
      schemaEvent(c, 'create', { collation: { locale: 'fr' } }, { db: 'bar', coll: 'fresh' }),
      schemaEvent(c, 'createIndexes', { indexes: [{ v: 2, key: { a: 1 }, name: 'a_1' }] }, excluded),
      schemaEvent(c, 'create', {}, state),
      ins(c, { _id: 3 }, { db: 'bar', coll: 'fresh' }),
    ];
    const plan = planBatch(batch, allKept(batch.length), new NamespaceRules({ include: ['bar.*'], exclude: ['bar.secret'] }));
    assert.deepEqual(plan.segments.map((s) => (s.kind === 'ddl' ? `${s.envelope.op}@${s.index}` : `data..${s.lastIndex}`)), [
      'data..0',
      'createIndexes@1',
      'data..2',
      'modify@3',
      'dropIndexes@4',
      'create@5',
      'data..8',
    ]);
    assert.deepEqual(plan.filtered, [6, 7]);
    const create = plan.segments[5]!;
    assert.ok(create.kind === 'ddl');
    assert.deepEqual(create.envelope.desc, { collation: { locale: 'fr' } });
  });

  it('groups by document identity whatever the _id type, and can filter by _id only', () => {
    const c = new Clock();
    const batch = [
      ins(c, { _id: new Int32(1), a: 1 }),
      ins(c, { _id: 1.5, a: 1 }),
      ins(c, { _id: { x: 1, y: 2 }, a: 1 }),
      { ...del(c, { x: 1, y: 2 }), key: { _id: { x: 1, y: 2 }, shard: 'k' } },
      ins(c, { _id: { y: 2, x: 1 }, a: 1 }),
    ];
    const plan = planBatch(batch, allKept(batch.length), rules, { keyFilter: 'id' });
    const docs = data(plan.segments[0]!).collections[0]!.docs;
    assert.equal(docs.length, 4);
    assert.deepEqual(docs[2]!.ops.map((o) => o.op), [{ kind: 'delete', filter: { _id: { x: 1, y: 2 } } }]);
    assert.deepEqual(keyFilter({ _id: 1, shard: 'k' }, 'documentKey'), { _id: 1, shard: 'k' });
    assert.deepEqual(keyFilter({ _id: 1, shard: 'k' }, 'id'), { _id: 1 });
  });
});
