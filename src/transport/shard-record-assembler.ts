/**
 * Turns the records of ONE shard, in sequence order, back into payloads, and tracks the position
 * that is safe to checkpoint. Stateful but I/O-free: the shard reader feeds it what GetRecords
 * returns.
 *
 * Records are attributed to their producer by the high 32 bits of the record id (the producer's
 * random nonce; 0 = unstamped). Rules (mirroring the producer's, see ordered-producer.ts):
 * - DUPLICATES: a record whose (non-zero) id equals one of the last few (8) record ids of the same
 *   producer in this shard is the stored duplicate of a retried write: dropped. So is a record
 *   whose id is one of the last ids a producer wrote in a parent shard (`seedRecordIds`): a write
 *   that failed ambiguously and was retried after the shard closed lands in a child while its
 *   first attempt is in the parent.
 * - PLACEMENT: a record breaking the placement rule (record-framing.ts: span inside this shard's
 *   HashKeyRange; for a broadcast record, span equal to it) landed here because a reshard raced the
 *   write; the producer re-sends its payloads to the right shard: dropped.
 * - CHUNKS: a producer writes a chunked payload's chunks as consecutive records among ITS records
 *   in the shard (other producers may interleave). So:
 *     - a chunk continuing an open assembly (same payload id, next index) is appended; a lower
 *       index is a duplicate and ignored;
 *     - any other record of the same producer abandons that producer's open assembly (the producer
 *       restarted the payload under a new id, see the producer's restart rules);
 *     - a chunk with index > 0 and no open assembly is an orphan (tail of an abandoned or completed
 *       payload): ignored;
 *     - an assembly open for longer than `chunkAssemblyTimeoutMs` of arrival time is abandoned
 *       (its producer died; its successor re-sends the payload). The producer restarts any payload
 *       whose chunks take longer than half of that, so a live producer never loses one this way;
 *     - at the end of a closed shard open assemblies are abandoned (the producer restarts such
 *       payloads in the child shard).
 * - CHECKPOINT INVARIANT: `checkpoint` is a sequence number such that every payload of every record
 *   up to it has been emitted. It stays before the first chunk of the oldest open assembly, and is
 *   the last record read otherwise. With one producer nothing is emitted past an open assembly
 *   (its next record either continues or abandons it), so resuming AFTER_SEQUENCE_NUMBER
 *   `checkpoint` replays exactly the payloads not yet emitted; with several producers writing to
 *   the stream, payloads of other producers read while an assembly is open may be replayed.
 */
import { CHUNK_ASSEMBLY_TIMEOUT_MS, FrameError, decodeFrame, joinChunks, validPlacement, type ChunkFrame } from './record-framing.js';
import type { HashKeyRange } from './shard-map.js';

export interface AssemblerRecord {
  sequenceNumber: string;
  data: Uint8Array;
  /** ApproximateArrivalTimestamp in ms since the epoch, when known (assembly timeout). */
  arrivalMs?: number;
}

export interface AssemblerStats {
  records: number;
  payloads: number;
  misplacedRecords: number;
  duplicateRecords: number;
  duplicateChunks: number;
  orphanChunks: number;
  abandonedPayloads: number;
  invalidRecords: number;
}

export interface ShardRecordAssemblerOptions {
  shardId: string;
  hashKeyRange: HashKeyRange;
  /** Checkpoint the shard is read from (sequence number of the last record already processed). */
  startAfter?: string;
  /** What to do with a record that is not a valid frame: throw (default) or skip it. */
  onInvalidRecord?: 'throw' | 'skip';
  /** Abandon an assembly open for longer than this (arrival time; default 10 min). */
  chunkAssemblyTimeoutMs?: number;
  /** Last record ids of the parent shards (their `lastRecordIds` at shard end). */
  seedRecordIds?: Iterable<bigint>;
}

interface Assembly {
  payloadId: bigint;
  producer: bigint;
  chunks: ChunkFrame[];
  /** Checkpoint just before its first chunk. */
  before: string | undefined;
  firstArrivalMs: number | undefined;
}

const RECENT_IDS = 8;

/** Producer nonce of a record id (0n = unstamped records, treated as one producer). */
export function producerOf(recordId: bigint): bigint {
  return recordId >> 32n;
}

export class ShardRecordAssembler {
  readonly shardId: string;
  private readonly range: HashKeyRange;
  private readonly onInvalid: 'throw' | 'skip';
  private readonly timeoutMs: number;
  /** Last record processed. */
  private last: string | undefined;
  /** Open assemblies, oldest first (Map keeps insertion order). */
  private readonly assemblies = new Map<bigint, Assembly>();
  /** Per producer, its most recent record ids here (newest last, at most RECENT_IDS). */
  private readonly recentIds = new Map<bigint, bigint[]>();
  private readonly seeds: Set<bigint>;
  readonly stats: AssemblerStats = {
    records: 0,
    payloads: 0,
    misplacedRecords: 0,
    duplicateRecords: 0,
    duplicateChunks: 0,
    orphanChunks: 0,
    abandonedPayloads: 0,
    invalidRecords: 0,
  };

