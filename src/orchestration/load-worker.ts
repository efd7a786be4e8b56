/**
 * Runs the initial load's units (StateStore `load_partitions`, planned by load-plan.ts) — in
 * full-migrate and in every `migrator load-worker` process alike — until every unit of the
 * migration is done, whoever ran it.
 *
 * Sharing, like apply shares Kinesis shards: a process takes a unit by its lease (LeaseKeeper,
 * scope 'load'), renews it while the unit runs, and marks the unit done only while it still holds
 * that lease (StateStore.finishLoadUnit: owner + epoch, unexpired). A process that dies leaves its
 * leases to expire (or, same machine, to be released at once as a dead local owner); another one
 * then takes the unit over and redoes it.
 *
 * INVARIANTS
 *  - A unit is redone from scratch and idempotently: a range is first removed from the target
 *    (deleteMany with the same `_id` filter the dump reads with), a database pipe reloads its
 *    collections with --drop; finished units are never touched again, so a crash costs only the
 *    units that were running.
 *  - A lost lease stops the unit's tools at once (onLost aborts its pipe): the new owner's
 *    deleteMany cannot be followed by old inserts from us beyond the lease grace. Should a stale
 *    write slip in anyway, the new owner's mongorestore meets a duplicate key, fails the unit, and
 *    the unit is redone — never marked done with a doubtful range.
 *  - The target may hold changes made after the resume point in any order: apply replays the whole
 *    stream from the resume point with idempotent writes after the load (README "How it works").
 */
import type { MongoClient } from 'mongodb';
import type { EndpointConfig } from '../config/schema.js';
import { LeaseKeeper } from '../state/lease-keeper.js';
import { isDeadLocalOwner } from '../state/lease-owner.js';
import { readShardKeys } from '../db/shard-keys.js';
import type { LoadCollectionProgress, LoadUnitDoc, StateStore } from '../state/store.js';
import { DEFAULT_LEASE_GRACE_MS } from '../state/store.js';
import { toolsLiteral, type LoadOptions, type PipeJob } from '../initial-load/dump-restore-plan.js';
import { runDumpRestorePipe, type PipeResult } from '../initial-load/dump-restore-pipe.js';
import { killStaleTools } from '../initial-load/stale-tools.js';
import { decodeBound, rangeFilter, rangeQueryJson, type IdRange } from '../initial-load/id-ranges.js';
import type { ToolBinaries } from '../initial-load/tool-binaries.js';
import type { ToolEvent } from '../initial-load/tool-progress.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { createLoadProgressWriter } from './load-progress-writer.js';
import { addSample, type LoadUnitSample } from './forecast.js';
import { isNamespaceNotFound } from '../db/mongo-errors.js';
import { buildIndexes } from './index-build.js';
import { sleep } from '../util/retry.js';

export interface LoadWorkerInput {
  store: StateStore;
  migrationId: string;
  source: MongoClient;
  target: MongoClient;
  sourceEndpoint: EndpointConfig;
  targetEndpoint: EndpointConfig;
  bins: ToolBinaries;
  /** gzip and insertion workers of this process's pipes (a unit's own data comes from the plan). */
  options: LoadOptions;
  /** Units run at once by this process (--load-parallelism). */
  parallelism: number;
  /** Unique per process incarnation. */
  owner: string;
  leaseTtlMs: number;
  workDir: string;
  signal?: AbortSignal;
  log: Logger;
  onProgress?: (text: string) => void;
  /** How often the units are listed while nothing can be taken (default 500 ms). */
  pollMs?: number;
}

export interface LoadWorkerResult {
  /** Units this process finished, and their documents. */
  units: number;
  documents: number;
}

/** The `_id` range of a 'range' unit. */
export function unitRange(u: Pick<LoadUnitDoc, 'lower' | 'upper'>): IdRange {
  return {
    ...(u.lower !== undefined ? { lower: decodeBound(u.lower) } : {}),
    ...(u.upper !== undefined ? { upper: decodeBound(u.upper) } : {}),
  };
}

const splitNs = (ns: string) => {
  const i = ns.indexOf('.');
  return { db: ns.slice(0, i), coll: ns.slice(i + 1) };
};

/**
 * Progress samples of a running unit into its state-store document (forecast.ts: the load's rate
 * over the last minute, computed by `status` in any container). Bounded: a few samples, about
 * LOAD_UNIT_SAMPLE_MS apart, one write in flight at most; written only under the unit's lease.
 * Best effort: a failed write costs the rate's accuracy, never the load.
 */
