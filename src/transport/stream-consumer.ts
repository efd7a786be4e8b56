/**
 * Reads every (owned) shard of a stream, respecting shard lineage, and hands decoded batches to
 * the caller.
 *
 * LINEAGE INVARIANT (enforced in `startEligibleShards`): a child shard (ParentShardId /
 * AdjacentParentShardId) is read only after every parent has been read to its end AND the
 * handler has finished the parent's last batch — or a checkpoint says the parent ended (another
 * consumer process finished it), or the parent is no longer listed (past retention). A key's
 * records before a reshard are in the parent, later ones in a child, so per-key order survives
 * resharding.
 *
 * Several consumer processes can split the shards: the caller decides ownership with
 * `ownsShard(shardId)` (re-evaluated on every shard discovery; a reader whose shard is no longer
 * owned is stopped after its current batch) or a fixed `shardIds` list. Leases are not built here.
 * Within a shard, batches are handled one at a time in order; shards run concurrently.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { classifyError } from './stream-errors.js';
import { backoffDelay, sleep } from '../util/retry.js';
import { listAllShards, type ShardInfo } from './shard-map.js';
import { ShardReader, type ShardBatch, type ShardCheckpoint, type ShardReaderStats, type ShardReaderTuning } from './shard-reader.js';

export type CheckpointSource =
  | ReadonlyMap<string, ShardCheckpoint>
  | Readonly<Record<string, ShardCheckpoint>>
  | ((shardId: string) => ShardCheckpoint | undefined | Promise<ShardCheckpoint | undefined>);

export interface StreamConsumerOptions extends ShardReaderTuning {
  client: KinesisClient;
  streamName: string;
  /**
   * Start position per shard (absent = TRIM_HORIZON). A function is called when a shard is about to
   * start, and again on each discovery for parents owned elsewhere (to see `shardEnded`).
   */
  checkpoints?: CheckpointSource;
  /** Ownership predicate (e.g. backed by leases). Default: every shard. */
  ownsShard?: (shardId: string) => boolean | Promise<boolean>;
  /** Fixed list of owned shard ids (alternative to ownsShard). */
  shardIds?: readonly string[];
  /** ListShards period, to discover children after a reshard (default 10 s; also runs when a shard ends). */
  shardDiscoveryIntervalMs?: number;
  signal?: AbortSignal;
}

export type ShardState = 'waiting-for-parents' | 'reading' | 'ended' | 'not-owned' | 'stopped';

export interface ShardStatus {
  shardId: string;
  state: ShardState;
  parentShardIds: string[];
  checkpoint: ShardCheckpoint | undefined;
  millisBehindLatest: number | undefined;
  caughtUp: boolean;
  /** See ShardReader.caughtUpAt. */
  caughtUpAt: number | undefined;
  stats: ShardReaderStats | undefined;
}

interface RunningShard {
  info: ShardInfo;
  reader: ShardReader;
  abort: AbortController;
  done: Promise<void>;
  /** Last batch checkpoint handled by the handler. */
  checkpoint: ShardCheckpoint | undefined;
}

export type BatchHandler = (batch: ShardBatch) => void | Promise<void>;

export class StreamConsumer implements AsyncIterable<ShardBatch> {
  private readonly options: StreamConsumerOptions;
  private readonly stopController = new AbortController();
  private shards = new Map<string, ShardInfo>();
  private readonly running = new Map<string, RunningShard>();
  /** Shards read to their end here, last batch handled. */
  private readonly endedHere = new Set<string>();
  /** Shards another process (or a checkpoint) says are ended. */
  private readonly endedElsewhere = new Set<string>();
  private readonly notOwned = new Set<string>();
  private readonly stopped = new Set<string>();
  /** Last checkpoint handled per shard (used if a reader of that shard is restarted). */
  private readonly handled = new Map<string, ShardCheckpoint>();
  private discoverWake: (() => void) | undefined;
  private discoverRequested = false;
  private runCalled = false;

  constructor(options: StreamConsumerOptions) {
    this.options = options;
    if (options.signal) {
      if (options.signal.aborted) this.stopController.abort();
      else options.signal.addEventListener('abort', () => this.stop(), { once: true });
    }
  }

  /** Stops every reader (after the batch being handled) and ends `run()`. */
  stop(): void {
    this.stopController.abort();
    for (const r of this.running.values()) r.abort.abort();
    this.requestDiscovery();
  }

  private requestDiscovery(): void {
    this.discoverRequested = true;
    this.discoverWake?.();
  }

