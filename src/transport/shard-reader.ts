/**
 * Reads one shard with GetShardIterator/GetRecords and yields decoded payload batches with a safe
 * checkpoint (see shard-record-assembler.ts for the checkpoint invariant).
 *
 * Batch size: GetRecords' Limit adapts so that a batch carries about `maxBatchPayloadBytes` of
 * (decompressed) payloads (default 512 KiB): aggregated, compressed records hold up to ~8 MiB of
 * payloads each, so a fixed Limit of 10,000 (10 MiB of records) could hand the apply hundreds of
 * thousands of events at once, and apply's memory would grow with the backlog. The first call asks
 * for INITIAL_LIMIT records; then Limit = maxBatchPayloadBytes / (payload bytes per record, EWMA),
 * within [1, limit].
 * Polling: GetRecords with a large Limit (default 10,000). The next call follows immediately
 * (subject to the per-shard rate limit) when the last call returned records or
 * MillisBehindLatest > 0; when a call comes back empty at the tip, the pause grows from
 * `idlePollMinMs` to `idlePollMaxMs` (default 200 → 1000 ms). Calls to one shard are never closer
 * than `minCallIntervalMs` (default 200 ms = Kinesis' 5 GetRecords/s per shard).
 * ExpiredIteratorException: a new iterator AFTER_SEQUENCE_NUMBER the last record read (or the
 * original start position) — nothing is skipped or repeated. Throttling
 * (ProvisionedThroughputExceededException) and transient errors: exponential backoff with jitter.
 * A closed shard ends when GetRecords returns no NextShardIterator: the last batch has
 * `shardEnded: true`. Abort the signal to stop; the iterator then finishes without error.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type GetRecordsCommandOutput,
  type GetShardIteratorCommandInput,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import { classifyError, errorName, isRetryableStreamError } from './stream-errors.js';
import { retry, sleep, type BackoffOptions } from '../util/retry.js';
import type { HashKeyRange } from './shard-map.js';
import { ShardRecordAssembler, type AssemblerStats } from './shard-record-assembler.js';
import { GET_RECORDS_MAX_LIMIT, GET_RECORDS_MIN_INTERVAL_MS } from './stream-limits.js';
import { streamParams } from '../model/stream-ref.js';
import { noteKinesisAnswer, stats } from '../observability/stats.js';

/** Default target of payload bytes per batch (see ShardReaderTuning.maxBatchPayloadBytes). */
// 512 KiB: decoded, a batch's events take several times their BSON size in heap, and every shard a
// process applies holds one batch (bounded memory by default, issue #16).
export const DEFAULT_MAX_BATCH_PAYLOAD_BYTES = 512 * 1024;
/** Limit of the first GetRecords call, before the size of the records is known. */
const INITIAL_LIMIT = 25;

/** A position in a shard that is safe to persist. */
export interface ShardCheckpoint {
  /** Last record fully processed; undefined = start of the shard (TRIM_HORIZON). */
  sequenceNumber?: string;
  /** The shard is closed and was read to its end: nothing more to read, children may start. */
  shardEnded?: boolean;
  /**
   * Set with `shardEnded`: the last record id per producer in this shard (hex). Persist it with the
   * checkpoint: a child shard's reader uses it to drop the duplicate of a write that failed
   * ambiguously and was retried after this shard closed.
   */
  lastRecordIds?: string[];
}

export interface ShardBatch {
  shardId: string;
  /** Payloads in shard order (chunked payloads reassembled, aggregates expanded). May be empty. */
  payloads: Uint8Array[];
  /** Safe to persist once these payloads (and all earlier ones of this shard) are applied. */
  checkpoint: ShardCheckpoint;
  /** True on the last batch of a closed shard. */
  shardEnded: boolean;
  /** From the GetRecords call that produced this batch. */
  millisBehindLatest: number | undefined;
  /** Wall-clock time (ms) at which that GetRecords call was sent. */
  readAt: number;
  /** Kinesis records consumed by this batch. */
  recordCount: number;
}

