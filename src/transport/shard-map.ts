/**
 * Routing of routing keys to Kinesis shards, and the stream's shard list (with lineage).
 *
 * Kinesis maps a record to a shard by `MD5(partitionKey)` read as an unsigned 128-bit big-endian
 * integer (the "hash key"): the record goes to the OPEN shard whose HashKeyRange
 * [StartingHashKey, EndingHashKey] (inclusive, decimal strings) holds it. `ExplicitHashKey`
 * overrides the MD5. The producer computes the hash key itself from the routing key (whatever its
 * length; for keys ≤ 256 chars this is exactly what Kinesis would compute) and always sends an
 * ExplicitHashKey, so it knows which shard each record is meant for and can detect resharding
 * (the PutRecords result then names a ShardId other than the expected one).
 *
 * Open shards of a stream partition the whole hash key space [0, 2^128 - 1] without gaps or
 * overlaps; closed shards (resharding parents, `SequenceNumberRange.EndingSequenceNumber` set)
 * keep their range for lineage but receive no more records.
 */
import { createHash } from 'node:crypto';
import { ListShardsCommand, type KinesisClient, type ListShardsCommandInput, type Shard } from '@aws-sdk/client-kinesis';
import { streamParams } from '../model/stream-ref.js';

/** Largest hash key: 2^128 - 1. */
export const MAX_HASH_KEY = (1n << 128n) - 1n;

/** An inclusive range of 128-bit hash keys. */
export interface HashKeyRange {
  start: bigint;
  end: bigint;
}

/** What the transport needs to know about one shard. */
export interface ShardInfo {
  shardId: string;
  /** Inclusive hash key range. */
  hashKeyRange: HashKeyRange;
  parentShardId: string | undefined;
  adjacentParentShardId: string | undefined;
  startingSequenceNumber: string | undefined;
  /** Set when the shard is closed (a resharding parent): it receives no more records. */
  endingSequenceNumber: string | undefined;
  /** `endingSequenceNumber === undefined`. */
  open: boolean;
}

/** The 128-bit hash key Kinesis computes for a partition key: MD5 of its UTF-8 bytes, big-endian. */
export function hashKeyOf(routingKey: string): bigint {
  return BigInt('0x' + createHash('md5').update(routingKey, 'utf8').digest('hex'));
}

export function rangeContains(outer: HashKeyRange, inner: HashKeyRange): boolean {
  return outer.start <= inner.start && inner.end <= outer.end;
}

export function rangeHolds(range: HashKeyRange, hashKey: bigint): boolean {
  return range.start <= hashKey && hashKey <= range.end;
}

/** Intersection of two ranges, or undefined when they are disjoint. */
export function rangeIntersection(a: HashKeyRange, b: HashKeyRange): HashKeyRange | undefined {
  const start = a.start > b.start ? a.start : b.start;
  const end = a.end < b.end ? a.end : b.end;
  return start <= end ? { start, end } : undefined;
}

/** Converts an SDK `Shard` to a {@link ShardInfo}. */
export function shardInfoFromSdk(shard: Shard): ShardInfo {
  if (!shard.ShardId || !shard.HashKeyRange?.StartingHashKey || !shard.HashKeyRange.EndingHashKey) {
    throw new Error(`ListShards returned a shard without id or hash key range: ${JSON.stringify(shard)}`);
  }
  const ending = shard.SequenceNumberRange?.EndingSequenceNumber ?? undefined;
  return {
    shardId: shard.ShardId,
    hashKeyRange: { start: BigInt(shard.HashKeyRange.StartingHashKey), end: BigInt(shard.HashKeyRange.EndingHashKey) },
    parentShardId: shard.ParentShardId ?? undefined,
    adjacentParentShardId: shard.AdjacentParentShardId ?? undefined,
    startingSequenceNumber: shard.SequenceNumberRange?.StartingSequenceNumber ?? undefined,
    endingSequenceNumber: ending,
    open: ending === undefined,
  };
}

/**
 * Every shard of the stream still within retention, open and closed, via ListShards.
 * Paginates with NextToken (a request carrying NextToken must not carry StreamName).
 */
