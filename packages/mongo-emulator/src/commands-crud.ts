// Read and write commands: find, getMore, killCursors, count, distinct, aggregate (including
// $changeStream), insert, update, delete, findAndModify.
import { Aggregator } from 'mingo';
import { Context, evalExpr } from 'mingo/core';
import { Long, serialize } from 'bson';
import {
  canonicalKey,
  compareValues,
  toNumber,
  isPlainObject,
  newViewContext,
  pathValues,
  restoreFromView,
  toView,
  truthy,
  type Doc,
} from './bson-values.js';
import { openChangeStream } from './change-streams.js';
import { findInOplog, isOplog } from './oplog.js';
import { checkChangeStream, docdbStreamError, externalEvents, internalSpec, isDocumentDB } from './documentdb.js';
import {
  CLOSE_CONNECTION,
  cursorBatchSize,
  cursorReply,
  optionalNumber,
  readDocuments,
  retryableStatement,
  targetName,
  type CommandContext,
  type Handler,
} from './command-context.js';
import { DEFAULT_FIRST_BATCH, takeBatch, type StreamCursor } from './cursors.js';
import { CommandError, ErrorCodes, codeName, fail } from './errors.js';
import { asMingoError, collationComparator, collationFold, compileFilter, compileProjection, foldDoc, idCandidates, letVariables, parseSort, sortDocs } from './query.js';
import { idIntervals } from './id-index.js';
import { StorageEngine, type Collection } from './storage-engine.js';
import { applyUpdate, isOperatorUpdate, upsertSeed } from './update-engine.js';
import { deepCopy, type ViewContext } from './bson-values.js';
import { hasFullShardKey, hasIdEquality, shardKeyValues, untargetable, upsertWithoutShardKey } from './sharding.js';
import type { UpdateOutcome } from './update-engine.js';

/**
 * mongos' rules for one update statement on a sharded collection (sharding.ts cites them):
 * targeting before the write, shard key value changes per matched document.
 */
function shardedUpdateCheck(ctx: CommandContext, name: string, spec: Doc): ((before: Doc, outcome: UpdateOutcome) => void) | undefined {
  const key = ctx.server.sharding?.keyOf(ctx.db, name);
  if (!key) return undefined;
  const multi = truthy(spec.multi);
  if (truthy(spec.upsert) && !hasFullShardKey(spec.q, key)) upsertWithoutShardKey(`${ctx.db}.${name}`, key);
  if (!multi && !hasFullShardKey(spec.q, key) && !hasIdEquality(spec.q)) untargetable('update');
  return (before, outcome) => {
    if (outcome.kind === 'noop' || shardKeyValues(before, key) === shardKeyValues(outcome.doc, key)) return;
    if (multi) fail(ErrorCodes.InvalidOptions, 'Multi-update operations require all documents to have the same shard key');
    if (ctx.cmd.txnNumber === undefined || !hasFullShardKey(spec.q, key)) {
      fail(ErrorCodes.InvalidOptions, 'Must run update to shard key field in a multi-statement transaction or with retryWrites: true.');
    }
  };
}
import { versionAtLeast, type EmulatorProfile } from './profiles.js';

const DEFAULT_AWAIT_MS = 1000;

// ---------------------------------------------------------------------------------------------
// Matching

interface MatchOptions {
  filter: unknown;
  limit?: number;
  sort?: unknown;
  /** The operation's collation; absent: the collection's default collation (from `create`). */
  collation?: unknown;
  /** The command's `let` variables. */
  variables?: unknown;
  /** The command's index hint: `{$natural: ±1}` scans instead of using the _id index. */
  hint?: unknown;
}

const isNaturalHint = (hint: unknown) => isPlainObject(hint) && '$natural' in hint;

/** Documents of a collection (or the documents of a view) matching `filter`, sorted, limited. */
function matchDocuments(ctx: CommandContext, collName: string, opts: MatchOptions): Doc[] {
  const { engine } = ctx.server;
  const coll = engine.collection(ctx.db, collName);
  // "If no collation is specified for the operation, the operation uses the collection's default
  // collation"; `{locale: 'simple'}` asks for binary comparison (https://www.mongodb.com/docs/manual/reference/collation/).
  const collation = opts.collation ?? (coll && !coll.isView ? coll.options.collation : undefined);
  const predicate = compileFilter(opts.filter, { collation, variables: opts.variables });
  const sort = parseSort(opts.sort);
  const compare = collationComparator(collation);
  const stopAt = sort ? Infinity : (opts.limit ?? Infinity);
  let source: Iterable<Doc>;
  // The _id index (id-index.ts) compares binary; under a non-simple collation a string _id may
  // match others. A {$natural: 1} hint forces a collection scan
  // (https://www.mongodb.com/docs/manual/reference/operator/meta/natural/).
  const byId = coll && !coll.isView && !collationFold(collation) && !isNaturalHint(opts.hint) ? coll : undefined;
  const ids = byId ? idCandidates(opts.filter) : undefined;
  const keys = byId && !(ids && ids.length === 1) ? byId.idIndex.keysIn(idIntervals(opts.filter)) : undefined;
  if (byId && ids && ids.length === 1) {
    const d = byId.docs.get(canonicalKey(ids[0]));
    source = d ? [d] : [];
  } else if (byId && keys) {
    // The documents in the filter's _id intervals, in natural order, like a collection scan.
    source = keys.map((k) => byId.docs.get(k)!);
  } else {
    source = coll?.isView ? readDocuments(engine, ctx.db, collName) : (coll?.docs.values() ?? []);
  }
  const out: Doc[] = [];
  for (const d of source) {
    if (out.length >= stopAt) break;
    if (predicate(d)) out.push(d);
  }
  return sort ? sortDocs(out, sort, compare) : out;
}

