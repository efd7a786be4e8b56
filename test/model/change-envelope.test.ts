import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BSON, Binary, Decimal128, Double, Int32, Long, ObjectId, Timestamp, UUID, type Document } from 'mongodb';
import {
  EXACT_BSON_OPTIONS,
  EnvelopeFormatError,
  UnsupportedChangeEventError,
  barrierEnvelope,
  clusterTimeFromResumeToken,
  compareEventPosition,
  decodeEnvelope,
  encodeEnvelope,
  envelopeFromChangeEvent,
  isAtOrBefore,
  isBroadcast,
  positionKey,
  routingKey,
  type ChangeEnvelope,
} from '../../src/model/change-envelope.js';
import { allTypesDocument } from '../support/bson-samples.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const token = (t: number, i: number, rest = '2B022C0100296E5A1004') =>
  ({ _data: `82${t.toString(16).toUpperCase().padStart(8, '0')}${i.toString(16).toUpperCase().padStart(8, '0')}${rest}` });

function insertEvent(doc: Document, t = 100, i = 1): Document {
  return {
    _id: token(t, i),
    operationType: 'insert',
    clusterTime: new Timestamp({ t, i }),
    wallTime: new Date(t * 1000),
    ns: { db: 'bar', coll: 'products' },
    documentKey: { _id: doc._id },
    fullDocument: doc,
  };
}

describe('envelope BSON round trip', () => {
  it('keeps every BSON type, value and field order byte for byte', () => {
    const doc = allTypesDocument();
    const e = envelopeFromChangeEvent(insertEvent(doc));
    const bytes = encodeEnvelope(e);
    const back = decodeEnvelope(bytes);
    // The document re-serialises to exactly the original bytes.
    assert.equal(hex(BSON.serialize(back.doc!)), hex(BSON.serialize(doc)));
    assert.equal(hex(BSON.serialize(back.key!)), hex(BSON.serialize({ _id: doc._id })));
    // Encoding the decoded envelope again gives the same bytes.
    assert.equal(hex(encodeEnvelope(back)), hex(bytes));
    // Types are preserved, not promoted.
    assert.ok(back.doc!.int32 instanceof Int32);
    assert.ok(back.doc!.double instanceof Double);
    assert.ok(back.doc!.longSmall instanceof Long);
    assert.ok(back.doc!.decimal instanceof Decimal128);
    assert.ok(back.doc!.uuid instanceof UUID || (back.doc!.uuid as Binary).sub_type === 4);
    assert.equal((back.doc!.binOld as Binary).sub_type, 2);
    assert.equal((back.doc!.binUser as Binary).sub_type, 0x80);
    assert.ok(back.doc!.ts instanceof Timestamp);
    assert.deepEqual(Object.keys(back.doc!), Object.keys(doc));
    assert.deepEqual(Object.keys(back.doc!.nested), ['z', 'a', 'm']);
    assert.ok(Object.is((back.doc!.negZero as Double).value, -0));
    assert.ok(Number.isNaN((back.doc!.nan as Double).value));
  });

  it('round-trips the envelope fields', () => {
    const e: ChangeEnvelope = {
      v: 1,
      op: 'update',
      ns: { db: 'bar', coll: 'products' },
      key: { _id: new Int32(5), region: 'eu' },
      upd: {
        updatedFields: { 'a.b': new Double(2), arr: [new Int32(1)] },
        removedFields: ['gone', 'x.y'],
        truncatedArrays: [{ field: 'arr', newSize: 1 }],
      },
      ct: new Timestamp({ t: 5, i: 9 }),
      wt: new Date(5000),
      rt: token(5, 9),
    };
    const back = decodeEnvelope(encodeEnvelope(e));
    assert.equal(back.op, 'update');
    assert.deepEqual(back.ns, e.ns);
    assert.equal(back.v, 1);
    assert.deepEqual(back.upd!.removedFields, ['gone', 'x.y']);
    assert.deepEqual(back.upd!.truncatedArrays, [{ field: 'arr', newSize: 1 }]);
    assert.ok(back.upd!.updatedFields['a.b'] instanceof Double);
    assert.equal(back.ct.t, 5);
    assert.equal(back.ct.i, 9);
    assert.equal(back.wt!.getTime(), 5000);
    assert.deepEqual(back.rt, e.rt);
    assert.ok(back.key!._id instanceof Int32);
    assert.equal(back.doc, undefined);
    assert.equal(hex(encodeEnvelope(back)), hex(encodeEnvelope(e)));
  });

  it('keeps a null fullDocument distinct from an absent one', () => {
    const ev = { ...insertEvent({ _id: 1 }), operationType: 'update', fullDocument: null, updateDescription: { updatedFields: {}, removedFields: [] } };
    const e = envelopeFromChangeEvent(ev);
    assert.equal(e.doc, null);
    assert.equal(e.upd, undefined);
    assert.equal(decodeEnvelope(encodeEnvelope(e)).doc, null);
    const noDoc = { ...ev } as Document;
    delete noDoc.fullDocument;
    const e2 = decodeEnvelope(encodeEnvelope(envelopeFromChangeEvent(noDoc)));
    assert.equal(e2.doc, undefined);
    assert.ok(e2.upd);
  });

  it('rejects garbage, other versions and incomplete envelopes', () => {
    assert.throws(() => decodeEnvelope(new Uint8Array([1, 2, 3])), EnvelopeFormatError);
    assert.throws(() => decodeEnvelope(BSON.serialize({ v: 2, op: 'insert' })), /version 2/);
    const ok = encodeEnvelope(envelopeFromChangeEvent(insertEvent({ _id: 1 })));
    const raw = BSON.deserialize(ok);
    assert.throws(() => decodeEnvelope(BSON.serialize({ ...raw, op: 'frobnicate' })), /unknown envelope op/);
    const noDoc = { ...raw };
    delete noDoc.doc;
    assert.throws(() => decodeEnvelope(BSON.serialize(noDoc)), /needs doc/);
    assert.throws(() => decodeEnvelope(BSON.serialize({ ...raw, ct: 5 })), /Timestamp/);
  });
});

