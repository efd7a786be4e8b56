// buildStatusReport / cutover-wait helpers: pure computations on hand-made state documents.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Timestamp } from 'mongodb';
import {
  buildStatusReport,
  formatStatusReport,
  unknownMigrationError,
  type StatusInputs,
} from '../../src/orchestration/status-report.js';
import {
  assertCutoverRequestable,
  cutoverProgress,
  cutoverWaitError,
  cutoverWaitExitCode,
  settledOutcome,
} from '../../src/orchestration/cutover-wait.js';
import type { CutoverDoc, LoadUnitDoc, MigrationDoc, ShardDoc } from '../../src/state/store.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { MigratorError } from '../../src/util/errors.js';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const NOW = new Date(T0 + 60_000);

function migration(extra: Partial<MigrationDoc> = {}): MigrationDoc {
  const at = new Date(T0);
  return { _id: 'm1', phase: 'CATCHING_UP', createdAt: at, updatedAt: at, phaseChangedAt: at, ...extra };
}

function shard(shardId: string, counters: Record<string, number> | undefined, extra: Partial<ShardDoc> = {}): ShardDoc {
  const doc: ShardDoc = {
    _id: `m1/${shardId}`,
    migrationId: 'm1',
    shardId,
    lease: { owner: 'host-a:1', epoch: 2, expiresAt: new Date(NOW.getTime() + 20_000) },
    ...extra,
  };
  if (counters) {
    doc.checkpoint = { sequenceNumber: '4960', seqKey: '4960', counters, shardEnded: false, at: new Date(T0), epoch: 2 };
  }
  return doc;
}

const capture = (events: number, lastEventAtMs: number, ctSec: number) => ({
  _id: 'm1',
  ct: new Timestamp({ t: ctSec, i: 1 }),
  rt: { _data: '82' },
  pos: 'x',
  counters: { events, markers: 1, bytes: 2048, lastEventAtMs },
  updatedAt: new Date(T0),
});