function unitSampler(p: LoadWorkerInput, keeper: LeaseKeeper, u: LoadUnitDoc, log: Logger): (fraction: number, documents: number) => void {
  let samples: LoadUnitSample[] = [];
  let writing = false;
  return (fraction, documents) => {
    if (writing) return;
    const next = addSample(samples, { at: new Date(), fraction: Math.min(1, Math.max(0, fraction)), documents });
    const lease = keeper.lease(u.shardId);
    if (!next || !lease) return;
    samples = next;
    writing = true;
    p.store
      .recordLoadUnitSamples(lease, next)
      .catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'load unit progress sample not recorded'))
      .finally(() => {
        writing = false;
      });
  };
}

/** Runs units until every unit of the migration is done (or `signal` aborts). */
export async function runLoadWorker(p: LoadWorkerInput): Promise<LoadWorkerResult> {
  const pollMs = p.pollMs ?? 500;
  const running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  const result: LoadWorkerResult = { units: 0, documents: 0 };
  let failure: unknown;
  const keeper = new LeaseKeeper({
    store: p.store,
    migrationId: p.migrationId,
    owner: p.owner,
    scope: 'load',
    ttlMs: p.leaseTtlMs,
    onLost: (unitId, reason) => running.get(unitId)?.abort.abort(new MigratorError(ExitCode.INTERRUPTED, `lease of load unit ${unitId} lost: ${reason}`)),
    logger: p.log,
  });
  const progress = createLoadProgressWriter((ns, fields) => p.store.updateLoadProgress(p.migrationId, ns, fields));
  keeper.start();
  const start = (u: LoadUnitDoc) => {
    const abort = new AbortController();
    const stop = () => abort.abort();
    p.signal?.addEventListener('abort', stop, { once: true });
    const done = runUnit(p, keeper, u, abort.signal, progress)
      .then((docs) => {
        if (docs !== undefined) {
          result.units++;
          result.documents += docs;
        }
      })
      .catch((err: unknown) => {
        if (abort.signal.aborted && !p.signal?.aborted && !failure) {
          // Our lease was lost: the unit is someone else's now.
          p.log.warn({ unit: u.shardId, err: errorMessage(err) }, 'load unit stopped: its lease was lost');
          return;
        }
        failure ??= err;
      })
      .finally(() => {
        p.signal?.removeEventListener('abort', stop);
        running.delete(u.shardId);
        return keeper.release(u.shardId);
      });
    running.set(u.shardId, { abort, done });
  };
  try {
    for (;;) {
      if (p.signal?.aborted || failure) break;
      const open = await p.store.listOpenLoadUnits(p.migrationId);
      if (open.length === 0) break;
      const dataLeft = collectionsWithDataLeft(open);
      const now = Date.now();
      for (const u of open) {
        if (running.size >= p.parallelism || p.signal?.aborted || failure) break;
        if (running.has(u.shardId)) continue;
        // Indexes after data: a collection's indexes are built once all its data is loaded.
        if (u.kind === 'indexes' && dataLeft.has(`${u.sourceDb}.${u.coll}`)) continue;
        const holder = u.lease.owner;
        if (holder && holder !== p.owner) {
          if (isDeadLocalOwner(holder)) {
            // A process of this machine that is gone (killed, or our own earlier incarnation): the
            // unit is free at once, once its orphaned tools (recorded under a shared --data-dir)
            // are stopped, so none of them writes into the range after we removed it.
            const killed = killStaleTools(p.workDir);
            if (killed.length) p.log.warn({ pids: killed, unit: u.shardId }, 'killed the tools of a dead load process');
            await p.store.releaseLease({ migrationId: p.migrationId, shardId: u.shardId, scope: 'load', owner: holder, epoch: u.lease.epoch, expiresAt: u.lease.expiresAt, ttlMs: 0 });
          } else if (u.lease.expiresAt.getTime() + DEFAULT_LEASE_GRACE_MS > now) continue; // a live owner's
        }
        if (!(await keeper.tryAcquire(u.shardId))) continue;
        start(u);
      }
      // Poll again after pollMs, when a running unit ends, or at once on a stop (util/retry's sleep).
      await Promise.race([sleep(pollMs, p.signal), ...[...running.values()].map((r) => r.done)]);
    }
  } finally {
    if (failure || p.signal?.aborted) for (const r of running.values()) r.abort.abort();
    await Promise.allSettled([...running.values()].map((r) => r.done));
    keeper.stop();
    await keeper.releaseAll();
    await progress.flush();
  }
  if (failure) throw failure;
  return result;
}

