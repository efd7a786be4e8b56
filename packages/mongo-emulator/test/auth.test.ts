// Access control and user write blocking, as documented for MongoDB 6.0+/7.0:
//  - SCRAM-SHA-256 authentication through the Node driver and the Go tools (mongodump/mongorestore);
//  - unauthenticated commands other than the handshake fail with 13 (Unauthorized);
//  - built-in roles grant what "Built-In Roles" lists, no more
//    (https://www.mongodb.com/docs/manual/reference/built-in-roles/);
//  - connectionStatus reports users, roles and (showPrivileges) privileges;
//  - setUserWriteBlockMode (6.0+) needs its action, blocks user writes with 371 unless the user has
//    bypassWriteBlockingMode (restore, root, or a user-defined role), and does not exist before 6.0.
//
// On a real server: MONGODB_URI must authenticate as a root user (e.g. mongodb://root:pw@host/?authSource=admin)
// and MONGODB_AUTH=1 says access control is on; the tests create (and drop) their own users.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { exec } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { MongoClient, type MongoServerError } from 'mongodb';
import { startMongoEmulator, type MongoEmulator, type ProfileName } from '../src/index.js';
import { ensureGoTools, goToolPath } from '../../../test/support/go-tools.js';
import { REAL_SERVER_PROFILE, REAL_SERVER_URI, onProfile } from './target.js';

const REAL_AUTH = process.env.MONGODB_AUTH === '1';
/** Auth tests run on the emulator, or on a real server with access control on. */
const authSkip = (profile: ProfileName): string | false => onProfile(profile) || (REAL_SERVER_URI && !REAL_AUTH ? 'needs MONGODB_AUTH=1 (a server with access control)' : false);

interface AuthTarget {
  adminUri: string;
  /** The same server as user:pwd (authSource admin). */
  uriAs(user: string, pwd: string): string;
  admin: MongoClient;
  clients: MongoClient[];
  users: string[];
  emulator?: MongoEmulator;
}

async function openAuthTarget(profile: ProfileName): Promise<AuthTarget> {
  const emulator = REAL_SERVER_URI ? undefined : await startMongoEmulator({ profile, auth: { users: [{ user: 'root', pwd: 'rootpw', roles: ['root'] }] } });
  const adminUri = REAL_SERVER_URI ?? `mongodb://root:rootpw@${emulator!.host}/?replicaSet=rs0&authSource=admin`;
  const admin = new MongoClient(adminUri, { serverSelectionTimeoutMS: 5000 });
  await admin.connect();
  const base = new URL(adminUri);
  return {
    adminUri,
    uriAs(user, pwd) {
      const u = new URL(base.toString());
      u.username = user;
      u.password = pwd;
      u.searchParams.set('authSource', 'admin');
      return u.toString();
    },
    admin,
    clients: [],
    users: [],
    emulator,
  };
}

async function closeAuthTarget(t: AuthTarget): Promise<void> {
  for (const c of t.clients) await c.close();
  for (const u of t.users) await t.admin.db('admin').command({ dropUser: u }).catch(() => undefined);
  if (REAL_SERVER_URI) await t.admin.db('admin').command({ setUserWriteBlockMode: 1, global: false }).catch(() => undefined);
  await t.admin.close();
  await t.emulator?.stop();
}

const run = randomBytes(3).toString('hex');

/** Creates a user with `roles` (on admin) and returns a connected client for it. */
async function userClient(t: AuthTarget, label: string, roles: unknown[]): Promise<MongoClient> {
  const name = `emu_${label}_${run}`;
  await t.admin.db('admin').command({ createUser: name, pwd: 'pw-' + label, roles });
  t.users.push(name);
  const c = new MongoClient(t.uriAs(name, 'pw-' + label), { serverSelectionTimeoutMS: 5000 });
  await c.connect();
  t.clients.push(c);
  return c;
}

const code = (n: number) => (err: unknown) => (err as MongoServerError).code === n;