describe('buildStatusReport', () => {
  it('computes lag by wall time against the newest applied event, load percentages and canCutover', () => {
    const inputs: StatusInputs = {
      migration: migration({
        load: {
          attempt: 1,
          startedAt: new Date(T0),
          collections: {
            'shop\u2024orders': { target: 'shop.orders', total: 200, restored: 50 },
            'shop\u2024users': { target: 'shop2.users', total: 10, dumped: 10, restored: 10, done: true },
          },
        },
      }),
      capture: capture(100, T0 + 10_000, T0 / 1000 + 10),
      shards: [
        shard('shardId-0', { events: 60, lastWallTime: T0 + 5_000, lastClusterTime: T0 / 1000 + 5, millisBehindLatest: 1200 }),
        shard('shardId-1', { events: 30, lastWallTime: T0 + 7_000, lastClusterTime: T0 / 1000 + 7, millisBehindLatest: -1 }),
      ],
      cutover: null,
    };
    const r = buildStatusReport(inputs, NOW);
    assert.equal(r.schemaVersion, 1);
    assert.equal(r.phase, 'CATCHING_UP');
    assert.equal(r.canCutover, false);
    assert.deepEqual(r.lag, { events: 10, seconds: 3, basis: 'wallTime' });
    assert.equal(r.apply.events, 90);
    assert.equal(r.apply.maxMillisBehindLatest, 1200);
    assert.equal(r.shards[1]!.millisBehindLatest, null, '-1 = unknown');
    assert.equal(r.shards[0]!.leaseActive, true);
    assert.deepEqual(
      r.load!.namespaces.map((n) => [n.ns, n.target, n.percent, n.done]),
      [['shop.orders', 'shop.orders', 25, false], ['shop.users', 'shop2.users', 100, true]],
    );
    assert.equal(r.load!.percent, 28.6);
    assert.equal(r.load!.done, false);
    const text = formatStatusReport(r);
    assert.match(text, /migration m1: CATCHING_UP/);
    assert.match(text, /shop\.users → shop2\.users: 10\/10 100% done/);
    assert.match(text, /lag: 10 events, 3\.0s \(by wallTime\)/);
  });

  it('falls back to clusterTime (resume point when nothing is applied), clamps negative lag, 0 when caught up', () => {
    const rp = { ct: new Timestamp({ t: T0 / 1000, i: 1 }), takenAt: new Date(T0) };
    const noWall = buildStatusReport(
      { migration: migration({ resumePoint: rp }), capture: capture(5, 0, T0 / 1000 + 42), shards: [], cutover: null },
      NOW,
    );
    assert.deepEqual(noWall.lag, { events: 5, seconds: 42, basis: 'clusterTime' });
    assert.deepEqual(noWall.resumePoint, { clusterTime: { t: T0 / 1000, i: 1 }, resumeToken: null, takenAt: new Date(T0).toISOString() });

    const ahead = buildStatusReport(
      { migration: migration(), capture: capture(5, T0, T0 / 1000), shards: [shard('s', { events: 9 })], cutover: null },
      NOW,
    );
    assert.deepEqual(ahead.lag, { events: 0, seconds: 0, basis: 'caught-up' }, 'apply counting broadcasts per shard never gives negative lag');

    const unknown = buildStatusReport({ migration: migration(), capture: null, shards: [shard('s', undefined)], cutover: null }, NOW);
    assert.equal(unknown.capture, null);
    assert.equal(unknown.shards[0]!.sequenceNumber, null);
    assert.equal(unknown.shards[0]!.events, 0);
    assert.equal(unknown.load, null);
  });

  it('reports cutover progress and the writes-stopped wait', () => {
    const c: CutoverDoc = {
      _id: 'm1', state: 'barrier-sent', requestedAt: new Date(T0), updatedAt: new Date(T0), barrierId: 'b1',
      reachedShards: ['shardId-0'],
    };
    const ready = migration({ phase: 'CUTTING_OVER' });
    const shards = [shard('shardId-0', { events: 1 }), shard('shardId-1', { events: 1 })];
    const r = buildStatusReport({ migration: ready, capture: null, shards, cutover: c }, NOW);
    assert.equal(r.cutover!.shardsReached, 1);
    assert.equal(r.cutover!.shardsTotal, 2);
    assert.equal(r.cutover!.waitingForWritesStopped, true);
    assert.equal(r.shards[0]!.reachedBarrier, true);
    assert.match(cutoverProgress(r).text, /shards reached the barrier 1\/2, waiting for --writes-stopped/);
    assert.match(formatStatusReport(r), /waiting for --writes-stopped/);

    const blocked = buildStatusReport({ migration: ready, capture: null, shards, cutover: { ...c, writesBlockedByMigrator: true } }, NOW);
    assert.equal(blocked.cutover!.waitingForWritesStopped, false);

    const readyNoCutover = buildStatusReport({ migration: migration({ phase: 'READY_FOR_CUTOVER' }), capture: null, shards, cutover: { ...c, state: 'aborted' } }, NOW);
    assert.equal(readyNoCutover.canCutover, true, 'an aborted cutover does not block a new one');
  });

  it('names the existing migrations for an unknown id', () => {
    const e = unknownMigrationError('nope', ['a', 'b']);
    assert.equal(e.exitCode, ExitCode.STATE_CONFLICT);
    assert.match(e.message, /Unknown migration id 'nope' \(existing migrations: a, b\)/);
  });
});

