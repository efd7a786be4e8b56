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

/** Envelope format version. Bump when the layout changes incompatibly; decoders reject others. */
export const ENVELOPE_VERSION = 1 as const;

/**
 * BSON options that preserve every value type when reading (change stream, find) or decoding.
 * Pass them to `watch()` in capture: `coll.watch(pipeline, { ...EXACT_BSON_OPTIONS, … })`.
 */
export const EXACT_BSON_OPTIONS = {
  promoteValues: false,
  promoteLongs: false,
  promoteBuffers: false,
  bsonRegExp: true,
  useBigInt64: false,
} as const satisfies BSON.DeserializeOptions;

export type DataOp = 'insert' | 'update' | 'replace' | 'delete';
export type DdlOp = 'drop' | 'rename' | 'dropDatabase' | SchemaOp;
/**
 * Schema events of a change stream opened with `showExpandedEvents: true` (MongoDB 6.0+,
 * https://www.mongodb.com/docs/manual/reference/change-events/): a collection or view created
 * (create), indexes built (createIndexes) or dropped (dropIndexes), a collMod (modify). Each
 * carries the event's `operationDescription` in {@link ChangeEnvelope.desc}.
 */
export type SchemaOp = 'create' | 'createIndexes' | 'dropIndexes' | 'modify';
export type EnvelopeOp = DataOp | DdlOp | 'barrier' | 'origin';

export const DATA_OPS: readonly DataOp[] = ['insert', 'update', 'replace', 'delete'];
export const SCHEMA_OPS: readonly SchemaOp[] = ['create', 'createIndexes', 'dropIndexes', 'modify'];
export const DDL_OPS: readonly DdlOp[] = ['drop', 'rename', 'dropDatabase', ...SCHEMA_OPS];

export function isSchemaOp(op: string): op is SchemaOp {
  return (SCHEMA_OPS as readonly string[]).includes(op);
}

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

/** Where an event sits in the change stream: (clusterTime, resume token). */
export interface EventPosition {
  ct: Timestamp;
  rt: Document;
}

export class EnvelopeFormatError extends Error {
  override name = 'EnvelopeFormatError';
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
// Small value helpers (values may arrive as wrappers when read with promoteValues: false)

/** A number from a JS number, Int32, Double or Long (as read with `promoteValues: false`). */
export function toNumber(value: unknown, what = 'value'): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value !== null && typeof value === 'object') {
    const v = value as { _bsontype?: string; valueOf(): unknown; toNumber?: () => number };
    if (v._bsontype === 'Int32' || v._bsontype === 'Double') return Number(v.valueOf());
    if (v._bsontype === 'Long' && typeof v.toNumber === 'function') return v.toNumber();
  }
  throw new EnvelopeFormatError(`${what} is not a number`);
}

function isTimestamp(value: unknown): value is Timestamp {
  return (
    value !== null &&
    typeof value === 'object' &&
    (value as { _bsontype?: string })._bsontype === 'Timestamp'
  );
}

function isPlainDocument(value: unknown): value is Document {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    (value as { _bsontype?: string })._bsontype === undefined &&
    !(value instanceof Date) &&
    !(value instanceof Uint8Array)
  );
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new EnvelopeFormatError(`${what} must be a string`);
  return value;
}

/**
 * The clusterTime encoded at the front of a MongoDB resume token (`_data` hex KeyString starts
 * with type byte 0x82 followed by the 8-byte timestamp, big-endian: seconds then increment).
 * Used for `postBatchResumeToken`s, which come without a clusterTime. `undefined` for tokens of
 * another shape (e.g. other engines).
 */
export function clusterTimeFromResumeToken(token: Document | undefined): Timestamp | undefined {
  const data: unknown = token?._data;
  if (typeof data !== 'string' || data.length < 18 || !/^82[0-9a-fA-F]{16}/.test(data)) {
    return undefined;
  }
  const t = Number.parseInt(data.slice(2, 10), 16);
  const i = Number.parseInt(data.slice(10, 18), 16);
  return new Timestamp({ t, i });
}