  constructor(options: ShardRecordAssemblerOptions) {
    this.shardId = options.shardId;
    this.range = options.hashKeyRange;
    this.onInvalid = options.onInvalidRecord ?? 'throw';
    this.timeoutMs = options.chunkAssemblyTimeoutMs ?? CHUNK_ASSEMBLY_TIMEOUT_MS;
    this.last = options.startAfter;
    this.seeds = new Set(options.seedRecordIds ?? []);
  }

  /**
   * Per producer, the last record id seen here (or inherited from a parent when the producer has
   * not written here): what a child shard needs to drop a retried write's cross-shard duplicate.
   */
  lastRecordIds(): bigint[] {
    const out = new Set<bigint>();
    for (const ids of this.recentIds.values()) for (const id of ids) out.add(id);
    for (const id of this.seeds) if (!this.recentIds.has(producerOf(id))) out.add(id);
    return [...out];
  }

  /** Safe checkpoint (see CHECKPOINT INVARIANT); undefined = nothing processed since the shard start. */
  get checkpoint(): string | undefined {
    for (const a of this.assemblies.values()) return a.before;
    return this.last;
  }

  /** True while a chunked payload is partially received. */
  get assembling(): boolean {
    return this.assemblies.size > 0;
  }

  /** Processes the next record of the shard; returns the payloads it completes, in order. */
  push(record: AssemblerRecord): Uint8Array[] {
    this.stats.records++;
    try {
      return this.process(record);
    } finally {
      this.last = record.sequenceNumber;
    }
  }

  private process(record: AssemblerRecord): Uint8Array[] {
    let frame;
    try {
      frame = decodeFrame(record.data);
    } catch (err) {
      if (this.onInvalid === 'throw' || !(err instanceof FrameError)) {
        throw new FrameError(`shard ${this.shardId} record ${record.sequenceNumber}: ${(err as Error).message}`);
      }
      this.stats.invalidRecords++;
      return [];
    }
    if (record.arrivalMs !== undefined) {
      for (const a of [...this.assemblies.values()]) {
        if (a.firstArrivalMs !== undefined && record.arrivalMs - a.firstArrivalMs > this.timeoutMs) this.abandon(a);
      }
    }
    const producer = producerOf(frame.recordId);
    if (frame.recordId !== 0n) {
      const recent = this.recentIds.get(producer) ?? [];
      if (recent.includes(frame.recordId) || this.seeds.has(frame.recordId)) {
        this.stats.duplicateRecords++;
        return [];
      }
      recent.push(frame.recordId);
      if (recent.length > RECENT_IDS) recent.shift();
      this.recentIds.set(producer, recent);
    }
    if (frame.kind === 'chunk') {
      const open = this.assemblies.get(frame.payloadId);
      if (open) {
        const expected = open.chunks.length;
        if (frame.index < expected) {
          this.stats.duplicateChunks++;
          return [];
        }
        if (frame.index === expected) {
          open.chunks.push(frame);
          if (open.chunks.length < frame.count) return [];
          this.assemblies.delete(open.payloadId);
          return this.emit([joinChunks(open.chunks)]);
        }
        // A gap cannot happen with the producer's rules: drop the assembly and this chunk.
        this.abandon(open);
        this.stats.orphanChunks++;
        return [];
      }
    }
    // Not a continuation: the same producer has moved on from any payload it was chunking.
    for (const a of [...this.assemblies.values()]) if (a.producer === producer) this.abandon(a);
    if (!validPlacement(this.range, frame.span, frame.broadcast)) {
      this.stats.misplacedRecords++;
      return [];
    }
    switch (frame.kind) {
      case 'chunk':
        if (frame.index === 0) {
          // The checkpoint stays before this first chunk until the payload completes.
          this.assemblies.set(frame.payloadId, {
            payloadId: frame.payloadId,
            producer,
            chunks: [frame],
            before: this.last,
            firstArrivalMs: record.arrivalMs,
          });
        } else {
          this.stats.orphanChunks++;
        }
        return [];
      case 'single':
        return this.emit([frame.payload]);
      case 'aggregate':
        return this.emit(frame.payloads);
    }
  }

  /**
   * The shard is closed and fully read: unfinished payloads are abandoned (the producer restarts
   * them in a child shard). `lastSequenceNumber` = the last record read, which becomes the checkpoint.
   */
  end(lastSequenceNumber: string | undefined): void {
    for (const a of [...this.assemblies.values()]) this.abandon(a);
    if (lastSequenceNumber !== undefined) this.last = lastSequenceNumber;
  }

  private abandon(a: Assembly): void {
    this.assemblies.delete(a.payloadId);
    this.stats.abandonedPayloads++;
  }

  private emit(payloads: Uint8Array[]): Uint8Array[] {
    this.stats.payloads += payloads.length;
    return payloads;
  }
}