describe('access control (SCRAM-SHA-256, built-in roles)', { skip: authSkip('mongodb-7.0') }, () => {
  let t: AuthTarget;
  const db = `emu_auth_${run}`;
  before(async () => {
    t = await openAuthTarget('mongodb-7.0');
    await t.admin.db(db).collection('c').insertMany([{ _id: 1 as never, v: 1 }, { _id: 2 as never, v: 2 }]);
  });
  after(() => closeAuthTarget(t));

  test('without authentication only the handshake runs; other commands fail with 13', async () => {
    if (!t.emulator) return; // a real server's URI carries credentials
    const anon = new MongoClient(t.emulator.uri, { serverSelectionTimeoutMS: 5000 });
    try {
      const admin = anon.db('admin');
      assert.equal((await admin.command({ ping: 1 })).ok, 1);
      assert.ok((await admin.command({ buildInfo: 1 })).version);
      const status = await admin.command({ connectionStatus: 1 });
      assert.deepEqual(status.authInfo.authenticatedUsers, []);
      await assert.rejects(anon.db(db).collection('c').findOne({}), code(13));
      await assert.rejects(admin.command({ listDatabases: 1 }), code(13));
      await assert.rejects(anon.db(db).collection('c').insertOne({ x: 1 }), code(13));
    } finally {
      await anon.close();
    }
  });

  test('a wrong password fails authentication (18)', async () => {
    const name = `emu_pw_${run}`;
    await t.admin.db('admin').command({ createUser: name, pwd: 'right', roles: [] });
    t.users.push(name);
    const c = new MongoClient(t.uriAs(name, 'wrong'), { serverSelectionTimeoutMS: 3000 });
    await assert.rejects(c.connect(), (err: Error) => /Authentication failed/.test(err.message));
    await c.close();
  });

  test('read: find yes, insert and other databases no; connectionStatus shows user, role and privileges', async () => {
    const c = await userClient(t, 'reader', [{ role: 'read', db }]);
    assert.equal(await c.db(db).collection('c').countDocuments(), 2);
    await assert.rejects(c.db(db).collection('c').insertOne({ x: 1 }), code(13));
    await assert.rejects(c.db(`${db}_other`).collection('c').findOne({}), code(13));
    await assert.rejects(c.db('admin').command({ serverStatus: 1 }), code(13));
    const { authInfo } = await c.db('admin').command({ connectionStatus: 1, showPrivileges: true });
    assert.deepEqual(authInfo.authenticatedUsers, [{ user: `emu_reader_${run}`, db: 'admin' }]);
    assert.deepEqual(authInfo.authenticatedUserRoles, [{ role: 'read', db }]);
    const onDb = (authInfo.authenticatedUserPrivileges as { resource: { db?: string; collection?: string }; actions: string[] }[]).find(
      (p) => p.resource.db === db && p.resource.collection === '',
    );
    assert.ok(onDb, 'a privilege on the database');
    for (const a of ['find', 'changeStream', 'listCollections', 'listIndexes']) assert.ok(onDb.actions.includes(a), a);
    assert.ok(!onDb.actions.includes('insert'));
    // A user may always read its own user document; others need viewUser.
    const own = await c.db('admin').command({ usersInfo: `emu_reader_${run}` });
    assert.deepEqual(own.users.map((u: { user: string; roles: unknown }) => [u.user, u.roles]), [[`emu_reader_${run}`, [{ role: 'read', db }]]]);
    await assert.rejects(c.db('admin').command({ usersInfo: 'someone-else' }), code(13));
    // listDatabases without the action lists only the databases the user has privileges on.
    const { databases } = await c.db('admin').command({ listDatabases: 1, nameOnly: true });
    assert.deepEqual((databases as { name: string }[]).map((d) => d.name), [db]);
  });

  test('usersInfo: 1 and rolesInfo: 1 list a database\'s users and custom roles (not built-ins), with viewUser / viewRole', async () => {
    const role = `emu_role_${run}`;
    await t.admin.db(db).command({ createRole: role, privileges: [{ resource: { db, collection: 'c' }, actions: ['find'] }], roles: [] });
    const local = `emu_local_${run}`;
    await t.admin.db(db).command({ createUser: local, pwd: 'pw-local', roles: [{ role, db }] });
    try {
      const reader = await userClient(t, 'lister', [{ role: 'read', db }]);
      const users = await t.admin.db(db).command({ usersInfo: 1 });
      assert.deepEqual(users.users.map((u: { user: string; db: string; roles: unknown }) => [u.user, u.db, u.roles]), [[local, db, [{ role, db }]]]);
      const admins = await t.admin.db('admin').command({ usersInfo: 1 });
      assert.ok(admins.users.some((u: { user: string }) => u.user === `emu_lister_${run}`), 'admin users include the lister');
      const roles = await t.admin.db(db).command({ rolesInfo: 1 });
      assert.deepEqual(roles.roles.map((r: { role: string; db: string; isBuiltin: boolean }) => [r.role, r.db, r.isBuiltin]), [[role, db, false]]);
      const shown = await t.admin.db(db).command({ rolesInfo: 1, showPrivileges: true });
      assert.deepEqual(shown.roles[0].privileges, [{ resource: { db, collection: 'c' }, actions: ['find'] }]);
      // read grants neither viewUser nor viewRole (https://www.mongodb.com/docs/manual/reference/built-in-roles/#mongodb-authrole-read).
      await assert.rejects(reader.db(db).command({ usersInfo: 1 }), code(13));
      await assert.rejects(reader.db(db).command({ rolesInfo: 1 }), code(13));
    } finally {
      await t.admin.db(db).command({ dropUser: local }).catch(() => undefined);
      await t.admin.db(db).command({ dropRole: role }).catch(() => undefined);
    }
  });

  test('readWrite writes; a cluster-wide change stream needs readAnyDatabase', async () => {
    const rw = await userClient(t, 'rw', [{ role: 'readWrite', db }]);
    await rw.db(db).collection('c').updateOne({ _id: 3 as never }, { $set: { v: 3 } }, { upsert: true });
    await assert.rejects(rw.watch([], { maxAwaitTimeMS: 10 }).tryNext(), code(13));
    const any = await userClient(t, 'any', ['readAnyDatabase']);
    const stream = any.watch([], { maxAwaitTimeMS: 10 });
    assert.equal(await stream.tryNext(), null);
    await stream.close();
    await assert.rejects(any.db(db).collection('c').insertOne({ x: 1 }), code(13));
  });

  test('clusterMonitor: serverStatus and listDatabases, no data; root: everything', async () => {
    const mon = await userClient(t, 'mon', ['clusterMonitor']);
    assert.equal((await mon.db('admin').command({ serverStatus: 1 })).ok, 1);
    assert.ok((await mon.db('admin').command({ listDatabases: 1, nameOnly: true })).databases.some((d: { name: string }) => d.name === db));
    await assert.rejects(mon.db(db).collection('c').findOne({}), code(13));
    assert.equal((await t.admin.db('admin').command({ replSetGetStatus: 1 })).ok, 1);
  });

  test('mongodump and mongorestore (Go driver) authenticate with SCRAM-SHA-256 and least-privilege users', { skip: REAL_SERVER_URI ? 'emulator only (builds the tools)' : false, timeout: 300_000 }, async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    const name = (l: string) => `emu_${l}_${run}`;
    await t.admin.db('admin').command({ createUser: name('dumper'), pwd: 'pw1', roles: ['readAnyDatabase'] });
    await t.admin.db('admin').command({ createUser: name('restorer'), pwd: 'pw2', roles: [{ role: 'readWrite', db: `${db}_copy` }] });
    t.users.push(name('dumper'), name('restorer'));
    const dump = `"${goToolPath('mongodump')}" --uri '${t.uriAs(name('dumper'), 'pw1')}' --archive --db=${db}`;
    const restore = `"${goToolPath('mongorestore')}" --uri '${t.uriAs(name('restorer'), 'pw2')}' --archive --nsFrom='${db}.*' --nsTo='${db}_copy.*'`;
    await promisify(exec)(`set -o pipefail; ${dump} | ${restore}`, { shell: '/bin/bash' });
    assert.equal(await t.admin.db(`${db}_copy`).collection('c').countDocuments(), await t.admin.db(db).collection('c').countDocuments());
    // The same dump with a user that cannot read the database fails.
    await t.admin.db('admin').command({ createUser: name('nobody'), pwd: 'pw3', roles: [{ role: 'read', db: `${db}_other` }] });
    t.users.push(name('nobody'));
    await assert.rejects(promisify(exec)(`"${goToolPath('mongodump')}" --uri '${t.uriAs(name('nobody'), 'pw3')}' --archive=/dev/null --db=${db}`));
  });
});

