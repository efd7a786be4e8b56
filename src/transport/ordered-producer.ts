/**
 * Ordered, aggregating, backpressured Kinesis producer for opaque payloads.
 *
 * - `send(routingKey, payload, tag)` routes the payload to the open shard holding
 *   MD5(routingKey) (ExplicitHashKey, see shard-map.ts). It resolves once the payload is accepted
 *   into the producer's buffer; the buffer is bounded by `maxBufferedBytes` (payload bytes not yet
 *   acknowledged by Kinesis), so awaiting `send` is the backpressure.
 * - `sendBroadcast(payload, tag)` puts one copy on every open shard, each ordered after everything
 *   sent before it: along any key's shard lineage the broadcast is read after all of the key's
 *   earlier payloads and before any later one (after a merge, possibly twice in a row).
 * - Per shard, pending payloads are packed into as few records as possible (record-framing.ts);
 *   PutRecords calls carry ≤ 500 records and ≤ 5 MiB, sent when a shard has a full record's worth,
 *   when its oldest payload waited the lane's adaptive linger (linger-policy.ts: a floor while the
 *   shard's record rate is low, growing as it nears `maxRecordsPerShardSecond`, at most
 *   `maxLingerMs`), on flush/close, or when senders are blocked.
 * - Durability: `durableTag` is the highest tag T such that every payload with tag ≤ T was
 *   accepted by Kinesis in the shard its key maps to; listeners registered with `onDurable` get
 *   every advance. It never runs ahead: a payload counts only once its record (or its last chunk)
 *   was acknowledged in a shard whose range holds it.
 *
 * ORDER INVARIANT: for each shard, at most ONE record is in flight at any time, over all concurrent
 * PutRecords calls. A shard's next record is built and sent only after the previous one was
 * acknowledged; a failed record (per-record ErrorCode, or the whole call failing/throttled) is
 * retried — the same bytes, same record id, with exponential backoff + jitter — before anything
 * later for that shard. Hence a later payload for a shard is never written before an earlier one
 * was accepted, and within a shard records appear in send order. A call that failed on the wire
 * may have been stored anyway: its retry then stores the record twice, and readers drop the second
 * copy by record id (record-framing.ts).
 *
 * BROADCAST BARRIER: no payload sent after a broadcast goes into any record before every copy of
 * the broadcast was accepted (see `barrierSeq`).
 *
 * RESHARDING: when an acknowledgement names a ShardId other than the expected one (the shard was
 * closed; Kinesis routed the ExplicitHashKey to a child or merged shard), the producer stops
 * starting calls, waits until no call is in flight (so the closed shard's records are all
 * acknowledged), reloads the shard map and re-partitions every unsent payload to the shard now
 * holding its key, keeping send order (items are merged by admission sequence); broadcast copies
 * are re-cut to the new shards' ranges. The misrouted record itself counts as accepted when it
 * satisfies the PLACEMENT RULE where it landed (readers accept it there); otherwise its payloads
 * are re-sent and readers drop it (same rule on both sides, record-framing.ts).
 * A chunked payload continues only while its next chunk will be the next record of this producer
 * in the shard holding its first chunks; otherwise (other shard, another record of ours landed
 * there meanwhile, chunks too slow) it restarts from chunk 0 under a new payload id, and readers
 * abandon the partial one (shard-record-assembler.ts). A record whose call failed ambiguously and
 * whose shard closed before a retry succeeded is looked up in the stream (resolveAmbiguous), so it
 * is neither lost nor re-sent in a different record.
 */
import { randomBytes } from 'node:crypto';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  PutRecordsCommand,
  type KinesisClient,
  type PutRecordsRequestEntry,
} from '@aws-sdk/client-kinesis';
import { backoffDelay, classifyError, errorName, sleep, type BackoffOptions } from './kinesis-retry.js';
import {
  AGGREGATE_HEADER_BYTES,
  CHUNK_ASSEMBLY_TIMEOUT_MS,
  COMMON_HEADER_BYTES,
  aggregateEntrySize,
  encodePayloadRecords,
  markBroadcast,
  packRecord,
  recordIdOf,
  stampRecordId,
  validPlacement,
  type CompressionOptions,
} from './record-framing.js';
import {
  hashKeyOf,
  loadShardMap,
  type HashKeyRange,
  type ShardInfo,
  type ShardMap,
} from './shard-map.js';
import { LingerPolicy, resolveLingerOptions, type ResolvedLingerOptions } from './linger-policy.js';
import { PUT_RECORDS_MAX_BYTES, PUT_RECORDS_MAX_RECORDS, describeStreamLimits } from './stream-limits.js';
import { streamParams } from '../model/stream-ref.js';
import { noteKinesisAnswer, stats } from '../observability/stats.js';

export interface OrderedProducerOptions {
  client: KinesisClient;
  streamName: string;
  /**
   * Bound on payload bytes buffered and not yet acknowledged (default 16 MiB: with the per-item
   * bookkeeping that is ~2× in heap for small payloads; 16 MiB still holds several full records per
   * shard, i.e. seconds of a shard's 1 MiB/s). Encoded records add at most one record per shard in
   * flight plus the frames of chunked payloads being sent.
   */
  maxBufferedBytes?: number;
  /**
   * Linger floor: how long a shard's oldest pending payload waits for more to aggregate while the
   * shard's record rate is well under `maxRecordsPerShardSecond` (default 5 ms).
   */
  lingerMs?: number;
  /** Linger ceiling, whatever the record rate (default 250 ms, or `lingerMs` if larger). */
  maxLingerMs?: number;
  /**
   * Record budget per shard per second that the adaptive linger keeps to (default 50; Kinesis
   * accepts 1,000 records/s per shard). See linger-policy.ts.
   */
  maxRecordsPerShardSecond?: number;
  /** Concurrent PutRecords calls, each for a disjoint set of shards (default 4). */
  maxConcurrentCalls?: number;
  /** Max bytes (data + partition keys) per PutRecords call (default 5 MiB); a lone larger record is still sent. */
  maxCallBytes?: number;
  /** Max records per PutRecords call (default 500). */
  maxCallRecords?: number;
  /** Max record size (data + partition key). Default: DescribeStreamSummary, else 1 MiB. */
  maxRecordSizeBytes?: number;
  /** Body compression (default brotli quality 4 when it saves ≥ 10%). */
  compression?: CompressionOptions;
  /** Upper bound of the adaptive raw/record packing factor for compressible data (default 8). */
  maxPackFactor?: number;
  /** Backoff of failed records / calls (default 100 ms doubling up to 5 s, jittered). */
  retryBackoff?: BackoffOptions;
  /** Give up (fatal error) after this many attempts of one record (default Infinity). */
  maxAttempts?: number;
  /**
   * Restart a chunked payload (new payload id, from chunk 0) when its chunks have been going on
   * for longer than this (default: half the readers' assembly timeout, 5 min), so readers never
   * time out an assembly a live producer is still completing.
   */
  chunkRestartAfterMs?: number;
  /** Durable tag listener (same as calling `onDurable`). */
  onDurable?: (tag: number) => void;
  /** Called once when the producer fails fatally (all pending promises reject with the error). */
  onError?: (error: unknown) => void;
  /** Called on each retry, for logging/metrics. */
  onRetry?: (info: RetryInfo) => void;
  /** Random source for jitter (tests). */
  random?: () => number;
}

