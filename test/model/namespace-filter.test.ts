import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Timestamp } from 'mongodb';
import { Query } from 'mingo';
import type { ChangeEnvelope } from '../../src/model/change-envelope.js';
import {
  NamespaceConfigError,
  NamespaceMappingError,
  NamespaceRules,
  parseNamespaceMap,
  parseNamespacePattern,
} from '../../src/model/namespace-filter.js';

const ns = (s: string) => {
  const dot = s.indexOf('.');
  return { db: s.slice(0, dot), coll: s.slice(dot + 1) };
};

describe('namespace patterns', () => {
  it('accepts db.*, db.coll, *.coll, globs and dotted collection names', () => {
    for (const p of ['bar.*', 'bar.products', '*.logs', 'shop_*.orders', 'bar.fs.files', '*.*', 'a.b*c']) {
      assert.equal(parseNamespacePattern(p).text, p);
    }
    const p = parseNamespacePattern('bar.fs.*');
    assert.equal(p.db, 'bar');
    assert.equal(p.coll, 'fs.*');
    const whole = parseNamespacePattern('bar');
    assert.equal(whole.db, 'bar');
    assert.equal(whole.coll, '*', 'a bare database name means the whole database');
  });

  it('rejects invalid patterns with a clear message', () => {
    const bad: [string, RegExp][] = [
      ['', /empty/],
      [' bar.x', /spaces/],
      ['.x', /database part is empty/],
      ['bar.', /collection part is empty/],
      ['b/r.x', /not allowed in database names/],
      ['b$r.x', /not allowed/],
      ['bar.x$y', /contains \$/],
      ['admin.*', /system database/],
      ['local.oplog.rs', /system database/],
      ['bar.system.views', /system collection/],
    ];
    for (const [text, re] of bad) {
      assert.throws(() => parseNamespacePattern(text), (err: Error) => err instanceof NamespaceConfigError && re.test(err.message) && err.message.includes('expected <db>, <db>.* or <db>.<collection>'), text);
    }
  });

  it('parses maps and rejects invalid ones', () => {
    assert.deepEqual(parseNamespaceMap('bar:bar_new'), { kind: 'db', from: 'bar', to: 'bar_new' });
    assert.deepEqual(parseNamespaceMap('bar.p:shop.products'), { kind: 'coll', from: ns('bar.p'), to: ns('shop.products') });
    for (const [text, re] of [
      ['bar', /exactly one ":"/],
      ['a:b:c', /exactly one ":"/],
      ['bar.x:baz', /both sides/],
      ['bar*:baz', /must not contain \*/],
      ['bar:admin', /system database/],
      ['bar:migrator_state', /state database/],
      ['bar.x:baz.system.y', /system collection/],
      [':x', /empty/],
    ] as [string, RegExp][]) {
      assert.throws(() => parseNamespaceMap(text), (err: Error) => err instanceof NamespaceConfigError && re.test(err.message), text);
    }
  });
});

describe('NamespaceRules.includes', () => {
  it('includes everything but protected namespaces by default', () => {
    const r = new NamespaceRules();
    assert.ok(r.includes(ns('bar.products')));
    assert.ok(r.includes(ns('x.fs.chunks')));
    for (const p of ['admin.x', 'local.oplog.rs', 'config.chunks', 'migrator_state.shards', 'bar.system.views', 'bar.system.profile']) {
      assert.equal(r.includes(ns(p)), false, p);
    }
    const custom = new NamespaceRules({ stateDb: 'mystate' });
    assert.equal(custom.includes(ns('mystate.x')), false);
    assert.ok(custom.includes(ns('migrator_state.x')));
  });

  it('applies includes then excludes, per segment', () => {
    const r = new NamespaceRules({ include: ['bar.*', '*.logs', 'shop_*.orders'], exclude: ['bar.tmp*', '*.logs_old'] });
    assert.ok(r.includes(ns('bar.products')));
    assert.equal(r.includes(ns('bar.tmp1')), false);
    assert.ok(r.includes(ns('other.logs')));
    assert.equal(r.includes(ns('other.logsx')), false);
    assert.equal(r.includes(ns('a.b.logs')), false, '* in the db part does not swallow the collection');
    assert.ok(r.includes(ns('shop_eu.orders')));
    assert.equal(r.includes(ns('shop_eu.order')), false);
    assert.equal(r.includes(ns('baz.products')), false);
    assert.ok(r.includesDatabase('bar'));
    assert.ok(r.includesDatabase('other'), '*.logs could include some collection of any db');
    assert.equal(new NamespaceRules({ include: ['bar.*'] }).includesDatabase('baz'), false);
    assert.equal(new NamespaceRules({ exclude: ['bar.*'] }).includesDatabase('bar'), false);
    assert.equal(r.includesDatabase('admin'), false);
  });

  it('rejects an include of the state database', () => {
    assert.throws(() => new NamespaceRules({ include: ['migrator_state.*'] }), /state database/);
  });
});

