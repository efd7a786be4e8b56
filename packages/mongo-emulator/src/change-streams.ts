// Change streams over the change history: scope (collection / database / deployment), resume
// options, event documents shaped like MongoDB 7.0's, invalidation and the user's pipeline.
//
// Invariants:
// - `position` is the token after which the next event is read; it only moves forward, and each
//   batch reports it as `postBatchResumeToken` (an event token, an invalidate token or a
//   high-water-mark token for the latest cluster time);
// - a collection stream ends after emitting `invalidate` for a drop/rename of its collection (or
//   a dropDatabase); a database stream ends after `dropDatabase`'s invalidate;
// - resuming from a position older than the retained history fails with 286.
import { Aggregator } from 'mingo';
import { Int32, Timestamp, calculateObjectSize } from 'bson';
import { canonicalKey, isPlainObject, toView, type Doc } from './bson-values.js';
import { makeToken, parseToken, positionBefore, TokenKind, type ChangeEntry } from './change-history.js';
import { CommandError, ErrorCodes, fail } from './errors.js';
import { asMingoError, runViewPipeline } from './query.js';
import { StorageEngine } from './storage-engine.js';
import { hasEventWallTime, hasExpandedEvents, hasSplitLargeEvent, limitsChangeEventSize, type EmulatorProfile } from './profiles.js';

/** Maximum BSON document size (https://www.mongodb.com/docs/manual/reference/limits/): a change event above it fails. */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024;
/** A change-stream batch holds at most this many bytes of events (a single event always fits). */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
const SPLIT_STAGE = '$changeStreamSplitLargeEvent';

export type StreamScope = { kind: 'collection'; db: string; coll: string } | { kind: 'database'; db: string } | { kind: 'cluster' };

const FULL_DOCUMENT_MODES = new Set(['default', 'updateLookup', 'whenAvailable', 'required']);
const BEFORE_CHANGE_MODES = new Set(['off', 'whenAvailable', 'required']);
const ALLOWED_STAGES = new Set(['$match', '$project', '$addFields', '$set', '$unset', '$replaceRoot', '$replaceWith', '$redact']);
/**
 * Every aggregation stage name the server knows
 * (https://www.mongodb.com/docs/manual/reference/operator/aggregation-pipeline/): a known stage not
 * allowed in a change stream is IllegalOperation, an unknown one "Unrecognized pipeline stage
 * name" (40324), as for any pipeline.
 */
const KNOWN_STAGES = new Set([
  ...ALLOWED_STAGES, '$bucket', '$bucketAuto', '$changeStream', '$changeStreamSplitLargeEvent', '$collStats', '$count', '$currentOp',
  '$densify', '$documents', '$facet', '$fill', '$geoNear', '$graphLookup', '$group', '$indexStats', '$limit', '$listLocalSessions',
  '$listSampledQueries', '$listSearchIndexes', '$listSessions', '$lookup', '$merge', '$out', '$planCacheStats', '$querySettings',
  '$sample', '$search', '$searchMeta', '$setWindowFields', '$shardedDataDistribution', '$skip', '$sort', '$sortByCount',
  '$unionWith', '$unwind', '$vectorSearch',
]);
const EXPANDED_EVENTS = new Set(['create', 'createIndexes', 'dropIndexes', 'modify', 'shardCollection']);

export function historyLostError(context: 'aggregate' | 'getMore'): CommandError {
  const prefix = context === 'aggregate' ? 'PlanExecutor error during aggregation' : 'Executor error during getMore';
  return new CommandError(
    ErrorCodes.ChangeStreamHistoryLost,
    `${prefix} :: caused by :: Resume of change stream was not possible, as the resume point may no longer be in the oplog.`,
  );
}

export interface StreamBatch {
  events: Doc[];
  postBatchResumeToken: Doc;
  /** The stream emitted its invalidate event: the cursor closes after this batch. */
  finished: boolean;
}

export class ChangeStream {
  position: string;
  finished = false;
  private readonly pipeline: Aggregator | undefined;
  private readonly fullDocument: string;
  private readonly beforeChange: string;
  private readonly expanded: boolean;
  /** The pipeline ends with `$changeStreamSplitLargeEvent`. */
  private readonly split: boolean;

