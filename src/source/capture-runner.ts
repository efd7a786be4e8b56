import type { Document, MongoClient, Timestamp } from 'mongodb';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { LeaseKeeper } from '../state/lease-keeper.js';
import { defaultOwnerId, isDeadLocalOwner } from '../state/lease-owner.js';
import type { CaptureStateStore } from '../state/store.js';
import { createOrderedProducer, type OrderedProducer } from '../transport/ordered-producer.js';
import { sleep } from '../util/retry.js';
import { describeStreamLimits } from '../transport/stream-limits.js';
import type { Logger } from '../util/logger.js';
import {
  clusterTimeFromResumeToken,
  encodeEnvelope,
  migrationTag,
  originEnvelope,
  isBroadcast,
  positionOf,
  routingKey,
  type ChangeEnvelope,
} from '../model/change-envelope.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { health, type Heartbeat } from '../observability/health.js';
import { addOp, stats } from '../observability/stats.js';
import { CaptureCheckpointer, type CaptureProgress } from './capture-checkpointer.js';
import { describeStart, streamFailure, streamUnreachable } from './capture-errors.js';
import { IdleHeartbeat, capturePipeline, envelopeOf } from './capture-events.js';
import { ChangeStreamReader } from './change-stream-reader.js';
import { assertStreamActive } from '../transport/stream-errors.js';

export { MARKER_COLLECTION, POSITION_MARKER_COLLECTION } from './capture-events.js';
export type { CaptureProgress } from './capture-checkpointer.js';

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

const DEFAULT_CAPTURE_LEASE_TTL_MS = 30_000;
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

