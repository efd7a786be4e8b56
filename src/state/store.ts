/**
 * The migrator's state: a MongoDB database (default `migrator_state`) on the state URI.
 *
 * One module per aggregate, each with its collection handles private to it; this class composes
 * them and keeps the methods callers use:
 *  - migrations.ts (+ phases.ts), capture-checkpoints.ts, leases.ts, shards.ts (apply checkpoints),
 *    cutovers.ts, ddl-rendezvous.ts, load.ts (load progress + units), ttl-holds.ts, schema.ts.
 *
 * Collections (all keyed by migration id):
 *  - `migrations`          one document per migration: phase, resume point, timestamps, last error;
 *  - `capture_checkpoints` one per migration: resume token + clusterTime + counters;
 *  - `shards`              one per (migration, Kinesis shard): the shard's LEASE and its APPLY
 *                          CHECKPOINT in the same document, so a checkpoint write can be made
 *                          conditional on still holding the lease in one atomic update;
 *  - `cutovers`            one per migration: the cutover request (requested/aborted, barrier id);
 *  - `load_partitions`     one per unit of the initial load (a database's small collections, one
 *                          `_id` range of a large collection, or its index build): its state
 *                          (pending / running / done), counts, and a LEASE like a shard's, so
 *                          full-migrate and `load-worker` processes share the load
 *                          (src/orchestration/load-worker.ts);
 *  - `ddl_rendezvous`      one per DDL event: which shards reached it, whether it was applied
 *                          (a DDL is broadcast to every shard but must run once, after every
 *                          shard applied what precedes it, and before any shard goes past it).
 *
 * Invariants:
 *  - the capture checkpoint never moves backwards (saveCaptureCheckpoint);
 *  - an apply checkpoint is only written by the current lease holder (owner + epoch, lease not
 *    expired) and never moves backwards (saveApplyCheckpoint); the caller writes it only after
 *    the target acknowledged the writes it covers;
 *  - a lease changes hands only when free or expired for longer than a grace period (≥ the
 *    clock skew between apply processes), and every hand-over bumps `epoch` (a fencing token).
 *
 * Lease protocol for `migrator apply` processes sharing a stream (what makes an old owner stop
 * before a new owner starts):
 *  1. `acquireLease` → read `checkpoint` → read the shard after `checkpoint.sequenceNumber`.
 *  2. Before writing a batch to the target, `leaseRemainingMs(lease) > maxBatchMs + margin`;
 *     otherwise `renewLease` first. A renewal that fails (null) means the lease is lost: stop the
 *     shard at once and drop its buffered records.
 *  3. After the target acknowledged the batch: `renewLease`, then `saveApplyCheckpoint`, which
 *     only succeeds for the same owner + epoch while the lease is unexpired. `'lease-lost'` → stop.
 *  4. Another process can only take the shard once `expiresAt + graceMs` has passed on its clock,
 *     i.e. after the old owner, by step 2, has stopped writing. The new owner resumes from the
 *     last saved checkpoint; replaying what the old owner applied after it is idempotent.
 *  Residual risk: a process frozen between the check of step 2 and its write (long GC/VM pause)
 *  could still write late; bound writes with timeouts shorter than the lease margin.
 */
import type { Db, MongoClient } from 'mongodb';
import { DEFAULT_STATE_DB } from '../model/constants.js';
import type { TransientRetryPolicy } from '../db/transient-retry.js';
import { CaptureCheckpoints } from './capture-checkpoints.js';
import { Cutovers } from './cutovers.js';
import { DdlRendezvous } from './ddl-rendezvous.js';
import { InitialLoad } from './load.js';
import { Leases } from './leases.js';
import { MigrationRecords } from './migrations.js';
import { checkSchemaVersion } from './schema.js';
import { ApplyCheckpoints } from './shards.js';
import { storeContext } from './store-context.js';
import { TtlHolds } from './ttl-holds.js';

