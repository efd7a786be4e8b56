// Catalog commands: create, drop, dropDatabase, renameCollection, collMod, listCollections,
// listDatabases, createIndexes, listIndexes, dropIndexes, collStats, dbStats.
import { calculateObjectSize } from 'bson';
import { canonicalKey, isPlainObject, truthy, type Doc } from './bson-values.js';
import { cursorBatchSize, cursorReply, targetName, type Handler } from './command-context.js';
import { ErrorCodes, fail } from './errors.js';
import { ID_INDEX_NAME, normalizeIndexSpec, type IndexSpec } from './indexes.js';
import { compileFilter } from './query.js';
import { checkCreateCollection, checkIndexSpec } from './documentdb.js';
import { StorageEngine, type Collection } from './storage-engine.js';
import { versionAtLeast, type EmulatorProfile } from './profiles.js';

/**
 * Time-series collections, "New in version 5.0"
 * (https://www.mongodb.com/docs/manual/core/timeseries-collections/): `create` with
 * `timeseries: {timeField, metaField?, granularity?}`; listCollections reports them as
 * `type: 'timeseries'` with the granularity and bucketMaxSpanSeconds the server fills in
 * (https://www.mongodb.com/docs/manual/core/timeseries/timeseries-granularity/: seconds → 3600).
 * Before 5.0 the create command's strict parser refuses the field (40415). The buckets collection
 * (`system.buckets.<name>`) is not modelled.
 */
function timeseriesOptions(profile: EmulatorProfile, ts: unknown): Doc {
  if (!versionAtLeast(profile, 5)) fail(40415, "BSON field 'create.timeseries' is an unknown field.");
  if (!isPlainObject(ts)) fail(ErrorCodes.TypeMismatch, "BSON field 'create.timeseries' is the wrong type, expected type 'object'");
  if (typeof ts.timeField !== 'string') fail(40414, "BSON field 'create.timeseries.timeField' is missing but a required field");
  const granularity = typeof ts.granularity === 'string' ? ts.granularity : 'seconds';
  const span: Record<string, number> = { seconds: 3600, minutes: 86400, hours: 2592000 };
  if (!(granularity in span)) fail(ErrorCodes.BadValue, `Enumeration value '${granularity}' for field 'create.timeseries.granularity' is not a valid value.`);
  const out: Doc = { timeField: ts.timeField };
  if (typeof ts.metaField === 'string') out.metaField = ts.metaField;
  out.granularity = granularity;
  out.bucketMaxSpanSeconds = span[granularity];
  return out;
}

/** Generic command fields that are not part of a command's own options. */
const GENERIC_FIELDS = new Set([
  '$db', 'lsid', 'txnNumber', '$clusterTime', '$readPreference', 'writeConcern', 'readConcern', 'comment',
  'maxTimeMS', 'apiVersion', 'apiStrict', 'apiDeprecationErrors', 'autocommit', 'startTransaction', '$audit', 'mayBypassWriteBlocking',
]);

function commandOptions(cmd: Doc, name: string): Doc {
  const out: Doc = {};
  for (const [k, v] of Object.entries(cmd)) if (k !== name && !GENERIC_FIELDS.has(k)) out[k] = v;
  return out;
}

function requireCollection(engine: StorageEngine, db: string, name: string): Collection {
  const coll = engine.collection(db, name);
  if (!coll) fail(ErrorCodes.NamespaceNotFound, `ns does not exist: ${db}.${name}`);
  return coll;
}

function splitNs(ns: unknown): [string, string] {
  if (typeof ns !== 'string' || !ns.includes('.')) fail(ErrorCodes.InvalidNamespace, `Invalid namespace specified '${String(ns)}'`);
  const dot = ns.indexOf('.');
  return [ns.slice(0, dot), ns.slice(dot + 1)];
}