export interface ShardReaderTuning {
  /** GetRecords Limit (default 10,000, the maximum): the upper bound of the adaptive Limit. */
  limit?: number;
  /** Target payload bytes (decompressed) per batch; the Limit adapts to it (default 512 KiB). */
  maxBatchPayloadBytes?: number;
  /** Minimum spacing of GetRecords calls on this shard (default 200 ms). */
  minCallIntervalMs?: number;
  /** First pause after an empty GetRecords at the tip (default 200 ms). */
  idlePollMinMs?: number;
  /** Longest pause between polls of an idle shard (default 1000 ms). */
  idlePollMaxMs?: number;
  /** Backoff on throttling and transient errors (default 200 ms doubling up to 5 s, jittered). */
  errorBackoff?: BackoffOptions;
  /** Give up after this many consecutive failed calls (default Infinity). */
  maxConsecutiveErrors?: number;
  /** Invalid (non-frame) records: throw (default) or skip. */
  onInvalidRecord?: 'throw' | 'skip';
  /** Abandon a chunked payload open for longer than this arrival time (default 10 min). */
  chunkAssemblyTimeoutMs?: number;
  /** Called on each retried error, for logging. */
  onRetry?: (info: { shardId: string; errorName: string; attempt: number; delayMs: number }) => void;
  /**
   * Also yield a batch (no payloads, unchanged checkpoint) for GetRecords calls that bring nothing
   * new, e.g. to watch `millisBehindLatest` or notice "caught up" from inside the handler.
   * Default false: idle polls yield nothing.
   */
  emitIdleBatches?: boolean;
}

export interface ShardReaderOptions extends ShardReaderTuning {
  client: KinesisClient;
  streamName: string;
  shardId: string;
  /** The shard's hash key range (records whose span is outside it are dropped as misplaced). */
  hashKeyRange: HashKeyRange;
  /** `lastRecordIds` of the parent shards' final checkpoints (hex), see ShardCheckpoint. */
  parentLastRecordIds?: readonly string[];
  /** Where to start: after `sequenceNumber`, or TRIM_HORIZON when absent. */
  checkpoint?: ShardCheckpoint;
  signal?: AbortSignal;
}

export interface ShardReaderStats extends AssemblerStats {
  getRecordsCalls: number;
  emptyCalls: number;
  throttles: number;
  errors: number;
  expiredIterators: number;
  bytesRead: number;
}

export class ShardReader implements AsyncIterable<ShardBatch> {
  readonly shardId: string;
  private readonly options: ShardReaderOptions;
  private readonly assembler: ShardRecordAssembler;
  private started = false;
  private _millisBehindLatest: number | undefined;
  private _caughtUp = false;
  private _caughtUpAt: number | undefined;
  private _ended = false;
  private readonly counters = { getRecordsCalls: 0, emptyCalls: 0, throttles: 0, errors: 0, expiredIterators: 0, bytesRead: 0 };

  constructor(options: ShardReaderOptions) {
    this.options = options;
    this.shardId = options.shardId;
    this.assembler = new ShardRecordAssembler({
      shardId: options.shardId,
      hashKeyRange: options.hashKeyRange,
      startAfter: options.checkpoint?.sequenceNumber,
      onInvalidRecord: options.onInvalidRecord,
      chunkAssemblyTimeoutMs: options.chunkAssemblyTimeoutMs,
      seedRecordIds: (options.parentLastRecordIds ?? []).map((h) => BigInt('0x' + h)),
    });
  }

  /** MillisBehindLatest of the last GetRecords call. */
  get millisBehindLatest(): number | undefined {
    return this._millisBehindLatest;
  }

  /** True when the last GetRecords call returned nothing and MillisBehindLatest was 0. */
  get caughtUp(): boolean {
    return this._caughtUp;
  }

  /**
   * When caught up: the wall-clock time (ms) at which the GetRecords call that found nothing new
   * was sent. Batches are yielded one at a time and the next call is made only once the consumer
   * asks for more, so every record that arrived in the shard before that moment has been handed
   * over (and, with StreamConsumer, handled). Undefined when not caught up.
   */
  get caughtUpAt(): number | undefined {
    return this._caughtUp ? this._caughtUpAt : undefined;
  }

  get ended(): boolean {
    return this._ended;
  }

  get stats(): ShardReaderStats {
    return { ...this.assembler.stats, ...this.counters };
  }

  [Symbol.asyncIterator](): AsyncIterator<ShardBatch> {
    if (this.started) throw new Error(`ShardReader(${this.shardId}) can be iterated only once`);
    this.started = true;
    return this.read();
  }

