/**
 * Aggregate "initial load": its progress per source namespace (`load` and `loadPlan` of the
 * migration document) and its units (`load_partitions`), each with a lease like a shard's (leases.ts,
 * scope 'load'), so full-migrate and `load-worker` processes share the load
 * (src/orchestration/load-worker.ts).
 */
import type { Collection, Document } from 'mongodb';
import { retryTransient } from '../db/transient-retry.js';
import type { ShardLease } from './leases.js';
import type { MigrationDoc } from './migrations.js';
import type { ShardDoc } from './shards.js';
import { COLLECTIONS, shardDocId, type StoreContext } from './store-context.js';

export interface LoadCollectionProgress {
  target: string;
  /** Documents mongodump reported for the collection (total once known). */
  total?: number;
  dumped?: number;
  restored?: number;
  done?: boolean;
  /** A time-series collection copied once by the load (--time-series=load-only), not kept in sync. */
  loadOnly?: boolean;
  /** Partitioned collections: ranges in total and done, and archive bytes copied. */
  partitions?: number;
  partitionsDone?: number;
  bytes?: number;
  /** Indexes built after the data (an 'indexes' unit): see LoadIndexProgress. */
  indexes?: LoadIndexProgress;
}

/**
 * A collection's indexes built after its data (src/orchestration/index-build.ts), by name, `_id_`
 * excepted: those built on the target, those still to build (the one building included), and the
 * one the builder is on now (null between builds). Rewritten whole at each step.
 */
export interface LoadIndexProgress {
  built: string[];
  pending: string[];
  building: string | null;
}

export interface LoadPlanInfo {
  plannedAt: Date;
  units: number;
  /** --partition-size the plan was made with (bytes). */
  partitionSize: number;
  /** Source namespaces split into `_id` ranges. */
  partitioned: string[];
}

export type LoadUnitKind = 'database' | 'range' | 'indexes';
export type LoadUnitState = 'pending' | 'running' | 'done';

/**
 * One unit of the initial load (collection `load_partitions`); `shardId` is the unit's id (the
 * lease machinery is the one apply's shards use, scope 'load').
 *  - 'database': one mongodump | mongorestore pipe for a database's collections that are not
 *    partitioned (as the load always did), redone with --drop of those collections;
 *  - 'range': one `_id` range of a large collection (bounds in canonical Extended JSON; a missing
 *    bound is open), redone after deleteMany of the same range on the target;
 *  - 'indexes': a collection's indexes (other than `_id_`), built once all its data is in (its
 *    ranges, or the database pipe that holds it); planned for collections that have any.
 */
export interface LoadUnitDoc extends ShardDoc {
  kind: LoadUnitKind;
  /** Plan order: units are claimed lowest first. */
  seq: number;
  sourceDb: string;
  targetDb: string;
  /**
   * 'database': the collections of the pipe and where each goes ("db.coll"); `indexesAfter`: its
   * indexes are an 'indexes' unit of their own, built after the pipe (which restores no index).
   */
  collections?: { coll: string; target: string; indexesAfter?: boolean }[];
  /** 'range' / 'indexes': the source collection and its target "db.coll". */
  coll?: string;
  target?: string;
  lower?: string;
  upper?: string;
  /** 'range': its position among the collection's ranges. */
  part?: number;
  parts?: number;
  /** 'database': drop its target collections on the first attempt too (--drop, or a reload of an older load). */
  drop?: boolean;
  /** 'database': --noIndexRestore (the plan's --no-index-restore). */
  noIndexRestore?: boolean;
  state: LoadUnitState;
  /** How many times a worker started it. */
  attempts: number;
  /** Of the attempt that finished: documents mongorestore reported, archive bytes through the pipe. */
  documents?: number;
  bytes?: number;
  /** Estimated source bytes (from collStats), for progress. */
  estimatedBytes?: number;
  /** 'database': estimated documents of its collections (collStats count), for its progress samples. */
  estimatedDocuments?: number;
  /**
   * While it runs: the lease holder's last few progress samples (fraction done 0–1, documents), at
   * most LOAD_UNIT_SAMPLES about LOAD_UNIT_SAMPLE_MS apart (src/orchestration/forecast.ts), so any
   * process computes the load's rate over the last minute. Cleared when an attempt starts.
   */
  samples?: { at: Date; fraction: number; documents: number }[];
  startedAt?: Date;
  finishedAt?: Date;
  /** Owner of the attempt that started / finished it. */
  ranBy?: string;
}

export interface LoadState {
  attempt: number;
  startedAt: Date;
  finishedAt?: Date;
  /** Keys are source namespaces with '.' replaced by '\u2024' (field names cannot hold dots). */
  collections: Record<string, LoadCollectionProgress>;
}

/** Field-name-safe key for a namespace inside `load.collections`. */
export const loadKey = (ns: string) => ns.replace(/\./g, '\u2024');
export const loadNs = (key: string) => key.replace(/\u2024/g, '.');

export type NewLoadUnit = Omit<LoadUnitDoc, '_id' | 'migrationId' | 'lease' | 'state' | 'attempts'>;

