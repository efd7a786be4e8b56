import type { MongoClient } from 'mongodb';
import { readShardKeys } from '../db/shard-keys.js';
import type { EndpointConfig } from '../config/schema.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import type { LoadUnitDoc, StateStore } from '../state/store.js';
import { planPipes, toolsLiteral, type LoadOptions } from '../initial-load/dump-restore-plan.js';
import { runDumpRestorePipe } from '../initial-load/dump-restore-pipe.js';
import { encodeBound, rangesFromBounds } from '../initial-load/id-ranges.js';
import { estimateCollection, partitionCount, sampleIdBounds } from '../initial-load/partition-plan.js';
import type { ToolBinaries } from '../initial-load/tool-binaries.js';
import type { Logger } from '../util/logger.js';
import { isNamespaceNotFound } from '../db/mongo-errors.js';
import { indexesToBuild } from './index-build.js';

export type PlannedUnit = Omit<LoadUnitDoc, '_id' | 'migrationId' | 'lease' | 'state' | 'attempts'>;

export interface LoadPlanInput {
  source: MongoClient;
  target?: MongoClient;
  sourceEndpoint: EndpointConfig;
  targetEndpoint: EndpointConfig;
  store: StateStore;
  migrationId: string;
  rules: NamespaceRules;
  namespaces: { db: string; coll: string }[];
  bins: ToolBinaries;
  options: LoadOptions;
  /** Bytes per `_id` range; a collection up to this size stays whole. */
  partitionSize: number;
  workDir: string;
  signal?: AbortSignal;
  log: Logger;
}

/**
 * Whether a collection may be split into `_id` ranges: a plain collection with the simple
 * collation. Range bounds are ordered binary; under a non-simple default collation the server
 * compares string `_id`s by the collation (https://www.mongodb.com/docs/manual/reference/collation/),
 * so ranges could overlap or leave gaps. Capped collections keep insertion order and cannot delete
 * (a range reload needs deleteMany: https://www.mongodb.com/docs/manual/core/capped-collections/);
 * time series collections are left whole too (their documents live in buckets: mongodump reads
 * them through `system.buckets`, not by `_id`), and so are clustered collections (the tools'
 * handling of their creation from metadata beside concurrent ranges is not verified here).
 */
export function partitionable(info: { type?: string; options?: Record<string, unknown> } | undefined): boolean {
  if (!info || (info.type !== undefined && info.type !== 'collection')) return false;
  const o = info.options ?? {};
  if (o.capped || o.timeseries || o.clusteredIndex) return false;
  const collation = o.collation as { locale?: string } | undefined;
  return !collation || collation.locale === 'simple';
}

export interface LoadPlan {
  units: PlannedUnit[];
  /** Source "db.coll" → names of the indexes its 'indexes' unit builds (for `status` before the build starts). */
  indexes: Record<string, string[]>;
}

/**
 * Makes the load's plan once per migration and stores it (StateStore.saveLoadPlan): every
 * collection up to `partitionSize` goes into its database's single pipe (as before: one
 * 'database' unit per database), every larger one becomes `_id` ranges of about that size.
 *
 * Indexes after data (index-build.ts): every pipe restores with --noIndexRestore, and each
 * collection that has indexes besides `_id_` gets an 'indexes' unit, run once its data is in
 * (unless --no-index-restore: then no index is built by the load). Its indexes are listed here for
 * progress and again when built: one created on the source after this plan is in the change
 * stream (the resume point precedes the plan) or is built by the cutover's reconcile.
 *
 * A partitioned collection is created on the target here, before any range loads: ranges load in
 * parallel and each `mongorestore` would otherwise race to create it. It is created by the tools
 * themselves, from a dump of no documents (`--query {_id: {$in: []}}` still writes the collection's
 * metadata) restored with --noIndexRestore: mongorestore creates a missing collection with the
 * options in the metadata (collation, validator, …; --noOptionsRestore is what would skip them:
 * https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--noOptionsRestore),
 * and --noIndexRestore skips only the index builds
 * (https://www.mongodb.com/docs/database-tools/mongorestore/#std-option-mongorestore.--noIndexRestore).
 * With `drop`, the target collection is dropped first (emptied if sharded: a dropped sharded
 * collection comes back unsharded). Nothing of a partitioned collection is loaded before the plan
 * is saved, so redoing this after a crash is safe.
 */
