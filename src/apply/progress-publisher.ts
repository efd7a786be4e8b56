/**
 * Publishes each held shard's appliedThroughAt to its state-store document, so an orchestrator
 * whose own apply does not hold that shard (a second `migrator apply` does) can still tell when
 * it is applied (readyForCutover). Before this, a shard held by another process kept the
 * migration in CATCHING_UP for good. Best effort: a failed write is retried on the next tick.
 */
import type { LeaseKeeper } from '../state/lease-keeper.js';
import type { ApplyStateStore } from '../state/store.js';
import type { ApplyStatus } from './apply-status.js';

export class ProgressPublisher {
  private readonly publishedThrough = new Map<string, number>();
  private publishing = false;

  constructor(
    private readonly status: () => ApplyStatus,
    private readonly keeper: Pick<LeaseKeeper, 'lease'>,
    private readonly store: Pick<ApplyStateStore, 'setShardAppliedThrough'>,
  ) {}

  /** One tick (skipped while one runs). */
  async publish(): Promise<void> {
    if (this.publishing) return;
    this.publishing = true;
    try {
      for (const sh of this.status().shards) {
        const lease = sh.leased ? this.keeper.lease(sh.shardId) : undefined;
        if (!lease || sh.appliedThroughAt === undefined || sh.appliedThroughAt <= (this.publishedThrough.get(sh.shardId) ?? -1)) continue;
        await this.store.setShardAppliedThrough(lease, new Date(sh.appliedThroughAt));
        this.publishedThrough.set(sh.shardId, sh.appliedThroughAt);
      }
    } catch {
      // the next tick tries again
    } finally {
      this.publishing = false;
    }
  }
}