// ---------------------------------------------------------------------------------------------
// Reads

const find: Handler = (ctx) => {
  const name = targetName(ctx);
  const { cmd } = ctx;
  const skip = optionalNumber(cmd.skip, 'skip') ?? 0;
  let limit = optionalNumber(cmd.limit, 'limit') ?? 0;
  let singleBatch = truthy(cmd.singleBatch);
  if (limit < 0) {
    limit = -limit;
    singleBatch = true;
  }
  let docs = isOplog(ctx, name)
    ? findInOplog(ctx, { filter: cmd.filter, sort: cmd.sort, limit: limit ? skip + limit : undefined })
    : matchDocuments(ctx, name, { filter: cmd.filter, sort: cmd.sort, limit: limit ? skip + limit : undefined, collation: cmd.collation, variables: cmd.let, hint: cmd.hint });
  docs = docs.slice(skip, limit ? skip + limit : undefined);
  const projector = compileProjection(cmd.projection);
  if (projector) docs = docs.map(projector);
  let batchSize = optionalNumber(cmd.batchSize, 'batchSize');
  if (limit && (batchSize === undefined || batchSize > limit)) batchSize = limit;
  return cursorReply(ctx, `${ctx.db}.${name}`, docs, batchSize, singleBatch);
};

const getMore: Handler = async (ctx) => {
  const { cmd, server } = ctx;
  const id = cmd.getMore;
  const cursor = server.cursors.get(id);
  if (!cursor) fail(ErrorCodes.CursorNotFound, `cursor id ${String(id)} not found`);
  const batchSize = optionalNumber(cmd.batchSize, 'batchSize');
  if (cursor.kind === 'query') {
    const nextBatch = takeBatch(cursor, batchSize || Infinity);
    const done = cursor.pos >= cursor.docs.length;
    if (done) server.cursors.close(cursor.id);
    return { cursor: { nextBatch, id: done ? Long.ZERO : cursor.id, ns: cursor.ns }, ok: 1 };
  }
  return streamGetMore(ctx, cursor, batchSize || Infinity);
};

/**
 * `postBatchResumeToken` of a change stream batch. DocumentDB: undocumented whether (and in what
 * form) it returns one, so the documentdb profiles never do — the less convenient answer: a
 * client has a resume point only once an event arrived.
 */
function streamResumeToken(ctx: CommandContext, token: Doc): { postBatchResumeToken?: Doc } {
  return isDocumentDB(ctx.server.profile) ? {} : { postBatchResumeToken: token };
}

async function streamGetMore(ctx: CommandContext, cursor: StreamCursor, max: number): Promise<Doc> {
  const { server, cmd } = ctx;
  const deadline = Date.now() + (optionalNumber(cmd.maxTimeMS, 'maxTimeMS') ?? DEFAULT_AWAIT_MS);
  // A getMore that fails (e.g. BSONObjectTooLarge) kills the cursor, as the server does.
  const read = () => {
    try {
      return cursor.stream.read(max, 'getMore');
    } catch (err) {
      server.cursors.close(cursor.id);
      throw docdbStreamError(server.profile, err);
    }
  };
  let batch = read();
  while (batch.events.length === 0 && !batch.finished && !cursor.killed) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    cursor.cancelWait = {};
    await server.engine.history.waitForAppend(remaining, cursor.cancelWait);
    cursor.cancelWait = undefined;
    if (cursor.killed) break;
    batch = read();
  }
  const closed = batch.finished || cursor.killed;
  if (closed) server.cursors.close(cursor.id);
  return {
    cursor: { nextBatch: externalEvents(server.profile, batch.events), ...streamResumeToken(ctx, batch.postBatchResumeToken), id: closed ? Long.ZERO : cursor.id, ns: cursor.ns },
    ok: 1,
  };
}

const killCursors: Handler = (ctx) => {
  const ids = Array.isArray(ctx.cmd.cursors) ? ctx.cmd.cursors : [];
  const killed: unknown[] = [];
  const notFound: unknown[] = [];
  for (const id of ids) (ctx.server.cursors.kill(id) ? killed : notFound).push(id);
  return { cursorsKilled: killed, cursorsNotFound: notFound, cursorsAlive: [], cursorsUnknown: [], ok: 1 };
};