export async function planLoad(p: LoadPlanInput, drop: boolean): Promise<LoadPlan> {
  const b = new PlanBuilder(p);
  const shardKeys = p.target ? await readShardKeys(p.target) : new Map<string, unknown>();
  const { partitioned, whole, all } = await splitCollections(p);
  await planWholeCollections(p, b, whole, all, drop);
  for (const c of partitioned) {
    if (p.signal?.aborted) break;
    const t = p.rules.target(c);
    const target = `${t.db}.${t.coll}`;
    await prepareTargetCollection(p, c, t, drop, shardKeys.has(target));
    const ranges = rangesFromBounds(c.bounds);
    ranges.forEach((r, i) => {
      b.add({
        shardId: b.id(`range-${c.db}.${c.coll}-${i + 1}`),
        kind: 'range',
        sourceDb: c.db,
        targetDb: t.db,
        coll: c.coll,
        target,
        ...(r.lower !== undefined ? { lower: encodeBound(r.lower) } : {}),
        ...(r.upper !== undefined ? { upper: encodeBound(r.upper) } : {}),
        part: i + 1,
        parts: ranges.length,
        estimatedBytes: Math.round(c.size / ranges.length),
      });
    });
    if ((await b.indexNames(c.db, c.coll)).length) b.addIndexUnit(c, t);
    p.log.info({ ns: `${c.db}.${c.coll}`, target, ranges: ranges.length, bytes: c.size }, 'collection partitioned by _id');
  }
  return { units: b.units, indexes: b.indexes };
}

/** The plan being made: its units in order (`seq`, claimed lowest first) and the indexes listed. */
class PlanBuilder {
  readonly units: PlannedUnit[] = [];
  readonly indexes: Record<string, string[]> = {};
  constructor(private readonly p: LoadPlanInput) {}

  /** The id of the next unit: its plan position, then what it is. */
  id(what: string): string {
    return `${String(this.units.length).padStart(6, '0')}-${what}`;
  }

  add(u: Omit<PlannedUnit, 'seq'>): void {
    this.units.push({ ...u, seq: this.units.length });
  }

  /** The indexes the collection's 'indexes' unit would build (none with --no-index-restore), recorded for progress. */
  async indexNames(db: string, coll: string): Promise<string[]> {
    if (this.p.options.noIndexRestore) return [];
    const names = (await indexesToBuild(this.p.source, db, coll)).map((s) => String(s.name));
    if (names.length) this.indexes[`${db}.${coll}`] = names;
    return names;
  }

  addIndexUnit(c: { db: string; coll: string }, t: { db: string; coll: string }): void {
    this.add({ shardId: this.id(`indexes-${c.db}.${c.coll}`), kind: 'indexes', sourceDb: c.db, targetDb: t.db, coll: c.coll, target: `${t.db}.${t.coll}` });
  }
}

interface SplitCollections {
  /** Larger than --partition-size and splittable: their `_id` range bounds and collStats size. */
  partitioned: { db: string; coll: string; bounds: unknown[]; size: number }[];
  whole: { db: string; coll: string }[];
  /** Every collection of each database (mongodump excludes the ones not selected). */
  all: Map<string, string[]>;
}

/** Which selected collections are split into `_id` ranges and which are loaded whole. */
async function splitCollections(p: LoadPlanInput): Promise<SplitCollections> {
  const byDb = new Map<string, string[]>();
  for (const n of p.namespaces) byDb.set(n.db, [...(byDb.get(n.db) ?? []), n.coll]);
  const out: SplitCollections = { partitioned: [], whole: [], all: new Map() };
  for (const [db, colls] of [...byDb].sort(([a], [b]) => a.localeCompare(b))) {
    const infos = await p.source.db(db).listCollections({}, { nameOnly: false }).toArray();
    out.all.set(db, infos.map((c) => c.name));
    const byName = new Map(infos.map((c) => [c.name, c as { type?: string; options?: Record<string, unknown> }]));
    for (const coll of [...colls].sort()) {
      if (partitionable(byName.get(coll))) {
        const est = await estimateCollection(p.source, db, coll);
        const parts = partitionCount(est.size, p.partitionSize);
        if (parts > 1) {
          const bounds = await sampleIdBounds(p.source, db, coll, parts, est.count);
          if (bounds.length > 0) {
            out.partitioned.push({ db, coll, bounds, size: est.size });
            continue;
          }
        }
      }
      out.whole.push({ db, coll });
    }
  }
  return out;
}

