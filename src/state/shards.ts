/**
 * Aggregate `shards`: one document per (migration, Kinesis shard) holding the shard's LEASE
 * (leases.ts) and its APPLY CHECKPOINT in the same document, so a checkpoint write can be made
 * conditional on still holding the lease in one atomic update.
 *
 * INVARIANT: an apply checkpoint is only written by the current lease holder (owner + epoch, lease
 * not expired) and never moves backwards (saveApplyCheckpoint); the caller writes it only after
 * the target acknowledged the writes it covers. The one exception is
 * rewindApplyCheckpointForNewStream (the embedded transport's restart), whose comment says why.
 */
import type { Collection, Document, Timestamp } from 'mongodb';
import { positionKey, type EventPosition } from '../model/change-envelope.js';
import { retryTransient } from '../db/transient-retry.js';
import type { Counters } from './capture-checkpoints.js';
import type { LeaseState, ShardLease } from './leases.js';
import { COLLECTIONS, sequenceKey, shardDocId, type StoreContext } from './store-context.js';

/**
 * The transport's position in a shard (src/transport/shard-reader.ts ShardCheckpoint), stored
 * whole and handed back as it was saved: apply passes it through. The store reads only the
 * sequence number (its never-backwards guard).
 */
export interface StreamCheckpoint {
  sequenceNumber: string;
  /** The shard is closed (resharding) and fully applied. */
  shardEnded?: boolean;
  /**
   * Set with `shardEnded`: the last record id per producer in the shard (hex). A child shard's
   * reader, started by any process later, drops the duplicate of a write retried after the shard
   * closed with them (src/transport/shard-record-assembler.ts, seedRecordIds).
   */
  lastRecordIds?: string[];
}

export interface ApplyCheckpoint {
  sequenceNumber: string;
  /** Zero-padded sequence number (lexicographic = numeric order), used by the guard. */
  seqKey: string;
  /** Last applied (clusterTime, token): envelopes at or before it are skipped on replay. */
  ct?: Timestamp;
  rt?: Document;
  pos?: string;
  counters: Counters;
  /** The shard is closed (resharding) and fully applied. */
  shardEnded: boolean;
  /** See StreamCheckpoint.lastRecordIds. Absent in checkpoints saved before it was kept. */
  lastRecordIds?: string[];
  at: Date;
  epoch: number;
}

export interface ShardDoc {
  _id: string;
  migrationId: string;
  shardId: string;
  lease: LeaseState;
  checkpoint?: ApplyCheckpoint;
  /** Set by the lease holder while the shard has work in hand and the target acknowledges none of it; cleared by progress. */
  stalledSince?: Date;
  /**
   * Published by the lease holder (about every second): the time up to which every record of the
   * shard is applied (ApplyShardStatus.appliedThroughAt). The orchestrator reads it for shards other
   * apply processes hold, to decide READY_FOR_CUTOVER (src/orchestration/full-migration.ts).
   */
  appliedThroughAt?: Date;
}

export type CheckpointWriteResult = 'saved' | 'lease-lost' | 'stale';

/** Sequence number of a checkpoint at the start of a shard (TRIM_HORIZON; apply's START_OF_SHARD_SEQUENCE). */
export const START_OF_SHARD = '0';

