/**
 * Schema reconcile at the cutover: after every shard applied the cutover barrier and the
 * pipelines stopped, and before the cutover verification, each selected collection's index specs
 * and collection options on the target are brought in line with the source's.
 *
 * Why: a source without expanded change events (Amazon DocumentDB, MongoDB before 6.0:
 * source/expanded-events.ts) never tells apply about an index built, dropped or changed, or a
 * collMod, after mongodump read the collection. Where the source has them, apply replays them
 * (apply/schema-replay.ts) and this pass is a safety net that should change nothing; whatever it
 * changes is logged (a warning there: replay missed it).
 *
 * What is compared is what `migrator verify` compares (src/db/compare-schema.ts compareIndexes,
 * compareOptions: normalised specs, indexes matched by what they are, a sharded target's shard
 * key index not counted). Then, per difference:
 *  - a collection missing on the target: created with the source's options;
 *  - an index missing: created (the source's spec); extra: dropped; different: when only
 *    `expireAfterSeconds` or `hidden` differ, changed in place with collMod (both are "Change Index
 *    Properties" of https://www.mongodb.com/docs/manual/reference/command/collMod/), else dropped
 *    and built again with the source's spec;
 *  - a collection option collMod can change (validator, validationLevel, validationAction, a
 *    clustered collection's expireAfterSeconds, changeStreamPreAndPostImages): set with collMod;
 *    options fixed at creation (collation, capped/size/max, clusteredIndex, storageEngine,
 *    indexOptionDefaults: e.g. a collection created after the dump on a source without expanded
 *    events arrives as a plain one) make the collection be created again with the source's
 *    options and its documents copied over (rebuildTargetCollection); what neither can fix (a
 *    time-series collection's options) is reported and left to the verification (which fails
 *    on it, exit 7, unless the user passed --ignore-schema).
 * Views of the selection missing on the target are created as the load creates them.
 * A step the target refuses (e.g. an index type Amazon DocumentDB does not support) is reported
 * and left to the verification too; transient errors are retried.
 *
 * TTL: this runs before the cutover restores the held TTL indexes (src/db/ttl-hold.ts), so a target
 * index at the held value with a recorded hold compares as its recorded original (unholdTtl, as
 * verify does), and an index this creates or a TTL it changes is held and recorded like a replayed
 * one (`ttl`): the restore that follows a passing verification gives each its source value.
 */
import type { Document, MongoClient } from 'mongodb';
import { readShardKeys } from '../db/shard-keys.js';
import type { TtlHoldStore } from '../db/ttl-hold.js';
import {
  COLLMOD_OPTIONS,
  collectionCreateOptions,
  createTargetCollection,
  createTargetIndex,
  dropTargetIndex,
  modifyTargetCollection,
  modifyTargetIndex,
  type SchemaReplayContext,
} from '../apply/schema-replay.js';
import { retryTransient } from '../db/transient-retry.js';
import { EXACT_BSON_OPTIONS, type CollectionNamespace } from '../model/change-envelope.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { compareIndexes, compareOptions, type SchemaDifference, type SchemaKind } from '../db/compare-schema.js';
import { listSourceNamespaces, unholdTtl, type HeldTtlIndex } from '../verify/verify-migration.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { createTargetViews } from '../initial-load/views.js';
import { isDuplicateKey, isNamespaceNotFound } from '../db/mongo-errors.js';

export interface ReconcileStep {
  /** Source and target namespaces (`db.coll`). */
  source: string;
  target: string;
  kind: 'indexes' | 'options' | 'views';
  /** Index name, option name, or `(collection)`. */
  name: string;
  action: 'collection created' | 'collection rebuilt' | 'view created' | 'index created' | 'index dropped' | 'index rebuilt' | 'index modified' | 'options modified' | 'cannot change' | 'failed';
  detail: string;
}

export interface ReconcileReport {
  /** What was changed on the target. */
  changed: ReconcileStep[];
  /** What differs and cannot be changed in place, or what the target refused. */
  left: ReconcileStep[];
}