/**
 * The small collections: one pipe per database, as the load always ran them (restoring no index),
 * each followed by the index builds of its collections that have indexes.
 */
async function planWholeCollections(p: LoadPlanInput, b: PlanBuilder, whole: SplitCollections['whole'], all: SplitCollections['all'], drop: boolean): Promise<void> {
  // Their sizes too, so `status` estimates their pipes (forecast.ts). A view or a collection
  // collStats refuses counts 0: an estimate, never a reason to stop.
  const est = new Map<string, { size: number; count: number }>();
  for (const w of whole) est.set(`${w.db}.${w.coll}`, await estimateCollection(p.source, w.db, w.coll).catch(() => ({ size: 0, count: 0 })));
  for (const job of planPipes(whole, all, (db) => p.rules.targetDb(db), { ...p.options, drop: false }, (ns) => p.rules.target(ns))) {
    const withIndexes = new Set<string>();
    for (const c of job.collections) if ((await b.indexNames(job.sourceDb, c)).length) withIndexes.add(c);
    const sum = (f: 'size' | 'count') => job.collections.reduce((n, c) => n + (est.get(`${job.sourceDb}.${c}`)?.[f] ?? 0), 0);
    b.add({
      shardId: b.id(`db-${job.sourceDb}`),
      kind: 'database',
      sourceDb: job.sourceDb,
      targetDb: job.targetDb,
      collections: job.collections.map((c) => {
        const t = p.rules.target({ db: job.sourceDb, coll: c });
        return { coll: c, target: `${t.db}.${t.coll}`, ...(withIndexes.has(c) ? { indexesAfter: true } : {}) };
      }),
      drop,
      noIndexRestore: true,
      estimatedBytes: sum('size'),
      estimatedDocuments: sum('count'),
    });
    for (const c of [...withIndexes].sort()) b.addIndexUnit({ db: job.sourceDb, coll: c }, p.rules.target({ db: job.sourceDb, coll: c }));
  }
}

/** Creates the target collection of a partitioned one from its dump's metadata (see planLoad). */
async function prepareTargetCollection(
  p: LoadPlanInput,
  c: { db: string; coll: string },
  t: { db: string; coll: string },
  drop: boolean,
  sharded: boolean,
): Promise<void> {
  if (drop && p.target) {
    const coll = p.target.db(t.db).collection(t.coll);
    if (sharded) await coll.deleteMany({});
    else {
      await coll.drop().catch((err: unknown) => {
        if (!isNamespaceNotFound(err)) throw err; // nothing to drop
      });
    }
  }
  const restoreArgs = ['--archive', `--nsInclude=${toolsLiteral(c.db)}.${toolsLiteral(c.coll)}`, '--noIndexRestore'];
  if (t.db !== c.db || t.coll !== c.coll) restoreArgs.push(`--nsFrom=${toolsLiteral(c.db)}.${toolsLiteral(c.coll)}`, `--nsTo=${toolsLiteral(t.db)}.${toolsLiteral(t.coll)}`);
  await runDumpRestorePipe(
    {
      sourceDb: c.db,
      targetDb: t.db,
      collections: [c.coll],
      dumpArgs: ['--archive', `--db=${c.db}`, `--collection=${c.coll}`],
      restoreArgs,
      queryJson: '{"_id":{"$in":[]}}',
      label: `${c.db}.${c.coll} (creating the collection)`,
    },
    p.sourceEndpoint,
    p.targetEndpoint,
    p.bins,
    { workDir: p.workDir, signal: p.signal },
  );
}
