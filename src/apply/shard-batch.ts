/**
 * The shard batch applier: applies one Kinesis batch of one shard to the target and checkpoints
 * it. Holds each held shard's state (ShardRun: writer, last saved checkpoint, counters, stall
 * clock), the migration-identity and origin checks, the duplicate-key conflict retry, the
 * barriers, and THE call site that saves a shard's checkpoint (`saveCheckpoint`).
 *
 * Invariants (the runner's header lists them all):
 *  - CHECKPOINT AFTER ACK: a shard's checkpoint is saved only after ApplyWriter.applyBatch (or
 *    its `onProgress` hook) returned, i.e. after the target acknowledged every write it covers.
 *  - NO CHECKPOINT PAST A CONFLICT: a batch with unresolved duplicate-key conflicts is re-applied
 *    (idempotent) with backoff until clean or `conflictRetryLimitMs` ran out (then APPLY_FAILED).
 *  - Barriers are recorded (idempotently) before the checkpoint that passes them is saved.
 */
import { decodeEnvelope, isAtOrBefore, migrationTag, type ChangeEnvelope, type EventPosition } from '../model/change-envelope.js';
import type { LeaseKeeper } from '../state/lease-keeper.js';
import { LeaseLostError } from '../state/lease-keeper.js';
import type { StreamCheckpoint } from '../state/store.js';
import type { ShardInfo } from '../transport/shard-map.js';
import type { ShardBatch } from '../transport/shard-reader.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { retry, sleep } from '../util/retry.js';
import type { Heartbeat } from '../observability/health.js';
import { stats } from '../observability/stats.js';
import { DEFAULT_CONFLICT_RETRY_LIMIT_MS, START_OF_SHARD_SEQUENCE, shownSequence, type ApplyRunnerOptions } from './apply-options.js';
import { countBatch, emptyCounters, type ApplyCounters, type ShardRunView } from './apply-status.js';
import { ApplyInterrupted, PendingConflicts, conflictFailure, describeConflict } from './apply-failures.js';
import { createDdlGate } from './ddl-gate.js';
import { fencedClient } from './fenced-target.js';
import { checkOrigin } from './origin-check.js';
import { storeRetry } from './store-retry.js';
import { ApplyWriter, type ApplyResult } from './writer.js';

/** The state of one shard this process holds and applies. */
export interface ShardRun extends ShardRunView {
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

/** What the applier needs of the runner that owns it. */
export interface ShardApplierHost {
  readonly o: ApplyRunnerOptions;
  readonly log: Logger;
  readonly keeper: LeaseKeeper;
  readonly shutdown: AbortSignal;
  readonly runs: Map<string, ShardRun>;
  /** Counters of shards that ended here (status totals). */
  readonly ended: Map<string, ApplyCounters>;
  heartbeat(): Heartbeat | undefined;
  /** The consumer is being torn down: a lease change. */
  rebuilding(): boolean;
  /** A fatal failure ends the run. */
  failing(): boolean;
  onLeaseLost(shardId: string, reason: string): void;
  streamShards(): Promise<ShardInfo[]>;
  addSessionEvents(n: number): void;
}

export class ShardBatchApplier {
  private migTag: { tag: string; at: number } | undefined;

  constructor(private readonly h: ShardApplierHost) {}

  /** Applies `batch` of its shard, then checkpoints it (see the invariants above). */
  async apply(batch: ShardBatch): Promise<void> {
    // The consumer is being torn down (lease change or a failure): start nothing new.
    if (this.h.rebuilding() || this.h.failing()) throw new ApplyInterrupted('consumer stopping');
    const run = await this.shardRun(batch.shardId);
    run.busySince = Date.now();
    try {
      await this.applyIn(run, batch);
    } finally {
      run.busySince = undefined;
      if (run.stalledSince) this.clearStall(run);
    }
  }

