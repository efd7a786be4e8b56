/**
 * Capture's checkpoints: which positions are durable (CheckpointTracker) and saving the newest of
 * them in the state store, every N events or every interval, whichever comes first.
 *
 * INVARIANT: a saved checkpoint is never ahead of what Kinesis acknowledged — the tracker only
 * yields positions whose whole prefix of payloads the producer reported durable — and never moves
 * back (saves are serialized here, and the store's guard refuses a backward move). A restart
 * resumes after it and may re-send a suffix, which apply de-duplicates by position.
 */
import type { EventPosition } from '../model/change-envelope.js';
import type { CaptureStateStore } from '../state/store.js';
import { stats } from '../observability/stats.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { CheckpointTracker } from './checkpoint-tracker.js';

/** What capture reports after every checkpoint save. */
export interface CaptureProgress {
  events: number;
  markers: number;
  bytes: number;
  checkpoint?: EventPosition;
  lastEventAt?: Date;
}

export interface CheckpointerOptions {
  store: CaptureStateStore;
  migrationId: string;
  /** The counters saved with each checkpoint (updated by the caller). */
  progress: CaptureProgress;
  /** Save after this many events (default 1000)… */
  everyEvents?: number;
  /** …or this often (default 1 s). */
  intervalMs?: number;
  log: Logger;
  onProgress?: (p: CaptureProgress) => void;
}

export class CaptureCheckpointer {
  private readonly tracker = new CheckpointTracker();
  private sinceSave = 0;
  private saving: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly o: CheckpointerOptions) {
    this.timer = setInterval(() => void this.save().catch((err: unknown) => o.log.warn({ err: errorMessage(err) }, 'checkpoint save failed')), o.intervalMs ?? 1000);
  }

  /** The producer accepted every payload with a tag up to `tag` (Kinesis acknowledged them). */
  markDurable(tag: number): void {
    this.tracker.markDurable(tag);
  }

  /** An event read: `tag` is the last payload handed to the producer at or before it (see CheckpointTracker). */
  recordEvent(tag: number, pos: EventPosition): void {
    this.tracker.record(tag, pos);
    if (++this.sinceSave >= (this.o.everyEvents ?? 1000)) {
      this.sinceSave = 0;
      void this.save();
    }
  }

  /** An idle position (postBatchResumeToken): after everything read, no new payload. */
  recordIdle(tag: number, pos: EventPosition): void {
    this.tracker.record(tag, pos);
  }

  /** Saves the newest durable position if it moved (serialized with the previous saves). */
  save(): Promise<void> {
    // Serialized; the store's guard also refuses to move the checkpoint backwards. A failed save
    // (reported to its caller) does not fail the next ones: they save the position again.
    this.saving = this.saving.catch(() => undefined).then(async () => {
      const pos = this.tracker.takeCheckpoint();
      if (!pos) return;
      const p = this.o.progress;
      await this.o.store.saveCaptureCheckpoint(this.o.migrationId, pos, {
        events: p.events,
        markers: p.markers,
        bytes: p.bytes,
        lastEventAtMs: p.lastEventAt?.getTime() ?? 0,
      });
      p.checkpoint = pos;
      stats.capture.checkpoints++;
      stats.capture.lastCheckpointAtMs = Date.now();
      this.o.onProgress?.({ ...p });
    });
    return this.saving;
  }

  /** Stops the timer and waits for a save in flight (its failure is not this call's). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.saving.catch(() => undefined);
  }
}