export class ApplyCheckpoints {
  private readonly shards: Collection<ShardDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.shards = ctx.collection<ShardDoc>(COLLECTIONS.shards);
  }

  /**
   * Saves the shard's apply checkpoint, atomically conditional on (a) still holding the lease:
   * same owner, same epoch, not expired; and (b) not moving backwards: the stored sequence
   * number is ≤ the new one. Call it only after the target acknowledged the covered writes.
   * `'lease-lost'`: stop processing the shard; `'stale'`: the checkpoint would regress (a bug).
   */
  async saveApplyCheckpoint(
    lease: ShardLease,
    checkpoint: StreamCheckpoint & { position?: EventPosition; counters?: Counters },
  ): Promise<CheckpointWriteResult> {
    const now = this.ctx.now();
    const _id = shardDocId(lease.migrationId, lease.shardId);
    const seqKey = sequenceKey(checkpoint.sequenceNumber);
    const cp: ApplyCheckpoint = {
      sequenceNumber: checkpoint.sequenceNumber,
      seqKey,
      counters: checkpoint.counters ?? {},
      shardEnded: checkpoint.shardEnded ?? false,
      at: now,
      epoch: lease.epoch,
    };
    // Kept whole (see StreamCheckpoint): a child shard's reader in another process needs them.
    if (checkpoint.lastRecordIds !== undefined) cp.lastRecordIds = [...checkpoint.lastRecordIds];
    if (checkpoint.position) {
      cp.ct = checkpoint.position.ct;
      cp.rt = checkpoint.position.rt;
      cp.pos = positionKey(checkpoint.position);
    }
    const held = { _id, 'lease.owner': lease.owner, 'lease.epoch': lease.epoch, 'lease.expiresAt': { $gt: now } };
    const r = await this.shards.updateOne(
      { ...held, $or: [{ checkpoint: { $exists: false } }, { 'checkpoint.seqKey': { $lte: seqKey } }] },
      { $set: { checkpoint: cp }, $unset: { stalledSince: '' } }, // a checkpoint is progress
    );
    if (r.matchedCount === 1) return 'saved';
    return (await this.shards.countDocuments(held)) === 1 ? 'stale' : 'lease-lost';
  }

  /**
   * Publishes how far the shard is applied, while `lease` is still held (owner and epoch fenced, so
   * a former holder cannot write over its successor). Never moves backwards ($max).
   */
  async setShardAppliedThrough(lease: ShardLease, at: Date): Promise<void> {
    const filter = { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch };
    await this.shards.updateOne(filter, { $max: { appliedThroughAt: at } });
  }

  /** Records (a Date) or clears (null) that the shard stalled, while `lease` is still held. */
  async setShardStall(lease: ShardLease, since: Date | null): Promise<void> {
    const filter = { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch };
    await this.shards.updateOne(filter, since ? { $set: { stalledSince: since } } : { $unset: { stalledSince: '' } });
  }

  /** The shard's apply checkpoint with its last applied position, if any. */
  async getApplyCheckpoint(
    migrationId: string,
    shardId: string,
  ): Promise<(ApplyCheckpoint & { position?: EventPosition }) | null> {
    const doc = await this.shards.findOne({ _id: shardDocId(migrationId, shardId) });
    if (!doc?.checkpoint) return null;
    const cp = doc.checkpoint;
    return cp.ct && cp.rt ? { ...cp, position: { ct: cp.ct, rt: cp.rt } } : { ...cp };
  }

  listShards(migrationId: string): Promise<ShardDoc[]> {
    return retryTransient('shards.find', () => this.shards.find({ migrationId }).sort({ shardId: 1 }).toArray(), this.ctx.retry);
  }

  /**
   * THE ONE WRITE THAT MAY MOVE AN APPLY CHECKPOINT BACKWARDS (saveApplyCheckpoint never does), and
   * without the lease: for the embedded transport's restart onto a new, empty stream only
   * (src/transport/embedded-kinesis.ts restartFromTarget, under its data-dir lock, leases freed).
   * The old stream's sequence numbers mean nothing on the new one, so the checkpoint keeps only
   * `position` (the last position every shard applied) at the start of the shard, and the counters;
   * null removes the checkpoint (nothing applied yet: the shard starts from scratch). The epoch is
   * kept, so lease values of the dead run stay fenced out.
   */
  async rewindApplyCheckpointForNewStream(migrationId: string, shardId: string, position: (EventPosition & { pos?: string }) | null): Promise<void> {
    const _id = shardDocId(migrationId, shardId);
    if (!position) {
      await this.shards.updateOne({ _id }, { $unset: { checkpoint: '' } });
      return;
    }
    const d = await this.shards.findOne({ _id });
    if (!d) return;
    const checkpoint: ApplyCheckpoint = {
      sequenceNumber: START_OF_SHARD,
      seqKey: sequenceKey(START_OF_SHARD),
      ct: position.ct,
      rt: position.rt,
      pos: position.pos ?? positionKey(position),
      counters: d.checkpoint?.counters ?? {},
      shardEnded: false,
      at: this.ctx.now(),
      epoch: d.lease.epoch,
    };
    await this.shards.updateOne({ _id }, { $set: { checkpoint } });
  }

  /** Removes a shard's document: the embedded restart's new stream has no such shard (it would pin later restarts to its old position). */
  async forgetShardOfOldStream(migrationId: string, shardId: string): Promise<void> {
    await this.shards.deleteOne({ _id: shardDocId(migrationId, shardId) });
  }
}