export interface RetryInfo {
  scope: 'record' | 'call' | 'list-shards';
  errorName: string;
  throttled: boolean;
  shardId?: string;
  attempt: number;
  delayMs: number;
}

export interface ProducerStats {
  putRecordsCalls: number;
  /** Records acknowledged by Kinesis (chunks count one each). */
  recordsSent: number;
  /** Payloads acknowledged (a broadcast counts once per shard copy). */
  payloadsSent: number;
  /** Record bytes acknowledged (data + partition key). */
  bytesSent: number;
  /** Raw payload bytes acknowledged. */
  payloadBytesSent: number;
  /** payloadsSent / recordsSent over aggregate and single records (chunks excluded). */
  payloadsPerRecord: number;
  /** Record re-sends after a failure (per-record or whole call). */
  retries: number;
  /** Of which throttling (ProvisionedThroughputExceeded, ThrottlingException, ...). */
  throttles: number;
  /** Whole PutRecords calls that failed. */
  callErrors: number;
  /** Records acknowledged in another shard than expected (resharding detected). */
  misroutedRecords: number;
  /** Misrouted records whose payloads had to be re-sent. */
  resentRecords: number;
  /** Records whose call failed ambiguously before a reshard and that were found stored (not re-sent). */
  resolvedAmbiguous: number;
  shardMapRefreshes: number;
  chunkedPayloads: number;
  chunkRestarts: number;
  compressedRecords: number;
  bufferedBytes: number;
  maxBufferedBytesSeen: number;
}

/** A payload's or broadcast's completion state, in send order. */
interface TagEntry {
  seq: number;
  tag: number;
  /** Item copies not yet accepted (1, or one per shard for a broadcast). */
  remaining: number;
  bytes: number;
}

/** Chunked (or too large to aggregate) payload state. */
interface LargeState {
  /** Encoded records (1 single frame or n chunks); computed lazily, dropped on restart. */
  frames: Uint8Array[] | undefined;
  payloadId: bigint;
  /** Index of the next frame to send. */
  next: number;
  /** Shard where chunk 0 was acknowledged; later chunks must land there too. */
  chunkShardId: string | undefined;
  /** Sequence number of the last acknowledged chunk. */
  lastChunkSeq: bigint | undefined;
  /** performance.now() when the call that stored chunk 0 started. */
  startedAt: number | undefined;
}

interface Item {
  seq: number;
  entry: TagEntry;
  /** Hash key span: [h, h] for a payload, the target range for a broadcast copy. */
  span: HashKeyRange;
  broadcast: boolean;
  payload: Uint8Array;
  /** Set when the payload does not fit an aggregate record. */
  large: LargeState | undefined;
}

interface Plan {
  lane: Lane;
  /** Aggregated items (removed from the lane), or the lane's head large item (still in the lane). */
  items: Item[];
  large: boolean;
  frameIndex: number;
  entry: PutRecordsRequestEntry;
  span: HashKeyRange;
  /** Carries a broadcast copy (stricter placement rule). */
  broadcast: boolean;
  /** A whole-call failure that may have stored it anyway (network, 5xx) happened. */
  ambiguous: boolean;
  /**
   * Per shard, our highest acknowledged sequence number when the first ambiguous attempt was sent:
   * a copy stored by that attempt can only be after it.
   */
  scanFloor: ReadonlyMap<string, bigint> | undefined;
  /** lastSeqInShard as it was when its last call started. */
  floorAtSend: ReadonlyMap<string, bigint> | undefined;
  /** performance.now() when its last call started. */
  sentAt: number;
  size: number;
  rawBytes: number;
  attempts: number;
  compressed: boolean;
}

/** Per-shard queue. */
interface Lane {
  shard: ShardInfo;
  items: Item[];
  head: number;
  pendingRaw: number;
  /** When the current head item was enqueued (linger clock). */
  oldestAt: number;
  /** Adaptive linger: the shard's record budget (linger-policy.ts). */
  linger: LingerPolicy;
  /** Next record to send (a failed one awaiting retry, or built but not yet sent). */
  plan: Plan | undefined;
  /** ORDER INVARIANT: true while this shard's one record is in a PutRecords call. */
  inFlight: boolean;
  retryAt: number;
}

interface PendingSend {
  seq: number;
  tag: number;
  routingKey: string | undefined;
  payload: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const PARTITION_KEY_BYTES = 32;

function partitionKeyFor(span: HashKeyRange): string {
  // Routing is by ExplicitHashKey; the partition key only has to be valid (1-256 chars) and is
  // counted in the record size: a fixed 32-char hex of the span start keeps it predictable.
  return span.start.toString(16).padStart(PARTITION_KEY_BYTES, '0');
}

export class ProducerClosedError extends Error {
  override name = 'ProducerClosedError';
}

export class OrderedProducer {
  private readonly client: KinesisClient;
  private readonly streamName: string;
  private readonly maxBufferedBytes: number;
  private readonly linger: ResolvedLingerOptions;
  private readonly maxConcurrentCalls: number;
  private readonly maxCallBytes: number;
  private readonly maxCallRecords: number;
  private readonly maxRecordSizeBytes: number;
  /** Max record data bytes (partition key excluded). */
  private readonly maxDataBytes: number;
  private readonly compression: CompressionOptions;
  private readonly maxPackFactor: number;
  private readonly retryBackoff: BackoffOptions;
  private readonly maxAttempts: number;
  private readonly chunkRestartAfterMs: number;
  private readonly random: () => number;
  private readonly onRetryHook: ((info: RetryInfo) => void) | undefined;
  private readonly onErrorHook: ((error: unknown) => void) | undefined;

  private map: ShardMap;
  private lanes = new Map<string, Lane>();
  private packFactor = 1;

