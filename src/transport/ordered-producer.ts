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
 *
 * This file is the ONE owner of the order invariant: everything that decides when a shard's record
 * is built, sent, retried or accepted is here (about 400 lines of code, over ~500 with the
 * statements of the invariants). The rest is in producer-ledger.ts (admission, durable tag,
 * broadcast barrier), producer-lanes.ts, producer-records.ts (building records),
 * producer-repartition.ts (lanes rebuilt on a reshard, no I/O) and stored-record-finder.ts.
 */
import { PutRecordsCommand, type KinesisClient, type PutRecordsResultEntry } from '@aws-sdk/client-kinesis';
import { LingerPolicy } from './linger-policy.js';
import { DurabilityLedger } from './producer-ledger.js';
import { Lane, type Item, type Misrouted, type Plan } from './producer-lanes.js';
import { producerSettings, type OrderedProducerOptions, type ProducerSettings, type RetryInfo } from './producer-options.js';
import { PARTITION_KEY_BYTES, RecordBuilder } from './producer-records.js';
import { PumpScheduler } from './pump-scheduler.js';
import { judgeMisrouted, reroute } from './producer-repartition.js';
import { newProducerCounters, producerStats, type ProducerStats } from './producer-stats.js';
import { hashKeyOf, loadShardMap, type ShardMap } from './shard-map.js';
import { resolveAmbiguous } from './stored-record-finder.js';
import { classifyError, errorName, isRetryableStreamError } from './stream-errors.js';
import { describeStreamLimits } from './stream-limits.js';
import { streamParams } from '../model/stream-ref.js';
import { noteKinesisAnswer, stats } from '../observability/stats.js';
import { backoffDelay, retry } from '../util/retry.js';

export type { OrderedProducerOptions, RetryInfo } from './producer-options.js';
export type { ProducerStats } from './producer-stats.js';

export class ProducerClosedError extends Error {
  override name = 'ProducerClosedError';
}

export class OrderedProducer {
  private readonly client: KinesisClient;
  private readonly streamName: string;
  private readonly s: ProducerSettings;
  private readonly onRetryHook: ((info: RetryInfo) => void) | undefined;
  private readonly onErrorHook: ((error: unknown) => void) | undefined;
  private readonly ledger: DurabilityLedger;
  private readonly records: RecordBuilder;
  private readonly counters = newProducerCounters();
  /** Max record data bytes (partition key excluded). */
  private readonly maxDataBytes: number;

  private map: ShardMap;
  private lanes = new Map<string, Lane>();
  private sendSeq = 0;
  private lastTag = -Infinity;

