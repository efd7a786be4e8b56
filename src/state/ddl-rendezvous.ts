/**
 * Aggregate `ddl_rendezvous`: one document per DDL event, which shards reached it and whether it
 * was applied. A DDL is broadcast to every shard but must run once, after every shard applied what
 * precedes it, and before any shard goes past it (protocol: createDdlGate in src/apply/ddl-gate.ts).
 */
import type { Collection } from 'mongodb';
import { COLLECTIONS, upsertTolerantOfRace, type StoreContext } from './store-context.js';

export interface DdlRendezvousDoc {
  /** `${migrationId}/${positionKey of the DDL event}`. */
  _id: string;
  migrationId: string;
  /** The open shards when the first shard arrived (a record only: see src/apply/ddl-gate.ts). */
  shards: string[];
  arrived: string[];
  /** Set once the DDL ran on the target. */
  appliedAt?: Date;
  appliedBy?: string;
  createdAt: Date;
}

export class DdlRendezvous {
  private readonly ddlRendezvous: Collection<DdlRendezvousDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.ddlRendezvous = ctx.collection<DdlRendezvousDoc>(COLLECTIONS.ddlRendezvous);
  }

  /** Records that `shardId` reached the DDL at `ddlKey` (idempotent); returns the rendezvous. */
  async arriveAtDdl(migrationId: string, ddlKey: string, shardId: string, shards: readonly string[]): Promise<DdlRendezvousDoc> {
    const _id = `${migrationId}/${ddlKey}`;
    // The retry after a lost race is the same upsert, now an update: $addToSet records our arrival.
    await upsertTolerantOfRace(
      () =>
        this.ddlRendezvous.updateOne(
          { _id },
          { $setOnInsert: { migrationId, shards: [...shards].sort(), createdAt: this.ctx.now() }, $addToSet: { arrived: shardId } },
          { upsert: true },
        ),
      () => undefined,
    );
    return (await this.ddlRendezvous.findOne({ _id }))!;
  }

  getDdlRendezvous(migrationId: string, ddlKey: string): Promise<DdlRendezvousDoc | null> {
    return this.ddlRendezvous.findOne({ _id: `${migrationId}/${ddlKey}` });
  }

  /** Marks the DDL as applied on the target (first call wins; later calls are no-ops). */
  async markDdlApplied(migrationId: string, ddlKey: string, shardId: string): Promise<void> {
    await this.ddlRendezvous.updateOne(
      { _id: `${migrationId}/${ddlKey}`, appliedAt: { $exists: false } },
      { $set: { appliedAt: this.ctx.now(), appliedBy: shardId } },
    );
  }
}