  private sendSeq = 0;
  private lastTag = -Infinity;
  private readonly admissions: PendingSend[] = [];
  private admissionHead = 0;
  private buffered = 0;

  private readonly entries: TagEntry[] = [];
  private entriesHead = 0;
  /** Broadcast entries in send order; the first incomplete one is the BROADCAST BARRIER. */
  private readonly broadcastEntries: TagEntry[] = [];
  private broadcastHead = 0;
  private durableSeq = 0;
  private _durableTag: number | undefined;
  private readonly durableListeners = new Set<(tag: number) => void>();
  private flushWaiters: Array<{ seq: number; resolve: () => void; reject: (err: unknown) => void }> = [];

  private callsInFlight = 0;
  private needsRefresh = false;
  private refreshing = false;
  private misrouted: Array<{ plan: Plan; shardId: string; seq: bigint }> = [];
  /** Highest sequence number of any record of this producer acknowledged per shard. */
  private readonly lastSeqInShard = new Map<string, bigint>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private pumpScheduled = false;
  private closing = false;
  private closed = false;
  private failure: unknown;
  /** Random 32-bit producer nonce in the high half of payload ids and record ids. */
  private readonly idBase: bigint;
  private payloadCounter = 0n;
  private recordCounter = 0n;
  private readonly counters = {
    putRecordsCalls: 0,
    recordsSent: 0,
    payloadsSent: 0,
    bytesSent: 0,
    payloadBytesSent: 0,
    aggregatedRecords: 0,
    aggregatedPayloads: 0,
    retries: 0,
    throttles: 0,
    callErrors: 0,
    misroutedRecords: 0,
    resentRecords: 0,
    resolvedAmbiguous: 0,
    shardMapRefreshes: 0,
    chunkedPayloads: 0,
    chunkRestarts: 0,
    compressedRecords: 0,
    maxBufferedBytesSeen: 0,
  };

  /** Loads the shard map (ListShards) and the max record size (DescribeStreamSummary), then builds the producer. */
  static async create(options: OrderedProducerOptions): Promise<OrderedProducer> {
    const [map, maxRecordSizeBytes] = await Promise.all([
      loadShardMap(options.client, options.streamName),
      options.maxRecordSizeBytes ?? describeStreamLimits(options.client, options.streamName).then((l) => l.maxRecordSizeBytes),
    ]);
    return new OrderedProducer({ ...options, maxRecordSizeBytes }, map);
  }

  constructor(options: OrderedProducerOptions & { maxRecordSizeBytes: number }, shardMap: ShardMap) {
    this.client = options.client;
    this.streamName = options.streamName;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.linger = resolveLingerOptions({ floorMs: options.lingerMs, maxMs: options.maxLingerMs, recordsPerSecond: options.maxRecordsPerShardSecond });
    this.maxConcurrentCalls = Math.max(1, options.maxConcurrentCalls ?? 4);
    this.maxCallBytes = options.maxCallBytes ?? PUT_RECORDS_MAX_BYTES;
    this.maxCallRecords = Math.min(PUT_RECORDS_MAX_RECORDS, Math.max(1, options.maxCallRecords ?? PUT_RECORDS_MAX_RECORDS));
    this.maxRecordSizeBytes = options.maxRecordSizeBytes;
    this.maxDataBytes = this.maxRecordSizeBytes - PARTITION_KEY_BYTES;
    if (this.maxDataBytes <= 1024) throw new RangeError(`maxRecordSizeBytes ${this.maxRecordSizeBytes} is too small`);
    this.compression = options.compression ?? {};
    this.maxPackFactor = Math.max(1, options.maxPackFactor ?? 8);
    this.retryBackoff = options.retryBackoff ?? { baseMs: 100, maxMs: 5000 };
    this.maxAttempts = options.maxAttempts ?? Infinity;
    this.chunkRestartAfterMs = options.chunkRestartAfterMs ?? CHUNK_ASSEMBLY_TIMEOUT_MS / 2;
    this.random = options.random ?? Math.random;
    this.onRetryHook = options.onRetry;
    this.onErrorHook = options.onError;
    if (options.onDurable) this.durableListeners.add(options.onDurable);
    this.map = shardMap;
    for (const s of shardMap.openShards) this.lanes.set(s.shardId, newLane(s, new LingerPolicy(this.linger, performance.now())));
    this.idBase = (BigInt('0x' + randomBytes(4).toString('hex')) | 1n) << 32n;
  }

  // -------------------------------------------------------------------------------------------
  // public API

  /** The shard map currently used for routing. */
  get shardMap(): ShardMap {
    return this.map;
  }

  /** Highest tag T such that every payload with tag ≤ T was accepted by Kinesis; undefined before the first. */
  get durableTag(): number | undefined {
    return this._durableTag;
  }

  /** Payload bytes buffered (admitted, not yet acknowledged). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  get maxRecordSize(): number {
    return this.maxRecordSizeBytes;
  }

  get stats(): ProducerStats {
    const c = this.counters;
    return {
      putRecordsCalls: c.putRecordsCalls,
      recordsSent: c.recordsSent,
      payloadsSent: c.payloadsSent,
      bytesSent: c.bytesSent,
      payloadBytesSent: c.payloadBytesSent,
      payloadsPerRecord: c.aggregatedRecords === 0 ? 0 : c.aggregatedPayloads / c.aggregatedRecords,
      retries: c.retries,
      throttles: c.throttles,
      callErrors: c.callErrors,
      misroutedRecords: c.misroutedRecords,
      resentRecords: c.resentRecords,
      resolvedAmbiguous: c.resolvedAmbiguous,
      shardMapRefreshes: c.shardMapRefreshes,
      chunkedPayloads: c.chunkedPayloads,
      chunkRestarts: c.chunkRestarts,
      compressedRecords: c.compressedRecords,
      bufferedBytes: this.buffered,
      maxBufferedBytesSeen: c.maxBufferedBytesSeen,
    };
  }

  /** Registers a durable-tag listener; returns a function that unregisters it. */
  onDurable(listener: (tag: number) => void): () => void {
    this.durableListeners.add(listener);
    return () => this.durableListeners.delete(listener);
  }

  /**
   * Queues `payload` for the shard of `routingKey`. Tags must increase strictly from call to call
   * (over send and sendBroadcast). Resolves when the payload is in the buffer (backpressure).
   */
  send(routingKey: string, payload: Uint8Array, tag: number): Promise<void> {
    return this.enqueue(routingKey, payload, tag);
  }