  /** The shard's lease is held and its stall is over: say so and clear it in the state store. */
  private clearStall(run: ShardRun): void {
    this.h.log.info({ shardId: run.shardId, stalledS: Math.round((Date.now() - run.stalledSince!.getTime()) / 1000) }, 'shard making progress again');
    run.stalledSince = undefined;
    run.lastStallWarnAt = 0;
    const lease = this.h.keeper.lease(run.shardId);
    if (lease) void this.h.o.store.setShardStall(lease, null).catch(() => undefined);
  }

  private async applyIn(run: ShardRun, batch: ShardBatch): Promise<void> {
    const own = await this.ownRecords(run, this.decode(batch, run));
    const envelopes = await checkOrigin(run, own, this.h.o.migrationId, () => this.h.streamShards());
    const result = await this.applyUntilNoConflicts(run, batch, envelopes);

    // Barriers: everything before them is applied; record before the checkpoint passes them.
    for (const b of result.barriers) {
      const id = envelopes[b.index]?.barrier?.id ?? b.id;
      const cutover = await this.storeRetry('record barrier', () => this.h.o.store.recordBarrierReached(this.h.o.migrationId, id, batch.shardId));
      this.h.log.info({ shardId: batch.shardId, barrier: id, cutover: cutover ? cutover.state : 'none' }, 'barrier reached');
    }

    countBatch(run.counters, batch, envelopes, result);
    this.h.addSessionEvents(result.stats.envelopes);
    const position = result.lastPosition ?? run.position;
    const sequenceNumber =
      batch.checkpoint.sequenceNumber ?? (batch.shardEnded ? (run.sequenceNumber ?? START_OF_SHARD_SEQUENCE) : undefined);
    if (sequenceNumber !== undefined) {
      // INVARIANT: saved only now, after applyBatch returned, i.e. after the target acknowledged
      // every write of this batch (and with no unresolved conflict left).
      await this.saveCheckpoint(run, { ...batch.checkpoint, sequenceNumber, shardEnded: batch.shardEnded }, position);
    }
    run.position = position;
    // Every record read up to (call time − MillisBehindLatest) is applied now (readiness).
    if (batch.millisBehindLatest !== undefined) {
      const through = batch.readAt - batch.millisBehindLatest;
      if (run.appliedThroughAt === undefined || through > run.appliedThroughAt) run.appliedThroughAt = through;
    }
    if (batch.shardEnded) {
      this.h.log.info({ shardId: batch.shardId, events: run.counters.events }, 'shard ended (resharded) and fully applied');
      this.h.ended.set(batch.shardId, run.counters);
      this.h.runs.delete(batch.shardId);
      await this.h.keeper.release(batch.shardId);
    }
  }

  /**
   * NO CHECKPOINT PAST A CONFLICT: applies the batch; while duplicate-key conflicts remain
   * unresolved (another shard has not yet applied the delete that frees the key), re-applies it
   * (idempotent) with backoff, until clean or `conflictRetryLimitMs` ran out (APPLY_FAILED). A
   * lease loss or stop cuts the backoff short with the run's abort reason (the batch is replayed).
   */
  private async applyUntilNoConflicts(run: ShardRun, batch: ShardBatch, envelopes: ChangeEnvelope[]): Promise<ApplyResult> {
    const limitMs = this.h.o.conflictRetryLimitMs ?? DEFAULT_CONFLICT_RETRY_LIMIT_MS;
    const policy = { initialDelayMs: 100, maxDelayMs: 5_000, ...this.h.o.conflictRetryPolicy };
    const started = Date.now();
    try {
      return await retry(() => this.applyOnce(run, envelopes), {
        isRetryable: (err) => err instanceof PendingConflicts,
        retryForMs: limitMs,
        signal: run.abort.signal,
        backoff: { baseMs: policy.initialDelayMs, maxMs: policy.maxDelayMs },
        exhausted: (err) => conflictFailure(batch.shardId, (err as PendingConflicts).conflicts, Date.now() - started),
        onRetry: ({ attempt, error }) => {
          const pending = (error as PendingConflicts).conflicts;
          run.counters.conflictRetries++;
          stats.apply.conflictRetries++;
          this.h.heartbeat()?.beat();
          if (attempt === 1 || attempt % 10 === 0) {
            this.h.log.warn(
              { shardId: batch.shardId, attempt, conflicts: pending.length, first: describeConflict(pending[0]!) },
              'unresolved duplicate-key conflicts: re-applying the batch while other shards catch up',
            );
          }
        },
        // A conflict backoff is a wait for other shards, not a stall of this one.
        sleep: async (ms, signal) => {
          run.waiting = true;
          try {
            return await sleep(Math.max(50, ms), signal);
          } finally {
            run.waiting = false;
            run.busySince = Date.now();
          }
        },
      });
    } catch (err) {
      // Stopped during the retries: the batch is replayed, it did not fail.
      if (err instanceof PendingConflicts && run.abort.signal.aborted) throw run.abort.signal.reason ?? new ApplyInterrupted('interrupted');
      throw err;
    }
  }

