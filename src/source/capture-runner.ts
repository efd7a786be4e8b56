import type { ChangeStream, Document, MongoClient, Timestamp } from 'mongodb';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { tryNextCachingToken } from '../db/change-stream-compat.js';
import { LeaseKeeper } from '../state/lease-keeper.js';
import { defaultOwnerId, isDeadLocalOwner } from '../state/lease-owner.js';
import type { CaptureStateStore } from '../state/store.js';
import { createOrderedProducer, type OrderedProducer } from '../transport/ordered-producer.js';
import { sleep } from '../util/retry.js';
import { describeStreamLimits } from '../transport/stream-limits.js';
import { assertStreamActive } from '../transport/stream-errors.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { errorCode, isTransientError } from '../db/transient-errors.js';
import { retryTransient } from '../db/transient-retry.js';
import type { Logger } from '../util/logger.js';
import {
  EXACT_BSON_OPTIONS,
  UnsupportedChangeEventError,
  barrierEnvelope,
  clusterTimeFromResumeToken,
  encodeEnvelope,
  envelopeFromChangeEvent,
  migrationTag,
  originEnvelope,
  isBroadcast,
  positionOf,
  routingKey,
  type ChangeEnvelope,
  type EventPosition,
} from '../model/change-envelope.js';
import { CheckpointTracker } from './checkpoint-tracker.js';
import { BSON_OBJECT_TOO_LARGE, FragmentAssembler, SLIM_STAGE, SPLIT_STAGE, isSplitStageRefused, splitLargeEventSupported } from './large-events.js';
import { expandedEventsSupported, isExpandedEventsRefused, withCreateOptions } from './expanded-events.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { health, type Heartbeat } from '../observability/health.js';
import { addOp, stats } from '../observability/stats.js';

/** The source collection whose inserts become cutover barriers (inside the state db's name). */
export const MARKER_COLLECTION = 'cutover_markers';
/**
 * The source collection (inside the state db) whose writes only move the stream's position: the
 * resume point's marker where the server gives no token (src/orchestration/resume-point.ts) and
 * capture's idle heartbeat. Never sent to Kinesis.
 */
export const POSITION_MARKER_COLLECTION = 'resume_markers';
const DEFAULT_IDLE_HEARTBEAT_MS = 5 * 60_000;

export interface CaptureStart {
  /** Resume token: the stream starts after it (`resumeAfter`). */
  rt?: Document;
  /** Operation time: the stream starts at it (`startAtOperationTime`). */
  ct?: Timestamp;
}

export interface CaptureOptions {
  source: MongoClient;
  store: CaptureStateStore;
  migrationId: string;
  rules: NamespaceRules;
  kinesis: KinesisClient;
  streamName: string;
  /**
   * Where to start when the state store has no capture checkpoint; else the migration's resume
   * point (waited for while full-migrate / initial-load has not recorded it); see `cdcOnly`.
   */
  start?: CaptureStart;
  /**
   * Plain CDC (no full migration behind this id): without a checkpoint, `start` or a migration
   * document, start now instead of waiting for full-migrate to create the migration.
   */
  cdcOnly?: boolean;
  /**
   * Return once the migration's phase is COMPLETED (read before each lease attempt while standing
   * by, every 2 s while capturing): a `migrator capture` beside full-migrate has nothing left to do
   * after the cutover (every shard applied the barrier before COMPLETED), and a standby would
   * otherwise take the lease full-migrate releases and capture on. Set by the CLI unless
   * --cdc-only (plain CDC has no phase); full-migrate stops its own capture itself.
   */
  exitWhenCompleted?: boolean;
  /** Capture lease time-to-live (default 30 s): how soon a standby takes over from a killed capture. */
  leaseTtlMs?: number;
  /** Lease owner id, unique per process incarnation (default: host, pid and random). */
  ownerId?: string;
  /** How long a stop flushes what was handed to Kinesis before giving up on the rest (default 5 s). */
  stopFlushMs?: number;
  /** Save the checkpoint after this many events (default 1000)… */
  checkpointEveryEvents?: number;
  /** …or this often (default 1 s), whichever comes first. */
  checkpointIntervalMs?: number;
  /** Producer buffer bound: memory stays bounded whatever the source's write rate (default 16 MiB). */
  maxBufferedBytes?: number;
  /** getMore wait on an idle source (default 500 ms): also the latency of a graceful stop. */
  maxAwaitTimeMs?: number;
  /**
   * Idle heartbeat (default 5 min), only where idle batches give no position (DocumentDB): a write
   * to `<stateDb>.resume_markers` whose event moves the checkpoint forward.
   */
  idleHeartbeatMs?: number;
  signal: AbortSignal;
  log: Logger;
  /** Called after every checkpoint save, for progress output. */
  onProgress?: (p: CaptureProgress) => void;
}

