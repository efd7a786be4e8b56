// The migration tag in stream records (issue #11, defect 8): stable, distinct per id and nonce,
// and carried through the envelope's BSON; envelopes without it (earlier builds) still decode.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Timestamp } from 'mongodb';
import { decodeEnvelope, encodeEnvelope, migrationTag, type ChangeEnvelope } from '../../src/model/change-envelope.js';

test('migrationTag: 16 hex digits, stable, different for another id or another nonce', () => {
  const t = migrationTag('m1', 'abc');
  assert.match(t, /^[0-9a-f]{16}$/);
  assert.equal(migrationTag('m1', 'abc'), t);
  assert.notEqual(migrationTag('m2', 'abc'), t);
  assert.notEqual(migrationTag('m1', 'abd'), t);
  assert.notEqual(migrationTag('m1'), t);
});

test('the tag round-trips through the envelope; an untagged envelope decodes without one', () => {
  const base: ChangeEnvelope = { v: 1, op: 'delete', ns: { db: 'a', coll: 'b' }, key: { _id: 1 }, ct: new Timestamp({ t: 5, i: 1 }), rt: { _data: '82' } };
  assert.equal(decodeEnvelope(encodeEnvelope({ ...base, mig: migrationTag('m1', 'n') })).mig, migrationTag('m1', 'n'));
  assert.equal(decodeEnvelope(encodeEnvelope(base)).mig, undefined);
});
