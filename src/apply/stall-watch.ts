/**
 * STALL DETECTION: a shard with a batch in hand, not waiting for other shards, and no target
 * write acknowledged for `warnMs` says so (WARN, repeated every `warnMs`; `stalledSince` in its
 * state-store document, which `status` shows); after `failMs` apply fails with APPLY_STALLED.
 * The stuck write itself ends at its write timeout (then the fence refuses the next attempt), so
 * the failure is not held up by it for longer than that. (A shard's stall is cleared by the
 * shard batch applier when its batch ends.)
 */
import type { LeaseKeeper } from '../state/lease-keeper.js';
import type { ApplyStateStore } from '../state/store.js';
import type { Logger } from '../util/logger.js';
import { stallFailure } from './apply-failures.js';
import type { ShardRun } from './shard-batch.js';

export interface StallWatchInput {
  runs: () => Iterable<ShardRun>;
  keeper: Pick<LeaseKeeper, 'lease'>;
  store: Pick<ApplyStateStore, 'setShardStall'>;
  log: Logger;
  warnMs: number;
  failMs: number;
  /** A shard stalled for `failMs`: the run fails with this error (called once per check at most). */
  fail: (shardId: string, error: Error) => void;
  /** A failure is already ending the run. */
  failing: () => boolean;
}

export async function checkStalls(input: StallWatchInput): Promise<void> {
  const now = Date.now();
  for (const run of input.runs()) {
    if (run.busySince === undefined || run.waiting) continue;
    const quietMs = now - run.busySince;
    if (quietMs < input.warnMs) continue;
    const since = new Date(run.busySince);
    if (!run.stalledSince) {
      run.stalledSince = since;
      const lease = input.keeper.lease(run.shardId);
      if (lease) await input.store.setShardStall(lease, since).catch(() => undefined);
    }
    if (now - run.lastStallWarnAt >= input.warnMs) {
      run.lastStallWarnAt = now;
      input.log.warn(
        { shardId: run.shardId, stalledForS: Math.round(quietMs / 1000), failAfterS: Math.round(input.failMs / 1000) },
        'shard stalled: the target has acknowledged no write of its batch; it may have stopped answering',
      );
    }
    if (quietMs >= input.failMs && !input.failing()) input.fail(run.shardId, stallFailure(run.shardId, quietMs, since));
  }
}