// ---------------------------------------------------------------------------------------------
// Schema events

/**
 * The part of an expanded event's operationDescription that apply needs, checked: createIndexes
 * and dropIndexes need `indexes`, a non-empty array of index specs with a string `name` (and a
 * `key` document for createIndexes). Throws EnvelopeFormatError; returns the description as is.
 */
export function schemaDescription(op: SchemaOp, desc: Document): Document {
  if (op === 'createIndexes' || op === 'dropIndexes') {
    const indexes: unknown = desc.indexes;
    if (!Array.isArray(indexes) || indexes.length === 0) throw new EnvelopeFormatError(`${op} description needs a non-empty indexes array`);
    for (const spec of indexes) {
      if (!isPlainDocument(spec) || typeof spec.name !== 'string') throw new EnvelopeFormatError(`${op} description: every index needs a name`);
      if (op === 'createIndexes' && !isPlainDocument(spec.key)) throw new EnvelopeFormatError(`createIndexes description: index ${spec.name} has no key`);
    }
  }
  if (op === 'modify' && desc.index !== undefined && !isPlainDocument(desc.index)) {
    throw new EnvelopeFormatError('modify description: index must be a document');
  }
  return desc;
}

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
  const operationType = typeof event.operationType === 'string' ? event.operationType : '';
  const fail = (kind: UnsupportedChangeEventError['kind'], msg: string): never => {
    throw new UnsupportedChangeEventError(operationType, kind, msg);
  };
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
  const op = operationType as DataOp | DdlOp;

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

  if (isData) {
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
        envelope.upd = {
          updatedFields: (ud!.updatedFields as Document | undefined) ?? {},
          removedFields: ((ud!.removedFields as unknown[] | undefined) ?? []).map((f) =>
            requireString(f, 'removedFields[]'),
          ),
          truncatedArrays: ((ud!.truncatedArrays as Document[] | undefined) ?? []).map((t) => ({
            field: requireString(t.field, 'truncatedArrays[].field'),
            newSize: toNumber(t.newSize, 'truncatedArrays[].newSize'),
          })),
        };
      }
    }
  }
  if (event.wallTime instanceof Date) envelope.wt = event.wallTime;
  return envelope;
}

/**
 * A barrier envelope (e.g. for cutover): no data, reported by apply when reached.
 * `position` is where it was inserted in the stream (the last event or postBatchResumeToken seen).
 */
/** The record capture broadcasts when it starts writing (see ChangeEnvelope.origin). */
export function originEnvelope(sent: number, mig: string): ChangeEnvelope {
  return { v: ENVELOPE_VERSION, op: 'origin', ns: { db: '' }, ct: new Timestamp({ t: 0, i: 0 }), rt: {}, origin: { sent }, mig };
}

export function barrierEnvelope(id: string, position: EventPosition, ns: Namespace = { db: '' }): ChangeEnvelope {
  return { v: ENVELOPE_VERSION, op: 'barrier', ns, ct: position.ct, rt: position.rt, barrier: { id } };
}

// ---------------------------------------------------------------------------------------------
// BSON encoding

/** Encodes an envelope as BSON. Field order is fixed; absent optional fields are omitted. */
export function encodeEnvelope(e: ChangeEnvelope): Uint8Array {
  // Build in a fixed order; never serialise `undefined` members of the envelope itself (inside
  // documents the bson library's default applies: `undefined` → null, as the driver does).
  const out: Document = { v: e.v, op: e.op, ns: e.ns.coll === undefined ? { db: e.ns.db } : { db: e.ns.db, coll: e.ns.coll } };
  if (e.to !== undefined) out.to = { db: e.to.db, coll: e.to.coll };
  if (e.desc !== undefined) out.desc = e.desc;
  if (e.key !== undefined) out.key = e.key;
  if (e.doc !== undefined) out.doc = e.doc;
  if (e.upd !== undefined) {
    out.upd = {
      updatedFields: e.upd.updatedFields,
      removedFields: e.upd.removedFields,
      truncatedArrays: e.upd.truncatedArrays.map((t) => ({ field: t.field, newSize: t.newSize })),
    };
  }
  out.ct = e.ct;
  if (e.wt !== undefined) out.wt = e.wt;
  out.rt = e.rt;
  if (e.barrier !== undefined) out.barrier = { id: e.barrier.id };
  if (e.origin !== undefined) out.origin = { sent: e.origin.sent };
  if (e.mig !== undefined) out.mig = e.mig;
  return BSON.serialize(out, { checkKeys: false, serializeFunctions: false });
}

