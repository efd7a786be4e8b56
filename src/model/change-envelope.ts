/**
 * The change envelope: one change-stream event as it travels through Kinesis.
 *
 * The envelope is BSON (never JSON), so every BSON type of the source documents survives the
 * trip exactly: Int32 vs Double vs Long vs Decimal128, Date, every Binary subtype, Timestamp,
 * regular expressions, MinKey/MaxKey, Code, nested documents/arrays and field order.
 *
 * For that to hold end to end:
 *  - capture must read the change stream with {@link EXACT_BSON_OPTIONS} (otherwise the driver
 *    has already turned a Double 1.0 into the JS number 1, which it would write back as Int32);
 *  - apply decodes with {@link decodeEnvelope}, which uses the same options, and hands the decoded
 *    values to the driver unchanged (the driver serialises Int32/Double/Long wrappers as such).
 *
 * Known, documented losses (all come from the bson library / driver, not from the envelope):
 *  - the deprecated BSON `undefined` type is written back as `null`;
 *  - the deprecated DBPointer type becomes a DBRef document;
 *  - a sub-document that looks like a DBRef (`$ref`, `$id`, optional `$db`) is re-ordered to
 *    `$ref, $id, $db, …` (the driver does this on every read, before the envelope exists);
 *  - dates outside JavaScript's range (±8.64e15 ms, beyond year 275760) cannot be represented.
 */
import { createHash } from 'node:crypto';
// BSON classes come from 'mongodb' (its CommonJS copy of bson), not from the ESM 'bson' entry:
// those are two module instances, so values would serialise fine but fail `instanceof` against
// what the driver returns. Use the same import everywhere in the project.
import { BSON, Timestamp, type Document } from 'mongodb';
import { DATA_OPS, DDL_OPS, ENVELOPE_VERSION, isSchemaOp, schemaDescription, type DataOp, type DdlOp, type EnvelopeOp } from './envelope-ops.js';
import { EnvelopeFormatError, isPlainDocument, isTimestamp, requireString, toNumber } from './envelope-values.js';
import { clusterTimeFromResumeToken, type EventPosition } from './event-position.js';

// The envelope's parts live in their own modules; importers keep using this one.
export { DATA_OPS, DDL_OPS, ENVELOPE_VERSION, SCHEMA_OPS, isSchemaOp, schemaDescription } from './envelope-ops.js';
export type { DataOp, DdlOp, EnvelopeOp, SchemaOp } from './envelope-ops.js';
export { EXACT_BSON_OPTIONS, EnvelopeFormatError, toNumber } from './envelope-values.js';
export { clusterTimeFromResumeToken, compareEventPosition, isAtOrBefore, positionKey, positionOf, type EventPosition } from './event-position.js';
export { decodeEnvelope, encodeEnvelope } from './envelope-codec.js';

/** A namespace: `coll` is absent only for database-level events (dropDatabase, barrier). */
export interface Namespace {
  db: string;
  coll?: string;
}
export interface CollectionNamespace {
  db: string;
  coll: string;
}

export interface TruncatedArray {
  field: string;
  newSize: number;
}

export interface UpdateDelta {
  updatedFields: Document;
  removedFields: string[];
  truncatedArrays: TruncatedArray[];
}