/** The stream exists and is ACTIVE (exit 5 otherwise): checked before anything waits, so a wrong stream fails at once. */
async function checkStream(o: CaptureOptions): Promise<void> {
  try {
    const limits = await describeStreamLimits(o.kinesis, o.streamName);
    assertStreamActive(o.streamName, limits.streamStatus);
  } catch (err) {
    throw streamUnreachable(o.streamName, err);
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

/** Where a capture starts: its checkpoint, else its start point (`undefined`: stopped while waiting for it). */
async function beginning(o: CaptureOptions, mon: CaptureMonitor) {
  const saved = await o.store.getCaptureCheckpoint(o.migrationId);
  const start = saved ? undefined : await startPoint(o, mon);
  if (o.signal.aborted) return undefined;
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
  // Every record carries the migration's tag; apply ignores records of other migrations.
  const migration = await o.store.getMigration(o.migrationId);
  return {
    saved,
    startOpts,
    from: saved ? `the checkpoint (${describeStart(startOpts)})` : describeStart(startOpts),
    mig: migrationTag(o.migrationId, migration?.nonce),
  };
}

type Beginning = NonNullable<Awaited<ReturnType<typeof beginning>>>;

async function captureWhileLeased(o: CaptureOptions, mon: CaptureMonitor): Promise<CaptureProgress> {
  const begin = await beginning(o, mon);
  if (!begin) return { events: 0, markers: 0, bytes: 0 };
  await checkStream(o);
  const session = new CaptureSession(o, mon, begin.mig, begin.saved?.ct);
  if (begin.saved) session.progress.events = begin.saved.counters.events ?? 0;
  await session.openProducer();
  const version = await sourceVersion(o.source).catch(() => '');
  return session.run(begin, version);
}

/**
 * One leased capture: the change stream reader → envelopes → the ordered producer, with the
 * checkpointer recording every position behind the producer's acknowledgements.
 */
class CaptureSession {
  readonly progress: CaptureProgress = { events: 0, markers: 0, bytes: 0 };
  private producer!: OrderedProducer;
  private checkpointer!: CaptureCheckpointer;
  /** A fatal producer error (e.g. the stream was deleted) stops the read loop at once. */
  private producerFailure: unknown;
  private readonly halt = new AbortController();
  private stopping = false;
  /** The tag of the last payload handed to the producer (tags start at 1). */
  private tag = 0;

  constructor(
    private readonly o: CaptureOptions,
    private readonly mon: CaptureMonitor,
    private readonly mig: string,
    /** The cluster time of the newest position (idle tokens without one reuse it). */
    private lastCt: Timestamp | undefined,
  ) {}

  async openProducer(): Promise<void> {
    const { o, mon } = this;
    try {
      this.producer = await createOrderedProducer({
        client: o.kinesis,
        streamName: o.streamName,
        maxBufferedBytes: o.maxBufferedBytes,
        onRetry: (r) => {
          mon.hb.beat(); // retrying is progress of a kind: not wedged
          o.log.debug({ ...r }, 'kinesis retry');
        },
        onError: (err) => {
          if (this.stopping) return; // our own abort of a slow flush
          this.producerFailure = err;
          this.halt.abort();
        },
      });
    } catch (err) {
      throw streamUnreachable(o.streamName, err);
    }
  }

  async run(begin: Beginning, version: string): Promise<CaptureProgress> {
    const { o, mon } = this;
    this.checkpointer = new CaptureCheckpointer({
      store: o.store, migrationId: o.migrationId, progress: this.progress, everyEvents: o.checkpointEveryEvents, intervalMs: o.checkpointIntervalMs, log: o.log, onProgress: o.onProgress,
    });
    const unsubscribe = this.producer.onDurable((tag) => {
      this.checkpointer.markDurable(tag);
      mon.hb.beat();
    });
    const signal = AbortSignal.any([o.signal, this.halt.signal]);
    const reader = new ChangeStreamReader({
      source: o.source, pipeline: capturePipeline(o.rules), start: begin.startOpts, from: begin.from, version,
      maxAwaitTimeMs: o.maxAwaitTimeMs, signal, log: o.log, onRead: () => mon.hb.beat(),
    });
    const heartbeat = new IdleHeartbeat(
      { source: o.source, stateDb: o.rules.stateDb, migrationId: o.migrationId, log: o.log, everyMs: o.idleHeartbeatMs },
      Boolean(begin.startOpts.resumeAfter || begin.startOpts.startAtOperationTime),
    );
    o.log.info({ stream: o.streamName, from: begin.from }, 'capture starting');
    try {
      // ORIGIN: before any event, every shard gets a record saying how much of the migration
      // precedes it in the stream (0 on the migration's first capture, or after a restart without a
      // checkpoint, which re-reads everything from the resume point). Apply, starting a shard at its
      // beginning, must meet an origin with sent 0 first; else retention removed the start.
      const sent = (begin.saved?.counters.events ?? 0) + (begin.saved?.counters.markers ?? 0);
      await this.producer.sendBroadcast(encodeEnvelope(originEnvelope(sent, this.mig)), ++this.tag);
      mon.state = 'capturing';
      await this.pump(reader, heartbeat, signal);
      return await this.stop();
    } catch (err) {
      // What is durable may still be checkpointed (the tracker never runs ahead); the rest is
      // re-read from the source on restart.
      await this.checkpointer.save().catch(() => undefined);
      void this.producer.close().catch(() => undefined);
      throw err;
    } finally {
      unsubscribe();
      await reader.close();
      await this.checkpointer.stop();
    }
  }

  /** The event loop: until the signal aborts (a stop) or the producer fails (thrown). */
  private async pump(reader: ChangeStreamReader, heartbeat: IdleHeartbeat, signal: AbortSignal): Promise<void> {
    for (;;) {
      // A producer failure aborts `signal` too: it is an error, not a stop.
      if (this.producerFailure !== undefined) throw streamFailure(this.o.streamName, this.producerFailure);
      if (signal.aborted) return;
      const event = await reader.next();
      if (event === undefined) continue; // stopped (or the producer failed): see above
      if (event === null) {
        // Idle: the postBatchResumeToken is a position after everything seen; checkpointing it
        // keeps an idle capture from falling behind the source's bounded history.
        const rt = reader.resumeToken;
        const decoded = clusterTimeFromResumeToken(rt);
        const ct = decoded ?? this.lastCt;
        if (rt && ct) {
          this.checkpointer.recordIdle(this.tag, { ct, rt });
          reader.resumeAfter(rt);
        }
        if (decoded) heartbeat.progressed();
        else heartbeat.beat();
        continue;
      }
      heartbeat.progressed();
      const envelope = await envelopeOf({ source: this.o.source, rules: this.o.rules, log: this.o.log, signal }, event);
      if (envelope === null) continue; // stopped while re-reading the source: nothing recorded for this event
      const pos = positionOf({ ct: event.clusterTime as Timestamp, rt: event._id as Document });
      this.lastCt = pos.ct;
      if (envelope) await this.send(envelope);
      // Recorded with the tag of its own payload (or the previous one): checkpointed only once
      // Kinesis acknowledged every payload up to it.
      this.checkpointer.recordEvent(this.tag, pos);
    }
  }

  /** Hands one envelope to the producer, in stream order; resolves once its bounded buffer has room. */
  private async send(envelope: ChangeEnvelope): Promise<void> {
    envelope.mig = this.mig;
    if (envelope.op === 'barrier') this.progress.markers++;
    const payload = encodeEnvelope(envelope);
    this.tag++;
    // Backpressure: resolves once the producer's bounded buffer has room.
    try {
      if (isBroadcast(envelope)) await this.producer.sendBroadcast(payload, this.tag);
      else await this.producer.send(routingKey(envelope)!, payload, this.tag);
    } catch (err) {
      throw streamFailure(this.o.streamName, this.producerFailure ?? err);
    }
    this.progress.events++; // barriers included, as the checkpoint's counters always had them
    this.progress.bytes += payload.length;
    addOp(stats.capture.events, envelope.op);
    stats.capture.bytes += payload.length;
    if (envelope.wt) this.progress.lastEventAt = envelope.wt;
  }

  /**
   * Graceful stop: what was handed over is flushed, for at most STOP_FLUSH_MS (a stop must end
   * within a container's grace period even with a large backlog or a throttled stream); what is
   * not durable by then is not checkpointed and is read again from the source on restart.
   */
  private async stop(): Promise<CaptureProgress> {
    this.stopping = true;
    const flushMs = this.o.stopFlushMs ?? STOP_FLUSH_MS;
    const flushed = await Promise.race([
      this.producer.close().then(() => true, () => false),
      new Promise<boolean>((r) => setTimeout(() => r(false), flushMs).unref()),
    ]);
    if (!flushed) {
      this.producer.abort('capture stopping');
      this.o.log.warn({ flushMs }, 'stopping without flushing everything: the rest is re-read from the source on restart');
    }
    await this.checkpointer.save();
    this.o.log.info({ events: this.progress.events }, 'capture stopped');
    return this.progress;
  }
}
