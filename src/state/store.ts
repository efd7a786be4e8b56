/**
 * The migrator's state: a MongoDB database (default `migrator_state`) on the state URI.
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
import { randomBytes } from 'node:crypto';
import type { Collection, Db, Document, MongoClient } from 'mongodb';
import type { Timestamp } from 'mongodb';
import { positionKey, type EventPosition } from '../source/change-envelope.js';
import { DEFAULT_STATE_DB } from '../source/namespace-filter.js';
import { redactText } from '../util/redact.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { retryTransient, type TransientRetryPolicy } from '../db/transient-retry.js';
import { resilientCollection } from './resilient-collection.js';

export { DEFAULT_STATE_DB };

export const MIGRATION_PHASES = [
  'CREATED',
  'INITIAL_LOAD',
  'CATCHING_UP',
  'READY_FOR_CUTOVER',
  'CUTTING_OVER',
  'COMPLETED',
  'FAILED',
  'ABORTED',
] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

export interface ResumePoint {
  /** Operation time to start the change stream at (`startAtOperationTime`). */
  ct: Timestamp;
  /** Resume token, when one was available (`startAfter`). */
  rt?: Document;
  takenAt: Date;
}

export interface MigrationDoc {
  _id: string;
  phase: MigrationPhase;
  createdAt: Date;
  updatedAt: Date;
  phaseChangedAt: Date;
  resumePoint?: ResumePoint;
  lastError?: { message: string; at: Date; phase: MigrationPhase; exitCode?: number };
  config?: Document;
  /** Initial load progress, per source namespace (written by the orchestrator). */
  load?: LoadState;
  /** Set once the load's units are all in `load_partitions` (before any of them runs); kept by reruns. */
  loadPlan?: LoadPlanInfo;
  /** What preflight learnt for the retention forecast (src/orchestration/forecast.ts), for `status`. */
  forecastInputs?: ForecastInputsDoc;
  /** Drawn at creation: with the id, the migration's tag in stream records (see migrationTag). Absent in migrations created before it. */
  nonce?: string;
}

export interface ForecastInputsDoc {
  /** Kinesis RetentionPeriodHours (DescribeStreamSummary). */
  streamRetentionHours?: number;
  /** The source's change-stream history (hours) and where it comes from (oplog window, DocumentDB default, option). */
  sourceHistoryHours?: number;
  sourceHistoryBasis?: string;
  /** Changes per second measured on the source at preflight (MongoDB oplog), when readable. */
  changeEventsPerSecond?: number;
  measuredAt: Date;
}

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

/** Phases in which the initial load may still (re)write the target. */
export const LOAD_PHASES: readonly MigrationPhase[] = ['CREATED', 'INITIAL_LOAD'];

/**
 * The phase a migration was in before it FAILED (its own phase otherwise): where a rerun resumes
 * and what apply's load gate judges. Taken from `lastError.phase`; a missing or meaningless one
 * (older documents, or an error recorded while already FAILED) is inferred from the recorded
 * progress — never a bare CREATED for a migration that has loaded, which would reload it.
 */
export function phaseBeforeFailure(m: Pick<MigrationDoc, 'phase' | 'lastError' | 'load' | 'resumePoint'>): MigrationPhase {
  if (m.phase !== 'FAILED') return m.phase;
  const p = m.lastError?.phase;
  if (p && p !== 'FAILED') return p;
  if (m.load?.finishedAt) return 'CATCHING_UP';
  if (m.load || m.resumePoint) return 'INITIAL_LOAD';
  return 'CREATED';
}

/** Field-name-safe key for a namespace inside `load.collections`. */
export const loadKey = (ns: string) => ns.replace(/\./g, '\u2024');
export const loadNs = (key: string) => key.replace(/\u2024/g, '.');

export type Counters = Record<string, number>;

export interface CaptureCheckpointDoc {
  _id: string;
  ct: Timestamp;
  rt: Document;
  /** positionKey(ct, rt): the order-preserving string the guard compares. */
  pos: string;
  counters: Counters;
  updatedAt: Date;
}

export interface ApplyCheckpoint {
  sequenceNumber: string;
  /** Zero-padded sequence number (lexicographic = numeric order), used by the guard. */
  seqKey: string;
  /** Last applied (clusterTime, token): envelopes at or before it are skipped on replay. */
  ct?: Timestamp;
  rt?: Document;
  pos?: string;
  counters: Counters;
  /** The shard is closed (resharding) and fully applied. */
  shardEnded: boolean;
  at: Date;
  epoch: number;
}

export interface LeaseState {
  owner: string | null;
  epoch: number;
  expiresAt: Date;
  acquiredAt?: Date;
  renewedAt?: Date;
}

