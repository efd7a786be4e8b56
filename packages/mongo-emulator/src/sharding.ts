// Sharded-target mode: the emulator presents a mongos (`hello.msg: 'isdbgrid'`) in front of one
// storage engine, with shard-key metadata and mongos' documented rules for writes to sharded
// collections. Chunks, shards and balancing are not modelled: what a client can observe of them
// is the routing rules below, and those are enforced.
//
// Metadata lives where clients read it: `config.collections`, one document per sharded
// collection, `{_id: 'db.coll', key, unique, lastmodEpoch, lastmod, timestamp, uuid, noBalance}`
// (https://www.mongodb.com/docs/manual/reference/config-database/#mongodb-data-config.collections).
// It is an ordinary collection of the engine, so it persists with `dbpath` like everything else.
//
// Write rules (the LESS convenient rule where versions differ; 7.0+ relaxes some of them for
// updateOne/deleteOne without a shard key, which a client that works here does not need):
//  - updateOne / replaceOne (multi: false), deleteOne (limit: 1): the filter has an equality on the
//    full shard key or on `_id` (https://www.mongodb.com/docs/v4.4/reference/method/db.collection.updateOne/#sharded-collections,
//    …/db.collection.replaceOne/#sharded-collections, …/db.collection.deleteOne/#sharded-collections);
//  - upsert: the filter has an equality on the full shard key, else ShardKeyNotFound (61)
//    (same pages: "must include the full shard key in the filter"; a missing shard key field is
//    matched with `field: null`: https://www.mongodb.com/docs/manual/core/sharding-set-missing-shard-key-fields/);
//  - findAndModify: the filter has an equality on the full shard key
//    (https://www.mongodb.com/docs/v4.4/reference/command/findAndModify/#sharded-collections);
//  - changing a document's shard key value: only as a retryable write or in a transaction, with
//    an equality on the full shard key in the filter, never with multi: true
//    (https://www.mongodb.com/docs/manual/core/sharding-change-shard-key-value/);
//  - inserts may lack shard key fields (4.4+: https://www.mongodb.com/docs/manual/core/sharding-shard-key/#missing-shard-key-fields);
//  - renameCollection of a sharded collection: from 5.0 only, within its database
//    (https://www.mongodb.com/docs/manual/reference/command/renameCollection/#sharded-collections);
//  - dropping a sharded collection removes its metadata: recreated, it is unsharded.
// Error codes other than 61 are not documented per case; 72 (InvalidOptions) is what mongos
// answers for untargetable single writes.
import { ObjectId } from 'bson';
import { canonicalKey, isPlainObject, pathValues, type Doc } from './bson-values.js';
import { ErrorCodes, fail } from './errors.js';
import { normalizeIndexSpec } from './indexes.js';
import { versionAtLeast, type EmulatorProfile } from './profiles.js';
import type { StorageEngine } from './storage-engine.js';

const CONFIG_DB = 'config';
const COLLECTIONS = 'collections';

export class Sharding {
  constructor(
    private readonly engine: StorageEngine,
    private readonly profile: EmulatorProfile,
  ) {}

  private entry(ns: string): Doc | undefined {
    const doc = this.engine.collection(CONFIG_DB, COLLECTIONS)?.byId(ns);
    return doc && doc.dropped !== true ? doc : undefined;
  }

  /** The shard key of `db.coll`, or undefined when it is not sharded. */
  keyOf(db: string, coll: string): Doc | undefined {
    const key = this.entry(`${db}.${coll}`)?.key;
    return isPlainObject(key) ? key : undefined;
  }

  /** `shardCollection`: creates the collection (and the shard key index) when needed. */
  shardCollection(ns: string, key: Doc, unique: boolean): Doc {
    const dot = ns.indexOf('.');
    if (dot <= 0 || dot === ns.length - 1) fail(ErrorCodes.InvalidNamespace, `Invalid namespace specified '${ns}'`);
    if (!isPlainObject(key) || Object.keys(key).length === 0) fail(ErrorCodes.BadValue, 'Shard key must be a non-empty object');
    const existing = this.entry(ns);
    if (existing) {
      if (canonicalKey(existing.key) === canonicalKey(key)) return { collectionsharded: ns, ok: 1 };
      fail(23, `sharding already enabled for collection ${ns} with options ${JSON.stringify({ key: existing.key })}`);
    }
    const [db, coll] = [ns.slice(0, dot), ns.slice(dot + 1)];
    const c = this.engine.writableCollection(db, coll);
    const keyString = canonicalKey(key);
    const hasIndex = c.indexes.specs().some((s) => canonicalKey(Object.fromEntries(Object.entries(s.key).slice(0, Object.keys(key).length))) === keyString);
    if (!hasIndex) {
      // "If the collection is empty, shardCollection creates the index" (shardCollection page).
      if (c.docs.size > 0) fail(ErrorCodes.InvalidOptions, 'Please create an index that starts with the proposed shard key before sharding the collection');
      this.engine.createIndex(c, normalizeIndexSpec({ key }));
    }
    const meta = this.engine.writableCollection(CONFIG_DB, COLLECTIONS);
    this.engine.insert(meta, {
      _id: ns,
      lastmodEpoch: new ObjectId(),
      lastmod: new Date(),
      timestamp: this.engine.clock.current(),
      uuid: c.uuid,
      key,
      unique,
      noBalance: false,
    });
    // The expanded `shardCollection` change event (6.0+, with showExpandedEvents):
    // https://www.mongodb.com/docs/manual/reference/change-events/shardCollection/
    this.engine.ddlEvent('shardCollection', c, { shardKey: key, unique, presplitHashedZones: false });
    return { collectionsharded: ns, ok: 1 };
  }

