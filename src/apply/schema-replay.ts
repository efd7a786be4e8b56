/**
 * Replay of the source's schema events (change streams with `showExpandedEvents`, MongoDB 6.0+)
 * on the target: create (a collection with its options, or a view), createIndexes, dropIndexes,
 * modify (collMod). The writer runs each one as a DDL segment, behind the DDL gate, so it runs
 * once, after every earlier event of every shard (writer.ts, ddl-gate.ts).
 *
 * IDEMPOTENT: a replay after a crash (the DDL ran, its checkpoint did not follow), and a replay of
 * an event the initial load already saw (the dump read the collection after the event), leave
 * the target as one run would. Each step relies on the server's documented answers
 * (https://www.mongodb.com/docs/manual/reference/error-codes/):
 *  - create of an existing collection: `create` answers NamespaceExists (48) unless the options
 *    are the same (https://www.mongodb.com/docs/manual/reference/command/create/); either way the
 *    collection is there: kept as it is (the load copied it in a later state, which the later
 *    events and the cutover reconcile bring in line);
 *  - createIndexes of an index that exists with the same spec succeeds ("If you call
 *    db.collection.createIndex() with the same index specification … the operation does not
 *    recreate the index": https://www.mongodb.com/docs/manual/reference/method/db.collection.createIndex/#recreating-an-existing-index);
 *    the same name or key with other options gives IndexOptionsConflict (85) or
 *    IndexKeySpecsConflict (86): the index exists in a later state (copied by the load), kept;
 *  - dropIndexes of a missing index: IndexNotFound (27), done already;
 *  - collMod of a missing index: IndexNotFound (27); of a missing collection: NamespaceNotFound
 *    (26): what the event changed is not there any more on the target (dropped later on the
 *    source, already replayed by the load), nothing to change.
 *
 * TTL: during a full migration the target's TTL indexes are held (ttl-hold.ts): an index this
 * replay creates, or a TTL this replay changes, is held too, its original recorded first, and the
 * cutover restores it (`ttlHold` in the context; absent for plain CDC, which holds nothing).
 */
import type { Document, MongoClient } from 'mongodb';
import type { ChangeEnvelope, CollectionNamespace } from '../model/change-envelope.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { errorCode } from '../db/transient-errors.js';
import { mapViewPipeline } from '../db/compare-schema.js';
import { holdReplayedCollMod, holdReplayedIndexes, type TtlHoldStore } from '../db/ttl-hold.js';
import { MongoErrorCode } from '../db/mongo-errors.js';

export const NAMESPACE_NOT_FOUND = MongoErrorCode.NamespaceNotFound;
export const INDEX_NOT_FOUND = MongoErrorCode.IndexNotFound;
export const NAMESPACE_EXISTS = MongoErrorCode.NamespaceExists;
export const INDEX_OPTIONS_CONFLICT = MongoErrorCode.IndexOptionsConflict;
export const INDEX_KEY_SPECS_CONFLICT = MongoErrorCode.IndexKeySpecsConflict;