export interface ReconcileLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Values that mean "absent" for the collMod-able options (the server's defaults). */
const OPTION_DEFAULTS: Record<string, unknown> = {
  validator: {},
  validationLevel: 'strict',
  validationAction: 'error',
  changeStreamPreAndPostImages: { enabled: false },
  // Clustered collection TTL off (collMod `expireAfterSeconds: "off"`).
  expireAfterSeconds: 'off',
};

/** Index properties collMod changes in place. */
const IN_PLACE_INDEX_PROPERTIES = new Set(['expireAfterSeconds', 'hidden']);

async function listIndexesOrNone(client: MongoClient, db: string, coll: string): Promise<Document[]> {
  try {
    return await client.db(db).collection(coll).listIndexes().toArray();
  } catch (err) {
    if (isNamespaceNotFound(err)) return [];
    throw err;
  }
}

async function collectionInfo(client: MongoClient, db: string, coll: string): Promise<Document | undefined> {
  const [info] = await client.db(db).listCollections({ name: coll }, { nameOnly: false }).toArray();
  return info as Document | undefined;
}

/**
 * Options fixed when a collection is created (`create`,
 * https://www.mongodb.com/docs/manual/reference/command/create/) that collMod cannot change: a
 * target collection differing in them is created again (rebuildTargetCollection).
 */
const REBUILD_OPTIONS: ReadonlySet<string> = new Set(['collation', 'capped', 'size', 'max', 'clusteredIndex', 'storageEngine', 'indexOptionDefaults']);

/** The copy a rebuild fills before it replaces the collection. */
export const rebuildName = (coll: string) => `${coll}__migrator_rebuild`;

/** A rebuild that dropped the collection and crashed before renaming its full copy: rename it now. */
async function finishInterruptedRebuild(target: MongoClient, t: CollectionNamespace): Promise<void> {
  const names = new Set((await target.db(t.db).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
  if (names.has(rebuildName(t.coll)) && !names.has(t.coll)) {
    await target.db('admin').command({ renameCollection: `${t.db}.${rebuildName(t.coll)}`, to: `${t.db}.${t.coll}` });
  }
}

/**
 * Creates the target collection again with `options`, keeping its documents: a copy is created
 * under {@link rebuildName} (a leftover of an earlier attempt is dropped first), filled from the
 * collection in batches (bypassDocumentValidation: the documents are the source's, already
 * accepted there), then renamed over the collection (`renameCollection` with `dropTarget`,
 * https://www.mongodb.com/docs/manual/reference/command/renameCollection/). Writes are stopped
 * during the cutover, so nothing writes to the collection meanwhile. Indexes are not copied:
 * the index reconcile that follows builds the source's.
 */
async function rebuildTargetCollection(ctx: SchemaReplayContext, t: CollectionNamespace, options: Document): Promise<void> {
  const db = ctx.client.db(t.db);
  const tmp = rebuildName(t.coll);
  await ctx.retry(`drop ${t.db}.${tmp}`, () => db.collection(tmp).drop().catch((err: unknown) => {
    if (!isNamespaceNotFound(err)) throw err; // nothing left over
    return true;
  }));
  await ctx.retry(`create ${t.db}.${tmp}`, () => db.command({ create: tmp, ...options }));
  const copy = db.collection(tmp);
  let batch: Document[] = [];
  const flush = async () => {
    const docs = batch;
    batch = [];
    if (docs.length) await ctx.retry(`copy into ${t.db}.${tmp}`, () => copy.insertMany(docs, { ordered: true, bypassDocumentValidation: true }).catch((err: unknown) => {
      // A retried batch finds part of it inserted already: insert the rest one by one.
      if (!isDuplicateKey(err) && !/E11000/.test(errorMessage(err))) throw err;
      return Promise.all(docs.map((d) => copy.replaceOne({ _id: d._id }, d, { upsert: true, bypassDocumentValidation: true })));
    }));
  };
  for await (const doc of db.collection(t.coll).find({}, EXACT_BSON_OPTIONS)) {
    batch.push(doc);
    if (batch.length >= 1000) await flush();
  }
  await flush();
  await ctx.retry(`renameCollection ${t.db}.${tmp} → ${t.db}.${t.coll}`, () =>
    ctx.client.db('admin').command({ renameCollection: `${t.db}.${tmp}`, to: `${t.db}.${t.coll}`, dropTarget: true }),
  );
}

/** What reconcileSchema is given. */
export interface ReconcileInput {
  source: MongoClient;
  target: MongoClient;
  rules: NamespaceRules;
  skipDbs: Set<string>;
  log: ReconcileLogger;
  expandedEvents?: boolean;
  /**
   * Kinds the user accepts differences of (--ignore-schema): left as they are (e.g. indexes after
   * a load with --no-index-restore, which the user builds on their own schedule).
   */
  ignore?: readonly SchemaKind[];
  /** The migration's TTL holds (see the header): unrestored holds, and where to record new ones. */
  ttl?: { store: TtlHoldStore; migrationId: string; holds: readonly HeldTtlIndex[] };
}

/** One reconcile run: its input, the target writer (schema-replay's), and the report it fills. */
interface Reconcile {
  p: ReconcileInput;
  ctx: SchemaReplayContext;
  ignore: ReadonlySet<SchemaKind>;
  report: ReconcileReport;
  /** Records (and logs) a step: changed on the target, or left. */
  record(step: ReconcileStep, changed: boolean): void;
}

type Ns = { source: string; target: string };

/** Runs one change on the target; true when the target took it (a refusal is recorded as left). */
type Step = (kind: ReconcileStep['kind'], name: string, action: ReconcileStep['action'], detail: string, run: () => Promise<unknown>) => Promise<boolean>;

/**
 * Reconciles every selected collection (see the module comment). `expandedEvents`: the source had
 * expanded events (replay should have done everything), so each change is logged as a warning.
 */
export async function reconcileSchema(p: ReconcileInput): Promise<ReconcileReport> {
  const report: ReconcileReport = { changed: [], left: [] };
  const rc: Reconcile = {
    p,
    report,
    ignore: new Set(p.ignore ?? []),
    ctx: {
      client: p.target,
      rules: p.rules,
      retry: (what, fn) => retryTransient(what, fn),
      logger: { warn: (o, m) => p.log.warn(o, m) },
      ttlHold: p.ttl ? { store: p.ttl.store, migrationId: p.ttl.migrationId } : undefined,
    },
    record: (step, changed) => {
      (changed ? report.changed : report.left).push(step);
      const obj = { source: step.source, target: step.target, name: step.name, action: step.action };
      if (!changed) p.log.warn(obj, `schema reconcile: ${step.detail}`);
      else if (p.expandedEvents) p.log.warn(obj, `schema reconcile changed the target although schema events were replayed: ${step.detail}`);
      else p.log.info(obj, `schema reconcile: ${step.detail}`);
    },
  };
  const shardKeys = await retryTransient('read the target shard keys', () => readShardKeys(p.target)).catch(() => new Map<string, Document>());
  const namespaces = await retryTransient('list the source collections', () => listSourceNamespaces(p.source, p.rules, p.skipDbs));
  for (const s of namespaces) await reconcileCollection(rc, s, shardKeys);
  if (!rc.ignore.has('views')) await reconcileViews(rc);
  return report;
}

function stepFor(rc: Reconcile, ns: Ns): Step {
  return async (kind, name, action, detail, run) => {
    try {
      await run();
      rc.record({ ...ns, kind, name, action, detail }, true);
      return true;
    } catch (err) {
      rc.record({ ...ns, kind, name, action: 'failed', detail: `${detail}: the target refused: ${errorMessage(err)}` }, false);
      return false;
    }
  };
}

/** One source collection: its target collection (created if missing), options, then indexes. */
async function reconcileCollection(rc: Reconcile, s: CollectionNamespace, shardKeys: ReadonlyMap<string, Document>): Promise<void> {
  const { p } = rc;
  const t = p.rules.target(s);
  const ns = { source: `${s.db}.${s.coll}`, target: `${t.db}.${t.coll}` };
  const step = stepFor(rc, ns);
  const sInfo = await retryTransient(`listCollections ${ns.source}`, () => collectionInfo(p.source, s.db, s.coll));
  if (!sInfo || (sInfo.type ?? 'collection') !== 'collection') return; // gone since, or a view / time-series (compared by verify)
  const sOptions = (sInfo.options ?? {}) as Document;
  const tInfo = await ensureTargetCollection(rc, ns, t, sOptions, step);
  if (!tInfo) return;
  if (!rc.ignore.has('options')) await reconcileOptions(rc, ns, t, sOptions, (tInfo.options ?? {}) as Document, step, shardKeys.has(ns.target));
  if (!rc.ignore.has('indexes')) await reconcileIndexes(rc, ns, s, t, shardKeys.get(ns.target), step);
}

/** The target collection's info; a missing one is created with the source's options (undefined if refused). */
async function ensureTargetCollection(rc: Reconcile, ns: Ns, t: CollectionNamespace, sOptions: Document, step: Step): Promise<Document | undefined> {
  const target = rc.p.target;
  let tInfo = await retryTransient(`listCollections ${ns.target}`, () => collectionInfo(target, t.db, t.coll));
  if (!tInfo) {
    // A rebuild interrupted between dropping the collection and renaming its full copy: finish it.
    await retryTransient(`finish an interrupted rebuild of ${ns.target}`, () => finishInterruptedRebuild(target, t));
    tInfo = await retryTransient(`listCollections ${ns.target}`, () => collectionInfo(target, t.db, t.coll));
  }
  if (!tInfo) {
    const options = collectionCreateOptions(sOptions);
    await step('options', '(collection)', 'collection created', `collection ${ns.target} created with the source's options (${Object.keys(options).join(', ') || 'none'})`, () =>
      createTargetCollection(rc.ctx, t, options),
    );
    tInfo = await retryTransient(`listCollections ${ns.target}`, () => collectionInfo(target, t.db, t.coll));
  }
  return tInfo;
}

/**
 * Views created on the source after the load (on a source without expanded events): created
 * as the load creates them (initial-load/views.ts); a different view under the name is left
 * for the verification to name.
 */
async function reconcileViews(rc: Reconcile): Promise<void> {
  const { p } = rc;
  try {
    const views = await createTargetViews({ source: p.source, target: p.target, rules: p.rules, drop: false, log: p.log as Logger });
    for (const v of views.created) rc.record({ source: '', target: v, kind: 'views', name: v, action: 'view created', detail: `view ${v} created as on the source` }, true);
  } catch (err) {
    rc.record({ source: '', target: '', kind: 'views', name: '', action: 'failed', detail: `views: ${errorMessage(err)}` }, false);
  }
}

async function reconcileOptions(rc: Reconcile, ns: Ns, t: CollectionNamespace, sOptions: Document, tOptions: Document, step: Step, sharded: boolean): Promise<void> {
  const diffs: Omit<SchemaDifference, 'ignored'>[] = [];
  compareOptions(ns, sOptions, tOptions, (d) => diffs.push(d));
  const fixed = diffs.filter((d) => !(COLLMOD_OPTIONS.has(d.name) && d.name !== 'timeseries'));
  // Never on a sharded target collection: created again, it would lose its sharding.
  if (!sharded && fixed.length > 0 && fixed.every((d) => REBUILD_OPTIONS.has(d.name))) {
    // Options fixed at creation (a collection created after the dump on a source without
    // expanded events arrives as a plain one): created again with all the source's options
    // (the collMod-able ones included), documents copied over; the indexes follow.
    const names = fixed.map((d) => d.name).join(', ');
    await step('options', names, 'collection rebuilt', `collection ${ns.target} created again with the source's options and its documents copied (collMod cannot change ${names})`, () =>
      rebuildTargetCollection(rc.ctx, t, collectionCreateOptions(sOptions)),
    );
    return;
  }
  const collMod: Document = {};
  for (const d of diffs) {
    if (COLLMOD_OPTIONS.has(d.name) && d.name !== 'timeseries') collMod[d.name] = sOptions[d.name] ?? OPTION_DEFAULTS[d.name];
    else rc.record({ ...ns, kind: 'options', name: d.name, action: 'cannot change', detail: `${d.detail}: it cannot change on an existing collection` }, false);
  }
  if (Object.keys(collMod).length > 0) {
    // One collMod for all of them.
    await step('options', Object.keys(collMod).join(','), 'options modified', `collMod ${ns.target} ${Object.keys(collMod).join(', ')} set as on the source`, () =>
      modifyTargetCollection(rc.ctx, t, collMod),
    );
  }
}

/** An index to create once the drops are done. */
type IndexCreate = { spec: Document; action: ReconcileStep['action']; detail: string };

async function reconcileIndexes(rc: Reconcile, ns: Ns, s: CollectionNamespace, t: CollectionNamespace, shardKey: Document | undefined, step: Step): Promise<void> {
  const { p } = rc;
  const sourceSpecs = await retryTransient(`listIndexes ${ns.source}`, () => listIndexesOrNone(p.source, s.db, s.coll));
  const targetSpecs = unholdTtl(await retryTransient(`listIndexes ${ns.target}`, () => listIndexesOrNone(p.target, t.db, t.coll)), t, p.ttl?.holds ?? []);
  const diffs: Omit<SchemaDifference, 'ignored'>[] = [];
  compareIndexes(ns, sourceSpecs, targetSpecs, (d) => diffs.push(d), undefined, shardKey);
  const creates: IndexCreate[] = [];
  for (const d of diffs) {
    if (d.difference === 'extra') {
      const name = String(d.targetSpec?.name);
      if (name === '_id_') continue;
      await step('indexes', name, 'index dropped', `index ${name} exists only on the target: dropped`, () => dropTargetIndex(rc.ctx, t, name));
      continue;
    }
    const spec = sourceSpecs.find((x) => x.name === d.sourceSpec?.name);
    if (!spec) continue;
    if (d.difference === 'missing') creates.push({ spec, action: 'index created', detail: `index ${String(spec.name)} missing on the target: created` });
    else {
      const rebuild = await reconcileDifferentIndex(rc, t, spec, d.sourceSpec ?? {}, d.targetSpec ?? {}, step);
      if (rebuild) creates.push(rebuild);
    }
  }
  // Creates after the drops: a rebuilt index may reuse a dropped name or key.
  for (const c of creates) {
    await step('indexes', String(c.spec.name), c.action, c.detail, async () => {
      const r = await createTargetIndex(rc.ctx, t, c.spec);
      if (r === 'existing') throw new Error('an index with that name or key exists on the target with other options');
    });
  }
}

/**
 * An index that differs (source spec `a`, target spec `b`): changed in place with collMod when
 * only `expireAfterSeconds`/`hidden` differ, else dropped; returns the create that rebuilds it.
 */
async function reconcileDifferentIndex(rc: Reconcile, t: CollectionNamespace, spec: Document, a: Document, b: Document, step: Step): Promise<IndexCreate | undefined> {
  const differing = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  const inPlace =
    a.name === b.name &&
    differing.every((k) => IN_PLACE_INDEX_PROPERTIES.has(k)) &&
    // collMod changes a TTL; it does not add or remove one
    (!differing.includes('expireAfterSeconds') || (a.expireAfterSeconds !== undefined && b.expireAfterSeconds !== undefined));
  if (inPlace) {
    const change: Document = { name: spec.name };
    if (differing.includes('expireAfterSeconds')) change.expireAfterSeconds = spec.expireAfterSeconds;
    if (differing.includes('hidden')) change.hidden = spec.hidden === true;
    await step('indexes', String(spec.name), 'index modified', `index ${String(spec.name)}: ${differing.join(', ')} set as on the source (collMod)`, () =>
      modifyTargetIndex(rc.ctx, t, change),
    );
    return undefined;
  }
  const targetName = String(b.name);
  const dropped = await step('indexes', targetName, 'index dropped', `index ${targetName} differs from the source's ${String(spec.name)} (${differing.join(', ')}): dropped to be built again`, () =>
    dropTargetIndex(rc.ctx, t, targetName),
  );
  return dropped ? { spec, action: 'index rebuilt', detail: `index ${String(spec.name)} built again with the source's spec` } : undefined;
}
