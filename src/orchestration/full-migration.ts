import { join } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { MongoClient } from 'mongodb';
import type { EndpointConfig } from '../config/schema.js';
import type { ServerInfo } from '../db/server-info.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { LOAD_PHASES, phaseBeforeFailure, type MigrationDoc, type MigrationPhase, type StateStore } from '../state/store.js';
import type { LoadOptions } from '../initial-load/dump-restore-plan.js';
import type { ToolBinaries } from '../initial-load/tool-binaries.js';
import type { VerificationReport } from '../verify/verify-migration.js';
import type { SchemaKind } from '../db/compare-schema.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import type { Heartbeat } from '../observability/health.js';
import { runInitialLoad } from './initial-load-runner.js';
import { preflightError, runPreflight, type PreflightReport } from './preflight.js';
import type { TimeSeriesMode } from './target-compat.js';
import { takeResumePoint } from './resume-point.js';
import { SourceWriteBlock } from './write-block.js';
import { activeTtlHolds, holdTargetTtl, restoreCommandText, warnTtlHeld } from './ttl.js';
import { caughtUp, shardsForReadiness } from './cutover-readiness.js';
import { CutoverSequence } from './cutover-sequence.js';
import { MigrationPipelines } from './migration-pipelines.js';
import { watchForecast } from './forecast-watch.js';
import { recreateRolesOnTarget } from './with-roles.js';
import { createApplyRateSampler, type ApplyRateSampler } from './apply-rate-sampler.js';

// Moved to cutover-readiness.ts; re-exported for the callers (and tests) that import it from here.
export { readyForCutover } from './cutover-readiness.js';

export interface FullMigrationInput {
  migrationId: string;
  source: MongoClient;
  sourceEndpoint: EndpointConfig;
  target: MongoClient;
  targetEndpoint: EndpointConfig;
  store: StateStore;
  stateDb: string;
  rules: NamespaceRules;
  kinesis: KinesisClient;
  streamName: string;
  bins: ToolBinaries;
  load: LoadOptions;
  /** Bytes per `_id` range (--partition-size) and load units run at once (--load-parallelism). */
  loadScale?: { partitionSize: number; parallelism: number };
  dataDir: string;
  enableChangeStreams: boolean;
  /** --source-change-stream-retention (hours), for the retention forecast. */
  sourceChangeStreamRetentionHours?: number;
  /** Recreate the source's custom roles of the selected databases on the target (--with-roles). */
  withRoles?: boolean;
  /** --time-series: refuse time-series collections in preflight (default), or copy them once (load-only). */
  timeSeries?: TimeSeriesMode;
  log: Logger;
  signal: AbortSignal;
  /** Stop after the initial load (the `initial-load` command): capture keeps the stream filled. */
  stopAfterLoad?: boolean;
  /** How often cutover requests and catch-up are checked (default 500 ms). */
  pollMs?: number;
  /** Apply's lease TTL (default 30 s; tests use less). */
  leaseTtlMs?: number;
  /** Liveness (src/observability/health.ts): beaten by the replicate loop. */
  heartbeat?: Heartbeat;
  /** Schema kinds whose differences the cutover verification lists without failing (--ignore-schema). */
  ignoreSchema?: readonly SchemaKind[];
}

/**
 * The full migration as a restartable state machine; the phase lives in the state store, so a
 * re-run (same migration id, any container) continues where the last one stopped:
 *
 *   CREATED → INITIAL_LOAD → CATCHING_UP → READY_FOR_CUTOVER ⇄ CUTTING_OVER → COMPLETED
 *
 * Order of the first steps is what makes the copy consistent: the resume point is recorded before
 * any data is read, capture starts from it at once (changes made during the copy wait in the
 * stream, not in the source's bounded history), and apply starts only after the load, replaying
 * everything since the resume point with idempotent writes.
 */
export class FullMigration {
  private migration!: MigrationDoc;
  /** Apply's drain rate for `status`'s retention forecast (apply-rate-sampler.ts). */
  private applyRate?: ApplyRateSampler;
  preflight?: PreflightReport;
  sourceInfo?: ServerInfo;
  verification?: VerificationReport;
  private readonly pipelines: MigrationPipelines;
  private readonly writes: SourceWriteBlock;
  private readonly cutover: CutoverSequence;