export interface ShardDoc {
  _id: string;
  migrationId: string;
  shardId: string;
  lease: LeaseState;
  checkpoint?: ApplyCheckpoint;
  /** Set by the lease holder while the shard has work in hand and the target acknowledges none of it; cleared by progress. */
  stalledSince?: Date;
  /**
   * Published by the lease holder (about every second): the time up to which every record of the
   * shard is applied (ApplyShardStatus.appliedThroughAt). The orchestrator reads it for shards other
   * apply processes hold, to decide READY_FOR_CUTOVER (src/orchestration/full-migration.ts).
   */
  appliedThroughAt?: Date;
}

/** Apply holds one lease per shard; capture one per migration (shardId 'capture'). */
export type LeaseScope = 'shard' | 'capture' | 'load';

/** A lease held by this process (a value; the database is the truth). */
export interface ShardLease {
  readonly migrationId: string;
  readonly shardId: string;
  readonly scope?: LeaseScope;
  readonly owner: string;
  readonly epoch: number;
  readonly expiresAt: Date;
  readonly ttlMs: number;
}

export type CutoverState = 'requested' | 'barrier-sent' | 'completed' | 'aborted';

export interface CutoverDoc {
  _id: string;
  state: CutoverState;
  requestedAt: Date;
  updatedAt: Date;
  barrierId?: string;
  barrierSentAt?: Date;
  /** Shards whose apply reached the barrier. */
  reachedShards: string[];
  abortedAt?: Date;
  abortReason?: string;
  completedAt?: Date;
  /** The operator confirmed that applications stopped writing to the source (`cutover --writes-stopped`). */
  writesStopped?: boolean;
  /** The orchestrator blocked user writes on the source itself (setUserWriteBlockMode). */
  writesBlockedByMigrator?: boolean;
}

export type CheckpointWriteResult = 'saved' | 'lease-lost' | 'stale';

export interface DdlRendezvousDoc {
  /** `${migrationId}/${positionKey of the DDL event}`. */
  _id: string;
  migrationId: string;
  /** The open shards when the first shard arrived (a record only: see src/apply/ddl-gate.ts). */
  shards: string[];
  arrived: string[];
  /** Set once the DDL ran on the target. */
  appliedAt?: Date;
  appliedBy?: string;
  createdAt: Date;
}

/** A target TTL index whose expireAfterSeconds the migration holds (src/apply/ttl-hold.ts). */
export interface TtlHoldDoc {
  /** `${migrationId}/${db}.${coll}/${name}`. */
  _id: string;
  migrationId: string;
  /** Target namespace and index name. */
  db: string;
  coll: string;
  name: string;
  keyPattern: Document;
  /** The value the source has (the one to restore). Never the held value itself. */
  originalExpireAfterSeconds: number;
  recordedAt: Date;
  updatedAt: Date;
  /** Set once the original value is back on the target (cleared when held again). */
  restoredAt?: Date;
  /** Why the restore changed nothing (index gone, or changed by someone else). */
  restoreNote?: string;
}

export interface StateStoreOptions {
  client: MongoClient;
  /** Default `migrator_state`. */
  dbName?: string;
  /** Injected in tests. */
  now?: () => Date;
  /** How transient errors of the store's database are ridden out (see resilient-collection.ts). */
  retry?: TransientRetryPolicy;
}

export const DEFAULT_LEASE_GRACE_MS = 1_000;

/** Version of the state store's layout (collections and document shapes). */
export const STATE_SCHEMA_VERSION = 1;

const DUPLICATE_KEY = 11000;
const isDuplicateKey = (err: unknown) => (err as { code?: number })?.code === DUPLICATE_KEY;

/**
 * Runs an upsert of shared state so that losing a creation race is not an error. Two processes
 * upserting the same `_id` at once (capture and apply starting together on a fresh store) both
 * miss in the filter and both insert; one insert loses with E11000. MongoDB (4.2+) retries such an
 * upsert as an update itself when the filter is an equality on the unique key
 * (https://www.mongodb.com/docs/manual/reference/method/db.collection.updateOne/#upsert-with-unique-index),
 * and otherwise documents that "applications may retry the operation which will succeed as an
 * update". Other engines need not retry (FerretDB does not; DocumentDB: undocumented), so we do:
 * once, since the document now exists. A second E11000 means the stored document does not match
 * the filter (a conditional upsert such as "only if pos is smaller"): `onConflict`'s answer.
 */
