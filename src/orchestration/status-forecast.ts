// The retention forecast section of `migrator status` (forecast.ts does the math).
import { DEFAULT_LOAD_BYTES_PER_SECOND, applyRateFromSamples, applyRateSince, forecastRetention, type MeasuredApplyRate, type RetentionForecast } from './forecast.js';
import type { CaptureStatus, LagStatus, LoadStatus, StatusInputs } from './status-types.js';
import { ms, num } from './status-values.js';

/**
 * The retention forecast of a migration that still needs its stream (forecast.ts): the load's
 * time left at the last minute's rate (else this attempt's average, else the estimated bytes at
 * DEFAULT_LOAD_BYTES_PER_SECOND), the source's rate of changes as capture measured it (events
 * since the resume point per second; else preflight's oplog figure), the stream retention and
 * the source's change-stream history recorded by preflight. Capture's lag behind the source is
 * read as how long no capture has held its lease (the checkpoint's age then); a running capture
 * counts as keeping up. Apply's rate, once the load is done: see measuredApplyRate.
 */
export function buildForecast(inputs: StatusInputs, load: LoadStatus | null, capture: CaptureStatus | null, lag: LagStatus, nowMs: number): RetentionForecast | null {
  const m = inputs.migration;
  if (m.phase === 'COMPLETED' || m.phase === 'ABORTED') return null;
  const fi = m.forecastInputs;
  const takenMs = ms(m.resumePoint?.takenAt);
  const loadDone = !load || load.done;
  // No load yet in CREATED / INITIAL_LOAD: its time is unknown until the plan exists (preflight forecasts it).
  let loadLeft: number | null = !load && (m.phase === 'CREATED' || m.phase === 'INITIAL_LOAD') ? null : 0;
  let assumedRate = false;
  if (!loadDone) {
    loadLeft = load.throughputEtaSeconds ?? load.etaSeconds;
    if (loadLeft === null && load.estimatedBytes > 0) {
      loadLeft = Math.round(load.estimatedBytesLeft / DEFAULT_LOAD_BYTES_PER_SECOND);
      assumedRate = true;
    }
  }
  const elapsed = takenMs !== undefined ? Math.max(0, (nowMs - takenMs) / 1000) : 0;
  const captured = capture?.events ?? 0;
  const change = capture && takenMs !== undefined && elapsed > 0 ? captured / elapsed : num(fi?.changeEventsPerSecond) ?? null;
  const checkpointMs = capture?.checkpointAt ? new Date(capture.checkpointAt).getTime() : undefined;
  const captureLag = capture && !capture.leaseActive && checkpointMs !== undefined ? Math.max(0, Math.round((nowMs - checkpointMs) / 1000)) : capture ? 0 : null;
  const apply = loadDone ? measuredApplyRate(inputs, nowMs) : null;
  const f = forecastRetention({
    streamRetentionHours: num(fi?.streamRetentionHours) ?? null,
    oldestUnreadSeconds: loadDone ? (lag.events === 0 ? 0 : lag.seconds ?? elapsed) : elapsed,
    loadSecondsLeft: loadLeft,
    loadDone,
    backlogEvents: lag.events,
    changeEventsPerSecond: change,
    applyEventsPerSecond: apply?.eventsPerSecond ?? null,
    ...(apply ? { applyRateBasis: apply.basis, applyRateWindowSeconds: apply.windowSeconds } : {}),
    sourceHistoryHours: num(fi?.sourceHistoryHours) ?? null,
    sourceHistoryBasis: typeof fi?.sourceHistoryBasis === 'string' ? fi.sourceHistoryBasis : null,
    captureLagSeconds: captureLag,
  });
  if (assumedRate) f.assumptions.push(`load rate assumed ${DEFAULT_LOAD_BYTES_PER_SECOND / 1024 / 1024} MiB/s (none measured yet)`);
  return f;
}

/**
 * How fast apply drains the stream, measured (null: nothing to measure yet; the forecast assumes
 * a rate and says so): over the last minute from the samples full-migrate records
 * (apply-rate-sampler.ts), else the average since apply started — the events the shards'
 * checkpoints count (apply reads nothing before the load is done, so all of them were applied
 * since the load's end, or since the resume point without a load) until the newest checkpoint.
 */
function measuredApplyRate(inputs: StatusInputs, nowMs: number): MeasuredApplyRate | null {
  const m = inputs.migration;
  const recent = applyRateFromSamples(m.applySamples, nowMs);
  if (recent) return recent;
  let events = 0;
  let newest: number | undefined;
  for (const s of inputs.shards) {
    events += num(s.checkpoint?.counters?.events) ?? 0;
    const at = ms(s.checkpoint?.at);
    if (at !== undefined) newest = Math.max(newest ?? 0, at);
  }
  const since = m.load ? ms(m.load.finishedAt) : ms(m.resumePoint?.takenAt);
  return applyRateSince(events, since, newest);
}