  /** Every known shard's state. */
  shardStatuses(): ShardStatus[] {
    return [...this.shards.values()].map((info) => {
      const r = this.running.get(info.shardId);
      const state: ShardState = this.endedHere.has(info.shardId) || this.endedElsewhere.has(info.shardId)
        ? 'ended'
        : this.notOwned.has(info.shardId)
          ? 'not-owned'
          : this.stopped.has(info.shardId)
            ? 'stopped'
            : r
              ? 'reading'
              : 'waiting-for-parents';
      return {
        shardId: info.shardId,
        state,
        parentShardIds: parentsOf(info),
        checkpoint: r?.checkpoint,
        millisBehindLatest: r?.reader.millisBehindLatest,
        caughtUp: r ? r.reader.caughtUp || r.reader.ended : state === 'ended',
        caughtUpAt: r?.reader.caughtUpAt,
        stats: r?.reader.stats,
      };
    });
  }

  /** True when every owned shard that can be read is caught up (or ended) and none waits for parents. */
  get caughtUp(): boolean {
    const statuses = this.shardStatuses();
    return statuses.length > 0 && statuses.every((s) => s.state === 'ended' || s.state === 'not-owned' || (s.state === 'reading' && s.caughtUp));
  }

  /**
   * Reads until stopped (signal or `stop()`). The handler is called one batch at a time per shard;
   * a rejection stops everything and rejects `run()`. Resolves once every reader has stopped.
   */
  async run(handler: BatchHandler): Promise<void> {
    if (this.runCalled) throw new Error('StreamConsumer.run can be called once');
    this.runCalled = true;
    const stop = this.stopController.signal;
    let failure: unknown;
    const fail = (err: unknown): void => {
      if (failure === undefined) failure = err;
      this.stop();
    };
    const interval = this.options.shardDiscoveryIntervalMs ?? 10_000;
    let discoveryErrors = 0;
    while (!stop.aborted) {
      try {
        await this.discover(handler, fail);
        discoveryErrors = 0;
      } catch (err) {
        const kind = classifyError(err);
        if (kind === 'fatal') {
          fail(err);
          break;
        }
        if (kind !== 'aborted') discoveryErrors++;
      }
      if (stop.aborted) break;
      const delay = discoveryErrors > 0 ? backoffDelay(discoveryErrors - 1, { baseMs: 500, maxMs: interval }) : interval;
      if (!this.discoverRequested || discoveryErrors > 0) {
        // The pause between discoveries (the backoff after a failure) ends early on stop() or requestDiscovery().
        const wake = new AbortController();
        this.discoverWake = () => wake.abort();
        await sleep(delay, wake.signal);
        this.discoverWake = undefined;
      }
      this.discoverRequested = false;
    }
    for (const r of this.running.values()) r.abort.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
    if (failure !== undefined) throw failure;
  }

