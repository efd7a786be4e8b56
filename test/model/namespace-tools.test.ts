// The initial-load arguments, run through the real mongodump | mongorestore (mongo-tools 100.x)
// between two emulators: what lands on the target is exactly what the change stream side
// (includes() + target()) considers migrated.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { MongoClient } from 'mongodb';
import { NamespaceRules, type NamespaceRulesOptions } from '../../src/model/namespace-filter.js';
import type { CollectionNamespace } from '../../src/model/change-envelope.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';

const SOURCE_NAMESPACES = [
  'a.logs',
  'a.b.logs',
  'bar.products',
  'bar.special',
  'bar.tmp',
  'bar.system.js',
  'bar.fs.files',
  'baz.logsx',
  'shop.x',
  'bar_new.stale',
  'migrator_state.shards',
];
const ns = (s: string): CollectionNamespace => {
  const dot = s.indexOf('.');
  return { db: s.slice(0, dot), coll: s.slice(dot + 1) };
};
const name = (n: CollectionNamespace) => `${n.db}.${n.coll}`;

describe('initial-load arguments with mongodump | mongorestore', { timeout: 20 * 60_000 }, () => {
  let source: MongoEmulator;
  let dir: string;
  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    source = await startMongoEmulator({ port: 0 });
    dir = await mkdtemp(path.join(tmpdir(), 'nstools-'));
    const client = await MongoClient.connect(source.uri);
    for (const s of SOURCE_NAMESPACES) {
      const n = ns(s);
      await client.db(n.db).collection(n.coll).insertOne({ _id: 1, from: s } as never);
    }
    await client.close();
  });
  after(async () => {
    await source?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cases: { label: string; options: NamespaceRulesOptions; listNamespaces: boolean }[] = [
    { label: 'defaults (pattern mode)', options: {}, listNamespaces: false },
    { label: 'include/exclude/map (pattern mode)', options: { include: ['bar.*'], exclude: ['bar.tmp'], map: ['bar:bar_new', 'bar.special:archive.sp'] }, listNamespaces: false },
    { label: '*.logs needs the namespace list', options: { include: ['bar.*', '*.logs'], exclude: ['bar.tmp'], map: ['bar:bar_new'] }, listNamespaces: true },
  ];

  for (const { label, options, listNamespaces } of cases) {
    it(label, async () => {
      const rules = new NamespaceRules(options);
      const target = await startMongoEmulator({ port: 0 });
      try {
        const archive = path.join(dir, `${label.replace(/\W+/g, '_')}.archive`);
        await execa(goToolPath('mongodump'), [`--uri=${source.uri}`, `--archive=${archive}`, ...rules.mongodumpArgs()]);
        const restoreArgs = rules.mongorestoreArgs(listNamespaces ? { sourceNamespaces: SOURCE_NAMESPACES.map(ns) } : {});
        await execa(goToolPath('mongorestore'), [`--uri=${target.uri}`, `--archive=${archive}`, ...restoreArgs]);

        const client = await MongoClient.connect(target.uri);
        const restored: string[] = [];
        for (const { name: db } of (await client.db('admin').admin().listDatabases()).databases) {
          if (['admin', 'local', 'config'].includes(db)) continue;
          for (const c of await client.db(db).listCollections({}, { nameOnly: true }).toArray()) restored.push(`${db}.${c.name}`);
        }
        await client.close();
        const expected = SOURCE_NAMESPACES.map(ns).filter((n) => rules.includes(n)).map((n) => name(rules.target(n)));
        assert.deepEqual(restored.sort(), expected.sort(), `restore args: ${restoreArgs.join(' ')}`);
      } finally {
        await target.stop();
      }
    });
  }
});