  constructor(private readonly p: FullMigrationInput) {
    this.pipelines = new MigrationPipelines(p);
    this.writes = new SourceWriteBlock(p, () => this.sourceInfo);
    this.cutover = new CutoverSequence(p, this.writes, { sourceInfo: () => this.sourceInfo, stopPipelines: () => this.stopPipelines() });
  }

  /**
   * The `collMod` commands that give the target's held TTL indexes their original value back (empty
   * when none is held). Only full-migrate's cutover restores them: `initial-load` followed by
   * `capture` + `apply` has no cutover, so its final report prints these.
   */
  async heldTtlRestoreCommands(): Promise<string[]> {
    return activeTtlHolds(await this.p.store.listTtlHolds(this.p.migrationId)).map(restoreCommandText);
  }

  get phase(): MigrationPhase {
    return this.migration.phase;
  }

  private async setPhase(phase: MigrationPhase): Promise<void> {
    await this.p.store.setPhase(this.p.migrationId, phase);
    this.migration.phase = phase;
    this.p.log.info({ phase }, 'phase');
  }

  /** Loads or creates the migration document; a FAILED migration resumes the phase it failed in. */
  async open(): Promise<MigrationDoc> {
    const s = this.p.store;
    let m = await s.getMigration(this.p.migrationId);
    if (!m) m = await s.createMigration(this.p.migrationId, { config: { streamName: this.p.streamName } });
    if (m.phase === 'FAILED') {
      if (m.lastError?.exitCode === ExitCode.HISTORY_LOST) {
        throw new MigratorError(ExitCode.HISTORY_LOST, `Migration ${this.p.migrationId} lost its change-stream history: ${m.lastError.message}`, {
          hint: 'Start over with a new --migration-id (and --drop): the changes since the resume point cannot be recovered.',
        });
      }
      const resumeAt = phaseBeforeFailure(m);
      await s.setPhase(this.p.migrationId, resumeAt);
      await s.clearError(this.p.migrationId);
      m = (await s.getMigration(this.p.migrationId))!;
      this.p.log.info({ phase: resumeAt }, 'resuming a failed migration');
    }
    this.migration = m;
    return m;
  }

  /** All checks at once; the empty-target check only for a migration that has not loaded yet. */
  async runPreflight(): Promise<PreflightReport> {
    const fresh = this.migration.phase === 'CREATED' && !this.migration.load;
    const report = await runPreflight({
      source: this.p.source,
      sourceUri: this.p.sourceEndpoint.uri,
      target: this.p.target,
      targetUri: this.p.targetEndpoint.uri,
      rules: this.p.rules,
      stateDb: this.p.stateDb,
      kinesis: { client: this.p.kinesis, streamName: this.p.streamName },
      bins: LOAD_PHASES.includes(this.migration.phase) ? this.p.bins : undefined,
      requireEmptyTarget: fresh && !this.p.load.drop,
      enableChangeStreams: this.p.enableChangeStreams,
      timeSeries: this.p.timeSeries,
      sourceChangeStreamRetentionHours: this.p.sourceChangeStreamRetentionHours,
    });
    await this.recordForecastInputs(report);
    this.preflight = report;
    this.sourceInfo = report.source;
    for (const w of report.warnings) this.p.log.warn({ preflight: true }, w);
    for (const s of report.shardedTargets) {
      this.p.log.info(
        { ns: s.ns, shardKey: s.key },
        `target collection is sharded: apply includes its shard key in every upsert filter${this.p.load.drop || this.migration.load ? ', and the load empties it (deleteMany) instead of dropping it, so it stays sharded' : ''}`,
      );
    }
    if (report.problems.length) throw preflightError(report);
    return report;
  }

  /** For `status` in any container: its retention forecast needs what only preflight can read. */
  private async recordForecastInputs(report: PreflightReport): Promise<void> {
    await this.p.store
      .saveForecastInputs(this.p.migrationId, {
        ...(report.stream?.retentionHours !== undefined ? { streamRetentionHours: report.stream.retentionHours } : {}),
        ...(report.sourceHistory?.hours != null ? { sourceHistoryHours: report.sourceHistory.hours, sourceHistoryBasis: report.sourceHistory.basis } : {}),
        ...(report.sourceHistory?.changeEventsPerSecond != null ? { changeEventsPerSecond: report.sourceHistory.changeEventsPerSecond } : {}),
      })
      .catch((err: unknown) => this.p.log.warn({ err: errorMessage(err) }, 'retention forecast inputs not recorded: status cannot forecast'));
  }