export { DEFAULT_STATE_DB };
export * from './phases.js';
export { phaseBeforeFailure, type ForecastInputsDoc, type MigrationDoc, type ResumePoint } from './migrations.js';
export type { CaptureCheckpointDoc, Counters } from './capture-checkpoints.js';
export { DEFAULT_LEASE_GRACE_MS, leaseRemainingMs, type LeaseScope, type LeaseState, type ShardLease } from './leases.js';
export { START_OF_SHARD, type ApplyCheckpoint, type CheckpointWriteResult, type ShardDoc, type StreamCheckpoint } from './shards.js';
export type { CutoverDoc, CutoverState } from './cutovers.js';
export type { DdlRendezvousDoc } from './ddl-rendezvous.js';
export {
  loadKey,
  loadNs,
  type LoadCollectionProgress,
  type LoadIndexProgress,
  type LoadPlanInfo,
  type LoadState,
  type LoadUnitDoc,
  type LoadUnitKind,
  type LoadUnitState,
  type NewLoadUnit,
} from './load.js';
export type { TtlHoldDoc } from './ttl-holds.js';
export { STATE_SCHEMA_VERSION } from './schema.js';
export { sequenceKey, upsertTolerantOfRace } from './store-context.js';

export interface StateStoreOptions {
  client: MongoClient;
  /** Default `migrator_state`. */
  dbName?: string;
  /** Injected in tests. */
  now?: () => Date;
  /** How transient errors of the store's database are ridden out (see resilient-collection.ts). */
  retry?: TransientRetryPolicy;
}

/** The state store as callers see it: the operations of every aggregate (no collection handle). */
/** An aggregate module's operations (its public methods; not its private handles nor ensureIndexes). */
type Operations<T> = Omit<T, 'ensureIndexes'>;

/** The state store as callers see it: the operations of every aggregate (no collection handle). */
export type StateStoreApi = Operations<MigrationRecords> &
  Operations<CaptureCheckpoints> &
  Operations<Leases> &
  Operations<ApplyCheckpoints> &
  Operations<Cutovers> &
  Operations<DdlRendezvous> &
  Operations<InitialLoad> &
  Operations<TtlHolds>;

/*
 * The parts of the store each long-running role uses, as types: the runners take these instead of
 * the whole class, so a stand-in (the benchmark's in-memory store) is type-checked against exactly
 * what the product calls and cannot silently miss a method the product gains later.
 */
/** What a LeaseKeeper calls. */
export type LeaseStateStore = Pick<StateStoreApi, 'acquireLease' | 'renewLease' | 'releaseLease'>;
/** What the DDL gate calls (src/apply/ddl-gate.ts). */
export type DdlStateStore = Pick<StateStoreApi, 'arriveAtDdl' | 'getDdlRendezvous' | 'markDdlApplied'>;
/** What runCapture calls. */
export type CaptureStateStore = LeaseStateStore & Pick<StateStoreApi, 'getMigration' | 'getCaptureCheckpoint' | 'saveCaptureCheckpoint' | 'getCaptureLease'>;
/** What runApply calls (itself, its lease keeper and its DDL gate). */
export type ApplyStateStore = LeaseStateStore &
  DdlStateStore &
  Pick<StateStoreApi, 'getMigration' | 'getApplyCheckpoint' | 'saveApplyCheckpoint' | 'setShardStall' | 'setShardAppliedThrough' | 'recordBarrierReached' | 'recordError' | 'recordTtlHold'>;
/** What holding and restoring TTL indexes calls (src/db/ttl-hold.ts, src/orchestration/ttl.ts); the DDL replay adds it to ApplyStateStore when it holds replayed indexes. */
export type TtlStateStore = Pick<StateStoreApi, 'recordTtlHold' | 'listTtlHolds' | 'markTtlRestored'>;

type Args<T, K extends keyof T> = T[K] extends (...a: infer A) => unknown ? A : never;

/** The MongoDB state store: each method delegates to the module of its aggregate. */
export class StateStore implements StateStoreApi {
  /** The store's database (tests and diagnostics read its collections; product code goes through the methods). */
  readonly db: Db;
  readonly #migrations: MigrationRecords;
  readonly #capture: CaptureCheckpoints;
  readonly #leases: Leases;
  readonly #shards: ApplyCheckpoints;
  readonly #cutovers: Cutovers;
  readonly #ddl: DdlRendezvous;
  readonly #load: InitialLoad;
  readonly #ttl: TtlHolds;
  readonly #ctx: ReturnType<typeof storeContext>;

