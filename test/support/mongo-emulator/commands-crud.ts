// Read and write commands: find, getMore, killCursors, count, distinct, aggregate (including
// $changeStream), insert, update, delete, findAndModify.
import { Aggregator } from 'mingo';
import { Long } from 'bson';
import {
  canonicalKey,
  compareValues,
  isPlainObject,
  newViewContext,
  pathValues,
  restoreFromView,
  toView,
  truthy,
  type Doc,
} from './bson-values.js';
import { openChangeStream } from './change-streams.js';
import {
  cursorBatchSize,
  cursorReply,
  optionalNumber,
  readDocuments,
  targetName,
  type CommandContext,
  type Handler,
} from './command-context.js';
import { DEFAULT_FIRST_BATCH, takeBatch, type StreamCursor } from './cursors.js';
import { CommandError, ErrorCodes, fail } from './errors.js';
import { asMingoError, collationComparator, compileFilter, compileProjection, idCandidates, parseSort, sortDocs } from './query.js';
import type { Collection } from './storage-engine.js';
import { applyUpdate, isOperatorUpdate, upsertSeed } from './update-engine.js';
import { deepCopy } from './bson-values.js';

const DEFAULT_AWAIT_MS = 1000;

// ---------------------------------------------------------------------------------------------
// Matching

interface MatchOptions {
  filter: unknown;
  limit?: number;
  sort?: unknown;
  /** The operation's collation; absent: the collection's default collation (from `create`). */
  collation?: unknown;
}