export interface CaptureProgress {
  events: number;
  markers: number;
  bytes: number;
  checkpoint?: EventPosition;
  lastEventAt?: Date;
}

const DEFAULT_CAPTURE_LEASE_TTL_MS = 30_000;
/** After an event over 16 MiB without split support: events read slim (documents re-read) before reopening as usual. */
const SLIM_WINDOW_EVENTS = 1000;
/** How long a stopping capture flushes to Kinesis (docker stop's default grace is 10 s). */
const STOP_FLUSH_MS = 5_000;
const CAPTURE_LEASE_ID = 'capture';
/** How often a capture with `exitWhenCompleted` reads the migration's phase while capturing (one findOne by _id). */
const COMPLETED_POLL_MS = 2_000;

/** `exitWhenCompleted` and the migration is COMPLETED (logged); a failed read is "not yet". */
async function migrationCompleted(o: CaptureOptions): Promise<boolean> {
  if (!o.exitWhenCompleted) return false;
  const m = await o.store.getMigration(o.migrationId).catch(() => null);
  if (m?.phase !== 'COMPLETED') return false;
  o.log.info({ migrationId: o.migrationId }, 'the migration is COMPLETED (cut over): nothing is left to capture, stopping');
  return true;
}

/**
 * The resume point left the source's change history: MongoDB ChangeStreamHistoryLost (286,
 * https://www.mongodb.com/docs/manual/reference/error-codes/), Amazon DocumentDB 136 (its change
 * stream log, kept change_stream_log_retention_duration, 3 h by default:
 * https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html).
 */
const HISTORY_LOST_CODES = new Set([286, 136]);
/**
 * The source cannot use the resume token: MongoDB InvalidResumeToken (260) and
 * ChangeStreamFatalError (280: e.g. "the resume token was not found" — the token's event is not in
 * this deployment's history; not a history loss); Amazon DocumentDB answers an unreadable token
 * with FailedToParse (9), which counts only when the stream was opened with a token.
 */
const INVALID_TOKEN_CODES = new Set([260, 280]);
const DOCDB_INVALID_TOKEN = 9;

/**
 * Errors after which reopening the stream from the last seen token is safe and useful: every
 * transient error (src/db/transient-errors.ts), plus what is specific to change streams — the
 * server's ResumableChangeStreamError label, a cursor the server forgot, stale routing on a
 * sharded source.
 */
const CHANGE_STREAM_RETRY_CODES = new Set([
  43, // CursorNotFound
  63, // StaleShardVersion
  150, // StaleEpoch
  234, // RetryChangeStream
  13388, // StaleConfig
]);
function isTransient(err: unknown): boolean {
  if (isTransientError(err)) return true;
  if ((err as { hasErrorLabel?: (l: string) => boolean })?.hasErrorLabel?.('ResumableChangeStreamError')) return true;
  const code = errorCode(err);
  return code !== undefined && CHANGE_STREAM_RETRY_CODES.has(code);
}

function captureFailure(err: unknown, from: string, withToken: boolean): MigratorError | undefined {
  const code = errorCode(err);
  if (code !== undefined && HISTORY_LOST_CODES.has(code)) {
    return new MigratorError(
      ExitCode.HISTORY_LOST,
      `The source no longer has the change-stream history to resume from ${from} (error ${code}: ${errorMessage(err)}).`,
      {
        hint:
          'Changes made since then are lost to the stream: start over with a new initial load (full-migrate with a new --migration-id and --drop), ' +
          'and keep capture running or raise the oplog / DocumentDB change_stream_log_retention_duration.',
        cause: err,
      },
    );
  }
  if (code !== undefined && (INVALID_TOKEN_CODES.has(code) || (withToken && code === DOCDB_INVALID_TOKEN))) {
    return new MigratorError(
      ExitCode.STATE_CONFLICT,
      `The source rejected the resume point ${from} (error ${code}: ${errorMessage(err)}). Is it from another deployment?`,
      { hint: 'Use a resume point taken on this source, or another --migration-id.', cause: err },
    );
  }
  return undefined;
}