  constructor(options: StateStoreOptions) {
    this.db = options.client.db(options.dbName ?? DEFAULT_STATE_DB);
    const ctx = storeContext(this.db, options.now ?? (() => new Date()), options.retry ?? {});
    this.#ctx = ctx;
    this.#migrations = new MigrationRecords(ctx);
    this.#capture = new CaptureCheckpoints(ctx);
    this.#leases = new Leases(ctx);
    this.#shards = new ApplyCheckpoints(ctx);
    this.#cutovers = new Cutovers(ctx);
    this.#ddl = new DdlRendezvous(ctx);
    this.#load = new InitialLoad(ctx);
    this.#ttl = new TtlHolds(ctx);
  }

  /** Opens the store and creates its indexes (idempotent). */
  static async open(options: StateStoreOptions): Promise<StateStore> {
    const store = new StateStore(options);
    await store.ensureIndexes();
    return store;
  }

  /** Idempotent: createIndex with an identical spec is a no-op. */
  async ensureIndexes(): Promise<void> {
    await checkSchemaVersion(this.#ctx);
    await this.#leases.ensureIndexes();
    await this.#migrations.ensureIndexes();
    await this.#load.ensureIndexes();
  }

  // Migrations (migrations.ts)
  createMigration(...a: Args<MigrationRecords, 'createMigration'>) { return this.#migrations.createMigration(...a); }
  getMigration(...a: Args<MigrationRecords, 'getMigration'>) { return this.#migrations.getMigration(...a); }
  listMigrations() { return this.#migrations.listMigrations(); }
  setPhase(...a: Args<MigrationRecords, 'setPhase'>) { return this.#migrations.setPhase(...a); }
  setConfigField(...a: Args<MigrationRecords, 'setConfigField'>) { return this.#migrations.setConfigField(...a); }
  setResumePoint(...a: Args<MigrationRecords, 'setResumePoint'>) { return this.#migrations.setResumePoint(...a); }
  recordError(...a: Args<MigrationRecords, 'recordError'>) { return this.#migrations.recordError(...a); }
  clearError(...a: Args<MigrationRecords, 'clearError'>) { return this.#migrations.clearError(...a); }
  recordApplySamples(...a: Args<MigrationRecords, 'recordApplySamples'>) { return this.#migrations.recordApplySamples(...a); }
  saveForecastInputs(...a: Args<MigrationRecords, 'saveForecastInputs'>) { return this.#migrations.saveForecastInputs(...a); }

  // Capture checkpoint (capture-checkpoints.ts)
  saveCaptureCheckpoint(...a: Args<CaptureCheckpoints, 'saveCaptureCheckpoint'>) { return this.#capture.saveCaptureCheckpoint(...a); }
  getCaptureCheckpoint(...a: Args<CaptureCheckpoints, 'getCaptureCheckpoint'>) { return this.#capture.getCaptureCheckpoint(...a); }
  rewindCaptureCheckpointForNewStream(...a: Args<CaptureCheckpoints, 'rewindCaptureCheckpointForNewStream'>) { return this.#capture.rewindCaptureCheckpointForNewStream(...a); }
  dropCaptureCheckpointForNewStream(...a: Args<CaptureCheckpoints, 'dropCaptureCheckpointForNewStream'>) { return this.#capture.dropCaptureCheckpointForNewStream(...a); }

  // Leases (leases.ts)
  acquireLease(...a: Args<Leases, 'acquireLease'>) { return this.#leases.acquireLease(...a); }
  renewLease(...a: Args<Leases, 'renewLease'>) { return this.#leases.renewLease(...a); }
  getCaptureLease(...a: Args<Leases, 'getCaptureLease'>) { return this.#leases.getCaptureLease(...a); }
  releaseLease(...a: Args<Leases, 'releaseLease'>) { return this.#leases.releaseLease(...a); }
  freeShardLeasesOfDeadRun(...a: Args<Leases, 'freeShardLeasesOfDeadRun'>) { return this.#leases.freeShardLeasesOfDeadRun(...a); }

  // Apply checkpoints (shards.ts)
  saveApplyCheckpoint(...a: Args<ApplyCheckpoints, 'saveApplyCheckpoint'>) { return this.#shards.saveApplyCheckpoint(...a); }
  setShardAppliedThrough(...a: Args<ApplyCheckpoints, 'setShardAppliedThrough'>) { return this.#shards.setShardAppliedThrough(...a); }
  setShardStall(...a: Args<ApplyCheckpoints, 'setShardStall'>) { return this.#shards.setShardStall(...a); }
  getApplyCheckpoint(...a: Args<ApplyCheckpoints, 'getApplyCheckpoint'>) { return this.#shards.getApplyCheckpoint(...a); }
  listShards(...a: Args<ApplyCheckpoints, 'listShards'>) { return this.#shards.listShards(...a); }
  rewindApplyCheckpointForNewStream(...a: Args<ApplyCheckpoints, 'rewindApplyCheckpointForNewStream'>) { return this.#shards.rewindApplyCheckpointForNewStream(...a); }
  forgetShardOfOldStream(...a: Args<ApplyCheckpoints, 'forgetShardOfOldStream'>) { return this.#shards.forgetShardOfOldStream(...a); }

  // Cutover (cutovers.ts)
  requestCutover(...a: Args<Cutovers, 'requestCutover'>) { return this.#cutovers.requestCutover(...a); }
  getCutover(...a: Args<Cutovers, 'getCutover'>) { return this.#cutovers.getCutover(...a); }
  setCutoverBarrier(...a: Args<Cutovers, 'setCutoverBarrier'>) { return this.#cutovers.setCutoverBarrier(...a); }
  recordBarrierReached(...a: Args<Cutovers, 'recordBarrierReached'>) { return this.#cutovers.recordBarrierReached(...a); }
  completeCutover(...a: Args<Cutovers, 'completeCutover'>) { return this.#cutovers.completeCutover(...a); }
  abortCutover(...a: Args<Cutovers, 'abortCutover'>) { return this.#cutovers.abortCutover(...a); }
  confirmWritesStopped(...a: Args<Cutovers, 'confirmWritesStopped'>) { return this.#cutovers.confirmWritesStopped(...a); }
  restartCutover(...a: Args<Cutovers, 'restartCutover'>) { return this.#cutovers.restartCutover(...a); }
  setWritesBlocked(...a: Args<Cutovers, 'setWritesBlocked'>) { return this.#cutovers.setWritesBlocked(...a); }

  // DDL rendezvous (ddl-rendezvous.ts)
  arriveAtDdl(...a: Args<DdlRendezvous, 'arriveAtDdl'>) { return this.#ddl.arriveAtDdl(...a); }
  getDdlRendezvous(...a: Args<DdlRendezvous, 'getDdlRendezvous'>) { return this.#ddl.getDdlRendezvous(...a); }
  markDdlApplied(...a: Args<DdlRendezvous, 'markDdlApplied'>) { return this.#ddl.markDdlApplied(...a); }

  // Initial load: progress and units (load.ts)
  startLoad(...a: Args<InitialLoad, 'startLoad'>) { return this.#load.startLoad(...a); }
  updateLoadProgress(...a: Args<InitialLoad, 'updateLoadProgress'>) { return this.#load.updateLoadProgress(...a); }
  updateLoadProgressMany(...a: Args<InitialLoad, 'updateLoadProgressMany'>) { return this.#load.updateLoadProgressMany(...a); }
  finishLoad(...a: Args<InitialLoad, 'finishLoad'>) { return this.#load.finishLoad(...a); }
  saveLoadPlan(...a: Args<InitialLoad, 'saveLoadPlan'>) { return this.#load.saveLoadPlan(...a); }
  listLoadUnits(...a: Args<InitialLoad, 'listLoadUnits'>) { return this.#load.listLoadUnits(...a); }
  listOpenLoadUnits(...a: Args<InitialLoad, 'listOpenLoadUnits'>) { return this.#load.listOpenLoadUnits(...a); }
  getLoadUnit(...a: Args<InitialLoad, 'getLoadUnit'>) { return this.#load.getLoadUnit(...a); }
  startLoadUnit(...a: Args<InitialLoad, 'startLoadUnit'>) { return this.#load.startLoadUnit(...a); }
  finishLoadUnit(...a: Args<InitialLoad, 'finishLoadUnit'>) { return this.#load.finishLoadUnit(...a); }
  recordLoadUnitSamples(...a: Args<InitialLoad, 'recordLoadUnitSamples'>) { return this.#load.recordLoadUnitSamples(...a); }

  // TTL holds (ttl-holds.ts)
  recordTtlHold(...a: Args<TtlHolds, 'recordTtlHold'>) { return this.#ttl.recordTtlHold(...a); }
  listTtlHolds(...a: Args<TtlHolds, 'listTtlHolds'>) { return this.#ttl.listTtlHolds(...a); }
  markTtlRestored(...a: Args<TtlHolds, 'markTtlRestored'>) { return this.#ttl.markTtlRestored(...a); }
}