/**
 * Source namespaces ("db.coll") with data still to load among `open` units: a collection's ranges,
 * or the database pipe that holds it. Its 'indexes' unit waits for them (INVARIANT: indexes are
 * built only over the whole of the collection's data, so a rerun of a data unit never follows).
 */
export function collectionsWithDataLeft(open: Pick<LoadUnitDoc, 'kind' | 'sourceDb' | 'coll' | 'collections'>[]): Set<string> {
  const left = new Set<string>();
  for (const u of open) {
    if (u.kind === 'range') left.add(`${u.sourceDb}.${u.coll}`);
    else if (u.kind === 'database') for (const c of u.collections ?? []) left.add(`${u.sourceDb}.${c.coll}`);
  }
  return left;
}

/** One unit, under its lease. Resolves with its documents, or undefined when it was not ours to finish. */
async function runUnit(
  p: LoadWorkerInput,
  keeper: LeaseKeeper,
  claimed: LoadUnitDoc,
  signal: AbortSignal,
  progress: ReturnType<typeof createLoadProgressWriter>,
): Promise<number | undefined> {
  const lease = keeper.lease(claimed.shardId);
  if (!lease || !(await p.store.startLoadUnit(lease))) return undefined; // done meanwhile, or lost
  // The unit as it is now (attempts of earlier runs included).
  const u = (await p.store.getLoadUnit(p.migrationId, claimed.shardId)) ?? claimed;
  const redo = u.attempts > 1;
  const log = p.log.child({ unit: u.shardId });
  let counts: { documents: number; bytes: number };
  const sample = unitSampler(p, keeper, u, log);
  if (u.kind === 'database') counts = await runDatabaseUnit(p, u, redo, signal, progress, log, sample);
  else if (u.kind === 'range') counts = await runRangeUnit(p, keeper, u, redo, signal, log, sample);
  else {
    const ns = `${u.sourceDb}.${u.coll}`;
    counts = await buildIndexes(p, u, log, { signal, onProgress: (indexes) => progress.write(ns, { indexes }, true) });
  }
  if (signal.aborted) throw new MigratorError(ExitCode.INTERRUPTED, `load unit ${u.shardId} interrupted`);
  const held = keeper.lease(u.shardId);
  if (!held || (await p.store.finishLoadUnit(held, counts)) !== 'saved') {
    log.warn('load unit finished after its lease was lost: the new owner redoes it');
    return undefined;
  }
  if (u.kind !== 'database') await recordCollectionProgress(p, u, progress);
  return counts.documents;
}

/**
 * A database's small collections in one pipe, as the load always ran them. Redone (or with
 * --drop) it replaces them: mongorestore --drop, or deleteMany for sharded target collections.
 */
