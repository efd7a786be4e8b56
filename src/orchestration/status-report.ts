/**
 * `migrator status`: the state of one migration, computed from the state-store documents.
 *
 * `buildStatusReport` is pure (documents + clock in, plain JSON-able report out); `formatStatusReport`
 * renders it for people. `readStatusInputs` / `requireMigration` are the only I/O here: they read
 * the documents from a StateStore.
 *
 * JSON schema of `migrator status --json` (schemaVersion 1; fields are only ever added; times are
 * ISO-8601 strings, absent values are null, never omitted):
 *
 *   schemaVersion     1
 *   migrationId       string
 *   phase             CREATED | INITIAL_LOAD | CATCHING_UP | READY_FOR_CUTOVER | CUTTING_OVER |
 *                     COMPLETED | FAILED | ABORTED
 *   canCutover        boolean: phase READY_FOR_CUTOVER and no active (requested/barrier-sent) cutover
 *   createdAt, updatedAt, phaseChangedAt   time
 *   generatedAt       time the report was computed
 *   resumePoint       null | { clusterTime: {t, i}, resumeToken: object|null (relaxed EJSON), takenAt }
 *   load              null | { attempt, startedAt, finishedAt|null, done, collections: count,
 *                     collectionsDone, totalDocuments, restoredDocuments, percent (0-100, 1 decimal),
 *                     namespaces: [{ ns, target, total|null, dumped|null, restored|null, done, percent|null,
 *                     bytes|null (archive bytes copied by its finished ranges), partitions|null (collections
 *                     split into _id ranges: { total, done, running, pending }; while the load runs),
 *                     etaSeconds|null, loadOnly? (true: a time-series collection copied once, not kept in sync) }],
 *                     units: { total, done, running, pending } (the load's units: database pipes, ranges,
 *                     index builds; running = leased by a live worker), bytes (archive bytes of finished
 *                     units), etaSeconds|null (estimated bytes of the unfinished ranges at this attempt's
 *                     rate in estimated bytes of finished ranges; null before a range finished in it),
 *                     estimatedBytes (collStats bytes of all units), estimatedBytesLeft (of their unfinished
 *                     part), throughput|null ({ windowSeconds, bytes, documents, bytesPerSecond, documentsPerSecond }:
 *                     copied over the last minute, from the units' start/finish times and the lease holders'
 *                     progress samples; forecast.ts), throughputEtaSeconds|null (estimatedBytesLeft at that rate);
 *                     each namespace split into ranges also has estimatedBytes, throughput, throughputEtaSeconds;
 *                     indexes built after data: load.indexes and load.namespaces[].indexes (index-progress.ts) }
 *   capture           null | { events, markers, bytes, lastEventAt|null, clusterTime: {t,i}|null, checkpointAt, leaseOwner|null, leaseActive }
 *   apply             { events (sum over shards), shards, shardsEnded, lastClusterTime (seconds)|null,
 *                     lastAppliedAt|null (wall time of the newest applied event), maxMillisBehindLatest|null,
 *                     stalledShards (shards whose lease holder reports no target write acknowledged for a while) }
 *   lag               { events: max(0, capture.events - apply.events), seconds: number|null,
 *                     basis: 'caught-up' | 'wallTime' | 'clusterTime' | null }
 *   shards            [{ shardId, sequenceNumber|null, leaseOwner|null, leaseEpoch, leaseExpiresAt|null,
 *                     leaseActive, events, lastClusterTime|null, lastAppliedAt|null,
 *                     millisBehindLatest|null, ended, checkpointAt|null, reachedBarrier,
 *                     stalledSince|null (set while the shard's active lease holder has work in hand and the
 *                     target acknowledges none of it) }]
 *   cutover           null | { state: requested|barrier-sent|completed|aborted, requestedAt, updatedAt,
 *                     barrierId|null, barrierSentAt|null, shardsReached, shardsTotal, reachedShards: [],
 *                     writesStopped, writesBlockedByMigrator, waitingForWritesStopped,
 *                     abortReason|null, abortedAt|null, completedAt|null }
 *   lastError         null | { message, at, phase, exitCode|null }
 *   ttlHeld           [{ target, name, originalExpireAfterSeconds, heldSince }]: TTL indexes the migration
 *                     holds on the target (expireAfterSeconds 2147483647 until the cutover restores the
 *                     original; src/apply/ttl-hold.ts); [] when none is held
 *   forecast          null (COMPLETED, ABORTED) | { loadEtaSeconds|null, catchUpEtaSeconds|null,
 *                     streamRetentionHours|null, requiredHours|null, marginHours|null, ok: boolean|null (null:
 *                     cannot tell), changeEventsPerSecond|null, applyEventsPerSecond, sourceHistoryHours|null,
 *                     sourceHistoryBasis|null, captureLagSeconds|null, warnings: [string], assumptions: [string] }:
 *                     whether the Kinesis retention covers the load plus the catch-up (forecast.ts; README
 *                     "Retention forecast")
 *
 * Lag: `lag.events` compares the capture checkpoint's event count with the sum of the shards'
 * applied-event counters. Broadcast envelopes (DDL, cutover barriers) count once in capture and once
 * per shard in apply, so on a multi-shard stream the event lag can read a little low (it never goes
 * below 0). `lag.seconds` is 0 when `lag.events` is 0; otherwise it is the capture's last event wall
 * time minus the newest applied event's wall time (basis `wallTime`), else the capture checkpoint's
 * clusterTime minus the newest applied clusterTime (or the resume point's, when nothing is applied
 * yet; basis `clusterTime`), else null.
 */