describe('envelopeFromChangeEvent', () => {
  it('maps each supported operation type', () => {
    const base = { _id: token(1, 1), clusterTime: new Timestamp({ t: 1, i: 1 }), ns: { db: 'd', coll: 'c' } };
    const del = envelopeFromChangeEvent({ ...base, operationType: 'delete', documentKey: { _id: 'x' } });
    assert.equal(del.op, 'delete');
    assert.deepEqual(del.key, { _id: 'x' });
    assert.equal(del.doc, undefined);
    const rep = envelopeFromChangeEvent({ ...base, operationType: 'replace', documentKey: { _id: 1 }, fullDocument: { _id: 1, a: 2 } });
    assert.deepEqual(rep.doc, { _id: 1, a: 2 });
    const upd = envelopeFromChangeEvent({
      ...base,
      operationType: 'update',
      documentKey: { _id: 1 },
      fullDocument: { _id: 1, a: 3 },
      updateDescription: { updatedFields: { a: 3 }, removedFields: [] },
    });
    assert.deepEqual(upd.doc, { _id: 1, a: 3 });
    assert.equal(upd.upd, undefined, 'delta dropped when the full document is there');
    const kept = envelopeFromChangeEvent(
      { ...base, operationType: 'update', documentKey: { _id: 1 }, fullDocument: { _id: 1 }, updateDescription: { updatedFields: { a: 3 }, removedFields: ['b'], truncatedArrays: [{ field: 'l', newSize: new Int32(2) }] } },
      { keepUpdateDescription: true },
    );
    assert.deepEqual(kept.upd, { updatedFields: { a: 3 }, removedFields: ['b'], truncatedArrays: [{ field: 'l', newSize: 2 }] });
    const drop = envelopeFromChangeEvent({ ...base, operationType: 'drop' });
    assert.equal(drop.op, 'drop');
    assert.equal(drop.key, undefined);
    const ren = envelopeFromChangeEvent({ ...base, operationType: 'rename', to: { db: 'd', coll: 'c2' } });
    assert.deepEqual(ren.to, { db: 'd', coll: 'c2' });
    const dd = envelopeFromChangeEvent({ ...base, ns: { db: 'd' }, operationType: 'dropDatabase' });
    assert.deepEqual(dd.ns, { db: 'd' });
  });

  it('flags invalidate, ignorable, unknown and malformed events distinctly', () => {
    const base = { _id: token(1, 1), clusterTime: new Timestamp({ t: 1, i: 1 }), ns: { db: 'd', coll: 'c' } };
    const kindOf = (ev: Document) => {
      try {
        envelopeFromChangeEvent(ev);
        return 'ok';
      } catch (err) {
        assert.ok(err instanceof UnsupportedChangeEventError);
        return err.kind;
      }
    };
    assert.equal(kindOf({ _id: token(1, 1), operationType: 'invalidate', clusterTime: new Timestamp({ t: 1, i: 1 }) }), 'invalidate');
    assert.equal(kindOf({ ...base, operationType: 'shardCollection', operationDescription: { shardKey: { _id: 1 } } }), 'ignorable');
    assert.equal(kindOf({ ...base, operationType: 'createSearchIndexes', operationDescription: {} }), 'ignorable');
    // Schema events need their operationDescription (only sent with showExpandedEvents).
    assert.equal(kindOf({ ...base, operationType: 'createIndexes' }), 'malformed');
    assert.equal(kindOf({ ...base, operationType: 'create' }), 'malformed');
    assert.equal(kindOf({ ...base, operationType: 'create', ns: { db: 'd' }, operationDescription: {} }), 'malformed');
    assert.equal(kindOf({ ...base, operationType: 'somethingNew' }), 'unknown');
    assert.equal(kindOf({ ...base, operationType: 'insert', documentKey: { _id: 1 } }), 'malformed');
    assert.equal(kindOf({ ...base, operationType: 'rename' }), 'malformed');
    assert.equal(kindOf({ ...base, operationType: 'update', documentKey: { _id: 1 } }), 'malformed');
    assert.throws(() => envelopeFromChangeEvent({ ...base, operationType: 'somethingNew' }), /unsupported change event operationType 'somethingNew'/);
  });

  it('takes clusterTime from the resume token when the event has none', () => {
    const ev = insertEvent({ _id: 1 }, 77, 3);
    delete ev.clusterTime;
    const e = envelopeFromChangeEvent(ev);
    assert.equal(e.ct.t, 77);
    assert.equal(e.ct.i, 3);
    assert.equal(clusterTimeFromResumeToken({ _data: 'zz' }), undefined);
    assert.equal(clusterTimeFromResumeToken(undefined), undefined);
  });
});

