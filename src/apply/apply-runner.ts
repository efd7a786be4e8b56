/**
 * The apply loop of `migrator apply`: reads the Kinesis stream (every shard this process holds a
 * lease on), applies each batch to the target through one ApplyWriter per shard, and checkpoints.
 *
 * Invariants:
 *  - CHECKPOINT AFTER ACK: a shard's checkpoint (Kinesis sequence number + last applied event
 *    position) is saved only after ApplyWriter.applyBatch (or its `onProgress` hook) returned, i.e.
 *    after the target acknowledged every write it covers. A crash replays from the checkpoint;
 *    the writes are idempotent and envelopes at or before the saved position are skipped.
 *  - NO CHECKPOINT PAST A CONFLICT: a batch with unresolved duplicate-key conflicts is re-applied
 *    (idempotent) with backoff until it is clean or `conflictRetryLimitMs` ran out (then: fatal,
 *    APPLY_FAILED); neither its checkpoint, nor its barriers, nor a DDL after the conflict go
 *    through before that.
 *  - DDL: the writer splits a batch at each DDL and calls `onProgress` right before and right
 *    after it; both save a checkpoint (same sequence number as before the batch, position up to
 *    the DDL), so a replay never re-applies what preceded an applied DDL. The DDL runs once for
 *    all shards through the DDL gate (ddl-gate.ts).
 *  - LEASES: a shard is read only while its lease is held (LeaseKeeper). Every target write of
 *    the shard passes the lease fence (fenced-target.ts): none starts once the lease is lost or
 *    nearly expired, so the old owner has stopped writing before a new one can take the shard
 *    (expiry + grace). On lease loss the consumer is rebuilt, which re-decides ownership from the
 *    state store and restarts every shard from its saved checkpoint.
 *  - Barriers are recorded (idempotently) before the checkpoint that passes them is saved, so a
 *    crash in between replays them instead of losing them.
 *
 * Shutdown (the `signal`): readers stop, the batch being applied is finished and checkpointed
 * (waits at a DDL rendezvous and conflict retries are cut short, their batch is replayed later),
 * leases are released, and runApply resolves with `stopReason: 'interrupted'`.
 */
import { DescribeStreamSummaryCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { BSON, type MongoClient } from 'mongodb';
import {
  decodeEnvelope,
  isAtOrBefore,
  migrationTag,
  type ChangeEnvelope,
  type EventPosition,
} from '../model/change-envelope.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { LOAD_PHASES, phaseBeforeFailure, type Counters, type MigrationDoc, type ApplyStateStore } from '../state/store.js';
import { assertStreamActive, classifyError, errorName } from '../transport/stream-errors.js';
import { listAllShards, type ShardInfo } from '../transport/shard-map.js';
import type { ShardBatch, ShardCheckpoint, ShardReaderTuning } from '../transport/shard-reader.js';
import { StreamConsumer, type ShardState } from '../transport/stream-consumer.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { createDdlGate } from './ddl-gate.js';
import { ApplyWriteError, RetriesExhaustedError, UnmappableDdlError, isTransientError } from './errors.js';
import { fencedClient } from './fenced-target.js';
import { LeaseKeeper, LeaseLostError } from '../state/lease-keeper.js';
import { backoffDelay, withRetry, type RetryPolicy } from './retry.js';
import { ApplyWriter, type ApplyConflict, type ApplyResult, type ApplyStats } from './writer.js';
import type { KeyFilterMode } from './plan.js';
import { streamParams } from '../model/stream-ref.js';
import { health, type ComponentState, type Heartbeat } from '../observability/health.js';
import { observeApplyLag } from '../observability/stats.js';
import { addOp, stats, type ApplyView, type LeaseHolderView } from '../observability/stats.js';

export { LeaseLostError };

/**
 * Sequence number saved for a shard that has no applied record yet but needs a checkpoint (a
 * position saved around a DDL in its first batch, or an empty closed shard). Real Kinesis
 * sequence numbers are never "0"; it is read back as "start of the shard" (TRIM_HORIZON).
 */
export const START_OF_SHARD_SEQUENCE = '0';

export const DEFAULT_LEASE_TTL_MS = 30_000;
export const DEFAULT_CONFLICT_RETRY_LIMIT_MS = 60_000;
export const DEFAULT_STATUS_INTERVAL_MS = 10_000;
/** A shard with work in hand and no target write acknowledged for this long is reported stalled (WARN, status). */
export const DEFAULT_STALL_WARN_MS = 60_000;
/** …and after this long apply fails with APPLY_STALLED. */
export const DEFAULT_STALL_FAIL_MS = 15 * 60_000;

/** Counters kept in each shard's checkpoint (cumulative over the shard's life). */
export interface ApplyCounters extends Counters {
  /** Envelopes read and processed (applied, skipped as re-sent, or filtered). */
  events: number;
  /** replaceOne upserts (insert / replace / update with a full document). */
  upserts: number;
  /** Delta updates (update without a full document). */
  updates: number;
  deletes: number;
  /** DDL run on the target by this shard (a DDL is run by one shard, the others skip it). */
  ddl: number;
  /** Not written: re-sent (at or before the last applied position), filtered out, or null post-image. */
  skipped: number;
  /** Superseded by a later event of the same document in the same batch. */
  collapsed: number;
  barriers: number;
  batches: number;
  /** Batch re-applications because of duplicate-key conflicts. */
  conflictRetries: number;
  /** clusterTime (seconds) of the last applied event; 0 = none yet. */
  lastClusterTime: number;
  /** wallTime (ms since epoch) of the last applied event that carried one; 0 = unknown. */
  lastWallTime: number;
  /** From the last GetRecords of the shard; -1 = unknown. */
  millisBehindLatest: number;
}

export function emptyCounters(): ApplyCounters {
  return {
    events: 0,
    upserts: 0,
    updates: 0,
    deletes: 0,
    ddl: 0,
    skipped: 0,
    collapsed: 0,
    barriers: 0,
    batches: 0,
    conflictRetries: 0,
    lastClusterTime: 0,
    lastWallTime: 0,
    millisBehindLatest: -1,
  };
}

/** How often apply publishes each held shard's appliedThroughAt to the state store. */
const PUBLISH_PROGRESS_MS = 1_000;
/** How often an apply with `exitWhenCompleted` reads the migration's phase (one findOne by _id). */
const COMPLETED_POLL_MS = 2_000;

const SUMMED: (keyof ApplyCounters)[] = ['events', 'upserts', 'updates', 'deletes', 'ddl', 'skipped', 'collapsed', 'barriers', 'batches', 'conflictRetries'];

export interface ApplyShardStatus {
  shardId: string;
  /** The consumer's view: reading, ended, not-owned (another process holds it), waiting-for-parents, stopped. */
  state: ShardState;
  /** This process holds the shard's lease. */
  leased: boolean;
  caughtUp: boolean;
  millisBehindLatest: number | undefined;
  /**
   * Wall-clock time (ms) up to which every record of the shard is known applied: the send time of
   * the last GetRecords call that found the shard at its tip, or of the call that produced the
   * last applied batch minus its MillisBehindLatest. Undefined until known.
   */
  appliedThroughAt: number | undefined;
  /** Since when the shard has had work in hand and no target write acknowledged (stall), if it has. */
  stalledSince: Date | undefined;
  /** Last saved checkpoint sequence number (this process's shards). */
  sequenceNumber: string | undefined;
  counters: ApplyCounters | undefined;
}

export interface ApplyStatus {
  ownerId: string;
  at: Date;
  /** Every shard is caught up (read to the tip and applied) or ended, by this process. */
  caughtUp: boolean;
  shards: ApplyShardStatus[];
  /** Sums over this process's shards (cumulative counters from their checkpoints). */
  totals: ApplyCounters;
  /** Envelopes processed by this runApply call. */
  sessionEvents: number;
}

export interface ApplyRunResult {
  /** 'completed': the migration's phase is COMPLETED (`exitWhenCompleted`). */
  stopReason: 'caught-up' | 'interrupted' | 'completed';
  status: ApplyStatus;
}

/** Tuning of the Kinesis reading side (see StreamConsumer / ShardReader). */
export interface ApplyConsumerTuning extends ShardReaderTuning {
  /** ListShards period: discovery of new/free shards (default min(10 s, lease ttl / 3)). */
  shardDiscoveryIntervalMs?: number;
}

export interface ApplyRunnerOptions {
  target: MongoClient;
  store: ApplyStateStore;
  migrationId: string;
  rules: NamespaceRules;
  kinesis: KinesisClient;
  streamName: string;
  /** Unique per process incarnation: see {@link defaultOwnerId}. */
  ownerId: string;
  logger: Logger;
  /** Default 30 s. Leases are renewed every ttl/3. */
  leaseTtlMs?: number;
  /** Grace after expiry before another owner may take a lease (default: the store's, 1 s). */
  leaseGraceMs?: number;
  /** Hold at most this many shard leases (default: every free shard). */
  maxShards?: number;
  signal?: AbortSignal;
  /** Called every `statusIntervalMs` and once at the end. */
  onStatus?: (status: ApplyStatus) => void;
  /** Progress log / onStatus period (default 10 s). */
  statusIntervalMs?: number;
  /** Period of the 'apply progress' log line (default 10 s; at least statusIntervalMs). */
  progressLogIntervalMs?: number;
  /**
   * Resolve with 'caught-up' once every shard of the stream is caught up (or ended) and everything
   * read has been applied by THIS process (shards held by others keep it waiting).
   */
  stopWhenCaughtUp?: boolean;
  /** Plain CDC: no full migration behind this id, so no migration document to wait for (see waitForInitialLoad). */
  cdcOnly?: boolean;
  /**
   * Resolve with 'completed' once the migration's phase is COMPLETED (read every 2 s, and before
   * anything is applied): a `migrator apply` beside full-migrate has nothing left to do after the
   * cutover (every shard applied the barrier before COMPLETED), and applying source changes to
   * the target after it would overwrite what the applications now write there. Set by the CLI
   * unless --cdc-only (plain CDC has no phase); full-migrate stops its own apply itself.
   */
  exitWhenCompleted?: boolean;
  /** How long a batch with unresolved duplicate-key conflicts is retried (default 60 s). */
  conflictRetryLimitMs?: number;
  /** Backoff between conflict retries (default 100 ms doubling up to 5 s, jittered). */
  conflictRetryPolicy?: { initialDelayMs: number; maxDelayMs: number };
  /** DDL rendezvous poll period (default 500 ms). */
  ddlPollMs?: number;
  consumer?: ApplyConsumerTuning;
  writer?: { retryPolicy?: RetryPolicy; keyFilter?: KeyFilterMode; writeTimeoutMs?: number };
  /**
   * Stall bounds: a shard with a batch in hand and no target write acknowledged for `warnMs`
   * (default 60 s) is logged (WARN, repeated every `warnMs`) and shown stalled in `status`; after
   * `failMs` (default 15 min) apply fails with APPLY_STALLED. Waits for other shards (a DDL
   * rendezvous) and conflict backoff are not stalls.
   */
  stall?: { warnMs?: number; failMs?: number };
  /** Release held leases when returning (default true). false simulates a crash (tests). */
  releaseLeasesOnExit?: boolean;
}

/** hostname:pid:random — unique per process incarnation. */
export { defaultOwnerId } from '../state/lease-owner.js';

// ---------------------------------------------------------------------------------------------
// Internal signals

/** The process is stopping (signal): the shard's work is cut short, to be replayed. */
class ApplyInterrupted extends Error {
  override name = 'ApplyInterrupted';
}

/** A fatal failure of one shard's batch (wraps the cause). */
class ShardFailure extends Error {
  override name = 'ShardFailure';
  constructor(
    readonly shardId: string,
    readonly error: unknown,
  ) {
    super(`shard ${shardId}: ${errorMessage(error)}`, { cause: error });
  }
}

/** onProgress saw unresolved conflicts before a DDL: abort the batch, retry it later. */
class PendingConflicts extends Error {
  override name = 'PendingConflicts';
  constructor(readonly conflicts: readonly ApplyConflict[]) {
    super(`${conflicts.length} unresolved duplicate-key conflict(s)`);
  }
}

function findCause<T>(err: unknown, is: (e: unknown) => e is T): T | undefined {
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    if (is(e)) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

const isLeaseLost = (e: unknown): e is LeaseLostError => e instanceof LeaseLostError;
const isInterrupted = (e: unknown): e is ApplyInterrupted => e instanceof ApplyInterrupted;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const ejson = (v: unknown) => BSON.EJSON.stringify(v as BSON.Document, { relaxed: true });

// ---------------------------------------------------------------------------------------------
// Per-shard state

interface ShardRun {
  shardId: string;
  /** Lease epoch this state was loaded under. */
  epoch: number;
  writer: ApplyWriter;
  /** Aborted when the lease is lost or the process stops. */
  abort: AbortController;
  /** Last saved sequence number (undefined: nothing saved yet / start of shard). */
  sequenceNumber: string | undefined;
  /** Last applied event position (skip envelopes at or before it). */
  position: EventPosition | undefined;
  counters: ApplyCounters;
  /** Stall clock: when the batch in hand started, or the last write ack / wait end after that (wall ms); undefined when idle. */
  busySince: number | undefined;
  /** Waiting for other shards or a conflict backoff: not a stall. */
  waiting: boolean;
  stalledSince: Date | undefined;
  lastStallWarnAt: number;
  /** See ApplyShardStatus.appliedThroughAt. */
  appliedThroughAt: number | undefined;
  /** The origin check (checkOrigin) is done for this shard. */
  originChecked: boolean;
  /** Records of other migrations ignored (this session). */
  foreignRecords: number;
  lastForeignWarnAt: number;
}

/**
 * Runs the apply loop until stopped (signal), caught up (`stopWhenCaughtUp`), or a fatal error
 * (rejects with a MigratorError: APPLY_FAILED, STREAM_FAILED, CONNECTION_FAILED, INTERNAL).
 */
export async function runApply(options: ApplyRunnerOptions): Promise<ApplyRunResult> {
  const runner = new ApplyRunner(options);
  return runner.run();
}

const LOAD_GATE_POLL_MS = 1000;

class ApplyRunner {
  private readonly o: ApplyRunnerOptions;
  private readonly log: Logger;
  private readonly ttlMs: number;
  private readonly keeper: LeaseKeeper;
  private readonly shutdown = new AbortController();
  private readonly runs = new Map<string, ShardRun>();
  private consumer: StreamConsumer | undefined;
  private rebuildRequested = false;
  private stopReason: ApplyRunResult['stopReason'] | undefined;
  private inFlight = 0;
  /** The first fatal shard failure: ends the run. */
  private fatal: ShardFailure | undefined;
  private sessionEvents = 0;
  private shardsCache: { at: number; shards: ShardInfo[] } | undefined;
  /** Counters of shards that ended here, for the status totals. */
  private readonly ended = new Map<string, ApplyCounters>();

  private readonly stallWarnMs: number;
  private readonly stallFailMs: number;

  constructor(options: ApplyRunnerOptions) {
    this.o = options;
    this.log = options.logger;
    this.ttlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.stallWarnMs = options.stall?.warnMs ?? DEFAULT_STALL_WARN_MS;
    this.stallFailMs = Math.max(this.stallWarnMs, options.stall?.failMs ?? DEFAULT_STALL_FAIL_MS);
    if (!(this.ttlMs >= 100)) throw new MigratorError(ExitCode.USAGE, `lease ttl must be at least 100 ms (got ${this.ttlMs})`);
    this.keeper = new LeaseKeeper({
      store: options.store,
      migrationId: options.migrationId,
      owner: options.ownerId,
      ttlMs: this.ttlMs,
      graceMs: options.leaseGraceMs,
      maxShards: options.maxShards,
      logger: this.log,
      onLost: (shardId, reason) => this.onLeaseLost(shardId, reason),
    });
  }

  /** Liveness: beaten by the loops (load gate, discovery while standing by, batches, writes, waits); GetRecords calls count too. */
  private hb: Heartbeat | undefined;
  private waitingForLoad = false;
  private started = false;

  async run(): Promise<ApplyRunResult> {
    this.hb = health.register('apply', undefined, () => stats.kinesis.getRecordsCalls);
    const dropComponent = health.component('apply', () => this.readiness());
    const view: ApplyView = { shards: () => this.shardViews(), caughtUp: () => this.readShardsCaughtUp() };
    const held: LeaseHolderView = { kind: 'apply', heldShards: () => this.keeper.heldShards() };
    stats.live.applies.add(view);
    stats.live.leaseHolders.add(held);
    try {
      return await this.runMonitored();
    } finally {
      stats.live.applies.delete(view);
      stats.live.leaseHolders.delete(held);
      dropComponent();
      health.unregister(this.hb);
    }
  }

  /** Ready while holding at least one shard lease; not while waiting for the load or standing by. */
  private readiness(): ComponentState {
    if (this.waitingForLoad) return { ready: false, state: 'waiting-for-initial-load' };
    const held = this.keeper.heldShards().length;
    if (held > 0) return { ready: true, state: 'applying', detail: `${held} shard lease(s)` };
    if (!this.started) return { ready: false, state: 'starting' };
    return { ready: false, state: 'standby', detail: 'holds no shard lease: other apply processes hold them (or --max-shards)' };
  }

  private shardViews(): ReturnType<ApplyView['shards']> {
    return (this.consumer?.shardStatuses() ?? [])
      .filter((s) => s.state === 'reading')
      .map((s) => ({ shardId: s.shardId, millisBehindLatest: s.millisBehindLatest, caughtUp: s.caughtUp, stalled: Boolean(this.runs.get(s.shardId)?.stalledSince) }));
  }

  /** Every shard this process reads is at the tip, with no batch in hand. */
  private readShardsCaughtUp(): boolean {
    const reading = (this.consumer?.shardStatuses() ?? []).filter((s) => s.state === 'reading');
    return reading.length > 0 && this.inFlight === 0 && reading.every((s) => s.caughtUp);
  }

  private async runMonitored(): Promise<ApplyRunResult> {
    const outer = this.o.signal;
    const onAbort = () => this.requestShutdown();
    if (outer?.aborted) this.requestShutdown();
    else outer?.addEventListener('abort', onAbort, { once: true });
    let statusTimer: NodeJS.Timeout | undefined;
    let stallTimer: NodeJS.Timeout | undefined;
    let progressTimer: NodeJS.Timeout | undefined;
    let completedTimer: NodeJS.Timeout | undefined;
    let failed = false;
    try {
      // The stream is checked first: a wrong stream is reported at once, not after the load.
      await this.preflight();
    } catch (err) {
      outer?.removeEventListener('abort', onAbort);
      const e = this.toMigratorError(err);
      await this.o.store.recordError(this.o.migrationId, e).catch(() => undefined);
      throw e;
    }
    if (!(await this.waitForInitialLoad())) {
      outer?.removeEventListener('abort', onAbort);
      return { stopReason: this.stopReason ?? 'interrupted', status: this.status() };
    }
    this.keeper.start();
    this.started = true;
    try {
      statusTimer = setInterval(() => this.reportStatus(), this.o.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS);
      statusTimer.unref?.();
      stallTimer = setInterval(() => void this.checkStalls(), Math.max(50, Math.min(5_000, Math.floor(this.stallWarnMs / 4))));
      stallTimer.unref?.();
      progressTimer = setInterval(() => void this.publishProgress(), PUBLISH_PROGRESS_MS);
      progressTimer.unref?.();
      if (this.o.exitWhenCompleted) {
        completedTimer = setInterval(() => void this.checkCompleted(), COMPLETED_POLL_MS);
        completedTimer.unref?.();
      }
      while (!this.shutdown.signal.aborted && this.stopReason === undefined) {
        await this.runConsumerOnce();
        if (!this.shutdown.signal.aborted && this.stopReason === undefined) {
          // Only a lease loss ends a consumer run otherwise: re-decide ownership from the store.
          this.log.info({}, 'rebuilding the stream consumer after a lease change');
          await sleep(Math.min(1000, this.ttlMs / 10), this.shutdown.signal).catch(() => undefined);
        }
      }
      const status = this.status();
      this.o.onStatus?.(status);
      const stopReason = this.stopReason ?? 'interrupted';
      this.log.info({ stopReason, events: status.sessionEvents, totals: compactTotals(status.totals) }, 'apply stopped');
      return { stopReason, status };
    } catch (err) {
      failed = true;
      const e = this.toMigratorError(err);
      await this.o.store.recordError(this.o.migrationId, e).catch(() => undefined);
      throw e;
    } finally {
      if (statusTimer) clearInterval(statusTimer);
      if (stallTimer) clearInterval(stallTimer);
      if (progressTimer) clearInterval(progressTimer);
      if (completedTimer) clearInterval(completedTimer);
      outer?.removeEventListener('abort', onAbort);
      this.keeper.stop();
      for (const r of this.runs.values()) r.abort.abort(new ApplyInterrupted('stopped'));
      if (this.o.releaseLeasesOnExit === false) this.keeper.abandonAll();
      else await this.keeper.releaseAll();
      if (failed) this.log.debug({}, 'leases released after a failure');
    }
  }

  /**
   * LOAD GATE: apply never writes to the target while the migration's initial load has not
   * finished. A change applied before mongorestore copied its document would be undone by the
   * copy (a delete applied, then the dumped document restored: an extra document forever), and a
   * reload after a crash drops the collections apply had written to while its checkpoints stay
   * ahead; it would also make full-migrate's preflight find a non-empty target. So an `apply`
   * started next to `full-migrate` (its own container) waits here until the phase has left
   * CREATED/INITIAL_LOAD — and, when it starts first, until full-migrate has created the
   * migration at all. Only `cdcOnly` (plain CDC: `capture` + `apply`, no load) applies without a
   * migration document. Returns false when stopped while waiting.
   */
  private async waitForInitialLoad(): Promise<boolean> {
    const loading = (m: MigrationDoc | null): boolean => (m ? LOAD_PHASES.includes(phaseBeforeFailure(m)) : !this.o.cdcOnly);
    // The reason is logged at once, then every minute while it lasts (an operator reading recent logs sees why nothing happens).
    let nextLogAt = 0;
    while (!this.shutdown.signal.aborted) {
      this.hb?.beat();
      const m = await this.o.store.getMigration(this.o.migrationId);
      if (this.completed(m)) return false;
      this.waitingForLoad = loading(m);
      if (!this.waitingForLoad) return true;
      if (Date.now() >= nextLogAt) {
        nextLogAt = Date.now() + 60_000;
        if (m) this.log.info({ phase: m.phase }, 'waiting for the initial load to finish before applying changes');
        else {
          this.log.info(
            { migrationId: this.o.migrationId },
            'waiting for full-migrate or initial-load to create the migration and finish its initial load ' +
              '(for a change stream without a full migration pass --cdc-only)',
          );
        }
      }
      await sleep(LOAD_GATE_POLL_MS, this.shutdown.signal).catch(() => undefined);
    }
    return false;
  }

  /**
   * `exitWhenCompleted` and the migration is COMPLETED: sets stopReason 'completed' and says why
   * (once). The caller stops.
   */
  private completed(m: MigrationDoc | null): boolean {
    if (!this.o.exitWhenCompleted || m?.phase !== 'COMPLETED') return false;
    if (this.stopReason === undefined) {
      this.stopReason = 'completed';
      this.log.info({ migrationId: this.o.migrationId }, 'the migration is COMPLETED (cut over): nothing is left to apply, stopping');
    }
    return true;
  }

  /** The COMPLETED poll (`exitWhenCompleted`): stops like a signal does, batches in hand finished and checkpointed. */
  private checking = false;
  private async checkCompleted(): Promise<void> {
    if (this.checking || this.shutdown.signal.aborted || this.stopReason !== undefined) return;
    this.checking = true;
    try {
      const m = await this.o.store.getMigration(this.o.migrationId);
      if (this.completed(m)) this.requestShutdown();
    } catch {
      // the next tick reads it again
    } finally {
      this.checking = false;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  private requestShutdown(): void {
    if (this.shutdown.signal.aborted) return;
    this.log.info({}, 'stopping: finishing the batches being applied');
    this.shutdown.abort(new ApplyInterrupted('interrupted'));
    this.abortRuns(new ApplyInterrupted('interrupted'));
    this.consumer?.stop();
  }

  private onLeaseLost(shardId: string, reason: string): void {
    this.runs.get(shardId)?.abort.abort(new LeaseLostError(shardId, reason));
    this.runs.delete(shardId);
    this.rebuildRequested = true;
    // Every other shard stops too (after its batch): a shard waiting at a DDL rendezvous for the
    // lost one would otherwise keep the consumer from ever stopping.
    this.abortRuns(new ApplyInterrupted('consumer rebuild after a lease change'));
    this.consumer?.stop();
  }

  /** Cuts short the waits of every shard (DDL rendezvous, conflict backoff, lease fence). */
  private abortRuns(reason: unknown): void {
    for (const r of this.runs.values()) r.abort.abort(reason);
  }

  /** The stream exists and is readable; a clear STREAM_FAILED otherwise. */
  private async preflight(): Promise<void> {
    const name = this.o.streamName;
    try {
      const out = await this.o.kinesis.send(new DescribeStreamSummaryCommand(streamParams(name)), { abortSignal: this.shutdown.signal });
      assertStreamActive(name, out.StreamDescriptionSummary?.StreamStatus);
    } catch (err) {
      if (err instanceof MigratorError) throw err;
      if (this.shutdown.signal.aborted) return;
      throw streamError(err, name);
    }
  }

  private async runConsumerOnce(): Promise<void> {
    this.rebuildRequested = false;
    this.runs.clear();
    const tuning = this.o.consumer ?? {};
    const consumer = new StreamConsumer({
      ...tuning,
      client: this.o.kinesis,
      streamName: this.o.streamName,
      shardDiscoveryIntervalMs: tuning.shardDiscoveryIntervalMs ?? Math.min(10_000, Math.max(200, Math.floor(this.ttlMs / 3))),
      checkpoints: (shardId) => this.checkpointOf(shardId),
      ownsShard: (shardId) => this.ownsShard(shardId),
      onRetry:
        tuning.onRetry ??
        ((info) => this.log.warn({ shardId: info.shardId, error: info.errorName, attempt: info.attempt, delayMs: Math.round(info.delayMs) }, 'Kinesis read failed, retrying')),
    });
    this.consumer = consumer;
    if (this.shutdown.signal.aborted) consumer.stop();
    const watcher = this.o.stopWhenCaughtUp
      ? setInterval(() => {
          if (this.stopReason === undefined && this.inFlight === 0 && this.allCaughtUp(consumer)) {
            this.stopReason = 'caught-up';
            this.log.info({}, 'every shard is caught up and applied: stopping');
            consumer.stop();
          }
        }, 100)
      : undefined;
    try {
      await consumer.run((batch) => this.handle(batch));
    } catch (err) {
      if (this.fatal !== undefined) throw this.fatal;
      if (err instanceof LeaseLostError) {
        this.rebuildRequested = true;
        return;
      }
      if (err instanceof ApplyInterrupted && (this.shutdown.signal.aborted || this.rebuildRequested)) return;
      throw err; // from reading the stream
    } finally {
      if (watcher) clearInterval(watcher);
      this.consumer = undefined;
    }
    if (this.fatal !== undefined) throw this.fatal;
  }

  private allCaughtUp(consumer: StreamConsumer): boolean {
    const statuses = consumer.shardStatuses();
    return statuses.length > 0 && statuses.every((s) => s.state === 'ended' || (s.state === 'reading' && s.caughtUp));
  }

  // -------------------------------------------------------------------------------------------
  // Consumer callbacks

  private async ownsShard(shardId: string): Promise<boolean> {
    if (this.rebuildRequested || this.shutdown.signal.aborted || this.stopReason !== undefined) return false;
    if (this.keeper.heldShards().length === 0) this.hb?.beat(); // standing by: discovery rounds are its loop
    return this.keeper.tryAcquire(shardId);
  }

  private async checkpointOf(shardId: string): Promise<ShardCheckpoint | undefined> {
    const cp = await this.storeRetry(`read checkpoint of ${shardId}`, () => this.o.store.getApplyCheckpoint(this.o.migrationId, shardId));
    if (!cp) return undefined;
    return {
      sequenceNumber: cp.sequenceNumber === START_OF_SHARD_SEQUENCE ? undefined : cp.sequenceNumber,
      shardEnded: cp.shardEnded,
    };
  }

  private async handle(batch: ShardBatch): Promise<void> {
    this.hb?.beat();
    this.inFlight++;
    try {
      await this.applyShardBatch(batch);
    } catch (err) {
      const lost = findCause(err, isLeaseLost);
      if (lost) {
        this.log.warn({ shardId: batch.shardId, reason: lost.message }, 'batch abandoned: lease lost (it will be replayed by the new owner)');
        throw lost;
      }
      const stopping = this.shutdown.signal.aborted || this.rebuildRequested || this.fatal !== undefined;
      if (stopping && (findCause(err, isInterrupted) || errorName(err) === 'AbortError')) {
        throw new ApplyInterrupted('interrupted');
      }
      const failure = new ShardFailure(batch.shardId, err);
      if (this.fatal === undefined) {
        this.fatal = failure;
        // Stop every shard: waits (a DDL rendezvous expecting this shard) are cut short.
        this.abortRuns(new ApplyInterrupted('another shard failed'));
        this.consumer?.stop();
      }
      throw failure;
    } finally {
      this.inFlight--;
    }
  }

  // -------------------------------------------------------------------------------------------
  // One batch

  private async shardRun(shardId: string): Promise<ShardRun> {
    const lease = this.keeper.lease(shardId);
    if (!lease) throw new LeaseLostError(shardId, 'not held');
    const existing = this.runs.get(shardId);
    if (existing && existing.epoch === lease.epoch) return existing;
    existing?.abort.abort(new LeaseLostError(shardId, 'epoch changed'));
    const cp = await this.storeRetry(`read checkpoint of ${shardId}`, () => this.o.store.getApplyCheckpoint(this.o.migrationId, shardId));
    const abort = new AbortController();
    if (this.shutdown.signal.aborted) abort.abort(this.shutdown.signal.reason);
    else if (this.rebuildRequested || this.fatal !== undefined) abort.abort(new ApplyInterrupted('consumer stopping'));
    const log = this.log.child({ shardId });
    const gate = createDdlGate({
      store: this.o.store,
      migrationId: this.o.migrationId,
      shardId,
      shards: () => this.streamShards(),
      pollMs: this.o.ddlPollMs,
      signal: abort.signal,
      onWait: beatThen(this.hb, throttle((info) => log.info({ ddl: info.ddlKey, arrived: info.arrived, waitingFor: info.waitingFor }, 'waiting for every shard to reach the DDL'), 10_000)),
    });
    // The stall clock restarts at every acknowledged write and at the end of every wait for
    // other shards (a DDL rendezvous is not a stall of this shard).
    const progressed = () => {
      if (run.busySince !== undefined) run.busySince = Date.now();
    };
    const waiting = async <T>(fn: () => Promise<T>): Promise<T> => {
      run.waiting = true;
      try {
        return await fn();
      } finally {
        run.waiting = false;
        progressed();
      }
    };
    const writer = new ApplyWriter({
      // After a fatal failure (e.g. a stall) no new write starts: the run ends and is replayed.
      client: fencedClient(
        this.o.target,
        async () => {
          if (this.fatal !== undefined) throw new ApplyInterrupted('apply is failing');
          this.hb?.beat(); // every write attempt (a retry after a 60 s write timeout too)
          await this.keeper.waitWritable(shardId, abort.signal);
        },
        progressed,
      ),
      rules: this.o.rules,
      keyFilter: this.o.writer?.keyFilter,
      retryPolicy: this.o.writer?.retryPolicy,
      writeTimeoutMs: this.o.writer?.writeTimeoutMs,
      beforeDdl: (e) => waiting(() => gate.beforeDdl(e)),
      afterDdl: (e) => gate.afterDdl(e),
      logger: log,
      // A full migration holds the target's TTL indexes until its cutover (ttl-hold.ts); plain CDC
      // has no cutover to restore them, so it holds none.
      ttlHold: this.o.cdcOnly ? undefined : { store: this.o.store, migrationId: this.o.migrationId },
    });
    const run: ShardRun = {
      shardId,
      epoch: lease.epoch,
      writer,
      abort,
      sequenceNumber: cp?.sequenceNumber,
      position: cp?.position,
      counters: { ...emptyCounters(), ...(cp?.counters ?? {}) } as ApplyCounters,
      busySince: undefined,
      waiting: false,
      stalledSince: undefined,
      lastStallWarnAt: 0,
      appliedThroughAt: undefined,
      foreignRecords: 0,
      lastForeignWarnAt: 0,
      originChecked: false,
    };
    this.runs.set(shardId, run);
    log.info({ sequenceNumber: shownSequence(run.sequenceNumber), events: run.counters.events }, 'applying shard');
    return run;
  }

  private migTag: { tag: string; at: number } | undefined;

  /** This migration's record tag (see migrationTag); re-read at most every 5 s when `refresh`. */
  private async ownTag(refresh: boolean): Promise<string> {
    if (this.migTag && !(refresh && Date.now() - this.migTag.at > 5_000)) return this.migTag.tag;
    const m = await this.storeRetry('read the migration', () => this.o.store.getMigration(this.o.migrationId));
    this.migTag = { tag: migrationTag(this.o.migrationId, m?.nonce), at: Date.now() };
    return this.migTag.tag;
  }

  /**
   * MIGRATION IDENTITY: records tagged for another migration (a stream reused for a new
   * migration id, or a migration re-created under the same id) are never applied: they are
   * counted as skipped and the checkpoint moves past them, with a WARN (first time, then once a
   * minute per shard). Untagged records come from a capture of an earlier build and are applied.
   */
  private async ownRecords(run: ShardRun, envelopes: ChangeEnvelope[]): Promise<ChangeEnvelope[]> {
    if (envelopes.every((e) => e.mig === undefined)) return envelopes;
    let tag = await this.ownTag(false);
    if (envelopes.some((e) => e.mig !== undefined && e.mig !== tag)) tag = await this.ownTag(true);
    const own = envelopes.filter((e) => e.mig === undefined || e.mig === tag);
    const foreign = envelopes.length - own.length;
    if (foreign > 0) {
      run.counters.skipped += foreign;
      run.foreignRecords += foreign;
      if (Date.now() - run.lastForeignWarnAt >= 60_000) {
        run.lastForeignWarnAt = Date.now();
        this.log.warn(
          { shardId: run.shardId, ignored: run.foreignRecords },
          'the stream holds records of another migration (a reused stream?): ignored, not applied',
        );
      }
    }
    return own;
  }

  /**
   * NO SILENT GAP: a shard read from its beginning (no checkpoint) that was not created by
   * resharding must show this migration's first record to be an origin with `sent` 0 (capture
   * broadcasts one before anything else). A first own record that is data, or an origin after
   * events already sent, means the stream's retention removed the start of the migration (e.g. a
   * load that outlasted it): HISTORY_LOST, never a silent loss. Untagged records (a capture of an
   * earlier build) and child shards (their start is in the parents) cannot be checked and are
   * let through. Origins themselves are never applied.
   */
  private async checkOrigin(run: ShardRun, envelopes: ChangeEnvelope[]): Promise<ChangeEnvelope[]> {
    if (!run.originChecked && envelopes.length > 0) {
      const fresh = run.sequenceNumber === undefined && run.position === undefined;
      const first = envelopes[0]!;
      if (!fresh || first.mig === undefined) run.originChecked = true;
      else {
        const me = (await this.streamShards()).find((s) => s.shardId === run.shardId);
        if (me && (me.parentShardId !== undefined || me.adjacentParentShardId !== undefined)) run.originChecked = true;
        else if (first.op === 'origin' && first.origin?.sent === 0) run.originChecked = true;
        else {
          const what = first.op === 'origin' ? `a capture restart's origin (after ${first.origin?.sent} events already sent)` : `a ${first.op} event at clusterTime ${first.ct.getHighBits()}`;
          throw new MigratorError(
            ExitCode.HISTORY_LOST,
            `Shard ${run.shardId}: the stream no longer holds the start of migration ${this.o.migrationId}: the first record it can read is ${what}, ` +
              'not the origin capture wrote before everything else. The stream\'s retention removed changes that were never applied.',
            {
              hint:
                'Start over with a new --migration-id (and --drop), after raising the stream\'s retention above the initial load\'s duration ' +
                '(aws kinesis increase-stream-retention-period).',
            },
          );
        }
      }
    }
    const rest = envelopes.filter((e) => e.op !== 'origin');
    run.counters.skipped += envelopes.length - rest.length;
    return rest;
  }

  private decode(batch: ShardBatch, run: ShardRun): ChangeEnvelope[] {
    return batch.payloads.map((p, i) => {
      try {
        return decodeEnvelope(p);
      } catch (err) {
        throw new MigratorError(
          ExitCode.APPLY_FAILED,
          `Shard ${batch.shardId}: payload ${i + 1} of ${batch.payloads.length} of the batch after sequence number ` +
            `${shownSequence(run.sequenceNumber)} (batch checkpoint ${batch.checkpoint.sequenceNumber ?? 'none'}) ` +
            `is not a valid change envelope: ${errorMessage(err)}.`,
          { hint: 'Something other than migrator capture wrote to the stream, or capture and apply run different versions.', cause: err },
        );
      }
    });
  }

  private async applyShardBatch(batch: ShardBatch): Promise<void> {
    // The consumer is being torn down (lease change or a failure): start nothing new.
    if (this.rebuildRequested || this.fatal !== undefined) throw new ApplyInterrupted('consumer stopping');
    const run = await this.shardRun(batch.shardId);
    run.busySince = Date.now();
    try {
      await this.applyShardBatchIn(run, batch);
    } finally {
      run.busySince = undefined;
      if (run.stalledSince) this.clearStall(run);
    }
  }

  private async applyShardBatchIn(run: ShardRun, batch: ShardBatch): Promise<void> {
    const envelopes = await this.checkOrigin(run, await this.ownRecords(run, this.decode(batch, run)));
    const limitMs = this.o.conflictRetryLimitMs ?? DEFAULT_CONFLICT_RETRY_LIMIT_MS;
    const policy = { maxAttempts: Infinity, initialDelayMs: 100, maxDelayMs: 5_000, ...this.o.conflictRetryPolicy };
    const started = performance.now();
    let result: ApplyResult | undefined;
    for (let attempt = 1; ; attempt++) {
      let pending: readonly ApplyConflict[];
      try {
        result = await run.writer.applyBatch(envelopes, {
          after: run.position,
          onProgress: async (p) => {
            // Never checkpoint past (nor run a DDL after) an unresolved conflict.
            if (p.conflicts.length > 0) throw new PendingConflicts(p.conflicts);
            if (p.position === undefined || (run.position !== undefined && isAtOrBefore(p.position, run.position))) return;
            // The target acknowledged everything up to the DDL: checkpoint the position with the
            // batch's starting sequence number (the batch is re-read on replay, then skipped).
            await this.saveCheckpoint(run, run.sequenceNumber ?? START_OF_SHARD_SEQUENCE, p.position, false);
            run.position = p.position;
          },
        });
        if (result.conflicts.length === 0) break;
        pending = result.conflicts;
      } catch (err) {
        if (!(err instanceof PendingConflicts)) throw err;
        pending = err.conflicts;
      }
      const elapsed = performance.now() - started;
      if (elapsed >= limitMs) throw conflictFailure(batch.shardId, pending, elapsed);
      run.counters.conflictRetries++;
      stats.apply.conflictRetries++;
      this.hb?.beat();
      if (attempt === 1 || attempt % 10 === 0) {
        this.log.warn(
          { shardId: batch.shardId, attempt, conflicts: pending.length, first: describeConflict(pending[0]!) },
          'unresolved duplicate-key conflicts: re-applying the batch while other shards catch up',
        );
      }
      run.waiting = true;
      try {
        await sleep(Math.max(50, backoffDelay(policy, attempt)), run.abort.signal);
      } finally {
        run.waiting = false;
        run.busySince = Date.now();
      }
    }

    // Barriers: everything before them is applied; record before the checkpoint passes them.
    for (const b of result.barriers) {
      const id = envelopes[b.index]?.barrier?.id ?? b.id;
      const cutover = await this.storeRetry('record barrier', () => this.o.store.recordBarrierReached(this.o.migrationId, id, batch.shardId));
      this.log.info({ shardId: batch.shardId, barrier: id, cutover: cutover ? cutover.state : 'none' }, 'barrier reached');
    }

    this.count(run, batch, envelopes, result);
    const position = result.lastPosition ?? run.position;
    const sequenceNumber =
      batch.checkpoint.sequenceNumber ?? (batch.shardEnded ? (run.sequenceNumber ?? START_OF_SHARD_SEQUENCE) : undefined);
    if (sequenceNumber !== undefined) {
      // INVARIANT: saved only now, after applyBatch returned, i.e. after the target acknowledged
      // every write of this batch (and with no unresolved conflict left).
      await this.saveCheckpoint(run, sequenceNumber, position, batch.shardEnded);
    }
    run.position = position;
    // Every record read up to (call time − MillisBehindLatest) is applied now (readiness).
    if (batch.millisBehindLatest !== undefined) {
      const through = batch.readAt - batch.millisBehindLatest;
      if (run.appliedThroughAt === undefined || through > run.appliedThroughAt) run.appliedThroughAt = through;
    }
    if (batch.shardEnded) {
      this.log.info({ shardId: batch.shardId, events: run.counters.events }, 'shard ended (resharded) and fully applied');
      this.ended.set(batch.shardId, run.counters);
      this.runs.delete(batch.shardId);
      await this.keeper.release(batch.shardId);
    }
  }

  private count(run: ShardRun, batch: ShardBatch, envelopes: ChangeEnvelope[], result: ApplyResult): void {
    const c = run.counters;
    const s: ApplyStats = result.stats;
    c.events += s.envelopes;
    c.upserts += s.upserts;
    c.updates += s.updates;
    c.deletes += s.deletes;
    c.ddl += s.ddl;
    c.skipped += s.skipped;
    c.collapsed += s.collapsed;
    c.barriers += s.barriers;
    c.batches += 1;
    if (result.lastPosition) c.lastClusterTime = result.lastPosition.ct.getHighBits();
    for (let i = envelopes.length - 1; i >= 0; i--) {
      const wt = envelopes[i]!.wt;
      if (wt && envelopes[i]!.op !== 'barrier') {
        c.lastWallTime = wt.getTime();
        break;
      }
    }
    c.millisBehindLatest = batch.millisBehindLatest ?? -1;
    this.sessionEvents += s.envelopes;
    // Metrics (per batch, plain additions; src/observability/stats.ts).
    const a = stats.apply;
    a.batches++;
    addOp(a.events, 'upsert', s.upserts);
    addOp(a.events, 'update', s.updates);
    addOp(a.events, 'delete', s.deletes);
    addOp(a.events, 'ddl', s.ddl);
    addOp(a.events, 'barrier', s.barriers);
    addOp(a.events, 'skipped', s.skipped);
    addOp(a.events, 'collapsed', s.collapsed);
    // Lag of the batch's newest event, when it wrote something (re-sent events say nothing of lag).
    if (s.upserts + s.updates + s.deletes + s.ddl > 0) {
      let newestMs: number | undefined;
      for (let i = envelopes.length - 1; i >= 0 && newestMs === undefined; i--) {
        const e = envelopes[i]!;
        if (e.op !== 'barrier' && e.op !== 'origin') newestMs = e.wt ? e.wt.getTime() : e.ct.getHighBits() * 1000;
      }
      if (newestMs !== undefined && newestMs > 0) observeApplyLag(Math.max(0, Date.now() - newestMs) / 1000);
    }
  }

  private async saveCheckpoint(run: ShardRun, sequenceNumber: string, position: EventPosition | undefined, shardEnded: boolean): Promise<void> {
    const lease = this.keeper.lease(run.shardId);
    if (!lease || lease.epoch !== run.epoch) throw new LeaseLostError(run.shardId, 'not held at checkpoint time');
    const r = await this.storeRetry(`save checkpoint of ${run.shardId}`, () =>
      this.o.store.saveApplyCheckpoint(lease, { sequenceNumber, position, counters: run.counters, shardEnded }),
    );
    if (r === 'saved') {
      run.sequenceNumber = sequenceNumber;
      stats.apply.checkpointAtMs.set(run.shardId, Date.now());
      return;
    }
    if (r === 'lease-lost') {
      // Another owner (or expiry) took the shard: stop it here; the consumer is rebuilt.
      this.onLeaseLost(run.shardId, 'checkpoint refused: lease lost');
      throw new LeaseLostError(run.shardId, 'checkpoint refused: lease lost');
    }
    throw new MigratorError(
      ExitCode.INTERNAL,
      `Shard ${run.shardId}: the checkpoint at sequence number ${sequenceNumber} would move the saved one backwards (a bug).`,
      { hint: 'Report it with the log (--verbose); rerunning resumes from the saved checkpoint.' },
    );
  }

  /** State store calls, retried on transient errors. */
  private storeRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withRetry(what, fn, { maxAttempts: 8, initialDelayMs: 200, maxDelayMs: 5_000 }, {
      onRetry: (info) => this.log.warn({ what: info.what, attempt: info.attempt, err: errorMessage(info.error) }, 'state store call failed, retrying'),
    });
  }

  /** The stream's shards with their lineage (for the DDL gate), cached 2 s. */
  private async streamShards(): Promise<ShardInfo[]> {
    const now = performance.now();
    if (this.shardsCache && now - this.shardsCache.at < 2_000) return this.shardsCache.shards;
    for (let attempt = 0; ; attempt++) {
      try {
        const shards = await listAllShards(this.o.kinesis, this.o.streamName, { signal: this.shutdown.signal });
        this.shardsCache = { at: performance.now(), shards };
        return shards;
      } catch (err) {
        const kind = classifyError(err);
        if (kind === 'fatal' || attempt >= 8 || this.shutdown.signal.aborted) throw err;
        await sleep(Math.min(5_000, 200 * 2 ** attempt), this.shutdown.signal);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Status

  status(): ApplyStatus {
    const statuses = this.consumer?.shardStatuses() ?? [];
    const byId = new Map(statuses.map((s) => [s.shardId, s]));
    const ids = new Set<string>([...byId.keys(), ...this.runs.keys(), ...this.ended.keys()]);
    const shards: ApplyShardStatus[] = [...ids].sort().map((shardId) => {
      const s = byId.get(shardId);
      const run = this.runs.get(shardId);
      const counters = run?.counters ?? this.ended.get(shardId);
      // A reader found at its tip has handed over every earlier record, and the one batch it
      // hands at a time is not in progress (busySince), so all of them are applied.
      const tipAt = s?.caughtUpAt !== undefined && run?.busySince === undefined ? s.caughtUpAt : undefined;
      const through = [run?.appliedThroughAt, tipAt].filter((x): x is number => x !== undefined);
      return {
        shardId,
        state: s?.state ?? (this.ended.has(shardId) ? 'ended' : 'stopped'),
        leased: this.keeper.holds(shardId),
        caughtUp: s?.caughtUp ?? this.ended.has(shardId),
        millisBehindLatest: s?.millisBehindLatest,
        appliedThroughAt: through.length ? Math.max(...through) : undefined,
        stalledSince: run?.stalledSince,
        sequenceNumber: run?.sequenceNumber === START_OF_SHARD_SEQUENCE ? undefined : run?.sequenceNumber,
        counters: counters ? { ...counters } : undefined,
      };
    });
    const totals = emptyCounters();
    for (const sh of shards) {
      if (!sh.counters) continue;
      for (const k of SUMMED) totals[k] += sh.counters[k];
      totals.lastClusterTime = Math.max(totals.lastClusterTime, sh.counters.lastClusterTime);
      totals.lastWallTime = Math.max(totals.lastWallTime, sh.counters.lastWallTime);
      if (sh.millisBehindLatest !== undefined) totals.millisBehindLatest = Math.max(totals.millisBehindLatest, sh.millisBehindLatest);
    }
    return {
      ownerId: this.o.ownerId,
      at: new Date(),
      caughtUp: statuses.length > 0 && statuses.every((s) => s.state === 'ended' || (s.state === 'reading' && s.caughtUp)),
      shards,
      totals,
      sessionEvents: this.sessionEvents,
    };
  }

  /**
   * Publishes each held shard's appliedThroughAt to its state-store document, so an orchestrator
   * whose own apply does not hold that shard (a second `migrator apply` does) can still tell when
   * it is applied (readyForCutover). Before this, a shard held by another process kept the
   * migration in CATCHING_UP for good. Best effort: a failed write is retried on the next tick.
   */
  private readonly publishedThrough = new Map<string, number>();
  private publishing = false;
  private async publishProgress(): Promise<void> {
    if (this.publishing) return;
    this.publishing = true;
    try {
      for (const sh of this.status().shards) {
        const lease = sh.leased ? this.keeper.lease(sh.shardId) : undefined;
        if (!lease || sh.appliedThroughAt === undefined || sh.appliedThroughAt <= (this.publishedThrough.get(sh.shardId) ?? -1)) continue;
        await this.o.store.setShardAppliedThrough(lease, new Date(sh.appliedThroughAt));
        this.publishedThrough.set(sh.shardId, sh.appliedThroughAt);
      }
    } catch {
      // the next tick tries again
    } finally {
      this.publishing = false;
    }
  }

  /**
   * STALL DETECTION: a shard with a batch in hand, not waiting for other shards, and no target
   * write acknowledged for `stallWarnMs` says so (WARN, repeated every `stallWarnMs`; `stalledSince`
   * in its state-store document, which `status` shows); after `stallFailMs` apply fails with
   * APPLY_STALLED. The stuck write itself ends at its write timeout (then the fence refuses the
   * next attempt), so the failure is not held up by it for longer than that.
   */
  private async checkStalls(): Promise<void> {
    const now = Date.now();
    for (const run of this.runs.values()) {
      if (run.busySince === undefined || run.waiting) continue;
      const quietMs = now - run.busySince;
      if (quietMs < this.stallWarnMs) continue;
      const since = new Date(run.busySince);
      if (!run.stalledSince) {
        run.stalledSince = since;
        const lease = this.keeper.lease(run.shardId);
        if (lease) await this.o.store.setShardStall(lease, since).catch(() => undefined);
      }
      if (now - run.lastStallWarnAt >= this.stallWarnMs) {
        run.lastStallWarnAt = now;
        this.log.warn(
          { shardId: run.shardId, stalledForS: Math.round(quietMs / 1000), failAfterS: Math.round(this.stallFailMs / 1000) },
          'shard stalled: the target has acknowledged no write of its batch; it may have stopped answering',
        );
      }
      if (quietMs >= this.stallFailMs && this.fatal === undefined) {
        this.fatal = new ShardFailure(
          run.shardId,
          new MigratorError(
            ExitCode.APPLY_STALLED,
            `Shard ${run.shardId}: the target acknowledged no write for ${Math.round(quietMs / 1000)} s (since ${since.toISOString()}).`,
            {
              hint:
                'The target stopped answering writes (check its health and load; a FerretDB/SQLite target can lock up under ' +
                'concurrent writers). Rerunning resumes from the last checkpoint.',
            },
          ),
        );
        this.abortRuns(new ApplyInterrupted('a shard stalled'));
        this.consumer?.stop();
      }
    }
  }

  private clearStall(run: ShardRun): void {
    this.log.info({ shardId: run.shardId, stalledS: Math.round((Date.now() - run.stalledSince!.getTime()) / 1000) }, 'shard making progress again');
    run.stalledSince = undefined;
    run.lastStallWarnAt = 0;
    const lease = this.keeper.lease(run.shardId);
    if (lease) void this.o.store.setShardStall(lease, null).catch(() => undefined);
  }

  private lastReport: { at: number; events: number } | undefined;

  /** onStatus gets every report; the log line only every 10 s (progressLogIntervalMs). */
  private reportStatus(): void {
    try {
      const status = this.status();
      const now = performance.now();
      this.o.onStatus?.(status);
      const logEvery = this.o.progressLogIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
      if (this.lastReport && now - this.lastReport.at < logEvery - 50) return;
      const rate = this.lastReport ? ((status.sessionEvents - this.lastReport.events) * 1000) / Math.max(1, now - this.lastReport.at) : undefined;
      this.lastReport = { at: now, events: status.sessionEvents };
      const behind: Record<string, number | string> = {};
      for (const s of status.shards) behind[s.shardId] = s.leased ? (s.millisBehindLatest ?? 'unknown') : s.state;
      this.log.info(
        {
          events: status.sessionEvents,
          eventsPerSecond: rate === undefined ? undefined : Math.round(rate),
          shards: status.shards.filter((s) => s.leased).length,
          millisBehindLatest: behind,
          caughtUp: status.caughtUp,
        },
        'apply progress',
      );
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'status report failed');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Errors

  private toMigratorError(err: unknown): MigratorError {
    if (err instanceof MigratorError) return err;
    if (err instanceof ShardFailure) {
      const cause = err.error;
      if (cause instanceof MigratorError) return cause;
      const where = `Shard ${err.shardId}`;
      if (cause instanceof UnmappableDdlError) {
        return new MigratorError(ExitCode.APPLY_FAILED, `${where}: ${cause.message}`, {
          hint: 'Fix the namespace filters or re-run the initial load of the collection, then rerun apply.',
          cause,
        });
      }
      if (cause instanceof ApplyWriteError) {
        return new MigratorError(ExitCode.APPLY_FAILED, `${where}: ${cause.message}`, {
          hint: 'The target refused a write that retrying cannot fix; rerunning resumes from the last checkpoint.',
          cause,
        });
      }
      if (cause instanceof RetriesExhaustedError || isTransientError(cause)) {
        return new MigratorError(ExitCode.CONNECTION_FAILED, `${where}: the target or the state store keeps failing: ${errorMessage(cause)}`, {
          hint: 'Check that the target and the state store are reachable; rerunning resumes from the last checkpoint.',
          cause,
        });
      }
      if ((cause as Error)?.name === 'MongoServerError') {
        return new MigratorError(ExitCode.APPLY_FAILED, `${where}: ${errorMessage(cause)}`, { cause });
      }
      if (classifyError(cause) === 'fatal' && (cause as { $metadata?: unknown })?.$metadata) return streamError(cause, this.o.streamName);
      return new MigratorError(ExitCode.INTERNAL, `${where}: ${errorMessage(cause)}`, { cause });
    }
    // Anything else comes from reading the stream.
    return streamError(err, this.o.streamName);
  }
}

function streamError(err: unknown, stream: string): MigratorError {
  const name = errorName(err);
  if (name === 'ResourceNotFoundException') {
    return new MigratorError(ExitCode.STREAM_FAILED, `Kinesis stream '${stream}' not found: ${errorMessage(err)}`, {
      hint: 'Check --kinesis-stream, --region and --kinesis-endpoint (capture creates nothing: create the stream first).',
      cause: err,
    });
  }
  const kind = classifyError(err);
  if (kind === 'fatal') {
    return new MigratorError(ExitCode.STREAM_FAILED, `Kinesis refused a request on stream '${stream}': ${name}: ${errorMessage(err)}`, {
      hint: 'Check the stream name, region and the credentials\' permissions (kinesis:DescribeStreamSummary, ListShards, GetShardIterator, GetRecords).',
      cause: err,
    });
  }
  return new MigratorError(ExitCode.STREAM_FAILED, `Cannot read Kinesis stream '${stream}': ${name}: ${errorMessage(err)}`, {
    hint: 'Check that Kinesis (or --kinesis-endpoint) is reachable from here.',
    cause: err,
  });
}

const shownSequence = (seq: string | undefined) =>
  seq === undefined || seq === START_OF_SHARD_SEQUENCE ? 'TRIM_HORIZON (start of the shard)' : seq;

function describeConflict(c: ApplyConflict): string {
  return `${c.target.db}.${c.target.coll} ${ejson(c.key)} (${c.op}): ${c.message || `code ${c.code}`}`;
}

function conflictFailure(shardId: string, conflicts: readonly ApplyConflict[], elapsedMs: number): MigratorError {
  const shown = conflicts.slice(0, 10).map(describeConflict);
  const more = conflicts.length > shown.length ? `; and ${conflicts.length - shown.length} more` : '';
  const namespaces = [...new Set(conflicts.map((c) => `${c.target.db}.${c.target.coll}`))].join(', ');
  return new MigratorError(
    ExitCode.APPLY_FAILED,
    `Shard ${shardId}: ${conflicts.length} duplicate-key conflict(s) in ${namespaces} still unresolved after ` +
      `${Math.round(elapsedMs / 1000)} s of retries: ${shown.join('; ')}${more}.`,
    {
      hint:
        'A unique index on the target rejects these documents. If the source has no such index, drop it on the target ' +
        '(re-create it after cutover); otherwise check that every shard of the stream is being applied. Rerunning resumes from the last checkpoint.',
    },
  );
}

function compactTotals(t: ApplyCounters): Record<string, number> {
  return { events: t.events, upserts: t.upserts, updates: t.updates, deletes: t.deletes, ddl: t.ddl, skipped: t.skipped };
}

/** Beats the heartbeat on every call, then calls `fn`. */
function beatThen<A extends unknown[]>(hb: Heartbeat | undefined, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    hb?.beat();
    fn(...args);
  };
}

function throttle<A extends unknown[]>(fn: (...args: A) => void, everyMs: number): (...args: A) => void {
  let last = -Infinity;
  return (...args: A) => {
    const now = performance.now();
    if (now - last < everyMs) return;
    last = now;
    fn(...args);
  };
}