export async function listAllShards(
  client: KinesisClient,
  streamName: string,
  options: { signal?: AbortSignal; pageSize?: number } = {},
): Promise<ShardInfo[]> {
  const shards: ShardInfo[] = [];
  let nextToken: string | undefined;
  do {
    const input: ListShardsCommandInput = nextToken
      ? { NextToken: nextToken, MaxResults: options.pageSize }
      : { ...streamParams(streamName), MaxResults: options.pageSize };
    const out = await client.send(new ListShardsCommand(input), { abortSignal: options.signal });
    for (const s of out.Shards ?? []) shards.push(shardInfoFromSdk(s));
    nextToken = out.NextToken ?? undefined;
  } while (nextToken);
  return shards;
}

/**
 * Immutable snapshot of a stream's shards: routes hash keys to open shards and keeps closed
 * shards (lineage, and the ranges needed to judge where a record actually landed).
 * Refreshing = loading a new snapshot ({@link loadShardMap}).
 */
export class ShardMap {
  /** Open shards sorted by starting hash key; they tile [0, MAX_HASH_KEY]. */
  readonly openShards: readonly ShardInfo[];
  /** All shards (open and closed) by id. */
  private readonly byId: ReadonlyMap<string, ShardInfo>;

  constructor(shards: readonly ShardInfo[]) {
    this.byId = new Map(shards.map((s) => [s.shardId, s]));
    const open = shards.filter((s) => s.open).sort((a, b) => (a.hashKeyRange.start < b.hashKeyRange.start ? -1 : 1));
    if (open.length === 0) throw new Error('ShardMap: the stream has no open shard');
    // Invariant checked here: open shards tile the hash key space without gap or overlap, so every
    // hash key has exactly one open shard.
    let expected = 0n;
    for (const s of open) {
      if (s.hashKeyRange.start !== expected) {
        throw new Error(
          `ShardMap: open shards do not tile the hash key space: ${s.shardId} starts at ${s.hashKeyRange.start}, expected ${expected}`,
        );
      }
      expected = s.hashKeyRange.end + 1n;
    }
    if (expected !== MAX_HASH_KEY + 1n) throw new Error(`ShardMap: open shards end at ${expected - 1n}, not at 2^128-1`);
    this.openShards = open;
  }

  /** All shards known to this snapshot (open and closed). */
  get allShards(): ShardInfo[] {
    return [...this.byId.values()];
  }

  get(shardId: string): ShardInfo | undefined {
    return this.byId.get(shardId);
  }

  /** The open shard whose range holds `hashKey` (binary search). */
  shardForHashKey(hashKey: bigint): ShardInfo {
    if (hashKey < 0n || hashKey > MAX_HASH_KEY) throw new RangeError(`hash key out of range: ${hashKey}`);
    const open = this.openShards;
    let lo = 0;
    let hi = open.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (open[mid].hashKeyRange.start <= hashKey) lo = mid;
      else hi = mid - 1;
    }
    return open[lo];
  }

  shardForRoutingKey(routingKey: string): ShardInfo {
    return this.shardForHashKey(hashKeyOf(routingKey));
  }

  /** Open shards overlapping `range`, with the overlapping part. */
  openShardsOverlapping(range: HashKeyRange): Array<{ shard: ShardInfo; overlap: HashKeyRange }> {
    const out: Array<{ shard: ShardInfo; overlap: HashKeyRange }> = [];
    for (const shard of this.openShards) {
      const overlap = rangeIntersection(shard.hashKeyRange, range);
      if (overlap) out.push({ shard, overlap });
    }
    return out;
  }

  /** One ExplicitHashKey per open shard (its StartingHashKey): how one record reaches every open shard. */
  broadcastTargets(): Array<{ shardId: string; explicitHashKey: string }> {
    return this.openShards.map((s) => ({ shardId: s.shardId, explicitHashKey: s.hashKeyRange.start.toString() }));
  }

  /** Same open shard set with the same ranges. */
  sameOpenShards(other: ShardMap): boolean {
    if (other.openShards.length !== this.openShards.length) return false;
    return this.openShards.every((s, i) => s.shardId === other.openShards[i].shardId);
  }
}

export async function loadShardMap(
  client: KinesisClient,
  streamName: string,
  options: { signal?: AbortSignal } = {},
): Promise<ShardMap> {
  return new ShardMap(await listAllShards(client, streamName, options));
}
