import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientOptions } from '../../src/db/connect.js';

const at = (uri: string) => ({ uri });

test('target and state store writes are acknowledged by a majority unless the URI says otherwise', () => {
  assert.deepEqual(clientOptions(at('mongodb://h:27017/'), 5000, 'target').writeConcern, { w: 'majority' });
  assert.deepEqual(clientOptions(at('mongodb://h:27017/?replicaSet=rs0'), 5000, 'state store').writeConcern, { w: 'majority' });
  assert.equal(clientOptions(at('mongodb://h:27017/?replicaSet=rs0&w=1'), 5000, 'target').writeConcern, undefined, 'w in the URI is respected');
  assert.equal(clientOptions(at('mongodb://h:27017/?journal=true'), 5000, 'target').writeConcern, undefined);
  assert.equal(clientOptions(at('mongodb://h:27017/'), 5000, 'source').writeConcern, undefined, 'the source is only read (and a marker)');
  assert.equal(clientOptions(at('mongodb://h:27017/'), 5000, 'target').appName, 'migrator');
});
