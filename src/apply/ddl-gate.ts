/**
 * Cross-shard coordination of DDL for several shards (and `migrator apply` processes).
 *
 * Capture broadcasts every DDL envelope to all shards. Applying each copy on its own would be
 * wrong: shard A could drop or rename a collection while shard B still has earlier inserts for
 * it, or B could re-run a rename after A already wrote into the re-created source name.
 *
 * Protocol (state in `ddl_rendezvous`, keyed by the DDL's stream position):
 *  1. A shard reaching the DDL has applied and checkpointed everything before it (the writer
 *     calls `onProgress` before `beforeDdl`), then records its arrival.
 *  2. It waits until every shard of the stream has passed the DDL by lineage (or the DDL is
 *     already marked applied): every open shard arrived, or descends only from shards that did
 *     (shardsNotPassed, src/transport/shard-lineage.ts). A DDL copied before a split exists only
 *     in the parent: its children, created after it, hold nothing before it and never arrive.
 *  3. The executor (the smallest id among the shards that arrived) runs the DDL, then marks it
 *     applied (`afterDdl`); every other shard waits for that mark and skips its copy. Once every
 *     shard passed the DDL no other shard can arrive (no shard created since holds a copy), so
 *     every process picks the same executor.
 *  4. No shard goes past the DDL before it is applied, so nothing written after it can be
 *     undone by it. A crash of the executor between running and marking replays the DDL on
 *     restart (its checkpoint is before it), which is idempotent because nobody moved on.
 * Not handled: a merge completing while capture is writing the DDL's copies can leave one copy in
 * a parent and another in the merged child, which is read only after that parent, so the two wait
 * for each other (the wait then lasts until the lease is lost or the process stops).
 */
import { positionKey, type ChangeEnvelope } from '../model/change-envelope.js';
import type { DdlStateStore } from '../state/store.js';
import { shardsNotPassed, type ShardLineage } from '../transport/shard-lineage.js';
import { sleep } from '../util/retry.js';

export interface DdlGateOptions {
  store: DdlStateStore;
  migrationId: string;
  shardId: string;
  /** The stream's shards, open and closed, with their lineage (ListShards). */
  shards: () => readonly ShardLineage[] | Promise<readonly ShardLineage[]>;
  pollMs?: number;
  /** Abort the wait (e.g. the lease was lost or the process stops). */
  signal?: AbortSignal;
  /** Called while waiting, at most every `pollMs` (for progress/logging). */
  onWait?: (info: { ddlKey: string; arrived: readonly string[]; waitingFor: readonly string[] }) => void;
}

export interface DdlGate {
  beforeDdl(envelope: ChangeEnvelope): Promise<'apply' | 'skip'>;
  afterDdl(envelope: ChangeEnvelope): Promise<void>;
}

export function createDdlGate(options: DdlGateOptions): DdlGate {
  const pollMs = options.pollMs ?? 500;
  const { store, migrationId, shardId } = options;
  return {
    async beforeDdl(envelope) {
      const ddlKey = positionKey(envelope);
      let shards = await options.shards();
      // `shards` of the rendezvous: the open shards at the first arrival, for the record only
      let doc = await store.arriveAtDdl(
        migrationId,
        ddlKey,
        shardId,
        shards.filter((s) => s.open).map((s) => s.shardId),
      );
      for (;;) {
        if (doc.appliedAt) return 'skip';
        // INVARIANT: the DDL runs only once every shard passed it by lineage, i.e. everything
        // before it on every hash key lineage is applied (arrivals come after their checkpoint).
        const waitingFor = shardsNotPassed(shards, doc.arrived);
        if (waitingFor.length === 0 && [...doc.arrived].sort()[0] === shardId) return 'apply';
        options.onWait?.({ ddlKey, arrived: doc.arrived, waitingFor });
        // Stopped (shutdown, lease lost): the wait ends with the abort reason; the batch is replayed.
        if (!(await sleep(pollMs, options.signal))) throw options.signal?.reason ?? new Error('aborted');
        doc = (await store.getDdlRendezvous(migrationId, ddlKey))!;
        shards = await options.shards();
      }
    },
    async afterDdl(envelope) {
      await store.markDdlApplied(migrationId, positionKey(envelope), shardId);
    },
  };
}