  constructor(
    private readonly engine: StorageEngine,
    readonly scope: StreamScope,
    spec: Doc,
    stages: Doc[],
    private readonly profile: EmulatorProfile,
  ) {
    // Before 6.0 the $changeStream spec has no showExpandedEvents: its strict parser refuses the
    // unknown field (code 40415), as for any unknown $changeStream option.
    if (spec.showExpandedEvents !== undefined && !hasExpandedEvents(profile)) {
      fail(ErrorCodes.Location40415, "BSON field '$changeStream.showExpandedEvents' is an unknown field.");
    }
    const splitAt = stages.findIndex((st) => isPlainObject(st) && SPLIT_STAGE in st);
    if (splitAt >= 0 && !hasSplitLargeEvent(profile)) fail(ErrorCodes.Location40324, `Unrecognized pipeline stage name: '${SPLIT_STAGE}'`);
    // "You can only have one $changeStreamSplitLargeEvent stage in your pipeline, and it must be
    // the last stage" (its page, cited in profiles.ts); the error code is undocumented.
    if (splitAt >= 0 && splitAt !== stages.length - 1) fail(ErrorCodes.BadValue, `${SPLIT_STAGE} can only appear as the final stage in the pipeline`);
    this.split = splitAt >= 0;
    if (this.split) stages = stages.slice(0, -1);
    this.fullDocument = typeof spec.fullDocument === 'string' ? spec.fullDocument : 'default';
    this.beforeChange = typeof spec.fullDocumentBeforeChange === 'string' ? spec.fullDocumentBeforeChange : 'off';
    if (!FULL_DOCUMENT_MODES.has(this.fullDocument)) fail(ErrorCodes.BadValue, `unknown full document option: '${this.fullDocument}'`);
    if (!BEFORE_CHANGE_MODES.has(this.beforeChange)) fail(ErrorCodes.BadValue, `unknown fullDocumentBeforeChange option: '${this.beforeChange}'`);
    this.expanded = spec.showExpandedEvents === true;
    for (const s of stages) {
      const name = Object.keys(s)[0];
      if (!KNOWN_STAGES.has(name)) fail(ErrorCodes.Location40324, `Unrecognized pipeline stage name: '${name}'`);
      if (!ALLOWED_STAGES.has(name)) fail(ErrorCodes.IllegalOperation, `${name} is not permitted in a $changeStream pipeline`);
    }
    try {
      this.pipeline = stages.length ? new Aggregator(stages.map((s) => toView(s) as Doc), {}) : undefined;
    } catch (err) {
      asMingoError(err);
    }
    this.position = this.startPosition(spec);
    if (engine.history.isLost(this.position)) throw historyLostError('aggregate');
  }

  private startPosition(spec: Doc): string {
    const given = ['resumeAfter', 'startAfter', 'startAtOperationTime'].filter((k) => spec[k] !== undefined);
    if (given.length > 1) fail(40674, 'Only one type of resume option is allowed, but multiple were found.');
    if (spec.startAtOperationTime !== undefined) {
      if (!(spec.startAtOperationTime instanceof Timestamp)) fail(ErrorCodes.TypeMismatch, 'startAtOperationTime must be a timestamp');
      return positionBefore(spec.startAtOperationTime);
    }
    const tokenDoc = spec.resumeAfter ?? spec.startAfter;
    if (tokenDoc !== undefined) {
      const token = parseToken(isPlainObject(tokenDoc) ? tokenDoc._data : undefined);
      if (!token) fail(ErrorCodes.InvalidResumeToken, 'Bad resume token: _data of missing or of wrong type');
      if (token.kind === TokenKind.invalidate && spec.resumeAfter !== undefined) {
        fail(
          ErrorCodes.InvalidResumeToken,
          'Attempting to resume a change stream using \'resumeAfter\' is not allowed from an invalidate notification.',
        );
      }
      return token.data;
    }
    this.engine.clock.tickIdle();
    return makeToken(this.engine.clock.current(), TokenKind.highWaterMark);
  }

  private inScope(e: ChangeEntry): boolean {
    if (EXPANDED_EVENTS.has(e.op) && !this.expanded) return false;
    // Writes to a time-series collection land in its buckets collection, a system collection
    // change streams do not report ("change streams" are unsupported on time series:
    // https://www.mongodb.com/docs/manual/core/timeseries/timeseries-limitations/).
    if (e.coll !== undefined && this.engine.collection(e.db, e.coll)?.isTimeseries) return false;
    switch (this.scope.kind) {
      case 'cluster':
        return !StorageEngine.isInternalDb(e.db) && !(e.coll ?? '').startsWith('system.');
      case 'database':
        return e.db === this.scope.db && !(e.coll ?? '').startsWith('system.');
      case 'collection':
        return e.db === this.scope.db && (e.coll === this.scope.coll || e.op === 'dropDatabase');
    }
  }