describe('load progress per collection from the load units', () => {
  const unit = (shardId: string, extra: Partial<LoadUnitDoc>): LoadUnitDoc => ({
    _id: `m1/${shardId}`,
    migrationId: 'm1',
    shardId,
    kind: 'range',
    seq: 0,
    sourceDb: 'shop',
    targetDb: 'shop',
    coll: 'items',
    target: 'shop.items',
    state: 'pending',
    attempts: 0,
    estimatedBytes: 100,
    lease: { owner: null, epoch: 0, expiresAt: new Date(0) },
    ...extra,
  });
  it('counts ranges done / running / pending (a dead worker\'s running range is pending), bytes, and an ETA from this attempt\'s rate', () => {
    const started = new Date(T0); // NOW is 60 s later
    const units = [
      unit('r1', { state: 'done', bytes: 150, finishedAt: new Date(T0 + 10_000) }),
      unit('r2', { state: 'done', bytes: 150, finishedAt: new Date(T0 + 20_000) }),
      unit('r3', { state: 'running', lease: { owner: 'h:1:a', epoch: 1, expiresAt: new Date(NOW.getTime() + 5_000) } }),
      unit('r4', { state: 'running', lease: { owner: 'h:2:b', epoch: 1, expiresAt: new Date(NOW.getTime() - 5_000) } }),
      unit('r5', {}),
      unit('ix', { kind: 'indexes', estimatedBytes: undefined }),
      unit('db', { kind: 'database', coll: undefined, target: undefined, collections: [{ coll: 'small', target: 'shop.small' }], state: 'done', bytes: 0, finishedAt: new Date(T0 + 1000) }),
    ];
    const m = migration({
      phase: 'INITIAL_LOAD',
      load: { attempt: 1, startedAt: started, collections: { 'shop\u2024items': { target: 'shop.items', restored: 40 }, 'shop\u2024small': { target: 'shop.small', restored: 5, total: 5, done: true } } },
    });
    const r = buildStatusReport({ migration: m, capture: null, shards: [], cutover: null, loadUnits: units }, NOW);
    const items = r.load!.namespaces.find((n) => n.ns === 'shop.items')!;
    assert.deepEqual(items.partitions, { total: 5, done: 2, running: 1, pending: 2 });
    assert.equal(items.bytes, 300);
    // 2 ranges of ~100 estimated bytes in 60 s; 3 unfinished ranges of ~100 B left → 90 s.
    assert.equal(items.etaSeconds, 90);
    assert.equal(items.percent, 40, 'by ranges when the document total is unknown');
    const small = r.load!.namespaces.find((n) => n.ns === 'shop.small')!;
    assert.equal(small.partitions, null, 'a whole collection has no ranges');
    assert.deepEqual(r.load!.units, { total: 7, done: 3, running: 1, pending: 3 });
    assert.equal(r.load!.etaSeconds, 90);
    const text = formatStatusReport(r);
    assert.match(text, /units: 3\/7 done, 1 running, 3 pending; 300 B copied, ETA 1m ?30s/);
    assert.match(text, /shop\.items: 40\/\? 40%, ranges 2\/5 \(1 running, 2 pending\), 300 B, .*ETA 1m ?30s/);
  });

  it('a plan in progress: throughput and ETA over the last minute, not since the start; the retention forecast warns with its margin', () => {
    const GiB = 1024 ** 3;
    const now = new Date(T0 + 30 * 60_000); // the load started 30 min ago
    const ago = (s: number) => new Date(now.getTime() - s * 1000);
    const live = { owner: 'h:1:a', epoch: 1, expiresAt: new Date(now.getTime() + 10_000) };
    const units = [
      // Fast at first: 10 GiB in the first 10 minutes…
      ...Array.from({ length: 10 }, (_, i) => unit(`f${i}`, { state: 'done', estimatedBytes: GiB, bytes: GiB, documents: 1000, startedAt: ago(1800), finishedAt: ago(1200) })),
      // …and now slow: one running range moved from 10 % to 15 % of 1 GiB in the last minute.
      unit('run', {
        state: 'running',
        lease: live,
        estimatedBytes: GiB,
        startedAt: ago(1200),
        samples: [
          { at: ago(70), fraction: 0.09, documents: 90 },
          { at: ago(60), fraction: 0.1, documents: 100 },
          { at: ago(0), fraction: 0.15, documents: 150 },
        ],
      }),
      ...Array.from({ length: 150 }, (_, i) => unit(`p${i}`, { estimatedBytes: GiB })),
    ];
    const m = migration({
      phase: 'INITIAL_LOAD',
      resumePoint: { ct: new Timestamp({ t: T0 / 1000, i: 1 }), takenAt: new Date(T0) },
      load: { attempt: 1, startedAt: new Date(T0), collections: { 'shop\u2024items': { target: 'shop.items', restored: 10_150 } } },
      forecastInputs: { streamRetentionHours: 24, measuredAt: new Date(T0) },
    });
    const inputs: StatusInputs = { migration: m, capture: capture(1800, now.getTime(), T0 / 1000 + 1800), captureLease: { migrationId: 'm1', shardId: 'capture', owner: 'c', epoch: 1, expiresAt: new Date(now.getTime() + 10_000), ttlMs: 30_000 }, shards: [], cutover: null, loadUnits: units };
    const r = buildStatusReport(inputs, now);
    const l = r.load!;
    const perSecond = Math.round((0.05 * GiB) / 60);
    assert.equal(l.throughput!.windowSeconds, 60);
    assert.equal(l.throughput!.bytesPerSecond, perSecond);
    assert.equal(l.throughput!.documents, 50);
    const left = Math.round(0.85 * GiB + 150 * GiB);
    assert.equal(l.estimatedBytesLeft, left);
    assert.equal(l.throughputEtaSeconds, Math.round(left / ((0.05 * GiB) / 60)));
    // The attempt's average (10 GiB in 30 min) would promise far less.
    assert.ok(l.etaSeconds! < l.throughputEtaSeconds! / 5, `${l.etaSeconds} vs ${l.throughputEtaSeconds}`);
    const items = l.namespaces.find((n) => n.ns === 'shop.items')!;
    assert.equal(items.throughput!.bytesPerSecond, perSecond);
    assert.equal(items.throughputEtaSeconds, l.throughputEtaSeconds);
    assert.deepEqual(items.partitions, { total: 161, done: 10, running: 1, pending: 150 });

    // ~50 h of load left on a 24 h stream: the forecast says so, with a negative margin.
    const f = r.forecast!;
    assert.equal(f.streamRetentionHours, 24);
    assert.equal(f.loadEtaSeconds, l.throughputEtaSeconds);
    assert.equal(f.changeEventsPerSecond, 1, '1800 events captured in the 30 min since the resume point');
    assert.ok(f.requiredHours! > 50, String(f.requiredHours));
    assert.ok(f.marginHours! < 0);
    assert.equal(f.ok, false);
    assert.match(f.warnings[0]!, /increase-stream-retention-period/);
    const text = formatStatusReport(r);
    assert.match(text, /last 1m0s: 51\.2 MiB \(50 documents\), 873\.8 KiB\/s; 150\.8 GiB of 161\.0 GiB estimated left, ETA/);
    assert.match(text, /retention forecast: WARNING; stream retention 24 h, load left .*, margin -\d+(\.\d)? h\n {2}WARNING: the Kinesis stream keeps records 24 h/);

    // A week of retention covers it.
    const week = buildStatusReport({ ...inputs, migration: { ...m, forecastInputs: { streamRetentionHours: 168, measuredAt: new Date(T0) } } }, now);
    assert.equal(week.forecast!.ok, true);
    assert.deepEqual(week.forecast!.warnings, []);
    assert.ok(week.forecast!.marginHours! > 100);
    assert.match(formatStatusReport(week), /retention forecast: ok; stream retention 168 h/);
    // Not for a finished migration.
    assert.equal(buildStatusReport({ ...inputs, migration: { ...m, phase: 'COMPLETED' } }, now).forecast, null);
  });

  it('the catch-up uses apply\'s measured rate: over the last minute from the recorded samples, else since the load ended; before, assumed; the basis is said', () => {
    // Load done 10 min before NOW; 30 000 events captured, 6 000 applied: a backlog of 24 000.
    const loadDone = { attempt: 1, startedAt: new Date(T0 - 3_600_000), finishedAt: new Date(NOW.getTime() - 600_000), collections: { 'a\u2024b': { target: 'a.b', total: 1, restored: 1, done: true } } };
    const base = {
      migration: migration({ load: loadDone, resumePoint: { ct: new Timestamp({ t: T0 / 1000 - 3600, i: 1 }), takenAt: new Date(T0 - 3_600_000) }, forecastInputs: { streamRetentionHours: 24, measuredAt: new Date(T0) } }),
      capture: { ...capture(30_000, NOW.getTime() - 1_000, NOW.getTime() / 1000 - 1), updatedAt: NOW },
      shards: [shard('shardId-0', { events: 6_000, lastWallTime: T0 - 3_000_000 }, {}), shard('shardId-1', { events: 0 }, {})],
      cutover: null,
    } satisfies StatusInputs;
    base.shards[0]!.checkpoint!.at = new Date(NOW.getTime() - 1_000);
    const withSamples = (samples: { at: Date; events: number }[]) => buildStatusReport({ ...base, migration: { ...base.migration, applySamples: samples } }, NOW);

    const recent = withSamples([
      { at: new Date(NOW.getTime() - 65_000), events: 0 },
      { at: new Date(NOW.getTime() - 52_000), events: 1_000 },
      { at: new Date(NOW.getTime() - 2_000), events: 6_000 },
    ]).forecast!;
    assert.equal(recent.applyRateBasis, 'last-minute');
    assert.equal(recent.applyRateWindowSeconds, 50);
    assert.equal(recent.applyEventsPerSecond, 100, '5 000 events over the last 50 s');
    // Changes: 30 000 events over the 3 660 s since the resume point (≈ 8.2/s); catch-up = 24 000 / (100 − 8.2).
    assert.ok(Math.abs(recent.catchUpEtaSeconds! - 24_000 / (100 - 30_000 / 3_660)) < 2, String(recent.catchUpEtaSeconds));
    assert.match(formatStatusReport(withSamples([{ at: new Date(NOW.getTime() - 52_000), events: 1_000 }, { at: new Date(NOW.getTime() - 2_000), events: 6_000 }])), /catch-up at 100 events\/s applied \(measured over the last 50\.0s\)/);

    // No recent samples (full-migrate not sampling): the average since the load ended, until the newest checkpoint.
    const since = withSamples([{ at: new Date(NOW.getTime() - 600_000), events: 0 }]).forecast!;
    assert.equal(since.applyRateBasis, 'since-apply-start');
    assert.equal(since.applyRateWindowSeconds, 599);
    assert.equal(since.applyEventsPerSecond, Math.round((6_000 / 599) * 10) / 10);

    // During the load apply does not run: assumed, and said so.
    const loading = buildStatusReport({ ...base, migration: { ...base.migration, phase: 'INITIAL_LOAD', load: { ...loadDone, finishedAt: undefined, collections: { 'a\u2024b': { target: 'a.b', total: 2, restored: 1 } } } } }, NOW).forecast!;
    assert.equal(loading.applyRateBasis, 'assumed');
    assert.ok(loading.assumptions.some((a) => /apply rate assumed/.test(a)));
  });
});

