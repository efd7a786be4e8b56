// `migrator status` end to end: state documents written with StateStore on the emulator, the real CLI reads them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { runMigrator } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import type { StatusReport } from '../../src/orchestration/status-report.js';
import { streamPosition as pos } from '../support/stream-positions.js';

const DB = 'status_cli_test';

describe('migrator status', { timeout: 120_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let store: StateStore;
  const base = () => ['--state-uri', emu.uri, '--state-db', DB];

  before(async () => {
    emu = await startMongoEmulator({ port: 0 });
    client = await MongoClient.connect(emu.uri);
    store = await StateStore.open({ client, dbName: DB });

    const nowS = Math.floor(Date.now() / 1000);
    await store.createMigration('m1', { config: { sourceUri: 'mongodb://admin:hunter2secret@source:27017' } });
    await store.setPhase('m1', 'INITIAL_LOAD');
    await store.setResumePoint('m1', pos(nowS - 100));
    await store.startLoad('m1', {
      'shop\u2024orders': { target: 'shop.orders', total: 200 },
      'shop\u2024users': { target: 'shop2.users', total: 10 },
    });
    await store.updateLoadProgress('m1', 'shop.orders', { dumped: 120, restored: 50 });
    await store.updateLoadProgress('m1', 'shop.users', { dumped: 10, restored: 10, done: true });
    await store.setPhase('m1', 'CATCHING_UP');

    const lastEventMs = Date.now() - 1_000;
    await store.saveCaptureCheckpoint('m1', pos(nowS - 1), { events: 100, markers: 0, bytes: 4096, lastEventAtMs: lastEventMs });
    const a = (await store.acquireLease('m1', 'shardId-000000000000', 'host-a:111', { ttlMs: 600_000 }))!;
    await store.saveApplyCheckpoint(a, {
      sequenceNumber: '49600000000000000000000000000000000000000000000000000001',
      position: pos(nowS - 8),
      counters: { events: 60, lastClusterTime: nowS - 8, lastWallTime: lastEventMs - 7_000, millisBehindLatest: 1500 },
    });
    const b = (await store.acquireLease('m1', 'shardId-000000000001', 'host-b:222', { ttlMs: 600_000 }))!;
    await store.saveApplyCheckpoint(b, {
      sequenceNumber: '49600000000000000000000000000000000000000000000000000002',
      position: pos(nowS - 5),
      counters: { events: 30, lastClusterTime: nowS - 5, lastWallTime: lastEventMs - 4_000, millisBehindLatest: 0 },
    });
    await store.recordError('m1', new MigratorError(ExitCode.TOOL_FAILED, 'mongorestore exited with 1 on mongodb://u:pw9876@t:1'));

    await store.createMigration('other');
  });
  after(async () => {
    await client?.close();
    await emu?.stop();
  });

  it('--json: phase, load %, capture/apply counters, lag, shard positions, no secrets', async () => {
    const r = await runMigrator(['status', '--json', ...base(), '--migration-id', 'm1']);
    assert.equal(r.exitCode, 0, r.stderr);
    const s = JSON.parse(r.stdout) as StatusReport;
    assert.equal(s.schemaVersion, 1);
    assert.equal(s.migrationId, 'm1');
    assert.equal(s.phase, 'CATCHING_UP');
    assert.equal(s.canCutover, false);
    assert.equal(s.load!.attempt, 1);
    assert.deepEqual(s.load!.namespaces.map((n) => [n.ns, n.target, n.restored, n.total, n.percent, n.done]), [
      ['shop.orders', 'shop.orders', 50, 200, 25, false],
      ['shop.users', 'shop2.users', 10, 10, 100, true],
    ]);
    assert.equal(s.load!.percent, 28.6);
    assert.equal(s.capture!.events, 100);
    assert.equal(s.capture!.bytes, 4096);
    assert.equal(s.apply.events, 90);
    assert.equal(s.apply.shards, 2);
    assert.deepEqual(s.lag, { events: 10, seconds: 4, basis: 'wallTime' });
    assert.deepEqual(
      s.shards.map((x) => [x.shardId, x.sequenceNumber, x.leaseOwner, x.leaseActive, x.millisBehindLatest, x.ended]),
      [
        ['shardId-000000000000', '49600000000000000000000000000000000000000000000000000001', 'host-a:111', true, 1500, false],
        ['shardId-000000000001', '49600000000000000000000000000000000000000000000000000002', 'host-b:222', true, 0, false],
      ],
    );
    assert.ok(s.resumePoint!.clusterTime!.t > 0);
    assert.equal(s.cutover, null);
    assert.equal(s.lastError!.exitCode, ExitCode.TOOL_FAILED);
    assert.equal(s.lastError!.phase, 'CATCHING_UP');
    assert.doesNotMatch(r.all, /hunter2secret|pw9876/);
  });

  it('canCutover in READY_FOR_CUTOVER until a cutover is requested; the request shows the writes-stopped wait', async () => {
    await store.setPhase('m1', 'READY_FOR_CUTOVER');
    const ready = JSON.parse((await runMigrator(['status', '--json', ...base(), '--migration-id', 'm1'])).stdout) as StatusReport;
    assert.equal(ready.canCutover, true);

    await store.requestCutover('m1');
    const r = await runMigrator(['status', '--json', ...base(), '--migration-id', 'm1']);
    const s = JSON.parse(r.stdout) as StatusReport;
    assert.equal(s.canCutover, false);
    assert.equal(s.cutover!.state, 'requested');
    assert.equal(s.cutover!.waitingForWritesStopped, true);
    assert.equal(s.cutover!.writesStopped, false);

    const text = await runMigrator(['status', ...base(), '--migration-id', 'm1']);
    assert.equal(text.exitCode, 0, text.stderr);
    for (const re of [
      /migration m1: READY_FOR_CUTOVER/,
      /can cut over: no \(a cutover is already in progress\)/,
      /initial load: running .*1\/2 collections, 60\/210 documents, 28\.6%/,
      /shop\.orders: 50\/200 25%/,
      /capture: 100 events captured/,
      /apply: 90 events applied over 2 shards/,
      /lag: 10 events, 4\.0s/,
      /shardId-000000000000: seq 4960\d+, 60 events, lease host-a:111 until/,
      /resume point: \d+,1/,
      /cutover: requested/,
      /waiting for --writes-stopped/,
      /last error \(CATCHING_UP, exit 11/,
    ]) {
      assert.match(text.stdout, re);
    }
    assert.doesNotMatch(text.all, /hunter2secret|pw9876/);
    await store.abortCutover('m1', 'test');
  });

  it('an unknown migration id exits 10 and lists the existing ids', async () => {
    const r = await runMigrator(['status', ...base(), '--migration-id', 'nope']);
    assert.equal(r.exitCode, ExitCode.STATE_CONFLICT);
    assert.match(r.stderr, /Unknown migration id 'nope' \(existing migrations: m1, other\)/);
    assert.equal(r.stdout, '');
  });

  it('--watch --json prints one JSON line per refresh and stops at COMPLETED', async () => {
    await store.setPhase('other', 'CUTTING_OVER');
    // COMPLETED only once the first refresh is out (a fixed delay raced the CLI's start-up under load).
    let completed: Promise<unknown> | undefined;
    const r = await runMigrator(['status', '--watch', '--json', '--interval', '200ms', ...base(), '--migration-id', 'other'], {
      timeoutMs: 60_000,
      onStdout: (chunk) => {
        if (!completed && chunk.includes('\n')) completed = store.setPhase('other', 'COMPLETED');
      },
    });
    await completed;
    assert.equal(r.exitCode, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as StatusReport);
    assert.ok(lines.length >= 2, `${lines.length} refreshes`);
    assert.equal(lines[0]!.phase, 'CUTTING_OVER');
    assert.equal(lines[lines.length - 1]!.phase, 'COMPLETED');
  });

  it('rejects a bad --interval with a usage error', async () => {
    const r = await runMigrator(['status', '--watch', '--interval', 'soon', ...base(), '--migration-id', 'm1']);
    assert.equal(r.exitCode, ExitCode.USAGE);
    assert.match(r.stderr, /Invalid --interval/);
  });
});