export interface ChangeEnvelope {
  v: typeof ENVELOPE_VERSION;
  op: EnvelopeOp;
  /** Source namespace (for a barrier: the migration's marker namespace, may be `{db: ''}`). */
  ns: Namespace;
  /** rename only: the new name. */
  to?: CollectionNamespace;
  /**
   * Schema ops only ({@link SchemaOp}): the event's `operationDescription`, as the source sent it
   * (exact BSON types: a partialFilterExpression or validator keeps its Dates, Longs, …).
   *  - create: the collection's options (`idIndex`, and `collation`, `validator`, `capped`,
   *    `clusteredIndex`, `timeseries`, … or `viewOn` + `pipeline` for a view). The manual documents
   *    `idIndex` only (https://www.mongodb.com/docs/manual/reference/change-events/create/); capture
   *    adds the options it reads from the source when the event has none (expanded-events.ts);
   *  - createIndexes / dropIndexes: `indexes`, the specs built or dropped
   *    (https://www.mongodb.com/docs/manual/reference/change-events/createIndexes/, …/dropIndexes/);
   *  - modify: what the collMod changed: `index` (name + changed properties such as
   *    `expireAfterSeconds`, `hidden`), collection options such as `validator`
   *    (https://www.mongodb.com/docs/manual/reference/change-events/modify/).
   */
  desc?: Document;
  /** Data events: the documentKey (`_id`, plus the shard key fields on a sharded source). */
  key?: Document;
  /**
   * insert/replace: the document. update: the looked-up post-image (`updateLookup`), `null` when
   * the document was deleted before the lookup, absent when the capture did not ask for it.
   */
  doc?: Document | null;
  /** update only, when `doc` is absent (or when asked to keep it): the delta. */
  upd?: UpdateDelta;
  /** clusterTime of the event. */
  ct: Timestamp;
  /** wallTime of the event (MongoDB 6.0+), informative. */
  wt?: Date;
  /** The event's resume token (`_id` of the change event), opaque. */
  rt: Document;
  /** barrier only. */
  barrier?: { id: string };
  /**
   * origin only: broadcast by capture when it starts writing, before any event. `sent`: events
   * and markers this migration's capture had already put into the stream before (from its
   * checkpoint); 0 means nothing of the migration precedes this record. Apply uses it to detect
   * a stream that lost the start of the migration (retention): see ApplyRunner's origin check.
   * Never applied; its ct/rt are zero/empty (it is no change-stream event).
   */
  origin?: { sent: number };
  /**
   * The migration the record belongs to: {@link migrationTag} of its id and nonce. Set by capture
   * since envelope v1 gained it; absent in records of earlier builds (which apply still accepts,
   * as it cannot tell whose they are). Apply ignores records tagged for another migration, so a
   * stream reused for a new migration never replays the old one over the fresh load.
   */
  mig?: string;
}

/**
 * Short stable identity of a migration for record framing: 16 hex digits of SHA-256 over its id
 * and the nonce drawn when the migration document was created (so a migration re-created under
 * the same id, e.g. on a fresh state store, gets a new tag too). No nonce (plain CDC without a
 * migration document): the id alone.
 */
export function migrationTag(migrationId: string, nonce?: string): string {
  return createHash('sha256').update(`${migrationId}\0${nonce ?? ''}`).digest('hex').slice(0, 16);
}

/**
 * Thrown by {@link envelopeFromChangeEvent} for an event that has no envelope form.
 * `kind` tells capture what to do:
 *  - `invalidate`: the stream ended (collection/database dropped or renamed under a narrow
 *    watch); reopen with `startAfter` or stop;
 *  - `ignorable`: expanded events that are not replayed (sharding, search indexes: see
 *    IGNORABLE_OPERATION_TYPES); safe to skip;
 *  - `unknown`: an operationType this version does not know; capture must stop rather than
 *    silently drop changes;
 *  - `malformed`: a known type missing required fields.
 */