describe('cutover wait helpers', () => {
  const report = (phase: MigrationDoc['phase'], cutover: CutoverDoc | null, lastError?: MigrationDoc['lastError']) =>
    buildStatusReport({ migration: migration({ phase, lastError }), capture: null, shards: [], cutover }, NOW);
  const active: CutoverDoc = { _id: 'm1', state: 'requested', requestedAt: new Date(T0), updatedAt: new Date(T0), reachedShards: [] };

  it('accepts requests in CATCHING_UP, READY_FOR_CUTOVER, CUTTING_OVER only', () => {
    for (const p of ['CATCHING_UP', 'READY_FOR_CUTOVER', 'CUTTING_OVER'] as const) assertCutoverRequestable('m1', p);
    for (const p of ['CREATED', 'INITIAL_LOAD', 'COMPLETED', 'FAILED', 'ABORTED'] as const) {
      assert.throws(() => assertCutoverRequestable('m1', p), (e: unknown) => e instanceof MigratorError && e.exitCode === ExitCode.STATE_CONFLICT);
    }
  });

  it('maps outcomes to exit codes', () => {
    assert.equal(settledOutcome(report('CUTTING_OVER', active)), undefined);
    assert.equal(settledOutcome(report('COMPLETED', active)), 'completed');
    assert.equal(settledOutcome(report('FAILED', active)), 'failed');
    assert.equal(settledOutcome(report('READY_FOR_CUTOVER', { ...active, state: 'aborted' })), 'aborted');

    const err = { message: 'boom', at: new Date(T0 + 1000), phase: 'CUTTING_OVER' as const, exitCode: 7 };
    assert.equal(cutoverWaitExitCode({ kind: 'failed', report: report('FAILED', active, err), elapsedMs: 1 }), 7);
    assert.equal(cutoverWaitExitCode({ kind: 'failed', report: report('FAILED', active, { ...err, exitCode: undefined }), elapsedMs: 1 }), ExitCode.INTERNAL);
    const aborted = { ...active, state: 'aborted' as const, abortReason: 'by hand' };
    assert.equal(cutoverWaitExitCode({ kind: 'aborted', report: report('READY_FOR_CUTOVER', aborted), elapsedMs: 1 }), ExitCode.STATE_CONFLICT);
    assert.equal(cutoverWaitExitCode({ kind: 'aborted', report: report('READY_FOR_CUTOVER', aborted, err), elapsedMs: 1 }), 7);
    const stale = { ...err, at: new Date(T0 - 1000) };
    assert.equal(cutoverWaitExitCode({ kind: 'aborted', report: report('READY_FOR_CUTOVER', aborted, stale), elapsedMs: 1 }), ExitCode.STATE_CONFLICT, 'an error older than the request is not the cause');
    assert.equal(cutoverWaitExitCode({ kind: 'timeout', elapsedMs: 1 }), ExitCode.TIMEOUT);
    assert.equal(cutoverWaitExitCode({ kind: 'interrupted', elapsedMs: 1 }), ExitCode.INTERRUPTED);
    assert.equal(cutoverWaitError('m1', { kind: 'completed', elapsedMs: 1 }), null);
    assert.match(cutoverWaitError('m1', { kind: 'timeout', elapsedMs: 2000 })!.hint!, /continues in the background.*migrator status/);
  });
});
