import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { runMigrator } from '../support/cli.js';
import { ROOT_ONLY, ROOT_USER, createMigratorUser, uriAs } from '../support/migrator-users.js';

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

describe('migrator check lists the source users and custom roles (not migrated)', () => {
  let a: MongoEmulator;
  let b: MongoEmulator;
  before(async () => {
    [a, b] = await Promise.all([startMongoEmulator({ auth: ROOT_ONLY }), startMongoEmulator()]);
    const root = new MongoClient(uriAs(a, ROOT_USER));
    await root.db('bar').collection('products').insertOne({ x: 1 });
    await root.db('other').collection('c').insertOne({ x: 1 });
    await root.db('bar').command({ createRole: 'barReader', privileges: [{ resource: { db: 'bar', collection: '' }, actions: ['find'] }], roles: [] });
    await root.db('bar').command({ createUser: 'shop', pwd: 'shop-secret-pw', roles: [{ role: 'barReader', db: 'bar' }] });
    await root.db('admin').command({ createUser: 'app', pwd: 'app-secret-pw', roles: [{ role: 'readWrite', db: 'bar' }] });
    await root.db('admin').command({ createUser: 'elsewhere', pwd: 'x-secret-pw', roles: [{ role: 'read', db: 'other' }] });
    await root.close();
  });
  after(async () => Promise.all([a.stop(), b.stop()]));

  test('users and custom roles of the selected databases, and that they are not migrated; a user without viewUser is told so', async () => {
    const args = ['check', '--source-uri', uriAs(a, ROOT_USER), '--target-uri', b.uri, '--include', 'bar.*'];
    const text = await runMigrator(args);
    assert.equal(text.exitCode, 0, text.all);
    assert.match(text.stdout, /users: .*app@admin \(readWrite@bar\)/);
    assert.match(text.stdout, /users: .*shop@bar \(barReader@bar\)/);
    assert.doesNotMatch(text.stdout, /elsewhere/, 'a user of an unselected database only');
    assert.match(text.stdout, /custom roles: barReader@bar/);
    assert.match(text.stdout, /users and roles are not migrated \(passwords cannot be read\)/);
    assert.doesNotMatch(text.all, /secret-pw/);

    const json = await runMigrator([...args, '--json']);
    const r = JSON.parse(json.stdout) as { source: { access: { users: { user: string; db: string; roles: string[] }[]; roles: { role: string; db: string }[]; unreadable: string[]; migrated: boolean } } };
    assert.deepEqual(r.source.access.users.map((u) => `${u.user}@${u.db}`).sort(), ['app@admin', 'root@admin', 'shop@bar']);
    assert.deepEqual(r.source.access.roles, [{ role: 'barReader', db: 'bar', roles: [] }]);
    assert.equal(r.source.access.migrated, false);

    // The migrator's least-privilege source user (readAnyDatabase) may not view users or roles.
    const migrator = await createMigratorUser(a, 'source');
    const limited = await runMigrator(['check', '--source-uri', migrator, '--target-uri', b.uri, '--include', 'bar.*']);
    assert.equal(limited.exitCode, 0, limited.all);
    assert.match(limited.stdout, /not listed: users of bar: the source user lacks viewUser on bar/);
    assert.match(limited.stdout, /not listed: roles of bar: the source user lacks viewRole on bar/);
  });
});
