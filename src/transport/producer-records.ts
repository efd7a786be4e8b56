/**
 * Builds a lane's next record (record-framing.ts does the bytes): one aggregate of the lane's
 * front items, or the next frame of its front chunked payload; and hands out the producer's
 * payload and record ids (a random 32-bit producer nonce in the high half, a counter in the low).
 */
import { randomBytes } from 'node:crypto';
import {
  AGGREGATE_HEADER_BYTES,
  aggregateEntrySize,
  encodePayloadRecords,
  markBroadcast,
  packRecord,
  recordIdOf,
  stampRecordId,
  type CompressionOptions,
} from './record-framing.js';
import type { Item, LargeState, Lane, Plan } from './producer-lanes.js';
import type { ProducerCounters } from './producer-stats.js';
import type { HashKeyRange } from './shard-map.js';
import type { TagEntry } from './producer-ledger.js';

/** Length of the partition key of every record (see partitionKeyFor). */
export const PARTITION_KEY_BYTES = 32;

function partitionKeyFor(span: HashKeyRange): string {
  // Routing is by ExplicitHashKey; the partition key only has to be valid (1-256 chars) and is
  // counted in the record size: a fixed 32-char hex of the span start keeps it predictable.
  return span.start.toString(16).padStart(PARTITION_KEY_BYTES, '0');
}

export interface RecordBuilderOptions {
  /** Max record data bytes (partition key excluded). */
  maxDataBytes: number;
  compression: CompressionOptions;
  /** Upper bound of the adaptive raw/record packing factor. */
  maxPackFactor: number;
  counters: ProducerCounters;
}

interface PlanParts {
  items: Item[];
  large: boolean;
  frameIndex: number;
  frame: Uint8Array;
  span: HashKeyRange;
  broadcast: boolean;
  rawBytes: number;
  compressed: boolean;
}

export class RecordBuilder {
  private packFactor = 1;
  /** Random 32-bit producer nonce in the high half of payload ids and record ids. */
  private readonly idBase = (BigInt('0x' + randomBytes(4).toString('hex')) | 1n) << 32n;
  private payloadCounter = 0n;
  private recordCounter = 0n;

  constructor(private readonly o: RecordBuilderOptions) {}

  /** A queued payload (or broadcast copy); too large to aggregate = chunked (large state). */
  newItem(seq: number, entry: TagEntry, span: HashKeyRange, broadcast: boolean, payload: Uint8Array): Item {
    const aggregatable = aggregateEntrySize(payload.length) + AGGREGATE_HEADER_BYTES <= this.o.maxDataBytes;
    return { seq, entry, span, broadcast, payload, large: aggregatable ? undefined : this.freshLarge() };
  }

  freshLarge(): LargeState {
    return { frames: undefined, payloadId: this.nextPayloadId(), next: 0, chunkShardId: undefined, lastChunkSeq: undefined, startedAt: undefined };
  }

  /** Restarts a chunked payload from chunk 0 under a new payload id (readers drop the old partial one). */
  restartLarge(item: Item): void {
    const large = item.large!;
    if (large.next > 0) this.o.counters.chunkRestarts++;
    Object.assign(large, this.freshLarge());
  }

  /**
   * Builds the lane's next record from its front: one aggregate (its items leave the lane), or the
   * next frame of a large item (which stays the lane's head until its last frame is accepted).
   * Nothing after the BROADCAST BARRIER (`barrier`) goes in.
   */
  build(lane: Lane, barrier: number): Plan {
    const head = lane.head!;
    return head.large ? this.buildFrame(lane, head, head.large) : this.buildAggregate(lane, barrier);
  }

  private buildFrame(lane: Lane, head: Item, large: LargeState): Plan {
    if (!large.frames) {
      large.frames = encodePayloadRecords(head.payload, head.span, this.o.maxDataBytes, large.payloadId, this.o.compression);
      if (head.broadcast) for (const f of large.frames) markBroadcast(f);
      if (large.frames.length > 1) this.o.counters.chunkedPayloads++;
    }
    const frame = large.frames[large.next];
    // Stamped once: a re-send of this frame carries the same id.
    if (recordIdOf(frame) === 0n) stampRecordId(frame, this.nextRecordId());
    const lastFrame = large.next === large.frames.length - 1;
    return this.plan(lane, {
      items: [head],
      large: true,
      frameIndex: large.next,
      frame,
      span: head.span,
      broadcast: head.broadcast,
      rawBytes: lastFrame ? head.payload.length : 0,
      compressed: (frame[3] & 3) !== 0,
    });
  }

  private buildAggregate(lane: Lane, barrier: number): Plan {
    // Gather consecutive aggregatable items up to the raw budget of one record.
    const budget = (this.o.maxDataBytes - AGGREGATE_HEADER_BYTES) * this.packFactor;
    const payloads: Uint8Array[] = [];
    const spans: HashKeyRange[] = [];
    let raw = 0;
    let broadcast = false;
    for (const it of lane.items) {
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
    const packed = packRecord(payloads, (n) => spans[n - 1], this.o.maxDataBytes, { ...this.o.compression, packFactor: this.packFactor });
    const items = lane.take(packed.count);
    stampRecordId(packed.frame, this.nextRecordId());
    // packRecord may have taken fewer payloads than gathered (then the broadcast is not in it).
    broadcast = broadcast && packed.count === payloads.length;
    if (broadcast) markBroadcast(packed.frame);
    if (packed.codec !== 'none') {
      // Adapt the packing factor to the observed compression ratio (EWMA), within [1, maxPackFactor].
      const ratio = packed.rawBytes / packed.frame.length;
      this.packFactor = Math.min(this.o.maxPackFactor, Math.max(1, 0.5 * this.packFactor + 0.5 * ratio * 0.9));
    }
    return this.plan(lane, {
      items,
      large: false,
      frameIndex: 0,
      frame: packed.frame,
      span: spans[packed.count - 1],
      broadcast,
      rawBytes: packed.rawBytes,
      compressed: packed.codec !== 'none',
    });
  }

  private plan(lane: Lane, p: PlanParts): Plan {
    const partitionKey = partitionKeyFor(p.span);
    return {
      lane,
      items: p.items,
      large: p.large,
      frameIndex: p.frameIndex,
      entry: { Data: p.frame, PartitionKey: partitionKey, ExplicitHashKey: p.span.start.toString() },
      span: p.span,
      broadcast: p.broadcast,
      ambiguous: false,
      scanFloor: undefined,
      floorAtSend: undefined,
      sentAt: 0,
      size: p.frame.length + partitionKey.length,
      rawBytes: p.rawBytes,
      attempts: 0,
      compressed: p.compressed,
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
}