/** Documents of a collection (or the documents of a view) matching `filter`, sorted, limited. */
function matchDocuments(ctx: CommandContext, collName: string, opts: MatchOptions): Doc[] {
  const { engine } = ctx.server;
  const coll = engine.collection(ctx.db, collName);
  const predicate = compileFilter(opts.filter);
  const sort = parseSort(opts.sort);
  // "If no collation is specified for the operation, the operation uses the collection's default
  // collation"; `{locale: 'simple'}` asks for binary comparison (https://www.mongodb.com/docs/manual/reference/collation/).
  const compare = collationComparator(opts.collation ?? (coll && !coll.isView ? coll.options.collation : undefined));
  const stopAt = sort ? Infinity : (opts.limit ?? Infinity);
  let source: Iterable<Doc>;
  const ids = coll && !coll.isView ? idCandidates(opts.filter) : undefined;
  if (coll && ids && ids.length === 1) {
    const d = coll.docs.get(canonicalKey(ids[0]));
    source = d ? [d] : [];
  } else if (coll && ids) {
    // Several pinned _ids: one pass in natural order, like a collection scan.
    const wanted = new Set(ids.map((id) => canonicalKey(id)));
    source = [...coll.docs.entries()].filter(([k]) => wanted.has(k)).map(([, d]) => d);
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
  let docs = matchDocuments(ctx, name, { filter: cmd.filter, sort: cmd.sort, limit: limit ? skip + limit : undefined, collation: cmd.collation });
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

async function streamGetMore(ctx: CommandContext, cursor: StreamCursor, max: number): Promise<Doc> {
  const { server, cmd } = ctx;
  const deadline = Date.now() + (optionalNumber(cmd.maxTimeMS, 'maxTimeMS') ?? DEFAULT_AWAIT_MS);
  let batch = cursor.stream.read(max, 'getMore');
  while (batch.events.length === 0 && !batch.finished && !cursor.killed) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    cursor.cancelWait = {};
    await server.engine.history.waitForAppend(remaining, cursor.cancelWait);
    cursor.cancelWait = undefined;
    if (cursor.killed) break;
    batch = cursor.stream.read(max, 'getMore');
  }
  const closed = batch.finished || cursor.killed;
  if (closed) server.cursors.close(cursor.id);
  return {
    cursor: { nextBatch: batch.events, postBatchResumeToken: batch.postBatchResumeToken, id: closed ? Long.ZERO : cursor.id, ns: cursor.ns },
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
  if (!ctx.cmd.query || (isPlainObject(ctx.cmd.query) && Object.keys(ctx.cmd.query).length === 0)) {
    n = coll?.isView ? readDocuments(ctx.server.engine, ctx.db, name).length : (coll?.docs.size ?? 0);
  } else {
    n = matchDocuments(ctx, name, { filter: ctx.cmd.query }).length;
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
  for (const d of matchDocuments(ctx, name, { filter: ctx.cmd.query })) {
    for (const v of pathValues(d, key.split('.'))) {
      for (const x of Array.isArray(v) ? v : [v]) {
        const k = canonicalKey(x);
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
    const stream = openChangeStream(server.engine, db, typeof target === 'string' ? target : 1, pipeline);
    const ns = typeof target === 'string' ? `${db}.${target}` : `${db}.$cmd.aggregate`;
    const batch = stream.read(batchSize ?? DEFAULT_FIRST_BATCH, 'aggregate');
    const id = batch.finished ? Long.ZERO : server.cursors.openStream(ns, stream).id;
    return { cursor: { firstBatch: batch.events, postBatchResumeToken: batch.postBatchResumeToken, id, ns }, ok: 1 };
  }
  const last = pipeline[pipeline.length - 1];
  const outTarget = last && isPlainObject(last) ? (last.$out ?? last.$merge) : undefined;
  const stages = outTarget === undefined ? pipeline : pipeline.slice(0, -1);
  const source = typeof target === 'string' ? readDocuments(server.engine, db, target) : [];
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
      { collectionResolver: (name: string) => readDocuments(server.engine, db, name).map((d) => toView(d, vctx) as Doc), ...sortCollation },
    );
    results = agg.run(source.map((d) => toView(d, vctx) as Doc)).map((r) => restoreFromView(r, vctx) as Doc);
  } catch (err) {
    asMingoError(err);
  }
  if (outTarget !== undefined) {
    if ('$merge' in last) fail(ErrorCodes.IllegalOperation, '$merge is not supported by the mongo emulator');
    const outName = typeof outTarget === 'string' ? outTarget : String((outTarget as Doc).coll);
    const outDb = typeof outTarget === 'string' ? db : String((outTarget as Doc).db ?? db);
    server.engine.replaceContents(outDb, outName, results.map(deepCopy));
    results = [];
  }
  const ns = typeof target === 'string' ? `${db}.${target}` : `${db}.$cmd.aggregate`;
  return cursorReply(ctx, ns, results, batchSize);
};

// ---------------------------------------------------------------------------------------------
// Writes

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
  const errors = eachStatement(ctx, docs, (doc) => {
    ctx.server.engine.insert(coll, doc);
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
  return ctx.server.engine.insert(coll, doc);
}

/** The target collection, created only when a write actually needs it (as the server does). */
function lazyCollection(ctx: CommandContext, name: string): () => Collection {
  return () => ctx.server.engine.writableCollection(ctx.db, name);
}

function updateStatement(ctx: CommandContext, coll: () => Collection, name: string, spec: Doc): UpsertResult {
  const multi = truthy(spec.multi);
  const arrayFilters = Array.isArray(spec.arrayFilters) ? (spec.arrayFilters as Doc[]) : undefined;
  if (multi && isPlainObject(spec.u) && !isOperatorUpdate(spec.u)) {
    fail(ErrorCodes.FailedToParse, 'multi update is not supported for replacement-style update');
  }
  const matches = matchDocuments(ctx, name, { filter: spec.q, limit: multi ? undefined : 1, sort: spec.sort });
  let modified = 0;
  for (const doc of multi ? matches : matches.slice(0, 1)) {
    const outcome = applyUpdate(doc, spec.u, { query: spec.q as Doc, arrayFilters });
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
    const r = updateStatement(ctx, coll, name, spec);
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
  const errors = eachStatement(ctx, specs, (spec) => {
    if (!coll) return;
    const limit = optionalNumber(spec.limit, 'limit') ?? 0;
    for (const doc of matchDocuments(ctx, name, { filter: spec.q, limit: limit === 1 ? 1 : undefined, sort: spec.sort })) {
      ctx.server.engine.remove(coll, doc);
      n++;
      if (limit === 1) break;
    }
  });
  return withErrors({ n, ok: 1 }, errors);
};

const findAndModify: Handler = (ctx) => {
  const name = targetName(ctx);
  const { cmd } = ctx;
  const remove = truthy(cmd.remove);
  if (remove && cmd.update !== undefined) fail(ErrorCodes.FailedToParse, 'Cannot specify both an update and remove=true');
  if (!remove && cmd.update === undefined) fail(ErrorCodes.FailedToParse, 'Either an update or remove=true must be specified');
  const coll = lazyCollection(ctx, name);
  const projector = compileProjection(cmd.fields);
  const project = (d: Doc | null): Doc | null => (d && projector ? projector(d) : d);
  const doc = matchDocuments(ctx, name, { filter: cmd.query, sort: cmd.sort, limit: 1 })[0];
  const arrayFilters = Array.isArray(cmd.arrayFilters) ? (cmd.arrayFilters as Doc[]) : undefined;
  if (remove) {
    if (doc) ctx.server.engine.remove(coll(), doc);
    return { lastErrorObject: { n: doc ? 1 : 0 }, value: project(doc ?? null), ok: 1 };
  }
  if (doc) {
    const outcome = applyUpdate(doc, cmd.update, { query: cmd.query as Doc, arrayFilters });
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
};

export const crudCommands: Record<string, Handler> = {
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
export const RETRYABLE_WRITES = new Set(['insert', 'update', 'delete', 'findAndModify', 'findandmodify']);
