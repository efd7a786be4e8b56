/**
 * Which shards a broadcast (a DDL envelope, a cutover barrier) must still be read from, given the
 * stream's shard lineage. Pure; used by apply's DDL gate (src/apply/ddl-gate.ts) and the cutover
 * (src/orchestration/full-migration.ts).
 *
 * Capture puts one copy of a broadcast on every shard open when the copy is written
 * (ordered-producer.ts). Resharding afterwards closes the shards that hold the copies and creates
 * children that hold none: their records all come after the broadcast. After a reshard, records
 * are routed to the children while the records already in a parent stay there, and the parent
 * stays readable (for the retention period), "Consider data routing, data persistence, and shard
 * state after a reshard" in
 * https://docs.aws.amazon.com/streams/latest/dev/kinesis-using-sdk-java-after-resharding.html ;
 * ListShards gives each child its parent (`ParentShardId`, plus `AdjacentParentShardId` for a
 * merge): https://docs.aws.amazon.com/kinesis/latest/APIReference/API_Shard.html
 *
 * INVARIANT (what "every shard passed the broadcast" means): a shard has passed it when it
 * reached the broadcast itself, or when it has parents and all of them passed it. A shard that
 * reached it held a copy, so it was open when the copy was written, so its children were created
 * after the broadcast: every record they hold comes after it (inherit). A child created before the
 * broadcast holds its own copy, and its closed parent holds none and is not needed. A broadcast has
 * been passed on the whole hash key space when every OPEN shard passed it.
 *
 * A parent no longer listed (older than the retention period) counts as not passed: the answer
 * errs towards waiting, never towards going past a broadcast that a shard has not applied.
 */

/** The lineage of one shard (a subset of ShardInfo, shard-map.ts). */
export interface ShardLineage {
  shardId: string;
  parentShardId?: string | undefined;
  adjacentParentShardId?: string | undefined;
  /** Not closed by a resharding (no EndingSequenceNumber). */
  open: boolean;
}

/**
 * The open shards that have not passed the broadcast `reached` lists (the shards that applied
 * their copy), sorted. Empty: every open shard passed it (see the invariant above).
 */
export function shardsNotPassed(shards: readonly ShardLineage[], reached: Iterable<string>): string[] {
  const byId = new Map(shards.map((s) => [s.shardId, s]));
  const reachedSet = new Set(reached);
  const memo = new Map<string, boolean>();
  const passed = (id: string, depth: number): boolean => {
    const known = memo.get(id);
    if (known !== undefined) return known;
    let result = reachedSet.has(id);
    if (!result) {
      const shard = byId.get(id);
      const parents = shard ? [shard.parentShardId, shard.adjacentParentShardId].filter((p): p is string => !!p) : [];
      // depth bound: lineage is a DAG; the bound only guards against a malformed listing
      result = parents.length > 0 && depth < 10_000 && parents.every((p) => byId.has(p) && passed(p, depth + 1));
    }
    memo.set(id, result);
    return result;
  };
  return shards
    .filter((s) => s.open && !passed(s.shardId, 0))
    .map((s) => s.shardId)
    .sort();
}