describe('setUserWriteBlockMode (MongoDB 6.0+)', () => {
  for (const profile of ['mongodb-6.0', 'mongodb-7.0'] as const) {
    test(`${profile}: needs its action (backup, restore — not clusterManager); blocks user writes with 371 unless the user may bypass`, { skip: authSkip(profile) }, async () => {
      const t = await openAuthTarget(profile);
      const db = `emu_wb_${run}`;
      try {
        await t.admin.db(db).collection('c').insertOne({ _id: 0 as never });
        const rw = await userClient(t, `wbrw${profile.slice(-3, -2)}`, [{ role: 'readWrite', db }]);
        const manager = await userClient(t, `wbmgr${profile.slice(-3, -2)}`, ['clusterManager']);
        const backup = await userClient(t, `wbbak${profile.slice(-3, -2)}`, ['backup']);
        const restore = await userClient(t, `wbres${profile.slice(-3, -2)}`, ['restore']);
        const roleName = `emu_bypass_${run}${profile.slice(-3, -2)}`;
        await t.admin.db('admin').command({
          createRole: roleName,
          privileges: [{ resource: { cluster: true }, actions: ['setUserWriteBlockMode', 'bypassWriteBlockingMode'] }],
          roles: [],
        });
        const custom = await userClient(t, `wbcus${profile.slice(-3, -2)}`, [{ role: 'readWrite', db }, { role: roleName, db: 'admin' }]);

        await assert.rejects(rw.db('admin').command({ setUserWriteBlockMode: 1, global: true }), code(13));
        await assert.rejects(manager.db('admin').command({ setUserWriteBlockMode: 1, global: true }), code(13), 'clusterManager has no setUserWriteBlockMode');
        assert.equal((await backup.db('admin').command({ setUserWriteBlockMode: 1, global: true })).ok, 1);

        await assert.rejects(rw.db(db).collection('c').insertOne({ _id: 1 as never }), code(371));
        await assert.rejects(rw.db(db).collection('c').updateOne({ _id: 0 as never }, { $set: { x: 1 } }), code(371));
        await assert.rejects(rw.db(db).collection('c').deleteOne({ _id: 0 as never }), code(371));
        await assert.rejects(rw.db(db).createCollection('new'), code(371));
        assert.ok(await rw.db(db).collection('c').findOne({ _id: 0 as never }), 'reads still work');
        // restore (insert, bypassWriteBlockingMode), root and a user-defined role with the action write.
        await restore.db(db).collection('c').insertOne({ _id: 2 as never });
        await t.admin.db(db).collection('c').insertOne({ _id: 3 as never });
        await custom.db(db).collection('c').updateOne({ _id: 4 as never }, { $set: { x: 1 } }, { upsert: true });

        assert.equal((await custom.db('admin').command({ setUserWriteBlockMode: 1, global: false })).ok, 1);
        await rw.db(db).collection('c').insertOne({ _id: 5 as never });
        assert.equal(await t.admin.db(db).collection('c').countDocuments(), 5);
      } finally {
        await t.admin.db(db).dropDatabase().catch(() => undefined);
        if (REAL_SERVER_URI) await t.admin.db('admin').command({ dropRole: `emu_bypass_${run}${profile.slice(-3, -2)}` }).catch(() => undefined);
        await closeAuthTarget(t);
      }
    });
  }

  test('mongodb-5.0 has no setUserWriteBlockMode (59 CommandNotFound)', { skip: onProfile('mongodb-5.0') }, async () => {
    const emu = REAL_SERVER_URI ? undefined : await startMongoEmulator({ profile: 'mongodb-5.0' });
    const c = new MongoClient(REAL_SERVER_URI ?? emu!.uri, { serverSelectionTimeoutMS: 5000 });
    try {
      await assert.rejects(c.db('admin').command({ setUserWriteBlockMode: 1, global: true }), code(59));
    } finally {
      await c.close();
      await emu?.stop();
    }
  });

  test('without access control the block stops nobody (every client may bypass it)', { skip: REAL_SERVER_URI && (REAL_AUTH || REAL_SERVER_PROFILE !== 'mongodb-7.0') ? 'needs a mongodb-7.0 server without access control' : false }, async () => {
    // Not on the command's page; the server's authorization_session_impl.cpp grants the bypass
    // whenever auth is disabled. The migrator therefore never relies on the block on such a source.
    const emu = REAL_SERVER_URI ? undefined : await startMongoEmulator({ profile: 'mongodb-7.0' });
    const c = new MongoClient(REAL_SERVER_URI ?? emu!.uri, { serverSelectionTimeoutMS: 5000 });
    const db = `emu_wbnoauth_${run}`;
    try {
      await c.db('admin').command({ setUserWriteBlockMode: 1, global: true });
      await c.db(db).collection('c').insertOne({ _id: 1 as never });
      assert.equal(await c.db(db).collection('c').countDocuments(), 1);
    } finally {
      await c.db('admin').command({ setUserWriteBlockMode: 1, global: false }).catch(() => undefined);
      await c.db(db).dropDatabase().catch(() => undefined);
      await c.close();
      await emu?.stop();
    }
  });
});
