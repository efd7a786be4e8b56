import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Double, Int32, Long } from 'mongodb';
import {
  HELD_EXPIRE_AFTER_SECONDS,
  holdCollMod,
  holdReplayedCollMod,
  holdReplayedIndexes,
  holdTtl,
  isTtlSpec,
  recordHeldTtl,
  ttlSeconds,
  type TtlHold,
} from '../../src/db/ttl-hold.js';

describe('holdTtl (index specs replayed or restored on the target)', () => {
  test('a TTL index gets the held expireAfterSeconds and reports its original; the input is not changed', () => {
    const spec = { v: 2, key: { at: 1 }, name: 'at_1', expireAfterSeconds: 3600 };
    const r = holdTtl(spec);
    assert.deepEqual(r, { spec: { v: 2, key: { at: 1 }, name: 'at_1', expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS }, originalExpireAfterSeconds: 3600 });
    assert.equal(spec.expireAfterSeconds, 3600);
  });

  test('numbers of any BSON type; 0 (expire at the date itself) is a TTL index too', () => {
    assert.equal(holdTtl({ key: { at: 1 }, name: 'a', expireAfterSeconds: new Int32(60) }).originalExpireAfterSeconds, 60);
    assert.equal(holdTtl({ key: { at: 1 }, name: 'a', expireAfterSeconds: new Double(60) }).originalExpireAfterSeconds, 60);
    assert.equal(holdTtl({ key: { at: 1 }, name: 'a', expireAfterSeconds: Long.fromNumber(60) }).originalExpireAfterSeconds, 60);
    assert.equal(holdTtl({ key: { at: 1 }, name: 'a', expireAfterSeconds: 0 }).originalExpireAfterSeconds, 0);
  });

  test('not a TTL index, or already held: unchanged, no original (the store has it)', () => {
    const plain = { key: { a: 1 }, name: 'a_1', unique: true };
    assert.deepEqual(holdTtl(plain), { spec: plain });
    const held = { key: { a: 1 }, name: 'a_1', expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS };
    assert.deepEqual(holdTtl(held), { spec: held });
    assert.equal(isTtlSpec(plain), false);
    assert.equal(isTtlSpec(held), true);
    assert.equal(ttlSeconds('60'), undefined);
    assert.equal(ttlSeconds(new Date()), undefined);
  });
});

describe('holdCollMod (collMod replayed during the sync)', () => {
  test('an expireAfterSeconds change is held; the new value is the one to restore', () => {
    assert.deepEqual(holdCollMod({ collMod: 'sessions', index: { name: 'at_1', expireAfterSeconds: 120 } }), {
      command: { collMod: 'sessions', index: { name: 'at_1', expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS } },
      index: { name: 'at_1', originalExpireAfterSeconds: 120 },
    });
    assert.deepEqual(holdCollMod({ collMod: 's', index: { keyPattern: { at: 1 }, expireAfterSeconds: 5, hidden: true } }), {
      command: { collMod: 's', index: { keyPattern: { at: 1 }, expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS, hidden: true } },
      index: { keyPattern: { at: 1 }, originalExpireAfterSeconds: 5 },
    });
  });

  test('a collMod without a TTL change passes unchanged', () => {
    const hide = { collMod: 's', index: { name: 'a_1', hidden: true } };
    assert.deepEqual(holdCollMod(hide), { command: hide });
    const validator = { collMod: 's', validator: { a: { $type: 'string' } } };
    assert.deepEqual(holdCollMod(validator), { command: validator });
  });
});

describe('recordHeldTtl', () => {
  test('records the original before the hold; nothing for non-TTL or held values', async () => {
    const recorded: [string, TtlHold][] = [];
    const store = { recordTtlHold: async (id: string, h: TtlHold) => void recorded.push([id, h]) };
    await recordHeldTtl(store, 'm1', { db: 'app', coll: 's' }, { name: 'at_1', key: { at: 1 } }, 3600);
    await recordHeldTtl(store, 'm1', { db: 'app', coll: 's' }, { name: 'a_1', key: { a: 1 } }, undefined);
    await recordHeldTtl(store, 'm1', { db: 'app', coll: 's' }, { name: 'b_1', key: { b: 1 } }, HELD_EXPIRE_AFTER_SECONDS);
    assert.deepEqual(recorded, [['m1', { db: 'app', coll: 's', name: 'at_1', keyPattern: { at: 1 }, originalExpireAfterSeconds: 3600 }]]);
  });
});

describe('DDL replay helpers', () => {
  const fakeStore = () => {
    const recorded: TtlHold[] = [];
    return { recorded, store: { recordTtlHold: async (_id: string, h: TtlHold) => void recorded.push(h) } };
  };
  const ns = { db: 'app2', coll: 'sessions2' };

  test('createIndexes: TTL specs recorded, then returned held; others unchanged, in order', async () => {
    const f = fakeStore();
    const specs = await holdReplayedIndexes(f.store, 'm', ns, [
      { key: { a: 1 }, name: 'a_1', unique: true },
      { key: { at: 1 }, name: 'at_1', expireAfterSeconds: 30 },
    ]);
    assert.deepEqual(specs, [
      { key: { a: 1 }, name: 'a_1', unique: true },
      { key: { at: 1 }, name: 'at_1', expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS },
    ]);
    assert.deepEqual(f.recorded, [{ db: 'app2', coll: 'sessions2', name: 'at_1', keyPattern: { at: 1 }, originalExpireAfterSeconds: 30 }]);
  });

  test('collMod: the new value recorded under the index found on the target; the command held', async () => {
    const f = fakeStore();
    const lookups: unknown[] = [];
    const find = async (by: { name?: string; keyPattern?: object }) => (lookups.push(by), by.name === 'missing' ? undefined : { name: 'at_1', key: { at: 1 } });
    const cmd = await holdReplayedCollMod(f.store, 'm', ns, { collMod: 'sessions2', index: { keyPattern: { at: 1 }, expireAfterSeconds: 90 } }, find);
    assert.deepEqual(cmd, { collMod: 'sessions2', index: { keyPattern: { at: 1 }, expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS } });
    assert.deepEqual(lookups, [{ keyPattern: { at: 1 } }]);
    assert.deepEqual(f.recorded, [{ db: 'app2', coll: 'sessions2', name: 'at_1', keyPattern: { at: 1 }, originalExpireAfterSeconds: 90 }]);
    // Not found on the target: nothing recorded, the held command still goes (the target says why it fails).
    const g = fakeStore();
    assert.deepEqual(await holdReplayedCollMod(g.store, 'm', ns, { collMod: 's', index: { name: 'missing', expireAfterSeconds: 5 } }, find), {
      collMod: 's',
      index: { name: 'missing', expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS },
    });
    assert.deepEqual(g.recorded, []);
    // Not a TTL change: no lookup, unchanged.
    const hide = { collMod: 's', index: { name: 'a_1', hidden: true } };
    assert.deepEqual(await holdReplayedCollMod(g.store, 'm', ns, hide, find), hide);
    assert.equal(lookups.length, 2);
  });
});