export class InitialLoad {
  /** The progress fields (`load`, `loadPlan`) of the migration documents. */
  private readonly migrations: Collection<MigrationDoc>;
  private readonly loadUnits: Collection<LoadUnitDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.migrations = ctx.collection<MigrationDoc>(COLLECTIONS.migrations);
    this.loadUnits = ctx.collection<LoadUnitDoc>(COLLECTIONS.loadUnits);
  }

  async ensureIndexes(): Promise<void> {
    await this.loadUnits.createIndex({ migrationId: 1, seq: 1 }, { name: 'migration_seq' });
  }

  // Progress per source namespace (in the migration document) ------------------------------

  /** Starts (or restarts) the initial load: a new attempt with empty progress. */
  async startLoad(id: string, collections: Record<string, LoadCollectionProgress>): Promise<LoadState> {
    const m = await this.migrations.findOne({ _id: id });
    const load: LoadState = { attempt: (m?.load?.attempt ?? 0) + 1, startedAt: this.ctx.now(), collections };
    await this.migrations.updateOne({ _id: id }, { $set: { load, updatedAt: this.ctx.now() } });
    return load;
  }

  async updateLoadProgress(id: string, ns: string, progress: Partial<LoadCollectionProgress>): Promise<void> {
    const set: Document = { updatedAt: this.ctx.now() };
    for (const [k, v] of Object.entries(progress)) set[`load.collections.${loadKey(ns)}.${k}`] = v;
    await this.migrations.updateOne({ _id: id, load: { $exists: true } }, { $set: set });
  }

  /** Several collections' progress fields in one write (updateLoadProgress for each, at once). */
  async updateLoadProgressMany(id: string, byNs: Record<string, Partial<LoadCollectionProgress>>): Promise<void> {
    const set: Document = { updatedAt: this.ctx.now() };
    for (const [ns, progress] of Object.entries(byNs)) {
      for (const [k, v] of Object.entries(progress)) set[`load.collections.${loadKey(ns)}.${k}`] = v;
    }
    await this.migrations.updateOne({ _id: id, load: { $exists: true } }, { $set: set });
  }

  async finishLoad(id: string): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $set: { 'load.finishedAt': this.ctx.now(), updatedAt: this.ctx.now() } });
  }

  // Units (see LoadUnitDoc and src/orchestration/load-worker.ts) ------------------------------

  /**
   * Stores the load's plan: the units, then the `loadPlan` marker. Units of an earlier plan that
   * never got its marker (a planner killed half-way) are removed first; no worker runs a unit
   * before the marker exists, so none of them ever ran.
   */
  async saveLoadPlan(id: string, units: NewLoadUnit[], info: Omit<LoadPlanInfo, 'plannedAt'>): Promise<void> {
    await this.loadUnits.deleteMany({ migrationId: id });
    const docs: LoadUnitDoc[] = units.map((u) => ({
      ...u,
      _id: shardDocId(id, u.shardId),
      migrationId: id,
      state: 'pending',
      attempts: 0,
      lease: { owner: null, epoch: 0, expiresAt: new Date(0) },
    }));
    // One at a time: a retried insert after an ambiguous failure is idempotent (upsert by _id).
    for (const d of docs) await this.loadUnits.updateOne({ _id: d._id }, { $setOnInsert: d }, { upsert: true });
    await this.migrations.updateOne({ _id: id }, { $set: { loadPlan: { ...info, plannedAt: this.ctx.now() }, updatedAt: this.ctx.now() } });
  }

  /** The load's units (those of one source collection with `of`). */
  listLoadUnits(id: string, of?: { sourceDb: string; coll: string }): Promise<LoadUnitDoc[]> {
    const filter = of ? { migrationId: id, sourceDb: of.sourceDb, coll: of.coll } : { migrationId: id };
    return retryTransient('load_partitions.find', () => this.loadUnits.find(filter).sort({ seq: 1 }).toArray(), this.ctx.retry);
  }

  /** The units not done yet (what a worker polls). */
  listOpenLoadUnits(id: string): Promise<LoadUnitDoc[]> {
    return retryTransient('load_partitions.find', () => this.loadUnits.find({ migrationId: id, state: { $ne: 'done' } }).sort({ seq: 1 }).toArray(), this.ctx.retry);
  }

  getLoadUnit(id: string, unitId: string): Promise<LoadUnitDoc | null> {
    return this.loadUnits.findOne({ _id: shardDocId(id, unitId) });
  }

  /** The lease holder starts an attempt of the unit (running, attempts + 1). False: the lease is lost, or the unit is done. */
  async startLoadUnit(lease: ShardLease): Promise<boolean> {
    const now = this.ctx.now();
    const r = await this.loadUnits.updateOne(
      { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch, 'lease.expiresAt': { $gt: now }, state: { $ne: 'done' } },
      { $set: { state: 'running', startedAt: now, ranBy: lease.owner, samples: [] }, $inc: { attempts: 1 } },
    );
    return r.matchedCount === 1;
  }

  /**
   * Marks the unit done with its counts, only for the current lease holder (owner + epoch, not
   * expired): an old owner whose lease was taken over cannot mark a range done that the new owner
   * is reloading. 'lease-lost': someone else (re)does it.
   */
  async finishLoadUnit(lease: ShardLease, counts: { documents: number; bytes: number }): Promise<'saved' | 'lease-lost'> {
    const now = this.ctx.now();
    const r = await this.loadUnits.updateOne(
      { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch, 'lease.expiresAt': { $gt: now } },
      { $set: { state: 'done', finishedAt: now, documents: counts.documents, bytes: counts.bytes, ranBy: lease.owner } },
    );
    return r.matchedCount === 1 ? 'saved' : 'lease-lost';
  }

  /** The lease holder's progress samples of a running unit (bounded by the caller); a lost lease writes nothing. */
  async recordLoadUnitSamples(lease: ShardLease, samples: { at: Date; fraction: number; documents: number }[]): Promise<void> {
    await this.loadUnits.updateOne(
      { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch, state: 'running' },
      { $set: { samples } },
    );
  }
}