function streamFailure(streamName: string, err: unknown): MigratorError {
  return new MigratorError(ExitCode.STREAM_FAILED, `Kinesis refused the change events for stream ${streamName}: ${errorMessage(err)}.`, {
    hint: 'Check that the stream still exists and is ACTIVE, and the AWS credentials (kinesis:PutRecords); rerun capture to resume from its checkpoint.',
    cause: err,
  });
}

function describeStart(opts: Document): string {
  if (opts.resumeAfter) return `token ${JSON.stringify(opts.resumeAfter)}`;
  if (opts.startAtOperationTime) {
    // As --start-at takes it (SECONDS,INCREMENT), not the Timestamp's 64-bit integer.
    const ts = opts.startAtOperationTime as Timestamp;
    return `operation time ${ts.t},${ts.i}`;
  }
  return 'now';
}

/** The stream exists and is ACTIVE (exit 5 otherwise): checked before anything waits, so a wrong stream fails at once. */
async function checkStream(o: CaptureOptions): Promise<void> {
  try {
    const limits = await describeStreamLimits(o.kinesis, o.streamName);
    assertStreamActive(o.streamName, limits.streamStatus);
  } catch (err) {
    if (err instanceof MigratorError) throw err;
    throw new MigratorError(ExitCode.STREAM_FAILED, `Cannot write to Kinesis stream ${o.streamName}: ${errorMessage(err)}.`, {
      hint: 'Check --kinesis-stream, --region / --kinesis-endpoint, that the stream is ACTIVE, and the AWS credentials.',
      cause: err,
    });
  }
}

/**
 * Capture: the source's change stream → BSON envelopes → Kinesis, until `signal` aborts.
 *
 * Ordering: events are handed to the ordered producer in change-stream order; the producer keeps
 * per-shard order, and every change to one document has one routing key, so one shard.
 * Durability: the checkpoint saved in the state store is the newest position whose whole prefix
 * is acknowledged by Kinesis (CheckpointTracker); a restart resumes after it and may re-send a
 * suffix, which apply de-duplicates by position.
 */
export async function runCapture(o: CaptureOptions): Promise<CaptureProgress> {
  // Liveness and readiness (src/observability/health.ts): ready only while capturing.
  const mon: CaptureMonitor = { hb: health.register('capture'), state: 'starting' };
  const dropComponent = health.component('capture', () => ({ ready: mon.state === 'capturing', state: mon.state }));
  try {
    return await runCaptureMonitored(o, mon);
  } finally {
    mon.state = 'stopped';
    dropComponent();
    health.unregister(mon.hb);
  }
}

/** What capture tells the health checks: its heartbeat and what it is doing. */
interface CaptureMonitor {
  hb: Heartbeat;
  state: 'starting' | 'standby' | 'waiting-for-resume-point' | 'capturing' | 'stopped';
}