async function runDatabaseUnit(
  p: LoadWorkerInput,
  u: LoadUnitDoc,
  redo: boolean,
  signal: AbortSignal,
  progress: ReturnType<typeof createLoadProgressWriter>,
  log: Logger,
  sample: (fraction: number, documents: number) => void = () => undefined,
): Promise<{ documents: number; bytes: number }> {
  const colls = u.collections ?? [];
  const dumpedByNs = new Map<string, number>();
  const drop = Boolean(u.drop) || redo;
  let dropArg = drop;
  if (drop) dropArg = !(await keepShardedTargets(p, colls.map((c) => c.target), log));
  const restoreArgs = ['--archive', `--nsInclude=${toolsLiteral(u.sourceDb)}.*`];
  if (colls.some((c) => c.target !== `${u.sourceDb}.${c.coll}`)) {
    if (colls.every((c) => c.target === `${u.targetDb}.${c.coll}`)) restoreArgs.push(`--nsFrom=${toolsLiteral(u.sourceDb)}.*`, `--nsTo=${toolsLiteral(u.targetDb)}.*`);
    else {
      for (const c of colls) {
        if (c.target === `${u.sourceDb}.${c.coll}`) continue;
        const t = splitNs(c.target);
        restoreArgs.push(`--nsFrom=${toolsLiteral(u.sourceDb)}.${toolsLiteral(c.coll)}`, `--nsTo=${toolsLiteral(t.db)}.${toolsLiteral(t.coll)}`);
      }
    }
  }
  const all = (await p.source.db(u.sourceDb).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  const keep = new Set(colls.map((c) => c.coll));
  const dumpArgs = ['--archive', `--db=${u.sourceDb}`, ...all.filter((c) => !keep.has(c)).sort().map((c) => `--excludeCollection=${c}`)];
  if (p.options.gzip) {
    dumpArgs.push('--gzip');
    restoreArgs.push('--gzip');
  }
  if (dropArg) restoreArgs.push('--drop');
  if (u.noIndexRestore) restoreArgs.push('--noIndexRestore');
  restoreArgs.push(`--numParallelCollections=${p.options.numParallelCollections}`, `--numInsertionWorkersPerCollection=${p.options.numInsertionWorkersPerCollection}`);
  dumpArgs.push(`--numParallelCollections=${p.options.numParallelCollections}`);
  const job: PipeJob = { sourceDb: u.sourceDb, targetDb: u.targetDb, collections: colls.map((c) => c.coll), dumpArgs, restoreArgs };
  const targetToSource = new Map(colls.map((c) => [c.target, `${u.sourceDb}.${c.coll}`]));
  const finished = new Map<string, { target: string; documents: number }>();
  const onEvent = (e: ToolEvent) => {
    // Tools being stopped report the collections they were on as "finished (0 documents)":
    // after a stop request nothing they say is progress, and a reload redoes the unit anyway.
    if (signal.aborted) return;
    if (e.kind === 'dump-progress') {
      p.onProgress?.(`${e.ns} ${e.done}/${e.total}`);
      progress.write(e.ns, { dumped: e.done, total: e.total });
      dumpedByNs.set(e.ns, e.done);
      const docs = [...dumpedByNs.values()].reduce((a, b) => a + b, 0);
      // Of the plan's estimate (collStats count); a pipe never reports 100 % before it finished.
      if (u.estimatedDocuments) sample(Math.min(0.99, docs / u.estimatedDocuments), docs);
    } else if (e.kind === 'dump-finished') {
      progress.write(e.ns, { dumped: e.documents, total: e.documents }, true);
    } else if (e.kind === 'restore-finished') {
      // Not "done" yet: mongorestore prints this line also for a collection whose restore then
      // fails ("finished restoring x (0 documents)" followed by "Failed: x: error restoring …").
      // INVARIANT: a collection counts as loaded only once its whole pipe succeeded (below).
      const src = targetToSource.get(e.ns) ?? e.ns;
      finished.set(src, { target: e.ns, documents: e.documents });
      progress.write(src, { restored: e.documents }, true);
    }
  };
  log.info({ db: u.sourceDb, target: u.targetDb, collections: colls.length, drop: dropArg }, 'loading database');
  const r = await runDumpRestorePipe(job, p.sourceEndpoint, p.targetEndpoint, p.bins, { workDir: p.workDir, signal, onEvent });
  // A collection whose indexes are built after the pipe is done once they are (recordCollectionProgress).
  const indexesAfter = new Set(colls.filter((c) => c.indexesAfter).map((c) => `${u.sourceDb}.${c.coll}`));
  for (const [src, f] of finished) {
    progress.write(src, { restored: f.documents, done: !indexesAfter.has(src) }, true);
    log.info({ ns: src, target: f.target, documents: f.documents }, 'collection loaded');
  }
  return { documents: r.restored, bytes: r.bytes };
}

/**
 * mongorestore --drop drops each collection before restoring it; a dropped sharded collection
 * comes back UNSHARDED (dropping removes its sharding metadata:
 * https://www.mongodb.com/docs/manual/reference/method/db.collection.drop/#sharded-collections).
 * So for a pipe with pre-sharded target collections, the migrator replaces --drop itself: it
 * empties the sharded ones (deleteMany keeps their shard key and indexes) and drops the others,
 * then restores without --drop. Both are idempotent, so a rerun redoes them. True when it did so.
 */
async function keepShardedTargets(p: LoadWorkerInput, targets: string[], log: Logger): Promise<boolean> {
  const keys = await readShardKeys(p.target);
  if (!targets.some((t) => keys.has(t))) return false;
  for (const ns of targets) {
    const t = splitNs(ns);
    const coll = p.target.db(t.db).collection(t.coll);
    const key = keys.get(ns);
    if (key) {
      const { deletedCount } = await coll.deleteMany({});
      log.info({ ns, shardKey: key, deleted: deletedCount }, 'sharded target collection emptied instead of dropped (it stays sharded)');
    } else {
      await coll.drop().catch((err: unknown) => {
        if (!isNamespaceNotFound(err)) throw err; // nothing to drop
      });
    }
  }
  return true;
}

/**
 * One `_id` range: `mongodump --query <range>` | `mongorestore --noIndexRestore` into the
 * collection the plan created. A range that ran before (a crash, a lost lease) is first removed
 * from the target with the same filter — the collection and its finished ranges stay.
 */
async function runRangeUnit(
  p: LoadWorkerInput,
  keeper: LeaseKeeper,
  u: LoadUnitDoc,
  redo: boolean,
  signal: AbortSignal,
  log: Logger,
  sample: (fraction: number, documents: number) => void = () => undefined,
): Promise<{ documents: number; bytes: number }> {
  const range = unitRange(u);
  const t = splitNs(u.target!);
  if (redo) {
    await keeper.waitWritable(u.shardId, signal);
    const { deletedCount } = await p.target.db(t.db).collection(t.coll).deleteMany(rangeFilter(range));
    log.info({ ns: u.target, range: `${u.part}/${u.parts}`, deleted: deletedCount }, 'range reloaded: its documents on the target removed first');
  }
  const restoreArgs = ['--archive', `--nsInclude=${toolsLiteral(u.sourceDb)}.${toolsLiteral(u.coll!)}`, '--noIndexRestore'];
  if (t.db !== u.sourceDb || t.coll !== u.coll) restoreArgs.push(`--nsFrom=${toolsLiteral(u.sourceDb)}.${toolsLiteral(u.coll!)}`, `--nsTo=${toolsLiteral(t.db)}.${toolsLiteral(t.coll)}`);
  const dumpArgs = ['--archive', `--db=${u.sourceDb}`, `--collection=${u.coll}`];
  if (p.options.gzip) {
    dumpArgs.push('--gzip');
    restoreArgs.push('--gzip');
  }
  restoreArgs.push(`--numInsertionWorkersPerCollection=${p.options.numInsertionWorkersPerCollection}`);
  const label = `${u.sourceDb}.${u.coll} range ${u.part}/${u.parts}`;
  await keeper.waitWritable(u.shardId, signal);
  const r: PipeResult = await runDumpRestorePipe(
    { sourceDb: u.sourceDb, targetDb: t.db, collections: [u.coll!], dumpArgs, restoreArgs, queryJson: rangeQueryJson(range), label },
    p.sourceEndpoint,
    p.targetEndpoint,
    p.bins,
    {
      workDir: p.workDir,
      signal,
      onEvent: (e) => {
        if (!signal.aborted && e.kind === 'dump-progress') {
          p.onProgress?.(`${label} ${e.done}/${e.total}`);
          if (e.total > 0) sample(Math.min(0.99, e.done / e.total), e.done);
        }
      },
    },
  );
  log.info({ ns: `${u.sourceDb}.${u.coll}`, target: u.target, range: `${u.part}/${u.parts}`, documents: r.restored, bytes: r.bytes }, 'range loaded');
  return { documents: r.restored, bytes: r.bytes };
}

/**
 * A collection's progress in the migration document (for `status`), from its units: a partitioned
 * one's ranges, and for any collection whether all its units (its index build included) are done.
 */
async function recordCollectionProgress(p: LoadWorkerInput, u: LoadUnitDoc, progress: ReturnType<typeof createLoadProgressWriter>): Promise<void> {
  const ns = `${u.sourceDb}.${u.coll}`;
  const units = (await p.store.listLoadUnits(p.migrationId, { sourceDb: u.sourceDb, coll: u.coll! })).filter((x) => x.kind !== 'database');
  const ranges = units.filter((x) => x.kind === 'range');
  const done = ranges.filter((x) => x.state === 'done');
  // Loaded whole (its database pipe recorded its counts): only the index build's end is news.
  if (ranges.length === 0) return progress.write(ns, { done: units.every((x) => x.state === 'done') }, true);
  const fields: Partial<LoadCollectionProgress> = {
    target: u.target!,
    partitions: ranges.length,
    partitionsDone: done.length,
    restored: done.reduce((s, x) => s + (x.documents ?? 0), 0),
    bytes: done.reduce((s, x) => s + (x.bytes ?? 0), 0),
    done: units.every((x) => x.state === 'done'),
  };
  progress.write(ns, fields, true);
}