const create: Handler = (ctx) => {
  const name = targetName(ctx);
  // idIndex is consumed at creation (the _id index always exists), not kept as an option.
  const { idIndex: _idIndex, ...options } = commandOptions(ctx.cmd, ctx.name);
  const existing = ctx.server.engine.collection(ctx.db, name);
  if (existing) {
    if (canonicalKey(existing.options) === canonicalKey(options)) return { ok: 1 };
    fail(ErrorCodes.NamespaceExists, `Collection ${ctx.db}.${name} already exists.`);
  }
  if (options.viewOn !== undefined && typeof options.viewOn !== 'string') fail(ErrorCodes.TypeMismatch, "'viewOn' must be a string");
  checkCreateCollection(ctx.server.profile, options);
  if (options.timeseries !== undefined) options.timeseries = timeseriesOptions(ctx.server.profile, options.timeseries);
  ctx.server.engine.createCollection(ctx.db, name, options);
  return { ok: 1 };
};

const drop: Handler = (ctx) => {
  const name = targetName(ctx);
  const coll = ctx.server.engine.collection(ctx.db, name);
  if (!coll) return { ok: 1 }; // MongoDB 7.0: dropping a missing collection succeeds
  const nIndexesWas = coll.indexes.size;
  ctx.server.engine.dropCollection(ctx.db, name);
  ctx.server.sharding?.onDrop(ctx.db, name);
  return { nIndexesWas, ns: coll.ns, ok: 1 };
};

const dropDatabase: Handler = (ctx) => {
  ctx.server.engine.dropDatabase(ctx.db);
  ctx.server.sharding?.onDropDatabase(ctx.db);
  return { dropped: ctx.db, ok: 1 };
};

const renameCollection: Handler = (ctx) => {
  if (ctx.db !== 'admin') fail(ErrorCodes.Unauthorized, 'renameCollection may only be run against the admin database.');
  const [fromDb, fromColl] = splitNs(ctx.cmd.renameCollection);
  const [toDb, toColl] = splitNs(ctx.cmd.to);
  if (fromDb === toDb && fromColl === toColl) fail(ErrorCodes.IllegalOperation, "Can't rename a collection to itself");
  ctx.server.sharding?.checkRename(fromDb, fromColl, toDb);
  ctx.server.engine.renameCollection(fromDb, fromColl, toDb, toColl, truthy(ctx.cmd.dropTarget));
  ctx.server.sharding?.onRename(fromDb, fromColl, toDb, toColl);
  return { ok: 1 };
};

const collMod: Handler = (ctx) => {
  const coll = requireCollection(ctx.server.engine, ctx.db, targetName(ctx));
  const changes = commandOptions(ctx.cmd, ctx.name);
  const reply: Doc = { ok: 1 };
  let indexSpec: IndexSpec | undefined;
  let indexDescription: Doc | undefined;
  if (isPlainObject(changes.index)) {
    // https://www.mongodb.com/docs/manual/reference/command/collMod/#change-index-properties:
    // the index by name or keyPattern; expireAfterSeconds changes a TTL index (the reply has the
    // old and new values); hidden is kept in the spec (no query planning here to hide it from).
    const change = changes.index;
    delete changes.index;
    const spec =
      typeof change.name === 'string'
        ? coll.indexes.specs().find((s) => s.name === change.name)
        : isPlainObject(change.keyPattern)
          ? coll.indexes.findByKey(change.keyPattern)
          : fail(ErrorCodes.InvalidOptions, 'must specify either index name or key pattern');
    if (!spec) fail(ErrorCodes.IndexNotFound, `cannot find index ${JSON.stringify(change.name ?? change.keyPattern)} for ns ${coll.ns}`);
    const next = { ...spec };
    const description: Doc = { index: { name: spec.name } };
    if (change.expireAfterSeconds !== undefined) {
      if (spec.expireAfterSeconds === undefined) fail(ErrorCodes.InvalidOptions, 'no expireAfterSeconds field to update');
      reply.expireAfterSeconds_old = spec.expireAfterSeconds;
      reply.expireAfterSeconds_new = change.expireAfterSeconds;
      next.expireAfterSeconds = change.expireAfterSeconds;
      (description.index as Doc).expireAfterSeconds = change.expireAfterSeconds;
    }
    if (change.hidden !== undefined) {
      reply.hidden_old = truthy(spec.hidden);
      reply.hidden_new = truthy(change.hidden);
      if (truthy(change.hidden)) next.hidden = true;
      else delete next.hidden;
      (description.index as Doc).hidden = truthy(change.hidden);
    }
    indexSpec = next;
    indexDescription = description.index as Doc;
  }
  // Every collMod is ONE `modify` event, even one that changes nothing (MongoDB's spec test
  // change-streams-showExpandedEvents.json "modify events are reported" runs a bare collMod).
  ctx.server.engine.collMod(coll, { ...coll.options, ...changes }, { ...changes, ...(indexDescription ? { index: indexDescription } : {}) }, indexSpec);
  return reply;
};