async function runCaptureMonitored(o: CaptureOptions, mon: CaptureMonitor): Promise<CaptureProgress> {
  const owner = o.ownerId ?? defaultOwnerId();
  const ttlMs = o.leaseTtlMs ?? DEFAULT_CAPTURE_LEASE_TTL_MS;
  let last: CaptureProgress = { events: 0, markers: 0, bytes: 0 };
  let standbyLogged = false;
  await checkStream(o);
  while (!o.signal.aborted) {
    mon.hb.beat();
    if (await migrationCompleted(o)) return last;
    // ONE ACTIVE CAPTURE per migration: the lease (state store `capture_leases`) decides which
    // process reads the change stream; the others stand by and take over once it is released or
    // has expired (killed holder: after ttl + grace). Safety does not depend on it — checkpoints
    // only record what Kinesis acknowledged and never move back, and apply drops re-sent events —
    // but two active captures would send everything twice.
    const lost = new AbortController();
    const keeper = new LeaseKeeper({
      store: o.store,
      migrationId: o.migrationId,
      owner,
      ttlMs,
      scope: 'capture',
      onLost: (_id, reason) => {
        o.log.warn({ reason }, 'capture lease lost: stopping this capture (another process takes over)');
        lost.abort();
      },
    });
    if (!(await keeper.tryAcquire(CAPTURE_LEASE_ID))) {
      // Held by a dead process of this machine (an earlier run, pid 1 of a restarted container):
      // free it now rather than after its expiry.
      if (await freeDeadLocalLease(o.store, o.migrationId)) continue;
      if (!standbyLogged) o.log.info({ ttlMs }, 'another capture process holds the capture lease: standing by');
      standbyLogged = true;
      mon.state = 'standby';
      await sleep(Math.min(1000, ttlMs / 3), o.signal);
      continue;
    }
    standbyLogged = false;
    keeper.start();
    const held = { kind: 'capture' as const, heldShards: () => keeper.heldShards() };
    stats.live.leaseHolders.add(held);
    // COMPLETED while capturing: stops like a signal does (flush, checkpoint).
    const completed = new AbortController();
    let polling = false;
    const poll = o.exitWhenCompleted
      ? setInterval(() => {
          if (polling || completed.signal.aborted) return;
          polling = true;
          void migrationCompleted(o)
            .then((done) => done && completed.abort())
            .finally(() => (polling = false));
        }, COMPLETED_POLL_MS)
      : undefined;
    poll?.unref();
    try {
      last = await captureWhileLeased({ ...o, signal: AbortSignal.any([o.signal, lost.signal, completed.signal]) }, mon);
    } finally {
      if (poll) clearInterval(poll);
      stats.live.leaseHolders.delete(held);
      mon.state = 'starting';
      keeper.stop();
      if (lost.signal.aborted) keeper.abandonAll();
      else await keeper.releaseAll().catch(() => undefined);
    }
    if (!lost.signal.aborted) return last;
  }
  return last;
}

/** The source's version (buildInfo), to know whether it has $changeStreamSplitLargeEvent. */
async function sourceVersion(source: MongoClient): Promise<string> {
  const info = await source.db('admin').command({ buildInfo: 1 });
  return String(info.version ?? '');
}

async function freeDeadLocalLease(store: CaptureStateStore, migrationId: string): Promise<boolean> {
  const lease = await store.getCaptureLease(migrationId);
  return Boolean(lease && isDeadLocalOwner(lease.owner) && (await store.releaseLease(lease)));
}

/**
 * Where a capture without a checkpoint starts: the explicit start, else the migration's resume
 * point, else — plain CDC only (`cdcOnly`) — now.
 *
 * INVARIANT: a capture that may belong to a full migration never starts "now" on its own. A
 * capture container started beside full-migrate before the resume point (or even the migration
 * document) exists waits for it: starting now would skip every change made between the resume
 * point and now, lost for good. Only an explicit start or `--cdc-only` says there is no full
 * migration to wait for.
 */
async function startPoint(o: CaptureOptions, mon: CaptureMonitor): Promise<CaptureStart | undefined> {
  if (o.start) return o.start;
  let nextLogAt = 0; // the reason is logged at once, then every minute while it lasts
  while (!o.signal.aborted) {
    mon.hb.beat();
    const m = await o.store.getMigration(o.migrationId);
    if (!m && o.cdcOnly) return undefined; // plain CDC: from now
    if (m?.resumePoint) return m.resumePoint.rt ? { rt: m.resumePoint.rt } : { ct: m.resumePoint.ct };
    mon.state = 'waiting-for-resume-point';
    if (Date.now() >= nextLogAt) {
      nextLogAt = Date.now() + 60_000;
      if (m) o.log.info({ phase: m.phase }, 'waiting for full-migrate to record the resume point');
      else {
        o.log.info(
          { migrationId: o.migrationId },
          'waiting for full-migrate or initial-load to create the migration and record its resume point ' +
            '(for a change stream without a full migration pass --cdc-only, --start-at or --resume-token)',
        );
      }
    }
    await sleep(500, o.signal);
  }
  return undefined;
}

