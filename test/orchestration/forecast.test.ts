// The forecast math (src/orchestration/forecast.ts): the load's rate over the last minute from the
// units' times and samples, and the retention forecast with its warnings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_APPLY_EVENTS_PER_SECOND,
  LOAD_UNIT_SAMPLES,
  KEEPING_UP_SECONDS,
  addSample,
  applyRateFromSamples,
  applyRateSince,
  bytesLeft,
  clearlyImpossible,
  etaFrom,
  forecastRetention,
  progressAt,
  recentThroughput,
  type ForecastInput,
} from '../../src/orchestration/forecast.js';
import type { LoadUnitDoc } from '../../src/state/store.js';
import { sourceChangeStreamRetentionHours } from '../../src/cli/commands/full-migrate.js';
import { UsageError } from '../../src/util/errors.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MiB = 1024 * 1024;

function unit(id: string, extra: Partial<LoadUnitDoc>): LoadUnitDoc {
  return {
    _id: `m/${id}`,
    migrationId: 'm',
    shardId: id,
    lease: { owner: null, epoch: 0, expiresAt: new Date(0) },
    kind: 'range',
    seq: 0,
    sourceDb: 'db',
    targetDb: 'db',
    coll: 'c',
    state: 'pending',
    attempts: 0,
    estimatedBytes: 100 * MiB,
    ...extra,
  };
}
const at = (secondsAgo: number) => new Date(NOW - secondsAgo * 1000);

describe('load rate over the last minute', () => {
  it('counts a finished unit pro rata over its run time, not all at once, and old units not at all', () => {
    const units = [
      // Ran 10 min, finished 30 s ago: 30/600 of it falls in the last minute.
      unit('a', { state: 'done', startedAt: at(630), finishedAt: at(30), documents: 6000 }),
      // Finished an hour ago: nothing in the last minute, however fast it was.
      unit('b', { state: 'done', startedAt: at(3700), finishedAt: at(3600), documents: 6000, estimatedBytes: 10_000 * MiB }),
    ];
    const t = recentThroughput(units, NOW)!;
    assert.equal(t.windowSeconds, 60);
    assert.equal(t.bytes, Math.round(100 * MiB * (30 / 600)));
    assert.equal(t.documents, 300);
    assert.equal(t.bytesPerSecond, Math.round((100 * MiB * (30 / 600)) / 60));
  });

  it('a running unit counts by its samples; without samples it counts nothing until it finishes', () => {
    const running = unit('r', {
      state: 'running',
      startedAt: at(120),
      samples: [
        { at: at(60), fraction: 0.2, documents: 200 },
        { at: at(0), fraction: 0.5, documents: 500 },
      ],
    });
    const bare = unit('s', { state: 'running', startedAt: at(120) });
    const t = recentThroughput([running, bare], NOW)!;
    assert.equal(t.bytes, Math.round(0.3 * 100 * MiB));
    assert.equal(t.documents, 300);
    assert.deepEqual(progressAt(running, NOW - 90_000), { fraction: 0.1, documents: 100 });
    // Left: the running unit's unfinished 50 % and all of the bare one.
    assert.equal(bytesLeft([running, bare], NOW), Math.round(0.5 * 100 * MiB + 100 * MiB));
    assert.equal(etaFrom(bytesLeft([running, bare], NOW), t.bytesPerSecond), Math.round((150 * MiB) / Math.round((0.3 * 100 * MiB) / 60)));
  });

  it('a load younger than a minute is measured over its own time, and no rate means no ETA', () => {
    const u = unit('a', { state: 'done', startedAt: at(20), finishedAt: at(10) });
    const t = recentThroughput([u], NOW, NOW - 20_000)!;
    assert.equal(t.windowSeconds, 20);
    assert.equal(t.bytesPerSecond, Math.round((100 * MiB) / 20));
    assert.equal(etaFrom(100, 0), null);
    assert.equal(etaFrom(0, null), 0);
  });

  it('keeps a bounded number of samples, about ten seconds apart', () => {
    let samples: { at: Date; fraction: number; documents: number }[] = [];
    for (let i = 0; i < 100; i++) {
      const next = addSample(samples, { at: new Date(NOW + i * 5_000), fraction: i / 100, documents: i });
      if (next) samples = next;
    }
    assert.equal(samples.length, LOAD_UNIT_SAMPLES);
    assert.ok(samples.every((s, i) => i === 0 || s.at.getTime() - samples[i - 1]!.at.getTime() >= 10_000));
  });
});