const count: Handler = (ctx) => {
  const name = targetName(ctx);
  const skip = optionalNumber(ctx.cmd.skip, 'skip') ?? 0;
  const limit = Math.abs(optionalNumber(ctx.cmd.limit, 'limit') ?? 0);
  const coll = ctx.server.engine.collection(ctx.db, name);
  let n: number;
  if (isOplog(ctx, name)) n = findInOplog(ctx, { filter: ctx.cmd.query, sort: undefined }).length;
  else if (!ctx.cmd.query || (isPlainObject(ctx.cmd.query) && Object.keys(ctx.cmd.query).length === 0)) {
    n = coll?.isView ? readDocuments(ctx.server.engine, ctx.db, name).length : (coll?.docs.size ?? 0);
  } else {
    n = matchDocuments(ctx, name, { filter: ctx.cmd.query, collation: ctx.cmd.collation }).length;
  }
  n = Math.max(0, n - skip);
  if (limit) n = Math.min(n, limit);
  return { n, ok: 1 };
};

const distinct: Handler = (ctx) => {
  const name = targetName(ctx);
  const key = ctx.cmd.key;
  if (typeof key !== 'string') fail(ErrorCodes.TypeMismatch, "'key' must be a string");
  const seen = new Map<string, unknown>();
  const fold = collationFold(ctx.cmd.collation);
  for (const d of matchDocuments(ctx, name, { filter: ctx.cmd.query, collation: ctx.cmd.collation })) {
    for (const v of pathValues(d, key.split('.'))) {
      for (const x of Array.isArray(v) ? v : [v]) {
        const k = canonicalKey(fold ? foldDoc(x, fold) : x);
        if (!seen.has(k)) seen.set(k, x);
      }
    }
  }
  return { values: [...seen.values()].sort(compareValues), ok: 1 };
};

const aggregate: Handler = (ctx) => {
  const { cmd, db, server } = ctx;
  const target = cmd.aggregate;
  if (!Array.isArray(cmd.pipeline)) fail(ErrorCodes.TypeMismatch, "'pipeline' option must be specified as an array");
  const pipeline = cmd.pipeline as Doc[];
  if (cmd.explain) fail(ErrorCodes.IllegalOperation, 'explain is not supported by the mongo emulator');
  if (typeof target !== 'string' && !(target !== null && typeof target === 'object' && Number((target as { valueOf(): number }).valueOf()) === 1)) {
    fail(ErrorCodes.InvalidNamespace, "Invalid aggregate namespace: 'aggregate' must be a collection name or 1");
  }
  const batchSize = cursorBatchSize(ctx);
  if (pipeline.length && isPlainObject(pipeline[0]) && '$changeStream' in pipeline[0]) {
    let spec = pipeline[0].$changeStream;
    if (isPlainObject(spec) && isDocumentDB(server.profile)) {
      checkChangeStream(ctx, spec, pipeline.slice(1) as Doc[], target);
      spec = internalSpec(server.profile, spec);
    }
    const ns = typeof target === 'string' ? `${db}.${target}` : `${db}.$cmd.aggregate`;
    let stream: ReturnType<typeof openChangeStream>;
    let batch: ReturnType<ReturnType<typeof openChangeStream>['read']>;
    try {
      stream = openChangeStream(server.engine, db, typeof target === 'string' ? target : 1, [{ $changeStream: spec }, ...pipeline.slice(1)], server.profile);
      batch = stream.read(batchSize ?? DEFAULT_FIRST_BATCH, 'aggregate');
    } catch (err) {
      throw docdbStreamError(server.profile, err);
    }
    const id = batch.finished ? Long.ZERO : server.cursors.openStream(ns, stream).id;
    return { cursor: { firstBatch: externalEvents(server.profile, batch.events), ...streamResumeToken(ctx, batch.postBatchResumeToken), id, ns }, ok: 1 };
  }
  const last = pipeline[pipeline.length - 1];
  const outTarget = last && isPlainObject(last) ? (last.$out ?? last.$merge) : undefined;
  let stages = outTarget === undefined ? pipeline : pipeline.slice(0, -1);
  let source = typeof target === 'string' ? readDocuments(server.engine, db, target) : [];
  // $listLocalSessions (a leading stage of a database aggregate): the sessions this server has
  // seen, {_id: {id, uid}, lastUse} (https://www.mongodb.com/docs/manual/reference/operator/aggregation/listLocalSessions/).
  if (target !== null && typeof target !== 'string' && isPlainObject(stages[0]) && '$listLocalSessions' in stages[0]) {
    source = [...server.localSessions.values()].map(deepCopy);
    stages = stages.slice(1);
  }
  // The leading $match stages are filtered here, as find filters: with the query engine's BSON
  // $type and range operators (query.ts) and the collation; later stages compare binary.
  // A $match with $expr stays in the pipeline: its aggregation expressions ($bsonSize…) are the
  // aggregation engine's (its context below), not the find filter's.
  while (stages.length && isPlainObject(stages[0]) && '$match' in stages[0] && !mentionsKey(stages[0].$match, '$expr')) {
    const predicate = compileFilter(stages[0].$match, { collation: cmd.collation, variables: cmd.let });
    source = source.filter(predicate);
    stages = stages.slice(1);
  }
  const vctx = newViewContext();
  // $sort under the operation's collation, else the collection's default (mingo applies a
  // collation in $sort); {locale: 'simple'} is binary, mingo's default.
  const coll = typeof target === 'string' ? server.engine.collection(db, target) : undefined;
  const collation = (cmd.collation ?? (coll && !coll.isView ? coll.options.collation : undefined)) as Doc | undefined;
  if (collation !== undefined) collationComparator(collation); // validates it
  const sortCollation = collation && collation.locale !== 'simple' ? { collation: collation as never } : {};
  let results: Doc[];
  try {
    const agg = new Aggregator(
      stages.map((s) => toView(s) as Doc),
      {
        collectionResolver: (name: string) => readDocuments(server.engine, db, name).map((d) => toView(d, vctx) as Doc),
        ...(isPlainObject(cmd.let) ? { variables: letVariables(cmd.let) } : {}),
        ...sortCollation,
        ...(hasBsonSize(server.profile) ? { context: bsonSizeContext(vctx) } : {}),
      },
    );
    results = agg.run(source.map((d) => toView(d, vctx) as Doc)).map((r) => restoreFromView(r, vctx) as Doc);
  } catch (err) {
    asMingoError(err);
  }
  if (outTarget !== undefined) {
    // Neither output stage may run under linearizable read concern
    // (https://www.mongodb.com/docs/manual/reference/read-concern-linearizable/).
    if (isPlainObject(cmd.readConcern) && cmd.readConcern.level === 'linearizable') {
      fail(ErrorCodes.InvalidOptions, `${'$merge' in last ? '$merge' : '$out'} cannot be used with a 'linearizable' read concern level`);
    }
  }
  if (outTarget !== undefined && '$merge' in last) {
    mergeInto(ctx, last.$merge, results);
    results = [];
  } else if (outTarget !== undefined) {
    const outName = typeof outTarget === 'string' ? outTarget : String((outTarget as Doc).coll);
    const outDb = typeof outTarget === 'string' ? db : String((outTarget as Doc).db ?? db);
    server.engine.replaceContents(outDb, outName, results.map(deepCopy));
    results = [];
  }
  const ns = typeof target === 'string' ? `${db}.${target}` : `${db}.$cmd.aggregate`;
  return cursorReply(ctx, ns, results, batchSize);
};

