// Catalog and storage: databases, collections (and views), their documents and indexes, plus the
// change history every write feeds.
//
// Invariants:
// - every state change is a `Mutation`; `commit` applies a group of them to memory and then
//   appends them to the journal (when persistent) before the command is acknowledged; replay on
//   start applies the same records, so memory after a restart equals memory before it;
// - validation (duplicate keys, namespace checks) happens before `commit`, so a committed
//   mutation always applies;
// - `Collection.docs` is keyed by the canonical _id (numeric types unified) and iterates in
//   insertion order (natural order); stored documents are never mutated in place (updates store
//   a new object), so documents handed to cursors stay stable snapshots.
import { Binary, ObjectId, Timestamp, UUID } from 'bson';
import { canonicalKey, isNumeric, isPlainObject, pathValues, toNumber, type Doc } from './bson-values.js';
import { ChangeHistory, ClusterClock, makeToken, type ChangeEntry } from './change-history.js';
import { CommandError, ErrorCodes, fail } from './errors.js';
import { IndexSet, ID_INDEX_NAME, type IndexSpec } from './indexes.js';
import { OrderedIdIndex } from './id-index.js';
import { Journal } from './persistence.js';
import { ensureIdFirst, type UpdateOutcome } from './update-engine.js';
import type { UpdateDescription } from './doc-diff.js';

export class Collection {
  readonly docs = new Map<string, Doc>();
  /** The `_id`s of `docs` in BSON order (id-index.ts), kept with `docs` by every mutation. */
  readonly idIndex = new OrderedIdIndex();
  readonly indexes: IndexSet;

  constructor(
    public db: string,
    public name: string,
    readonly uuid: Binary,
    public options: Doc,
  ) {
    this.indexes = new IndexSet(() => this.ns);
  }

  get ns(): string {
    return `${this.db}.${this.name}`;
  }

  get isView(): boolean {
    return typeof this.options.viewOn === 'string';
  }

  /** A time-series collection (`create` with `timeseries`, MongoDB 5.0+). */
  get isTimeseries(): boolean {
    return isPlainObject(this.options.timeseries);
  }

  byId(id: unknown): Doc | undefined {
    return this.docs.get(canonicalKey(id));
  }
}

type Mutation =
  | { m: 'createColl'; db: string; coll: string; uuid: Binary; options: Doc }
  | { m: 'dropColl'; db: string; coll: string }
  | { m: 'renameColl'; db: string; coll: string; toDb: string; toColl: string }
  | { m: 'collMod'; db: string; coll: string; options: Doc }
  | { m: 'createIndex'; db: string; coll: string; spec: IndexSpec }
  | { m: 'dropIndex'; db: string; coll: string; name: string }
  | { m: 'put'; db: string; coll: string; doc: Doc }
  | { m: 'del'; db: string; coll: string; id: unknown }
  | { m: 'event'; e: ChangeEntry }
  | { m: 'historyLost'; through: string }
  | { m: 'clock'; ts: Timestamp };

export interface EngineOptions {
  dbpath?: string;
  historyLimit: number;
}

const INTERNAL_DBS = new Set(['admin', 'config', 'local']);
/** An owner key no stored document has (canonical keys never start with NUL). */
const NEW_DOCUMENT = '\0new';

/** Writes to this collection record pre- and post-images for change streams. */
function recordsImages(coll: Collection): boolean {
  const o = coll.options.changeStreamPreAndPostImages;
  return isPlainObject(o) && o.enabled === true;
}