describe('schema events (showExpandedEvents)', () => {
  const base = { _id: token(5, 1), clusterTime: new Timestamp({ t: 5, i: 1 }), ns: { db: 'd', coll: 'c' } };
  const at = new Date('2026-01-02T03:04:05Z');
  const events: Document[] = [
    { ...base, operationType: 'create', operationDescription: { idIndex: { v: 2, key: { _id: 1 }, name: '_id_' }, collation: { locale: 'fr', strength: new Int32(2) }, validator: { at: { $gte: at } } } },
    { ...base, operationType: 'createIndexes', operationDescription: { indexes: [{ v: 2, key: { a: new Int32(1) }, name: 'a_1', unique: true, partialFilterExpression: { at: { $gt: at }, n: new Long(5) } }] } },
    { ...base, operationType: 'dropIndexes', operationDescription: { indexes: [{ v: 2, key: { a: 1 }, name: 'a_1' }] } },
    { ...base, operationType: 'modify', operationDescription: { index: { name: 'at_1', expireAfterSeconds: new Long(60) } }, stateBeforeChange: { indexOptions: { expireAfterSeconds: 3600 } } },
  ];

  it('carries the operationDescription with its exact BSON types through the codec', () => {
    for (const ev of events) {
      const e = envelopeFromChangeEvent(ev);
      assert.equal(e.op, ev.operationType);
      assert.deepEqual(e.ns, { db: 'd', coll: 'c' });
      assert.equal(isBroadcast(e), true, 'schema events go to every shard');
      assert.equal(routingKey(e), undefined);
      const back = decodeEnvelope(encodeEnvelope(e));
      assert.equal(hex(encodeEnvelope(back)), hex(encodeEnvelope(e)));
      assert.equal(back.op, e.op);
      assert.equal(Buffer.compare(BSON.serialize(back.desc!), BSON.serialize(ev.operationDescription as Document)), 0, `${e.op}: same bytes`);
    }
    const modify = envelopeFromChangeEvent(events[3]!);
    assert.deepEqual(Object.keys(modify.desc!), ['index'], 'stateBeforeChange is not part of the description');
  });

  it('rejects schema envelopes missing what apply needs', () => {
    const reject = (e: Partial<ChangeEnvelope>, re: RegExp) => {
      const good = envelopeFromChangeEvent(events[1]!);
      assert.throws(() => decodeEnvelope(encodeEnvelope({ ...good, ...e } as ChangeEnvelope)), re);
    };
    reject({ desc: undefined }, /createIndexes envelope needs ns.coll and desc/);
    reject({ ns: { db: 'd' } }, /needs ns.coll and desc/);
    reject({ desc: { indexes: [] } }, /non-empty indexes array/);
    reject({ desc: { indexes: [{ key: { a: 1 } }] } }, /every index needs a name/);
    reject({ desc: { indexes: [{ name: 'a_1' }] } }, /has no key/);
    reject({ op: 'dropIndexes', desc: { indexes: 'a_1' } }, /non-empty indexes array/);
    reject({ op: 'modify', desc: { index: 'a_1' } }, /index must be a document/);
    assert.throws(() => envelopeFromChangeEvent({ ...events[1]!, operationDescription: { indexes: [] } }), /non-empty indexes array/);
  });
});