/**
 * $merge (https://www.mongodb.com/docs/manual/reference/operator/aggregation/merge/): `into` (a
 * name or {db, coll}), `on` (default _id), whenMatched replace | keepExisting | merge (default) |
 * fail | an update pipeline (with $$new), whenNotMatched insert (default) | discard | fail.
 */
function mergeInto(ctx: CommandContext, spec: unknown, results: Doc[]): void {
  const s: Doc = typeof spec === 'string' ? { into: spec } : isPlainObject(spec) ? spec : fail(ErrorCodes.FailedToParse, '$merge requires a string or object argument');
  const into = s.into;
  const outDb = isPlainObject(into) ? String(into.db ?? ctx.db) : ctx.db;
  const outName = isPlainObject(into) ? String(into.coll) : String(into);
  const on = s.on === undefined ? ['_id'] : Array.isArray(s.on) ? (s.on as string[]) : [String(s.on)];
  const whenMatched = s.whenMatched ?? 'merge';
  const whenNotMatched = s.whenNotMatched ?? 'insert';
  const engine = ctx.server.engine;
  const coll = engine.writableCollection(outDb, outName);
  for (const raw of results) {
    const doc = deepCopy(raw);
    const filter: Doc = {};
    for (const f of on) filter[f] = pathValues(doc, f.split('.'))[0] ?? null;
    const existing = on.length === 1 && on[0] === '_id' && '_id' in doc ? coll.byId(doc._id) : [...coll.docs.values()].find(compileFilter(filter));
    if (!existing) {
      if (whenNotMatched === 'discard') continue;
      if (whenNotMatched === 'fail') fail(13113, `$merge could not find a matching document in the target collection for at least one document in the source collection`);
      validateWrite(ctx, coll, doc);
      engine.insert(coll, doc);
      continue;
    }
    if (whenMatched === 'keepExisting') continue;
    if (whenMatched === 'fail') {
      // The insert attempt the server makes fails on the unique key, with its keyPattern/keyValue.
      engine.insert(coll, doc);
      continue;
    }
    let next: Doc;
    if (Array.isArray(whenMatched)) {
      const vctx = newViewContext();
      const agg = new Aggregator((whenMatched as Doc[]).map((st) => toView(st) as Doc), { variables: { new: toView(doc, vctx) as Doc, ...(isPlainObject(s.let) ? (toView(s.let) as Doc) : {}) } });
      next = restoreFromView(agg.run([toView(existing, vctx) as Doc])[0], vctx) as Doc;
    } else if (whenMatched === 'replace') {
      next = { ...doc, _id: existing._id };
    } else {
      next = { ...existing, ...doc, _id: existing._id };
    }
    const outcome = applyUpdate(existing, Object.fromEntries(Object.entries(next).filter(([k]) => k !== '_id')), {});
    validateWrite(ctx, coll, outcome.doc, existing);
    engine.update(coll, existing, outcome);
  }
}