export class UnsupportedChangeEventError extends Error {
  override name = 'UnsupportedChangeEventError';
  constructor(
    readonly operationType: string,
    readonly kind: 'invalidate' | 'ignorable' | 'unknown' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Expanded events not replayed: sharding is the target's own choice (the user shards the target
 * as they see fit; see README), and Atlas Search indexes exist on Atlas only. Capture logs each.
 */
export const IGNORABLE_OPERATION_TYPES: ReadonlySet<string> = new Set([
  'shardCollection',
  'reshardCollection',
  'refineCollectionShardKey',
  'createSearchIndexes',
  'dropSearchIndexes',
  'updateSearchIndex',
]);

// ---------------------------------------------------------------------------------------------
// From a driver change event

export interface EnvelopeFromEventOptions {
  /** Keep `updateDescription` even when the update carries a fullDocument (default false). */
  keepUpdateDescription?: boolean;
}

/**
 * Builds the envelope of one change event (a driver `ChangeStreamDocument`, read with
 * {@link EXACT_BSON_OPTIONS}). Throws {@link UnsupportedChangeEventError} for events without an
 * envelope form (see its `kind`); never drops a data change silently.
 */
export function envelopeFromChangeEvent(
  event: Document,
  options: EnvelopeFromEventOptions = {},
): ChangeEnvelope {
  const op = envelopeOpOf(event);
  const fail = failFor(op);

  const rt = event._id;
  if (!isPlainDocument(rt)) fail('malformed', `${op} event without a resume token (_id)`);
  let ct: Timestamp | undefined = isTimestamp(event.clusterTime) ? event.clusterTime : undefined;
  ct ??= clusterTimeFromResumeToken(rt);
  if (ct === undefined) fail('malformed', `${op} event without clusterTime`);

  const ns = event.ns as Document | undefined;
  if (!ns || typeof ns.db !== 'string') fail('malformed', `${op} event without ns.db`);
  const envelope: ChangeEnvelope = {
    v: ENVELOPE_VERSION,
    op,
    ns: op === 'dropDatabase' ? { db: ns!.db } : { db: ns!.db, coll: ns!.coll },
    ct: ct!,
    rt: rt as Document,
  };
  if (op !== 'dropDatabase' && typeof ns!.coll !== 'string') {
    fail('malformed', `${op} event without ns.coll`);
  }

  if (op === 'rename') {
    const to = event.to as Document | undefined;
    if (!to || typeof to.db !== 'string' || typeof to.coll !== 'string') {
      fail('malformed', 'rename event without to.db/to.coll');
    }
    envelope.to = { db: to!.db, coll: to!.coll };
  }

  if (isSchemaOp(op)) {
    const desc = event.operationDescription;
    if (!isPlainDocument(desc)) fail('malformed', `${op} event without operationDescription`);
    envelope.desc = schemaDescription(op, desc as Document);
  }

  if ((DATA_OPS as readonly string[]).includes(op)) addDataFields(envelope, event, op as DataOp, options);
  if (event.wallTime instanceof Date) envelope.wt = event.wallTime;
  return envelope;
}

type Fail = (kind: UnsupportedChangeEventError['kind'], msg: string) => never;

function failFor(operationType: string): Fail {
  return (kind, msg) => {
    throw new UnsupportedChangeEventError(operationType, kind, msg);
  };
}

/** The event's operation, or the UnsupportedChangeEventError saying why it has no envelope. */
function envelopeOpOf(event: Document): DataOp | DdlOp {
  const operationType = typeof event.operationType === 'string' ? event.operationType : '';
  const fail = failFor(operationType);
  if (operationType === 'invalidate') {
    fail('invalidate', 'change stream invalidated (watched collection/database dropped or renamed)');
  }
  if (IGNORABLE_OPERATION_TYPES.has(operationType)) {
    fail('ignorable', `change event '${operationType}' carries no data change`);
  }
  const isData = (DATA_OPS as readonly string[]).includes(operationType);
  const isDdl = (DDL_OPS as readonly string[]).includes(operationType);
  if (!isData && !isDdl) {
    fail(
      'unknown',
      `unsupported change event operationType '${operationType || String(event.operationType)}'; ` +
        'refusing to continue rather than lose changes',
    );
  }
  return operationType as DataOp | DdlOp;
}

/** A data event's key, document and (for an update without a document, or when asked) delta. */
function addDataFields(envelope: ChangeEnvelope, event: Document, op: DataOp, options: EnvelopeFromEventOptions): void {
  const fail = failFor(op);
  if (!isPlainDocument(event.documentKey)) fail('malformed', `${op} event without documentKey`);
  envelope.key = event.documentKey as Document;
  if (op === 'insert' || op === 'replace') {
    if (!isPlainDocument(event.fullDocument)) fail('malformed', `${op} event without fullDocument`);
    envelope.doc = event.fullDocument as Document;
  } else if (op === 'update') {
    const hasDoc = 'fullDocument' in event && event.fullDocument !== undefined;
    if (hasDoc) envelope.doc = (event.fullDocument as Document | null) ?? null;
    if (!hasDoc || options.keepUpdateDescription) {
      const ud = event.updateDescription as Document | undefined;
      if (!ud) fail('malformed', 'update event without updateDescription nor fullDocument');
      envelope.upd = updateDelta(ud!);
    }
  }
}

function updateDelta(ud: Document): UpdateDelta {
  return {
    updatedFields: (ud.updatedFields as Document | undefined) ?? {},
    removedFields: ((ud.removedFields as unknown[] | undefined) ?? []).map((f) => requireString(f, 'removedFields[]')),
    truncatedArrays: ((ud.truncatedArrays as Document[] | undefined) ?? []).map((t) => ({
      field: requireString(t.field, 'truncatedArrays[].field'),
      newSize: toNumber(t.newSize, 'truncatedArrays[].newSize'),
    })),
  };
}

/** The record capture broadcasts when it starts writing (see ChangeEnvelope.origin). */
export function originEnvelope(sent: number, mig: string): ChangeEnvelope {
  return { v: ENVELOPE_VERSION, op: 'origin', ns: { db: '' }, ct: new Timestamp({ t: 0, i: 0 }), rt: {}, origin: { sent }, mig };
}

/**
 * A barrier envelope (e.g. for cutover): no data, reported by apply when reached.
 * `position` is where it was inserted in the stream (the last event or postBatchResumeToken seen).
 */

export function barrierEnvelope(id: string, position: EventPosition, ns: Namespace = { db: '' }): ChangeEnvelope {
  return { v: ENVELOPE_VERSION, op: 'barrier', ns, ct: position.ct, rt: position.rt, barrier: { id } };
}

// ---------------------------------------------------------------------------------------------
// Routing

export function isDataEnvelope(e: ChangeEnvelope): boolean {
  return (DATA_OPS as readonly string[]).includes(e.op);
}

/** DDL and barrier envelopes go to every shard (they order against all documents). */
export function isBroadcast(e: ChangeEnvelope): boolean {
  return !isDataEnvelope(e);
}

/**
 * Canonical bytes of a document within its namespace: BSON of `{db, coll, id}` where `id` is the
 * documentKey's `_id` (its other members are shard key values, which can change when a shard key
 * value is updated; `_id` cannot). Distinct (db, coll, _id) always give distinct bytes (BSON is
 * length-prefixed, fields are separate).
 */
export function documentIdentityBytes(db: string, coll: string, key: Document): Uint8Array {
  return BSON.serialize({ db, coll, id: '_id' in key ? key._id : key });
}

/**
 * Kinesis partition key of a data envelope: sha1 hex (40 chars, ≤ 256) of the canonical bytes of
 * (ns.db, ns.coll, documentKey._id). Invariant: every event of one document gets the same key,
 * hence the same shard, hence keeps its order. Works for any `_id` type (ObjectId, string, int,
 * compound document, binary, …). Note: BSON types are part of the identity, as in the
 * envelope; the source's own events always carry the same `_id` bytes for one document.
 *
 * Returns `undefined` for DDL and barrier envelopes: they are broadcast to every shard.
 */
export function routingKey(e: ChangeEnvelope): string | undefined {
  if (!isDataEnvelope(e)) return undefined;
  if (e.key === undefined || e.ns.coll === undefined) {
    throw new EnvelopeFormatError(`${e.op} envelope without key/ns.coll cannot be routed`);
  }
  return createHash('sha1').update(documentIdentityBytes(e.ns.db, e.ns.coll, e.key)).digest('hex');
}

