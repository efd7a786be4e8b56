import type { ChangeStream, Document } from 'mongodb';

/**
 * `stream.tryNext()` that also caches the returned event's resume token in the driver, so the
 * driver's own automatic resume (after a resumable error) continues *after* that event.
 *
 * Why: the driver is pinned to 6.16 (the last release that connects to wire version 7, i.e.
 * DocumentDB 4.0; see README), and before 6.19 `tryNext()` did not cache resume tokens
 * (NODE-4763, fixed by mongodb/node-mongodb-native#4636): after a resumable getMore error the
 * driver resumed from the last *empty* batch's postBatchResumeToken and re-delivered every event
 * read since. This does what the fix does: the cursor's `cacheResumeToken(event._id)`, which also
 * prefers the postBatchResumeToken once the batch is drained (change-streams spec, "Updating the
 * Cached Resume Token"). The driver version is pinned (~6.16).
 */
export async function tryNextCachingToken<T extends Document>(stream: ChangeStream<Document, T>): Promise<T | null> {
  const event = await stream.tryNext();
  if (event) {
    // Optional call: stand-in streams (the benchmark's in-memory source) have no driver cursor;
    // for the real driver, test/db/change-stream-compat.test.ts fails if this stops caching.
    const cursor = (stream as unknown as { cursor?: { cacheResumeToken?: (token: unknown) => void } }).cursor;
    cursor?.cacheResumeToken?.((event as Document)._id);
  }
  return event;
}
