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
import { LeaseKeeper, LeaseLostError } from '../state/lease-keeper.js';
import type { ShardInfo } from '../transport/shard-map.js';
import type { ShardBatch, ShardCheckpoint } from '../transport/shard-reader.js';
import { StreamConsumer } from '../transport/stream-consumer.js';
import { MigratorError } from '../util/errors.js';
import { errorName } from '../transport/stream-errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { sleep } from '../util/retry.js';
import type { Heartbeat } from '../observability/health.js';
import { registerApplyHealth } from './apply-health.js';
import {
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_STALL_FAIL_MS,
  DEFAULT_STALL_WARN_MS,
  DEFAULT_STATUS_INTERVAL_MS,
  START_OF_SHARD_SEQUENCE,
  type ApplyRunnerOptions,
} from './apply-options.js';
import {
  StatusReporter,
  buildApplyStatus,
  compactTotals,
  everyShardCaughtUp,
  type ApplyCounters,
  type ApplyRunResult,
  type ApplyStatus,
} from './apply-status.js';
import { ApplyInterrupted, ShardFailure, findCause, isInterrupted, isLeaseLost, toMigratorError } from './apply-failures.js';
import { CompletedWatch, waitForInitialLoad } from './load-gate.js';
import { ProgressPublisher } from './progress-publisher.js';
import { ShardBatchApplier, type ShardApplierHost, type ShardRun } from './shard-batch.js';
import { checkStalls } from './stall-watch.js';
import { checkStreamReadable } from './stream-preflight.js';
import { StreamShardList, storeRetry } from './store-retry.js';

export { LeaseLostError };
export * from './apply-options.js';
export { emptyCounters, type ApplyCounters, type ApplyShardStatus, type ApplyStatus, type ApplyRunResult } from './apply-status.js';
/** hostname:pid:random — unique per process incarnation. */
export { defaultOwnerId } from '../state/lease-owner.js';

/** How often apply publishes each held shard's appliedThroughAt to the state store. */
const PUBLISH_PROGRESS_MS = 1_000;
/** How often an apply with `exitWhenCompleted` reads the migration's phase (one findOne by _id). */
const COMPLETED_POLL_MS = 2_000;

/**
 * Runs the apply loop until stopped (signal), caught up (`stopWhenCaughtUp`), or a fatal error
 * (rejects with a MigratorError: APPLY_FAILED, STREAM_FAILED, CONNECTION_FAILED, INTERNAL).
 */
export async function runApply(options: ApplyRunnerOptions): Promise<ApplyRunResult> {
  const runner = new ApplyRunner(options);
  return runner.run();
}

