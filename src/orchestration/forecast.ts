/**
 * Load throughput over the last minute, and the retention forecast (issue #13, items 5 and 6).
 * Everything here is pure: state-store documents and numbers in, numbers and warnings out, so
 * `status` in any container, and preflight, compute the same answers.
 *
 * LOAD RATE. Samples come from the state store, not from one process's memory: every load unit
 * (`load_partitions`, written by whichever worker holds it) carries `startedAt`, `finishedAt` and,
 * while it runs, a few progress samples (`samples`: at most LOAD_UNIT_SAMPLES, about every
 * LOAD_UNIT_SAMPLE_MS, written by the lease holder only). A unit's progress over time is the
 * piecewise-linear curve through (startedAt, 0), its samples and (finishedAt, 1): the progress made
 * in the last minute is that curve's rise between now − 60 s and now, summed over the units, in
 * the units' estimated bytes (collStats sizes from the plan) and in documents. A finished unit
 * without samples counts pro rata over its run time (a unit that ran 10 min and finished 30 s ago
 * gives 5 % of its bytes to the last minute), not all at once.
 *
 * RETENTION. Capture writes every change since the resume point into the Kinesis stream while the
 * load runs; apply reads them only once the load is done. A record is lost once it is older than
 * the stream's retention (DescribeStreamSummary `RetentionPeriodHours`:
 * https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeStreamSummary.html). The
 * oldest unread record is as old as the time since the resume point (during the load) or the apply
 * lag (after it), and apply still has to read until it has caught up. The forecast requires
 *
 *     required = age of the oldest unread record now + load time left + catch-up time
 *     catch-up = backlog events / (apply rate − change rate)
 *
 * which is conservative: apply reads the oldest records first, so they are not waiting for the
 * whole catch-up; counting it in full leaves room for an apply slower than assumed. The apply
 * rate is measured once apply runs (applySamples over the last minute, else the average since the
 * load ended) and assumed (DEFAULT_APPLY_EVENTS_PER_SECOND) before; `applyRateBasis` says which.
 * margin = retention − required; a warning when margin < MARGIN_WARN_HOURS or < MARGIN_WARN_FRACTION
 * of the requirement. Preflight fails only when it is clearly impossible: the load alone, at
 * OPTIMISTIC_LOAD_BYTES_PER_SECOND, outlasts the retention.
 *
 * The source's change-stream history matters while capture lags behind the source (a stopped or
 * slow capture resumes from its checkpoint, which must still be in the history): MongoDB's is the
 * oplog window (first to last oplog entry,
 * https://www.mongodb.com/docs/manual/reference/method/rs.printReplicationInfo/); Amazon
 * DocumentDB's is the cluster parameter change_stream_log_retention_duration, 3 hours by default
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html#change_streams-modifying_log_retention),
 * which the migrator cannot read: it takes 3 h unless --source-change-stream-retention says
 * otherwise. A warning when capture lags by more than CAPTURE_LAG_WARN_FRACTION of that window.
 */
import type { LoadUnitDoc } from '../state/store.js';

const MiB = 1024 * 1024;

/** Assumed load rate before the load measured one: 5 MiB/s, a conservative figure for one mongodump|mongorestore pipe. */
export const DEFAULT_LOAD_BYTES_PER_SECOND = 5 * MiB;
/** "Clearly impossible": the load would outlast the retention even at this rate (preflight fails). */
export const OPTIMISTIC_LOAD_BYTES_PER_SECOND = 200 * MiB;
/** Assumed apply rate (events/s) for the catch-up when none was measured: a modest single-shard rate. */
export const DEFAULT_APPLY_EVENTS_PER_SECOND = 500;
/** DocumentDB's default change_stream_log_retention_duration (hours). */
export const DOCUMENTDB_DEFAULT_CHANGE_STREAM_RETENTION_HOURS = 3;
export const MARGIN_WARN_HOURS = 6;
export const MARGIN_WARN_FRACTION = 0.25;
export const CAPTURE_LAG_WARN_FRACTION = 0.5;
/** The throughput window of `status`. */
export const RATE_WINDOW_MS = 60_000;
/** Progress samples a running unit keeps (with LOAD_UNIT_SAMPLE_MS, about 80 s of history). */
export const LOAD_UNIT_SAMPLES = 8;
export const LOAD_UNIT_SAMPLE_MS = 10_000;

