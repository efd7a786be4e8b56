import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../support/mongo-emulator/index.js';
import { runMigrator } from '../support/cli.js';

describe('migrator check against running servers', () => {
  let a: MongoEmulator;
  let b: MongoEmulator;
  before(async () => {
    [a, b] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    const c = new MongoClient(a.uri);
    await c.db('bar').collection('products').insertMany([{ x: 1 }, { x: 2 }, { x: 3 }]);
    await c.db('bar').collection('orders').insertOne({ y: 1 });
    await c.close();
  });
  after(async () => Promise.all([a.stop(), b.stop()]));

  test('reports version, topology, change streams and databases with counts; --json for machines', async () => {
    const text = await runMigrator(['check', '--source-uri', a.uri, '--target-uri', b.uri]);
    assert.equal(text.exitCode, 0, text.all);
    assert.match(text.stdout, /^source: mongodb:\/\/127\.0\.0\.1/m);
    assert.match(text.stdout, /server: mongodb 7\.\d+\.\d+, replica set rs0/);
    assert.match(text.stdout, /change streams: usable/);
    assert.match(text.stdout, /bar: 2 collections, 4 documents/);
    assert.ok(text.stdout.indexOf('source:') < text.stdout.indexOf('target:'), 'source first');

    const json = await runMigrator(['check', '--json', '--source-uri', a.uri, '--target-uri', b.uri]);
    const r = JSON.parse(json.stdout) as { source: { server: { topology: string; changeStreams: { usable: boolean } }; databases: { name: string; collections: { name: string; documents: number }[] }[] } };
    assert.equal(r.source.server.topology, 'replicaSet');
    assert.equal(r.source.server.changeStreams.usable, true);
    assert.deepEqual(r.source.databases.find((d) => d.name === 'bar')?.collections, [{ name: 'orders', documents: 1 }, { name: 'products', documents: 3 }]);
  });
});
