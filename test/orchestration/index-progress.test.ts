// Index-build progress in `status` (indexes after data): per collection and in total, the index
// building now only while its unit's lease is live, and the text lines.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildStatusReport, formatStatusReport } from '../../src/orchestration/status-report.js';
import { loadIndexStatus, namespaceIndexStatus } from '../../src/orchestration/index-progress.js';
import { collectionsWithDataLeft } from '../../src/orchestration/load-worker.js';
import type { LoadUnitDoc, MigrationDoc } from '../../src/state/store.js';

const NOW = new Date('2026-12-05T12:00:00Z');
const T0 = new Date(NOW.getTime() - 600_000);

const unit = (shardId: string, over: Partial<LoadUnitDoc>): LoadUnitDoc => ({
  _id: `m/${shardId}`, migrationId: 'm', shardId, kind: 'indexes', seq: 0, sourceDb: 'shop', targetDb: 'shop', coll: 'users', target: 'shop.users',
  state: 'pending', attempts: 0, lease: { owner: null, epoch: 0, expiresAt: new Date(0) }, ...over,
});
const live = { owner: 'h:1:a', epoch: 1, expiresAt: new Date(NOW.getTime() + 10_000) };
const expired = { owner: 'h:2:b', epoch: 1, expiresAt: new Date(NOW.getTime() - 10_000) };

describe('index progress', () => {
  test('per collection: built/total, and the index building only while its unit runs under a live lease', () => {
    const p = { indexes: { built: ['a'], pending: ['b', 'c'], building: 'b' } };
    const running = [unit('ix', { state: 'running', lease: live })];
    assert.deepEqual(namespaceIndexStatus('shop.users', p, running, false, NOW.getTime()), { total: 3, built: 1, pending: 2, building: 'b' });
    assert.equal(namespaceIndexStatus('shop.users', p, [unit('ix', { state: 'running', lease: expired })], false, NOW.getTime())?.building, null, 'a dead builder builds nothing');
    assert.equal(namespaceIndexStatus('shop.users', p, [unit('ix', { state: 'pending' })], false, NOW.getTime())?.building, null);
    assert.equal(namespaceIndexStatus('shop.orders', p, running, false, NOW.getTime())?.building, null, 'another collection\'s unit');
    assert.equal(namespaceIndexStatus('shop.users', p, [], true, NOW.getTime())?.building, null, 'the load finished');
    assert.equal(namespaceIndexStatus('shop.users', {}, running, false, NOW.getTime()), null, 'nothing built after data');
    assert.equal(namespaceIndexStatus('shop.users', undefined, [], false, NOW.getTime()), null);
  });

  test('in total: sums over the collections that build indexes, and every index building', () => {
    const s = loadIndexStatus([
      { ns: 'shop.a', indexes: { total: 3, built: 1, pending: 2, building: 'x' } },
      { ns: 'shop.b', indexes: null },
      { ns: 'shop.c', indexes: { total: 2, built: 2, pending: 0, building: null } },
      { ns: 'shop.d', indexes: { total: 1, built: 0, pending: 1, building: 'y' } },
    ]);
    assert.deepEqual(s, { total: 6, built: 3, pending: 3, building: [{ ns: 'shop.a', name: 'x' }, { ns: 'shop.d', name: 'y' }] });
  });

  test('status and status --json carry it while the load runs', () => {
    const migration = {
      _id: 'm', phase: 'INITIAL_LOAD', createdAt: T0, updatedAt: NOW, phaseChangedAt: T0,
      load: {
        attempt: 1, startedAt: T0,
        collections: {
          'shop\u2024users': { target: 'shop.users', total: 500, dumped: 500, restored: 500, done: false, indexes: { built: ['email_unique'], pending: ['city_at'], building: 'city_at' } },
          'shop\u2024orders': { target: 'shop.orders', total: 200, dumped: 200, restored: 200, done: false, indexes: { built: [], pending: ['user_1'], building: null } },
          'shop\u2024plain': { target: 'shop.plain', total: 50, dumped: 50, restored: 50, done: true },
        },
      },
    } as unknown as MigrationDoc;
    const loadUnits = [
      unit('db', { kind: 'database', coll: undefined, target: undefined, state: 'done', collections: [{ coll: 'users', target: 'shop.users', indexesAfter: true }] }),
      unit('ix-users', { state: 'running', lease: live }),
      unit('ix-orders', { coll: 'orders', target: 'shop.orders' }),
    ];
    const r = buildStatusReport({ migration, capture: null, shards: [], cutover: null, loadUnits }, NOW);
    const json = JSON.parse(JSON.stringify(r)) as typeof r;
    assert.deepEqual(json.load!.indexes, { total: 3, built: 1, pending: 2, building: [{ ns: 'shop.users', name: 'city_at' }] });
    assert.deepEqual(json.load!.namespaces.map((n) => [n.ns, n.indexes]), [
      ['shop.orders', { total: 1, built: 0, pending: 1, building: null }],
      ['shop.plain', null],
      ['shop.users', { total: 2, built: 1, pending: 1, building: 'city_at' }],
    ]);
    const text = formatStatusReport(r);
    assert.match(text, /indexes \(after data\): 1\/3 built; building shop\.users city_at/);
    assert.match(text, /shop\.users: 500\/500 [^\n]*, indexes 1\/2 \(building city_at\)/);
    assert.match(text, /shop\.orders: 200\/200 [^\n]*, indexes 0\/1\n/);
    assert.doesNotMatch(text, /shop\.plain[^\n]*indexes/);
  });

  test('an index unit waits for its collection\'s data: its ranges, or the database pipe that holds it', () => {
    const left = collectionsWithDataLeft([
      unit('r', { kind: 'range', coll: 'big' }),
      unit('db', { kind: 'database', coll: undefined, collections: [{ coll: 'a', target: 'shop.a' }, { coll: 'b', target: 'shop.b' }] }),
      unit('ix', { kind: 'indexes', coll: 'c' }),
    ]);
    assert.deepEqual([...left].sort(), ['shop.a', 'shop.b', 'shop.big']);
  });
});