  private async *read(): AsyncGenerator<ShardBatch, void, undefined> {
    const o = this.options;
    if (o.checkpoint?.shardEnded) {
      this._ended = true;
      return;
    }
    const st = this.newReadState();
    while (!o.signal?.aborted) {
      st.iterator ??= await this.openIterator(st);
      if (st.iterator === undefined) return; // aborted
      const out = await this.getRecords(st, st.iterator);
      if (out === 'expired') {
        // Re-position after the last record read: the assembler state stays valid.
        st.iterator = undefined;
        continue;
      }
      if (out === undefined) return; // aborted
      const records = out.Records ?? [];
      const before = this.assembler.checkpoint;
      const payloads = this.assemble(st, records);
      this._millisBehindLatest = out.MillisBehindLatest;
      const behind = out.MillisBehindLatest ?? 0;
      this._caughtUp = records.length === 0 && behind === 0;
      if (this._caughtUp) this._caughtUpAt = st.readAt;
      if (records.length === 0) this.counters.emptyCalls++;
      stats.kinesis.recordsReceived += records.length;
      st.idleDelay = records.length > 0 || behind > 0 ? 0 : Math.min(st.idleMax, st.idleDelay === 0 ? st.idleMin : st.idleDelay * 2);
      const batch = { shardId: this.shardId, payloads, shardEnded: false, millisBehindLatest: out.MillisBehindLatest, readAt: st.readAt, recordCount: records.length };
      st.iterator = out.NextShardIterator ?? undefined;
      if (st.iterator === undefined) {
        // Closed shard read to its end.
        this.assembler.end(st.lastRead);
        this._ended = true;
        this._caughtUp = true;
        const lastRecordIds = this.assembler.lastRecordIds().map((id) => id.toString(16));
        yield { ...batch, checkpoint: { sequenceNumber: this.assembler.checkpoint, shardEnded: true, lastRecordIds }, shardEnded: true };
        return;
      }
      const checkpoint = this.assembler.checkpoint;
      if (payloads.length > 0 || checkpoint !== before || o.emitIdleBatches) yield { ...batch, checkpoint: { sequenceNumber: checkpoint } };
    }
  }

  private newReadState(): ReadState {
    const o = this.options;
    const idleMin = o.idlePollMinMs ?? 200;
    const limit = Math.min(GET_RECORDS_MAX_LIMIT, Math.max(1, o.limit ?? GET_RECORDS_MAX_LIMIT));
    return {
      limit,
      maxBatchBytes: Math.max(1, o.maxBatchPayloadBytes ?? DEFAULT_MAX_BATCH_PAYLOAD_BYTES),
      bytesPerRecord: undefined,
      callLimit: Math.min(limit, INITIAL_LIMIT),
      minInterval: o.minCallIntervalMs ?? GET_RECORDS_MIN_INTERVAL_MS,
      idleMin,
      idleMax: Math.max(idleMin, o.idlePollMaxMs ?? 1000),
      lastRead: o.checkpoint?.sequenceNumber,
      iterator: undefined,
      idleDelay: 0,
      lastCallAt: -Infinity,
      readAt: 0,
    };
  }

  /** A new iterator after the last record read (or at the start position); undefined when aborted. */
  private openIterator(st: ReadState): Promise<string | undefined> {
    const o = this.options;
    const input: GetShardIteratorCommandInput =
      st.lastRead !== undefined
        ? { ...streamParams(o.streamName), ShardId: o.shardId, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: st.lastRead }
        : { ...streamParams(o.streamName), ShardId: o.shardId, ShardIteratorType: 'TRIM_HORIZON' };
    return this.withRetry('iterator', async () => {
      const out = await o.client.send(new GetShardIteratorCommand(input), { abortSignal: o.signal });
      if (!out.ShardIterator) throw new Error(`GetShardIterator returned no iterator for ${o.shardId}`);
      return out.ShardIterator;
    });
  }