export interface LoadUnitSample {
  at: Date;
  /** Fraction of the unit done (0–1). */
  fraction: number;
  documents: number;
}

/** Appends a sample to a bounded list (kept when it is at least LOAD_UNIT_SAMPLE_MS newer than the last one): a unit's, or apply's (ApplySample). */
export function addSample<T extends { at: Date }>(samples: T[], s: T, force = false): T[] | null {
  const last = samples[samples.length - 1];
  if (!force && last && s.at.getTime() - last.at.getTime() < LOAD_UNIT_SAMPLE_MS) return null;
  return [...samples, s].slice(-LOAD_UNIT_SAMPLES);
}

const ms = (v: unknown): number | undefined => (v instanceof Date && !Number.isNaN(v.getTime()) ? v.getTime() : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The curve of a unit's progress: (time, fraction, documents) points in time order. */
function curve(u: LoadUnitDoc): { t: number; f: number; d: number }[] {
  const start = ms(u.startedAt);
  if (start === undefined) {
    // No start time (older documents): the unit counts whole at its finish.
    const end = ms(u.finishedAt);
    return u.state === 'done' && end !== undefined ? [{ t: end, f: 0, d: 0 }, { t: end, f: 1, d: num(u.documents) ?? 0 }] : [];
  }
  const pts = [{ t: start, f: 0, d: 0 }];
  const samples = Array.isArray(u.samples) ? u.samples : [];
  for (const s of samples) {
    const t = ms(s.at);
    const f = num(s.fraction);
    if (t === undefined || f === undefined || t < pts[pts.length - 1]!.t) continue;
    pts.push({ t, f: Math.min(1, Math.max(pts[pts.length - 1]!.f, f)), d: Math.max(pts[pts.length - 1]!.d, num(s.documents) ?? 0) });
  }
  const end = ms(u.finishedAt);
  if (u.state === 'done' && end !== undefined && end >= pts[pts.length - 1]!.t) {
    pts.push({ t: end, f: 1, d: Math.max(pts[pts.length - 1]!.d, num(u.documents) ?? 0) });
  }
  return pts;
}

/** Progress (fraction, documents) of a unit at time `t`: linear between points, flat after the last. */
export function progressAt(u: LoadUnitDoc, t: number): { fraction: number; documents: number } {
  const pts = curve(u);
  if (!pts.length || t <= pts[0]!.t) return { fraction: 0, documents: 0 };
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!;
    const b = pts[i]!;
    if (t <= b.t) {
      const k = b.t === a.t ? 1 : (t - a.t) / (b.t - a.t);
      return { fraction: a.f + (b.f - a.f) * k, documents: a.d + (b.d - a.d) * k };
    }
  }
  const last = pts[pts.length - 1]!;
  return { fraction: last.f, documents: last.d };
}

/** Estimated source bytes of a unit (collStats at plan time); a finished unit without one counts its archive bytes. */
export function unitBytes(u: LoadUnitDoc): number {
  return num(u.estimatedBytes) ?? (u.state === 'done' ? num(u.bytes) ?? 0 : 0);
}

export interface Throughput {
  /** Seconds the rate is measured over: the last minute, or less when the load started less than a minute ago. */
  windowSeconds: number;
  /** Estimated bytes and documents copied in the window. */
  bytes: number;
  documents: number;
  bytesPerSecond: number;
  documentsPerSecond: number;
}