  private invalidates(e: ChangeEntry): boolean {
    if (this.scope.kind === 'collection') return e.op === 'drop' || e.op === 'rename' || e.op === 'dropDatabase';
    if (this.scope.kind === 'database') return e.op === 'dropDatabase';
    return false;
  }

  private lookup(e: ChangeEntry): Doc | null {
    const coll = e.coll === undefined ? undefined : this.engine.collection(e.db, e.coll);
    return (coll && !coll.isView && e.documentKey ? coll.byId(e.documentKey._id) : undefined) ?? null;
  }

  /** The event document for a history entry, fields in the server's order. */
  private eventDoc(e: ChangeEntry): Doc | undefined {
    if (e.op === 'dropDatabase' && this.scope.kind === 'collection') return undefined; // only invalidates
    const ev: Doc = { _id: { _data: e.token }, operationType: e.op, clusterTime: e.ts };
    if (hasEventWallTime(this.profile)) ev.wallTime = e.wall;
    const withImages = e.op === 'update' || e.op === 'replace' || e.op === 'delete';
    if (e.op === 'insert' || e.op === 'replace') ev.fullDocument = e.fullDocument;
    if (e.op === 'update' && this.fullDocument !== 'default') {
      ev.fullDocument = this.fullDocument === 'updateLookup' ? this.lookup(e) : this.image(e, e.fullDocument, this.fullDocument, 'post');
    }
    ev.ns = e.coll === undefined ? { db: e.db } : { db: e.db, coll: e.coll };
    if (this.expanded && e.uuid) ev.collectionUUID = e.uuid;
    if (e.documentKey) ev.documentKey = e.documentKey;
    if (e.updateDescription) ev.updateDescription = this.expanded ? { ...e.updateDescription, disambiguatedPaths: disambiguatedPaths(e) } : e.updateDescription;
    if (e.to) ev.to = e.to;
    if (e.operationDescription && this.expanded) ev.operationDescription = e.operationDescription;
    if (withImages && this.beforeChange !== 'off') ev.fullDocumentBeforeChange = this.image(e, e.preImage, this.beforeChange, 'pre');
    return ev;
  }

  /**
   * A pre- or post-image for `whenAvailable` / `required`: images exist only for writes to a
   * collection with `changeStreamPreAndPostImages: {enabled: true}` at the time of the write
   * (https://www.mongodb.com/docs/manual/changeStreams/#change-streams-with-document-pre--and-post-images);
   * `whenAvailable` then gives null, `required` fails the stream. The code of that failure is
   * undocumented; NoMatchingDocument (47) is what the server's message reports.
   */
  private image(e: ChangeEntry, image: Doc | undefined, mode: string, which: 'pre' | 'post'): Doc | null {
    if (e.images && image) return image;
    if (mode === 'required') {
      fail(
        47,
        `Change stream was configured to require a ${which}-image for all update, delete and replace events, but the ${which}-image was not found for event: ${e.token}`,
      );
    }
    return null;
  }

  private transform(ev: Doc): Doc | undefined {
    if (!this.pipeline) return ev;
    const out = runViewPipeline(this.pipeline, [ev])[0];
    if (out && canonicalKey(out._id) !== canonicalKey(ev._id)) {
      // The server labels this error NonResumableChangeStreamError (asserted by MongoDB's spec
      // test change-streams.json "Test server error on projecting out _id").
      throw new CommandError(
        ErrorCodes.ChangeStreamFatalError,
        'Encountered an event whose _id field, which contains the resume token, was modified by the pipeline. Modifying the _id field of an event makes it impossible to resume the stream from that point. Only transformations that retain the unmodified _id field are allowed.',
        {},
        ['NonResumableChangeStreamError'],
      );
    }
    return out;
  }

  private emitInvalidate(e: ChangeEntry, events: Doc[]): void {
    const invalidate: Doc = { _id: { _data: makeToken(e.ts, TokenKind.invalidate) }, operationType: 'invalidate', clusterTime: e.ts };
    if (hasEventWallTime(this.profile)) invalidate.wallTime = e.wall;
    this.position = (invalidate._id as Doc)._data as string;
    const shown = this.transform(invalidate);
    if (shown) events.push(shown);
    this.finished = true;
  }