  /** One application of the batch; PendingConflicts while any duplicate-key conflict is left. */
  private async applyOnce(run: ShardRun, envelopes: ChangeEnvelope[]): Promise<ApplyResult> {
    const result = await run.writer.applyBatch(envelopes, {
      after: run.position,
      onProgress: async (p) => {
        // Never checkpoint past (nor run a DDL after) an unresolved conflict.
        if (p.conflicts.length > 0) throw new PendingConflicts(p.conflicts);
        if (p.position === undefined || (run.position !== undefined && isAtOrBefore(p.position, run.position))) return;
        // The target acknowledged everything up to the DDL: checkpoint the position with the
        // batch's starting sequence number (the batch is re-read on replay, then skipped).
        await this.saveCheckpoint(run, { sequenceNumber: run.sequenceNumber ?? START_OF_SHARD_SEQUENCE }, p.position);
        run.position = p.position;
      },
    });
    if (result.conflicts.length > 0) throw new PendingConflicts(result.conflicts);
    return result;
  }

  /**
   * SHARD CHECKPOINT SAVE (the one call site): under the lease the run was loaded with; refused
   * when the lease moved on (LeaseLostError, the consumer is rebuilt). Saves the reader's checkpoint
   * `stream` as it is (lastRecordIds included) with the last applied position.
   */
  private async saveCheckpoint(run: ShardRun, stream: StreamCheckpoint, position: EventPosition | undefined): Promise<void> {
    const { sequenceNumber } = stream;
    const lease = this.h.keeper.lease(run.shardId);
    if (!lease || lease.epoch !== run.epoch) throw new LeaseLostError(run.shardId, 'not held at checkpoint time');
    const r = await this.storeRetry(`save checkpoint of ${run.shardId}`, () =>
      this.h.o.store.saveApplyCheckpoint(lease, { ...stream, position, counters: run.counters }),
    );
    if (r === 'saved') {
      run.sequenceNumber = sequenceNumber;
      stats.apply.checkpointAtMs.set(run.shardId, Date.now());
      return;
    }
    if (r === 'lease-lost') {
      // Another owner (or expiry) took the shard: stop it here; the consumer is rebuilt.
      this.h.onLeaseLost(run.shardId, 'checkpoint refused: lease lost');
      throw new LeaseLostError(run.shardId, 'checkpoint refused: lease lost');
    }
    throw new MigratorError(
      ExitCode.INTERNAL,
      `Shard ${run.shardId}: the checkpoint at sequence number ${sequenceNumber} would move the saved one backwards (a bug).`,
      { hint: 'Report it with the log (--verbose); rerunning resumes from the saved checkpoint.' },
    );
  }

  private storeRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return storeRetry(this.h.log, what, fn);
  }

