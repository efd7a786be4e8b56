import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeShortfalls, missingActions, shortfalls, sourceNeeds, writeBlockNeed } from '../../src/db/privileges.js';

test('resource patterns: "" database and collection cover user collections, not system ones, local or config', () => {
  const any = [{ resource: { db: '', collection: '' }, actions: ['find'] }];
  assert.deepEqual(missingActions(any, { db: 'shop', collection: 'items' }, ['find']), []);
  assert.deepEqual(missingActions(any, { db: 'shop', collection: '' }, ['find']), []);
  assert.deepEqual(missingActions(any, { db: 'shop', collection: 'system.views' }, ['find']), ['find']);
  assert.deepEqual(missingActions(any, { db: 'local', collection: 'oplog.rs' }, ['find']), ['find']);
  assert.deepEqual(missingActions(any, { cluster: true }, ['find']), ['find']);
  const onDb = [{ resource: { db: 'shop', collection: '' }, actions: ['find', 'insert'] }];
  assert.deepEqual(missingActions(onDb, { db: 'shop', collection: 'items' }, ['find', 'insert', 'update']), ['update']);
  assert.deepEqual(missingActions(onDb, { db: 'other', collection: 'items' }, ['find']), ['find']);
  assert.deepEqual(missingActions([{ resource: { anyResource: true }, actions: ['anyAction'] }], { cluster: true }, ['bypassWriteBlockingMode']), []);
});

test('a user with setUserWriteBlockMode but no bypass gets the createRole recipe for migratorWriteBlock', () => {
  const privileges = [{ resource: { cluster: true }, actions: ['setUserWriteBlockMode'] }];
  const list = shortfalls(privileges, [...sourceNeeds({ databases: [], stateDb: 's', markerCollection: 'm' }), writeBlockNeed()]).filter((s) => s.role === 'migratorWriteBlock@admin');
  assert.deepEqual(list[0]!.missing, ['bypassWriteBlockingMode']);
  const d = describeShortfalls('source', list);
  assert.match(d.problem, /no bypassWriteBlockingMode for blocking writes at the cutover/);
  assert.match(d.remedy, /createRole\(\{ role: 'migratorWriteBlock', privileges: \[\{ resource: \{ cluster: true \}, actions: \['setUserWriteBlockMode', 'bypassWriteBlockingMode'\] \}\]/);
});