  /**
   * The documents an event is returned as: itself, or — above the 16 MiB limit — its fragments
   * when the pipeline ends with $changeStreamSplitLargeEvent, else BSONObjectTooLarge (10334).
   * Fragments (documented behaviour): top-level fields in order, as many as fit in the first
   * fragment, sub-documents never split; each fragment has its own resume token and
   * `splitEvent: {fragment, of}`; a field that does not fit alone fails the stream.
   */
  private asReturned(e: ChangeEntry, shown: Doc, context: 'aggregate' | 'getMore'): Doc[] {
    if (!limitsChangeEventSize(this.profile)) return [shown];
    const size = calculateObjectSize(shown);
    if (size <= MAX_EVENT_BYTES) return [shown];
    const tooLarge = (n: number) =>
      new CommandError(
        ErrorCodes.BSONObjectTooLarge,
        `${context === 'aggregate' ? 'PlanExecutor error during aggregation' : 'Executor error during getMore'} :: caused by :: BSONObj size: ${n} (0x${n.toString(16).toUpperCase()}) is invalid. Size must be between 0 and 16793600(16MB) First element: _id: ${JSON.stringify(shown._id)}`,
      );
    if (!this.split) throw tooLarge(size);
    const groups: Doc[] = [];
    const header = (k: number) => ({ _id: { _data: makeToken(e.ts, TokenKind.event, k) }, splitEvent: { fragment: k, of: 0 } });
    let current: Doc = header(1);
    let fields = 0;
    for (const [name, value] of Object.entries(shown)) {
      if (name === '_id') continue;
      const candidate = { ...current, [name]: value };
      if (calculateObjectSize(candidate) <= MAX_EVENT_BYTES) {
        current = candidate;
        fields++;
        continue;
      }
      if (fields === 0) throw tooLarge(calculateObjectSize(candidate));
      groups.push(current);
      current = { ...header(groups.length + 1), [name]: value };
      fields = 1;
      const alone = calculateObjectSize(current);
      if (alone > MAX_EVENT_BYTES) throw tooLarge(alone);
    }
    groups.push(current);
    for (const g of groups) (g.splitEvent as Doc).of = groups.length;
    return groups;
  }

  /** Reads up to `max` events after the current position without waiting. */
  read(max: number, context: 'aggregate' | 'getMore'): StreamBatch {
    const start = this.position;
    try {
      return this.readAfterPosition(max, context);
    } catch (err) {
      // A failed batch returns nothing: the position stays where the last good batch left it.
      this.position = start;
      this.finished = false;
      throw err;
    }
  }

  private readAfterPosition(max: number, context: 'aggregate' | 'getMore'): StreamBatch {
    const history = this.engine.history;
    if (history.isLost(this.position)) throw historyLostError(context);
    const events: Doc[] = [];
    let bytes = 0;
    const full = () => events.length >= max || bytes >= MAX_BATCH_BYTES;
    /** Returns the event's documents from fragment `from` (0-based); false when the batch filled up first. */
    const emit = (e: ChangeEntry, docs: Doc[], from: number): boolean => {
      for (let k = from; k < docs.length; k++) {
        const size = calculateObjectSize(docs[k]);
        if (events.length > 0 && (full() || bytes + size > MAX_BATCH_BYTES)) return false;
        events.push(docs[k]);
        bytes += size;
        this.position = docs.length > 1 ? ((docs[k]._id as Doc)._data as string) : e.token;
      }
      return true;
    };
    const done = (): StreamBatch => ({ events, postBatchResumeToken: { _data: this.position }, finished: this.finished });
    let i = history.firstAfter(this.position);
    // Resumed from a fragment's token: the event's remaining fragments come first.
    const at = parseToken(this.position);
    if (max > 0 && at && at.kind === TokenKind.event && at.opIndex > 0) {
      const e = history.at(i - 1);
      if (e && e.token === makeToken(at.ts)) {
        const ev = this.eventDoc(e);
        const shown = ev && this.transform(ev);
        if (shown && !emit(e, this.asReturned(e, shown, context), at.opIndex)) return done();
      }
    }
    // Resumed right after an invalidating event: the invalidate comes next.
    const resumedAt = history.at(i - 1);
    if (max > 0 && resumedAt?.token === this.position && this.inScope(resumedAt) && this.invalidates(resumedAt)) {
      this.emitInvalidate(resumedAt, events);
    }
    for (; i < history.end && events.length < max && !this.finished; i++) {
      if (full()) break;
      const e = history.at(i)!;
      if (!this.inScope(e)) {
        this.position = e.token;
        continue;
      }
      const ev = this.eventDoc(e);
      const shown = ev && this.transform(ev);
      if (shown) {
        if (!emit(e, this.asReturned(e, shown, context), 0)) return done();
      } else {
        this.position = e.token;
      }
      if (this.invalidates(e)) this.emitInvalidate(e, events);
    }
    if (i >= history.end && !this.finished) {
      this.engine.clock.tickIdle();
      const hwm = makeToken(this.engine.clock.current(), TokenKind.highWaterMark);
      if (hwm > this.position) this.position = hwm;
    }
    return done();
  }