/** What `units` copied over the last minute (see the header). Null when the window is empty. */
export function recentThroughput(units: LoadUnitDoc[], nowMs: number, sinceMs?: number, windowMs = RATE_WINDOW_MS): Throughput | null {
  const from = Math.max(nowMs - windowMs, sinceMs ?? -Infinity);
  const seconds = (nowMs - from) / 1000;
  if (!(seconds > 0)) return null;
  let bytes = 0;
  let documents = 0;
  for (const u of units) {
    if (u.kind === 'indexes') continue;
    const a = progressAt(u, from);
    const b = progressAt(u, nowMs);
    bytes += (b.fraction - a.fraction) * unitBytes(u);
    documents += b.documents - a.documents;
  }
  return {
    windowSeconds: Math.round(seconds * 10) / 10,
    bytes: Math.round(bytes),
    documents: Math.round(documents),
    bytesPerSecond: Math.round(bytes / seconds),
    documentsPerSecond: Math.round((documents / seconds) * 10) / 10,
  };
}

/** Estimated bytes left in `units`: the unfinished part of each (running units by their last sample). */
export function bytesLeft(units: LoadUnitDoc[], nowMs: number): number {
  let left = 0;
  for (const u of units) {
    if (u.kind === 'indexes' || u.state === 'done') continue;
    left += (1 - progressAt(u, nowMs).fraction) * unitBytes(u);
  }
  return Math.round(left);
}

/** Seconds to copy `left` bytes at `rate` bytes/s (null: no rate). */
export function etaFrom(left: number, rate: number | null | undefined): number | null {
  if (left <= 0) return 0;
  if (!rate || !(rate > 0)) return null;
  return Math.round(left / rate);
}

// ---------------------------------------------------------------------------------------------
// Apply's measured rate

/**
 * Events applied over all shards (the sum of the shards' checkpoint `counters.events`) at a time:
 * full-migrate records one about every LOAD_UNIT_SAMPLE_MS while apply runs (at most
 * LOAD_UNIT_SAMPLES, in the migration document's `applySamples`), so `status` in any container
 * measures how fast apply drains the stream over the last minute.
 */
export interface ApplySample {
  at: Date;
  events: number;
}

/** How the forecast's apply rate was obtained (`forecast.applyRateBasis` of `status --json`). */
export type ApplyRateBasis =
  /** From the samples of the last minute (applySamples). */
  | 'last-minute'
  /** Events applied since the load finished, per second until the newest checkpoint (no recent samples). */
  | 'since-apply-start'
  /** A figure the caller gave. */
  | 'given'
  /** Nothing measured: DEFAULT_APPLY_EVENTS_PER_SECOND. */
  | 'assumed';

export interface MeasuredApplyRate {
  eventsPerSecond: number;
  basis: ApplyRateBasis;
  /** Seconds the rate was measured over. */
  windowSeconds: number;
}

/**
 * Apply's rate over the last minute from its samples: from the oldest sample at most `windowMs`
 * before the newest to the newest. Null when there is no such pair at least LOAD_UNIT_SAMPLE_MS
 * apart, or the newest is older than three sampling intervals (nobody samples any more: apply or
 * full-migrate stopped, and an old rate says nothing), or the counter went backwards.
 */
export function applyRateFromSamples(samples: readonly ApplySample[] | undefined, nowMs: number, windowMs = RATE_WINDOW_MS): MeasuredApplyRate | null {
  const pts = (Array.isArray(samples) ? samples : [])
    .map((x) => ({ t: ms(x?.at), e: num(x?.events) }))
    .filter((x): x is { t: number; e: number } => x.t !== undefined && x.e !== undefined)
    .sort((a, b) => a.t - b.t);
  const newest = pts[pts.length - 1];
  if (!newest || nowMs - newest.t > 3 * LOAD_UNIT_SAMPLE_MS) return null;
  const oldest = pts.find((x) => x.t >= newest.t - windowMs)!;
  const span = newest.t - oldest.t;
  if (span < LOAD_UNIT_SAMPLE_MS || newest.e < oldest.e) return null;
  return { eventsPerSecond: (newest.e - oldest.e) / (span / 1000), basis: 'last-minute', windowSeconds: Math.round(span / 1000) };
}