describe('NamespaceRules mapping', () => {
  it('maps databases and single collections (collection maps win)', () => {
    const r = new NamespaceRules({ map: ['bar:bar_new', 'bar.special:archive.special_v2'] });
    assert.deepEqual(r.target(ns('bar.products')), ns('bar_new.products'));
    assert.deepEqual(r.target(ns('bar.special')), ns('archive.special_v2'));
    assert.deepEqual(r.target(ns('other.x')), ns('other.x'));
    const fromConfig = new NamespaceRules({ include: ['bar'], map: [{ from: 'bar', to: 'bar_new' }] });
    assert.deepEqual(fromConfig.target(ns('bar.p')), ns('bar_new.p'));
    assert.ok(fromConfig.includes(ns('bar.p')));
    assert.equal(r.targetDb('bar'), 'bar_new');
    assert.deepEqual(r.sourceOf(ns('bar_new.products')), ns('bar.products'));
    assert.deepEqual(r.sourceOf(ns('archive.special_v2')), ns('bar.special'));
    assert.equal(r.sourceOf(ns('bar_new.special')), undefined, 'bar.special goes elsewhere');
    assert.deepEqual(r.sourceOf(ns('other.x')), ns('other.x'));
    assert.equal(r.sourceOf(ns('bar.products')), undefined, 'bar is mapped away');
  });

  it('shadows a source whose own name is a map target', () => {
    const r = new NamespaceRules({ map: ['bar:bar_new'] });
    assert.equal(r.includes(ns('bar_new.products')), false);
    const swap = new NamespaceRules({ map: ['a:b', 'b:a'] });
    assert.ok(swap.includes(ns('a.x')));
    assert.ok(swap.includes(ns('b.x')));
    assert.deepEqual(swap.target(ns('a.x')), ns('b.x'));
    assert.deepEqual(swap.target(ns('b.x')), ns('a.x'));
    assert.deepEqual(swap.sourceOf(ns('a.x')), ns('b.x'));
  });

  it('rejects ambiguous maps and reports collisions', () => {
    assert.throws(() => new NamespaceRules({ map: ['a:x', 'b:x'] }), /both mapped to 'x'/);
    assert.throws(() => new NamespaceRules({ map: ['a:x', 'a:y'] }), /mapped twice/);
    assert.throws(() => new NamespaceRules({ map: ['a.c:x.c', 'b.c:x.c'] }), /both mapped to 'x.c'/);
    const r = new NamespaceRules({ map: ['a:b', 'c.x:b.x'] });
    assert.deepEqual(r.target(ns('c.x')), ns('b.x'));
    assert.throws(() => r.target(ns('a.x')), (err: Error) => err instanceof NamespaceMappingError && /'a.x' and 'c.x' both map to 'b.x'/.test(err.message));
  });
});

describe('NamespaceRules.acceptsEnvelope', () => {
  const base = { v: 1 as const, ct: new Timestamp({ t: 1, i: 1 }), rt: { _data: '82' } };
  const r = new NamespaceRules({ include: ['bar.*'], exclude: ['bar.tmp'] });
  it('filters data, DDL and barriers', () => {
    const e = (x: Partial<ChangeEnvelope>) => ({ ...base, op: 'insert', ns: ns('bar.p'), key: { _id: 1 }, doc: { _id: 1 }, ...x }) as ChangeEnvelope;
    assert.ok(r.acceptsEnvelope(e({})));
    assert.equal(r.acceptsEnvelope(e({ ns: ns('bar.tmp') })), false);
    assert.equal(r.acceptsEnvelope(e({ ns: ns('baz.p') })), false);
    assert.ok(r.acceptsEnvelope(e({ op: 'rename', ns: ns('baz.p'), to: ns('bar.p') })), 'rename into the set');
    assert.ok(r.acceptsEnvelope(e({ op: 'rename', ns: ns('bar.p'), to: ns('baz.p') })), 'rename out of the set');
    assert.equal(r.acceptsEnvelope(e({ op: 'rename', ns: ns('baz.p'), to: ns('baz.q') })), false);
    assert.ok(r.acceptsEnvelope(e({ op: 'dropDatabase', ns: { db: 'bar' } })));
    assert.equal(r.acceptsEnvelope(e({ op: 'dropDatabase', ns: { db: 'baz' } })), false);
    assert.ok(r.acceptsEnvelope(e({ op: 'barrier', ns: { db: '' }, barrier: { id: 'x' } })));
  });
});

