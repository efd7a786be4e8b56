/**
 * Looks a record of ours up in the stream by its record id (record-framing.ts): the producer's
 * answer to "was this write, whose call failed ambiguously (network error, 5xx), stored anyway?"
 * once the shard it was meant for has closed (ordered-producer.ts, resolveAmbiguous).
 *
 * It scans the shard's tail after `scanFloor` (our highest acknowledged sequence number there when
 * the ambiguous attempt was sent: a copy stored by that attempt can only be after it), then, unless
 * `laneShardOnly`, the descendants of that shard that hold the record's hash key, breadth first.
 * GetRecords failures that may pass are retried with util/retry.ts's backoff; an abort (the
 * producer failing or being aborted) ends the scan at once with the error.
 */
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { COMMON_HEADER_BYTES, recordIdOf } from './record-framing.js';
import type { ShardMap } from './shard-map.js';
import { isRetryableStreamError } from './stream-errors.js';
import { GET_RECORDS_MAX_LIMIT } from './stream-limits.js';
import { streamParams } from '../model/stream-ref.js';
import { retry, type BackoffOptions } from '../util/retry.js';

export interface StoredRecordQuery {
  /** The record's data (its id is read from the frame header). */
  data: Uint8Array;
  /** The ExplicitHashKey it was sent with. */
  hashKey: bigint;
  /** The shard it was meant for. */
  shardId: string;
  /** Per shard, scan only after this sequence number (see module comment); else from TRIM_HORIZON. */
  scanFloor: ReadonlyMap<string, bigint> | undefined;
  /** Only the shard it was meant for, not its descendants. */
  laneShardOnly?: boolean;
}

export interface StoredRecordFinderOptions {
  client: KinesisClient;
  streamName: string;
  backoff?: BackoffOptions;
  random?: () => number;
  signal?: AbortSignal;
}

/** Where the record is stored, or undefined when it is in none of the scanned shards. */
export async function findStoredRecord(
  q: StoredRecordQuery,
  map: ShardMap,
  o: StoredRecordFinderOptions,
): Promise<{ shardId: string; seq: bigint } | undefined> {
  const id = recordIdOf(q.data);
  const children = descendantsHolding(map, q.hashKey);
  const queue = [q.shardId];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const shardId = queue.shift()!;
    if (seen.has(shardId)) continue;
    seen.add(shardId);
    const seq = await scanShard(shardId, id, q.scanFloor?.get(shardId), o);
    if (seq !== undefined) return { shardId, seq };
    if (!q.laneShardOnly) queue.push(...(children.get(shardId) ?? []));
  }
  return undefined;
}

/** Parent shard id → its children whose range holds `hashKey`. */
function descendantsHolding(map: ShardMap, hashKey: bigint): Map<string, string[]> {
  const children = new Map<string, string[]>();
  for (const s of map.allShards) {
    for (const p of [s.parentShardId, s.adjacentParentShardId]) {
      if (p && s.hashKeyRange.start <= hashKey && hashKey <= s.hashKeyRange.end) children.set(p, [...(children.get(p) ?? []), s.shardId]);
    }
  }
  return children;
}

/** Reads `shardId` after `after` (or from TRIM_HORIZON) up to its tip, looking for record id `id`. */
async function scanShard(shardId: string, id: bigint, after: bigint | undefined, o: StoredRecordFinderOptions): Promise<bigint | undefined> {
  const base = { ...streamParams(o.streamName), ShardId: shardId };
  const position =
    after !== undefined
      ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER' as const, StartingSequenceNumber: after.toString() }
      : { ShardIteratorType: 'TRIM_HORIZON' as const };
  let iterator = (await o.client.send(new GetShardIteratorCommand({ ...base, ...position }), { abortSignal: o.signal })).ShardIterator;
  while (iterator) {
    const current = iterator;
    const out = await retry(() => o.client.send(new GetRecordsCommand({ ShardIterator: current, Limit: GET_RECORDS_MAX_LIMIT }), { abortSignal: o.signal }), {
      isRetryable: isRetryableStreamError,
      signal: o.signal,
      backoff: o.backoff,
      random: o.random,
    });
    const records = out.Records ?? [];
    for (const r of records) {
      if (r.Data && r.Data.length >= COMMON_HEADER_BYTES && recordIdOf(r.Data) === id) return BigInt(r.SequenceNumber!);
    }
    if (records.length === 0) return undefined;
    iterator = out.NextShardIterator ?? undefined;
  }
  return undefined;
}
