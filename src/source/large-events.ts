/**
 * Change events over 16 MiB.
 *
 * MongoDB fails a change stream whose next event exceeds the 16 MiB BSON limit with
 * BSONObjectTooLarge (10334); resuming after the last event read hits the same event again, so a
 * capture that only reopens loops forever. Two ways past it:
 *
 *  - where the server has `$changeStreamSplitLargeEvent` ("New in MongoDB 7.0 (and 6.0.9)",
 *    https://www.mongodb.com/docs/manual/reference/operator/aggregation/changeStreamSplitLargeEvent/),
 *    capture ends its pipeline with it and reassembles the fragments ({@link FragmentAssembler});
 *  - elsewhere (4.4, 5.0, 6.0.0–6.0.8, other engines), and for an event that even split does not fit
 *    (one top-level field over 16 MiB), capture reopens the stream without the large fields
 *    (`$project` exclusion, allowed in change-stream pipelines:
 *    https://www.mongodb.com/docs/manual/changeStreams/#modify-change-stream-output) for a bounded
 *    window and sends the current state of each document read by `documentKey` instead
 *    ({@link SLIM_STAGE}). The current state is at least as new as the event, and apply writes full
 *    states by key, so the target converges to the same result (idempotent).
 */
import type { Document } from 'mongodb';
import { MongoErrorCode } from '../db/mongo-errors.js';

/** BSONObjectTooLarge: https://www.mongodb.com/docs/manual/reference/error-codes/ */
export const BSON_OBJECT_TOO_LARGE = MongoErrorCode.BSONObjectTooLarge;

/** Unrecognized pipeline stage name (a server without the split stage). */
const UNRECOGNIZED_STAGE = MongoErrorCode.UnrecognizedPipelineStage;

export const SPLIT_STAGE = { $changeStreamSplitLargeEvent: {} } as const;

/** Removes what makes an event large: the document images and the update description. */
export const SLIM_STAGE = { $project: { fullDocument: 0, updateDescription: 0, fullDocumentBeforeChange: 0 } } as const;

/** True for a MongoDB version that documents `$changeStreamSplitLargeEvent` (7.0+, 6.0.9+). */
export function splitLargeEventSupported(version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  if (major > 6) return true;
  return major === 6 && (minor > 0 || patch >= 9);
}

/** The server refused the split stage (it does not have it, whatever its version says). */
export function isSplitStageRefused(code: number | undefined, message: string): boolean {
  return code === UNRECOGNIZED_STAGE || /changeStreamSplitLargeEvent/.test(message);
}

/**
 * Reassembles the fragments of split events (`splitEvent: {fragment, of}`): every fragment has
 * its own resume token; the whole event takes the token of its LAST fragment, so a position
 * recorded for it resumes after the whole event, never in its middle (a stream resumed from a
 * middle fragment would return only the rest).
 */
export class FragmentAssembler {
  private parts: Document | undefined;
  private next = 0;
  private of = 0;

  /** True while fragments of an event are pending (no position may be recorded then). */
  get pending(): boolean {
    return this.parts !== undefined;
  }

  reset(): void {
    this.parts = undefined;
  }

  /** The event to process: `event` itself when not split, the whole event on its last fragment, else undefined. */
  add(event: Document): Document | undefined {
    const split = event.splitEvent as { fragment?: unknown; of?: unknown } | undefined;
    if (!split) {
      if (this.parts) throw new Error('change stream returned an event in the middle of a split event');
      return event;
    }
    const fragment = Number(split.fragment);
    const of = Number(split.of);
    if (fragment === 1) {
      this.parts = {};
      this.next = 1;
      this.of = of;
    }
    if (!this.parts || fragment !== this.next || of !== this.of) {
      throw new Error(`change stream returned split-event fragment ${fragment} of ${of} out of sequence`);
    }
    const { _id: token, splitEvent: _split, ...fields } = event;
    Object.assign(this.parts, fields);
    this.next++;
    if (fragment < of) return undefined;
    const whole: Document = { _id: token, ...this.parts };
    this.parts = undefined;
    return whole;
  }
}