/** The average since apply started (`sinceMs`: the load's end) until `untilMs` (the newest checkpoint): at least LOAD_UNIT_SAMPLE_MS of it, else null. */
export function applyRateSince(events: number, sinceMs: number | undefined, untilMs: number | undefined): MeasuredApplyRate | null {
  if (sinceMs === undefined || untilMs === undefined || !(events > 0)) return null;
  const span = untilMs - sinceMs;
  if (span < LOAD_UNIT_SAMPLE_MS) return null;
  return { eventsPerSecond: events / (span / 1000), basis: 'since-apply-start', windowSeconds: Math.round(span / 1000) };
}

/** A backlog apply drains within this many seconds at its measured rate counts as kept up with (see forecastRetention). */
export const KEEPING_UP_SECONDS = 60;

// ---------------------------------------------------------------------------------------------
// Retention forecast

export interface ForecastInput {
  /** Kinesis stream retention (hours); null when unknown. */
  streamRetentionHours: number | null;
  /** Age (seconds) of the oldest record apply has not read yet: time since the resume point during the load, the apply lag after it. */
  oldestUnreadSeconds: number;
  /** Load seconds left (0 once done); null: unknown. */
  loadSecondsLeft: number | null;
  /** The load is done: the backlog no longer grows until apply starts. */
  loadDone: boolean;
  /** Events captured and not applied yet. */
  backlogEvents: number;
  /** Changes per second on the source (measured; null: unknown, taken as 0 with a note). */
  changeEventsPerSecond: number | null;
  /** Apply's rate (events/s); null: DEFAULT_APPLY_EVENTS_PER_SECOND is assumed. */
  applyEventsPerSecond: number | null;
  /** How applyEventsPerSecond was measured and over how many seconds (absent: 'given'). */
  applyRateBasis?: ApplyRateBasis;
  applyRateWindowSeconds?: number | null;
  /** The source's change-stream history (hours) and where the figure comes from. */
  sourceHistoryHours: number | null;
  sourceHistoryBasis: string | null;
  /** How far capture's checkpoint is behind the source (seconds); null: unknown / not running. */
  captureLagSeconds: number | null;
}

export interface RetentionForecast {
  loadEtaSeconds: number | null;
  catchUpEtaSeconds: number | null;
  streamRetentionHours: number | null;
  requiredHours: number | null;
  marginHours: number | null;
  /** false: a warning below; null: cannot tell (retention or load time unknown). */
  ok: boolean | null;
  changeEventsPerSecond: number | null;
  applyEventsPerSecond: number;
  /** Where applyEventsPerSecond comes from: measured over the last minute, averaged since apply started, given, or assumed. */
  applyRateBasis: ApplyRateBasis;
  applyRateWindowSeconds: number | null;
  sourceHistoryHours: number | null;
  sourceHistoryBasis: string | null;
  captureLagSeconds: number | null;
  warnings: string[];
  /** What was assumed rather than measured. */
  assumptions: string[];
}

const h1 = (x: number) => Math.round(x * 10) / 10;
const hours = (s: number) => h1(s / 3600);