// ---------------------------------------------------------------------------------------------
// Writes

/**
 * Before 5.0 a document may not have `$`-prefixed field names (DBRef's $ref/$id/$db aside); from
 * 5.0 it may (https://www.mongodb.com/docs/manual/core/dot-dollar-considerations/). Inserts were
 * checked at the top level only, replacements throughout (MongoDB's spec tests
 * crud/*-dots_and_dollars.json assert both on pre-5.0 servers).
 */
function checkFieldNames(ctx: CommandContext, doc: unknown, deep: boolean): void {
  if (versionAtLeast(ctx.server.profile, 5)) return;
  const visit = (v: unknown, top: boolean): void => {
    if (Array.isArray(v)) v.forEach((x) => visit(x, false));
    if (!isPlainObject(v) || (!top && !deep)) return;
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('$') && k !== '$ref' && k !== '$id' && k !== '$db') fail(ErrorCodes.DollarPrefixedFieldName, `Document can't have $ prefixed field names: ${k}`);
      visit(x, false);
    }
  };
  visit(doc, true);
}

/**
 * Schema validation (https://www.mongodb.com/docs/manual/core/schema-validation/): a collection's
 * query-operator `validator` checks inserted and updated documents unless the command sets
 * bypassDocumentValidation; validationLevel 'moderate' skips updates of documents that did not
 * match before, 'off' skips everything; validationAction 'warn' only logs. A failure is
 * DocumentValidationFailure (121) with errInfo {failingDocumentId, details}. `$jsonSchema`
 * validators are not evaluated here and fail loudly instead of passing silently.
 */
function validateWrite(ctx: CommandContext, coll: Collection, doc: Doc, before?: Doc): void {
  const v = coll.options.validator;
  if (!isPlainObject(v) || Object.keys(v).length === 0 || truthy(ctx.cmd.bypassDocumentValidation)) return;
  const level = coll.options.validationLevel ?? 'strict';
  if (level === 'off' || coll.options.validationAction === 'warn') return;
  if ('$jsonSchema' in v) fail(ErrorCodes.IllegalOperation, '$jsonSchema validators are not supported by the mongo emulator');
  const ok = compileFilter(v);
  if (level === 'moderate' && before && !ok(before)) return;
  if (!ok(doc)) {
    throw new CommandError(121, 'Document failed validation', {
      errInfo: { failingDocumentId: doc._id, details: { operatorName: '$and', clausesNotSatisfied: [] } },
    });
  }
}

function writeError(index: number, err: unknown): Doc {
  if (err instanceof CommandError) return { index, code: err.code, ...err.extra, errmsg: err.message };
  return { index, code: 1, errmsg: String((err as Error).message ?? err) };
}

/** Runs `op` for each statement of a write command, honouring `ordered`. */
function eachStatement<T>(ctx: CommandContext, items: T[], op: (item: T, index: number) => void): Doc[] {
  const ordered = ctx.cmd.ordered !== false;
  const errors: Doc[] = [];
  for (let i = 0; i < items.length; i++) {
    try {
      op(items[i], i);
    } catch (err) {
      if (err === CLOSE_CONNECTION) throw err;
      errors.push(writeError(i, err));
      if (ordered) break;
    }
  }
  return errors;
}

function statements(ctx: CommandContext, field: string): Doc[] {
  const v = ctx.cmd[field];
  if (!Array.isArray(v)) fail(ErrorCodes.FailedToParse, `BSON field '${ctx.name}.${field}' is missing but a required field`);
  return v as Doc[];
}

function withErrors(reply: Doc, errors: Doc[]): Doc {
  if (errors.length) reply.writeErrors = errors;
  return reply;
}

const insert: Handler = (ctx) => {
  const name = targetName(ctx);
  const docs = statements(ctx, 'documents');
  const coll = ctx.server.engine.writableCollection(ctx.db, name);
  let n = 0;
  const errors = eachStatement(ctx, docs, (doc, index) => {
    retryableStatement(ctx, index, () => {
      checkFieldNames(ctx, doc, false);
      validateWrite(ctx, coll, StorageEngine.prepareInsert(doc));
      ctx.server.engine.insert(coll, doc);
      return { n: 1 };
    });
    n++;
  });
  return withErrors({ n, ok: 1 }, errors);
};

