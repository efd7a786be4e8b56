import type { ApplyShardStatus } from '../apply/apply-runner.js';
import type { StateStore } from '../state/store.js';

/** What readiness reads of a shard: this process's apply status, or what another apply published. */
export type ReadinessShard = Pick<ApplyShardStatus, 'state' | 'leased' | 'appliedThroughAt' | 'stalledSince'>;

/** How far behind the stream's tip apply may be and still count as caught up. */
const READY_LAG_MS = 2_000;

/**
 * READY_FOR_CUTOVER: what capture has made durable, apply has applied. The capture checkpoint
 * saved at `cp.updatedAt` covers events whose records were all in the stream by then; a shard's
 * `appliedThroughAt` is the time up to which every record in it is applied (its reader found the
 * tip, or the last applied batch's GetRecords call minus its MillisBehindLatest — never a batch
 * still being written). So every open shard must be applied through `cp.updatedAt` (less
 * READY_LAG_MS: under a steady write load a reader is rarely exactly at the tip), not stalled,
 * and capture current. Being read near the tip is not enough: a target that stops answering
 * leaves a shard read to its tip with nothing applied (it used to report READY so).
 * The cutover itself still waits for the barrier, so this only decides when to report READY.
 */
export function readyForCutover(shards: readonly ReadinessShard[], capture: { updatedAt: Date } | null, nowMs: number): boolean {
  if (!capture || nowMs - capture.updatedAt.getTime() >= 5_000) return false;
  const need = capture.updatedAt.getTime() - READY_LAG_MS;
  return (
    shards.length > 0 &&
    shards.every(
      (s) => s.state === 'ended' || (s.leased && !s.stalledSince && s.appliedThroughAt !== undefined && s.appliedThroughAt >= need),
    )
  );
}

/**
 * Every shard as readiness sees it: this process's apply status for the shards it holds or saw
 * end; for a shard another live apply process holds (`migrator apply` beside full-migrate), what
 * that process published in the shard's state-store document (appliedThroughAt, stalledSince:
 * ApplyRunner.publishProgress). Before, only this process's own leases counted, so a shard held by
 * a second apply kept the migration in CATCHING_UP, and a cutover requested then never started.
 */
export async function shardsForReadiness(
  local: readonly (ReadinessShard & Pick<ApplyShardStatus, 'shardId'>)[],
  store: StateStore,
  migrationId: string,
): Promise<ReadinessShard[]> {
  if (local.length === 0 || local.every((sh) => sh.leased || sh.state === 'ended')) return [...local];
  const now = Date.now();
  const stored = new Map((await store.listShards(migrationId)).map((d) => [d.shardId, d]));
  return local.map((sh) => {
    if (sh.leased || sh.state === 'ended') return sh;
    const d = stored.get(sh.shardId);
    if (!d?.lease.owner || d.lease.expiresAt.getTime() <= now) return sh; // nobody applies it now
    return { ...sh, leased: true, appliedThroughAt: d.appliedThroughAt?.getTime(), stalledSince: d.stalledSince };
  });
}

/** See {@link readyForCutover}: true when every shard, as {@link shardsForReadiness} sees it, is caught up. */
export async function caughtUp(local: Parameters<typeof shardsForReadiness>[0], store: StateStore, migrationId: string): Promise<boolean> {
  const shards = await shardsForReadiness(local, store, migrationId);
  if (shards.length === 0) return false;
  const cp = await store.getCaptureCheckpoint(migrationId);
  return readyForCutover(shards, cp, Date.now());
}