const base: ForecastInput = {
  streamRetentionHours: 24,
  oldestUnreadSeconds: 0,
  loadSecondsLeft: 3600,
  loadDone: false,
  backlogEvents: 0,
  changeEventsPerSecond: 10,
  applyEventsPerSecond: 1000,
  sourceHistoryHours: null,
  sourceHistoryBasis: null,
  captureLagSeconds: null,
};

describe('retention forecast', () => {
  it('a short load on a 24 h stream is fine, with its margin in hours', () => {
    const f = forecastRetention(base);
    // Backlog at the load's end: 10/s × 3600 s = 36 000 events, caught up at 990/s.
    assert.equal(f.catchUpEtaSeconds, Math.round(36_000 / 990));
    assert.equal(f.requiredHours, Math.round(((3600 + 36) / 3600) * 10) / 10);
    assert.equal(f.marginHours, Math.round((24 - f.requiredHours!) * 10) / 10);
    assert.equal(f.ok, true);
    assert.deepEqual(f.warnings, []);
  });

  it('warns when the margin is under 6 h (or a quarter of the need), and says what to run when the retention is too short', () => {
    const tight = forecastRetention({ ...base, loadSecondsLeft: 19 * 3600 });
    assert.equal(tight.ok, false);
    assert.ok(tight.marginHours! > 0 && tight.marginHours! < 6, String(tight.marginHours));
    assert.match(tight.warnings[0]!, /leaves only .* h of margin/);
    const over = forecastRetention({ ...base, loadSecondsLeft: 30 * 3600 });
    assert.equal(over.ok, false);
    assert.ok(over.marginHours! < 0);
    assert.match(over.warnings[0]!, /records older than the retention are lost.*increase-stream-retention-period --retention-period-hours \d+/);
    // A long stream: the same load is fine.
    assert.equal(forecastRetention({ ...base, loadSecondsLeft: 30 * 3600, streamRetentionHours: 168 }).ok, true);
  });

  it('counts the time the oldest unread record has already waited', () => {
    const f = forecastRetention({ ...base, oldestUnreadSeconds: 20 * 3600, loadSecondsLeft: 0, loadDone: true, backlogEvents: 1000 });
    assert.ok(f.requiredHours! >= 20);
    assert.equal(f.ok, false);
  });

  it('changes faster than apply can write: no catch-up time, a warning', () => {
    const f = forecastRetention({ ...base, changeEventsPerSecond: 2000 });
    assert.equal(f.catchUpEtaSeconds, null);
    assert.equal(f.ok, false);
    assert.match(f.warnings.join('\n'), /apply may never catch up/);
  });

  it('states its assumptions: apply rate and an unknown change rate', () => {
    const f = forecastRetention({ ...base, applyEventsPerSecond: null, changeEventsPerSecond: null });
    assert.equal(f.applyEventsPerSecond, DEFAULT_APPLY_EVENTS_PER_SECOND);
    assert.equal(f.assumptions.length, 2);
    assert.equal(f.ok, true);
  });

  it('warns when capture lags by more than half the source change-stream history (DocumentDB: 3 h by default)', () => {
    const ok = forecastRetention({ ...base, sourceHistoryHours: 3, sourceHistoryBasis: 'DocumentDB default', captureLagSeconds: 60 });
    assert.equal(ok.ok, true);
    const late = forecastRetention({ ...base, sourceHistoryHours: 3, sourceHistoryBasis: 'DocumentDB default', captureLagSeconds: 2 * 3600 });
    assert.equal(late.ok, false);
    assert.match(late.warnings.join('\n'), /capture is 2 h behind the source, whose change-stream history is 3 h \(DocumentDB default\)/);
  });

  it('unknown retention: cannot tell, said so', () => {
    const f = forecastRetention({ ...base, streamRetentionHours: null });
    assert.equal(f.ok, null);
    assert.equal(f.marginHours, null);
    assert.ok(f.assumptions.some((a) => /retention unknown/.test(a)));
  });

  it('clearly impossible only when even 200 MiB/s outlasts the retention', () => {
    assert.equal(clearlyImpossible(10 * 1024 ** 4, 24), false); // 10 TiB at 200 MiB/s ≈ 14.6 h
    assert.equal(clearlyImpossible(20 * 1024 ** 4, 24), true); // ≈ 29 h
  });
});