describe('routingKey', () => {
  const env = (id: unknown, ns = { db: 'bar', coll: 'products' }, op: ChangeEnvelope['op'] = 'insert'): ChangeEnvelope => ({
    v: 1,
    op,
    ns,
    key: { _id: id },
    doc: op === 'delete' ? undefined : { _id: id },
    ct: new Timestamp({ t: 1, i: 1 }),
    rt: token(1, 1),
  });
  const ids: unknown[] = [
    new ObjectId('65a1b2c3d4e5f60718293a4b'),
    new ObjectId('65a1b2c3d4e5f60718293a4c'),
    'abc',
    'abd',
    '',
    new Int32(1),
    new Double(1),
    Long.fromInt(1),
    2,
    { a: 1, b: 2 },
    { b: 2, a: 1 },
    new Binary(Buffer.from([1, 2, 3]), 0),
    new Binary(Buffer.from([1, 2, 3]), 5),
    new UUID('0b7e2c1e-9f1a-4f3b-8c2d-1a2b3c4d5e6f'),
    Decimal128.fromString('1.0'),
    new Date(0),
    null,
    [1, 2],
  ];

  it('is deterministic, ≤ 256 chars, the same for every event of a document', () => {
    for (const id of ids) {
      const k = routingKey(env(id))!;
      assert.match(k, /^[0-9a-f]{40}$/);
      assert.ok(k.length <= 256);
      assert.equal(routingKey(env(id, undefined, 'delete')), k, 'delete routes with the insert');
      assert.equal(routingKey({ ...env(id, undefined, 'update'), key: { _id: id, shardKey: 'x' } }), k, 'shard key fields ignored');
      // Survives the envelope round trip.
      assert.equal(routingKey(decodeEnvelope(encodeEnvelope(env(id)))), k);
    }
  });

  it('separates documents, collections and databases', () => {
    const keys = new Set(ids.map((id) => routingKey(env(id))));
    assert.equal(keys.size, ids.length);
    const a = routingKey(env('x', { db: 'a.b', coll: 'c' }));
    const b = routingKey(env('x', { db: 'a', coll: 'b.c' }));
    assert.notEqual(a, b);
    assert.notEqual(routingKey(env('x', { db: 'bar', coll: 'p' })), routingKey(env('x', { db: 'bar2', coll: 'p' })));
  });

  it('broadcasts DDL and barriers', () => {
    const ddl: ChangeEnvelope = { v: 1, op: 'drop', ns: { db: 'bar', coll: 'p' }, ct: new Timestamp({ t: 1, i: 1 }), rt: token(1, 1) };
    assert.equal(routingKey(ddl), undefined);
    assert.ok(isBroadcast(ddl));
    const b = barrierEnvelope('cut-1', { ct: new Timestamp({ t: 2, i: 0 }), rt: token(2, 0) });
    assert.equal(routingKey(b), undefined);
    assert.equal(decodeEnvelope(encodeEnvelope(b)).barrier!.id, 'cut-1');
    assert.equal(isBroadcast(env(1)), false);
  });
});

