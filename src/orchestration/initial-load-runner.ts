import { mkdirSync } from 'node:fs';
import type { MongoClient } from 'mongodb';
import { loadKey, type LoadCollectionProgress } from '../state/store.js';
import { killStaleTools, removeStaleToolConfigs } from '../initial-load/stale-tools.js';
import { createTargetViews } from '../initial-load/views.js';
import { copyTimeSeriesOnce } from '../initial-load/time-series-copy.js';
import { defaultOwnerId } from '../state/lease-owner.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { planLoad, type LoadPlanInput } from './load-plan.js';
import { runLoadWorker } from './load-worker.js';
import { holdTargetTtl } from './ttl.js';

/** --partition-size when none is given: about 1 GiB per range. */
export const DEFAULT_PARTITION_BYTES = 1024 ** 3;
/**
 * --load-parallelism when none is given: units run at once by one process. Each is a mongodump
 * and a mongorestore (with its insertion workers), mostly waiting on the servers: 2 suits a
 * 2-core container.
 */
export const DEFAULT_LOAD_PARALLELISM = 2;

/** What the load needs: the plan's inputs (load-plan.ts) with the target required, plus how this process runs units. */
export interface InitialLoadInput extends Omit<LoadPlanInput, 'target' | 'partitionSize'> {
  /** Source namespaces ("db.coll") of time-series collections copied once (--time-series=load-only): not through the tools. */
  loadOnly?: string[];
  /** The target: ranges are removed from it before a reload, indexes built on it; with `options.drop`, its sharded collections are emptied rather than dropped. */
  target: MongoClient;
  /** Progress for the task renderer: "bar.products 1200/5000". */
  onProgress?: (text: string) => void;
  /** Bytes per `_id` range (default DEFAULT_PARTITION_BYTES). */
  partitionSize?: number;
  /** Units run at once by this process (default DEFAULT_LOAD_PARALLELISM). */
  parallelism?: number;
  /** Lease owner id of this process (default: a fresh one) and the load units' lease TTL (default 30 s). */
  owner?: string;
  leaseTtlMs?: number;
}

/**
 * The initial load, resumable and shared: planned once per migration into units (load-plan.ts:
 * a pipe per database for the small collections, `_id` ranges of about --partition-size for the
 * large ones, each collection's indexes after its data), which this process runs with `parallelism` at once — beside
 * any `migrator load-worker` processes — until every unit is done (load-worker.ts). A rerun after
 * a crash keeps the plan and the finished units and redoes only the others. Progress is
 * persisted in the migration document (per collection) so `status` shows it from any container.
 */
