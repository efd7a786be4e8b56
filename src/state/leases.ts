/**
 * Leases (see the lease protocol in store.ts): apply's one per shard (in the shard's `shards`
 * document, beside its apply checkpoint), capture's one per migration (`capture_leases`), and one
 * per initial-load unit (`load_partitions`). INVARIANT: a lease changes hands only when free or
 * expired for longer than a grace period (≥ the clock skew between processes), and every
 * hand-over bumps `epoch` (a fencing token); renewals and every fenced write match owner + epoch.
 */
import type { Collection } from 'mongodb';
import type { ShardDoc } from './shards.js';
import { COLLECTIONS, shardDocId, upsertTolerantOfRace, type StoreContext } from './store-context.js';

export interface LeaseState {
  owner: string | null;
  epoch: number;
  expiresAt: Date;
  acquiredAt?: Date;
  renewedAt?: Date;
}

/** Apply holds one lease per shard; capture one per migration (shardId 'capture'). */
export type LeaseScope = 'shard' | 'capture' | 'load';

/** A lease held by this process (a value; the database is the truth). */
export interface ShardLease {
  readonly migrationId: string;
  readonly shardId: string;
  readonly scope?: LeaseScope;
  readonly owner: string;
  readonly epoch: number;
  readonly expiresAt: Date;
  readonly ttlMs: number;
}

export const DEFAULT_LEASE_GRACE_MS = 1_000;

export function leaseRemainingMs(lease: ShardLease, now: Date = new Date()): number {
  return lease.expiresAt.getTime() - now.getTime();
}

export class Leases {
  private readonly shards: Collection<ShardDoc>;
  /** Capture's lease per migration (same document shape as `shards`, without checkpoints). */
  private readonly captureLeases: Collection<ShardDoc>;
  /** A load unit is a ShardDoc with more fields; the lease methods read and write only the ShardDoc ones. */
  private readonly loadUnits: Collection<ShardDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.shards = ctx.collection<ShardDoc>(COLLECTIONS.shards);
    this.captureLeases = ctx.collection<ShardDoc>(COLLECTIONS.captureLeases);
    this.loadUnits = ctx.collection<ShardDoc>(COLLECTIONS.loadUnits);
  }

  async ensureIndexes(): Promise<void> {
    await this.shards.createIndex({ migrationId: 1, shardId: 1 }, { unique: true, name: 'migration_shard' });
    await this.captureLeases.createIndex({ migrationId: 1 }, { unique: true, name: 'migration' });
  }

  private leaseCollection(scope: LeaseScope | undefined): Collection<ShardDoc> {
    return scope === 'capture' ? this.captureLeases : scope === 'load' ? this.loadUnits : this.shards;
  }

  private toLease(doc: ShardDoc, ttlMs: number, scope: LeaseScope | undefined): ShardLease {
    return {
      migrationId: doc.migrationId,
      shardId: doc.shardId,
      ...(scope === 'capture' || scope === 'load' ? { scope } : {}),
      owner: doc.lease.owner!,
      epoch: doc.lease.epoch,
      expiresAt: doc.lease.expiresAt,
      ttlMs,
    };
  }

  /**
   * Takes the shard's lease if it is free, already ours, or expired for more than `graceMs`
   * (steal). Atomic (one findOneAndUpdate); bumps `epoch`, so a lease value obtained earlier by
   * anyone (this owner included) can no longer renew or checkpoint. Returns null when another
   * live owner holds it. Owner ids must be unique per process incarnation.
   */
  async acquireLease(
    migrationId: string,
    shardId: string,
    owner: string,
    options: { ttlMs: number; graceMs?: number; scope?: LeaseScope },
  ): Promise<ShardLease | null> {
    const _id = shardDocId(migrationId, shardId);
    const coll = this.leaseCollection(options.scope);
    await upsertTolerantOfRace(
      () =>
        coll.updateOne(
          { _id },
          { $setOnInsert: { _id, migrationId, shardId, lease: { owner: null, epoch: 0, expiresAt: new Date(0) } } },
          { upsert: true },
        ),
      () => undefined,
    );
    const now = this.ctx.now();
    const stealBefore = new Date(now.getTime() - (options.graceMs ?? DEFAULT_LEASE_GRACE_MS));
    const doc = await coll.findOneAndUpdate(
      {
        _id,
        $or: [{ 'lease.owner': null }, { 'lease.owner': owner }, { 'lease.expiresAt': { $lt: stealBefore } }],
      },
      {
        $set: {
          'lease.owner': owner,
          'lease.expiresAt': new Date(now.getTime() + options.ttlMs),
          'lease.acquiredAt': now,
          'lease.renewedAt': now,
        },
        $inc: { 'lease.epoch': 1 },
      },
      { returnDocument: 'after' },
    );
    return doc ? this.toLease(doc, options.ttlMs, options.scope) : null;
  }

  /**
   * Extends a lease we still hold (same owner and epoch, not yet expired on our clock). Returns
   * the renewed lease, or null when it was lost: the caller must stop processing the shard.
   */
  async renewLease(lease: ShardLease): Promise<ShardLease | null> {
    const now = this.ctx.now();
    const doc = await this.leaseCollection(lease.scope).findOneAndUpdate(
      {
        _id: shardDocId(lease.migrationId, lease.shardId),
        'lease.owner': lease.owner,
        'lease.epoch': lease.epoch,
        'lease.expiresAt': { $gt: now },
      },
      { $set: { 'lease.expiresAt': new Date(now.getTime() + lease.ttlMs), 'lease.renewedAt': now } },
      { returnDocument: 'after' },
    );
    return doc ? this.toLease(doc, lease.ttlMs, lease.scope) : null;
  }

  /** The capture lease currently recorded for the migration (held or not), or null. */
  async getCaptureLease(migrationId: string): Promise<ShardLease | null> {
    const doc = await this.captureLeases.findOne({ migrationId });
    return doc?.lease.owner ? this.toLease(doc, 0, 'capture') : null; // a view to release or report, not to renew
  }

  /** Gives the lease up (if still ours), so another process can take it without waiting. */
  async releaseLease(lease: ShardLease): Promise<boolean> {
    const filter = { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch };
    if (lease.scope === 'capture') {
      // The capture lease document holds nothing but the lease (no checkpoint, and its epoch
      // fences nothing: capture checkpoints are monotonic on their own), so it goes: a capture that
      // stopped, or failed on bad input, leaves the store as it found it.
      return (await this.captureLeases.deleteOne(filter)).deletedCount === 1;
    }
    const r = await this.leaseCollection(lease.scope).updateOne(filter, { $set: { 'lease.owner': null, 'lease.expiresAt': new Date(0) } });
    return r.matchedCount === 1;
  }

  /**
   * Frees every shard lease of the migration, whoever holds it (the epoch stays, so lease values
   * of the former holders stay fenced out). Only for a caller that knows their holders are gone:
   * the embedded transport's restart, under its data-dir lock, after waiting out every lease
   * (src/transport/embedded-kinesis.ts). Returns how many leases it freed.
   */
  async freeShardLeasesOfDeadRun(migrationId: string): Promise<number> {
    const r = await this.shards.updateMany(
      { migrationId, 'lease.owner': { $ne: null } },
      { $set: { 'lease.owner': null, 'lease.expiresAt': new Date(0) } },
    );
    return r.modifiedCount;
  }
}
