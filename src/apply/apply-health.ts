/**
 * What a running apply shows the health server and the metrics (observability/): its heartbeat,
 * its readiness, the shards it reads and whether they are caught up, the leases it holds.
 */
import { health, type ComponentState, type Heartbeat } from '../observability/health.js';
import { stats, type ApplyView, type LeaseHolderView } from '../observability/stats.js';
import type { LeaseKeeper } from '../state/lease-keeper.js';
import type { ShardStatus } from '../transport/stream-consumer.js';

export interface ApplyHealthInput {
  keeper: Pick<LeaseKeeper, 'heldShards'>;
  /** The consumer's shards (empty when no consumer runs). */
  shardStatuses: () => readonly ShardStatus[];
  stalled: (shardId: string) => boolean;
  /** Batches being applied now. */
  inFlight: () => number;
  waitingForLoad: () => boolean;
  /** Past the load gate: leases are being taken. */
  started: () => boolean;
}

/** Registers the views; returns the heartbeat and their removal. */
export function registerApplyHealth(input: ApplyHealthInput): { hb: Heartbeat; unregister: () => void } {
  const hb = health.register('apply', undefined, () => stats.kinesis.getRecordsCalls);
  const dropComponent = health.component('apply', () => readiness(input));
  const reading = () => input.shardStatuses().filter((s) => s.state === 'reading');
  const view: ApplyView = {
    shards: () =>
      reading().map((s) => ({ shardId: s.shardId, millisBehindLatest: s.millisBehindLatest, caughtUp: s.caughtUp, stalled: input.stalled(s.shardId) })),
    // Every shard this process reads is at the tip, with no batch in hand.
    caughtUp: () => {
      const r = reading();
      return r.length > 0 && input.inFlight() === 0 && r.every((s) => s.caughtUp);
    },
  };
  const held: LeaseHolderView = { kind: 'apply', heldShards: () => input.keeper.heldShards() };
  stats.live.applies.add(view);
  stats.live.leaseHolders.add(held);
  return {
    hb,
    unregister: () => {
      stats.live.applies.delete(view);
      stats.live.leaseHolders.delete(held);
      dropComponent();
      health.unregister(hb);
    },
  };
}

/** Ready while holding at least one shard lease; not while waiting for the load or standing by. */
function readiness(input: ApplyHealthInput): ComponentState {
  if (input.waitingForLoad()) return { ready: false, state: 'waiting-for-initial-load' };
  const held = input.keeper.heldShards().length;
  if (held > 0) return { ready: true, state: 'applying', detail: `${held} shard lease(s)` };
  if (!input.started()) return { ready: false, state: 'starting' };
  return { ready: false, state: 'standby', detail: 'holds no shard lease: other apply processes hold them (or --max-shards)' };
}