import { BSON, type Document } from 'mongodb';
import type {
  CaptureCheckpointDoc,
  CutoverDoc,
  LoadUnitDoc,
  MigrationDoc,
  MigrationPhase,
  ShardDoc,
  ShardLease,
  StateStore,
  TtlHoldDoc,
} from '../state/store.js';
import { HELD_EXPIRE_AFTER_SECONDS } from '../apply/ttl-hold.js';
import { activeTtlHolds, restoreCommandText } from './ttl.js';
import { loadNs } from '../state/store.js';
import { formatLoadIndexes, formatNamespaceIndexes, loadIndexStatus, namespaceIndexStatus, type LoadIndexStatus, type NamespaceIndexStatus } from './index-progress.js';
import {
  DEFAULT_LOAD_BYTES_PER_SECOND,
  bytesLeft,
  etaFrom,
  forecastRetention,
  recentThroughput,
  unitBytes,
  type RetentionForecast,
  type Throughput,
} from './forecast.js';
import { formatDuration } from '../util/duration.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

export const STATUS_SCHEMA_VERSION = 1;

/** Phases after which nothing changes any more (`status --watch` stops there). */
export const TERMINAL_PHASES: readonly MigrationPhase[] = ['COMPLETED', 'FAILED', 'ABORTED'];

export interface StatusInputs {
  migration: MigrationDoc;
  capture: CaptureCheckpointDoc | null;
  shards: ShardDoc[];
  cutover: CutoverDoc | null;
  /** The capture lease (which process is the active capture), when one was ever taken. */
  captureLease?: ShardLease | null;
  /** TTL indexes held on the target (restored ones included; the report keeps those not restored). */
  ttlHolds?: TtlHoldDoc[];
  /** The initial load's units (state store `load_partitions`). */
  loadUnits?: LoadUnitDoc[];
}

export interface TtlHeldStatus {
  /** Target namespace. */
  target: string;
  name: string;
  originalExpireAfterSeconds: number;
  heldSince: string | null;
}

export interface ClusterTimeJson {
  t: number;
  i: number;
}

export interface LoadNamespaceStatus {
  ns: string;
  target: string;
  total: number | null;
  dumped: number | null;
  restored: number | null;
  done: boolean;
  percent: number | null;
  /** A time-series collection copied once (--time-series=load-only): not kept in sync. */
  loadOnly?: boolean;
  bytes: number | null;
  partitions: UnitCounts | null;
  etaSeconds: number | null;
  /** Partitioned collections: estimated bytes (collStats), copied over the last minute, ETA at that rate. */
  estimatedBytes: number | null;
  throughput: Throughput | null;
  throughputEtaSeconds: number | null;
  /** Indexes built after its data (index-progress.ts); null when none are. */
  indexes: NamespaceIndexStatus | null;
}

export interface UnitCounts {
  total: number;
  done: number;
  running: number;
  pending: number;
}

export interface LoadStatus {
  attempt: number;
  startedAt: string | null;
  finishedAt: string | null;
  done: boolean;
  collections: number;
  collectionsDone: number;
  totalDocuments: number;
  restoredDocuments: number;
  percent: number;
  namespaces: LoadNamespaceStatus[];
  units: UnitCounts;
  bytes: number;
  etaSeconds: number | null;
  /** Estimated source bytes of all units (collStats at plan time) and of their unfinished part. */
  estimatedBytes: number;
  estimatedBytesLeft: number;
  /** Copied over the last minute (forecast.ts recentThroughput), and the ETA at that rate. */
  throughput: Throughput | null;
  throughputEtaSeconds: number | null;
  /** Indexes built after data, over all collections (index-progress.ts). */
  indexes: LoadIndexStatus;
}

export interface CaptureStatus {
  events: number;
  markers: number;
  bytes: number;
  lastEventAt: string | null;
  clusterTime: ClusterTimeJson | null;
  checkpointAt: string | null;
  /** The active capture process (lease owner) and whether its lease is current; others stand by. */
  leaseOwner: string | null;
  leaseActive: boolean;
}

export interface ApplyStatusSummary {
  events: number;
  shards: number;
  shardsEnded: number;
  lastClusterTime: number | null;
  lastAppliedAt: string | null;
  maxMillisBehindLatest: number | null;
  stalledShards: number;
}

export type LagBasis = 'caught-up' | 'wallTime' | 'clusterTime';

export interface LagStatus {
  events: number;
  seconds: number | null;
  basis: LagBasis | null;
}

export interface ShardStatus {
  shardId: string;
  sequenceNumber: string | null;
  leaseOwner: string | null;
  leaseEpoch: number;
  leaseExpiresAt: string | null;
  leaseActive: boolean;
  events: number;
  lastClusterTime: number | null;
  lastAppliedAt: string | null;
  millisBehindLatest: number | null;
  ended: boolean;
  checkpointAt: string | null;
  reachedBarrier: boolean;
  stalledSince: string | null;
}

