/**
 * Aggregate `ttl_holds`: the target TTL indexes whose expireAfterSeconds the migration holds during
 * the sync (src/db/ttl-hold.ts), with the original value to restore at cutover.
 */
import type { Collection, Document } from 'mongodb';
import { retryTransient } from '../db/transient-retry.js';
import { COLLECTIONS, upsertTolerantOfRace, type StoreContext } from './store-context.js';

/** A target TTL index whose expireAfterSeconds the migration holds (src/db/ttl-hold.ts). */
export interface TtlHoldDoc {
  /** `${migrationId}/${db}.${coll}/${name}`. */
  _id: string;
  migrationId: string;
  /** Target namespace and index name. */
  db: string;
  coll: string;
  name: string;
  keyPattern: Document;
  /** The value the source has (the one to restore). Never the held value itself. */
  originalExpireAfterSeconds: number;
  recordedAt: Date;
  updatedAt: Date;
  /** Set once the original value is back on the target (cleared when held again). */
  restoredAt?: Date;
  /** Why the restore changed nothing (index gone, or changed by someone else). */
  restoreNote?: string;
}

export class TtlHolds {
  private readonly ttlHolds: Collection<TtlHoldDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.ttlHolds = ctx.collection<TtlHoldDoc>(COLLECTIONS.ttlHolds);
  }

  /**
   * Records (or updates) the original expireAfterSeconds of a target TTL index about to be held.
   * Called BEFORE the target is changed. Clears `restoredAt`: the index is held (again).
   */
  async recordTtlHold(
    migrationId: string,
    hold: { db: string; coll: string; name: string; keyPattern: Document; originalExpireAfterSeconds: number },
  ): Promise<void> {
    const _id = `${migrationId}/${hold.db}.${hold.coll}/${hold.name}`;
    const now = this.ctx.now();
    await upsertTolerantOfRace(
      () =>
        this.ttlHolds.updateOne(
          { _id },
          {
            $set: { migrationId, ...hold, updatedAt: now },
            $setOnInsert: { recordedAt: now },
            $unset: { restoredAt: '', restoreNote: '' },
          },
          { upsert: true },
        ),
      () => undefined,
    );
  }

  /** The migration's TTL holds, restored or not, in a stable order. */
  listTtlHolds(migrationId: string): Promise<TtlHoldDoc[]> {
    return retryTransient('ttl_holds.find', () => this.ttlHolds.find({ migrationId }).sort({ _id: 1 }).toArray(), this.ctx.retry);
  }

  /** The original value is back on the target (idempotent). */
  async markTtlRestored(id: string, note?: string): Promise<void> {
    await this.ttlHolds.updateOne({ _id: id }, { $set: { restoredAt: this.ctx.now(), updatedAt: this.ctx.now(), ...(note ? { restoreNote: note } : {}) } });
  }
}
