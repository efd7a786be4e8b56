import type { Document, MongoClient, Timestamp } from 'mongodb';
import { EXACT_BSON_OPTIONS, clusterTimeFromResumeToken } from '../model/change-envelope.js';
import { POSITION_MARKER_COLLECTION } from '../source/capture-runner.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

/** The source collection (inside the state db) whose inserts give a stream its resume point where the server gives none. */
export const RESUME_MARKER_COLLECTION = POSITION_MARKER_COLLECTION;
const MARKER_WAIT_MS = 30_000;

/**
 * Takes a change-stream resume point on the source BEFORE any data is read: the
 * postBatchResumeToken of a fresh deployment-wide stream and its cluster time (decoded from a
 * MongoDB token, else the operation time of a command run after it). Every write that the dump
 * might miss happens after this point, so replaying the stream from here with idempotent writes
 * makes the target consistent.
 *
 * INVARIANT: never "now" silently. Amazon DocumentDB documents neither a postBatchResumeToken on
 * an empty batch nor `operationTime` in replies, and its tokens do not decode to a cluster time
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html documents
 * only resuming from an event's token or with startAtOperationTime). Where the server gives no
 * usable point, the stream is made to produce one: a marker document is inserted into
 * `<stateDb>.resume_markers` on the source after the stream opened, and the marker's own event
 * (token + clusterTime, both documented event fields) is the resume point. Every write the dump
 * can miss commits after the dump starts, which is after this event. If the marker's event does
 * not arrive, the migration stops here (preflight-class failure) rather than start from "now".
 */
export async function takeResumePoint(source: MongoClient, stateDb: string): Promise<{ ct: Timestamp; rt?: Document }> {
  const stream = source.watch([], { maxAwaitTimeMS: 1, batchSize: 1, readPreference: 'primary', ...EXACT_BSON_OPTIONS });
  try {
    const first = await stream.tryNext();
    const rt = (first ? (first._id as Document) : (stream.resumeToken as Document | undefined)) ?? undefined;
    const ping = await source.db('admin').command({ ping: 1 });
    const ct = clusterTimeFromResumeToken(rt) ?? (first?.clusterTime as Timestamp | undefined) ?? (ping.operationTime as Timestamp | undefined);
    if (rt && ct) return { ct, rt };
    return await markerResumePoint(source, stateDb, stream);
  } finally {
    await stream.close().catch(() => undefined);
  }
}

async function markerResumePoint(source: MongoClient, stateDb: string, stream: ReturnType<MongoClient['watch']>): Promise<{ ct: Timestamp; rt: Document }> {
  const markers = source.db(stateDb).collection<{ _id: string; at: Date }>(RESUME_MARKER_COLLECTION);
  const marker = { _id: `resume-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`, at: new Date() };
  try {
    await markers.insertOne(marker);
  } catch (err) {
    throw new MigratorError(ExitCode.PREFLIGHT_FAILED, `Cannot take a resume point on the source: it returned none, and writing ${stateDb}.${RESUME_MARKER_COLLECTION} failed (${errorMessage(err)}).`, {
      hint: `The source user needs readWrite on ${stateDb} (DocumentDB also needs --no-source-retry-writes).`,
      cause: err,
    });
  }
  const deadline = Date.now() + MARKER_WAIT_MS;
  try {
    while (Date.now() < deadline) {
      const ev = await stream.tryNext();
      if (ev && (ev as Document).ns?.db === stateDb && (ev as Document).ns?.coll === RESUME_MARKER_COLLECTION && (ev as Document).documentKey?._id === marker._id) {
        const ct = (ev as Document).clusterTime as Timestamp | undefined;
        if (!ct) break;
        return { ct, rt: ev._id as Document };
      }
    }
  } finally {
    await markers.deleteOne({ _id: marker._id }).catch(() => undefined);
  }
  throw new MigratorError(
    ExitCode.PREFLIGHT_FAILED,
    `Cannot take a resume point on the source: the change stream returned no resume token or operation time, and the marker written to ${stateDb}.${RESUME_MARKER_COLLECTION} did not appear in it within ${MARKER_WAIT_MS / 1000} s.`,
    {
      hint: `Enable change streams for the whole cluster (DocumentDB: db.adminCommand({modifyChangeStreams: 1, database: "", collection: "", enable: true}) or --enable-change-streams), including ${stateDb}, then rerun.`,
    },
  );
}
