import { mkdirSync } from 'node:fs';
import type { MongoClient } from 'mongodb';
import { readShardKeys } from '../apply/shard-keys.js';
import type { EndpointConfig } from '../config/schema.js';
import type { NamespaceRules } from '../source/namespace-filter.js';
import { loadKey, type StateStore, type LoadCollectionProgress } from '../state/store.js';
import { planPipes, type LoadOptions } from '../initial-load/dump-restore-plan.js';
import { runDumpRestorePipe } from '../initial-load/dump-restore-pipe.js';
import { killStaleTools, removeStaleToolConfigs } from '../initial-load/stale-tools.js';
import type { ToolBinaries } from '../initial-load/tool-binaries.js';
import type { ToolEvent } from '../initial-load/tool-progress.js';
import { createTargetViews } from '../initial-load/views.js';
import { copyTimeSeriesOnce } from '../initial-load/time-series-copy.js';
import { createLoadProgressWriter } from './load-progress-writer.js';
import { holdTargetTtl } from './ttl.js';
import type { Logger } from '../util/logger.js';

export interface InitialLoadInput {
  source: MongoClient;
  sourceEndpoint: EndpointConfig;
  targetEndpoint: EndpointConfig;
  store: StateStore;
  migrationId: string;
  rules: NamespaceRules;
  namespaces: { db: string; coll: string }[];
  /** Source namespaces ("db.coll") of time-series collections copied once (--time-series=load-only): not through the tools. */
  loadOnly?: string[];
  bins: ToolBinaries;
  options: LoadOptions;
  /** The target: with `options.drop`, its sharded collections are emptied rather than dropped. */
  target?: MongoClient;
  workDir: string;
  signal?: AbortSignal;
  log: Logger;
  /** Progress for the task renderer: "bar.products 1200/5000". */
  onProgress?: (text: string) => void;
}

/**
 * mongorestore --drop drops each collection before restoring it; a dropped sharded collection
 * comes back UNSHARDED (dropping removes its sharding metadata:
 * https://www.mongodb.com/docs/manual/reference/method/db.collection.drop/#sharded-collections).
 * So for a database pipe with pre-sharded target collections, the migrator replaces --drop
 * itself: it empties the sharded ones (deleteMany keeps their shard key and indexes) and drops
 * the others, then restores without --drop. Both are idempotent, so a rerun redoes them.
 */
async function keepShardedTargets(p: InitialLoadInput, jobs: ReturnType<typeof planPipes>): Promise<void> {
  const keys = await readShardKeys(p.target!);
  if (keys.size === 0) return;
  for (const job of jobs) {
    const targets = job.collections.map((c) => p.rules.target({ db: job.sourceDb, coll: c }));
    if (!targets.some((t) => keys.has(`${t.db}.${t.coll}`))) continue;
    for (const t of targets) {
      const coll = p.target!.db(t.db).collection(t.coll);
      const key = keys.get(`${t.db}.${t.coll}`);
      if (key) {
        const { deletedCount } = await coll.deleteMany({});
        p.log.info({ ns: `${t.db}.${t.coll}`, shardKey: key, deleted: deletedCount }, 'sharded target collection emptied instead of dropped (it stays sharded)');
      } else {
        await coll.drop().catch((err: unknown) => {
          if ((err as { code?: number }).code !== 26) throw err; // NamespaceNotFound: nothing to drop
        });
      }
    }
    job.restoreArgs = job.restoreArgs.filter((a) => a !== '--drop');
  }
}

/**
 * The initial load: one mongodump | mongorestore pipe per source database, progress persisted in
 * the migration document (per collection) so `status` shows it from any container.
 */
