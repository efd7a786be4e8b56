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
 * What is compared is what `migrator verify` compares (verify/compare-schema.ts compareIndexes,
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
 * TTL: this runs before the cutover restores the held TTL indexes (apply/ttl-hold.ts), so a target
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

/**
 * Reconciles every selected collection (see the module comment). `expandedEvents`: the source had
 * expanded events (replay should have done everything), so each change is logged as a warning.
 */
export async function reconcileSchema(p: {
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
}): Promise<ReconcileReport> {
  const ignore = new Set(p.ignore ?? []);
  const report: ReconcileReport = { changed: [], left: [] };
  const ctx: SchemaReplayContext = {
    client: p.target,
    rules: p.rules,
    retry: (what, fn) => retryTransient(what, fn),
    logger: { warn: (o, m) => p.log.warn(o, m) },
    ttlHold: p.ttl ? { store: p.ttl.store, migrationId: p.ttl.migrationId } : undefined,
  };
  const shardKeys = await retryTransient('read the target shard keys', () => readShardKeys(p.target)).catch(() => new Map<string, Document>());
  const namespaces = await retryTransient('list the source collections', () => listSourceNamespaces(p.source, p.rules, p.skipDbs));
  const record = (step: ReconcileStep, changed: boolean) => {
    (changed ? report.changed : report.left).push(step);
    const obj = { source: step.source, target: step.target, name: step.name, action: step.action };
    if (!changed) p.log.warn(obj, `schema reconcile: ${step.detail}`);
    else if (p.expandedEvents) p.log.warn(obj, `schema reconcile changed the target although schema events were replayed: ${step.detail}`);
    else p.log.info(obj, `schema reconcile: ${step.detail}`);
  };
  for (const s of namespaces) {
    const t = p.rules.target(s);
    const ns = { source: `${s.db}.${s.coll}`, target: `${t.db}.${t.coll}` };
    /** Runs one change; true when the target took it. */
    const step = async (kind: ReconcileStep['kind'], name: string, action: ReconcileStep['action'], detail: string, run: () => Promise<unknown>): Promise<boolean> => {
      try {
        await run();
        record({ ...ns, kind, name, action, detail }, true);
        return true;
      } catch (err) {
        record({ ...ns, kind, name, action: 'failed', detail: `${detail}: the target refused: ${errorMessage(err)}` }, false);
        return false;
      }
    };
    const sInfo = await retryTransient(`listCollections ${ns.source}`, () => collectionInfo(p.source, s.db, s.coll));
    if (!sInfo || (sInfo.type ?? 'collection') !== 'collection') continue; // gone since, or a view / time-series (compared by verify)
    const sOptions = (sInfo.options ?? {}) as Document;
    let tInfo = await retryTransient(`listCollections ${ns.target}`, () => collectionInfo(p.target, t.db, t.coll));
    if (!tInfo) {
      // A rebuild interrupted between dropping the collection and renaming its full copy: finish it.
      await retryTransient(`finish an interrupted rebuild of ${ns.target}`, () => finishInterruptedRebuild(p.target, t));
      tInfo = await retryTransient(`listCollections ${ns.target}`, () => collectionInfo(p.target, t.db, t.coll));
    }
    if (!tInfo) {
      const options = collectionCreateOptions(sOptions);
      await step('options', '(collection)', 'collection created', `collection ${ns.target} created with the source's options (${Object.keys(options).join(', ') || 'none'})`, () =>
        createTargetCollection(ctx, t, options),
      );
      tInfo = await retryTransient(`listCollections ${ns.target}`, () => collectionInfo(p.target, t.db, t.coll));
      if (!tInfo) continue;
    }
    if (!ignore.has('options')) await reconcileOptions(ns, t, sOptions, (tInfo.options ?? {}) as Document, step, record, shardKeys.has(ns.target));
    if (!ignore.has('indexes')) await reconcileIndexes(ns, s, t, shardKeys.get(ns.target), step);
  }
  if (!ignore.has('views')) {
    // Views created on the source after the load (on a source without expanded events): created
    // as the load creates them (initial-load/views.ts); a different view under the name is left
    // for the verification to name.
    try {
      const views = await createTargetViews({ source: p.source, target: p.target, rules: p.rules, drop: false, log: p.log as Logger });
      for (const v of views.created) record({ source: '', target: v, kind: 'views', name: v, action: 'view created', detail: `view ${v} created as on the source` }, true);
    } catch (err) {
      record({ source: '', target: '', kind: 'views', name: '', action: 'failed', detail: `views: ${errorMessage(err)}` }, false);
    }
  }
  return report;

  async function reconcileOptions(
    ns: { source: string; target: string },
    t: CollectionNamespace,
    sOptions: Document,
    tOptions: Document,
    step: Step,
    record: (step: ReconcileStep, changed: boolean) => void,
    sharded: boolean,
  ): Promise<void> {
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
        rebuildTargetCollection(ctx, t, collectionCreateOptions(sOptions)),
      );
      return;
    }
    const collMod: Document = {};
    for (const d of diffs) {
      if (COLLMOD_OPTIONS.has(d.name) && d.name !== 'timeseries') collMod[d.name] = sOptions[d.name] ?? OPTION_DEFAULTS[d.name];
      else record({ ...ns, kind: 'options', name: d.name, action: 'cannot change', detail: `${d.detail}: it cannot change on an existing collection` }, false);
    }
    if (Object.keys(collMod).length > 0) {
      // One collMod for all of them.
      await step('options', Object.keys(collMod).join(','), 'options modified', `collMod ${ns.target} ${Object.keys(collMod).join(', ')} set as on the source`, () =>
        modifyTargetCollection(ctx, t, collMod),
      );
    }
  }

  async function reconcileIndexes(ns: { source: string; target: string }, s: CollectionNamespace, t: CollectionNamespace, shardKey: Document | undefined, step: Step): Promise<void> {
    const sourceSpecs = await retryTransient(`listIndexes ${ns.source}`, () => listIndexesOrNone(p.source, s.db, s.coll));
    const targetSpecs = unholdTtl(await retryTransient(`listIndexes ${ns.target}`, () => listIndexesOrNone(p.target, t.db, t.coll)), t, p.ttl?.holds ?? []);
    const diffs: Omit<SchemaDifference, 'ignored'>[] = [];
    compareIndexes(ns, sourceSpecs, targetSpecs, (d) => diffs.push(d), undefined, shardKey);
    const creates: { spec: Document; action: ReconcileStep['action']; detail: string }[] = [];
    for (const d of diffs) {
      if (d.difference === 'extra') {
        const name = String(d.targetSpec?.name);
        if (name === '_id_') continue;
        await step('indexes', name, 'index dropped', `index ${name} exists only on the target: dropped`, () => dropTargetIndex(ctx, t, name));
        continue;
      }
      const spec = sourceSpecs.find((x) => x.name === d.sourceSpec?.name);
      if (!spec) continue;
      if (d.difference === 'missing') {
        creates.push({ spec, action: 'index created', detail: `index ${String(spec.name)} missing on the target: created` });
        continue;
      }
      // different
      const a = d.sourceSpec ?? {};
      const b = d.targetSpec ?? {};
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
          modifyTargetIndex(ctx, t, change),
        );
      } else {
        const targetName = String(b.name);
        const dropped = await step('indexes', targetName, 'index dropped', `index ${targetName} differs from the source's ${String(spec.name)} (${differing.join(', ')}): dropped to be built again`, () =>
          dropTargetIndex(ctx, t, targetName),
        );
        if (dropped) creates.push({ spec, action: 'index rebuilt', detail: `index ${String(spec.name)} built again with the source's spec` });
      }
    }
    // Creates after the drops: a rebuilt index may reuse a dropped name or key.
    for (const c of creates) {
      await step('indexes', String(c.spec.name), c.action, c.detail, async () => {
        const r = await createTargetIndex(ctx, t, c.spec);
        if (r === 'existing') throw new Error('an index with that name or key exists on the target with other options');
      });
    }
  }
}

type Step = (kind: ReconcileStep['kind'], name: string, action: ReconcileStep['action'], detail: string, run: () => Promise<unknown>) => Promise<boolean>;