describe('apply rate measured from the state store', () => {
  const at = (s: number) => new Date(NOW + s * 1000);

  it('over the last minute from the samples: the oldest within 60 s of the newest to the newest', () => {
    const samples = [
      { at: at(-90), events: 0 },
      { at: at(-60), events: 1_000 },
      { at: at(-30), events: 31_000 },
      { at: at(-5), events: 61_000 },
    ];
    // -60 s … -5 s: 60 000 events in 55 s (the sample 90 s old is outside the window).
    assert.deepEqual(applyRateFromSamples(samples, NOW), { eventsPerSecond: 60_000 / 55, basis: 'last-minute', windowSeconds: 55 });
  });

  it('no rate from one sample, samples under 10 s apart, stale samples (nobody samples any more), or a counter that went back', () => {
    assert.equal(applyRateFromSamples(undefined, NOW), null);
    assert.equal(applyRateFromSamples([{ at: at(-5), events: 10 }], NOW), null);
    assert.equal(applyRateFromSamples([{ at: at(-9), events: 0 }, { at: at(-1), events: 10 }], NOW), null);
    assert.equal(applyRateFromSamples([{ at: at(-100), events: 0 }, { at: at(-40), events: 10_000 }], NOW), null, 'newest sample 40 s old: stale');
    assert.equal(applyRateFromSamples([{ at: at(-30), events: 500 }, { at: at(-5), events: 10 }], NOW), null);
    // Malformed samples (another version's document) are ignored, not thrown on.
    assert.equal(applyRateFromSamples([{ at: 'x', events: 1 } as never, { at: at(-5), events: 10 }], NOW), null);
  });

  it('else the average since apply started (the load\'s end) until the newest checkpoint', () => {
    assert.deepEqual(applyRateSince(120_000, NOW - 600_000, NOW - 0), { eventsPerSecond: 200, basis: 'since-apply-start', windowSeconds: 600 });
    assert.equal(applyRateSince(0, NOW - 600_000, NOW), null, 'nothing applied: nothing measured');
    assert.equal(applyRateSince(100, NOW - 5_000, NOW), null, 'under 10 s');
    assert.equal(applyRateSince(100, undefined, NOW), null);
  });

  it('the forecast uses the measured rate and says which basis; before apply runs the rate is assumed', () => {
    const done = { ...base, loadSecondsLeft: 0, loadDone: true, backlogEvents: 600_000, changeEventsPerSecond: 100 };
    const measured = forecastRetention({ ...done, applyEventsPerSecond: 300, applyRateBasis: 'last-minute', applyRateWindowSeconds: 60 });
    assert.equal(measured.applyRateBasis, 'last-minute');
    assert.equal(measured.applyRateWindowSeconds, 60);
    assert.equal(measured.catchUpEtaSeconds, 600_000 / (300 - 100));
    assert.ok(!measured.assumptions.some((a) => /apply rate assumed/.test(a)));
    const assumed = forecastRetention({ ...done, applyEventsPerSecond: null });
    assert.equal(assumed.applyRateBasis, 'assumed');
    assert.equal(assumed.applyRateWindowSeconds, null);
    assert.equal(assumed.catchUpEtaSeconds, Math.round(600_000 / (DEFAULT_APPLY_EVENTS_PER_SECOND - 100)));
    assert.ok(assumed.assumptions.some((a) => /apply rate assumed/.test(a)));
    assert.equal(forecastRetention(base).applyRateBasis, 'given');
  });

  it('a measured apply that keeps up (rate = the source\'s, small backlog) is not "never catches up"; a growing backlog still warns', () => {
    const keeping = forecastRetention({ ...base, loadSecondsLeft: 0, loadDone: true, backlogEvents: 500, changeEventsPerSecond: 100, applyEventsPerSecond: 100, applyRateBasis: 'last-minute', applyRateWindowSeconds: 60 });
    assert.equal(keeping.catchUpEtaSeconds, 5);
    assert.equal(keeping.ok, true);
    assert.deepEqual(keeping.warnings, []);
    assert.ok(keeping.assumptions.some((a) => /keeps up/.test(a)));
    const behind = forecastRetention({ ...base, loadSecondsLeft: 0, loadDone: true, backlogEvents: 100 * KEEPING_UP_SECONDS + 1, changeEventsPerSecond: 100, applyEventsPerSecond: 100, applyRateBasis: 'last-minute', applyRateWindowSeconds: 60 });
    assert.equal(behind.catchUpEtaSeconds, null);
    assert.match(behind.warnings.join('\n'), /apply may never catch up/);
  });
});

describe('--source-change-stream-retention', () => {
  it('takes a duration in hours; a bad one is a usage error naming the option', () => {
    assert.equal(sourceChangeStreamRetentionHours({}), undefined);
    assert.equal(sourceChangeStreamRetentionHours({ 'source-change-stream-retention': '24h' }), 24);
    assert.equal(sourceChangeStreamRetentionHours({ 'source-change-stream-retention': '90m' }), 1.5);
    assert.throws(() => sourceChangeStreamRetentionHours({ 'source-change-stream-retention': 'lots' }), (e: unknown) => e instanceof UsageError && /--source-change-stream-retention/.test(e.message));
  });
});