describe('NamespaceRules.changeStreamMatch', () => {
  const events = [
    { operationType: 'insert', ns: ns('bar.products') },
    { operationType: 'update', ns: ns('bar.tmp') },
    { operationType: 'insert', ns: ns('baz.products') },
    { operationType: 'insert', ns: ns('shop_eu.orders') },
    { operationType: 'insert', ns: ns('shop_eu.other') },
    { operationType: 'insert', ns: ns('x.logs') },
    { operationType: 'rename', ns: ns('baz.a'), to: ns('bar.a') },
    { operationType: 'rename', ns: ns('baz.a'), to: ns('baz.b') },
    { operationType: 'dropDatabase', ns: { db: 'bar' } },
    { operationType: 'dropDatabase', ns: { db: 'zzz' } },
    { operationType: 'invalidate' },
    { operationType: 'insert', ns: ns('migrator_state.shards') },
    { operationType: 'insert', ns: ns('admin.x') },
    { operationType: 'createIndexes', ns: ns('bar.products') },
    { operationType: 'createIndexes', ns: ns('baz.products') },
    { operationType: 'create', ns: ns('migrator_state.x') },
    { operationType: 'shardCollection', ns: ns('baz.products') },
  ];
  const run = (r: NamespaceRules) => {
    const q = new Query(r.changeStreamMatch().$match);
    return events.filter((e) => q.test(e)).map((e) => `${e.operationType}:${e.ns?.db ?? ''}.${e.ns && 'coll' in e.ns ? e.ns.coll : ''}`);
  };

  it('is a superset of what includes() accepts, and drops protected databases', () => {
    const r = new NamespaceRules({ include: ['bar.*', 'shop_*.orders', '*.logs'], exclude: ['bar.tmp'] });
    const matched = run(r);
    assert.deepEqual(matched, [
      'insert:bar.products',
      'update:bar.tmp', // excluded client-side
      'insert:shop_eu.orders',
      'insert:x.logs',
      'rename:baz.a',
      'dropDatabase:bar.',
      'dropDatabase:zzz.', // *.logs: any database may hold a logs collection
      'invalidate:.',
      'createIndexes:bar.products', // schema events are matched on their namespace like data events
      'shardCollection:baz.products', // not replayed; capture logs it
    ]);
  });

  it('matches everything but protected databases without includes', () => {
    const matched = run(new NamespaceRules());
    assert.equal(matched.length, events.length - 3);
  });
});

describe('mongo-tools arguments', () => {
  it('narrows mongodump only to one literal database or collection', () => {
    assert.deepEqual(new NamespaceRules().mongodumpArgs(), []);
    assert.deepEqual(new NamespaceRules({ include: ['bar.*', 'bar.x*'] }).mongodumpArgs(), ['--db=bar']);
    assert.deepEqual(new NamespaceRules({ include: ['bar.products'] }).mongodumpArgs(), ['--db=bar', '--collection=products']);
    assert.deepEqual(new NamespaceRules({ include: ['bar.*', 'baz.*'] }).mongodumpArgs(), []);
    assert.deepEqual(new NamespaceRules({ include: ['*.logs'] }).mongodumpArgs(), []);
  });

  it('passes exact patterns to mongorestore, escaped, with system exclusions', () => {
    const r = new NamespaceRules({ include: ['bar.*', 'shop.a*b'], exclude: ['bar.tmp'], stateDb: 'st' });
    assert.deepEqual(r.mongorestoreArgs(), [
      '--nsInclude=bar.*',
      '--nsInclude=shop.a*b',
      '--nsExclude=bar.tmp',
      '--nsExclude=admin.*',
      '--nsExclude=local.*',
      '--nsExclude=config.*',
      '--nsExclude=st.*',
      '--nsExclude=*.system.*',
    ]);
    assert.deepEqual(new NamespaceRules().mongorestoreArgs().slice(0, 1), ['--nsExclude=admin.*']);
  });

  it('needs the namespace list for patterns mongo-tools would read differently', () => {
    const r = new NamespaceRules({ include: ['*.logs'] });
    assert.throws(() => r.mongorestoreArgs(), /\*\.logs cannot be passed to mongorestore exactly/);
    const args = r.mongorestoreArgs({ sourceNamespaces: [ns('a.logs'), ns('a.b.logs'), ns('b.logs'), ns('admin.logs'), ns('c.x'), ns('c.system.logs')] });
    assert.deepEqual(args, ['--nsInclude=a.logs', '--nsInclude=b.logs']);
    assert.throws(() => r.mongorestoreArgs({ sourceNamespaces: [ns('c.x')] }), /no source collection/);
  });

  it('escapes literal * and backslash in explicit names', () => {
    const lit = new NamespaceRules();
    assert.deepEqual(lit.mongorestoreArgs({ sourceNamespaces: [ns('a.we*rd\\name')] }), ['--nsInclude=a.we\\*rd\\\\name']);
  });

  it('excludes shadowed sources and puts collection maps after database maps (the last match wins)', () => {
    const r = new NamespaceRules({ map: ['bar:bar_new', 'bar.special:archive.sp'] });
    const args = r.mongorestoreArgs();
    assert.ok(args.includes('--nsExclude=bar_new.*'));
    assert.ok(args.includes('--nsExclude=archive.sp'));
    assert.deepEqual(args.slice(-4), ['--nsFrom=bar.*', '--nsTo=bar_new.*', '--nsFrom=bar.special', '--nsTo=archive.sp']);
  });
});