  /** True when an entry after the position exists (something to scan). */
  hasPending(): boolean {
    return this.engine.history.firstAfter(this.position) < this.engine.history.end;
  }
}

/**
 * `updateDescription.disambiguatedPaths` (showExpandedEvents, 6.1+): every changed path with a
 * numeric component or a dotted field name, as its components, array indices as int32 and field
 * names as strings (https://www.mongodb.com/docs/manual/reference/change-events/update/#path-disambiguation).
 * Components are resolved against the post-image (pre-image for removed fields).
 */
function disambiguatedPaths(e: ChangeEntry): Doc {
  const out: Doc = {};
  const d = e.updateDescription ?? {};
  const resolve = (path: string, doc: Doc | undefined): void => {
    const parts = path.split('.');
    if (!parts.slice(1).some((p) => /^\d+$/.test(p))) return;
    let node: unknown = doc;
    out[path] = parts.map((p) => {
      const isIndex = Array.isArray(node) && /^\d+$/.test(p);
      node = Array.isArray(node) ? node[Number(p)] : isPlainObject(node) ? node[p] : undefined;
      return isIndex ? new Int32(Number(p)) : p;
    });
  };
  for (const p of Object.keys(isPlainObject(d.updatedFields) ? d.updatedFields : {})) resolve(p, e.fullDocument);
  for (const p of Array.isArray(d.removedFields) ? (d.removedFields as string[]) : []) resolve(p, e.preImage);
  for (const t of Array.isArray(d.truncatedArrays) ? (d.truncatedArrays as Doc[]) : []) resolve(String(t.field), e.fullDocument);
  return out;
}

/** Parses `aggregate` with a leading $changeStream stage into a stream. */
export function openChangeStream(engine: StorageEngine, db: string, target: unknown, pipeline: Doc[], profile: EmulatorProfile): ChangeStream {
  const spec = pipeline[0].$changeStream;
  if (!isPlainObject(spec)) fail(ErrorCodes.TypeMismatch, "the $changeStream stage must be specified as an object");
  let scope: StreamScope;
  if (spec.allChangesForCluster === true) {
    if (db !== 'admin' || target !== 1) fail(ErrorCodes.InvalidOptions, "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, and with no collection name");
    scope = { kind: 'cluster' };
  } else if (typeof target === 'string') {
    if (StorageEngine.isInternalDb(db) && db !== 'config') fail(ErrorCodes.InvalidNamespace, `$changeStream may not be opened on the internal ${db} database`);
    if (target.startsWith('system.')) fail(ErrorCodes.InvalidNamespace, `$changeStream may not be opened on the internal ${db}.${target} collection`);
    const coll = engine.collection(db, target);
    if (coll?.isView) fail(ErrorCodes.CommandNotSupportedOnView, `Namespace ${db}.${target} is a view, not a collection`);
    // Time-series collections refuse change streams (timeseries-limitations page above); the
    // code is undocumented: the one a view gives, since a time-series collection is one over its buckets.
    if (coll?.isTimeseries) fail(ErrorCodes.CommandNotSupportedOnView, `Namespace ${db}.${target} is a timeseries collection`);
    scope = { kind: 'collection', db, coll: target };
  } else {
    if (StorageEngine.isInternalDb(db)) fail(ErrorCodes.InvalidNamespace, `$changeStream may not be opened on the internal ${db} database`);
    scope = { kind: 'database', db };
  }
  return new ChangeStream(engine, scope, spec, pipeline.slice(1), profile);
}