export function validateCollectionName(db: string, coll: string): void {
  if (!db || /[/\\. "$]/.test(db)) fail(ErrorCodes.InvalidNamespace, `Invalid database name: '${db}'`);
  if (!coll || coll.includes('$') || coll.startsWith('.') || coll.includes('\0')) {
    fail(ErrorCodes.InvalidNamespace, `Invalid collection name: ${coll}`);
  }
}

export class StorageEngine {
  readonly dbs = new Map<string, Map<string, Collection>>();
  readonly clock = new ClusterClock();
  readonly history: ChangeHistory;
  private readonly journal: Journal | undefined;

  constructor(options: EngineOptions) {
    this.history = new ChangeHistory(options.historyLimit);
    if (options.dbpath) {
      this.journal = new Journal(options.dbpath);
      for (const record of this.journal.readAll()) this.apply(record as unknown as Mutation);
      this.journal.rewrite(this.snapshot());
    }
  }

  close(): void {
    this.history.wakeAll();
    this.journal?.close();
  }

  // -------------------------------------------------------------------------------------------
  // Mutations

  private apply(mu: Mutation): void {
    switch (mu.m) {
      case 'createColl': {
        let db = this.dbs.get(mu.db);
        if (!db) this.dbs.set(mu.db, (db = new Map()));
        db.set(mu.coll, new Collection(mu.db, mu.coll, mu.uuid, mu.options));
        return;
      }
      case 'dropColl': {
        const db = this.dbs.get(mu.db);
        db?.delete(mu.coll);
        if (db && db.size === 0) this.dbs.delete(mu.db);
        return;
      }
      case 'renameColl': {
        const coll = this.collection(mu.db, mu.coll)!;
        this.apply({ m: 'dropColl', db: mu.db, coll: mu.coll });
        let target = this.dbs.get(mu.toDb);
        if (!target) this.dbs.set(mu.toDb, (target = new Map()));
        coll.db = mu.toDb;
        coll.name = mu.toColl;
        target.set(mu.toColl, coll);
        return;
      }
      case 'collMod':
        this.collection(mu.db, mu.coll)!.options = mu.options;
        return;
      case 'createIndex': {
        const coll = this.collection(mu.db, mu.coll)!;
        coll.indexes.add(mu.spec, coll.docs.entries());
        return;
      }
      case 'dropIndex':
        this.collection(mu.db, mu.coll)!.indexes.remove(mu.name);
        return;
      case 'put': {
        const coll = this.collection(mu.db, mu.coll)!;
        const key = canonicalKey(mu.doc._id);
        const prev = coll.docs.get(key);
        coll.indexes.applyWrite(prev, mu.doc, key);
        coll.docs.set(key, mu.doc);
        coll.idIndex.put(key, mu.doc._id);
        return;
      }
      case 'del': {
        const coll = this.collection(mu.db, mu.coll)!;
        const key = canonicalKey(mu.id);
        coll.indexes.applyWrite(coll.docs.get(key), undefined, key);
        coll.docs.delete(key);
        coll.idIndex.delete(key);
        return;
      }
      case 'event':
        this.clock.observe(mu.e.ts);
        this.history.append(mu.e);
        return;
      case 'historyLost':
        if (!this.history.lostThrough || this.history.lostThrough < mu.through) this.history.lostThrough = mu.through;
        return;
      case 'clock':
        this.clock.observe(mu.ts);
        return;
    }
  }

  private commit(mutations: Mutation[]): void {
    for (const mu of mutations) this.apply(mu);
    this.journal?.append(mutations as unknown as Doc[]);
  }

  private *snapshot(): Generator<Doc> {
    yield { m: 'clock', ts: this.clock.current() };
    if (this.history.lostThrough) yield { m: 'historyLost', through: this.history.lostThrough };
    for (const db of this.dbs.values()) {
      for (const c of db.values()) {
        yield { m: 'createColl', db: c.db, coll: c.name, uuid: c.uuid, options: c.options };
        for (const spec of c.indexes.specs()) if (spec.name !== ID_INDEX_NAME) yield { m: 'createIndex', db: c.db, coll: c.name, spec };
        for (const doc of c.docs.values()) yield { m: 'put', db: c.db, coll: c.name, doc };
      }
    }
    for (const e of this.history.retained()) yield { m: 'event', e };
  }

  private event(ts: Timestamp, op: string, db: string, fields: Partial<ChangeEntry>): Mutation {
    const e: ChangeEntry = { token: makeToken(ts), ts, wall: new Date(), op, db };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) e[k] = v;
    return { m: 'event', e };
  }

  // -------------------------------------------------------------------------------------------
  // Catalog reads

  collection(db: string, name: string): Collection | undefined {
    return this.dbs.get(db)?.get(name);
  }

  collections(db: string): Collection[] {
    return [...(this.dbs.get(db)?.values() ?? [])];
  }

  databaseNames(): string[] {
    return [...this.dbs.keys()];
  }

  static isInternalDb(db: string): boolean {
    return INTERNAL_DBS.has(db);
  }

  /** The collection to write to, created on first use like the server's implicit creation. */
  writableCollection(db: string, name: string): Collection {
    const existing = this.collection(db, name);
    if (existing) {
      if (existing.isView) fail(ErrorCodes.CommandNotSupportedOnView, `Namespace ${db}.${name} is a view, not a collection`);
      return existing;
    }
    return this.createCollection(db, name, {});
  }

  // -------------------------------------------------------------------------------------------
  // Catalog writes

  createCollection(db: string, name: string, options: Doc): Collection {
    validateCollectionName(db, name);
    if (this.collection(db, name)) fail(ErrorCodes.NamespaceExists, `Collection ${db}.${name} already exists.`);
    const uuid = new UUID();
    const ts = this.clock.next();
    const isView = typeof options.viewOn === 'string';
    this.commit([
      { m: 'createColl', db, coll: name, uuid, options },
      this.event(ts, 'create', db, {
        coll: name,
        uuid,
        operationDescription: isView ? { viewOn: options.viewOn, pipeline: options.pipeline ?? [] } : { idIndex: { v: 2, key: { _id: 1 }, name: ID_INDEX_NAME } },
      }),
    ]);
    return this.collection(db, name)!;
  }

  /**
   * collMod: the collection's new options and, when an index changes, its new spec, in one
   * commit with ONE `modify` event whose operationDescription is what the command changed
   * (`index: {name, …changed properties}` as documented on
   * https://www.mongodb.com/docs/manual/reference/change-events/modify/; the changed collection
   * options such as `validator` next to it: undocumented, the server's oplog entry holds the
   * command's options).
   */
  collMod(coll: Collection, options: Doc, description: Doc, indexSpec?: IndexSpec): void {
    const ts = this.clock.next();
    this.commit([
      ...(indexSpec ? [{ m: 'createIndex' as const, db: coll.db, coll: coll.name, spec: indexSpec }] : []),
      { m: 'collMod', db: coll.db, coll: coll.name, options },
      this.event(ts, 'modify', coll.db, { coll: coll.name, uuid: coll.uuid, operationDescription: description }),
    ]);
  }

  dropCollection(db: string, name: string): boolean {
    const coll = this.collection(db, name);
    if (!coll) return false;
    const ts = this.clock.next();
    this.commit([{ m: 'dropColl', db, coll: name }, this.event(ts, 'drop', db, { coll: name, uuid: coll.uuid })]);
    return true;
  }

  dropDatabase(db: string): void {
    for (const c of this.collections(db)) this.dropCollection(db, c.name);
    const ts = this.clock.next();
    this.commit([this.event(ts, 'dropDatabase', db, {})]);
  }

  renameCollection(db: string, name: string, toDb: string, toName: string, dropTarget: boolean): void {
    validateCollectionName(toDb, toName);
    const coll = this.collection(db, name);
    if (!coll) fail(ErrorCodes.NamespaceNotFound, 'source namespace does not exist');
    const target = this.collection(toDb, toName);
    if (target) {
      if (!dropTarget) fail(ErrorCodes.NamespaceExists, 'target namespace exists');
      this.commit([{ m: 'dropColl', db: toDb, coll: toName }]);
    }
    const ts = this.clock.next();
    // operationDescription (shown with showExpandedEvents): the target and the UUID of the
    // collection dropTarget replaced (https://www.mongodb.com/docs/manual/reference/change-events/rename/).
    const operationDescription: Doc = { to: { db: toDb, coll: toName } };
    if (target) operationDescription.dropTarget = target.uuid;
    this.commit([
      { m: 'renameColl', db, coll: name, toDb, toColl: toName },
      this.event(ts, 'rename', db, { coll: name, uuid: coll.uuid, to: { db: toDb, coll: toName }, operationDescription }),
    ]);
  }

  createIndex(coll: Collection, spec: IndexSpec): void {
    // Dry run on a scratch index set first so a failing build leaves nothing behind.
    new IndexSet(() => coll.ns).add(spec, coll.docs.entries());
    const ts = this.clock.next();
    this.commit([
      { m: 'createIndex', db: coll.db, coll: coll.name, spec },
      this.event(ts, 'createIndexes', coll.db, { coll: coll.name, uuid: coll.uuid, operationDescription: { indexes: [spec] } }),
    ]);
  }

  /** A DDL event with no catalog change of its own here (e.g. `shardCollection`). */
  ddlEvent(op: string, coll: Collection, operationDescription: Doc): void {
    this.commit([this.event(this.clock.next(), op, coll.db, { coll: coll.name, uuid: coll.uuid, operationDescription })]);
  }


  /**
   * One pass of the TTL monitor (https://www.mongodb.com/docs/manual/core/index-ttl/): for every
   * single-field index with `expireAfterSeconds`, deletes the documents whose indexed field is a
   * date (or an array of dates: the earliest counts) at least that many seconds in the past.
   * Documents without the field, or with no date in it, never expire. Each removal is an ordinary
   * delete (change streams report it as a `delete`). Returns how many documents were removed.
   */
  expireTtl(now: number): number {
    let removed = 0;
    for (const db of [...this.dbs.values()]) {
      for (const coll of [...db.values()]) {
        if (coll.isView || coll.isTimeseries) continue;
        for (const spec of coll.indexes.specs()) {
          const seconds = spec.expireAfterSeconds;
          const fields = Object.keys(spec.key);
          if (fields.length !== 1 || !isNumeric(seconds)) continue;
          const limit = now - toNumber(seconds) * 1000;
          for (const doc of [...coll.docs.values()]) {
            const dates = pathValues(doc, fields[0]!.split('.'))
              .flatMap((v) => (Array.isArray(v) ? v : [v]))
              .filter((v): v is Date => v instanceof Date);
            if (dates.length === 0) continue;
            if (Math.min(...dates.map((d) => d.getTime())) <= limit && coll.docs.has(canonicalKey(doc._id))) {
              this.remove(coll, doc);
              removed++;
            }
          }
        }
      }
    }
    return removed;
  }

  dropIndex(coll: Collection, spec: IndexSpec): void {
    const ts = this.clock.next();
    this.commit([
      { m: 'dropIndex', db: coll.db, coll: coll.name, name: spec.name },
      this.event(ts, 'dropIndexes', coll.db, { coll: coll.name, uuid: coll.uuid, operationDescription: { indexes: [spec] } }),
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // Document writes

  static prepareInsert(doc: Doc): Doc {
    const out = ensureIdFirst(doc, () => new ObjectId());
    if (Array.isArray(out._id)) fail(ErrorCodes.BadValue, "The '_id' value cannot be of type array");
    // "the _id field may not contain $-prefixed fields" (https://www.mongodb.com/docs/manual/core/dot-dollar-considerations/).
    if (isPlainObject(out._id)) {
      const bad = Object.keys(out._id).find((k) => k.startsWith('$'));
      if (bad) fail(ErrorCodes.DollarPrefixedFieldName, `_id fields may not contain '$'-prefixed fields: ${bad} is not valid for storage.`);
    }
    if (out._id instanceof RegExp || (isPlainObject(out._id) === false && (out._id as { _bsontype?: string })?._bsontype === 'BSONRegExp')) {
      fail(ErrorCodes.BadValue, "The '_id' value cannot be of type regex");
    }
    return out;
  }

  insert(coll: Collection, raw: Doc): Doc {
    const doc = StorageEngine.prepareInsert(raw);
    const key = canonicalKey(doc._id);
    // A new document owns no keys yet: an existing _id is a conflict on the _id_ index.
    coll.indexes.checkWrite(doc, coll.docs.has(key) ? NEW_DOCUMENT : key);
    const ts = this.clock.next();
    this.commit([
      { m: 'put', db: coll.db, coll: coll.name, doc },
      this.event(ts, 'insert', coll.db, { coll: coll.name, uuid: coll.uuid, documentKey: { _id: doc._id }, fullDocument: doc }),
    ]);
    return doc;
  }

  /** Stores the outcome of an update; returns false for a no-op. */
  update(coll: Collection, prev: Doc, outcome: UpdateOutcome): boolean {
    if (outcome.kind === 'noop') return false;
    const key = canonicalKey(prev._id);
    coll.indexes.checkWrite(outcome.doc, key);
    const ts = this.clock.next();
    const description: UpdateDescription | undefined = outcome.kind === 'update' ? outcome.description : undefined;
    this.commit([
      { m: 'put', db: coll.db, coll: coll.name, doc: outcome.doc },
      this.event(ts, outcome.kind, coll.db, {
        coll: coll.name,
        uuid: coll.uuid,
        documentKey: { _id: prev._id },
        fullDocument: outcome.doc,
        preImage: prev,
        updateDescription: description,
        images: recordsImages(coll),
      }),
    ]);
    return true;
  }

  remove(coll: Collection, prev: Doc): void {
    const ts = this.clock.next();
    this.commit([
      { m: 'del', db: coll.db, coll: coll.name, id: prev._id },
      this.event(ts, 'delete', coll.db, { coll: coll.name, uuid: coll.uuid, documentKey: { _id: prev._id }, preImage: prev, images: recordsImages(coll) }),
    ]);
  }

  /** Replaces a collection's contents ($out). */
  replaceContents(db: string, name: string, docs: Doc[]): void {
    if (this.collection(db, name)) this.dropCollection(db, name);
    const coll = this.createCollection(db, name, {});
    for (const d of docs) this.insert(coll, d);
  }
}

export { CommandError };