  /** Queues one copy of `payload` for every open shard, after everything sent before. */
  sendBroadcast(payload: Uint8Array, tag: number): Promise<void> {
    return this.enqueue(undefined, payload, tag);
  }

  /** Resolves when every payload sent before this call is durable. Sends immediately (no linger). */
  flush(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const seq = this.sendSeq;
    if (this.durableSeq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ seq, resolve, reject });
      this.schedulePump();
    });
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    this.closing = true;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.clearTimer();
    }
  }

  /**
   * Gives up on everything not yet durable: pending and future sends and flushes reject, timers
   * stop; a PutRecords call already in flight completes on its own. For a bounded stop, after
   * `close()` took too long: the caller checkpoints only what became durable.
   */
  abort(reason = 'producer aborted'): void {
    this.fail(new ProducerClosedError(reason));
  }

  /** Reloads the shard map now (e.g. after an external reshard), with the same barrier as automatic refreshes. */
  refreshShardMap(): void {
    this.needsRefresh = true;
    this.schedulePump();
  }

  // -------------------------------------------------------------------------------------------
  // admission (backpressure)

  private enqueue(routingKey: string | undefined, payload: Uint8Array, tag: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing || this.closed) return Promise.reject(new ProducerClosedError('producer is closed'));
    if (!Number.isFinite(tag) || tag <= this.lastTag) {
      return Promise.reject(new RangeError(`tags must increase strictly: got ${tag} after ${this.lastTag}`));
    }
    this.lastTag = tag;
    const seq = ++this.sendSeq;
    // Admission is FIFO: a send never overtakes an earlier one waiting for buffer space.
    if (this.admissionHead === this.admissions.length && this.fits(payload.length)) {
      this.admit(seq, tag, routingKey, payload);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.admissions.push({ seq, tag, routingKey, payload, resolve, reject });
      this.schedulePump(); // senders are blocked: flush without waiting for the linger
    });
  }

  /** A payload fits if the buffer has room; an oversized one is admitted alone into an empty buffer. */
  private fits(bytes: number): boolean {
    return this.buffered === 0 || this.buffered + bytes <= this.maxBufferedBytes;
  }

  private processAdmissions(): void {
    while (this.admissionHead < this.admissions.length) {
      const a = this.admissions[this.admissionHead];
      if (!this.fits(a.payload.length)) break;
      this.admissionHead++;
      this.admit(a.seq, a.tag, a.routingKey, a.payload);
      a.resolve();
    }
    if (this.admissionHead > 1024 && this.admissionHead * 2 > this.admissions.length) {
      this.admissions.splice(0, this.admissionHead);
      this.admissionHead = 0;
    }
  }

  private admit(seq: number, tag: number, routingKey: string | undefined, payload: Uint8Array): void {
    const entry: TagEntry = { seq, tag, remaining: 0, bytes: payload.length };
    this.entries.push(entry);
    this.buffered += payload.length;
    if (this.buffered > this.counters.maxBufferedBytesSeen) this.counters.maxBufferedBytesSeen = this.buffered;
    if (routingKey !== undefined) {
      const h = hashKeyOf(routingKey);
      entry.remaining = 1;
      this.pushItem(this.map.shardForHashKey(h).shardId, this.newItem(seq, entry, { start: h, end: h }, false, payload));
    } else {
      this.broadcastEntries.push(entry);
      for (const shard of this.map.openShards) {
        entry.remaining++;
        this.pushItem(shard.shardId, this.newItem(seq, entry, shard.hashKeyRange, true, payload));
      }
    }
    this.schedulePump();
  }

  /**
   * BROADCAST BARRIER: seq of the oldest broadcast not yet accepted on every shard (Infinity if
   * none). No item sent after it (higher seq) goes into any record until every copy is accepted.
   * So when a reshard makes a copy travel again (a merge where one parent already holds it), the
   * repeat still comes before every later payload of every key: at worst an adjacent duplicate.
   */
  private get barrierSeq(): number {
    while (this.broadcastHead < this.broadcastEntries.length && this.broadcastEntries[this.broadcastHead].remaining === 0) {
      this.broadcastHead++;
    }
    if (this.broadcastHead > 1024) {
      this.broadcastEntries.splice(0, this.broadcastHead);
      this.broadcastHead = 0;
    }
    return this.broadcastHead < this.broadcastEntries.length ? this.broadcastEntries[this.broadcastHead].seq : Infinity;
  }

  private newItem(seq: number, entry: TagEntry, span: HashKeyRange, broadcast: boolean, payload: Uint8Array): Item {
    const aggregatable = aggregateEntrySize(payload.length) + AGGREGATE_HEADER_BYTES <= this.maxDataBytes;
    return {
      seq,
      entry,
      span,
      broadcast,
      payload,
      large: aggregatable ? undefined : this.freshLarge(),
    };
  }

  private nextPayloadId(): bigint {
    this.payloadCounter = (this.payloadCounter + 1n) & 0xffffffffn;
    return this.idBase | this.payloadCounter;
  }

  /** Record ids let readers drop the adjacent duplicate a retried-but-stored write leaves. */
  private nextRecordId(): bigint {
    this.recordCounter = (this.recordCounter + 1n) & 0xffffffffn;
    return this.idBase | this.recordCounter;
  }

  private pushItem(shardId: string, item: Item): void {
    const lane = this.lanes.get(shardId);
    if (!lane) throw new Error(`internal: no lane for shard ${shardId}`);
    if (lane.head === lane.items.length) lane.oldestAt = performance.now();
    lane.items.push(item);
    lane.pendingRaw += item.payload.length;
  }

  // -------------------------------------------------------------------------------------------
  // dispatch

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private wakeAt(at: number): void {
    if (at >= this.timerAt) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - performance.now()));
  }

  private get urgent(): boolean {
    return this.flushWaiters.length > 0 || this.closing || this.admissionHead < this.admissions.length;
  }

  /** Starts as many PutRecords calls as allowed. */
  private pump(): void {
    if (this.failure !== undefined || this.refreshing) return;
    if (this.needsRefresh) {
      // Barrier: no new call until every in-flight call is settled, then refresh.
      if (this.callsInFlight === 0) void this.refresh();
      return;
    }
    const now = performance.now();
    const urgent = this.urgent;
    const barrier = this.barrierSeq;
    while (this.callsInFlight < this.maxConcurrentCalls) {
      let nextWake = Infinity;
      const ready: Lane[] = [];
      const idle: Lane[] = [];
      for (const lane of this.lanes.values()) {
        // ORDER INVARIANT: a shard with a record in flight gets nothing more until it is acknowledged.
        if (lane.inFlight) continue;
        const stale = lane.plan?.large ? lane.plan.items[0].large! : undefined;
        if (stale && lane.plan!.frameIndex > 0 && now - (stale.startedAt ?? now) > this.chunkRestartAfterMs) {
          // A chunk retried for too long: restart the payload rather than risk a reader timeout.
          lane.plan = undefined;
          lane.retryAt = 0;
          this.restartLarge(lane.items[lane.head]);
        }
        // BROADCAST BARRIER: items after an incomplete broadcast wait.
        const hasWork = lane.plan !== undefined || (lane.head < lane.items.length && lane.items[lane.head].seq <= barrier);
        if (!hasWork) continue;
        if (lane.retryAt > now) {
          nextWake = Math.min(nextWake, lane.retryAt);
          continue;
        }
        const readyAt = lane.plan !== undefined || urgent || lane.pendingRaw >= this.maxDataBytes ? now : lane.linger.readyAt(lane.oldestAt, now);
        if (readyAt <= now) {
          ready.push(lane);
        } else {
          // Rides along in a call started for another lane only with a record token in hand.
          if (lane.linger.mayRideAlong(now)) idle.push(lane);
          nextWake = Math.min(nextWake, readyAt);
        }
      }
      if (ready.length === 0) {
        if (nextWake < Infinity) this.wakeAt(nextWake);
        return;
      }
      // Oldest first; idle lanes with pending payloads ride along in the same call.
      ready.sort((a, b) => a.oldestAt - b.oldestAt);
      const plans: Plan[] = [];
      let bytes = 0;
      for (const lane of [...ready, ...idle]) {
        if (plans.length >= this.maxCallRecords) break;
        let plan = lane.plan;
        if (plan === undefined) {
          plan = this.buildPlan(lane, barrier);
          // The record budget counts records built (a retry of the same record takes no new token).
          lane.linger.noteRecord(now);
        }
        lane.plan = plan;
        if (plans.length > 0 && bytes + plan.size > this.maxCallBytes) continue; // stays built for the next call
        bytes += plan.size;
        plans.push(plan);
        lane.inFlight = true;
      }
      if (plans.length === 0) return; // cannot happen: one record always fits a call
      void this.putRecords(plans);
    }
  }

  /** Builds the lane's next record from its head: one aggregate, or the next frame of a large item. */
  private buildPlan(lane: Lane, barrier: number): Plan {
    const head = lane.items[lane.head];
    if (head.large) {
      const large = head.large;
      if (!large.frames) {
        large.frames = encodePayloadRecords(head.payload, head.span, this.maxDataBytes, large.payloadId, this.compression);
        if (head.broadcast) for (const f of large.frames) markBroadcast(f);
        if (large.frames.length > 1) this.counters.chunkedPayloads++;
      }
      const frame = large.frames[large.next];
      // Stamped once: a re-send of this frame carries the same id.
      if (recordIdOf(frame) === 0n) stampRecordId(frame, this.nextRecordId());
      const lastFrame = large.next === large.frames.length - 1;
      return this.plan(lane, [head], true, large.next, frame, head.span, head.broadcast, lastFrame ? head.payload.length : 0, (frame[3] & 3) !== 0);
    }
    // Gather consecutive aggregatable items up to the raw budget of one record.
    const budget = (this.maxDataBytes - AGGREGATE_HEADER_BYTES) * this.packFactor;
    const payloads: Uint8Array[] = [];
    const spans: HashKeyRange[] = [];
    let raw = 0;
    let broadcast = false;
    for (let i = lane.head; i < lane.items.length; i++) {
      const it = lane.items[i];
      if (it.large || it.seq > barrier) break;
      const size = aggregateEntrySize(it.payload.length);
      if (payloads.length > 0 && raw + size > budget) break;
      raw += size;
      payloads.push(it.payload);
      // prefix span: min/max of the first n items
      const prev = spans[spans.length - 1];
      spans.push(prev ? { start: prev.start < it.span.start ? prev.start : it.span.start, end: prev.end > it.span.end ? prev.end : it.span.end } : it.span);
      if (it.broadcast) {
        // The copy is the record's last item (the barrier holds everything after it anyway).
        broadcast = true;
        break;
      }
    }
    const packed = packRecord(payloads, (n) => spans[n - 1], this.maxDataBytes, { ...this.compression, packFactor: this.packFactor });
    const items = lane.items.slice(lane.head, lane.head + packed.count);
    this.takeItems(lane, packed.count);
    stampRecordId(packed.frame, this.nextRecordId());
    // packRecord may have taken fewer payloads than gathered (then the broadcast is not in it).
    broadcast = broadcast && packed.count === payloads.length;
    if (broadcast) markBroadcast(packed.frame);
    if (packed.codec !== 'none') {
      // Adapt the packing factor to the observed compression ratio (EWMA), within [1, maxPackFactor].
      const ratio = packed.rawBytes / packed.frame.length;
      this.packFactor = Math.min(this.maxPackFactor, Math.max(1, 0.5 * this.packFactor + 0.5 * ratio * 0.9));
    }
    return this.plan(lane, items, false, 0, packed.frame, spans[packed.count - 1], broadcast, packed.rawBytes, packed.codec !== 'none');
  }

  private plan(
    lane: Lane,
    items: Item[],
    large: boolean,
    frameIndex: number,
    frame: Uint8Array,
    span: HashKeyRange,
    broadcast: boolean,
    rawBytes: number,
    compressed: boolean,
  ): Plan {
    const partitionKey = partitionKeyFor(span);
    return {
      lane,
      items,
      large,
      frameIndex,
      entry: { Data: frame, PartitionKey: partitionKey, ExplicitHashKey: span.start.toString() },
      span,
      broadcast,
      ambiguous: false,
      scanFloor: undefined,
      floorAtSend: undefined,
      sentAt: 0,
      size: frame.length + partitionKey.length,
      rawBytes,
      attempts: 0,
      compressed,
    };
  }

  private takeItems(lane: Lane, n: number): void {
    for (let i = 0; i < n; i++) {
      lane.pendingRaw -= lane.items[lane.head].payload.length;
      lane.head++;
    }
    if (lane.head === lane.items.length) {
      lane.items = [];
      lane.head = 0;
    } else if (lane.head > 4096 && lane.head * 2 > lane.items.length) {
      lane.items = lane.items.slice(lane.head);
      lane.head = 0;
    }
    // oldestAt is left as is: the remaining items are at least that old (linger errs on sending early).
  }

  private async putRecords(plans: Plan[]): Promise<void> {
    this.callsInFlight++;
    this.counters.putRecordsCalls++;
    stats.kinesis.putRecordsCalls++;
    const sentAt = performance.now();
    const floor: ReadonlyMap<string, bigint> = new Map(this.lastSeqInShard);
    for (const p of plans) {
      p.sentAt = sentAt;
      p.floorAtSend = floor;
    }
    let response;
    let callError: unknown;
    try {
      response = await this.client.send(new PutRecordsCommand({ ...streamParams(this.streamName), Records: plans.map((p) => p.entry) }));
      if ((response.Records?.length ?? 0) !== plans.length) {
        callError = new Error(`PutRecords returned ${response.Records?.length ?? 0} results for ${plans.length} records`);
      }
    } catch (err) {
      callError = err;
    }
    this.callsInFlight--;
    if (this.failure !== undefined) return;
    const now = performance.now();
    noteKinesisAnswer(callError === undefined || classifyError(callError) === 'throttle');
    if (callError !== undefined) {
      this.counters.callErrors++;
      const kind = classifyError(callError);
      if (kind === 'fatal') return this.fail(callError);
      for (const plan of plans) {
        // A throttling error is a definite rejection; a network error or 5xx may have stored it.
        if (kind !== 'throttle') {
          if (!plan.ambiguous) plan.scanFloor = plan.floorAtSend;
          plan.ambiguous = true;
        }
        this.retryLater(plan, callError, kind === 'throttle', now, 'call');
      }
    } else {
      const results = response!.Records!;
      plans.forEach((plan, i) => {
        const r = results[i];
        plan.lane.inFlight = false;
        if (r.ErrorCode) {
          if (classifyError(r.ErrorCode) === 'fatal') return this.fail({ name: r.ErrorCode, message: r.ErrorMessage });
          this.retryLater(plan, { name: r.ErrorCode, message: r.ErrorMessage }, classifyError(r.ErrorCode) === 'throttle', now, 'record');
          return;
        }
        const shardId = r.ShardId ?? '';
        const seq = BigInt(r.SequenceNumber ?? '0');
        if (seq > (this.lastSeqInShard.get(shardId) ?? -1n)) this.lastSeqInShard.set(shardId, seq);
        if (shardId === plan.lane.shard.shardId) {
          this.accept(plan, shardId, seq);
        } else {
          // Resharding: the record went elsewhere. Judge it after reloading the shard map.
          this.counters.misroutedRecords++;
          this.misrouted.push({ plan, shardId, seq });
          this.needsRefresh = true;
        }
      });
    }
    this.pump();
  }

  private retryLater(plan: Plan, error: unknown, throttled: boolean, now: number, scope: 'record' | 'call'): void {
    const lane = plan.lane;
    lane.inFlight = false;
    plan.attempts++;
    if (plan.attempts >= this.maxAttempts) {
      this.fail(error);
      return;
    }
    const delayMs = backoffDelay(plan.attempts - 1, this.retryBackoff, this.random);
    // The same plan (same bytes) is re-sent before anything later for this shard.
    lane.retryAt = now + delayMs;
    this.counters.retries++;
    if (throttled) this.counters.throttles++;
    stats.kinesis.putRetries++;
    if (throttled) stats.kinesis.putThrottles++;
    this.onRetryHook?.({ scope, errorName: errorName(error), throttled, shardId: lane.shard.shardId, attempt: plan.attempts, delayMs });
  }

  /** The plan's record was accepted in `shardId` (the expected shard, or one holding its span). */
  private accept(plan: Plan, shardId: string, seq: bigint): void {
    const lane = plan.lane;
    lane.plan = undefined;
    lane.retryAt = 0;
    this.counters.recordsSent++;
    this.counters.bytesSent += plan.size;
    stats.kinesis.recordsSent++;
    stats.kinesis.bytesSent += plan.size;
    if (plan.compressed) this.counters.compressedRecords++;
    if (plan.large) {
      const item = plan.items[0];
      const large = item.large!;
      if (plan.frameIndex === 0) {
        large.chunkShardId = shardId;
        large.startedAt = plan.sentAt;
      } else if (performance.now() - (large.startedAt ?? 0) > this.chunkRestartAfterMs) {
        // Too slow: a reader may time this assembly out. Restart the payload from chunk 0.
        this.restartLarge(item);
        return;
      }
      large.lastChunkSeq = seq;
      large.next = plan.frameIndex + 1;
      if (large.frames && large.next >= large.frames.length) {
        // Last frame acknowledged: the payload is complete. It is still the lane's head item.
        if (lane.items[lane.head] === item) this.takeItems(lane, 1);
        if (large.frames.length === 1) {
          this.counters.aggregatedRecords++;
          this.counters.aggregatedPayloads++;
        }
        this.completeItem(item);
      }
    } else {
      this.counters.aggregatedRecords++;
      this.counters.aggregatedPayloads += plan.items.length;
      for (const item of plan.items) this.completeItem(item);
    }
  }

  private completeItem(item: Item): void {
    this.counters.payloadsSent++;
    this.counters.payloadBytesSent += item.payload.length;
    stats.kinesis.payloadsSent++;
    const entry = item.entry;
    entry.remaining--;
    if (entry.remaining === 0) this.advanceDurable();
  }

  /**
   * Pops completed entries in send order; the durable tag is the last popped one's tag.
   * DURABILITY INVARIANT: an entry completes only when every copy of its payload was accepted by
   * Kinesis in a valid placement (accept()), and entries are popped strictly in send order, so the
   * durable tag never runs ahead of an unacknowledged payload (tags increase strictly with sends).
   */
  private advanceDurable(): void {
    let advanced = false;
    while (this.entriesHead < this.entries.length && this.entries[this.entriesHead].remaining === 0) {
      const e = this.entries[this.entriesHead++];
      this.buffered -= e.bytes;
      this.durableSeq = e.seq;
      this._durableTag = e.tag;
      advanced = true;
    }
    if (!advanced) return;
    if (this.entriesHead > 4096 && this.entriesHead * 2 > this.entries.length) {
      this.entries.splice(0, this.entriesHead);
      this.entriesHead = 0;
    }
    const tag = this._durableTag!;
    for (const l of this.durableListeners) {
      try {
        l(tag);
      } catch {
        // a listener's failure must not break the producer
      }
    }
    if (this.flushWaiters.length > 0) {
      const still = [];
      for (const w of this.flushWaiters) {
        if (w.seq <= this.durableSeq) w.resolve();
        else still.push(w);
      }
      this.flushWaiters = still;
    }
    this.processAdmissions();
  }

  // -------------------------------------------------------------------------------------------
  // resharding

  private async refresh(): Promise<void> {
    this.refreshing = true;
    this.clearTimer();
    let map: ShardMap | undefined;
    for (let attempt = 0; map === undefined; attempt++) {
      try {
        map = await loadShardMap(this.client, this.streamName);
      } catch (err) {
        const kind = classifyError(err);
        if (kind === 'fatal' || attempt + 1 >= this.maxAttempts) {
          this.refreshing = false;
          return this.fail(err);
        }
        const delayMs = backoffDelay(attempt, this.retryBackoff, this.random);
        this.onRetryHook?.({ scope: 'list-shards', errorName: errorName(err), throttled: kind === 'throttle', attempt: attempt + 1, delayMs });
        await sleep(delayMs);
      }
      if (this.failure !== undefined) return;
    }
    this.counters.shardMapRefreshes++;
    await this.resolveAmbiguous(map);
    if (this.failure !== undefined) return;
    this.repartition(map);
    this.map = map;
    this.needsRefresh = false;
    this.refreshing = false;
    this.pump();
  }

  /**
   * A record whose call failed ambiguously (network error, 5xx) may have been stored anyway. While
   * its shard stays open it is simply re-sent byte for byte (readers drop the adjacent duplicate).
   * When its shard has closed, re-sending it elsewhere could replay its payloads after later ones,
   * so the producer looks for it (by record id) in the closed shard's tail and in the shards that
   * took over its ExplicitHashKey: found = treated as acknowledged there (judged like a misrouted
   * record); not found = never stored, safe to re-send. Rare: needs a reshard during a failure.
   */
  private async resolveAmbiguous(map: ShardMap): Promise<void> {
    // A retry acknowledged in another shard (misrouted) whose earlier attempt may be stored in the
    // old shard: if it is, the record counts as stored there (readers drop the later copy, which
    // repeats a parent's record id), e.g. the last chunk completing a payload in the old shard.
    for (const m of this.misrouted) {
      if (!m.plan.ambiguous) continue;
      try {
        const found = await this.findStoredRecord(m.plan, map, true);
        m.plan.ambiguous = false;
        if (found) {
          this.counters.resolvedAmbiguous++;
          if (found.seq > (this.lastSeqInShard.get(found.shardId) ?? -1n)) this.lastSeqInShard.set(found.shardId, found.seq);
          m.shardId = found.shardId;
          m.seq = found.seq;
        }
      } catch (err) {
        if (classifyError(err) === 'fatal') return this.fail(err);
      }
    }
    for (const lane of this.lanes.values()) {
      const plan = lane.plan;
      if (!plan || !plan.ambiguous || map.get(lane.shard.shardId)?.open !== false) continue;
      try {
        const found = await this.findStoredRecord(plan, map);
        plan.ambiguous = false;
        if (found) {
          this.counters.resolvedAmbiguous++;
          if (found.seq > (this.lastSeqInShard.get(found.shardId) ?? -1n)) this.lastSeqInShard.set(found.shardId, found.seq);
          if (found.shardId !== lane.shard.shardId) this.counters.misroutedRecords++;
          this.misrouted.push({ plan, shardId: found.shardId, seq: found.seq });
        }
      } catch (err) {
        // Could not look: the plan stays ambiguous (repartition then restarts partial chunked payloads).
        if (classifyError(err) === 'fatal') return this.fail(err);
      }
    }
  }

  /** Scans the closed lane shard's tail (and unless `laneShardOnly` its descendants holding the record's hash key) for its record id. */
  private async findStoredRecord(plan: Plan, map: ShardMap, laneShardOnly = false): Promise<{ shardId: string; seq: bigint } | undefined> {
    const id = recordIdOf(plan.entry.Data!);
    const hashKey = BigInt(plan.entry.ExplicitHashKey!);
    const children = new Map<string, string[]>();
    for (const s of map.allShards) {
      for (const p of [s.parentShardId, s.adjacentParentShardId]) {
        if (p && s.hashKeyRange.start <= hashKey && hashKey <= s.hashKeyRange.end) children.set(p, [...(children.get(p) ?? []), s.shardId]);
      }
    }
    const queue = [plan.lane.shard.shardId];
    const seen = new Set<string>();
    while (queue.length > 0) {
      const shardId = queue.shift()!;
      if (seen.has(shardId)) continue;
      seen.add(shardId);
      const after = plan.scanFloor?.get(shardId);
      let iterator = (
        await this.client.send(
          new GetShardIteratorCommand(
            after !== undefined
              ? { ...streamParams(this.streamName), ShardId: shardId, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after.toString() }
              : { ...streamParams(this.streamName), ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' },
          ),
        )
      ).ShardIterator;
      for (let attempt = 0; iterator; ) {
        let out;
        try {
          out = await this.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
        } catch (err) {
          if (classifyError(err) === 'fatal') throw err;
          await sleep(backoffDelay(attempt++, this.retryBackoff, this.random));
          continue;
        }
        for (const r of out.Records ?? []) {
          if (r.Data && r.Data.length >= COMMON_HEADER_BYTES && recordIdOf(r.Data) === id) return { shardId, seq: BigInt(r.SequenceNumber!) };
        }
        if ((out.Records ?? []).length === 0) break;
        iterator = out.NextShardIterator ?? undefined;
      }
      if (!laneShardOnly) queue.push(...(children.get(shardId) ?? []));
    }
    return undefined;
  }

  /**
   * Re-routes every unsent item to the lane of the shard now holding it. Runs with no call in
   * flight (barrier), so every record of a closed shard has been acknowledged before anything for
   * its keys goes to the new shard.
   */
  private repartition(map: ShardMap): void {
    // 1. Judge misrouted records by the PLACEMENT RULE (as readers will): kept if valid where they
    //    landed, else their payloads are re-sent.
    for (const { plan, shardId, seq } of this.misrouted) {
      const landed = map.get(shardId);
      const ok = landed !== undefined && validPlacement(landed.hashKeyRange, plan.span, plan.broadcast);
      if (ok) {
        if (plan.large && plan.frameIndex > 0 && plan.items[0].large!.chunkShardId !== shardId) {
          // A chunk landed in another shard than chunk 0: restart the payload (below).
          this.restartLarge(plan.items[0]);
          plan.lane.plan = undefined;
          this.counters.resentRecords++;
        } else {
          this.accept(plan, shardId, seq);
        }
      } else {
        this.counters.resentRecords++;
        plan.lane.plan = undefined;
        if (!plan.large) this.unshift(plan.lane, plan.items);
        // a large item is still at its lane's head; its frame is re-sent (or restarted below)
      }
    }
    this.misrouted = [];

    // 2. Unsent plans (failed ones awaiting retry, or built but not sent). A shard still open keeps
    //    its plan byte for byte (a retry after an ambiguous failure must repeat the same record id
    //    so readers can drop the duplicate); it receives only its own items again (its range is
    //    unchanged and disjoint from every closed shard's). Plans of closed shards are dissolved:
    //    their items go back to the front of their lane and are re-routed below.
    const lanes = new Map<string, Lane>();
    // A shard that stays open keeps its record budget; a new one starts with a full bucket.
    for (const s of map.openShards) lanes.set(s.shardId, newLane(s, this.lanes.get(s.shardId)?.linger ?? new LingerPolicy(this.linger, performance.now())));
    let ambiguousDissolved = false;
    for (const lane of this.lanes.values()) {
      const plan = lane.plan;
      if (!plan) continue;
      const survivor = lanes.get(lane.shard.shardId);
      if (survivor) {
        plan.lane = survivor;
        survivor.plan = plan;
        survivor.retryAt = lane.retryAt;
      } else {
        // A dissolved record that may have been stored anyway is a record of ours in some shard
        // that no chunk bookkeeping knows about (see 4.).
        if (plan.ambiguous) ambiguousDissolved = true;
        if (!plan.large) this.unshift(lane, plan.items);
      }
      lane.plan = undefined;
    }

    // 3. Merge all lanes' items by admission order and route them with the new map.
    const all: Item[] = [];
    for (const lane of this.lanes.values()) for (let i = lane.head; i < lane.items.length; i++) all.push(lane.items[i]);
    all.sort((a, b) => a.seq - b.seq);
    const restarted = new Set<Item>();
    /** Partially sent chunked payloads that may continue, per new lane. */
    const continuing = new Map<Lane, Item[]>();
    const place = (lane: Lane, item: Item): void => {
      const large = item.large;
      if (large && large.next > 0) {
        // 4. A chunked payload continues only if its next chunk will be the very next record of
        //    ours in the shard holding its first chunks (readers abandon it otherwise): same shard,
        //    no other record of ours landed there since its last chunk, no unknown stored record.
        const sameShard = large.chunkShardId === lane.shard.shardId;
        const untouched = large.lastChunkSeq !== undefined && this.lastSeqInShard.get(lane.shard.shardId) === large.lastChunkSeq;
        if (sameShard && untouched && !ambiguousDissolved && !(lane.plan?.large && lane.plan.items[0] !== item)) {
          // It goes first in its lane: items merged in from other lanes are other keys, and no
          // broadcast can be pending before it (its chunk 0 went out after the barrier lifted).
          continuing.set(lane, [...(continuing.get(lane) ?? []), item]);
          return;
        }
        this.restartLarge(item);
        restarted.add(item);
      }
      pushTo(lane, item);
    };
    for (const item of all) {
      if (!item.broadcast) {
        place(lanes.get(map.shardForHashKey(item.span.start).shardId)!, item);
        continue;
      }
      // A broadcast copy goes to every open shard overlapping its range and covers that shard's
      // WHOLE range (the placement rule for broadcast records requires span = shard range). A merged
      // shard gets one copy (copies of one broadcast are adjacent: same seq), even when a parent
      // already holds it: the barrier makes that repeat an adjacent duplicate at worst.
      const parts = map.openShardsOverlapping(item.span);
      item.entry.remaining += parts.length - 1;
      for (const { shard } of parts) {
        const lane = lanes.get(shard.shardId)!;
        const last = lane.items[lane.items.length - 1];
        if (last && last.seq === item.seq) {
          item.entry.remaining--;
          continue;
        }
        const r = shard.hashKeyRange;
        const sameAsBefore = parts.length === 1 && r.start === item.span.start && r.end === item.span.end;
        const copy: Item = sameAsBefore ? item : { ...item, span: r, large: item.large ? this.freshLarge() : undefined };
        place(lane, copy);
      }
    }
    for (const lane of lanes.values()) {
      // a kept plan for the next chunk of a payload that has just been restarted is void
      if (lane.plan?.large && restarted.has(lane.plan.items[0])) {
        lane.plan = undefined;
        lane.retryAt = 0;
      }
    }
    for (const [lane, items] of continuing) {
      // At most one can continue per shard: only one of them was the last record of ours there.
      lane.items = [...items, ...lane.items];
      lane.pendingRaw += items.reduce((n, it) => n + it.payload.length, 0);
      if (lane.items.length === items.length) lane.oldestAt = performance.now();
    }
    this.lanes = lanes;
  }

  private freshLarge(): LargeState {
    return { frames: undefined, payloadId: this.nextPayloadId(), next: 0, chunkShardId: undefined, lastChunkSeq: undefined, startedAt: undefined };
  }

  /** Restarts a chunked payload from chunk 0 under a new payload id (readers drop the old partial one). */
  private restartLarge(item: Item): void {
    const large = item.large!;
    if (large.next > 0) this.counters.chunkRestarts++;
    Object.assign(large, this.freshLarge());
  }

  private unshift(lane: Lane, items: Item[]): void {
    const rest = lane.items.slice(lane.head);
    lane.items = [...items, ...rest];
    lane.head = 0;
    lane.pendingRaw += items.reduce((n, it) => n + it.payload.length, 0);
  }

  // -------------------------------------------------------------------------------------------
  // failure

  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.clearTimer();
    for (let i = this.admissionHead; i < this.admissions.length; i++) this.admissions[i].reject(error);
    this.admissions.length = 0;
    this.admissionHead = 0;
    for (const w of this.flushWaiters) w.reject(error);
    this.flushWaiters = [];
    try {
      this.onErrorHook?.(error);
    } catch {
      // ignore
    }
  }
}

function newLane(shard: ShardInfo, linger: LingerPolicy): Lane {
  return { shard, items: [], head: 0, pendingRaw: 0, oldestAt: 0, linger, plan: undefined, inFlight: false, retryAt: 0 };
}

function pushTo(lane: Lane, item: Item): void {
  if (lane.items.length === 0) lane.oldestAt = performance.now();
  lane.items.push(item);
  lane.pendingRaw += item.payload.length;
}

/** Convenience: `await createOrderedProducer(options)` = `OrderedProducer.create(options)`. */
export function createOrderedProducer(options: OrderedProducerOptions): Promise<OrderedProducer> {
  return OrderedProducer.create(options);
}
