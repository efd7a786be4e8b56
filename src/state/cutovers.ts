/**
 * Aggregate `cutovers`: one document per migration, the cutover request (requested / barrier sent /
 * completed / aborted), its barrier id and the shards whose apply reached the barrier marker.
 */
import type { Collection } from 'mongodb';
import { COLLECTIONS, upsertTolerantOfRace, type StoreContext } from './store-context.js';

export type CutoverState = 'requested' | 'barrier-sent' | 'completed' | 'aborted';

export interface CutoverDoc {
  _id: string;
  state: CutoverState;
  requestedAt: Date;
  updatedAt: Date;
  barrierId?: string;
  barrierSentAt?: Date;
  /** Shards whose apply reached the barrier. */
  reachedShards: string[];
  abortedAt?: Date;
  abortReason?: string;
  completedAt?: Date;
  /** The operator confirmed that applications stopped writing to the source (`cutover --writes-stopped`). */
  writesStopped?: boolean;
  /** The orchestrator blocked user writes on the source itself (setUserWriteBlockMode). */
  writesBlockedByMigrator?: boolean;
}

export class Cutovers {
  private readonly cutovers: Collection<CutoverDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.cutovers = ctx.collection<CutoverDoc>(COLLECTIONS.cutovers);
  }

  /**
   * Requests a cutover. Idempotent while one is active (requested/barrier-sent): returns it.
   * After an abort, a new request replaces the aborted one. A completed cutover stays.
   */
  async requestCutover(id: string): Promise<CutoverDoc> {
    const now = this.ctx.now();
    const fresh: CutoverDoc = { _id: id, state: 'requested', requestedAt: now, updatedAt: now, reachedShards: [] };
    const replaced = await this.cutovers.findOneAndReplace({ _id: id, state: 'aborted' }, fresh, { returnDocument: 'after' });
    if (replaced) return replaced;
    await upsertTolerantOfRace(() => this.cutovers.updateOne({ _id: id }, { $setOnInsert: fresh }, { upsert: true }), () => undefined);
    return (await this.getCutover(id))!;
  }

  getCutover(id: string): Promise<CutoverDoc | null> {
    return this.cutovers.findOne({ _id: id });
  }

  /** Records the barrier id sent through the stream (once: requested → barrier-sent). */
  async setCutoverBarrier(id: string, barrierId: string): Promise<CutoverDoc | null> {
    const now = this.ctx.now();
    const doc = await this.cutovers.findOneAndUpdate(
      { _id: id, state: 'requested' },
      { $set: { state: 'barrier-sent', barrierId, barrierSentAt: now, updatedAt: now } },
      { returnDocument: 'after' },
    );
    if (doc) return doc;
    const current = await this.getCutover(id);
    return current?.state === 'barrier-sent' && current.barrierId === barrierId ? current : null;
  }

  /** A shard's apply reached the barrier (idempotent). Returns the updated cutover document. */
  async recordBarrierReached(id: string, barrierId: string, shardId: string): Promise<CutoverDoc | null> {
    return this.cutovers.findOneAndUpdate(
      { _id: id, barrierId, state: 'barrier-sent' },
      { $addToSet: { reachedShards: shardId }, $set: { updatedAt: this.ctx.now() } },
      { returnDocument: 'after' },
    );
  }

  async completeCutover(id: string): Promise<boolean> {
    const now = this.ctx.now();
    const r = await this.cutovers.updateOne(
      { _id: id, state: 'barrier-sent' },
      { $set: { state: 'completed', completedAt: now, updatedAt: now } },
    );
    return r.matchedCount === 1;
  }

  /** Aborts an active cutover request (no-op once completed). */
  async abortCutover(id: string, reason: string): Promise<boolean> {
    const now = this.ctx.now();
    const r = await this.cutovers.updateOne(
      { _id: id, state: { $in: ['requested', 'barrier-sent'] } },
      { $set: { state: 'aborted', abortedAt: now, abortReason: reason, updatedAt: now } },
    );
    return r.matchedCount === 1;
  }

  /** Records the operator's confirmation that writes to the source have stopped (idempotent). */
  async confirmWritesStopped(id: string): Promise<boolean> {
    const r = await this.cutovers.updateOne(
      { _id: id, state: { $in: ['requested', 'barrier-sent'] } },
      { $set: { writesStopped: true, updatedAt: this.ctx.now() } },
    );
    return r.matchedCount === 1;
  }

  /**
   * Puts an active cutover back to `requested` (barrier and reached shards cleared) after the
   * migrator gave the source's writes back: a barrier sent while writes were blocked no longer
   * follows every application write, so the next run blocks again and sends a new one. Markers
   * of the old barrier that still arrive match no barrier id and change nothing.
   */
  async restartCutover(id: string): Promise<boolean> {
    const r = await this.cutovers.updateOne(
      { _id: id, state: { $in: ['requested', 'barrier-sent'] } },
      { $set: { state: 'requested', reachedShards: [], updatedAt: this.ctx.now() }, $unset: { barrierId: '', barrierSentAt: '' } },
    );
    return r.matchedCount === 1;
  }

  async setWritesBlocked(id: string, blocked: boolean): Promise<void> {
    await this.cutovers.updateOne({ _id: id }, { $set: { writesBlockedByMigrator: blocked, updatedAt: this.ctx.now() } });
  }
}