export interface CutoverStatus {
  state: CutoverDoc['state'];
  requestedAt: string | null;
  updatedAt: string | null;
  barrierId: string | null;
  barrierSentAt: string | null;
  shardsReached: number;
  shardsTotal: number;
  reachedShards: string[];
  writesStopped: boolean;
  writesBlockedByMigrator: boolean;
  /** Active, not confirmed by the operator, and the migrator did not block writes itself. */
  waitingForWritesStopped: boolean;
  abortReason: string | null;
  abortedAt: string | null;
  completedAt: string | null;
}

export interface LastErrorStatus {
  message: string;
  at: string | null;
  phase: string;
  exitCode: number | null;
}

export interface StatusReport {
  schemaVersion: number;
  migrationId: string;
  phase: MigrationPhase;
  canCutover: boolean;
  createdAt: string | null;
  updatedAt: string | null;
  phaseChangedAt: string | null;
  generatedAt: string;
  resumePoint: { clusterTime: ClusterTimeJson | null; resumeToken: unknown; takenAt: string | null } | null;
  load: LoadStatus | null;
  capture: CaptureStatus | null;
  apply: ApplyStatusSummary;
  lag: LagStatus;
  shards: ShardStatus[];
  cutover: CutoverStatus | null;
  lastError: LastErrorStatus | null;
  ttlHeld: TtlHeldStatus[];
  forecast: RetentionForecast | null;
}

// ---------------------------------------------------------------------------------------------
// Defensive readers: documents are written by several programs (and versions); a missing or
// malformed field reads as absent instead of crashing the report.

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function iso(v: unknown): string | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (typeof v === 'string' || typeof v === 'number') {
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }
  return null;
}

const ms = (v: unknown): number | undefined => {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.getTime();
  return undefined;
};

function clusterTime(v: unknown): ClusterTimeJson | null {
  if (v && typeof v === 'object' && 't' in v && 'i' in v) {
    const t = num((v as { t: unknown }).t);
    const i = num((v as { i: unknown }).i);
    if (t !== undefined && i !== undefined) return { t, i };
  }
  return null;
}

