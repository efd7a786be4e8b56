import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BSON, Int32 } from 'mongodb';
import { lapseCheck, lapsesAt, ttlRules } from '../../src/verify/ttl-lapse.js';
import { unholdTtl } from '../../src/verify/verify-migration.js';
import { HELD_EXPIRE_AFTER_SECONDS } from '../../src/db/ttl-hold.js';

const T = Date.parse('2026-12-05T12:00:00Z');

describe('ttlRules: only the TTL indexes that can prove a lapse', () => {
  test('single field with numeric expireAfterSeconds; not compound, not partial, not plain', () => {
    const rules = ttlRules([
      { key: { _id: 1 }, name: '_id_' },
      { key: { at: 1 }, name: 'at_1', expireAfterSeconds: new Int32(60) },
      { key: { 'meta.seen': -1 }, name: 'seen', expireAfterSeconds: 0 },
      { key: { a: 1, b: 1 }, name: 'compound', expireAfterSeconds: 5 },
      { key: { p: 1 }, name: 'partial', expireAfterSeconds: 5, partialFilterExpression: { kind: 'x' } },
    ]);
    assert.deepEqual(rules, [
      { path: ['at'], expireAfterSeconds: 60 },
      { path: ['meta', 'seen'], expireAfterSeconds: 0 },
    ]);
  });
});

describe('lapsesAt', () => {
  const rules = [{ path: ['at'], expireAfterSeconds: 60 }, { path: ['meta', 'seen'], expireAfterSeconds: 10 }];
  test('the earliest date (arrays: the earliest element) plus expireAfterSeconds, over every rule', () => {
    assert.equal(lapsesAt({ at: new Date(T) }, rules), T + 60_000);
    assert.equal(lapsesAt({ at: [new Date(T + 5000), new Date(T)] }, rules), T + 60_000);
    assert.equal(lapsesAt({ at: new Date(T), meta: { seen: new Date(T) } }, rules), T + 10_000);
    assert.equal(lapsesAt({ meta: [{ seen: new Date(T + 1000) }, { seen: new Date(T) }] }, rules), T + 10_000);
  });
  test('no date at an indexed field: never expires (no proof)', () => {
    assert.equal(lapsesAt({ at: 'yesterday' }, rules), undefined);
    assert.equal(lapsesAt({ other: new Date(T) }, rules), undefined);
    assert.equal(lapsesAt({ at: T }, rules), undefined);
  });
});

describe('lapseCheck: condition 2 of the proof, against the source clock', () => {
  const rules = [{ path: ['at'], expireAfterSeconds: 60 }];
  const raw = (doc: object) => Buffer.from(BSON.serialize(doc));

  test('lapsed by the source clock → true; not yet lapsed → false; the clock is read again only when needed', async () => {
    let now = T + 60_000;
    let reads = 0;
    const check = lapseCheck(rules, async () => (reads++, new Date(now)));
    assert.equal(await check(raw({ _id: 1, at: new Date(T) })), true); // lapses exactly now (<=)
    assert.equal(await check(raw({ _id: 2, at: new Date(T - 1000) })), true);
    assert.equal(reads, 1);
    assert.equal(await check(raw({ _id: 3, at: new Date(T + 1) })), false); // 1 ms in the future
    assert.equal(reads, 2);
    now += 10; // the monitor's later pass: a document deleted then was lapsed by then
    assert.equal(await check(raw({ _id: 3, at: new Date(T + 1) })), true);
  });

  test('no date, no rule, or a source that reports no clock: no proof', async () => {
    assert.equal(await lapseCheck(rules, async () => new Date(T + 1e9))(raw({ _id: 1 })), false);
    assert.equal(await lapseCheck([], async () => new Date(T + 1e9))(raw({ _id: 1, at: new Date(T) })), false);
    assert.equal(await lapseCheck(rules, async () => undefined)(raw({ _id: 1, at: new Date(T) })), false);
  });
});

describe('unholdTtl: verify compares a held index at its recorded original', () => {
  const specs = [
    { v: 2, key: { _id: 1 }, name: '_id_' },
    { v: 2, key: { at: 1 }, name: 'at_1', expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS },
    { v: 2, key: { b: 1 }, name: 'b_1', expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS },
  ];
  test('only indexes held with a record of this namespace', () => {
    const out = unholdTtl(specs, { db: 'app', coll: 's' }, [
      { db: 'app', coll: 's', name: 'at_1', originalExpireAfterSeconds: 3600 },
      { db: 'app', coll: 'other', name: 'b_1', originalExpireAfterSeconds: 5 },
    ]);
    assert.deepEqual(out.map((s) => s.expireAfterSeconds), [undefined, 3600, HELD_EXPIRE_AFTER_SECONDS]);
  });
});
