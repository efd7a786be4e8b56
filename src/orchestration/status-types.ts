/**
 * The types of `migrator status`'s report (status-report.ts builds it, status-format.ts renders it).
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
 *                     original; src/db/ttl-hold.ts); [] when none is held
 *   forecast          null (COMPLETED, ABORTED) | { loadEtaSeconds|null, catchUpEtaSeconds|null,
 *                     streamRetentionHours|null, requiredHours|null, marginHours|null, ok: boolean|null (null:
 *                     cannot tell), changeEventsPerSecond|null, applyEventsPerSecond, applyRateBasis ('last-minute':
 *                     from the apply samples full-migrate records; 'since-apply-start': events applied since
 *                     the load ended per second; 'assumed': before apply runs), applyRateWindowSeconds|null
 *                     (what the measured rate spans), sourceHistoryHours|null,
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
import type { CaptureCheckpointDoc, CutoverDoc, LoadUnitDoc, MigrationDoc, MigrationPhase, ShardDoc, ShardLease, TtlHoldDoc } from '../state/store.js';
import type { RetentionForecast, Throughput } from './forecast.js';
import type { LoadIndexStatus, NamespaceIndexStatus } from './index-progress.js';

export const STATUS_SCHEMA_VERSION = 1;

/** Phases after which nothing changes any more (`status --watch` stops there). */
export { TERMINAL_PHASES } from '../state/phases.js';

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