function collectionInfo(c: Collection): Doc {
  if (c.isView) return { name: c.name, type: 'view', options: c.options, info: { readOnly: true } };
  if (c.isTimeseries) return { name: c.name, type: 'timeseries', options: c.options, info: { readOnly: false } };
  return {
    name: c.name,
    type: 'collection',
    options: c.options,
    info: { readOnly: false, uuid: c.uuid },
    idIndex: { v: 2, key: { _id: 1 }, name: ID_INDEX_NAME },
  };
}

const listCollections: Handler = (ctx) => {
  const predicate = compileFilter(ctx.cmd.filter);
  const nameOnly = truthy(ctx.cmd.nameOnly);
  const infos = ctx.server.engine
    .collections(ctx.db)
    .map(collectionInfo)
    .filter(predicate)
    .map((info) => (nameOnly ? { name: info.name, type: info.type } : info));
  return cursorReply(ctx, `${ctx.db}.$cmd.listCollections`, infos, cursorBatchSize(ctx));
};

function dataSize(c: Collection): number {
  let size = 0;
  for (const d of c.docs.values()) size += calculateObjectSize(d);
  return size;
}

const listDatabases: Handler = (ctx) => {
  const predicate = compileFilter(ctx.cmd.filter);
  const nameOnly = truthy(ctx.cmd.nameOnly);
  const engine = ctx.server.engine;
  const databases = engine
    .databaseNames()
    .filter((name) => engine.collections(name).length > 0)
    .sort()
    .map((name) => {
      const sizeOnDisk = engine.collections(name).reduce((s, c) => s + dataSize(c), 0);
      return nameOnly ? { name } : { name, sizeOnDisk, empty: sizeOnDisk === 0 };
    })
    .filter(predicate);
  if (nameOnly) return { databases, ok: 1 };
  const totalSize = databases.reduce((s, d) => s + Number((d as Doc).sizeOnDisk ?? 0), 0);
  return { databases, totalSize, totalSizeMb: Math.floor(totalSize / 1048576), ok: 1 };
};

const createIndexes: Handler = (ctx) => {
  const name = targetName(ctx);
  const engine = ctx.server.engine;
  if (!Array.isArray(ctx.cmd.indexes) || ctx.cmd.indexes.length === 0) fail(ErrorCodes.BadValue, 'Must specify at least one index to create');
  // Refused before anything is created (DocumentDB's unsupported index types and options).
  for (const raw of ctx.cmd.indexes) checkIndexSpec(ctx.server.profile, normalizeIndexSpec(raw));
  const createdCollectionAutomatically = !engine.collection(ctx.db, name);
  const coll = engine.writableCollection(ctx.db, name);
  const numIndexesBefore = coll.indexes.size;
  for (const raw of ctx.cmd.indexes) {
    const spec: IndexSpec = normalizeIndexSpec(raw);
    const sameName = coll.indexes.specs().find((s) => s.name === spec.name);
    const sameKey = coll.indexes.findByKey(spec.key);
    if (sameName) {
      if (canonicalKey(sameName.key) !== canonicalKey(spec.key)) {
        fail(ErrorCodes.IndexKeySpecsConflict, `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(sameName)}`);
      }
      continue;
    }
    if (sameKey && spec.name !== ID_INDEX_NAME) {
      if (canonicalKey({ ...sameKey, name: '' }) === canonicalKey({ ...spec, name: '' })) {
        fail(ErrorCodes.IndexOptionsConflict, `Index already exists with a different name: ${sameKey.name}`);
      }
    }
    if (spec.name === ID_INDEX_NAME) continue;
    engine.createIndex(coll, spec);
  }
  const reply: Doc = { numIndexesBefore, numIndexesAfter: coll.indexes.size, createdCollectionAutomatically };
  if (numIndexesBefore === coll.indexes.size) reply.note = 'all indexes already exist';
  reply.ok = 1;
  return reply;
};