interface UpsertResult {
  matched: number;
  modified: number;
  upsertedId?: unknown;
}

function upsertInsert(ctx: CommandContext, coll: Collection, filter: unknown, update: unknown, arrayFilters: Doc[] | undefined): Doc {
  let doc: Doc;
  if (Array.isArray(update) || isOperatorUpdate(update)) {
    const seed = upsertSeed(filter);
    const outcome = applyUpdate(seed, update, { isInsert: true, query: filter as Doc, arrayFilters });
    doc = outcome.doc;
  } else {
    doc = deepCopy(update as Doc);
    const seed = upsertSeed(filter);
    if (!('_id' in doc) && '_id' in seed) doc = { _id: seed._id, ...doc };
  }
  checkFieldNames(ctx, doc, false);
  validateWrite(ctx, coll, StorageEngine.prepareInsert(doc));
  return ctx.server.engine.insert(coll, doc);
}

/** The target collection, created only when a write actually needs it (as the server does). */
function lazyCollection(ctx: CommandContext, name: string): () => Collection {
  return () => ctx.server.engine.writableCollection(ctx.db, name);
}

function updateStatement(ctx: CommandContext, coll: () => Collection, name: string, spec: Doc): UpsertResult {
  const multi = truthy(spec.multi);
  // `sort` in an update statement is new in 8.0 (https://www.mongodb.com/docs/manual/reference/command/update/);
  // earlier servers refuse the unknown field.
  if (spec.sort !== undefined && !versionAtLeast(ctx.server.profile, 8)) fail(40415, "BSON field 'update.updates.sort' is an unknown field.");
  const arrayFilters = Array.isArray(spec.arrayFilters) ? (spec.arrayFilters as Doc[]) : undefined;
  if (multi && isPlainObject(spec.u) && !isOperatorUpdate(spec.u)) {
    fail(ErrorCodes.FailedToParse, 'multi update is not supported for replacement-style update');
  }
  const sharded = shardedUpdateCheck(ctx, name, spec);
  const matches = matchDocuments(ctx, name, { filter: spec.q, limit: multi ? undefined : 1, sort: spec.sort, collation: spec.collation, variables: ctx.cmd.let });
  let modified = 0;
  for (const doc of multi ? matches : matches.slice(0, 1)) {
    const outcome = applyUpdate(doc, spec.u, { query: spec.q as Doc, arrayFilters, variables: ctx.cmd.let });
    sharded?.(doc, outcome);
    if (outcome.kind === 'replace') checkFieldNames(ctx, outcome.doc, true);
    if (outcome.kind !== 'noop') validateWrite(ctx, coll(), outcome.doc, doc);
    if (ctx.server.engine.update(coll(), doc, outcome)) modified++;
  }
  if (matches.length === 0 && truthy(spec.upsert)) {
    const inserted = upsertInsert(ctx, coll(), spec.q, spec.u, arrayFilters);
    return { matched: 0, modified: 0, upsertedId: inserted._id };
  }
  return { matched: multi ? matches.length : Math.min(1, matches.length), modified };
}

const update: Handler = (ctx) => {
  const name = targetName(ctx);
  const specs = statements(ctx, 'updates');
  const coll = lazyCollection(ctx, name);
  let n = 0;
  let nModified = 0;
  const upserted: Doc[] = [];
  const errors = eachStatement(ctx, specs, (spec, index) => {
    const r = retryableStatement(ctx, index, () => ({ ...updateStatement(ctx, coll, name, spec) })) as unknown as UpsertResult;
    n += r.matched;
    nModified += r.modified;
    if (r.upsertedId !== undefined) {
      n += 1;
      upserted.push({ index, _id: r.upsertedId });
    }
  });
  const reply: Doc = { n, nModified };
  if (upserted.length) reply.upserted = upserted;
  reply.ok = 1;
  return withErrors(reply, errors);
};

const deleteCommand: Handler = (ctx) => {
  const name = targetName(ctx);
  const specs = statements(ctx, 'deletes');
  const coll = ctx.server.engine.collection(ctx.db, name);
  if (coll?.isView) fail(ErrorCodes.CommandNotSupportedOnView, `Namespace ${coll.ns} is a view, not a collection`);
  let n = 0;
  const key = ctx.server.sharding?.keyOf(ctx.db, name);
  const errors = eachStatement(ctx, specs, (spec, index) => {
    const targeted = optionalNumber(spec.limit, 'limit') ?? 0;
    if (key && targeted === 1 && !hasFullShardKey(spec.q, key) && !hasIdEquality(spec.q)) untargetable('delete');
    const r = retryableStatement(ctx, index, () => {
      let removed = 0;
      if (!coll) return { n: 0 };
      const limit = optionalNumber(spec.limit, 'limit') ?? 0;
      for (const doc of matchDocuments(ctx, name, { filter: spec.q, limit: limit === 1 ? 1 : undefined, sort: spec.sort, collation: spec.collation, variables: ctx.cmd.let })) {
        ctx.server.engine.remove(coll, doc);
        removed++;
        if (limit === 1) break;
      }
      return { n: removed };
    });
    n += Number(r.n);
  });
  return withErrors({ n, ok: 1 }, errors);
};