  /** Time-series collections of the selection copied once, not kept in sync (--time-series=load-only). */
  get loadOnly(): string[] {
    return this.preflight?.compat?.loadOnly ?? [];
  }

  /** Records the resume point once; later runs keep the original. */
  async recordResumePoint(): Promise<void> {
    if (this.migration.resumePoint) return;
    const point = await takeResumePoint(this.p.source, this.p.stateDb);
    await this.p.store.setResumePoint(this.p.migrationId, point);
    this.migration = (await this.p.store.getMigration(this.p.migrationId))!;
    this.p.log.info({ operationTime: `${point.ct.t},${point.ct.i}` }, 'resume point recorded');
  }

  /** Capture runs in the background from the resume point (or its own checkpoint) until stopped. */
  startCapture(): void {
    this.pipelines.startCapture(this.migration.resumePoint);
  }

  /** Apply runs in the background from its checkpoints; status feeds catch-up detection. */
  startApply(): void {
    this.pipelines.startApply();
  }

  /** Stops capture and apply gracefully (each saves its checkpoint). */
  async stopPipelines(): Promise<void> {
    await this.pipelines.stop();
  }

  /** See {@link MigrationPipelines.waitForCaptureToReachNow} (`initial-load`'s hand-over). */
  async waitForCaptureToReachNow(maxMs = 60_000): Promise<boolean> {
    return this.pipelines.waitForCaptureToReachNow(maxMs);
  }

  /**
   * The initial load (initial-load-runner.ts), beside any `load-worker` processes; returns once
   * every unit of it is done. A re-run after a crash keeps the finished units and redoes the rest;
   * only a load that crashed before its plan was saved (or an older migrator's load) restarts with
   * --drop.
   */
  async runLoad(onProgress?: (text: string) => void): Promise<void> {
    if (!LOAD_PHASES.includes(this.migration.phase)) return;
    const again = Boolean(this.migration.load);
    await this.setPhase('INITIAL_LOAD');
    if (this.p.withRoles) {
      const dbs = [...new Set((this.preflight?.namespaces ?? []).map((n) => n.db))];
      await recreateRolesOnTarget(this.p.source, this.p.target, dbs, this.p.rules, this.p.log);
    }
    const watch = watchForecast(this.p.store, this.p.migrationId, this.p.log);
    await this.pipelines
      .race(
        runInitialLoad({
          source: this.p.source,
          sourceEndpoint: this.p.sourceEndpoint,
          targetEndpoint: this.p.targetEndpoint,
          store: this.p.store,
          migrationId: this.p.migrationId,
          rules: this.p.rules,
          namespaces: this.preflight?.namespaces ?? [],
          loadOnly: this.loadOnly,
          bins: this.p.bins,
          options: { ...this.p.load, drop: this.p.load.drop || (again && !this.migration.loadPlan) },
          target: this.p.target,
          partitionSize: this.p.loadScale?.partitionSize,
          parallelism: this.p.loadScale?.parallelism,
          leaseTtlMs: this.p.leaseTtlMs,
          workDir: join(this.p.dataDir, 'load'),
          signal: this.p.signal,
          log: this.p.log.child({ component: 'initial-load' }),
          onProgress,
        }),
      )
      .finally(() => watch.stop());
    if (this.p.signal.aborted) throw new MigratorError(ExitCode.INTERRUPTED, 'Interrupted during the initial load; rerun to continue it (finished parts of the load are kept).');
    await this.setPhase('CATCHING_UP');
  }

  /**
   * Replicates until a cutover request (from `migrator cutover`, any process) arrives and completes.
   * Returns when COMPLETED; throws on failure; resolves early when `signal` aborts.
   *
   * Invariant: the source is never left write-blocked by a run that ends before COMPLETED. Writes
   * are recorded as blocked (state store) *before* setUserWriteBlockMode runs, so every later path
   * knows to undo it: a failure aborts (verification, marker) or restarts the cutover and unblocks;
   * SIGINT/SIGTERM unblocks and puts the cutover back to `requested` (the rerun blocks again and
   * sends a new barrier); a rerun after a kill -9 blocks again and sends a new barrier (it cannot
   * know the old block held throughout) or, when the cutover was aborted, unblocks first. When
   * unblocking itself fails the error says so, and how to undo it (write-block.ts).
   */
  async replicateUntilCutover(onStatus?: (text: string) => void): Promise<void> {
    try {
      await this.writes.releaseStale();
      // Idempotent: re-holds a TTL index restored by a cutover that then did not complete (ttl.ts).
      await holdTargetTtl({ target: this.p.target, store: this.p.store, migrationId: this.p.migrationId, targets: (this.preflight?.namespaces ?? []).map((n) => this.p.rules.target(n)), log: this.p.log });
      await this.replicateLoop(onStatus);
      if (this.migration.phase === 'COMPLETED' && this.loadOnly.length) {
        this.p.log.warn(
          { loadOnly: this.loadOnly },
          `cut over; NOT IN SYNC: ${this.loadOnly.join(', ')} (time series, --time-series=load-only) were copied once by the initial load; change streams do not report their writes, so anything written to them since is not on the target`,
        );
      }
    } catch (err) {
      if (this.p.signal.aborted) {
        await this.afterCutoverStop();
        throw err;
      }
      throw this.migration.phase === 'COMPLETED' ? err : await this.writes.afterFailure(err);
    }
    if (this.p.signal.aborted) await this.afterCutoverStop();
  }