const listIndexes: Handler = (ctx) => {
  const coll = requireCollection(ctx.server.engine, ctx.db, targetName(ctx));
  if (coll.isView) fail(ErrorCodes.CommandNotSupportedOnView, `Namespace ${coll.ns} is a view, not a collection`);
  return cursorReply(ctx, `${ctx.db}.$cmd.listIndexes.${coll.name}`, coll.indexes.specs(), cursorBatchSize(ctx));
};

const dropIndexes: Handler = (ctx) => {
  const coll = requireCollection(ctx.server.engine, ctx.db, targetName(ctx));
  const nIndexesWas = coll.indexes.size;
  const which = ctx.cmd.index;
  const specs = coll.indexes.specs();
  let targets: IndexSpec[];
  if (which === '*') targets = specs.filter((s) => s.name !== ID_INDEX_NAME);
  else if (typeof which === 'string' || Array.isArray(which)) {
    const names = typeof which === 'string' ? [which] : (which as string[]);
    targets = names.map((n) => {
      if (n === ID_INDEX_NAME) fail(ErrorCodes.InvalidOptions, 'cannot drop _id index');
      const s = specs.find((x) => x.name === n);
      if (!s) fail(ErrorCodes.IndexNotFound, `index not found with name [${n}]`);
      return s;
    });
  } else if (isPlainObject(which)) {
    const s = coll.indexes.findByKey(which);
    if (!s) fail(ErrorCodes.IndexNotFound, `can't find index with key: ${JSON.stringify(which)}`);
    if (s.name === ID_INDEX_NAME) fail(ErrorCodes.InvalidOptions, 'cannot drop _id index');
    targets = [s];
  } else {
    fail(ErrorCodes.TypeMismatch, "'index' must be a string, array of strings or an object");
  }
  for (const s of targets) ctx.server.engine.dropIndex(coll, s);
  return { nIndexesWas, ok: 1 };
};

const collStats: Handler = (ctx) => {
  const name = targetName(ctx);
  const coll = requireCollection(ctx.server.engine, ctx.db, name);
  const size = dataSize(coll);
  const count = coll.docs.size;
  const indexSizes: Doc = {};
  for (const s of coll.indexes.specs()) indexSizes[s.name] = 4096;
  return {
    ns: coll.ns,
    size,
    count,
    avgObjSize: count ? Math.floor(size / count) : 0,
    storageSize: size,
    freeStorageSize: 0,
    capped: truthy(coll.options.capped),
    nindexes: coll.indexes.size,
    totalIndexSize: 4096 * coll.indexes.size,
    totalSize: size + 4096 * coll.indexes.size,
    indexSizes,
    scaleFactor: 1,
    ok: 1,
  };
};

const dbStats: Handler = (ctx) => {
  const colls = ctx.server.engine.collections(ctx.db);
  const real = colls.filter((c) => !c.isView);
  const objects = real.reduce((s, c) => s + c.docs.size, 0);
  const size = real.reduce((s, c) => s + dataSize(c), 0);
  const indexes = real.reduce((s, c) => s + c.indexes.size, 0);
  return {
    db: ctx.db,
    collections: real.length,
    views: colls.length - real.length,
    objects,
    avgObjSize: objects ? size / objects : 0,
    dataSize: size,
    storageSize: size,
    indexes,
    indexSize: indexes * 4096,
    totalSize: size + indexes * 4096,
    scaleFactor: 1,
    fsUsedSize: 0,
    fsTotalSize: 0,
    ok: 1,
  };
};

export const catalogCommands: Record<string, Handler> = {
  create,
  drop,
  dropDatabase,
  renameCollection,
  collMod,
  listCollections,
  listDatabases,
  createIndexes,
  listIndexes,
  dropIndexes,
  collStats,
  collstats: collStats,
  dbStats,
  dbstats: dbStats,
};
