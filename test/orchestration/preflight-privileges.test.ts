// Preflight reads each user's privileges (connectionStatus {showPrivileges: true}) and reports
// every shortfall against README "Privileges" at once, naming the role that grants it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { ROOT_ONLY, ROOT_USER, createMigratorUser, uriAs } from '../support/migrator-users.js';
import { runPreflight } from '../../src/orchestration/preflight.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';

describe('preflight privileges', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  const clients: MongoClient[] = [];
  const client = (uri: string) => {
    const c = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
    clients.push(c);
    return c;
  };
  before(async () => {
    [source, target] = await Promise.all([startMongoEmulator({ auth: ROOT_ONLY }), startMongoEmulator({ auth: ROOT_ONLY })]);
    const root = client(uriAs(source, ROOT_USER));
    await root.db('shop').collection('items').insertOne({ x: 1 });
    // The source user of old README advice: clusterManager for write blocking, no state-db write.
    await root.db('admin').command({ createUser: 'old', pwd: 'pw', roles: ['readAnyDatabase', 'clusterMonitor', 'clusterManager'] });
    await client(uriAs(target, ROOT_USER)).db('admin').command({ createUser: 'reader', pwd: 'pw', roles: [{ role: 'read', db: 'shop' }] });
  });
  after(async () => {
    for (const c of clients) await c.close();
    await Promise.all([source.stop(), target.stop()]);
  });

  const run = (src: MongoClient, dst: MongoClient) =>
    runPreflight({
      source: src,
      sourceUri: source.uri,
      target: dst,
      targetUri: target.uri,
      rules: new NamespaceRules({}),
      stateDb: 'migrator_state',
      requireEmptyTarget: false,
      enableChangeStreams: false,
    });

  test('missing roles on both sides: one problem per side naming each role; no write blocking is a warning', async () => {
    const report = await run(client(uriAs(source, { user: 'old', pwd: 'pw' })), client(uriAs(target, { user: 'reader', pwd: 'pw' })));
    const byCheck = Object.fromEntries(report.problems.map((p) => [p.check, p]));
    assert.deepEqual(Object.keys(byCheck).sort(), ['source privileges', 'target privileges'], JSON.stringify(report.problems));
    assert.match(byCheck['source privileges']!.problem, /no insert, update for the cutover marker in migrator_state\.cutover_markers \(role readWrite@migrator_state\)/);
    assert.match(byCheck['source privileges']!.remedy, /grantRolesToUser\('<user>', \[\{ role: 'readWrite', db: 'migrator_state' \}\]\)/);
    assert.match(byCheck['target privileges']!.problem, /no insert, update, remove.* for writing shop .*\(role readWrite@shop\).*\(role dbAdmin@shop\)/);
    assert.equal(report.warnings.length, 1);
    assert.match(report.warnings[0]!, /cannot block writes .*migratorWriteBlock@admin.*--writes-stopped/);
  });

  test('the README roles pass', async () => {
    const srcUri = await createMigratorUser(source, 'source');
    const dstUri = await createMigratorUser(target, 'target');
    const report = await run(client(srcUri), client(dstUri));
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.warnings, []);
  });
});