/** The forecast (see the header). */
export function forecastRetention(i: ForecastInput): RetentionForecast {
  const warnings: string[] = [];
  const assumptions: string[] = [];
  const change = i.changeEventsPerSecond;
  if (change === null) assumptions.push('rate of changes on the source unknown: catch-up taken as the current backlog only');
  const apply = i.applyEventsPerSecond ?? DEFAULT_APPLY_EVENTS_PER_SECOND;
  const basis: ApplyRateBasis = i.applyEventsPerSecond === null ? 'assumed' : (i.applyRateBasis ?? 'given');
  if (basis === 'assumed') assumptions.push(`apply rate assumed ${DEFAULT_APPLY_EVENTS_PER_SECOND} events/s`);
  const measured = basis === 'last-minute' || basis === 'since-apply-start';
  const c = change ?? 0;
  // Backlog when apply starts: what is there now plus what the source changes until the load ends.
  const backlog = i.backlogEvents + (i.loadDone ? 0 : c * (i.loadSecondsLeft ?? 0));
  let catchUp: number | null = null;
  if (apply > c) catchUp = Math.round(backlog / (apply - c));
  else if (measured && i.loadDone && apply > 0 && backlog <= apply * KEEPING_UP_SECONDS) {
    // A measured rate is what apply did, which is its capacity only while it had a backlog: an
    // apply that keeps up applies exactly what the source changes. A backlog it drains within
    // KEEPING_UP_SECONDS is kept up with; one it falls behind on grows past that and warns below.
    catchUp = Math.round(backlog / apply);
    assumptions.push(`apply keeps up with the source (its backlog is under ${KEEPING_UP_SECONDS} s of apply): its measured rate is the source's, not its capacity`);
  } else if (backlog > 0 || c > 0) {
    warnings.push(`the source changes about as fast as apply can write or faster (${h1(c)} vs ${h1(apply)} events/s): apply may never catch up; add stream shards and apply workers`);
  } else catchUp = 0;
  let required: number | null = null;
  let margin: number | null = null;
  let ok: boolean | null = null;
  if (i.loadSecondsLeft !== null && catchUp !== null) required = hours(i.oldestUnreadSeconds + i.loadSecondsLeft + catchUp);
  if (i.streamRetentionHours !== null && required !== null) {
    margin = h1(i.streamRetentionHours - required);
    ok = margin >= MARGIN_WARN_HOURS && margin >= MARGIN_WARN_FRACTION * required;
    if (!ok) {
      warnings.push(
        margin < 0
          ? `the Kinesis stream keeps records ${i.streamRetentionHours} h, but the load and catch-up need about ${required} h: records older than the retention are lost before apply reads them. Raise it: aws kinesis increase-stream-retention-period --retention-period-hours ${Math.min(8760, Math.ceil(required * 1.5) + MARGIN_WARN_HOURS)}`
          : `the Kinesis stream retention (${i.streamRetentionHours} h) leaves only ${margin} h of margin over the load and catch-up (about ${required} h). Consider aws kinesis increase-stream-retention-period --retention-period-hours ${Math.min(8760, Math.ceil(required * 1.5) + MARGIN_WARN_HOURS)}`,
      );
    }
  } else if (catchUp === null) ok = false;
  if (i.streamRetentionHours === null) assumptions.push('Kinesis stream retention unknown (recorded by full-migrate preflight)');
  if (i.sourceHistoryHours !== null && i.captureLagSeconds !== null && i.captureLagSeconds > CAPTURE_LAG_WARN_FRACTION * i.sourceHistoryHours * 3600) {
    warnings.push(
      `capture is ${hours(i.captureLagSeconds)} h behind the source, whose change-stream history is ${i.sourceHistoryHours} h (${i.sourceHistoryBasis ?? 'unknown basis'}): if capture falls further behind, its checkpoint leaves the history and the migration must restart. Make sure capture runs`,
    );
    ok = false;
  }
  return {
    loadEtaSeconds: i.loadSecondsLeft,
    catchUpEtaSeconds: catchUp,
    streamRetentionHours: i.streamRetentionHours,
    requiredHours: required,
    marginHours: margin,
    ok,
    changeEventsPerSecond: change === null ? null : h1(change),
    applyEventsPerSecond: h1(apply),
    applyRateBasis: basis,
    applyRateWindowSeconds: measured ? (i.applyRateWindowSeconds ?? null) : null,
    sourceHistoryHours: i.sourceHistoryHours,
    sourceHistoryBasis: i.sourceHistoryBasis,
    captureLagSeconds: i.captureLagSeconds,
    warnings,
    assumptions,
  };
}

/** Preflight's hard limit: the load alone outlasts the retention even at the optimistic rate. */
export function clearlyImpossible(estimatedBytes: number, retentionHours: number): boolean {
  return estimatedBytes / OPTIMISTIC_LOAD_BYTES_PER_SECOND / 3600 > retentionHours;
}
