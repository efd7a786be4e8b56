import type { Document, MongoClient, Timestamp } from 'mongodb';
import { EXACT_BSON_OPTIONS, clusterTimeFromResumeToken } from '../source/change-envelope.js';

/**
 * Takes a change-stream resume point on the source BEFORE any data is read: the
 * postBatchResumeToken of a fresh deployment-wide stream and the operation time of a command run
 * after it. Every write that the dump might miss happens after this point, so replaying the stream
 * from here with idempotent writes makes the target consistent.
 */
export async function takeResumePoint(source: MongoClient): Promise<{ ct: Timestamp; rt?: Document }> {
  const stream = source.watch([], { maxAwaitTimeMS: 1, batchSize: 1, ...EXACT_BSON_OPTIONS });
  try {
    // An empty first batch still carries postBatchResumeToken.
    const first = await stream.tryNext();
    const rt = (first ? (first._id as Document) : (stream.resumeToken as Document | undefined)) ?? undefined;
    const ping = await source.db('admin').command({ ping: 1 });
    const ct = clusterTimeFromResumeToken(rt) ?? (ping.operationTime as Timestamp);
    return rt ? { ct, rt } : { ct };
  } finally {
    await stream.close().catch(() => undefined);
  }
}