export async function upsertTolerantOfRace<T, U>(op: () => Promise<T>, onConflict: () => U | Promise<U>): Promise<T | U> {
  try {
    return await op();
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
  try {
    return await op();
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return onConflict();
  }
}

/**
 * Kinesis sequence numbers are decimal strings (API pattern `0|([1-9]\d{0,128})`); zero-padded to
 * a fixed width, string order is numeric order, which the checkpoint guard relies on.
 */
export function sequenceKey(sequenceNumber: string): string {
  if (!/^\d{1,129}$/.test(sequenceNumber)) throw new Error(`invalid Kinesis sequence number '${sequenceNumber}'`);
  return sequenceNumber.replace(/^0+(?=\d)/, '').padStart(129, '0');
}

export function leaseRemainingMs(lease: ShardLease, now: Date = new Date()): number {
  return lease.expiresAt.getTime() - now.getTime();
}

const shardDocId = (migrationId: string, shardId: string) => `${migrationId}/${shardId}`;

/*
 * The parts of the store each long-running role uses, as types: the runners take these instead of
 * the whole class, so a stand-in (the benchmark's in-memory store) is type-checked against exactly
 * what the product calls and cannot silently miss a method the product gains later.
 */
/** What a LeaseKeeper calls. */
export type LeaseStateStore = Pick<StateStore, 'acquireLease' | 'renewLease' | 'releaseLease'>;
/** What the DDL gate calls (src/apply/ddl-gate.ts). */
export type DdlStateStore = Pick<StateStore, 'arriveAtDdl' | 'getDdlRendezvous' | 'markDdlApplied'>;
/** What runCapture calls. */
export type CaptureStateStore = LeaseStateStore & Pick<StateStore, 'getMigration' | 'getCaptureCheckpoint' | 'saveCaptureCheckpoint' | 'getCaptureLease'>;
/** What runApply calls (itself, its lease keeper and its DDL gate). */
export type ApplyStateStore = LeaseStateStore &
  DdlStateStore &
  Pick<StateStore, 'getMigration' | 'getApplyCheckpoint' | 'saveApplyCheckpoint' | 'setShardStall' | 'setShardAppliedThrough' | 'recordBarrierReached' | 'recordError' | 'recordTtlHold'>;
/** What holding and restoring TTL indexes calls (src/apply/ttl-hold.ts, src/orchestration/ttl.ts); the DDL replay adds it to ApplyStateStore when it holds replayed indexes. */
export type TtlStateStore = Pick<StateStore, 'recordTtlHold' | 'listTtlHolds' | 'markTtlRestored'>;

export class StateStore {
  readonly db: Db;
  private readonly now: () => Date;
  readonly migrations: Collection<MigrationDoc>;
  readonly captureCheckpoints: Collection<CaptureCheckpointDoc>;
  readonly shards: Collection<ShardDoc>;
  readonly cutovers: Collection<CutoverDoc>;
  readonly ddlRendezvous: Collection<DdlRendezvousDoc>;
  /** Capture's lease per migration (same document shape as `shards`, without checkpoints). */
  readonly captureLeases: Collection<ShardDoc>;
  readonly ttlHolds: Collection<TtlHoldDoc>;
  /** The initial load's units (LoadUnitDoc), each with its lease. */
  readonly loadUnits: Collection<LoadUnitDoc>;
  private readonly retry: TransientRetryPolicy;

  constructor(options: StateStoreOptions) {
    this.db = options.client.db(options.dbName ?? DEFAULT_STATE_DB);
    this.now = options.now ?? (() => new Date());
    this.retry = options.retry ?? {};
    // Every collection handle retries transient errors: a store outage pauses callers, not ends them.
    const coll = <T extends Document>(name: string) => resilientCollection(this.db.collection<T>(name), this.retry);
    this.migrations = coll<MigrationDoc>('migrations');
    this.captureCheckpoints = coll<CaptureCheckpointDoc>('capture_checkpoints');
    this.shards = coll<ShardDoc>('shards');
    this.cutovers = coll<CutoverDoc>('cutovers');
    this.ddlRendezvous = coll<DdlRendezvousDoc>('ddl_rendezvous');
    this.captureLeases = coll<ShardDoc>('capture_leases');
    this.ttlHolds = coll<TtlHoldDoc>('ttl_holds');
    this.loadUnits = coll<LoadUnitDoc>('load_partitions');
  }

  /** Opens the store and creates its indexes (idempotent). */
  static async open(options: StateStoreOptions): Promise<StateStore> {
    const store = new StateStore(options);
    await store.ensureIndexes();
    return store;
  }

  /** Idempotent: createIndex with an identical spec is a no-op. */
  async ensureIndexes(): Promise<void> {
    await this.checkSchemaVersion();
    await this.shards.createIndex({ migrationId: 1, shardId: 1 }, { unique: true, name: 'migration_shard' });
    await this.migrations.createIndex({ phase: 1 }, { name: 'phase' });
    await this.captureLeases.createIndex({ migrationId: 1 }, { unique: true, name: 'migration' });
    await this.loadUnits.createIndex({ migrationId: 1, seq: 1 }, { name: 'migration_seq' });
  }

  /**
   * The store's layout carries a version (`meta` document `schema`): a store written by a newer
   * migrator is refused rather than misread; an older or new store is stamped with ours.
   */
  private async checkSchemaVersion(): Promise<void> {
    const meta = resilientCollection(this.db.collection<{ _id: string; version: number; updatedAt: Date }>('meta'), this.retry);
    const doc = await meta.findOne({ _id: 'schema' });
    if (doc && doc.version > STATE_SCHEMA_VERSION) {
      throw new MigratorError(
        ExitCode.STATE_CONFLICT,
        `The state store ${this.db.databaseName} has schema version ${doc.version}; this migrator understands up to ${STATE_SCHEMA_VERSION}.`,
        { hint: 'Use the migrator version that wrote it, or another --state-db.' },
      );
    }
    if (!doc || doc.version < STATE_SCHEMA_VERSION) {
      // Two processes opening a fresh store both stamp it: the loser's retry is a plain update.
      await upsertTolerantOfRace(
        () =>
          meta.updateOne(
            { _id: 'schema' },
            { $set: { version: STATE_SCHEMA_VERSION, updatedAt: this.now() } },
            { upsert: true },
          ),
        () => undefined,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Migrations

  /** Creates the migration document if missing; returns the stored one (idempotent). */
  async createMigration(id: string, init: { config?: Document } = {}): Promise<MigrationDoc> {
    const now = this.now();
    const doc: MigrationDoc = { _id: id, phase: 'CREATED', createdAt: now, updatedAt: now, phaseChangedAt: now, nonce: randomBytes(8).toString('hex') };
    if (init.config !== undefined) doc.config = init.config;
    // Concurrent creation: the loser's retry matches the winner's document and changes nothing.
    await upsertTolerantOfRace(() => this.migrations.updateOne({ _id: id }, { $setOnInsert: doc }, { upsert: true }), () => undefined);
    return (await this.getMigration(id))!;
  }

  getMigration(id: string): Promise<MigrationDoc | null> {
    return this.migrations.findOne({ _id: id });
  }

  listMigrations(): Promise<MigrationDoc[]> {
    return retryTransient('migrations.find', () => this.migrations.find({}).sort({ createdAt: 1 }).toArray(), this.retry);
  }

  /** Moves to `phase`, only from one of `from` when given. Returns false if the guard failed. */
  async setPhase(id: string, phase: MigrationPhase, options: { from?: readonly MigrationPhase[] } = {}): Promise<boolean> {
    const now = this.now();
    const filter: Document = { _id: id };
    if (options.from) filter.phase = { $in: [...options.from] };
    const r = await this.migrations.updateOne(filter, { $set: { phase, updatedAt: now, phaseChangedAt: now } });
    return r.matchedCount === 1;
  }

  /**
   * Records the resume point taken before the initial load. Set once: a second call does not
   * move it (returns false) - the change stream must start before the dump began.
   */
  async setResumePoint(id: string, point: { ct: Timestamp; rt?: Document }): Promise<boolean> {
    const resumePoint: ResumePoint = { ct: point.ct, takenAt: this.now() };
    if (point.rt !== undefined) resumePoint.rt = point.rt;
    const r = await this.migrations.updateOne(
      { _id: id, resumePoint: { $exists: false } },
      { $set: { resumePoint, updatedAt: this.now() } },
    );
    return r.matchedCount === 1;
  }

  async recordError(id: string, error: unknown): Promise<void> {
    const m = await this.getMigration(id);
    // Status output shows this text: it must hold no secret.
    const message = redactText(error instanceof Error ? error.message : String(error));
    const exitCode = (error as { exitCode?: unknown })?.exitCode;
    // INVARIANT: lastError.phase is never FAILED — an error recorded while the migration is
    // already FAILED (apply failing beside a failed orchestrator) keeps the phase it failed in;
    // a rerun resumes there, and apply's load gate reads it.
    const lastError: MigrationDoc['lastError'] = { message, at: this.now(), phase: m ? phaseBeforeFailure(m) : 'CREATED' };
    if (typeof exitCode === 'number') lastError.exitCode = exitCode;
    await this.migrations.updateOne({ _id: id }, { $set: { lastError, updatedAt: this.now() } });
  }

  async clearError(id: string): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $unset: { lastError: '' }, $set: { updatedAt: this.now() } });
  }

  // -------------------------------------------------------------------------------------------
  // Capture checkpoint

  /**
   * Saves the capture checkpoint if it is AFTER the stored one. Invariant: the stored position
   * never decreases. The update matches only a stored `pos` strictly smaller than the new one;
   * when a document with a larger-or-equal `pos` exists, the filter misses, the upsert's insert
   * collides on `_id`, and nothing is written. Returns true when the checkpoint advanced.
   */
  async saveCaptureCheckpoint(id: string, position: EventPosition, counters: Counters = {}): Promise<boolean> {
    const pos = positionKey(position);
    // A first E11000 can also be a lost creation race (the other writer's pos may be smaller than
    // ours): the retry then advances it. A second one means the stored pos is ≥ ours.
    return upsertTolerantOfRace(
      async () => {
        const r = await this.captureCheckpoints.updateOne(
          { _id: id, pos: { $lt: pos } },
          { $set: { ct: position.ct, rt: position.rt, pos, counters, updatedAt: this.now() } },
          { upsert: true },
        );
        return r.matchedCount + r.upsertedCount > 0;
      },
      () => false,
    );
  }

  getCaptureCheckpoint(id: string): Promise<CaptureCheckpointDoc | null> {
    return this.captureCheckpoints.findOne({ _id: id });
  }

  // -------------------------------------------------------------------------------------------
  // Shard leases and apply checkpoints

  private leaseCollection(scope: LeaseScope | undefined): Collection<ShardDoc> {
    // A load unit is a ShardDoc with more fields; the lease methods read and write only the ShardDoc ones.
    return scope === 'capture' ? this.captureLeases : scope === 'load' ? (this.loadUnits as unknown as Collection<ShardDoc>) : this.shards;
  }

  private toLease(doc: ShardDoc, ttlMs: number, scope: LeaseScope | undefined): ShardLease {
    return {
      migrationId: doc.migrationId,
      shardId: doc.shardId,
      ...(scope === 'capture' || scope === 'load' ? { scope } : {}),
      owner: doc.lease.owner!,
      epoch: doc.lease.epoch,
      expiresAt: doc.lease.expiresAt,
      ttlMs,
    };
  }

  /**
   * Takes the shard's lease if it is free, already ours, or expired for more than `graceMs`
   * (steal). Atomic (one findOneAndUpdate); bumps `epoch`, so a lease value obtained earlier by
   * anyone (this owner included) can no longer renew or checkpoint. Returns null when another
   * live owner holds it. Owner ids must be unique per process incarnation.
   */
  async acquireLease(
    migrationId: string,
    shardId: string,
    owner: string,
    options: { ttlMs: number; graceMs?: number; scope?: LeaseScope },
  ): Promise<ShardLease | null> {
    const _id = shardDocId(migrationId, shardId);
    const coll = this.leaseCollection(options.scope);
    await upsertTolerantOfRace(
      () =>
        coll.updateOne(
          { _id },
          { $setOnInsert: { _id, migrationId, shardId, lease: { owner: null, epoch: 0, expiresAt: new Date(0) } } },
          { upsert: true },
        ),
      () => undefined,
    );
    const now = this.now();
    const stealBefore = new Date(now.getTime() - (options.graceMs ?? DEFAULT_LEASE_GRACE_MS));
    const doc = await coll.findOneAndUpdate(
      {
        _id,
        $or: [{ 'lease.owner': null }, { 'lease.owner': owner }, { 'lease.expiresAt': { $lt: stealBefore } }],
      },
      {
        $set: {
          'lease.owner': owner,
          'lease.expiresAt': new Date(now.getTime() + options.ttlMs),
          'lease.acquiredAt': now,
          'lease.renewedAt': now,
        },
        $inc: { 'lease.epoch': 1 },
      },
      { returnDocument: 'after' },
    );
    return doc ? this.toLease(doc, options.ttlMs, options.scope) : null;
  }

  /**
   * Extends a lease we still hold (same owner and epoch, not yet expired on our clock). Returns
   * the renewed lease, or null when it was lost: the caller must stop processing the shard.
   */
  async renewLease(lease: ShardLease): Promise<ShardLease | null> {
    const now = this.now();
    const doc = await this.leaseCollection(lease.scope).findOneAndUpdate(
      {
        _id: shardDocId(lease.migrationId, lease.shardId),
        'lease.owner': lease.owner,
        'lease.epoch': lease.epoch,
        'lease.expiresAt': { $gt: now },
      },
      { $set: { 'lease.expiresAt': new Date(now.getTime() + lease.ttlMs), 'lease.renewedAt': now } },
      { returnDocument: 'after' },
    );
    return doc ? this.toLease(doc, lease.ttlMs, lease.scope) : null;
  }

  /** The capture lease currently recorded for the migration (held or not), or null. */
  async getCaptureLease(migrationId: string): Promise<ShardLease | null> {
    const doc = await this.captureLeases.findOne({ migrationId });
    return doc?.lease.owner ? this.toLease(doc, 0, 'capture') : null; // a view to release or report, not to renew
  }

  /** Gives the lease up (if still ours), so another process can take it without waiting. */
  async releaseLease(lease: ShardLease): Promise<boolean> {
    const filter = { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch };
    if (lease.scope === 'capture') {
      // The capture lease document holds nothing but the lease (no checkpoint, and its epoch
      // fences nothing: capture checkpoints are monotonic on their own), so it goes: a capture that
      // stopped, or failed on bad input, leaves the store as it found it.
      return (await this.captureLeases.deleteOne(filter)).deletedCount === 1;
    }
    const r = await this.leaseCollection(lease.scope).updateOne(filter, { $set: { 'lease.owner': null, 'lease.expiresAt': new Date(0) } });
    return r.matchedCount === 1;
  }

  /**
   * Saves the shard's apply checkpoint, atomically conditional on (a) still holding the lease:
   * same owner, same epoch, not expired; and (b) not moving backwards: the stored sequence
   * number is ≤ the new one. Call it only after the target acknowledged the covered writes.
   * `'lease-lost'`: stop processing the shard; `'stale'`: the checkpoint would regress (a bug).
   */
  async saveApplyCheckpoint(
    lease: ShardLease,
    checkpoint: { sequenceNumber: string; position?: EventPosition; counters?: Counters; shardEnded?: boolean },
  ): Promise<CheckpointWriteResult> {
    const now = this.now();
    const _id = shardDocId(lease.migrationId, lease.shardId);
    const seqKey = sequenceKey(checkpoint.sequenceNumber);
    const cp: ApplyCheckpoint = {
      sequenceNumber: checkpoint.sequenceNumber,
      seqKey,
      counters: checkpoint.counters ?? {},
      shardEnded: checkpoint.shardEnded ?? false,
      at: now,
      epoch: lease.epoch,
    };
    if (checkpoint.position) {
      cp.ct = checkpoint.position.ct;
      cp.rt = checkpoint.position.rt;
      cp.pos = positionKey(checkpoint.position);
    }
    const held = { _id, 'lease.owner': lease.owner, 'lease.epoch': lease.epoch, 'lease.expiresAt': { $gt: now } };
    const r = await this.shards.updateOne(
      { ...held, $or: [{ checkpoint: { $exists: false } }, { 'checkpoint.seqKey': { $lte: seqKey } }] },
      { $set: { checkpoint: cp }, $unset: { stalledSince: '' } }, // a checkpoint is progress
    );
    if (r.matchedCount === 1) return 'saved';
    return (await this.shards.countDocuments(held)) === 1 ? 'stale' : 'lease-lost';
  }

  /**
   * Publishes how far the shard is applied, while `lease` is still held (owner and epoch fenced, so
   * a former holder cannot write over its successor). Never moves backwards ($max).
   */
  async setShardAppliedThrough(lease: ShardLease, at: Date): Promise<void> {
    const filter = { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch };
    await this.shards.updateOne(filter, { $max: { appliedThroughAt: at } });
  }

  /** Records (a Date) or clears (null) that the shard stalled, while `lease` is still held. */
  async setShardStall(lease: ShardLease, since: Date | null): Promise<void> {
    const filter = { _id: shardDocId(lease.migrationId, lease.shardId), 'lease.owner': lease.owner, 'lease.epoch': lease.epoch };
    await this.shards.updateOne(filter, since ? { $set: { stalledSince: since } } : { $unset: { stalledSince: '' } });
  }

  /** The shard's apply checkpoint with its last applied position, if any. */
  async getApplyCheckpoint(
    migrationId: string,
    shardId: string,
  ): Promise<(ApplyCheckpoint & { position?: EventPosition }) | null> {
    const doc = await this.shards.findOne({ _id: shardDocId(migrationId, shardId) });
    if (!doc?.checkpoint) return null;
    const cp = doc.checkpoint;
    return cp.ct && cp.rt ? { ...cp, position: { ct: cp.ct, rt: cp.rt } } : { ...cp };
  }

  listShards(migrationId: string): Promise<ShardDoc[]> {
    return retryTransient('shards.find', () => this.shards.find({ migrationId }).sort({ shardId: 1 }).toArray(), this.retry);
  }

  // -------------------------------------------------------------------------------------------
  // Cutover

  /**
   * Requests a cutover. Idempotent while one is active (requested/barrier-sent): returns it.
   * After an abort, a new request replaces the aborted one. A completed cutover stays.
   */
  async requestCutover(id: string): Promise<CutoverDoc> {
    const now = this.now();
    const fresh: CutoverDoc = { _id: id, state: 'requested', requestedAt: now, updatedAt: now, reachedShards: [] };
    const replaced = await this.cutovers.findOneAndReplace({ _id: id, state: 'aborted' }, fresh, { returnDocument: 'after' });
    if (replaced) return replaced;
    await upsertTolerantOfRace(() => this.cutovers.updateOne({ _id: id }, { $setOnInsert: fresh }, { upsert: true }), () => undefined);
    return (await this.getCutover(id))!;
  }

  /** Records the barrier id sent through the stream (once: requested → barrier-sent). */
  async setCutoverBarrier(id: string, barrierId: string): Promise<CutoverDoc | null> {
    const now = this.now();
    const doc = await this.cutovers.findOneAndUpdate(
      { _id: id, state: 'requested' },
      { $set: { state: 'barrier-sent', barrierId, barrierSentAt: now, updatedAt: now } },
      { returnDocument: 'after' },
    );
    if (doc) return doc;
    const current = await this.getCutover(id);
    return current?.state === 'barrier-sent' && current.barrierId === barrierId ? current : null;
  }

  /** A shard's apply reached the barrier (idempotent). Returns the updated cutover document. */
  async recordBarrierReached(id: string, barrierId: string, shardId: string): Promise<CutoverDoc | null> {
    return this.cutovers.findOneAndUpdate(
      { _id: id, barrierId, state: 'barrier-sent' },
      { $addToSet: { reachedShards: shardId }, $set: { updatedAt: this.now() } },
      { returnDocument: 'after' },
    );
  }

  async completeCutover(id: string): Promise<boolean> {
    const now = this.now();
    const r = await this.cutovers.updateOne(
      { _id: id, state: 'barrier-sent' },
      { $set: { state: 'completed', completedAt: now, updatedAt: now } },
    );
    return r.matchedCount === 1;
  }

  /** Aborts an active cutover request (no-op once completed). */
  async abortCutover(id: string, reason: string): Promise<boolean> {
    const now = this.now();
    const r = await this.cutovers.updateOne(
      { _id: id, state: { $in: ['requested', 'barrier-sent'] } },
      { $set: { state: 'aborted', abortedAt: now, abortReason: reason, updatedAt: now } },
    );
    return r.matchedCount === 1;
  }

  /** Records the operator's confirmation that writes to the source have stopped (idempotent). */
  async confirmWritesStopped(id: string): Promise<boolean> {
    const r = await this.cutovers.updateOne(
      { _id: id, state: { $in: ['requested', 'barrier-sent'] } },
      { $set: { writesStopped: true, updatedAt: this.now() } },
    );
    return r.matchedCount === 1;
  }

  /**
   * Puts an active cutover back to `requested` (barrier and reached shards cleared) after the
   * migrator gave the source's writes back: a barrier sent while writes were blocked no longer
   * follows every application write, so the next run blocks again and sends a new one. Markers
   * of the old barrier that still arrive match no barrier id and change nothing.
   */
  async restartCutover(id: string): Promise<boolean> {
    const r = await this.cutovers.updateOne(
      { _id: id, state: { $in: ['requested', 'barrier-sent'] } },
      { $set: { state: 'requested', reachedShards: [], updatedAt: this.now() }, $unset: { barrierId: '', barrierSentAt: '' } },
    );
    return r.matchedCount === 1;
  }

  async setWritesBlocked(id: string, blocked: boolean): Promise<void> {
    await this.cutovers.updateOne({ _id: id }, { $set: { writesBlockedByMigrator: blocked, updatedAt: this.now() } });
  }

  // -------------------------------------------------------------------------------------------
  // Initial load progress

  /** Starts (or restarts) the initial load: a new attempt with empty progress. */
  async startLoad(id: string, collections: Record<string, LoadCollectionProgress>): Promise<LoadState> {
    const m = await this.getMigration(id);
    const load: LoadState = { attempt: (m?.load?.attempt ?? 0) + 1, startedAt: this.now(), collections };
    await this.migrations.updateOne({ _id: id }, { $set: { load, updatedAt: this.now() } });
    return load;
  }

  async updateLoadProgress(id: string, ns: string, progress: Partial<LoadCollectionProgress>): Promise<void> {
    const set: Document = { updatedAt: this.now() };
    for (const [k, v] of Object.entries(progress)) set[`load.collections.${loadKey(ns)}.${k}`] = v;
    await this.migrations.updateOne({ _id: id, load: { $exists: true } }, { $set: set });
  }

  /** Several collections' progress fields in one write (updateLoadProgress for each, at once). */
  async updateLoadProgressMany(id: string, byNs: Record<string, Partial<LoadCollectionProgress>>): Promise<void> {
    const set: Document = { updatedAt: this.now() };
    for (const [ns, progress] of Object.entries(byNs)) {
      for (const [k, v] of Object.entries(progress)) set[`load.collections.${loadKey(ns)}.${k}`] = v;
    }
    await this.migrations.updateOne({ _id: id, load: { $exists: true } }, { $set: set });
  }

  async finishLoad(id: string): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $set: { 'load.finishedAt': this.now(), updatedAt: this.now() } });
  }

  // -------------------------------------------------------------------------------------------
  // Initial load units (see LoadUnitDoc and src/orchestration/load-worker.ts)

  /**
   * Stores the load's plan: the units, then the `loadPlan` marker. Units of an earlier plan that
   * never got its marker (a planner killed half-way) are removed first; no worker runs a unit
   * before the marker exists, so none of them ever ran.
   */
  async saveLoadPlan(id: string, units: Omit<LoadUnitDoc, '_id' | 'migrationId' | 'lease' | 'state' | 'attempts'>[], info: Omit<LoadPlanInfo, 'plannedAt'>): Promise<void> {
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
    await this.migrations.updateOne({ _id: id }, { $set: { loadPlan: { ...info, plannedAt: this.now() }, updatedAt: this.now() } });
  }

  /** The load's units (those of one source collection with `of`). */
  listLoadUnits(id: string, of?: { sourceDb: string; coll: string }): Promise<LoadUnitDoc[]> {
    const filter = of ? { migrationId: id, sourceDb: of.sourceDb, coll: of.coll } : { migrationId: id };
    return retryTransient('load_partitions.find', () => this.loadUnits.find(filter).sort({ seq: 1 }).toArray(), this.retry);
  }

  /** The units not done yet (what a worker polls). */
  listOpenLoadUnits(id: string): Promise<LoadUnitDoc[]> {
    return retryTransient('load_partitions.find', () => this.loadUnits.find({ migrationId: id, state: { $ne: 'done' } }).sort({ seq: 1 }).toArray(), this.retry);
  }

  getLoadUnit(id: string, unitId: string): Promise<LoadUnitDoc | null> {
    return this.loadUnits.findOne({ _id: shardDocId(id, unitId) });
  }

  /** The lease holder starts an attempt of the unit (running, attempts + 1). False: the lease is lost, or the unit is done. */
  async startLoadUnit(lease: ShardLease): Promise<boolean> {
    const now = this.now();
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
    const now = this.now();
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

  /** Records what preflight learnt for the retention forecast (see ForecastInputsDoc). */
  async saveForecastInputs(id: string, inputs: Omit<ForecastInputsDoc, 'measuredAt'>): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $set: { forecastInputs: { ...inputs, measuredAt: this.now() } } });
  }

  getCutover(id: string): Promise<CutoverDoc | null> {
    return this.cutovers.findOne({ _id: id });
  }

  // -------------------------------------------------------------------------------------------
  // DDL rendezvous (see createDdlGate in src/apply/ddl-gate.ts for the protocol)

  /** Records that `shardId` reached the DDL at `ddlKey` (idempotent); returns the rendezvous. */
  async arriveAtDdl(migrationId: string, ddlKey: string, shardId: string, shards: readonly string[]): Promise<DdlRendezvousDoc> {
    const _id = `${migrationId}/${ddlKey}`;
    // The retry after a lost race is the same upsert, now an update: $addToSet records our arrival.
    await upsertTolerantOfRace(
      () =>
        this.ddlRendezvous.updateOne(
          { _id },
          { $setOnInsert: { migrationId, shards: [...shards].sort(), createdAt: this.now() }, $addToSet: { arrived: shardId } },
          { upsert: true },
        ),
      () => undefined,
    );
    return (await this.ddlRendezvous.findOne({ _id }))!;
  }

  getDdlRendezvous(migrationId: string, ddlKey: string): Promise<DdlRendezvousDoc | null> {
    return this.ddlRendezvous.findOne({ _id: `${migrationId}/${ddlKey}` });
  }

  /** Marks the DDL as applied on the target (first call wins; later calls are no-ops). */
  async markDdlApplied(migrationId: string, ddlKey: string, shardId: string): Promise<void> {
    await this.ddlRendezvous.updateOne(
      { _id: `${migrationId}/${ddlKey}`, appliedAt: { $exists: false } },
      { $set: { appliedAt: this.now(), appliedBy: shardId } },
    );
  }

  // -------------------------------------------------------------------------------------------
  // TTL indexes held on the target during the sync (src/apply/ttl-hold.ts)

  /**
   * Records (or updates) the original expireAfterSeconds of a target TTL index about to be held.
   * Called BEFORE the target is changed. Clears `restoredAt`: the index is held (again).
   */
  async recordTtlHold(
    migrationId: string,
    hold: { db: string; coll: string; name: string; keyPattern: Document; originalExpireAfterSeconds: number },
  ): Promise<void> {
    const _id = `${migrationId}/${hold.db}.${hold.coll}/${hold.name}`;
    const now = this.now();
    await upsertTolerantOfRace(
      () =>
        this.ttlHolds.updateOne(
          { _id },
          {
            $set: { migrationId, ...hold, updatedAt: now },
            $setOnInsert: { recordedAt: now },
            $unset: { restoredAt: '', restoreNote: '' },
          },
          { upsert: true },
        ),
      () => undefined,
    );
  }

  /** The migration's TTL holds, restored or not, in a stable order. */
  listTtlHolds(migrationId: string): Promise<TtlHoldDoc[]> {
    return retryTransient('ttl_holds.find', () => this.ttlHolds.find({ migrationId }).sort({ _id: 1 }).toArray(), this.retry);
  }

  /** The original value is back on the target (idempotent). */
  async markTtlRestored(id: string, note?: string): Promise<void> {
    await this.ttlHolds.updateOne({ _id: id }, { $set: { restoredAt: this.now(), updatedAt: this.now(), ...(note ? { restoreNote: note } : {}) } });
  }
}