  /**
   * One GetRecords call (retried on throttling and transient errors), spaced from the previous one
   * by the per-shard rate limit and, at the tip, the idle pause. 'expired': the iterator expired;
   * undefined: aborted.
   */
  private async getRecords(st: ReadState, iterator: string): Promise<GetRecordsCommandOutput | 'expired' | undefined> {
    const o = this.options;
    try {
      return await this.withRetry('records', async () => {
        // Rate limit: at most one GetRecords per minInterval; plus the idle pause when at the tip.
        const wait = Math.max(st.lastCallAt + st.minInterval - performance.now(), st.idleDelay);
        if (wait > 0 && !(await sleep(wait, o.signal))) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
        st.lastCallAt = performance.now();
        st.readAt = Date.now();
        this.counters.getRecordsCalls++;
        stats.kinesis.getRecordsCalls++;
        const out = await o.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: st.callLimit }), { abortSignal: o.signal });
        noteKinesisAnswer(true);
        return out;
      });
    } catch (err) {
      if (errorName(err) === 'ExpiredIteratorException') return 'expired';
      throw err;
    }
  }

  /**
   * Runs a Kinesis call under util/retry.ts: throttling and transient errors are retried with
   * `errorBackoff` up to `maxConsecutiveErrors` attempts, fatal ones (and an expired iterator)
   * thrown; an abort ends it with undefined (the reader then finishes without error).
   */
  private async withRetry<T>(call: 'iterator' | 'records', fn: () => Promise<T>): Promise<T | undefined> {
    const o = this.options;
    const aborted = (err: unknown): boolean => classifyError(err) === 'aborted' || o.signal?.aborted === true;
    try {
      return await retry(
        async () => {
          try {
            return await fn();
          } catch (err) {
            if (!aborted(err)) this.noteFailure(call, err);
            throw err;
          }
        },
        {
          isRetryable: (err) => !aborted(err) && isRetryableStreamError(err),
          attempts: o.maxConsecutiveErrors,
          signal: o.signal,
          backoff: o.errorBackoff ?? { baseMs: 200, maxMs: 5000 },
          onRetry: ({ attempt, delayMs, error }) => o.onRetry?.({ shardId: this.shardId, errorName: errorName(error), attempt, delayMs }),
        },
      );
    } catch (err) {
      if (aborted(err)) return undefined;
      throw err;
    }
  }

  private noteFailure(call: 'iterator' | 'records', err: unknown): void {
    const kind = classifyError(err);
    const expired = errorName(err) === 'ExpiredIteratorException';
    if (call === 'records') noteKinesisAnswer(kind === 'throttle' || expired);
    if (expired) this.counters.expiredIterators++;
    if (expired || kind === 'fatal') return;
    if (kind === 'throttle') this.counters.throttles++;
    else this.counters.errors++;
    if (call === 'iterator') return;
    stats.kinesis.getRetries++;
    if (kind === 'throttle') stats.kinesis.getThrottles++;
  }

  /** Feeds the records to the assembler; returns the completed payloads and adapts the next Limit. */
  private assemble(st: ReadState, records: NonNullable<GetRecordsCommandOutput['Records']>): Uint8Array[] {
    const payloads: Uint8Array[] = [];
    for (const r of records) {
      if (!r.SequenceNumber || !r.Data) continue;
      this.counters.bytesRead += r.Data.length;
      stats.kinesis.bytesReceived += r.Data.length;
      const arrivalMs = r.ApproximateArrivalTimestamp?.getTime();
      for (const p of this.assembler.push({ sequenceNumber: r.SequenceNumber, data: r.Data, arrivalMs })) payloads.push(p);
      st.lastRead = r.SequenceNumber;
    }
    if (records.length > 0) {
      // Adapt the next Limit to the payload bytes these records carried (chunks of a payload not
      // yet complete carry 0: the floor of 1 KiB per record keeps the estimate sane).
      let bytes = 0;
      for (const p of payloads) bytes += p.length;
      const per = Math.max(1024, bytes / records.length);
      st.bytesPerRecord = st.bytesPerRecord === undefined ? per : 0.5 * st.bytesPerRecord + 0.5 * per;
      st.callLimit = Math.min(st.limit, Math.max(1, Math.floor(st.maxBatchBytes / st.bytesPerRecord)));
    }
    return payloads;
  }
}

/** The state of one `read()`: position, pacing and the adaptive Limit. */
interface ReadState {
  /** Upper bound of the adaptive Limit. */
  limit: number;
  maxBatchBytes: number;
  /** Payload bytes per record (EWMA); undefined until a call returned records. */
  bytesPerRecord: number | undefined;
  callLimit: number;
  minInterval: number;
  idleMin: number;
  idleMax: number;
  /** Last record read from Kinesis (not necessarily checkpointable): where a new iterator resumes. */
  lastRead: string | undefined;
  iterator: string | undefined;
  idleDelay: number;
  lastCallAt: number;
  /** Wall-clock time at which the last GetRecords call was sent. */
  readAt: number;
}

/** Convenience: `for await (const batch of readShard(options))`. */
export function readShard(options: ShardReaderOptions): ShardReader {
  return new ShardReader(options);
}
