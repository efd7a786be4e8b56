/**
 * Aggregate `capture_checkpoints`: one document per migration, capture's resume token +
 * clusterTime + counters. INVARIANT: the stored position never moves backwards
 * (saveCaptureCheckpoint), except through rewindCaptureCheckpointForNewStream, whose comment says
 * why it may.
 */
import type { Collection, Document, Timestamp } from 'mongodb';
import { positionKey, type EventPosition } from '../model/change-envelope.js';
import { COLLECTIONS, upsertTolerantOfRace, type StoreContext } from './store-context.js';

export type Counters = Record<string, number>;

export interface CaptureCheckpointDoc {
  _id: string;
  ct: Timestamp;
  rt: Document;
  /** positionKey(ct, rt): the order-preserving string the guard compares. */
  pos: string;
  counters: Counters;
  updatedAt: Date;
}

export class CaptureCheckpoints {
  private readonly captureCheckpoints: Collection<CaptureCheckpointDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.captureCheckpoints = ctx.collection<CaptureCheckpointDoc>(COLLECTIONS.captureCheckpoints);
  }

  /**
   * Saves the capture checkpoint if it is AFTER the stored one. Invariant: the stored position
   * never decreases. The update matches only a stored `pos` strictly smaller than the new one;
   * when a document with a larger-or-equal `pos` exists, the filter misses, the upsert's insert
   * collides on `_id`, and nothing is written. Returns true when the checkpoint advanced.
   */
  async saveCaptureCheckpoint(id: string, position: EventPosition, counters: Counters = {}): Promise<boolean> {
    const pos = positionKey(position);
    // A first E11000 can also be a lost creation race (the other writer's pos may be smaller than
    // ours): the retry then advances it. A second one means the stored pos is ≥ ours.
    return upsertTolerantOfRace(
      async () => {
        const r = await this.captureCheckpoints.updateOne(
          { _id: id, pos: { $lt: pos } },
          { $set: { ct: position.ct, rt: position.rt, pos, counters, updatedAt: this.ctx.now() } },
          { upsert: true },
        );
        return r.matchedCount + r.upsertedCount > 0;
      },
      () => false,
    );
  }

  getCaptureCheckpoint(id: string): Promise<CaptureCheckpointDoc | null> {
    return this.captureCheckpoints.findOne({ _id: id });
  }

  /**
   * THE ONE WRITE THAT MAY MOVE THE CAPTURE CHECKPOINT BACKWARDS (saveCaptureCheckpoint never
   * does): overwrites it with `position`, keeping the counters. Only for the embedded transport's
   * restart onto a new, empty stream (src/transport/embedded-kinesis.ts restartFromTarget): the
   * checkpoint says "everything up to here is in the stream", and that stream is gone, so the only
   * true statement left is about the target (the last position applied by every shard). Changes
   * read again from there are de-duplicated by apply (by position).
   */
  async rewindCaptureCheckpointForNewStream(id: string, position: EventPosition & { pos?: string }): Promise<void> {
    const current = await this.getCaptureCheckpoint(id);
    const doc = {
      ct: position.ct,
      rt: position.rt,
      pos: position.pos ?? positionKey(position),
      counters: current?.counters ?? {},
      updatedAt: this.ctx.now(),
    };
    await upsertTolerantOfRace(() => this.captureCheckpoints.replaceOne({ _id: id }, doc, { upsert: true }), () => undefined);
  }

  /**
   * Removes the capture checkpoint, so capture starts over from the migration's resume point. Also
   * a move backwards, for the same embedded restart only (see rewindCaptureCheckpointForNewStream):
   * nothing was applied yet, and the resume point precedes every change not on the target.
   */
  async dropCaptureCheckpointForNewStream(id: string): Promise<void> {
    await this.captureCheckpoints.deleteOne({ _id: id });
  }
}