  /**
   * Async iteration over all shards' batches. A batch counts as handled (for the lineage
   * invariant) when the loop asks for the next one. Breaking out of the loop stops the consumer.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<ShardBatch> {
    const queue: Array<{ batch: ShardBatch; ack: () => void }> = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let error: unknown;
    let closed = false;
    const runPromise = this.run(
      (batch) =>
        new Promise<void>((ack) => {
          if (closed) return ack();
          queue.push({ batch, ack });
          wake?.();
        }),
    ).then(
      () => {
        finished = true;
        wake?.();
      },
      (err) => {
        error = err;
        finished = true;
        wake?.();
      },
    );
    let pendingAck: (() => void) | undefined;
    try {
      for (;;) {
        pendingAck?.();
        pendingAck = undefined;
        const item = queue.shift();
        if (item) {
          pendingAck = item.ack;
          yield item.batch;
          continue;
        }
        if (finished) {
          if (error !== undefined) throw error;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      closed = true;
      this.stop();
      pendingAck?.();
      for (const q of queue.splice(0)) q.ack();
      await runPromise;
    }
  }

  private async owns(shardId: string): Promise<boolean> {
    if (this.options.shardIds) return this.options.shardIds.includes(shardId);
    return this.options.ownsShard ? await this.options.ownsShard(shardId) : true;
  }

  private async checkpointOf(shardId: string): Promise<ShardCheckpoint | undefined> {
    const src = this.options.checkpoints;
    if (!src) return undefined;
    if (typeof src === 'function') return await src(shardId);
    if (src instanceof Map) return src.get(shardId);
    return (src as Readonly<Record<string, ShardCheckpoint>>)[shardId];
  }

  private isEnded(shardId: string): boolean {
    return this.endedHere.has(shardId) || this.endedElsewhere.has(shardId);
  }

  private async discover(handler: BatchHandler, fail: (err: unknown) => void): Promise<void> {
    const stop = this.stopController.signal;
    const list = await listAllShards(this.options.client, this.options.streamName, { signal: stop });
    this.shards = new Map(list.map((s) => [s.shardId, s]));

    // Ownership changes: stop readers of shards no longer owned.
    for (const [id, r] of this.running) {
      if (!(await this.owns(id))) {
        r.abort.abort();
        this.stopped.add(id);
      }
    }
    // Parents owned elsewhere (or previously finished) may have ended since the last look.
    for (const s of list) {
      if (this.isEnded(s.shardId) || this.running.has(s.shardId)) continue;
      const cp = await this.checkpointOf(s.shardId);
      if (cp?.shardEnded) this.endedElsewhere.add(s.shardId);
    }
    if (stop.aborted) return;
    await this.startEligibleShards(list, handler, fail);
  }

  private async startEligibleShards(list: ShardInfo[], handler: BatchHandler, fail: (err: unknown) => void): Promise<void> {
    const stop = this.stopController.signal;
    for (const info of list) {
      const id = info.shardId;
      if (stop.aborted) return;
      if (this.running.has(id) || this.isEnded(id)) continue;
      if (!(await this.owns(id))) {
        this.notOwned.add(id);
        continue;
      }
      this.notOwned.delete(id);
      this.stopped.delete(id);
      // LINEAGE INVARIANT: every listed parent must be ended (read to its end and its last batch
      // handled here, or ended according to its checkpoint) before the child starts.
      const waiting = parentsOf(info).filter((p) => this.shards.has(p) && !this.isEnded(p));
      if (waiting.length > 0) continue;
      const checkpoint = laterCheckpoint(await this.checkpointOf(id), this.handled.get(id));
      if (checkpoint?.shardEnded) {
        this.endedElsewhere.add(id);
        continue;
      }
      // Parents' last record ids (from their final checkpoints, handled here or persisted elsewhere).
      const seeds: string[] = [];
      for (const p of parentsOf(info)) {
        const cp = this.handled.get(p)?.shardEnded ? this.handled.get(p) : await this.checkpointOf(p);
        seeds.push(...(cp?.lastRecordIds ?? []));
      }
      this.startReader(info, checkpoint, seeds, handler, fail);
    }
  }

  private startReader(
    info: ShardInfo,
    checkpoint: ShardCheckpoint | undefined,
    parentLastRecordIds: string[],
    handler: BatchHandler,
    fail: (err: unknown) => void,
  ): void {
    const abort = new AbortController();
    if (this.stopController.signal.aborted) abort.abort();
    const o = this.options;
    const reader = new ShardReader({
      client: o.client,
      streamName: o.streamName,
      shardId: info.shardId,
      hashKeyRange: info.hashKeyRange,
      parentLastRecordIds,
      checkpoint,
      signal: abort.signal,
      limit: o.limit,
      minCallIntervalMs: o.minCallIntervalMs,
      idlePollMinMs: o.idlePollMinMs,
      idlePollMaxMs: o.idlePollMaxMs,
      errorBackoff: o.errorBackoff,
      maxConsecutiveErrors: o.maxConsecutiveErrors,
      onInvalidRecord: o.onInvalidRecord,
      chunkAssemblyTimeoutMs: o.chunkAssemblyTimeoutMs,
      onRetry: o.onRetry,
      emitIdleBatches: o.emitIdleBatches,
    });
    const entry: RunningShard = { info, reader, abort, checkpoint, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        for await (const batch of reader) {
          if (abort.signal.aborted) break;
          await handler(batch);
          entry.checkpoint = batch.checkpoint;
          this.handled.set(info.shardId, batch.checkpoint);
          if (batch.shardEnded) {
            // The parent's last batch is handled: its children may start now.
            this.endedHere.add(info.shardId);
            this.requestDiscovery();
          }
          if (abort.signal.aborted) break;
        }
      } catch (err) {
        if (!abort.signal.aborted || classifyError(err) !== 'aborted') fail(err);
      } finally {
        if (this.running.get(info.shardId) === entry) this.running.delete(info.shardId);
      }
    })();
    this.running.set(info.shardId, entry);
  }
}

/** The further of two checkpoints of one shard (sequence numbers are decimal strings). */
export function laterCheckpoint(a: ShardCheckpoint | undefined, b: ShardCheckpoint | undefined): ShardCheckpoint | undefined {
  if (!a) return b;
  if (!b) return a;
  if (a.shardEnded) return a;
  if (b.shardEnded) return b;
  if (a.sequenceNumber === undefined) return b;
  if (b.sequenceNumber === undefined) return a;
  return BigInt(a.sequenceNumber) >= BigInt(b.sequenceNumber) ? a : b;
}

function parentsOf(info: ShardInfo): string[] {
  return [info.parentShardId, info.adjacentParentShardId].filter((p): p is string => p !== undefined);
}