describe('event positions', () => {
  const p = (t: number, i: number, data?: string) => ({ ct: new Timestamp({ t, i }), rt: data === undefined ? token(t, i) : { _data: data } });

  it('orders by clusterTime, then by token', () => {
    assert.equal(compareEventPosition(p(1, 1), p(1, 2)), -1);
    assert.equal(compareEventPosition(p(2, 0), p(1, 9)), 1);
    assert.equal(compareEventPosition(p(1, 1, 'A1'), p(1, 1, 'A2')), -1);
    assert.equal(compareEventPosition(p(1, 1, 'A2'), p(1, 1, 'A2')), 0);
    // t beyond 2^31 (unsigned seconds) still orders correctly.
    assert.equal(compareEventPosition(p(2 ** 31 + 5, 0), p(2 ** 31 - 5, 0)), 1);
  });

  it('isAtOrBefore is conservative for tokens without _data', () => {
    const a = { ct: new Timestamp({ t: 1, i: 1 }), rt: { other: 1 } };
    const b = { ct: new Timestamp({ t: 1, i: 1 }), rt: { other: 2 } };
    assert.equal(isAtOrBefore(a, b), false);
    assert.equal(isAtOrBefore(b, a), false);
    assert.equal(isAtOrBefore(a, { ...a }), true);
    assert.equal(isAtOrBefore(p(1, 1), p(1, 2)), true);
    assert.equal(isAtOrBefore(p(1, 2), p(1, 1)), false);
  });

  it('positionKey sorts like compareEventPosition', () => {
    const ps = [p(3, 1), p(1, 2), p(1, 1, '82A'), p(1, 1, '82B'), p(2 ** 32 - 1, 2 ** 32 - 1), p(0, 0), p(1, 2 ** 31)];
    const byCompare = [...ps].sort(compareEventPosition).map(positionKey);
    const byKey = ps.map(positionKey).sort();
    assert.deepEqual(byKey, byCompare);
  });
});

describe('EXACT_BSON_OPTIONS', () => {
  it('are the options decode uses (no promotion)', () => {
    const doc = BSON.deserialize(BSON.serialize({ a: new Double(1), b: Long.fromInt(1) }), EXACT_BSON_OPTIONS);
    assert.ok(doc.a instanceof Double);
    assert.ok(doc.b instanceof Long);
  });
});