/** The lifecycle: preflight, load gate, leases, the consumer (rebuilt on lease changes), timers, shutdown. */
class ApplyRunner implements ShardApplierHost {
  readonly o: ApplyRunnerOptions;
  readonly log: Logger;
  readonly keeper: LeaseKeeper;
  readonly runs = new Map<string, ShardRun>();
  /** Counters of shards that ended here, for the status totals. */
  readonly ended = new Map<string, ApplyCounters>();
  private readonly ttlMs: number;
  private readonly stopping = new AbortController();
  readonly shutdown = this.stopping.signal;
  private readonly applier = new ShardBatchApplier(this);
  private readonly shards: StreamShardList;
  private readonly reporter: StatusReporter;
  private readonly publisher: ProgressPublisher;
  private readonly completedWatch: CompletedWatch;
  private consumer: StreamConsumer | undefined;
  private rebuildRequested = false;
  private stopReason: ApplyRunResult['stopReason'] | undefined;
  private inFlight = 0;
  /** The first fatal shard failure: ends the run. */
  private fatal: ShardFailure | undefined;
  private sessionEvents = 0;
  private readonly stallWarnMs: number;
  private readonly stallFailMs: number;
  /** Liveness: beaten by the loops (load gate, discovery while standing by, batches, writes, waits); GetRecords calls count too. */
  private hb: Heartbeat | undefined;
  private waitingForLoad = false;
  private started = false;

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
    this.shards = new StreamShardList(options.kinesis, options.streamName, this.shutdown);
    const logEvery = options.progressLogIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    this.reporter = new StatusReporter(() => this.status(), this.log, logEvery, options.onStatus);
    this.publisher = new ProgressPublisher(() => this.status(), this.keeper, options.store);
    this.completedWatch = new CompletedWatch({
      store: options.store,
      migrationId: options.migrationId,
      exitWhenCompleted: options.exitWhenCompleted,
      log: this.log,
      onCompleted: () => this.stopReason === undefined && (this.stopReason = 'completed') === 'completed',
    });
  }

  // ShardApplierHost
  heartbeat = (): Heartbeat | undefined => this.hb;
  rebuilding = (): boolean => this.rebuildRequested;
  failing = (): boolean => this.fatal !== undefined;
  streamShards = (): Promise<ShardInfo[]> => this.shards.get();
  addSessionEvents = (n: number): void => void (this.sessionEvents += n);

  async run(): Promise<ApplyRunResult> {
    const views = registerApplyHealth({
      keeper: this.keeper,
      shardStatuses: () => this.consumer?.shardStatuses() ?? [],
      stalled: (shardId) => Boolean(this.runs.get(shardId)?.stalledSince),
      inFlight: () => this.inFlight,
      waitingForLoad: () => this.waitingForLoad,
      started: () => this.started,
    });
    this.hb = views.hb;
    try {
      return await this.runMonitored();
    } finally {
      views.unregister();
    }
  }

  /** Rejects with the MigratorError of `err`, recorded on the migration first. */
  private async failWith(err: unknown): Promise<never> {
    const e = toMigratorError(err, this.o.streamName);
    await this.o.store.recordError(this.o.migrationId, e).catch(() => undefined);
    throw e;
  }

  private async runMonitored(): Promise<ApplyRunResult> {
    const outer = this.o.signal;
    const onAbort = () => this.requestShutdown();
    if (outer?.aborted) this.requestShutdown();
    else outer?.addEventListener('abort', onAbort, { once: true });
    let open = false;
    try {
      // The stream is checked first: a wrong stream is reported at once, not after the load.
      await checkStreamReadable(this.o.kinesis, this.o.streamName, this.shutdown).catch((err) => this.failWith(err));
      open = await this.passLoadGate();
      if (!open) return { stopReason: this.stopReason ?? 'interrupted', status: this.status() };
    } finally {
      if (!open) outer?.removeEventListener('abort', onAbort);
    }
    this.keeper.start();
    this.started = true;
    const stopTimers = this.startTimers();
    let failed = false;
    try {
      while (!this.shutdown.aborted && this.stopReason === undefined) {
        await this.runConsumerOnce();
        if (!this.shutdown.aborted && this.stopReason === undefined) {
          // Only a lease loss ends a consumer run otherwise: re-decide ownership from the store.
          this.log.info({}, 'rebuilding the stream consumer after a lease change');
          await sleep(Math.min(1000, this.ttlMs / 10), this.shutdown);
        }
      }
      const status = this.status();
      this.o.onStatus?.(status);
      const stopReason = this.stopReason ?? 'interrupted';
      this.log.info({ stopReason, events: status.sessionEvents, totals: compactTotals(status.totals) }, 'apply stopped');
      return { stopReason, status };
    } catch (err) {
      failed = true;
      return await this.failWith(err);
    } finally {
      stopTimers();
      outer?.removeEventListener('abort', onAbort);
      this.keeper.stop();
      for (const r of this.runs.values()) r.abort.abort(new ApplyInterrupted('stopped'));
      if (this.o.releaseLeasesOnExit === false) this.keeper.abandonAll();
      else await this.keeper.releaseAll();
      if (failed) this.log.debug({}, 'leases released after a failure');
    }
  }

  /** The LOAD GATE (load-gate.ts); false when stopped while waiting. */
  private passLoadGate(): Promise<boolean> {
    return waitForInitialLoad({
      store: this.o.store,
      migrationId: this.o.migrationId,
      cdcOnly: this.o.cdcOnly,
      log: this.log,
      signal: this.shutdown,
      beat: () => this.hb?.beat(),
      completed: (m) => this.completedWatch.completed(m),
      setWaiting: (waiting) => (this.waitingForLoad = waiting),
    });
  }

  /** Status reports, stall checks, progress publication, the COMPLETED poll; returns their stop. */
  private startTimers(): () => void {
    const every = (ms: number, fn: () => void): NodeJS.Timeout => {
      const t = setInterval(fn, ms);
      t.unref?.();
      return t;
    };
    const timers = [
      every(this.o.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS, () => this.reporter.report()),
      every(Math.max(50, Math.min(5_000, Math.floor(this.stallWarnMs / 4))), () => void this.checkStalls()),
      every(PUBLISH_PROGRESS_MS, () => void this.publisher.publish()),
    ];
    if (this.o.exitWhenCompleted) {
      const idle = () => this.shutdown.aborted || this.stopReason !== undefined;
      timers.push(every(COMPLETED_POLL_MS, () => void (idle() || this.completedWatch.poll(() => this.requestShutdown()))));
    }
    return () => timers.forEach((t) => clearInterval(t));
  }

  private requestShutdown(): void {
    if (this.shutdown.aborted) return;
    this.log.info({}, 'stopping: finishing the batches being applied');
    this.stopping.abort(new ApplyInterrupted('interrupted'));
    this.abortRuns(new ApplyInterrupted('interrupted'));
    this.consumer?.stop();
  }

  onLeaseLost(shardId: string, reason: string): void {
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

  /** The first fatal failure ends the run: every shard stops (waits, e.g. a DDL rendezvous expecting this shard, are cut short). */
  private fail(failure: ShardFailure, why: string): void {
    if (this.fatal !== undefined) return;
    this.fatal = failure;
    this.abortRuns(new ApplyInterrupted(why));
    this.consumer?.stop();
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
    if (this.shutdown.aborted) consumer.stop();
    const watcher = this.o.stopWhenCaughtUp
      ? setInterval(() => {
          if (this.stopReason === undefined && this.inFlight === 0 && everyShardCaughtUp(consumer.shardStatuses())) {
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
      if (err instanceof ApplyInterrupted && (this.shutdown.aborted || this.rebuildRequested)) return;
      throw err; // from reading the stream
    } finally {
      if (watcher) clearInterval(watcher);
      this.consumer = undefined;
    }
    if (this.fatal !== undefined) throw this.fatal;
  }

  // Consumer callbacks

  private async ownsShard(shardId: string): Promise<boolean> {
    if (this.rebuildRequested || this.shutdown.aborted || this.stopReason !== undefined) return false;
    if (this.keeper.heldShards().length === 0) this.hb?.beat(); // standing by: discovery rounds are its loop
    return this.keeper.tryAcquire(shardId);
  }

  /** Where the consumer starts reading a shard: its saved checkpoint (SHARD CHECKPOINT LOAD for the reader). */
  private async checkpointOf(shardId: string): Promise<ShardCheckpoint | undefined> {
    const cp = await storeRetry(this.log, `read checkpoint of ${shardId}`, () => this.o.store.getApplyCheckpoint(this.o.migrationId, shardId));
    if (!cp) return undefined;
    // The reader's checkpoint as saved (StreamCheckpoint): lastRecordIds of an ended parent seed
    // its children's readers, which drop the duplicate of a write retried after the parent closed.
    return {
      sequenceNumber: cp.sequenceNumber === START_OF_SHARD_SEQUENCE ? undefined : cp.sequenceNumber,
      shardEnded: cp.shardEnded,
      ...(cp.lastRecordIds ? { lastRecordIds: cp.lastRecordIds } : {}),
    };
  }

  private async handle(batch: ShardBatch): Promise<void> {
    this.hb?.beat();
    this.inFlight++;
    try {
      await this.applier.apply(batch);
    } catch (err) {
      const lost = findCause(err, isLeaseLost);
      if (lost) {
        this.log.warn({ shardId: batch.shardId, reason: lost.message }, 'batch abandoned: lease lost (it will be replayed by the new owner)');
        throw lost;
      }
      const stopping = this.shutdown.aborted || this.rebuildRequested || this.fatal !== undefined;
      if (stopping && (findCause(err, isInterrupted) || errorName(err) === 'AbortError')) {
        throw new ApplyInterrupted('interrupted');
      }
      const failure = new ShardFailure(batch.shardId, err);
      this.fail(failure, 'another shard failed');
      throw failure;
    } finally {
      this.inFlight--;
    }
  }

  // Status

  status(): ApplyStatus {
    return buildApplyStatus({
      ownerId: this.o.ownerId,
      statuses: this.consumer?.shardStatuses() ?? [],
      runs: this.runs,
      ended: this.ended,
      holds: (shardId) => this.keeper.holds(shardId),
      sessionEvents: this.sessionEvents,
    });
  }

  /** STALL DETECTION (stall-watch.ts). */
  private checkStalls(): Promise<void> {
    return checkStalls({
      runs: () => this.runs.values(),
      keeper: this.keeper,
      store: this.o.store,
      log: this.log,
      warnMs: this.stallWarnMs,
      failMs: this.stallFailMs,
      failing: this.failing,
      fail: (shardId, error) => this.fail(new ShardFailure(shardId, error), 'a shard stalled'),
    });
  }
}