async function captureWhileLeased(o: CaptureOptions, mon: CaptureMonitor): Promise<CaptureProgress> {
  const progress: CaptureProgress = { events: 0, markers: 0, bytes: 0 };
  const saved = await o.store.getCaptureCheckpoint(o.migrationId);
  const start = saved ? undefined : await startPoint(o, mon);
  if (o.signal.aborted) return progress;
  // resumeAfter, not startAfter: Amazon DocumentDB documents resuming "from a resume token" and
  // with startAtOperationTime only (change_streams.html, Supported operations); startAfter only
  // differs after an invalidate, which a deployment-wide stream never emits.
  const startOpts: Document = saved
    ? { resumeAfter: saved.rt }
    : start?.rt
      ? { resumeAfter: start.rt }
      : start?.ct
        ? { startAtOperationTime: start.ct }
        : {};
  if (saved) progress.events = saved.counters.events ?? 0;
  // Every record carries the migration's tag; apply ignores records of other migrations.
  const migration = await o.store.getMigration(o.migrationId);
  const mig = migrationTag(o.migrationId, migration?.nonce);
  const from = saved ? `the checkpoint (${describeStart(startOpts)})` : describeStart(startOpts);

  let producer: OrderedProducer;
  let stopping = false;
  /** A fatal producer error (e.g. the stream was deleted) stops the read loop at once. */
  let producerFailure: unknown;
  await checkStream(o);
  try {
    producer = await createOrderedProducer({
      client: o.kinesis,
      streamName: o.streamName,
      maxBufferedBytes: o.maxBufferedBytes,
      onRetry: (r) => {
        mon.hb.beat(); // retrying is progress of a kind: not wedged
        o.log.debug({ ...r }, 'kinesis retry');
      },
      onError: (err) => {
        if (stopping) return; // our own abort of a slow flush
        producerFailure = err;
        void stream?.close().catch(() => undefined);
      },
    });
  } catch (err) {
    if (err instanceof MigratorError) throw err;
    throw new MigratorError(ExitCode.STREAM_FAILED, `Cannot write to Kinesis stream ${o.streamName}: ${errorMessage(err)}.`, {
      hint: 'Check --kinesis-stream, --region / --kinesis-endpoint, that the stream is ACTIVE, and the AWS credentials.',
      cause: err,
    });
  }

  const tracker = new CheckpointTracker();
  const unsubscribe = producer.onDurable((tag) => {
    tracker.markDurable(tag);
    mon.hb.beat();
  });
  let tag = 0;
  let sinceSave = 0;
  let saving: Promise<void> = Promise.resolve();
  const save = () => {
    // Serialized; the store's guard also refuses to move the checkpoint backwards.
    saving = saving.then(async () => {
      const pos = tracker.takeCheckpoint();
      if (!pos) return;
      await o.store.saveCaptureCheckpoint(o.migrationId, pos, {
        events: progress.events,
        markers: progress.markers,
        bytes: progress.bytes,
        lastEventAtMs: progress.lastEventAt?.getTime() ?? 0,
      });
      progress.checkpoint = pos;
      stats.capture.checkpoints++;
      stats.capture.lastCheckpointAtMs = Date.now();
      o.onProgress?.({ ...progress });
    });
    return saving;
  };
  const timer = setInterval(() => void save().catch((err: unknown) => o.log.warn({ err: errorMessage(err) }, 'checkpoint save failed')), o.checkpointIntervalMs ?? 1000);

  const pipeline = [
    {
      $match: {
        $or: [
          o.rules.changeStreamMatch().$match,
          { 'ns.db': o.rules.stateDb, 'ns.coll': MARKER_COLLECTION, operationType: 'insert' },
          { 'ns.db': o.rules.stateDb, 'ns.coll': POSITION_MARKER_COLLECTION },
        ],
      },
    },
  ];
  const markerNs = (e: Document) => e.ns?.db === o.rules.stateDb && e.ns?.coll === MARKER_COLLECTION;
  const positionMarkerNs = (e: Document) => e.ns?.db === o.rules.stateDb && e.ns?.coll === POSITION_MARKER_COLLECTION;
  // IDLE HEARTBEAT: where idle batches carry no usable position (Amazon DocumentDB documents no
  // postBatchResumeToken, and its tokens hold no readable cluster time), an idle capture's
  // checkpoint would stay at its last event while the change stream log expires behind it
  // (change_stream_log_retention_duration, 3 h by default:
  // https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html), and a
  // restart after a quiet period would fail with history lost. A write to the position-marker
  // collection now and then gives the stream an event to checkpoint.
  const heartbeatMs = o.idleHeartbeatMs ?? DEFAULT_IDLE_HEARTBEAT_MS;
  // Started "now" (plain CDC, no checkpoint): beat at once, so the start gets a checkpoint soon.
  let lastProgressAt = saved || start?.rt || start?.ct ? Date.now() : 0;
  let heartbeat: Promise<unknown> | undefined;
  const beat = () => {
    if (heartbeat || Date.now() - lastProgressAt < heartbeatMs) return;
    lastProgressAt = Date.now();
    heartbeat = o.source
      .db(o.rules.stateDb)
      .collection<{ _id: string; at: Date }>(POSITION_MARKER_COLLECTION)
      .updateOne({ _id: `heartbeat-${o.migrationId}` }, { $set: { at: new Date() } }, { upsert: true })
      .catch((err: unknown) => o.log.warn({ err: errorMessage(err) }, `idle heartbeat write to ${o.rules.stateDb}.${POSITION_MARKER_COLLECTION} failed`))
      .finally(() => (heartbeat = undefined));
  };
  // Events over 16 MiB (see large-events.ts): split where the server has the stage; else, after
  // a BSONObjectTooLarge, a bounded "slim" window whose documents are re-read from the source.
  const version = await sourceVersion(o.source).catch(() => '');
  let useSplit = splitLargeEventSupported(version);
  // SCHEMA EVENTS: create / createIndexes / dropIndexes / modify where the source has them
  // (expanded-events.ts); a refusal turns them off, like the split stage.
  let useExpanded = expandedEventsSupported(version);
  let slimLeft = 0;
  /** Events read in the current slim window (it ends on idle only after reading some). */
  let slimRead = 0;
  let readOk = false;
  const fragments = new FragmentAssembler();
  let stream: ChangeStream | undefined;
  const onAbort = () => void stream?.close().catch(() => undefined);
  o.signal.addEventListener('abort', onAbort, { once: true });
  o.log.info({ stream: o.streamName, from }, 'capture starting');
  let lastCt: Timestamp | undefined = saved?.ct;
  /** The newest token read: everything up to it is in the producer, in order. */
  let lastSeen: Document | undefined;
  let failures = 0;
  const open = (resumeOpts: Document) => {
    readOk = false;
    fragments.reset();
    const stages: Document[] = slimLeft > 0 ? [...pipeline, SLIM_STAGE] : useSplit ? [...pipeline, SPLIT_STAGE] : pipeline;
    return o.source.watch(stages, {
      fullDocument: slimLeft > 0 ? 'default' : 'updateLookup',
      maxAwaitTimeMS: o.maxAwaitTimeMs ?? 500,
      batchSize: 2000,
      // Whatever the URI says: Amazon DocumentDB 4.0 opens change streams with primary read
      // preference only (https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html, Limitations).
      readPreference: 'primary',
      ...(useExpanded ? { showExpandedEvents: true } : {}),
      ...EXACT_BSON_OPTIONS,
      ...resumeOpts,
    });
  };
  const reopen = async () => {
    await stream?.close().catch(() => undefined);
    stream = open(lastSeen ? { resumeAfter: lastSeen } : startOpts);
  };
  /** Slim window: the event's documents as they are now on the source (see large-events.ts). */
  const reread = async (event: Document): Promise<Document> => {
    const op = event.operationType;
    if (op !== 'insert' && op !== 'update' && op !== 'replace') return event;
    const ns = event.ns as Document;
    const doc = await retryTransient('source', () =>
      o.source
        .db(String(ns.db))
        .collection(String(ns.coll))
        .findOne(event.documentKey as Document, { ...EXACT_BSON_OPTIONS }),
    );
    if (op === 'update') return { ...event, fullDocument: doc ?? null }; // null: deleted since, its delete follows
    // Gone since: its delete follows; sending a delete now keeps the target right meanwhile.
    return doc ? { ...event, fullDocument: doc } : { ...event, operationType: 'delete' };
  };
  try {
    stream = open(startOpts);
    // ORIGIN: before any event, every shard gets a record saying how much of the migration
    // precedes it in the stream (0 on the migration's first capture, or after a restart without a
    // checkpoint, which re-reads everything from the resume point). Apply, starting a shard at its
    // beginning, must meet an origin with sent 0 first; else retention removed the start.
    const sent = (saved?.counters.events ?? 0) + (saved?.counters.markers ?? 0);
    await producer.sendBroadcast(encodeEnvelope(originEnvelope(sent, mig)), ++tag);
    mon.state = 'capturing';
    while (!o.signal.aborted) {
      if (producerFailure !== undefined) throw streamFailure(o.streamName, producerFailure);
      let event: Document | null;
      try {
        event = await tryNextCachingToken(stream);
        mon.hb.beat(); // an event, or an idle getMore (maxAwaitTimeMs): progress either way
        failures = 0;
        readOk = true;
      } catch (err) {
        if (o.signal.aborted) break;
        if (producerFailure !== undefined) throw streamFailure(o.streamName, producerFailure);
        if (useSplit && !readOk && isSplitStageRefused(errorCode(err), errorMessage(err))) {
          useSplit = false;
          o.log.info({ err: errorMessage(err) }, 'the source refused $changeStreamSplitLargeEvent: capturing without it');
          await reopen();
          continue;
        }
        if (useExpanded && !readOk && isExpandedEventsRefused(errorCode(err), errorMessage(err))) {
          useExpanded = false;
          o.log.info({ err: errorMessage(err) }, 'the source refused showExpandedEvents: index and collection option changes are reconciled at the cutover instead of replayed');
          await reopen();
          continue;
        }
        if (errorCode(err) === BSON_OBJECT_TOO_LARGE) {
          // Reopening as before would hit the same event again, forever: read past it slim.
          if (slimLeft > 0) {
            throw new MigratorError(ExitCode.INTERNAL, `Capture stopped: a change event stays over 16 MiB even without its documents (${errorMessage(err)}).`, { cause: err });
          }
          slimLeft = SLIM_WINDOW_EVENTS;
          slimRead = 0;
          o.log.warn(
            { err: errorMessage(err), after: lastSeen, window: SLIM_WINDOW_EVENTS },
            'a change event is over 16 MiB (BSONObjectTooLarge): reading on without document images and sending the current state of each changed document, re-read by its key from the source',
          );
          await reopen();
          continue;
        }
        const fatal = captureFailure(err, from, Boolean(lastSeen ?? startOpts.resumeAfter));
        if (fatal || !isTransient(err) || ++failures > 10) throw fatal ?? err;
        // The driver resumes by itself on most errors; when it gives up on a transient one,
        // reopen after the last token read (all events up to it are already in the producer).
        const delay = Math.min(30_000, 250 * 2 ** failures);
        o.log.warn({ err: errorMessage(err), attempt: failures, delayMs: delay }, 'change stream error; reopening');
        await stream.close().catch(() => undefined);
        await new Promise((r) => setTimeout(r, delay));
        stream = open(lastSeen ? { resumeAfter: lastSeen } : startOpts);
        continue;
      }
      if (event === null && slimLeft > 0 && slimRead > 0 && !fragments.pending) {
        // The slim window caught up with the source: back to full events.
        slimLeft = 0;
        o.log.info({ after: lastSeen }, 'past the large change event: reading full change events again');
        await reopen();
        continue;
      }
      if (event !== null) {
        // Fragments of a split event: no position is recorded until the whole event is here.
        event = fragments.add(event) ?? null;
        if (event === null) continue;
        if (slimLeft > 0) {
          slimRead++;
          event = await reread(event);
          if (--slimLeft === 0) {
            // Processed below; the window closes after it.
            slimLeft = -1;
          }
        }
      }
      if (event === null) {
        if (fragments.pending) continue;
        // Idle: the postBatchResumeToken is a position after everything seen; checkpointing it
        // keeps an idle capture from falling behind the source's bounded history.
        const rt = stream.resumeToken as Document | undefined;
        const decoded = clusterTimeFromResumeToken(rt);
        const ct = decoded ?? lastCt;
        if (rt && ct) {
          tracker.record(tag, { ct, rt });
          lastSeen = rt;
        }
        if (decoded) lastProgressAt = Date.now();
        else beat();
        continue;
      }
      lastProgressAt = Date.now();
      let envelope: ChangeEnvelope | undefined;
      if (positionMarkerNs(event)) {
        envelope = undefined; // position only
      } else if (markerNs(event)) {
        const id = String((event.documentKey as Document | undefined)?._id ?? '');
        envelope = barrierEnvelope(id, positionOf({ ct: event.clusterTime as Timestamp, rt: event._id as Document }));
        progress.markers++;
        o.log.info({ barrier: id }, 'cutover marker captured');
      } else {
        try {
          // A create event gets the new collection's options (expanded-events.ts).
          if (event.operationType === 'create') {
            const created = event;
            event = await retryTransient('source', () => withCreateOptions(o.source, created));
          }
          envelope = envelopeFromChangeEvent(event);
        } catch (err) {
          if (err instanceof UnsupportedChangeEventError && err.kind === 'ignorable') {
            envelope = undefined;
            // Sharding events (shardCollection, reshardCollection, refineCollectionShardKey) and
            // Atlas Search index events: how the target is sharded is the user's choice.
            const ns = event.ns as Document | undefined;
            o.log.info({ op: err.operationType, ns: ns ? `${String(ns.db)}.${String(ns.coll ?? '')}` : undefined }, 'change event not replayed on the target (sharding and search indexes are the target\'s own)');
          } else if (isTransient(err)) {
            throw err;
          } else {
            throw new MigratorError(ExitCode.INTERNAL, `Capture stopped: ${errorMessage(err)}.`, { cause: err });
          }
        }
        if (envelope && !o.rules.acceptsEnvelope(envelope)) envelope = undefined;
      }
      const pos = positionOf({ ct: event.clusterTime as Timestamp, rt: event._id as Document });
      lastCt = pos.ct;
      lastSeen = pos.rt;
      if (envelope) {
        envelope.mig = mig;
        const payload = encodeEnvelope(envelope);
        tag++;
        // Backpressure: resolves once the producer's bounded buffer has room.
        try {
          if (isBroadcast(envelope)) await producer.sendBroadcast(payload, tag);
          else await producer.send(routingKey(envelope)!, payload, tag);
        } catch (err) {
          throw streamFailure(o.streamName, producerFailure ?? err);
        }
        progress.events++;
        progress.bytes += payload.length;
        addOp(stats.capture.events, envelope.op);
        stats.capture.bytes += payload.length;
        if (envelope.wt) progress.lastEventAt = envelope.wt;
      }
      tracker.record(tag, pos);
      if (++sinceSave >= (o.checkpointEveryEvents ?? 1000)) {
        sinceSave = 0;
        void save();
      }
      if (slimLeft < 0) {
        slimLeft = 0;
        o.log.info({ after: lastSeen }, 'slim window over: reading full change events again');
        await reopen();
      }
    }
    // Graceful stop: what was handed over is flushed, for at most STOP_FLUSH_MS (a stop must end
    // within a container's grace period even with a large backlog or a throttled stream); what is
    // not durable by then is not checkpointed and is read again from the source on restart.
    stopping = true;
    const flushed = await Promise.race([
      producer.close().then(() => true, () => false),
      new Promise<boolean>((r) => setTimeout(() => r(false), o.stopFlushMs ?? STOP_FLUSH_MS).unref()),
    ]);
    if (!flushed) {
      producer.abort('capture stopping');
      o.log.warn({ flushMs: o.stopFlushMs ?? STOP_FLUSH_MS }, 'stopping without flushing everything: the rest is re-read from the source on restart');
    }
    await save();
    o.log.info({ events: progress.events }, 'capture stopped');
    return progress;
  } catch (err) {
    // What is durable may still be checkpointed (the tracker never runs ahead); the rest is
    // re-read from the source on restart.
    await save().catch(() => undefined);
    void producer.close().catch(() => undefined);
    throw err;
  } finally {
    clearInterval(timer);
    o.signal.removeEventListener('abort', onAbort);
    unsubscribe();
    await stream?.close().catch(() => undefined);
    await saving.catch(() => undefined);
  }
}