  /** The shard's state under its current lease epoch: loaded from its saved checkpoint (SHARD CHECKPOINT LOAD). */
  private async shardRun(shardId: string): Promise<ShardRun> {
    const h = this.h;
    const lease = h.keeper.lease(shardId);
    if (!lease) throw new LeaseLostError(shardId, 'not held');
    const existing = h.runs.get(shardId);
    if (existing && existing.epoch === lease.epoch) return existing;
    existing?.abort.abort(new LeaseLostError(shardId, 'epoch changed'));
    const cp = await this.storeRetry(`read checkpoint of ${shardId}`, () => h.o.store.getApplyCheckpoint(h.o.migrationId, shardId));
    const abort = new AbortController();
    if (h.shutdown.aborted) abort.abort(h.shutdown.reason);
    else if (h.rebuilding() || h.failing()) abort.abort(new ApplyInterrupted('consumer stopping'));
    const log = h.log.child({ shardId });
    const run: ShardRun = {
      shardId,
      epoch: lease.epoch,
      writer: undefined as unknown as ApplyWriter, // set just below (its hooks need `run`)
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
    run.writer = this.createWriter(run, log);
    h.runs.set(shardId, run);
    log.info({ sequenceNumber: shownSequence(run.sequenceNumber), events: run.counters.events }, 'applying shard');
    return run;
  }

  /** The shard's writer: every write behind the lease fence, every DDL through the DDL gate. */
  private createWriter(run: ShardRun, log: Logger): ApplyWriter {
    const h = this.h;
    const gate = createDdlGate({
      store: h.o.store,
      migrationId: h.o.migrationId,
      shardId: run.shardId,
      shards: () => h.streamShards(),
      pollMs: h.o.ddlPollMs,
      signal: run.abort.signal,
      onWait: beatThen(
        () => h.heartbeat(),
        throttle((info) => log.info({ ddl: info.ddlKey, arrived: info.arrived, waitingFor: info.waitingFor }, 'waiting for every shard to reach the DDL'), 10_000),
      ),
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
    return new ApplyWriter({
      // After a fatal failure (e.g. a stall) no new write starts: the run ends and is replayed.
      client: fencedClient(
        h.o.target,
        async () => {
          if (h.failing()) throw new ApplyInterrupted('apply is failing');
          h.heartbeat()?.beat(); // every write attempt (a retry after a 60 s write timeout too)
          await h.keeper.waitWritable(run.shardId, run.abort.signal);
        },
        progressed,
      ),
      rules: h.o.rules,
      keyFilter: h.o.writer?.keyFilter,
      retryPolicy: h.o.writer?.retryPolicy,
      // A stop or lease loss cuts a transient-error backoff short (the batch is replayed).
      retryHooks: { signal: run.abort.signal },
      writeTimeoutMs: h.o.writer?.writeTimeoutMs,
      beforeDdl: (e) => waiting(() => gate.beforeDdl(e)),
      afterDdl: (e) => gate.afterDdl(e),
      logger: log,
      // A full migration holds the target's TTL indexes until its cutover (ttl-hold.ts); plain CDC
      // has no cutover to restore them, so it holds none.
      ttlHold: h.o.cdcOnly ? undefined : { store: h.o.store, migrationId: h.o.migrationId },
    });
  }

  /** This migration's record tag (see migrationTag); re-read at most every 5 s when `refresh`. */
  private async ownTag(refresh: boolean): Promise<string> {
    if (this.migTag && !(refresh && Date.now() - this.migTag.at > 5_000)) return this.migTag.tag;
    const m = await this.storeRetry('read the migration', () => this.h.o.store.getMigration(this.h.o.migrationId));
    this.migTag = { tag: migrationTag(this.h.o.migrationId, m?.nonce), at: Date.now() };
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
        this.h.log.warn(
          { shardId: run.shardId, ignored: run.foreignRecords },
          'the stream holds records of another migration (a reused stream?): ignored, not applied',
        );
      }
    }
    return own;
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
}

/** Beats the heartbeat on every call, then calls `fn`. */
function beatThen<A extends unknown[]>(hb: () => Heartbeat | undefined, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    hb()?.beat();
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
