// Preflight against emulators: a source failing over while it is checked is waited out, not
// reported as a problem for the operator to fix; a real problem still is.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { runPreflight } from '../../src/orchestration/preflight.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';

describe('preflight', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  before(async () => {
    [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    src = new MongoClient(source.uri, { appName: 'migrator' });
    dst = new MongoClient(target.uri, { appName: 'migrator' });
    await src.db('shop').collection('items').insertOne({ x: 1 });
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), target.stop()]);
  });

  const run = () =>
    runPreflight({
      source: src,
      sourceUri: source.uri,
      target: dst,
      targetUri: target.uri,
      rules: new NamespaceRules({}),
      stateDb: 'migrator_state',
      requireEmptyTarget: true,
      enableChangeStreams: false,
    });
  const failPoint = (mode: unknown, data: object) => src.db('admin').command({ configureFailPoint: 'failCommand', mode, data: { appName: 'migrator', ...data } });

  test('transient errors during the checks (change-stream probe, listing) are retried, not reported', async () => {
    await failPoint({ times: 3 }, { failCommands: ['aggregate', 'listDatabases'], errorCode: 91 });
    const report = await run();
    assert.deepEqual(report.problems, []);
    assert.equal(report.source?.changeStreams.usable, true);
    assert.deepEqual(report.namespaces.map((n) => `${n.db}.${n.coll}`), ['shop.items']);
  });

  test('a non-transient failure of the change-stream probe is a problem with its remedy', async () => {
    await failPoint({ times: 1 }, { failCommands: ['aggregate'], errorCode: 13, errmsg: 'not authorized' });
    const report = await run();
    assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
    assert.equal(report.problems[0]!.check, 'source change streams');
    assert.match(report.problems[0]!.remedy, /changeStream and find privileges/);
  });

  test('included time-series collections are a problem: change streams never report their writes', async () => {
    const ts = new MongoClient(source.uri);
    try {
      await ts.db('metrics').createCollection('cpu', { timeseries: { timeField: 't' } });
      const report = await run();
      assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
      assert.equal(report.problems[0]!.check, 'metrics.cpu: time-series collection');
      assert.match(report.problems[0]!.problem, /change streams do not report writes to time-series collections/);
      // The choice: leave it out, or copy it once.
      assert.match(report.problems[0]!.remedy, /--exclude 'metrics\.cpu'/);
      assert.match(report.problems[0]!.remedy, /--time-series=load-only/);
      const loadOnly = await runPreflight({
        source: src, sourceUri: source.uri, target: dst, targetUri: target.uri, rules: new NamespaceRules({}),
        stateDb: 'migrator_state', requireEmptyTarget: true, enableChangeStreams: false, timeSeries: 'load-only',
      });
      assert.deepEqual(loadOnly.problems, []);
      assert.deepEqual(loadOnly.compat?.loadOnly, ['metrics.cpu']);
      const excluded = await runPreflight({
        source: src, sourceUri: source.uri, target: dst, targetUri: target.uri, rules: new NamespaceRules({ exclude: ['metrics.cpu'] }),
        stateDb: 'migrator_state', requireEmptyTarget: true, enableChangeStreams: false,
      });
      assert.deepEqual(excluded.problems, []);
    } finally {
      await ts.db('metrics').dropDatabase();
      await ts.close();
    }
  });
});

describe('preflight with a sharded target', () => {
  test('lists pre-sharded target collections with their keys; unreadable shard keys are a problem naming the privilege', async () => {
    const [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator({ shardKeys: { 'shop.items': { region: 1 } } })]);
    const src = new MongoClient(source.uri);
    const dst = new MongoClient(target.uri, { appName: 'migrator' });
    try {
      await src.db('shop').collection('items').insertOne({ x: 1 });
      const run = () =>
        runPreflight({
          source: src, sourceUri: source.uri, target: dst, targetUri: target.uri, rules: new NamespaceRules({}),
          stateDb: 'migrator_state', requireEmptyTarget: true, enableChangeStreams: false,
        });
      const report = await run();
      assert.deepEqual(report.problems, []);
      assert.deepEqual(report.shardedTargets, [{ ns: 'shop.items', key: { region: 1 } }]);
      await dst.db('admin').command({ configureFailPoint: 'failCommand', mode: { times: 1 }, data: { appName: 'migrator', failCommands: ['find'], errorCode: 13, errmsg: 'not authorized on config' } });
      const refused = await run();
      assert.equal(refused.problems.length, 1, JSON.stringify(refused.problems));
      assert.equal(refused.problems[0]!.check, 'target shard keys');
      assert.match(refused.problems[0]!.remedy, /read on the config database/);
    } finally {
      await Promise.all([src.close(), dst.close()]);
      await Promise.all([source.stop(), target.stop()]);
    }
  });
});
