/**
 * Resharding, the part without I/O: how the producer's lanes are rebuilt for a new shard map.
 * The producer (ordered-producer.ts) calls these with no PutRecords call in flight (its refresh
 * barrier), so every record of a closed shard has been acknowledged before anything for its keys
 * goes to the new shard.
 *
 *  1. `judgeMisrouted`: a record acknowledged in another shard than expected counts as accepted
 *     where it landed only if it satisfies the PLACEMENT RULE there (as readers will judge it,
 *     record-framing.ts `validPlacement`); otherwise its payloads are re-sent.
 *  2. `reroute`: unsent plans of shards still open stay byte for byte; plans of closed shards are
 *     dissolved; then every queued item, merged back into ADMISSION ORDER (seq), goes to the lane
 *     of the open shard now holding its key (broadcast copies are re-cut to the new shards), so
 *     per-key send order is kept across the reshard.
 */
import { validPlacement } from './record-framing.js';
import { Lane, type Item, type LargeState, type Misrouted } from './producer-lanes.js';
import type { ShardInfo, ShardMap } from './shard-map.js';

/**
 * What becomes of a misrouted record: `accept` it where it landed, `restart` its chunked payload
 * (a chunk landed in another shard than chunk 0), or `resend` its payloads.
 */
export type MisroutedVerdict = 'accept' | 'restart' | 'resend';

export function judgeMisrouted(m: Misrouted, map: ShardMap): MisroutedVerdict {
  const { plan, shardId } = m;
  const landed = map.get(shardId);
  if (landed === undefined || !validPlacement(landed.hashKeyRange, plan.span, plan.broadcast)) return 'resend';
  if (plan.large && plan.frameIndex > 0 && plan.items[0].large!.chunkShardId !== shardId) return 'restart';
  return 'accept';
}

export interface RerouteInput {
  /** The current lanes (misrouted records already judged and applied). Their items are moved out. */
  lanes: ReadonlyMap<string, Lane>;
  map: ShardMap;
  /** Highest sequence number of any record of this producer acknowledged per shard. */
  lastSeqInShard: ReadonlyMap<string, bigint>;
  /** A NEW lane for an open shard of the new map; `old` is its current lane if the shard stays open. */
  newLane: (shard: ShardInfo, old: Lane | undefined) => Lane;
  /** A new chunked-payload state (new payload id), for a broadcast copy re-cut to another range. */
  freshLarge: () => LargeState;
  /** Restarts a chunked payload from chunk 0 under a new payload id. */
  restartLarge: (item: Item) => void;
}

/** Returns the lanes of the new map's open shards, holding every item of `input.lanes`. */
export function reroute(input: RerouteInput): Map<string, Lane> {
  const { map } = input;
  const lanes = new Map<string, Lane>();
  for (const s of map.openShards) lanes.set(s.shardId, input.newLane(s, input.lanes.get(s.shardId)));
  const ambiguousDissolved = keepOrDissolvePlans(input.lanes, lanes);

  // Merge all lanes' items by admission order and route them with the new map.
  const all: Item[] = [];
  for (const lane of input.lanes.values()) all.push(...lane.take(lane.items.length));
  all.sort((a, b) => a.seq - b.seq);
  const restarted = new Set<Item>();
  /** Partially sent chunked payloads that may continue, per new lane. */
  const continuing = new Map<Lane, Item[]>();
  const place = (lane: Lane, item: Item): void => {
    const large = item.large;
    if (large && large.next > 0) {
      // A chunked payload continues only if its next chunk will be the very next record of
      // ours in the shard holding its first chunks (readers abandon it otherwise): same shard,
      // no other record of ours landed there since its last chunk, no unknown stored record.
      const sameShard = large.chunkShardId === lane.shard.shardId;
      const untouched = large.lastChunkSeq !== undefined && input.lastSeqInShard.get(lane.shard.shardId) === large.lastChunkSeq;
      if (sameShard && untouched && !ambiguousDissolved && !(lane.plan?.large && lane.plan.items[0] !== item)) {
        // It goes first in its lane: items merged in from other lanes are other keys, and no
        // broadcast can be pending before it (its chunk 0 went out after the barrier lifted).
        continuing.set(lane, [...(continuing.get(lane) ?? []), item]);
        return;
      }
      input.restartLarge(item);
      restarted.add(item);
    }
    lane.push(item);
  };
  for (const item of all) {
    if (item.broadcast) placeBroadcast(item, map, lanes, input.freshLarge, place);
    else place(lanes.get(map.shardForHashKey(item.span.start).shardId)!, item);
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
    const wasEmpty = lane.items.isEmpty();
    lane.unshift(items);
    if (wasEmpty) lane.oldestAt = performance.now();
  }
  return lanes;
}

/**
 * Unsent plans (failed ones awaiting retry, or built but not sent). A shard still open keeps its
 * plan byte for byte (a retry after an ambiguous failure must repeat the same record id so
 * readers can drop the duplicate); it receives only its own items again (its range is unchanged
 * and disjoint from every closed shard's). Plans of closed shards are dissolved: their items go
 * back to the front of their lane and are re-routed. Returns true when a dissolved record may
 * have been stored anyway: a record of ours in some shard that no chunk bookkeeping knows about.
 */
function keepOrDissolvePlans(old: ReadonlyMap<string, Lane>, lanes: ReadonlyMap<string, Lane>): boolean {
  let ambiguousDissolved = false;
  for (const lane of old.values()) {
    const plan = lane.plan;
    if (!plan) continue;
    const survivor = lanes.get(lane.shard.shardId);
    if (survivor) {
      plan.lane = survivor;
      survivor.plan = plan;
      survivor.retryAt = lane.retryAt;
    } else {
      if (plan.ambiguous) ambiguousDissolved = true;
      if (!plan.large) lane.unshift(plan.items);
    }
    lane.plan = undefined; // the old lane is discarded
  }
  return ambiguousDissolved;
}

/**
 * A broadcast copy goes to every open shard overlapping its range and covers that shard's WHOLE
 * range (the placement rule for broadcast records requires span = shard range). A merged shard
 * gets one copy (copies of one broadcast are adjacent: same seq), even when a parent already
 * holds it: the barrier makes that repeat an adjacent duplicate at worst.
 */
function placeBroadcast(
  item: Item,
  map: ShardMap,
  lanes: ReadonlyMap<string, Lane>,
  freshLarge: () => LargeState,
  place: (lane: Lane, item: Item) => void,
): void {
  const parts = map.openShardsOverlapping(item.span);
  item.entry.remaining += parts.length - 1;
  for (const { shard } of parts) {
    const lane = lanes.get(shard.shardId)!;
    if (lane.items.last()?.seq === item.seq) {
      item.entry.remaining--;
      continue;
    }
    const r = shard.hashKeyRange;
    const sameAsBefore = parts.length === 1 && r.start === item.span.start && r.end === item.span.end;
    const copy: Item = sameAsBefore ? item : { ...item, span: r, large: item.large ? freshLarge() : undefined };
    place(lane, copy);
  }
}