const findAndModify: Handler = (ctx) => ({ ...retryableStatement(ctx, 0, () => findAndModifyOnce(ctx)) });

function findAndModifyOnce(ctx: CommandContext): Doc {
  const name = targetName(ctx);
  const { cmd } = ctx;
  const remove = truthy(cmd.remove);
  if (remove && cmd.update !== undefined) fail(ErrorCodes.FailedToParse, 'Cannot specify both an update and remove=true');
  if (!remove && cmd.update === undefined) fail(ErrorCodes.FailedToParse, 'Either an update or remove=true must be specified');
  const coll = lazyCollection(ctx, name);
  const shardKey = ctx.server.sharding?.keyOf(ctx.db, name);
  if (shardKey && !hasFullShardKey(cmd.query, shardKey)) fail(ErrorCodes.ShardKeyNotFound, `Query for sharded findAndModify must contain the shard key`);
  const projector = compileProjection(cmd.fields);
  const project = (d: Doc | null): Doc | null => (d && projector ? projector(d) : d);
  const doc = matchDocuments(ctx, name, { filter: cmd.query, sort: cmd.sort, limit: 1, collation: cmd.collation, variables: cmd.let })[0];
  const arrayFilters = Array.isArray(cmd.arrayFilters) ? (cmd.arrayFilters as Doc[]) : undefined;
  if (remove) {
    if (doc) ctx.server.engine.remove(coll(), doc);
    return { lastErrorObject: { n: doc ? 1 : 0 }, value: project(doc ?? null), ok: 1 };
  }
  if (doc) {
    const outcome = applyUpdate(doc, cmd.update, { query: cmd.query as Doc, arrayFilters, variables: cmd.let });
    shardedUpdateCheck(ctx, name, { q: cmd.query, u: cmd.update })?.(doc, outcome);
    if (outcome.kind === 'replace') checkFieldNames(ctx, outcome.doc, true);
    if (outcome.kind !== 'noop') validateWrite(ctx, coll(), outcome.doc, doc);
    ctx.server.engine.update(coll(), doc, outcome);
    return { lastErrorObject: { n: 1, updatedExisting: true }, value: project(truthy(cmd.new) ? outcome.doc : doc), ok: 1 };
  }
  if (truthy(cmd.upsert)) {
    const inserted = upsertInsert(ctx, coll(), cmd.query, cmd.update, arrayFilters);
    return {
      lastErrorObject: { n: 1, updatedExisting: false, upserted: inserted._id },
      value: project(truthy(cmd.new) ? inserted : null),
      ok: 1,
    };
  }
  return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
}

/**
 * bulkWrite, the 8.0 cross-namespace write command (https://www.mongodb.com/docs/manual/reference/command/bulkWrite/):
 * `ops` of {insert: nsIndex, document} | {update: nsIndex, filter, updateMods, multi, upsert,
 * arrayFilters, collation, hint, sort} | {delete: nsIndex, filter, multi, collation, hint}, with
 * `nsInfo: [{ns}]`; run on admin. Replies with a cursor of per-operation results ({ok, idx, n,
 * nModified, upserted}; only the errors with errorsOnly) and the summary counts.
 */