  private callsInFlight = 0;
  private needsRefresh = false;
  private refreshing = false;
  private misrouted: Misrouted[] = [];
  /** Highest sequence number of any record of this producer acknowledged per shard. */
  private readonly lastSeqInShard = new Map<string, bigint>();
  private readonly wake = new PumpScheduler(() => this.pump());
  private closing = false;
  private closed = false;
  private failure: unknown;
  /** Aborted when the producer fails: ends the shard-map reload and stored-record scans at once. */
  private readonly halt = new AbortController();

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
    this.s = producerSettings(options);
    this.maxDataBytes = this.s.maxRecordSizeBytes - PARTITION_KEY_BYTES;
    if (this.maxDataBytes <= 1024) throw new RangeError(`maxRecordSizeBytes ${this.s.maxRecordSizeBytes} is too small`);
    this.onRetryHook = options.onRetry;
    this.onErrorHook = options.onError;
    this.ledger = new DurabilityLedger(this.s.maxBufferedBytes);
    if (options.onDurable) this.ledger.onDurable(options.onDurable);
    this.records = new RecordBuilder({ maxDataBytes: this.maxDataBytes, compression: this.s.compression, maxPackFactor: this.s.maxPackFactor, counters: this.counters });
    this.map = shardMap;
    for (const s of shardMap.openShards) this.lanes.set(s.shardId, new Lane(s, new LingerPolicy(this.s.linger, performance.now())));
  }

  // -------------------------------------------------------------------------------------------
  // public API

  /** The shard map currently used for routing. */
  get shardMap(): ShardMap {
    return this.map;
  }

  /** Highest tag T such that every payload with tag ≤ T was accepted by Kinesis; undefined before the first. */
  get durableTag(): number | undefined {
    return this.ledger.durableTag;
  }

  /** Payload bytes buffered (admitted, not yet acknowledged). */
  get bufferedBytes(): number {
    return this.ledger.bufferedBytes;
  }

  get maxRecordSize(): number {
    return this.s.maxRecordSizeBytes;
  }

  get stats(): ProducerStats {
    return producerStats(this.counters, this.ledger);
  }

  /** Registers a durable-tag listener; returns a function that unregisters it. */
  onDurable(listener: (tag: number) => void): () => void {
    return this.ledger.onDurable(listener);
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
    if (this.ledger.durableSeq >= seq) return Promise.resolve();
    const durable = this.ledger.whenDurable(seq);
    this.wake.soon();
    return durable;
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    this.closing = true;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.wake.cancel();
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
    this.wake.soon();
  }

  // -------------------------------------------------------------------------------------------
  // admission (backpressure, producer-ledger.ts)

  private enqueue(routingKey: string | undefined, payload: Uint8Array, tag: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing || this.closed) return Promise.reject(new ProducerClosedError('producer is closed'));
    if (!Number.isFinite(tag) || tag <= this.lastTag) {
      return Promise.reject(new RangeError(`tags must increase strictly: got ${tag} after ${this.lastTag}`));
    }
    this.lastTag = tag;
    const seq = ++this.sendSeq;
    // Admission is FIFO: a send never overtakes an earlier one waiting for buffer space.
    if (this.ledger.mayAdmitNow(payload.length)) {
      this.admit(seq, tag, routingKey, payload);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.ledger.wait({ seq, tag, routingKey, payload, resolve, reject });
      this.wake.soon(); // senders are blocked: flush without waiting for the linger
    });
  }

  private processAdmissions(): void {
    for (let a = this.ledger.nextAdmissible(); a !== undefined; a = this.ledger.nextAdmissible()) {
      this.admit(a.seq, a.tag, a.routingKey, a.payload);
      a.resolve();
    }
  }

  private admit(seq: number, tag: number, routingKey: string | undefined, payload: Uint8Array): void {
    const entry = this.ledger.open(seq, tag, payload.length, routingKey === undefined);
    if (routingKey !== undefined) {
      const h = hashKeyOf(routingKey);
      entry.remaining = 1;
      this.pushItem(this.map.shardForHashKey(h).shardId, this.records.newItem(seq, entry, { start: h, end: h }, false, payload));
    } else {
      for (const shard of this.map.openShards) {
        entry.remaining++;
        this.pushItem(shard.shardId, this.records.newItem(seq, entry, shard.hashKeyRange, true, payload));
      }
    }
    this.wake.soon();
  }

  private pushItem(shardId: string, item: Item): void {
    const lane = this.lanes.get(shardId);
    if (!lane) throw new Error(`internal: no lane for shard ${shardId}`);
    lane.push(item);
  }

  // -------------------------------------------------------------------------------------------
  // dispatch

  /** Starts as many PutRecords calls as allowed. */
  private pump(): void {
    if (this.failure !== undefined || this.refreshing) return;
    if (this.needsRefresh) {
      // Barrier: no new call until every in-flight call is settled, then refresh.
      if (this.callsInFlight === 0) void this.refresh();
      return;
    }
    const now = performance.now();
    const urgent = this.ledger.urgent || this.closing;
    const barrier = this.ledger.barrierSeq;
    while (this.callsInFlight < this.s.maxConcurrentCalls) {
      const { ready, idle, nextWake } = this.lanesToSend(now, urgent, barrier);
      if (ready.length === 0) {
        if (nextWake < Infinity) this.wake.at(nextWake);
        return;
      }
      const plans = this.callPlans(ready, idle, barrier, now);
      if (plans.length === 0) return; // cannot happen: one record always fits a call
      void this.putRecords(plans);
    }
  }

  /** Lanes whose record may go now (`ready`), lanes that may ride along (`idle`), and when to look again. */
  private lanesToSend(now: number, urgent: boolean, barrier: number): { ready: Lane[]; idle: Lane[]; nextWake: number } {
    let nextWake = Infinity;
    const ready: Lane[] = [];
    const idle: Lane[] = [];
    for (const lane of this.lanes.values()) {
      // ORDER INVARIANT: a shard with a record in flight gets nothing more until it is acknowledged.
      if (lane.inFlight) continue;
      const stale = lane.plan?.large ? lane.plan.items[0].large! : undefined;
      if (stale && lane.plan!.frameIndex > 0 && now - (stale.startedAt ?? now) > this.s.chunkRestartAfterMs) {
        // A chunk retried for too long: restart the payload rather than risk a reader timeout.
        lane.plan = undefined;
        lane.retryAt = 0;
        this.records.restartLarge(lane.head!);
      }
      // BROADCAST BARRIER: items after an incomplete broadcast wait.
      if (!lane.hasWork(barrier)) continue;
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
    // Oldest first; idle lanes with pending payloads ride along in the same call.
    ready.sort((a, b) => a.oldestAt - b.oldestAt);
    return { ready, idle, nextWake };
  }

  /** The records of one PutRecords call, each lane's next one (built now if need be); marks them in flight. */
  private callPlans(ready: Lane[], idle: Lane[], barrier: number, now: number): Plan[] {
    const plans: Plan[] = [];
    let bytes = 0;
    for (const lane of [...ready, ...idle]) {
      if (plans.length >= this.s.maxCallRecords) break;
      let plan = lane.plan;
      if (plan === undefined) {
        plan = this.records.build(lane, barrier);
        // The record budget counts records built (a retry of the same record takes no new token).
        lane.linger.noteRecord(now);
      }
      lane.plan = plan;
      if (plans.length > 0 && bytes + plan.size > this.s.maxCallBytes) continue; // stays built for the next call
      bytes += plan.size;
      plans.push(plan);
      lane.inFlight = true;
    }
    return plans;
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
    let results: PutRecordsResultEntry[] = [];
    let callError: unknown;
    try {
      const response = await this.client.send(new PutRecordsCommand({ ...streamParams(this.streamName), Records: plans.map((p) => p.entry) }));
      results = response.Records ?? [];
      if (results.length !== plans.length) callError = new Error(`PutRecords returned ${results.length} results for ${plans.length} records`);
    } catch (err) {
      callError = err;
    }
    this.callsInFlight--;
    if (this.failure !== undefined) return;
    const now = performance.now();
    noteKinesisAnswer(callError === undefined || classifyError(callError) === 'throttle');
    if (callError !== undefined) this.callFailed(plans, callError, now);
    else plans.forEach((plan, i) => this.recordAnswered(plan, results[i], now));
    this.pump();
  }

  private callFailed(plans: Plan[], callError: unknown, now: number): void {
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
  }

  private recordAnswered(plan: Plan, r: PutRecordsResultEntry, now: number): void {
    plan.lane.inFlight = false;
    if (r.ErrorCode) {
      const error = { name: r.ErrorCode, message: r.ErrorMessage };
      const kind = classifyError(r.ErrorCode);
      if (kind === 'fatal') return this.fail(error);
      return this.retryLater(plan, error, kind === 'throttle', now, 'record');
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
  }

  private retryLater(plan: Plan, error: unknown, throttled: boolean, now: number, scope: 'record' | 'call'): void {
    const lane = plan.lane;
    lane.inFlight = false;
    plan.attempts++;
    if (plan.attempts >= this.s.maxAttempts) {
      this.fail(error);
      return;
    }
    const delayMs = backoffDelay(plan.attempts - 1, this.s.retryBackoff, this.s.random);
    // ORDER INVARIANT: the same plan (same bytes) is re-sent before anything later for this shard.
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
    if (plan.large) return this.acceptFrame(plan, shardId, seq);
    this.counters.aggregatedRecords++;
    this.counters.aggregatedPayloads += plan.items.length;
    for (const item of plan.items) this.completeItem(item);
  }

  /** A frame of a large item was accepted: the item completes with its last frame. */
  private acceptFrame(plan: Plan, shardId: string, seq: bigint): void {
    const item = plan.items[0];
    const large = item.large!;
    if (plan.frameIndex === 0) {
      large.chunkShardId = shardId;
      large.startedAt = plan.sentAt;
    } else if (performance.now() - (large.startedAt ?? 0) > this.s.chunkRestartAfterMs) {
      // Too slow: a reader may time this assembly out. Restart the payload from chunk 0.
      this.records.restartLarge(item);
      return;
    }
    large.lastChunkSeq = seq;
    large.next = plan.frameIndex + 1;
    if (large.frames && large.next >= large.frames.length) {
      // Last frame acknowledged: the payload is complete. It is still the lane's head item.
      if (plan.lane.head === item) plan.lane.take(1);
      if (large.frames.length === 1) {
        this.counters.aggregatedRecords++;
        this.counters.aggregatedPayloads++;
      }
      this.completeItem(item);
    }
  }

  private completeItem(item: Item): void {
    this.counters.payloadsSent++;
    this.counters.payloadBytesSent += item.payload.length;
    stats.kinesis.payloadsSent++;
    // DURABILITY INVARIANT (producer-ledger.ts): entries complete only here, from accept().
    if (this.ledger.complete(item.entry)) this.processAdmissions();
  }

  // -------------------------------------------------------------------------------------------
  // resharding (the lanes' rebuild is producer-repartition.ts)

  private async refresh(): Promise<void> {
    this.refreshing = true;
    this.wake.cancel();
    let map: ShardMap;
    try {
      map = await retry(() => loadShardMap(this.client, this.streamName, { signal: this.halt.signal }), {
        isRetryable: isRetryableStreamError,
        attempts: this.s.maxAttempts,
        signal: this.halt.signal,
        backoff: this.s.retryBackoff,
        random: this.s.random,
        onRetry: ({ attempt, delayMs, error }) =>
          this.onRetryHook?.({ scope: 'list-shards', errorName: errorName(error), throttled: classifyError(error) === 'throttle', attempt, delayMs }),
      });
    } catch (err) {
      this.refreshing = false;
      return this.fail(err);
    }
    this.counters.shardMapRefreshes++;
    try {
      await resolveAmbiguous({
        map,
        misrouted: this.misrouted,
        lanes: this.lanes.values(),
        lastSeqInShard: this.lastSeqInShard,
        counters: this.counters,
        finder: { client: this.client, streamName: this.streamName, backoff: this.s.retryBackoff, random: this.s.random, signal: this.halt.signal },
      });
    } catch (err) {
      return this.fail(err); // fatal: retrying cannot fix it
    }
    if (this.failure !== undefined) return;
    this.settleMisrouted(map);
    // A shard that stays open keeps its record budget; a new one starts with a full bucket.
    this.lanes = reroute({
      lanes: this.lanes,
      map,
      lastSeqInShard: this.lastSeqInShard,
      newLane: (shard, old) => new Lane(shard, old?.linger ?? new LingerPolicy(this.s.linger, performance.now())),
      freshLarge: () => this.records.freshLarge(),
      restartLarge: (item) => this.records.restartLarge(item),
    });
    this.map = map;
    this.needsRefresh = false;
    this.refreshing = false;
    this.pump();
  }

  /** Applies the verdicts on the misrouted records (producer-repartition.ts, judgeMisrouted). */
  private settleMisrouted(map: ShardMap): void {
    for (const m of this.misrouted) {
      const verdict = judgeMisrouted(m, map);
      if (verdict === 'accept') {
        this.accept(m.plan, m.shardId, m.seq);
        continue;
      }
      this.counters.resentRecords++;
      m.plan.lane.plan = undefined;
      // A chunk that landed in another shard than chunk 0 restarts its payload; a large item is
      // still at its lane's head (its frame is re-sent, or restarted by the reroute); an
      // aggregate's items go back to the front of their lane.
      if (verdict === 'restart') this.records.restartLarge(m.plan.items[0]);
      else if (!m.plan.large) m.plan.lane.unshift(m.plan.items);
    }
    this.misrouted = [];
  }

  // -------------------------------------------------------------------------------------------
  // failure

  private fail(error: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.wake.cancel();
    this.halt.abort();
    this.ledger.failAll(error);
    try {
      this.onErrorHook?.(error);
    } catch {
      // ignore
    }
  }
}

/** Convenience: `await createOrderedProducer(options)` = `OrderedProducer.create(options)`. */
export function createOrderedProducer(options: OrderedProducerOptions): Promise<OrderedProducer> {
  return OrderedProducer.create(options);
}