export async function runInitialLoad(p: InitialLoadInput): Promise<{ restored: number }> {
  mkdirSync(p.workDir, { recursive: true });
  const stale = killStaleTools(p.workDir);
  removeStaleToolConfigs(p.workDir);
  if (stale.length) p.log.warn({ pids: stale }, 'killed mongodump/mongorestore left running by an interrupted load');
  const loadOnly = new Set(p.loadOnly ?? []);
  const m = await p.store.getMigration(p.migrationId);
  if (!m?.loadPlan) await planOnce(p, loadOnly);
  else {
    // A rerun: a new attempt of the same plan; finished units stay done, their progress stays.
    await p.store.startLoad(p.migrationId, m.load?.collections ?? {});
    const units = await p.store.listLoadUnits(p.migrationId);
    p.log.info({ units: units.length, done: units.filter((u) => u.state === 'done').length }, 'initial load resumed: finished units are kept');
  }
  const r = await runLoadWorker({
    store: p.store,
    migrationId: p.migrationId,
    source: p.source,
    target: p.target,
    sourceEndpoint: p.sourceEndpoint,
    targetEndpoint: p.targetEndpoint,
    bins: p.bins,
    options: p.options,
    parallelism: p.parallelism ?? DEFAULT_LOAD_PARALLELISM,
    owner: p.owner ?? defaultOwnerId(),
    leaseTtlMs: p.leaseTtlMs ?? 30_000,
    workDir: p.workDir,
    signal: p.signal,
    log: p.log,
    onProgress: p.onProgress,
  });
  if (p.signal?.aborted) throw new MigratorError(ExitCode.INTERRUPTED, 'Initial load interrupted.');
  let restored = r.documents;
  // Time-series collections copied once (--time-series=load-only), after the units, by the driver
  // (time-series-copy.ts says why not by the tools). One not finished by an earlier attempt is
  // copied again with the target collection dropped first (a rerun: the plan existed), so a rerun
  // does not duplicate it; on the first attempt only with --drop (preflight found the target empty).
  const progressNow = (await p.store.getMigration(p.migrationId))?.load?.collections ?? {};
  for (const ns of p.namespaces.filter((n) => loadOnly.has(`${n.db}.${n.coll}`))) {
    if (p.signal?.aborted) break;
    if (progressNow[loadKey(`${ns.db}.${ns.coll}`)]?.done) continue;
    const to = p.rules.target(ns);
    const n = await copyTimeSeriesOnce({ source: p.source, target: p.target, from: ns, to, drop: Boolean(p.options.drop) || Boolean(m?.loadPlan), signal: p.signal, log: p.log });
    if (p.signal?.aborted) break;
    await p.store.updateLoadProgress(p.migrationId, `${ns.db}.${ns.coll}`, { total: n, dumped: n, restored: n, done: true });
    restored += n;
  }
  if (p.signal?.aborted) throw new MigratorError(ExitCode.INTERRUPTED, 'Initial load interrupted.');
  // Views last: the load excludes them (they hold no data), and each reads a collection (or a
  // view) that must exist first. Before finishLoad, so a crash here reloads and recreates them.
  {
    const v = await createTargetViews({ source: p.source, target: p.target, rules: p.rules, drop: Boolean(p.options.drop), log: p.log });
    if (v.created.length || v.existing.length) p.log.info({ created: v.created.length, existing: v.existing.length }, 'views on the target');
    // The target's TTL indexes must not expire documents on their own during the sync (ttl.ts):
    // held now that the load built them, before the load counts as finished (a crash here reloads
    // and holds again; the originals are recorded before any index changes).
    await holdTargetTtl({ target: p.target, store: p.store, migrationId: p.migrationId, targets: p.namespaces.map((n) => p.rules.target(n)), log: p.log });
  }
  await p.store.finishLoad(p.migrationId);
  return { restored };
}

/** The load's first attempt: its progress started, its plan made and saved (before any unit runs). */
async function planOnce(p: InitialLoadInput, loadOnly: Set<string>): Promise<void> {
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
  // Load-only time series are not planned: the driver copies them after the units (runInitialLoad).
  const piped = p.namespaces.filter((n) => !loadOnly.has(`${n.db}.${n.coll}`));
  const { units, indexes } = await planLoad({ ...p, namespaces: piped, partitionSize: p.partitionSize ?? DEFAULT_PARTITION_BYTES }, Boolean(p.options.drop));
  if (p.signal?.aborted) throw new MigratorError(ExitCode.INTERRUPTED, 'Interrupted while planning the initial load.');
  // The indexes to build after the data, all pending, for `status` (before the plan is saved: a
  // crash before that replans and starts the progress afresh).
  const pendingIndexes: Record<string, Partial<LoadCollectionProgress>> = {};
  for (const [ns, names] of Object.entries(indexes)) pendingIndexes[ns] = { indexes: { built: [], pending: names, building: null } };
  if (Object.keys(pendingIndexes).length) await p.store.updateLoadProgressMany(p.migrationId, pendingIndexes);
  const partitioned = [...new Set(units.filter((u) => u.kind === 'range').map((u) => `${u.sourceDb}.${u.coll}`))];
  await p.store.saveLoadPlan(p.migrationId, units, { units: units.length, partitionSize: p.partitionSize ?? DEFAULT_PARTITION_BYTES, partitioned });
  p.log.info({ units: units.length, partitioned: partitioned.length }, 'initial load planned');
}