const bulkWrite: Handler = (ctx) => {
  const { cmd } = ctx;
  if (!versionAtLeast(ctx.server.profile, 8)) fail(ErrorCodes.CommandNotFound, "no such command: 'bulkWrite'");
  if (ctx.db !== 'admin') fail(ErrorCodes.Unauthorized, 'bulkWrite may only be run against the admin database.');
  const ops = Array.isArray(cmd.ops) ? (cmd.ops as Doc[]) : fail(ErrorCodes.FailedToParse, "BSON field 'bulkWrite.ops' is missing but a required field");
  const nsInfo = Array.isArray(cmd.nsInfo) ? (cmd.nsInfo as Doc[]) : fail(ErrorCodes.FailedToParse, "BSON field 'bulkWrite.nsInfo' is missing but a required field");
  const ordered = cmd.ordered !== false;
  const results: Doc[] = [];
  const counts = { nErrors: 0, nInserted: 0, nMatched: 0, nModified: 0, nUpserted: 0, nDeleted: 0 };
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    try {
      const kind = 'insert' in op ? 'insert' : 'update' in op ? 'update' : 'delete' in op ? 'delete' : fail(ErrorCodes.FailedToParse, 'Unrecognized bulkWrite operation');
      const info = nsInfo[toNumber(op[kind])];
      if (!isPlainObject(info) || typeof info.ns !== 'string') fail(ErrorCodes.BadValue, `BulkWrite ops entry ${i} has an invalid nsInfo index`);
      const dot = info.ns.indexOf('.');
      const dbName = info.ns.slice(0, dot);
      const collName = info.ns.slice(dot + 1);
      const sub: CommandContext = { ...ctx, db: dbName };
      const r = retryableStatement(sub, i, () => {
        if (kind === 'insert') {
          const coll = ctx.server.engine.writableCollection(dbName, collName);
          checkFieldNames(sub, op.document, false);
          validateWrite(sub, coll, StorageEngine.prepareInsert(op.document as Doc));
          ctx.server.engine.insert(coll, op.document as Doc);
          return { ok: 1, idx: i, n: 1 };
        }
        if (kind === 'update') {
          const spec: Doc = { q: op.filter, u: op.updateMods, multi: op.multi, upsert: op.upsert, arrayFilters: op.arrayFilters, collation: op.collation, hint: op.hint };
          if (op.sort !== undefined) spec.sort = op.sort;
          const u = updateStatement(sub, lazyCollection(sub, collName), collName, spec);
          const out: Doc = { ok: 1, idx: i, n: u.matched + (u.upsertedId === undefined ? 0 : 1), nModified: u.modified };
          if (u.upsertedId !== undefined) out.upserted = { _id: u.upsertedId };
          return out;
        }
        const coll = ctx.server.engine.collection(dbName, collName);
        let n = 0;
        if (coll) {
          for (const doc of matchDocuments(sub, collName, { filter: op.filter, limit: truthy(op.multi) ? undefined : 1, collation: op.collation, variables: cmd.let })) {
            ctx.server.engine.remove(coll, doc);
            n++;
            if (!truthy(op.multi)) break;
          }
        }
        return { ok: 1, idx: i, n };
      });
      if (kind === 'insert') counts.nInserted += 1;
      else if (kind === 'delete') counts.nDeleted += Number(r.n);
      else {
        const upserted = r.upserted !== undefined;
        counts.nMatched += Number(r.n) - (upserted ? 1 : 0);
        counts.nModified += Number(r.nModified);
        if (upserted) counts.nUpserted += 1;
      }
      results.push(r);
    } catch (err) {
      if (err === CLOSE_CONNECTION) throw err;
      const e = err instanceof CommandError ? err : new CommandError(1, String((err as Error).message ?? err));
      results.push({ ok: 0, idx: i, code: e.code, codeName: codeName(e.code), errmsg: e.message, ...e.extra });
      counts.nErrors++;
      if (ordered) break;
    }
  }
  const firstBatch = truthy(cmd.errorsOnly) ? results.filter((r) => r.ok === 0) : results;
  return { cursor: { id: Long.ZERO, firstBatch, ns: 'admin.$cmd.bulkWrite' }, ...counts, ok: 1 };
};

export const crudCommands: Record<string, Handler> = {
  bulkWrite,
  find,
  getMore,
  killCursors,
  count,
  distinct,
  aggregate,
  insert,
  update,
  delete: deleteCommand,
  findAndModify,
  findandmodify: findAndModify,
};

/** Commands that are retryable writes (deduplicated per lsid + txnNumber). */
export const RETRYABLE_WRITES = new Set(['insert', 'update', 'delete', 'findAndModify', 'findandmodify', 'bulkWrite']);

/**
 * `$bsonSize` (new in MongoDB 4.4: https://www.mongodb.com/docs/manual/reference/operator/aggregation/bsonSize/):
 * the size in bytes of an object encoded as BSON, null for null or a missing value, an error for
 * anything else (the error code is undocumented). Measured on the stored BSON behind the value
 * mingo sees (the view context maps it back), so types and sizes are exact. Not on the DocumentDB
 * profiles: AWS's supported-API list does not have it
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html), so it stays an
 * unknown operator there.
 */
function hasBsonSize(profile: EmulatorProfile): boolean {
  return !isDocumentDB(profile) && versionAtLeast(profile, 4, 4);
}

function bsonSizeContext(vctx: ViewContext): Context {
  return Context.init({
    expression: {
      $bsonSize: (obj: unknown, expr: unknown, options: Parameters<typeof evalExpr>[2]): number | null => {
        const v: unknown = evalExpr(obj as never, expr as never, options);
        if (v === null || v === undefined) return null;
        if (!isPlainObject(v)) throw new CommandError(ErrorCodes.TypeMismatch, `$bsonSize requires a document input, found: ${Array.isArray(v) ? 'array' : typeof v}`);
        // serialize, not calculateObjectSize: bson 6.10's calculateObjectSize counts an Int32 as a document.
        return serialize(restoreFromView(v, vctx) as Doc).length;
      },
    },
  });
}

/** Whether `key` appears as a field name anywhere in `v` (objects and arrays, recursively). */
function mentionsKey(v: unknown, key: string): boolean {
  if (Array.isArray(v)) return v.some((x) => mentionsKey(x, key));
  if (!isPlainObject(v)) return false;
  return Object.entries(v).some(([k, x]) => k === key || mentionsKey(x, key));
}
