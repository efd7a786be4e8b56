/**
 * Aggregate `migrations`: one document per migration (phase, resume point, timestamps, last error,
 * config, and the forecast's inputs). The initial load's progress lives in the same document but is
 * written by load.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Collection, Document, Timestamp } from 'mongodb';
import { redactText } from '../util/redact.js';
import { retryTransient } from '../db/transient-retry.js';
import type { LoadPlanInfo, LoadState } from './load.js';
import type { MigrationPhase } from './phases.js';
import { COLLECTIONS, upsertTolerantOfRace, type StoreContext } from './store-context.js';

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
  /** Events applied over all shards, sampled by full-migrate while apply runs (forecast.ts ApplySample; bounded by the writer). */
  applySamples?: { at: Date; events: number }[];
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

export class MigrationRecords {
  private readonly migrations: Collection<MigrationDoc>;

  constructor(private readonly ctx: StoreContext) {
    this.migrations = ctx.collection<MigrationDoc>(COLLECTIONS.migrations);
  }

  async ensureIndexes(): Promise<void> {
    await this.migrations.createIndex({ phase: 1 }, { name: 'phase' });
  }

  /** Creates the migration document if missing; returns the stored one (idempotent). */
  async createMigration(id: string, init: { config?: Document } = {}): Promise<MigrationDoc> {
    const now = this.ctx.now();
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
    return retryTransient('migrations.find', () => this.migrations.find({}).sort({ createdAt: 1 }).toArray(), this.ctx.retry);
  }

  /** Moves to `phase`, only from one of `from` when given. Returns false if the guard failed. */
  async setPhase(id: string, phase: MigrationPhase, options: { from?: readonly MigrationPhase[] } = {}): Promise<boolean> {
    const now = this.ctx.now();
    const filter: Document = { _id: id };
    if (options.from) filter.phase = { $in: [...options.from] };
    const r = await this.migrations.updateOne(filter, { $set: { phase, updatedAt: now, phaseChangedAt: now } });
    return r.matchedCount === 1;
  }

  /** Sets one field of the migration's `config` (e.g. the transport it runs on). */
  async setConfigField(id: string, field: string, value: unknown): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $set: { [`config.${field}`]: value } });
  }

  /**
   * Records the resume point taken before the initial load. Set once: a second call does not
   * move it (returns false) - the change stream must start before the dump began.
   */
  async setResumePoint(id: string, point: { ct: Timestamp; rt?: Document }): Promise<boolean> {
    const resumePoint: ResumePoint = { ct: point.ct, takenAt: this.ctx.now() };
    if (point.rt !== undefined) resumePoint.rt = point.rt;
    const r = await this.migrations.updateOne(
      { _id: id, resumePoint: { $exists: false } },
      { $set: { resumePoint, updatedAt: this.ctx.now() } },
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
    const lastError: MigrationDoc['lastError'] = { message, at: this.ctx.now(), phase: m ? phaseBeforeFailure(m) : 'CREATED' };
    if (typeof exitCode === 'number') lastError.exitCode = exitCode;
    await this.migrations.updateOne({ _id: id }, { $set: { lastError, updatedAt: this.ctx.now() } });
  }

  async clearError(id: string): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $unset: { lastError: '' }, $set: { updatedAt: this.ctx.now() } });
  }

  /** Replaces the apply rate samples (MigrationDoc.applySamples; the caller bounds them). */
  async recordApplySamples(id: string, samples: { at: Date; events: number }[]): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $set: { applySamples: samples } });
  }

  /** Records what preflight learnt for the retention forecast (see ForecastInputsDoc). */
  async saveForecastInputs(id: string, inputs: Omit<ForecastInputsDoc, 'measuredAt'>): Promise<void> {
    await this.migrations.updateOne({ _id: id }, { $set: { forecastInputs: { ...inputs, measuredAt: this.ctx.now() } } });
  }
}