/**
 * Decodes an envelope. Document contents (`key`, `doc`, `upd.updatedFields`, `rt`) keep their
 * exact BSON types (Int32/Double/Long wrappers, BSONRegExp, Binary, …) so that writing them
 * back through the driver produces the same BSON; envelope scalars are normalised to JS values.
 */
export function decodeEnvelope(buf: Uint8Array): ChangeEnvelope {
  let raw: Document;
  try {
    raw = BSON.deserialize(buf, { ...EXACT_BSON_OPTIONS });
  } catch (err) {
    throw new EnvelopeFormatError(`not a BSON envelope: ${(err as Error).message}`);
  }
  const v = raw.v === undefined ? undefined : toNumber(raw.v, 'v');
  if (v !== ENVELOPE_VERSION) {
    throw new EnvelopeFormatError(`unsupported envelope version ${String(v)} (this build reads ${ENVELOPE_VERSION})`);
  }
  const op = requireString(raw.op, 'op');
  if (![...DATA_OPS, ...DDL_OPS, 'barrier', 'origin'].includes(op)) {
    throw new EnvelopeFormatError(`unknown envelope op '${op}'`);
  }
  const ns = raw.ns as Document | undefined;
  if (!ns) throw new EnvelopeFormatError('envelope without ns');
  if (!isTimestamp(raw.ct)) throw new EnvelopeFormatError('envelope ct must be a Timestamp');
  if (!isPlainDocument(raw.rt)) throw new EnvelopeFormatError('envelope rt must be a document');

  const e: ChangeEnvelope = {
    v: ENVELOPE_VERSION,
    op: op as EnvelopeOp,
    ns: ns.coll === undefined
      ? { db: requireString(ns.db, 'ns.db') }
      : { db: requireString(ns.db, 'ns.db'), coll: requireString(ns.coll, 'ns.coll') },
    ct: raw.ct,
    rt: raw.rt,
  };
  if (raw.to !== undefined) {
    const to = raw.to as Document;
    e.to = { db: requireString(to.db, 'to.db'), coll: requireString(to.coll, 'to.coll') };
  }
  if (raw.desc !== undefined) {
    if (!isPlainDocument(raw.desc)) throw new EnvelopeFormatError('envelope desc must be a document');
    e.desc = raw.desc;
  }
  if (raw.key !== undefined) e.key = raw.key as Document;
  if (raw.doc !== undefined) e.doc = raw.doc as Document | null;
  if (raw.upd !== undefined) {
    const u = raw.upd as Document;
    e.upd = {
      updatedFields: (u.updatedFields as Document | undefined) ?? {},
      removedFields: ((u.removedFields as unknown[] | undefined) ?? []).map((f) => requireString(f, 'upd.removedFields[]')),
      truncatedArrays: ((u.truncatedArrays as Document[] | undefined) ?? []).map((t) => ({
        field: requireString(t.field, 'upd.truncatedArrays[].field'),
        newSize: toNumber(t.newSize, 'upd.truncatedArrays[].newSize'),
      })),
    };
  }
  if (raw.wt instanceof Date) e.wt = raw.wt;
  if (raw.barrier !== undefined) e.barrier = { id: requireString((raw.barrier as Document).id, 'barrier.id') };
  if (raw.mig !== undefined) e.mig = requireString(raw.mig, 'mig');
  if (raw.origin !== undefined) e.origin = { sent: toNumber((raw.origin as Document).sent, 'origin.sent') };

  if ((DATA_OPS as readonly string[]).includes(op)) {
    if (e.ns.coll === undefined || !e.key) throw new EnvelopeFormatError(`${op} envelope needs ns.coll and key`);
    if ((op === 'insert' || op === 'replace') && !e.doc) throw new EnvelopeFormatError(`${op} envelope needs doc`);
    if (op === 'update' && e.doc === undefined && !e.upd) throw new EnvelopeFormatError('update envelope needs doc or upd');
  }
  if (op === 'rename' && (!e.to || e.ns.coll === undefined)) throw new EnvelopeFormatError('rename envelope needs ns.coll and to');
  if (op === 'drop' && e.ns.coll === undefined) throw new EnvelopeFormatError('drop envelope needs ns.coll');
  if (isSchemaOp(op)) {
    if (e.ns.coll === undefined || !e.desc) throw new EnvelopeFormatError(`${op} envelope needs ns.coll and desc`);
    try {
      schemaDescription(op, e.desc);
    } catch (err) {
      throw new EnvelopeFormatError(`${op} envelope: ${(err as Error).message}`);
    }
  }
  if (op === 'barrier' && !e.barrier) throw new EnvelopeFormatError('barrier envelope needs barrier.id');
  if (op === 'origin' && !e.origin) throw new EnvelopeFormatError('origin envelope needs origin.sent');
  return e;
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

// ---------------------------------------------------------------------------------------------
// Positions

export function positionOf(e: { ct: Timestamp; rt: Document }): EventPosition {
  return { ct: e.ct, rt: e.rt };
}

function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1;
  if (a.i !== b.i) return a.i < b.i ? -1 : 1;
  return 0;
}