export async function runInitialLoad(p: InitialLoadInput): Promise<{ restored: number }> {
  mkdirSync(p.workDir, { recursive: true });
  const stale = killStaleTools(p.workDir);
  removeStaleToolConfigs(p.workDir);
  if (stale.length) p.log.warn({ pids: stale }, 'killed mongodump/mongorestore left running by an interrupted load');
  const loadOnly = new Set(p.loadOnly ?? []);
  const all = new Map<string, string[]>();
  for (const db of new Set(p.namespaces.map((n) => n.db))) {
    const colls = await p.source.db(db).listCollections({}, { nameOnly: true }).toArray();
    all.set(db, colls.map((c) => c.name));
  }
  const progress: Record<string, LoadCollectionProgress> = {};
  for (const ns of p.namespaces) {
    const t = p.rules.target(ns);
    progress[`${ns.db}.${ns.coll}`] = { target: `${t.db}.${t.coll}`, done: false, ...(loadOnly.has(`${ns.db}.${ns.coll}`) ? { loadOnly: true } : {}) };
  }
  await p.store.startLoad(
    p.migrationId,
    Object.fromEntries(Object.entries(progress).map(([ns, v]) => [loadKey(ns), v])),
  );
  // Database and collection maps alike (--map bar:bar_new, --map bar.a:shop.b) land where apply and verify put them.
  const piped = p.namespaces.filter((n) => !loadOnly.has(`${n.db}.${n.coll}`));
  const jobs = planPipes(piped, all, (db) => p.rules.targetDb(db), p.options, (ns) => p.rules.target(ns));
  if (p.options.drop && p.target) await keepShardedTargets(p, jobs);
  let restored = 0;
  const progressWriter = createLoadProgressWriter((ns, fields) => p.store.updateLoadProgress(p.migrationId, ns, fields));
  for (const job of jobs) {
    const targetToSource = new Map(
      job.collections.map((c) => {
        const t = p.rules.target({ db: job.sourceDb, coll: c });
        return [`${t.db}.${t.coll}`, `${job.sourceDb}.${c}`];
      }),
    );
    const finished = new Map<string, { target: string; documents: number }>();
    const onEvent = (e: ToolEvent) => {
      // Tools being stopped report the collections they were on as "finished (0 documents)":
      // after a stop request nothing they say is progress, and a reload redoes the load anyway.
      if (p.signal?.aborted) return;
      if (e.kind === 'dump-progress') {
        p.onProgress?.(`${e.ns} ${e.done}/${e.total}`);
        progressWriter.write(e.ns, { dumped: e.done, total: e.total });
      } else if (e.kind === 'dump-finished') {
        progressWriter.write(e.ns, { dumped: e.documents, total: e.documents }, true);
      } else if (e.kind === 'restore-finished') {
        // Not "done" yet: mongorestore prints this line also for a collection whose restore then
        // fails ("finished restoring x (0 documents)" followed by "Failed: x: error restoring …").
        // INVARIANT: a collection counts as loaded only once its whole pipe succeeded (below).
        const src = targetToSource.get(e.ns) ?? e.ns;
        finished.set(src, { target: e.ns, documents: e.documents });
        progressWriter.write(src, { restored: e.documents }, true);
      }
    };
    p.log.info({ db: job.sourceDb, target: job.targetDb, collections: job.collections.length }, 'loading database');
    const r = await runDumpRestorePipe(job, p.sourceEndpoint, p.targetEndpoint, p.bins, {
      workDir: p.workDir,
      signal: p.signal,
      onEvent,
    });
    for (const [src, f] of finished) {
      progressWriter.write(src, { restored: f.documents, done: true }, true);
      p.log.info({ ns: src, target: f.target, documents: f.documents }, 'collection loaded');
    }
    restored += r.restored;
  }
  await progressWriter.flush();
  // Time-series collections copied once (--time-series=load-only), after the pipes, by the driver
  // (time-series-copy.ts says why not by the tools).
  for (const ns of p.namespaces.filter((n) => loadOnly.has(`${n.db}.${n.coll}`))) {
    if (p.signal?.aborted || !p.target) break;
    const to = p.rules.target(ns);
    const n = await copyTimeSeriesOnce({ source: p.source, target: p.target, from: ns, to, drop: Boolean(p.options.drop), signal: p.signal, log: p.log });
    if (p.signal?.aborted) break;
    await p.store.updateLoadProgress(p.migrationId, `${ns.db}.${ns.coll}`, { total: n, dumped: n, restored: n, done: true });
    restored += n;
  }
  // Views last: the load excludes them (they hold no data), and each reads a collection (or a
  // view) that must exist first. Before finishLoad, so a crash here reloads and recreates them.
  if (p.target) {
    const v = await createTargetViews({ source: p.source, target: p.target, rules: p.rules, drop: Boolean(p.options.drop), log: p.log });
    if (v.created.length || v.existing.length) p.log.info({ created: v.created.length, existing: v.existing.length }, 'views on the target');
    // The target's TTL indexes must not expire documents on their own during the sync (ttl.ts):
    // held now that mongorestore built them, before the load counts as finished (a crash here reloads
    // and holds again; the originals are recorded before any index changes).
    await holdTargetTtl({ target: p.target, store: p.store, migrationId: p.migrationId, targets: p.namespaces.map((n) => p.rules.target(n)), log: p.log });
  }
  await p.store.finishLoad(p.migrationId);
  return { restored };
}