function ejson(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  try {
    return JSON.parse(BSON.EJSON.stringify(v as Document, { relaxed: true })) as unknown;
  } catch {
    return null;
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** Percentage with one decimal; never 100 before `done`. */
function percentOf(done: boolean, restored: number, total: number | undefined): number | null {
  if (done) return 100;
  if (total === undefined) return null;
  if (total <= 0) return 0;
  return Math.min(99.9, round1((restored / total) * 100));
}

// ---------------------------------------------------------------------------------------------

export function isActiveCutover(c: CutoverDoc | null | undefined): boolean {
  return !!c && (c.state === 'requested' || c.state === 'barrier-sent');
}

export function waitingForWritesStopped(c: CutoverDoc | null | undefined): boolean {
  return isActiveCutover(c) && !c!.writesStopped && !c!.writesBlockedByMigrator;
}

function unitCounts(units: LoadUnitDoc[], nowMs: number): UnitCounts {
  const c: UnitCounts = { total: units.length, done: 0, running: 0, pending: 0 };
  for (const u of units) {
    if (u.state === 'done') c.done++;
    // A unit whose holder stopped renewing is pending again: another worker takes it over.
    else if (u.state === 'running' && u.lease?.owner && (ms(u.lease.expiresAt) ?? 0) > nowMs) c.running++;
    else c.pending++;
  }
  return c;
}

/**
 * Seconds left for `units` at the rate of this load attempt: the estimated bytes (collStats) of
 * the ranges finished since `startedAt` per second, against those of the unfinished ranges. (Both
 * sides in estimated bytes: the archive bytes a pipe reports are compressed with --gzip.)
 */
function etaSeconds(units: LoadUnitDoc[], all: LoadUnitDoc[], startedMs: number | undefined, nowMs: number): number | null {
  if (startedMs === undefined || nowMs <= startedMs) return null;
  const copied = all
    .filter((u) => u.kind === 'range' && u.state === 'done' && (ms(u.finishedAt) ?? 0) >= startedMs)
    .reduce((s, u) => s + (num(u.estimatedBytes) ?? 0), 0);
  const left = units.filter((u) => u.kind === 'range' && u.state !== 'done').reduce((s, u) => s + (num(u.estimatedBytes) ?? 0), 0);
  if (left === 0) return units.some((u) => u.state !== 'done') ? null : 0;
  if (copied === 0) return null;
  return Math.round(left / (copied / ((nowMs - startedMs) / 1000)));
}

/** Bytes per second of a throughput, unrounded (the ETA divides by it). */
const rateOf = (t: Throughput | null) => (t && t.windowSeconds > 0 ? t.bytes / t.windowSeconds : null);

function buildLoad(m: MigrationDoc, units: LoadUnitDoc[] = [], nowMs = Date.now()): LoadStatus | null {
  const load = m.load;
  if (!load || typeof load !== 'object') return null;
  const startedMs = ms(load.startedAt);
  const byNs = new Map<string, LoadUnitDoc[]>();
  for (const u of units) if (u.kind !== 'database') byNs.set(`${u.sourceDb}.${u.coll}`, [...(byNs.get(`${u.sourceDb}.${u.coll}`) ?? []), u]);
  const namespaces: LoadNamespaceStatus[] = [];
  let totalDocuments = 0;
  let restoredDocuments = 0;
  for (const [key, p] of Object.entries(load.collections ?? {})) {
    const total = num(p?.total);
    const restored = num(p?.restored);
    const done = p?.done === true;
    totalDocuments += total ?? 0;
    restoredDocuments += restored ?? 0;
    namespaces.push({
      ns: loadNs(key),
      target: typeof p?.target === 'string' ? p.target : loadNs(key),
      total: total ?? null,
      dumped: num(p?.dumped) ?? null,
      restored: restored ?? null,
      done,
      percent: percentOf(done, restored ?? 0, total),
      ...(p?.loadOnly === true ? { loadOnly: true } : {}),
      bytes: num(p?.bytes) ?? null,
      partitions: null,
      etaSeconds: null,
      estimatedBytes: null,
      throughput: null,
      throughputEtaSeconds: null,
      indexes: namespaceIndexStatus(loadNs(key), p, units, Boolean(load.finishedAt), nowMs),
    });
    const own = byNs.get(loadNs(key));
    if (own) {
      const ns = namespaces[namespaces.length - 1]!;
      const ranges = own.filter((u) => u.kind === 'range');
      ns.partitions = unitCounts(ranges, nowMs);
      ns.bytes = ranges.filter((u) => u.state === 'done').reduce((s, u) => s + (num(u.bytes) ?? 0), 0);
      ns.etaSeconds = done ? 0 : etaSeconds(own, units, startedMs, nowMs);
      ns.estimatedBytes = own.reduce((s, u) => s + unitBytes(u), 0);
      if (!done) {
        ns.throughput = recentThroughput(own, nowMs, startedMs);
        ns.throughputEtaSeconds = etaFrom(bytesLeft(own, nowMs), rateOf(ns.throughput));
      } else ns.throughputEtaSeconds = 0;
      if (!done && ns.percent === null && ranges.length) ns.percent = Math.min(99.9, round1((ns.partitions.done / ranges.length) * 100));
    }
  }
  namespaces.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
  const collectionsDone = namespaces.filter((n) => n.done).length;
  const done = load.finishedAt !== undefined && load.finishedAt !== null
    ? true
    : namespaces.length > 0 && collectionsDone === namespaces.length;
  return {
    attempt: num(load.attempt) ?? 1,
    startedAt: iso(load.startedAt),
    finishedAt: iso(load.finishedAt),
    done,
    collections: namespaces.length,
    collectionsDone,
    totalDocuments,
    restoredDocuments,
    percent: done ? 100 : totalDocuments > 0 ? Math.min(99.9, round1((restoredDocuments / totalDocuments) * 100)) : 0,
    namespaces,
    units: unitCounts(units, nowMs),
    bytes: units.filter((u) => u.state === 'done').reduce((s, u) => s + (num(u.bytes) ?? 0), 0),
    etaSeconds: done ? 0 : etaSeconds(units, units, startedMs, nowMs),
    estimatedBytes: units.reduce((s, u) => s + unitBytes(u), 0),
    estimatedBytesLeft: done ? 0 : bytesLeft(units, nowMs),
    throughput: done ? null : recentThroughput(units, nowMs, startedMs),
    throughputEtaSeconds: done ? 0 : etaFrom(bytesLeft(units, nowMs), rateOf(recentThroughput(units, nowMs, startedMs))),
    indexes: loadIndexStatus(namespaces),
  };
}

/**
 * The retention forecast of a migration that still needs its stream (forecast.ts): the load's
 * time left at the last minute's rate (else this attempt's average, else the estimated bytes at
 * DEFAULT_LOAD_BYTES_PER_SECOND), the source's rate of changes as capture measured it (events
 * since the resume point per second; else preflight's oplog figure), the stream retention and
 * the source's change-stream history recorded by preflight. Capture's lag behind the source is
 * read as how long no capture has held its lease (the checkpoint's age then); a running capture
 * counts as keeping up.
 */
function buildForecast(inputs: StatusInputs, load: LoadStatus | null, capture: CaptureStatus | null, lag: LagStatus, nowMs: number): RetentionForecast | null {
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
  const f = forecastRetention({
    streamRetentionHours: num(fi?.streamRetentionHours) ?? null,
    oldestUnreadSeconds: loadDone ? (lag.events === 0 ? 0 : lag.seconds ?? elapsed) : elapsed,
    loadSecondsLeft: loadLeft,
    loadDone,
    backlogEvents: lag.events,
    changeEventsPerSecond: change,
    applyEventsPerSecond: null,
    sourceHistoryHours: num(fi?.sourceHistoryHours) ?? null,
    sourceHistoryBasis: typeof fi?.sourceHistoryBasis === 'string' ? fi.sourceHistoryBasis : null,
    captureLagSeconds: captureLag,
  });
  if (assumedRate) f.assumptions.push(`load rate assumed ${DEFAULT_LOAD_BYTES_PER_SECOND / 1024 / 1024} MiB/s (none measured yet)`);
  return f;
}

function buildShards(shards: ShardDoc[], cutover: CutoverDoc | null, nowMs: number): ShardStatus[] {
  const reached = new Set(Array.isArray(cutover?.reachedShards) ? cutover!.reachedShards : []);
  return shards.map((s) => {
    const cp = s.checkpoint;
    const c = (cp?.counters ?? {}) as Record<string, unknown>;
    const expires = ms(s.lease?.expiresAt);
    const owner = typeof s.lease?.owner === 'string' ? s.lease.owner : null;
    const lastCt = num(c.lastClusterTime);
    const lastWall = num(c.lastWallTime);
    const behind = num(c.millisBehindLatest);
    return {
      shardId: s.shardId,
      sequenceNumber: typeof cp?.sequenceNumber === 'string' ? cp.sequenceNumber : null,
      leaseOwner: owner,
      leaseEpoch: num(s.lease?.epoch) ?? 0,
      leaseExpiresAt: owner && expires !== undefined && expires > 0 ? new Date(expires).toISOString() : null,
      leaseActive: owner !== null && expires !== undefined && expires > nowMs,
      events: num(c.events) ?? 0,
      lastClusterTime: lastCt !== undefined && lastCt > 0 ? lastCt : null,
      lastAppliedAt: lastWall !== undefined && lastWall > 0 ? new Date(lastWall).toISOString() : null,
      millisBehindLatest: behind !== undefined && behind >= 0 ? behind : null,
      ended: cp?.shardEnded === true,
      checkpointAt: iso(cp?.at),
      reachedBarrier: reached.has(s.shardId),
      // Only while a live lease holder says so: a dead process's mark is not news.
      stalledSince: owner !== null && expires !== undefined && expires > nowMs ? iso(s.stalledSince) : null,
    };
  });
}

function buildCutover(c: CutoverDoc | null, shards: ShardStatus[]): CutoverStatus | null {
  if (!c) return null;
  const reachedShards = Array.isArray(c.reachedShards) ? [...c.reachedShards].sort() : [];
  const open = shards.filter((s) => !s.ended).length;
  return {
    state: c.state,
    requestedAt: iso(c.requestedAt),
    updatedAt: iso(c.updatedAt),
    barrierId: typeof c.barrierId === 'string' ? c.barrierId : null,
    barrierSentAt: iso(c.barrierSentAt),
    shardsReached: reachedShards.length,
    // Closed (resharded) shards get no barrier; a shard that reached it stays counted.
    shardsTotal: Math.max(open, reachedShards.length),
    reachedShards,
    writesStopped: c.writesStopped === true,
    writesBlockedByMigrator: c.writesBlockedByMigrator === true,
    waitingForWritesStopped: waitingForWritesStopped(c),
    abortReason: typeof c.abortReason === 'string' ? c.abortReason : null,
    abortedAt: iso(c.abortedAt),
    completedAt: iso(c.completedAt),
  };
}

function buildLag(inputs: StatusInputs, captured: number, applied: number): LagStatus {
  const events = Math.max(0, captured - applied);
  if (events === 0) return { events, seconds: 0, basis: 'caught-up' };
  const cap = inputs.capture;
  const capWallMs = num(cap?.counters?.lastEventAtMs);
  let appliedWallMs: number | undefined;
  let appliedCt: number | undefined;
  for (const s of inputs.shards) {
    const c = (s.checkpoint?.counters ?? {}) as Record<string, unknown>;
    const w = num(c.lastWallTime);
    const t = num(c.lastClusterTime);
    if (w !== undefined && w > 0) appliedWallMs = Math.max(appliedWallMs ?? 0, w);
    if (t !== undefined && t > 0) appliedCt = Math.max(appliedCt ?? 0, t);
  }
  if (capWallMs !== undefined && capWallMs > 0 && appliedWallMs !== undefined) {
    return { events, seconds: round1(Math.max(0, capWallMs - appliedWallMs) / 1000), basis: 'wallTime' };
  }
  const capCt = clusterTime(cap?.ct)?.t;
  const fromCt = appliedCt ?? clusterTime(inputs.migration.resumePoint?.ct)?.t;
  if (capCt !== undefined && fromCt !== undefined) {
    return { events, seconds: Math.max(0, capCt - fromCt), basis: 'clusterTime' };
  }
  return { events, seconds: null, basis: null };
}

/** The status of a migration from its state documents (pure). */
export function buildStatusReport(inputs: StatusInputs, now: Date = new Date()): StatusReport {
  const m = inputs.migration;
  const nowMs = now.getTime();
  const shards = buildShards(inputs.shards, inputs.cutover, nowMs);
  const cap = inputs.capture;
  const capCounters = (cap?.counters ?? {}) as Record<string, unknown>;
  const capLastEventMs = num(capCounters.lastEventAtMs);
  const capture: CaptureStatus | null = cap
    ? {
        events: num(capCounters.events) ?? 0,
        markers: num(capCounters.markers) ?? 0,
        bytes: num(capCounters.bytes) ?? 0,
        lastEventAt: capLastEventMs !== undefined && capLastEventMs > 0 ? new Date(capLastEventMs).toISOString() : null,
        clusterTime: clusterTime(cap.ct),
        checkpointAt: iso(cap.updatedAt),
        leaseOwner: inputs.captureLease?.owner ?? null,
        leaseActive: Boolean(inputs.captureLease && inputs.captureLease.expiresAt.getTime() > nowMs),
      }
    : null;
  const appliedEvents = shards.reduce((n, s) => n + s.events, 0);
  const lastCts = shards.map((s) => s.lastClusterTime).filter((x): x is number => x !== null);
  const lastWalls = shards.map((s) => s.lastAppliedAt).filter((x): x is string => x !== null).sort();
  const behinds = shards.filter((s) => !s.ended).map((s) => s.millisBehindLatest).filter((x): x is number => x !== null);
  const apply: ApplyStatusSummary = {
    events: appliedEvents,
    shards: shards.length,
    shardsEnded: shards.filter((s) => s.ended).length,
    lastClusterTime: lastCts.length ? Math.max(...lastCts) : null,
    lastAppliedAt: lastWalls.length ? lastWalls[lastWalls.length - 1]! : null,
    maxMillisBehindLatest: behinds.length ? Math.max(...behinds) : null,
    stalledShards: shards.filter((s) => s.stalledSince !== null).length,
  };
  const rp = m.resumePoint;
  const le = m.lastError;
  const load = buildLoad(m, inputs.loadUnits ?? [], nowMs);
  const lag = buildLag(inputs, capture?.events ?? 0, appliedEvents);
  return {
    schemaVersion: STATUS_SCHEMA_VERSION,
    migrationId: m._id,
    phase: m.phase,
    canCutover: m.phase === 'READY_FOR_CUTOVER' && !isActiveCutover(inputs.cutover),
    createdAt: iso(m.createdAt),
    updatedAt: iso(m.updatedAt),
    phaseChangedAt: iso(m.phaseChangedAt),
    generatedAt: now.toISOString(),
    resumePoint: rp ? { clusterTime: clusterTime(rp.ct), resumeToken: ejson(rp.rt), takenAt: iso(rp.takenAt) } : null,
    load,
    capture,
    apply,
    lag,
    shards,
    cutover: buildCutover(inputs.cutover, shards),
    lastError: le
      ? { message: String(le.message ?? ''), at: iso(le.at), phase: String(le.phase ?? ''), exitCode: num(le.exitCode) ?? null }
      : null,
    ttlHeld: activeTtlHolds(inputs.ttlHolds ?? []).map((h) => ({
      target: `${h.db}.${h.coll}`,
      name: h.name,
      originalExpireAfterSeconds: h.originalExpireAfterSeconds,
      heldSince: iso(h.recordedAt),
    })),
    forecast: buildForecast(inputs, load, capture, lag, nowMs),
  };
}

// ---------------------------------------------------------------------------------------------
// Text rendering

function ago(at: string | null, now: number): string {
  if (!at) return '';
  const d = now - new Date(at).getTime();
  return d >= 0 ? ` (${formatDuration(d)} ago)` : ` (in ${formatDuration(-d)})`;
}

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

const ctText = (c: ClusterTimeJson | null) => (c ? `${c.t},${c.i} (${new Date(c.t * 1000).toISOString()})` : 'unknown');

function cutoverLines(r: StatusReport, now: number): string[] {
  const c = r.cutover;
  if (!c) return ['cutover: not requested'];
  const lines: string[] = [];
  switch (c.state) {
    case 'requested':
      lines.push(`cutover: requested${ago(c.requestedAt, now)}${r.phase === 'CATCHING_UP' ? ', starts once apply has caught up' : ''}`);
      break;
    case 'barrier-sent':
      lines.push(`cutover: barrier sent${ago(c.barrierSentAt, now)}, shards reached the barrier ${c.shardsReached}/${c.shardsTotal}`);
      break;
    case 'completed':
      lines.push(`cutover: completed at ${c.completedAt ?? 'unknown'}`);
      break;
    case 'aborted':
      lines.push(`cutover: aborted at ${c.abortedAt ?? 'unknown'}${c.abortReason ? `: ${c.abortReason}` : ''}`);
      break;
  }
  if ((c.state === 'completed' || c.state === 'aborted') && c.writesBlockedByMigrator) {
    lines.push(
      c.state === 'completed'
        ? '  writes to the source: still blocked by the migrator (undo on the source: db.adminCommand({setUserWriteBlockMode: 1, global: false}))'
        : '  writes to the source: still blocked by the migrator; full-migrate unblocks them when it runs (or, on the source: db.adminCommand({setUserWriteBlockMode: 1, global: false}))',
    );
  }
  if (c.state === 'requested' || c.state === 'barrier-sent') {
    if (c.writesBlockedByMigrator) lines.push('  writes to the source: blocked by the migrator');
    else if (c.writesStopped) lines.push('  writes to the source: stopped (confirmed by the operator)');
    else {
      lines.push(
        '  waiting for --writes-stopped: stop the applications writing to the source, then run `migrator cutover --writes-stopped`',
      );
    }
  }
  return lines;
}

function forecastLines(f: StatusReport['forecast']): string[] {
  if (!f) return [];
  const d = (s: number | null) => (s === null ? 'unknown' : formatDuration(s * 1000));
  const verdict = f.ok === null ? 'cannot tell yet' : f.ok ? 'ok' : 'WARNING';
  const lines = [
    `retention forecast: ${verdict}; stream retention ${f.streamRetentionHours === null ? 'unknown' : `${f.streamRetentionHours} h`}, load left ${d(f.loadEtaSeconds)}, catch-up ${d(f.catchUpEtaSeconds)}` +
      (f.requiredHours !== null ? `, needs about ${f.requiredHours} h` : '') +
      (f.marginHours !== null ? `, margin ${f.marginHours} h` : ''),
  ];
  if (f.sourceHistoryHours !== null) lines.push(`  source change-stream history ${f.sourceHistoryHours} h (${f.sourceHistoryBasis ?? 'unknown basis'})`);
  for (const w of f.warnings) lines.push(`  WARNING: ${w}`);
  if (f.assumptions.length) lines.push(`  assumed: ${f.assumptions.join('; ')}`);
  return lines;
}

/** Human-readable status (stdout of `migrator status`). */
export function formatStatusReport(r: StatusReport): string {
  const now = new Date(r.generatedAt).getTime();
  const lines: string[] = [];
  lines.push(`migration ${r.migrationId}: ${r.phase}, since ${r.phaseChangedAt ?? 'unknown'}${ago(r.phaseChangedAt, now)}`);
  lines.push(`  created ${r.createdAt ?? 'unknown'}, updated ${r.updatedAt ?? 'unknown'}${ago(r.updatedAt, now)}`);
  let why = '';
  if (!r.canCutover) why = r.phase === 'READY_FOR_CUTOVER' ? ' (a cutover is already in progress)' : ` (phase ${r.phase})`;
  lines.push(`  can cut over: ${r.canCutover ? 'yes, run `migrator cutover`' : `no${why}`}`);

  const l = r.load;
  if (!l) lines.push('initial load: not started');
  else {
    const state = l.done ? `done${l.finishedAt ? ` at ${l.finishedAt}` : ''}` : `running since ${l.startedAt ?? 'unknown'}`;
    lines.push(
      `initial load: ${state} (attempt ${l.attempt}), ${l.collectionsDone}/${l.collections} collections, ` +
        `${l.restoredDocuments}/${l.totalDocuments} documents, ${l.percent}%`,
    );
    if (l.units.total > 0) {
      const eta = l.etaSeconds === null || l.done ? '' : `, ETA ${formatDuration(l.etaSeconds * 1000)}`;
      lines.push(`  units: ${l.units.done}/${l.units.total} done, ${l.units.running} running, ${l.units.pending} pending; ${bytesText(l.bytes)} copied${eta}`);
      if (!l.done && l.throughput) {
        const t = l.throughput;
        const teta = l.throughputEtaSeconds === null ? 'ETA unknown (nothing copied in the window)' : `ETA ${formatDuration(l.throughputEtaSeconds * 1000)}`;
        lines.push(
          `  last ${formatDuration(t.windowSeconds * 1000)}: ${bytesText(t.bytes)} (${t.documents} documents), ${bytesText(t.bytesPerSecond)}/s; ` +
            `${bytesText(l.estimatedBytesLeft)} of ${bytesText(l.estimatedBytes)} estimated left, ${teta}`,
        );
      }
    }
    const ix = formatLoadIndexes(l.indexes);
    if (ix) lines.push(ix);
    for (const n of l.namespaces) {
      const target = n.target !== n.ns ? ` → ${n.target}` : '';
      const count = `${n.restored ?? 0}/${n.total ?? '?'}`;
      const pct = n.percent === null ? '' : ` ${n.percent}%`;
      const parts = n.partitions
        ? `, ranges ${n.partitions.done}/${n.partitions.total} (${n.partitions.running} running, ${n.partitions.pending} pending), ${bytesText(n.bytes ?? 0)}` +
          (n.throughput && !n.done ? `, ${bytesText(n.throughput.bytesPerSecond)}/s over the last ${formatDuration(n.throughput.windowSeconds * 1000)}` : '') +
          ((n.throughputEtaSeconds ?? n.etaSeconds) && !n.done ? `, ETA ${formatDuration((n.throughputEtaSeconds ?? n.etaSeconds)! * 1000)}` : '')
        : '';
      lines.push(`  ${n.ns}${target}: ${count}${pct}${parts}${formatNamespaceIndexes(n.indexes)}${n.done ? ' done' : ''}${n.loadOnly ? ' (load-only)' : ''}`);
    }
    const loadOnly = l.namespaces.filter((n) => n.loadOnly).map((n) => n.ns);
    if (loadOnly.length) {
      lines.push(`  not in sync: ${loadOnly.join(', ')} (time series, copied once by the load; change streams do not report their writes, so later writes are not migrated)`);
    }
  }

  const c = r.capture;
  if (!c) lines.push('capture: no checkpoint yet');
  else {
    lines.push(
      `capture: ${c.events} events captured (${c.markers} cutover markers, ${bytesText(c.bytes)}), last event ${c.lastEventAt ?? 'unknown'}`,
      `  checkpoint ${ctText(c.clusterTime)}, saved ${c.checkpointAt ?? 'unknown'}${ago(c.checkpointAt, now)}`,
      `  active capture: ${c.leaseOwner && c.leaseActive ? c.leaseOwner : 'none (no current lease)'}`,
    );
  }
  const a = r.apply;
  lines.push(
    `apply: ${a.events} events applied over ${a.shards} shard${a.shards === 1 ? '' : 's'}` +
      (a.shardsEnded ? ` (${a.shardsEnded} ended)` : '') +
      (a.lastAppliedAt ? `, last applied event ${a.lastAppliedAt}` : '') +
      (a.maxMillisBehindLatest !== null ? `, ${a.maxMillisBehindLatest}ms behind the stream tip` : ''),
  );
  const lagSec = r.lag.seconds === null ? 'unknown' : formatDuration(r.lag.seconds * 1000);
  lines.push(`lag: ${r.lag.events} events, ${lagSec}${r.lag.basis && r.lag.basis !== 'caught-up' ? ` (by ${r.lag.basis})` : ''}`);
  if (r.shards.length) lines.push('shards:');
  for (const s of r.shards) {
    const parts = [`seq ${s.sequenceNumber ?? 'none (start of shard)'}`, `${s.events} events`];
    if (s.ended) parts.push('ended');
    else if (s.leaseOwner) parts.push(`lease ${s.leaseOwner} until ${s.leaseExpiresAt ?? '?'}${s.leaseActive ? '' : ' (expired)'}`);
    else parts.push('no lease holder');
    if (s.millisBehindLatest !== null && !s.ended) parts.push(`${s.millisBehindLatest}ms behind`);
    if (s.reachedBarrier) parts.push('reached the barrier');
    if (s.stalledSince) parts.push(`STALLED since ${s.stalledSince} (the target acknowledges no write)`);
    lines.push(`  ${s.shardId}: ${parts.join(', ')}`);
  }
  const rp = r.resumePoint;
  lines.push(rp ? `resume point: ${ctText(rp.clusterTime)}, taken ${rp.takenAt ?? 'unknown'}` : 'resume point: not taken yet');
  lines.push(...cutoverLines(r, now));
  if (r.ttlHeld.length) {
    lines.push(`TTL held on the target: ${r.ttlHeld.length} index(es) do not expire documents until the cutover restores them (expireAfterSeconds ${HELD_EXPIRE_AFTER_SECONDS}):`);
    for (const h of r.ttlHeld) lines.push(`  ${h.target} ${h.name}: original expireAfterSeconds ${h.originalExpireAfterSeconds}`);
    if (r.phase === 'FAILED' || r.phase === 'ABORTED') {
      lines.push('  to abandon the migration, restore them on the target:');
      for (const h of r.ttlHeld) {
        const [db, ...rest] = h.target.split('.');
        lines.push(`    ${restoreCommandText({ db: db!, coll: rest.join('.'), name: h.name, originalExpireAfterSeconds: h.originalExpireAfterSeconds })}`);
      }
    }
  }
  lines.push(...forecastLines(r.forecast));
  const e = r.lastError;
  if (e) lines.push(`last error (${e.phase}${e.exitCode !== null ? `, exit ${e.exitCode}` : ''}, ${e.at ?? 'unknown'}): ${e.message}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Reading the documents (the only I/O of this module)

/** The STATE_CONFLICT error for an unknown migration id, naming the ones that exist. */
export function unknownMigrationError(id: string, existing: readonly string[]): MigratorError {
  const known = existing.length ? `existing migrations: ${existing.join(', ')}` : 'the state store holds no migration';
  return new MigratorError(ExitCode.STATE_CONFLICT, `Unknown migration id '${id}' (${known}).`, {
    hint: 'Pass --migration-id (MIGRATOR_MIGRATION_ID), and the same --state-uri / --state-db as the migration.',
  });
}

export async function requireMigration(store: StateStore, id: string): Promise<MigrationDoc> {
  const m = await store.getMigration(id);
  if (m) return m;
  const all = await store.listMigrations();
  throw unknownMigrationError(id, all.map((x) => x._id));
}

/** Reads every document the status is computed from; STATE_CONFLICT when the migration is unknown. */
export async function readStatusInputs(store: StateStore, id: string): Promise<StatusInputs> {
  const migration = await requireMigration(store, id);
  // The load's units only while it runs: afterwards their counts are final in `load` and the read
  // would only slow every status (and cutover --wait) poll.
  const loading = Boolean(migration.load && !migration.load.finishedAt);
  const [capture, shards, cutover, captureLease, loadUnits, ttlHolds] = await Promise.all([
    store.getCaptureCheckpoint(id),
    store.listShards(id),
    store.getCutover(id),
    store.getCaptureLease(id),
    loading ? store.listLoadUnits(id) : Promise.resolve([]),
    store.listTtlHolds(id),
  ]);
  return { migration, capture, shards, cutover, captureLease, loadUnits, ttlHolds };
}
