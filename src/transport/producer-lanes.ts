/**
 * The producer's per-shard lanes and what travels in them: items (a payload, or one shard's copy
 * of a broadcast), the state of a chunked payload, and a lane's next record (its plan).
 *
 * ORDER INVARIANT (enforced by the producer, ordered-producer.ts, with the fields here): a lane's
 * items leave it only from the front, into its one record `plan`; while `inFlight` no other record
 * of that shard is built or sent.
 */
import type { PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { FifoQueue } from './fifo-queue.js';
import type { LingerPolicy } from './linger-policy.js';
import type { TagEntry } from './producer-ledger.js';
import type { HashKeyRange, ShardInfo } from './shard-map.js';

/** Chunked (or too large to aggregate) payload state. */
export interface LargeState {
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

export interface Item {
  seq: number;
  entry: TagEntry;
  /** Hash key span: [h, h] for a payload, the target range for a broadcast copy. */
  span: HashKeyRange;
  broadcast: boolean;
  payload: Uint8Array;
  /** Set when the payload does not fit an aggregate record. */
  large: LargeState | undefined;
}

/** A lane's next record: built from the front of the lane, sent (and re-sent) byte for byte. */
export interface Plan {
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

/** A record acknowledged in another shard than its lane's (resharding), judged after the map reload. */
export interface Misrouted {
  plan: Plan;
  shardId: string;
  seq: bigint;
}

/** One shard's queue of items, in admission order. */
export class Lane {
  readonly items = new FifoQueue<Item>(4096);
  /** Payload bytes of the queued items. */
  pendingRaw = 0;
  /** When the current head item was enqueued (linger clock). */
  oldestAt = 0;
  /** Next record to send (a failed one awaiting retry, or built but not yet sent). */
  plan: Plan | undefined = undefined;
  /** ORDER INVARIANT: true while this shard's one record is in a PutRecords call. */
  inFlight = false;
  /** performance.now() before which a failed record is not re-sent. */
  retryAt = 0;

  constructor(
    readonly shard: ShardInfo,
    /** Adaptive linger: the shard's record budget (linger-policy.ts). */
    readonly linger: LingerPolicy,
  ) {}

  get head(): Item | undefined {
    return this.items.peek();
  }

  /** Something to send: a plan, or a head item not held back by the BROADCAST BARRIER (`barrier`). */
  hasWork(barrier: number): boolean {
    const head = this.items.peek();
    return this.plan !== undefined || (head !== undefined && head.seq <= barrier);
  }

  push(item: Item): void {
    if (this.items.isEmpty()) this.oldestAt = performance.now();
    this.items.push(item);
    this.pendingRaw += item.payload.length;
  }

  /** Removes the `n` front items. `oldestAt` stays: the rest are at least that old (linger errs on sending early). */
  take(n: number): Item[] {
    const out: Item[] = [];
    for (let i = 0; i < n; i++) {
      const item = this.items.shift()!;
      this.pendingRaw -= item.payload.length;
      out.push(item);
    }
    return out;
  }

  /** Puts `items` back before the queued ones (a dissolved or re-sent record's items). */
  unshift(items: readonly Item[]): void {
    this.items.unshiftAll(items);
    for (const it of items) this.pendingRaw += it.payload.length;
  }
}
