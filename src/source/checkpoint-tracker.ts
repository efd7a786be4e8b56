import type { EventPosition } from '../model/change-envelope.js';

/**
 * Tracks which change-stream positions are safe to checkpoint.
 *
 * Every position seen is recorded with the tag of the last payload handed to the producer at or
 * before it (events that produced no payload — filtered out, or idle postBatchResumeTokens — carry
 * the previous tag). When the producer reports that every payload with tag ≤ T is accepted by
 * Kinesis, every position recorded with tag ≤ T is durable.
 *
 * Invariant: `checkpoint` is the newest position whose whole prefix of events is durable in the
 * stream; it never runs ahead of the producer's acknowledgements. Memory is bounded by the number
 * of un-acknowledged positions, which the producer's buffer bound limits.
 */
export class CheckpointTracker {
  private readonly pending: { tag: number; pos: EventPosition }[] = [];
  private durableTag = 0;
  private latest: EventPosition | undefined;
  private dirty = false;

  /** `tag` = the last payload tag sent at or before this position (0 if none yet). */
  record(tag: number, pos: EventPosition): void {
    // Tags arrive non-decreasing, so `pending` stays sorted by tag.
    this.pending.push({ tag, pos });
    this.markDurable(this.durableTag);
  }

  markDurable(tag: number): void {
    if (tag > this.durableTag) this.durableTag = tag;
    let i = 0;
    while (i < this.pending.length && this.pending[i]!.tag <= this.durableTag) i++;
    if (i > 0) {
      this.advance(this.pending[i - 1]!.pos);
      this.pending.splice(0, i);
    }
  }

  private advance(pos: EventPosition): void {
    this.latest = pos;
    this.dirty = true;
  }

  /** The newest durable position, and whether it changed since the last `takeCheckpoint`. */
  get checkpoint(): EventPosition | undefined {
    return this.latest;
  }

  /** Returns the checkpoint if it moved since the previous call, else undefined. */
  takeCheckpoint(): EventPosition | undefined {
    if (!this.dirty) return undefined;
    this.dirty = false;
    return this.latest;
  }

  get pendingCount(): number {
    return this.pending.length;
  }
}
