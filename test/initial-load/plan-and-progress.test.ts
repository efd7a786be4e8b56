import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LOAD_OPTIONS, planPipes, tlsArgs } from '../../src/initial-load/dump-restore-plan.js';
import { parseToolLine } from '../../src/initial-load/tool-progress.js';

test('one pipe per source database; unselected collections excluded from the dump; --map becomes nsFrom/nsTo', () => {
  const all = new Map([
    ['bar', ['products', 'orders', 'logs']],
    ['baz', ['items']],
  ]);
  const selected = [
    { db: 'bar', coll: 'products' },
    { db: 'bar', coll: 'orders' },
    { db: 'baz', coll: 'items' },
  ];
  const jobs = planPipes(selected, all, (db) => (db === 'bar' ? 'bar_new' : db), { ...DEFAULT_LOAD_OPTIONS, drop: true });
  assert.equal(jobs.length, 2);
  const [bar, baz] = jobs;
  assert.deepEqual(bar!.collections, ['orders', 'products']);
  assert.ok(bar!.dumpArgs.includes('--db=bar'));
  assert.ok(bar!.dumpArgs.includes('--excludeCollection=logs'));
  assert.ok(!bar!.dumpArgs.some((a) => a.includes('products')));
  assert.ok(bar!.restoreArgs.includes('--nsFrom=bar.*') && bar!.restoreArgs.includes('--nsTo=bar_new.*'));
  assert.ok(bar!.restoreArgs.includes('--drop'));
  assert.ok(!baz!.restoreArgs.some((a) => a.startsWith('--nsFrom')), 'no rename for an unmapped db');
  assert.ok(!baz!.dumpArgs.some((a) => a.startsWith('--excludeCollection')));
});

test('TLS options become the tools\' --ssl flags', () => {
  assert.deepEqual(tlsArgs({ uri: 'mongodb://h', tlsCAFile: '/ca.pem', tlsAllowInvalidHostnames: true }), [
    '--ssl',
    '--sslCAFile=/ca.pem',
    '--sslAllowInvalidHostnames',
  ]);
  assert.deepEqual(tlsArgs({ uri: 'mongodb://h' }), []);
});

test('tool output lines become progress events', () => {
  assert.deepEqual(parseToolLine('2025-01-01T10:00:00.000+0000\twriting bar.products to archive on stdout'), {
    kind: 'dump-started',
    ns: 'bar.products',
  });
  assert.deepEqual(parseToolLine('2025-01-01T10:00:01.000+0000\t[####....................]  bar.products  1200/5000  (24.0%)'), {
    kind: 'dump-progress',
    ns: 'bar.products',
    done: 1200,
    total: 5000,
  });
  assert.deepEqual(parseToolLine('2025-01-01T10:00:02.000+0000\tdone dumping bar.products (5000 documents)'), {
    kind: 'dump-finished',
    ns: 'bar.products',
    documents: 5000,
  });
  assert.deepEqual(parseToolLine('2025-01-01T10:00:03.000+0000\tfinished restoring bar_new.products (5000 documents, 0 failures)'), {
    kind: 'restore-finished',
    ns: 'bar_new.products',
    documents: 5000,
    failures: 0,
  });
  assert.deepEqual(parseToolLine('2025-01-01T10:00:04.000+0000\t5000 document(s) restored successfully. 0 document(s) failed to restore.'), {
    kind: 'restore-summary',
    restored: 5000,
    failed: 0,
  });
  assert.equal(parseToolLine('2025-01-01T10:00:04.000+0000\tpreparing collections to restore from'), undefined);
});

test('a collection map renames that collection in the load; the others follow their database map, one literal pair each', () => {
  const all = new Map([['bar', ['products', 'orders', 'a*b']]]);
  const selected = [{ db: 'bar', coll: 'products' }, { db: 'bar', coll: 'orders' }, { db: 'bar', coll: 'a*b' }];
  const targetDb = (db: string) => (db === 'bar' ? 'bar_new' : db);
  const targetOf = (ns: { db: string; coll: string }) => (ns.coll === 'products' ? { db: 'shop', coll: 'items' } : { db: targetDb(ns.db), coll: ns.coll });
  const [job] = planPipes(selected, all, targetDb, DEFAULT_LOAD_OPTIONS, targetOf);
  const pairs: string[] = [];
  job!.restoreArgs.forEach((a, i) => {
    if (a.startsWith('--nsFrom=')) pairs.push(`${a.slice(9)} -> ${job!.restoreArgs[i + 1]!.slice(7)}`);
  });
  // No `bar.*` pair that would also match bar.products: which of two matching pairs wins is the tool's choice.
  assert.deepEqual(pairs, ['bar.a\\*b -> bar_new.a\\*b', 'bar.orders -> bar_new.orders', 'bar.products -> shop.items']);
  // Without a collection map the database map stays one wildcard pair.
  const [plain] = planPipes(selected, all, targetDb, DEFAULT_LOAD_OPTIONS);
  assert.ok(plain!.restoreArgs.includes('--nsFrom=bar.*') && plain!.restoreArgs.includes('--nsTo=bar_new.*'));
  // A collection map inside an unmapped database renames only that collection.
  const [only] = planPipes(selected, all, (db) => db, DEFAULT_LOAD_OPTIONS, (ns) => (ns.coll === 'orders' ? { db: 'bar', coll: 'orders_v2' } : ns));
  assert.deepEqual(only!.restoreArgs.filter((a) => a.startsWith('--ns') && !a.startsWith('--nsInclude')), ['--nsFrom=bar.orders', '--nsTo=bar.orders_v2']);
});