  /** The collection was dropped: it is no longer sharded. */
  onDrop(db: string, coll: string): void {
    const meta = this.engine.collection(CONFIG_DB, COLLECTIONS);
    const doc = meta?.byId(`${db}.${coll}`);
    if (meta && doc) this.engine.remove(meta, doc);
  }

  onDropDatabase(db: string): void {
    const meta = this.engine.collection(CONFIG_DB, COLLECTIONS);
    for (const doc of [...(meta?.docs.values() ?? [])]) if (String(doc._id).startsWith(`${db}.`)) this.engine.remove(meta!, doc);
  }

  /** Before a rename: refused where the server refuses it; the metadata follows the collection. */
  checkRename(fromDb: string, fromColl: string, toDb: string): void {
    if (!this.keyOf(fromDb, fromColl)) return;
    if (!versionAtLeast(this.profile, 5)) fail(ErrorCodes.IllegalOperation, "cannot rename a sharded collection");
    if (fromDb !== toDb) fail(ErrorCodes.IllegalOperation, 'cannot rename a sharded collection to another database');
  }

  onRename(fromDb: string, fromColl: string, toDb: string, toColl: string): void {
    const meta = this.engine.collection(CONFIG_DB, COLLECTIONS);
    const doc = meta?.byId(`${fromDb}.${fromColl}`);
    this.onDrop(toDb, toColl);
    if (!meta || !doc) return;
    this.engine.remove(meta, doc);
    this.engine.insert(meta, { ...doc, _id: `${toDb}.${toColl}`, lastmod: new Date(), timestamp: this.engine.clock.current() });
  }
}

/** An equality condition on `path` in a filter: a plain value, or `{$eq: v}`. */
function equalityOn(filter: unknown, path: string): boolean {
  if (!isPlainObject(filter) || !(path in filter)) {
    // `$and: [{…}, …]` of equalities counts too.
    return isPlainObject(filter) && Array.isArray(filter.$and) && filter.$and.some((f) => equalityOn(f, path));
  }
  const v = filter[path];
  if (isPlainObject(v)) {
    const ops = Object.keys(v).filter((k) => k.startsWith('$'));
    if (ops.length === 0) return true;
    return ops.length === 1 && ops[0] === '$eq';
  }
  return !(v instanceof RegExp) && (v as { _bsontype?: string } | null)?._bsontype !== 'BSONRegExp';
}

export function hasFullShardKey(filter: unknown, key: Doc): boolean {
  return Object.keys(key).every((f) => equalityOn(filter, f));
}

export function hasIdEquality(filter: unknown): boolean {
  return equalityOn(filter, '_id');
}

/** The shard key values of a document (missing fields count as null, as in chunk ranges). */
export function shardKeyValues(doc: Doc, key: Doc): string {
  return canonicalKey(Object.keys(key).map((f) => pathValues(doc, f.split('.'))[0] ?? null));
}

export function untargetable(kind: 'update' | 'delete'): never {
  fail(
    ErrorCodes.InvalidOptions,
    `A single ${kind} on a sharded collection must contain an exact match on _id (and have the collection default collation) or contain the shard key (and have the simple collation).`,
  );
}

export function upsertWithoutShardKey(ns: string, key: Doc): never {
  fail(ErrorCodes.ShardKeyNotFound, `Failed to target upsert by query :: could not extract exact shard key from query for ${ns} with shard key ${JSON.stringify(key)}`);
}

/** `db.coll:field[,field2]` → {'db.coll': {field: 1, field2: 1}}. */
export function parseShardKeys(specs: string[] | undefined): Record<string, Record<string, unknown>> | undefined {
  if (!specs) return undefined;
  const out: Record<string, Record<string, unknown>> = {};
  for (const spec of specs) {
    const m = /^([^.:]+\.[^:]+):(.+)$/.exec(spec);
    if (!m) throw new Error(`a shard key is db.coll:field[,field2], not '${spec}'`);
    out[m[1]!] = Object.fromEntries(m[2]!.split(',').map((f) => [f, 1]));
  }
  return out;
}