  private async afterCutoverStop(): Promise<void> {
    if (this.migration.phase !== 'COMPLETED') await this.writes.afterStop();
  }

  /** Polls until COMPLETED (or the signal aborts): readiness, cutover requests, one cutover step a poll. */
  private async replicateLoop(onStatus?: (text: string) => void): Promise<void> {
    const poll = this.p.pollMs ?? 500;
    let lastText = '';
    this.applyRate ??= createApplyRateSampler(this.p.store, this.p.migrationId, this.p.log);
    while (!this.p.signal.aborted) {
      this.p.heartbeat?.beat();
      await this.applyRate.tick();
      await this.updateReadiness();
      const cutover = await this.p.store.getCutover(this.p.migrationId);
      const active = cutover && (cutover.state === 'requested' || cutover.state === 'barrier-sent');
      if (active && this.migration.phase === 'READY_FOR_CUTOVER') {
        await this.setPhase('CUTTING_OVER');
      }
      if (this.migration.phase === 'CUTTING_OVER') {
        if (!active) {
          // Aborted by the operator: give writes back if we blocked them.
          await this.writes.unblock();
          await this.setPhase('READY_FOR_CUTOVER');
          continue;
        }
        if (await this.cutoverStep()) return;
      }
      const status = this.pipelines.applyStatus;
      const text = `${this.migration.phase}: applied ${status?.totals?.events ?? 0} events${status?.caughtUp ? ', caught up' : ''}`;
      if (text !== lastText) onStatus?.((lastText = text));
      await this.pipelines.sleep(poll);
    }
  }

  /** CATCHING_UP ⇄ READY_FOR_CUTOVER (cutover-readiness.ts). */
  private async updateReadiness(): Promise<void> {
    const local = this.pipelines.applyStatus?.shards ?? [];
    if (this.migration.phase === 'CATCHING_UP' && (await caughtUp(local, this.p.store, this.p.migrationId))) await this.setPhase('READY_FOR_CUTOVER');
    // A stalled shard (the target stopped answering) is not ready for a cutover any more.
    else if (this.migration.phase === 'READY_FOR_CUTOVER' && (await shardsForReadiness(local, this.p.store, this.p.migrationId)).some((sh) => sh.stalledSince)) {
      this.p.log.warn({}, 'a shard stalled: no longer ready for the cutover');
      await this.setPhase('CATCHING_UP');
    }
  }

  /** One step of the cutover (cutover-sequence.ts); true once COMPLETED. */
  private async cutoverStep(): Promise<boolean> {
    // A step may verify the whole migration (long, no progress reports): waiting, not wedged.
    const step = () => this.cutover.step();
    const verification = await (this.p.heartbeat ? this.p.heartbeat.during('cutover step', step) : step());
    if (!verification) return false;
    this.verification = verification;
    await this.setPhase('COMPLETED');
    return true;
  }

  /** Records a failure in the state store (phase FAILED, last error with its exit code). */
  async fail(err: unknown): Promise<void> {
    if (!this.migration || (err as MigratorError).exitCode === ExitCode.INTERRUPTED) return;
    await this.p.store.recordError(this.p.migrationId, err).catch(() => undefined);
    await this.p.store.setPhase(this.p.migrationId, 'FAILED').catch(() => undefined);
    this.p.log.error({ err: errorMessage(err) }, 'migration failed');
    await warnTtlHeld(this.p.store, this.p.migrationId, this.p.log).catch(() => undefined);
  }
}
