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
import { classifyError, isRetryableStreamError } from './stream-errors.js';
import type { Lane, Misrouted, Plan } from './producer-lanes.js';
import type { ProducerCounters } from './producer-stats.js';
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

export interface AmbiguityContext {
  /** The new shard map. */
  map: ShardMap;
  /** Records acknowledged in another shard than expected; found ones are appended. */
  misrouted: Misrouted[];
  lanes: Iterable<Lane>;
  /** Highest sequence number of any record of the producer acknowledged per shard (updated). */
  lastSeqInShard: Map<string, bigint>;
  counters: Pick<ProducerCounters, 'resolvedAmbiguous' | 'misroutedRecords'>;
  finder: StoredRecordFinderOptions;
}

/**
 * A record whose call failed ambiguously (network error, 5xx) may have been stored anyway. While
 * its shard stays open it is simply re-sent byte for byte (readers drop the adjacent duplicate).
 * When its shard has closed, re-sending it elsewhere could replay its payloads after later ones,
 * so the producer looks for it (by record id) in the closed shard's tail and in the shards that
 * took over its ExplicitHashKey: found = treated as acknowledged there (judged like a misrouted
 * record, so appended to `misrouted`); not found = never stored, safe to re-send. Rare: needs a
 * reshard during a failure. Throws a fatal error (retrying cannot fix it); stops on abort.
 */
export async function resolveAmbiguous(ctx: AmbiguityContext): Promise<void> {
  // A retry acknowledged in another shard (misrouted) whose earlier attempt may be stored in the
  // old shard: if it is, the record counts as stored there (readers drop the later copy, which
  // repeats a parent's record id), e.g. the last chunk completing a payload in the old shard.
  for (const m of ctx.misrouted) {
    if (ctx.finder.signal?.aborted) return;
    if (!m.plan.ambiguous) continue;
    const found = await lookUp(ctx, m.plan, true);
    if (found) {
      m.shardId = found.shardId;
      m.seq = found.seq;
    }
  }
  for (const lane of ctx.lanes) {
    if (ctx.finder.signal?.aborted) return;
    const plan = lane.plan;
    if (!plan || !plan.ambiguous || ctx.map.get(lane.shard.shardId)?.open !== false) continue;
    const found = await lookUp(ctx, plan, false);
    if (found) {
      if (found.shardId !== lane.shard.shardId) ctx.counters.misroutedRecords++;
      ctx.misrouted.push({ plan, shardId: found.shardId, seq: found.seq });
    }
  }
}

/** Where the plan's record is stored (null: nowhere; undefined: could not look, it stays ambiguous). */
async function lookUp(ctx: AmbiguityContext, plan: Plan, laneShardOnly: boolean): Promise<{ shardId: string; seq: bigint } | null | undefined> {
  let found;
  try {
    const query = { data: plan.entry.Data!, hashKey: BigInt(plan.entry.ExplicitHashKey!), shardId: plan.lane.shard.shardId, scanFloor: plan.scanFloor, laneShardOnly };
    found = await findStoredRecord(query, ctx.map, ctx.finder);
  } catch (err) {
    // Could not look: the plan stays ambiguous (repartition then restarts partial chunked payloads).
    if (classifyError(err) === 'fatal') throw err;
    return undefined;
  }
  plan.ambiguous = false;
  if (!found) return null;
  ctx.counters.resolvedAmbiguous++;
  if (found.seq > (ctx.lastSeqInShard.get(found.shardId) ?? -1n)) ctx.lastSeqInShard.set(found.shardId, found.seq);
  return found;
}