function tokenData(rt: Document): string | undefined {
  return typeof rt._data === 'string' ? rt._data : undefined;
}

function tokenHex(rt: Document): string {
  return Buffer.from(BSON.serialize(rt)).toString('hex');
}

/**
 * Total order of stream positions: clusterTime first, then the resume token's `_data` (MongoDB's
 * hex KeyString, ordered like the stream for events sharing a clusterTime, e.g. one transaction).
 * Tokens without a string `_data` compare by their BSON bytes: deterministic, but not meaningful
 * for order; see {@link isAtOrBefore} for the conservative use in de-duplication.
 */
export function compareEventPosition(a: EventPosition, b: EventPosition): number {
  const byTime = compareTimestamps(a.ct, b.ct);
  if (byTime !== 0) return byTime;
  const da = tokenData(a.rt);
  const db = tokenData(b.rt);
  if (da !== undefined && db !== undefined) return da < db ? -1 : da > db ? 1 : 0;
  const ha = tokenHex(a.rt);
  const hb = tokenHex(b.rt);
  return ha < hb ? -1 : ha > hb ? 1 : 0;
}

/**
 * True when `p` is certainly at or before `last` in the stream (used to skip re-sent events).
 * When both share a clusterTime but their tokens cannot be ordered (no `_data`), only identical
 * tokens count as "at": skipping a distinct event could lose it, re-applying one is harmless.
 */
export function isAtOrBefore(p: EventPosition, last: EventPosition): boolean {
  const byTime = compareTimestamps(p.ct, last.ct);
  if (byTime !== 0) return byTime < 0;
  const dp = tokenData(p.rt);
  const dl = tokenData(last.rt);
  if (dp !== undefined && dl !== undefined) return dp <= dl;
  return tokenHex(p.rt) === tokenHex(last.rt);
}

/**
 * A string whose lexicographic order follows the stream order, for storing positions and
 * guarding writes in the database (`$lt`/`$gt` on strings work everywhere): 16 hex digits of
 * clusterTime (t then i), `/`, then the token's `_data` (empty when it has none, so positions
 * in one clusterTime without `_data` compare equal: a guard then keeps the earlier one).
 */
export function positionKey(p: EventPosition): string {
  const hex8 = (n: number) => n.toString(16).padStart(8, '0');
  return `${hex8(p.ct.t)}${hex8(p.ct.i)}/${tokenData(p.rt) ?? ''}`;
}