export interface SchemaReplayLogger {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export interface SchemaReplayContext {
  client: MongoClient;
  rules: NamespaceRules;
  /** Runs `fn` with the caller's transient-error retries. */
  retry<T>(what: string, fn: () => Promise<T>): Promise<T>;
  logger?: SchemaReplayLogger;
  /** Hold TTL indexes this replay creates or changes, recording their originals (ttl-hold.ts). */
  ttlHold?: { store: TtlHoldStore; migrationId: string };
}

const nsName = (ns: CollectionNamespace) => `${ns.db}.${ns.coll}`;

/** Index spec fields the server sets itself (listIndexes reports them; createIndexes does not need them). */
const SERVER_INDEX_FIELDS = new Set(['v', 'ns', 'background']);

/** An index spec as sent in createIndexes: server-chosen fields dropped, collation without its ICU `version`. */
export function indexSpecForCreate(spec: Document): Document {
  const out: Document = {};
  for (const [k, v] of Object.entries(spec)) {
    if (SERVER_INDEX_FIELDS.has(k)) continue;
    out[k] = k === 'collation' ? collationForCreate(v) : v;
  }
  return out;
}

/**
 * A collation as given to create/createIndexes: without `version`, the ICU version of the server
 * that reported it (https://www.mongodb.com/docs/manual/reference/collation/#collation-document
 * lists the fields a user sets; the target picks its own ICU version).
 */
export function collationForCreate(c: unknown): unknown {
  if (!c || typeof c !== 'object' || Array.isArray(c)) return c;
  const { version: _version, ...rest } = c as Document;
  return rest;
}

/**
 * Options of `create` that the create event's description (or listCollections) carries but the
 * create command does not take as such: `idIndex` (the default _id index is built anyway), `uuid`
 * (chosen by the target). Everything else is passed on.
 */
const NOT_CREATE_OPTIONS = new Set(['idIndex', 'uuid']);

/** The `create` options of a collection (not a view) from its create event or listCollections options. */
export function collectionCreateOptions(desc: Document): Document {
  const out: Document = {};
  for (const [k, v] of Object.entries(desc)) {
    if (NOT_CREATE_OPTIONS.has(k) || k === 'viewOn' || k === 'pipeline') continue;
    out[k] = k === 'collation' ? collationForCreate(v) : v;
  }
  return out;
}

/**
 * Collection options collMod can change (https://www.mongodb.com/docs/manual/reference/command/collMod/):
 * document validation, the TTL of a clustered collection, pre- and post-images, a time-series
 * collection's granularity. (`index` and a view's `viewOn`/`pipeline` are handled apart.)
 * Anything else in a modify event (or differing at cutover) cannot be changed in place.
 */
export const COLLMOD_OPTIONS: ReadonlySet<string> = new Set([
  'validator',
  'validationLevel',
  'validationAction',
  'expireAfterSeconds',
  'changeStreamPreAndPostImages',
  'timeseries',
]);

/** Index properties collMod can change (same page, "Change Index Properties"). */
const COLLMOD_INDEX_FIELDS = new Set(['name', 'keyPattern', 'expireAfterSeconds', 'hidden', 'prepareUnique', 'unique']);

function isCode(err: unknown, ...codes: number[]): boolean {
  const code = errorCode(err);
  return code !== undefined && codes.includes(code);
}

/** Creates one index on the target; an existing one (same spec, or a later state of it) is kept. */
export async function createTargetIndex(ctx: SchemaReplayContext, target: CollectionNamespace, spec: Document): Promise<'created' | 'existing'> {
  let sent = indexSpecForCreate(spec);
  if (ctx.ttlHold) [sent] = await holdReplayedIndexes(ctx.ttlHold.store, ctx.ttlHold.migrationId, target, [sent]);
  return ctx.retry(`createIndexes ${nsName(target)} ${String(spec.name)}`, async () => {
    try {
      const r = await ctx.client.db(target.db).command({ createIndexes: target.coll, indexes: [sent] });
      return r.numIndexesAfter !== undefined && r.numIndexesAfter === r.numIndexesBefore ? 'existing' : 'created';
    } catch (err) {
      if (isCode(err, INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT)) {
        ctx.logger?.info?.({ target: nsName(target), index: spec.name, err: (err as Error).message }, 'index already on the target with other options: kept (later events and the cutover reconcile bring it in line)');
        return 'existing';
      }
      throw err;
    }
  });
}

/** Drops one index by name; a missing index or collection is done already. */
export async function dropTargetIndex(ctx: SchemaReplayContext, target: CollectionNamespace, name: string): Promise<'dropped' | 'missing'> {
  return ctx.retry(`dropIndexes ${nsName(target)} ${name}`, async () => {
    try {
      await ctx.client.db(target.db).command({ dropIndexes: target.coll, index: name });
      return 'dropped';
    } catch (err) {
      if (isCode(err, INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND)) return 'missing';
      throw err;
    }
  });
}

/** collMod of one index (`change`: name or keyPattern + properties); a missing index or collection changes nothing. */
export async function modifyTargetIndex(ctx: SchemaReplayContext, target: CollectionNamespace, change: Document): Promise<'changed' | 'missing'> {
  let command: Document = { collMod: target.coll, index: change };
  if (ctx.ttlHold) {
    const findIndex = async (by: { name?: string; keyPattern?: Document }) => {
      const specs = await ctx.retry(`listIndexes ${nsName(target)}`, () => ctx.client.db(target.db).collection(target.coll).listIndexes().toArray()).catch(() => [] as Document[]);
      const hit = specs.find((x) => (by.name !== undefined ? x.name === by.name : JSON.stringify(x.key) === JSON.stringify(by.keyPattern)));
      return hit ? { name: String(hit.name), key: hit.key as Document } : undefined;
    };
    command = await holdReplayedCollMod(ctx.ttlHold.store, ctx.ttlHold.migrationId, target, command, findIndex);
  }
  return ctx.retry(`collMod ${nsName(target)} index ${String(change.name ?? JSON.stringify(change.keyPattern))}`, async () => {
    try {
      await ctx.client.db(target.db).command(command);
      return 'changed';
    } catch (err) {
      if (isCode(err, INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND)) return 'missing';
      throw err;
    }
  });
}

/** collMod of collection options; a missing collection changes nothing. */
export async function modifyTargetCollection(ctx: SchemaReplayContext, target: CollectionNamespace, options: Document): Promise<'changed' | 'missing'> {
  return ctx.retry(`collMod ${nsName(target)} ${Object.keys(options).join(',')}`, async () => {
    try {
      await ctx.client.db(target.db).command({ collMod: target.coll, ...options });
      return 'changed';
    } catch (err) {
      if (isCode(err, NAMESPACE_NOT_FOUND)) return 'missing';
      throw err;
    }
  });
}

/** Creates a collection (or view) with options; an existing one is kept. */
export async function createTargetCollection(ctx: SchemaReplayContext, target: CollectionNamespace, options: Document): Promise<'created' | 'existing'> {
  return ctx.retry(`create ${nsName(target)}`, async () => {
    try {
      await ctx.client.db(target.db).command({ create: target.coll, ...options });
      return 'created';
    } catch (err) {
      if (isCode(err, NAMESPACE_EXISTS)) return 'existing';
      throw err;
    }
  });
}

/** A view's `viewOn` and pipeline with the collections they read renamed by --map (as the load does: initial-load/views.ts). */
function mapView(rules: NamespaceRules, db: string, target: CollectionNamespace, viewOn: string, pipeline: unknown): { viewOn: string; pipeline: unknown } {
  const rename = (coll: string) => {
    const m = rules.target({ db, coll });
    return m.db === target.db ? m.coll : coll;
  };
  return { viewOn: rename(viewOn), pipeline: mapViewPipeline(pipeline ?? [], rename) };
}

/** Replays one schema envelope (op create, createIndexes, dropIndexes or modify) on the target. */
export async function replaySchemaEvent(ctx: SchemaReplayContext, e: ChangeEnvelope): Promise<void> {
  const source = { db: e.ns.db, coll: e.ns.coll! };
  const target = ctx.rules.target(source);
  const desc = e.desc ?? {};
  const log = (obj: object, msg: string) => ctx.logger?.info?.({ op: e.op, source: nsName(source), target: nsName(target), ...obj }, msg);
  switch (e.op) {
    case 'create': {
      let options: Document;
      if (typeof desc.viewOn === 'string') {
        options = mapView(ctx.rules, source.db, target, desc.viewOn, desc.pipeline);
        if (desc.collation !== undefined) options.collation = collationForCreate(desc.collation);
      } else {
        options = collectionCreateOptions(desc);
      }
      const r = await createTargetCollection(ctx, target, options);
      log({ options: Object.keys(options), result: r }, r === 'created' ? 'schema replay: collection created' : 'schema replay: collection already on the target, kept');
      return;
    }
    case 'createIndexes':
      for (const spec of desc.indexes as Document[]) {
        const r = await createTargetIndex(ctx, target, spec);
        log({ index: spec.name, result: r }, 'schema replay: index created');
      }
      return;
    case 'dropIndexes':
      for (const spec of desc.indexes as Document[]) {
        const r = await dropTargetIndex(ctx, target, String(spec.name));
        log({ index: spec.name, result: r }, 'schema replay: index dropped');
      }
      return;
    case 'modify': {
      const indexChanges: Document[] = [];
      if (desc.index && typeof desc.index === 'object') indexChanges.push(desc.index as Document);
      const options: Document = {};
      const notReplayed: string[] = [];
      for (const [k, v] of Object.entries(desc)) {
        if (k === 'index') continue;
        if (COLLMOD_OPTIONS.has(k)) options[k] = v;
        else if (k !== 'viewOn' && k !== 'pipeline') notReplayed.push(k);
      }
      if (typeof desc.viewOn === 'string') Object.assign(options, mapView(ctx.rules, source.db, target, desc.viewOn, desc.pipeline));
      for (const change of indexChanges) {
        const index: Document = {};
        for (const [k, v] of Object.entries(change)) if (COLLMOD_INDEX_FIELDS.has(k)) index[k] = v;
        if (Object.keys(index).filter((k) => k !== 'name' && k !== 'keyPattern').length === 0) continue;
        const r = await modifyTargetIndex(ctx, target, index);
        log({ index: change.name ?? change.keyPattern, changes: Object.keys(index), result: r }, 'schema replay: index modified');
      }
      if (Object.keys(options).length > 0) {
        const r = await modifyTargetCollection(ctx, target, options);
        log({ options: Object.keys(options), result: r }, 'schema replay: collection modified');
      }
      if (notReplayed.length > 0) {
        ctx.logger?.warn(
          { op: e.op, source: nsName(source), target: nsName(target), options: notReplayed },
          'schema replay: collMod options that cannot be replayed on the target were left out; the cutover reconcile and verify report any difference',
        );
      }
      return;
    }
    default:
      throw new Error(`not a schema event: ${e.op}`);
  }
}
