import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { MongoClient, Timestamp } from 'mongodb';
import type { EndpointConfig } from '../config/schema.js';
import type { ServerInfo } from '../db/server-info.js';
import { recreateCustomRoles } from '../db/users-roles.js';
import { retryTransient } from '../db/transient-retry.js';
import { runApply, defaultOwnerId, type ApplyShardStatus, type ApplyStatus } from '../apply/apply-runner.js';
import { MARKER_COLLECTION, runCapture, type CaptureProgress } from '../source/capture-runner.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { LOAD_PHASES, phaseBeforeFailure, type MigrationDoc, type MigrationPhase, type StateStore } from '../state/store.js';
import { listAllShards } from '../transport/shard-map.js';
import { shardsNotPassed } from '../transport/shard-lineage.js';
import type { LoadOptions } from '../initial-load/dump-restore-plan.js';
import type { ToolBinaries } from '../initial-load/tool-binaries.js';
import { verifyMigration, type VerificationReport } from '../verify/verify-migration.js';
import type { SchemaKind } from '../db/compare-schema.js';
import { expandedEventsSupported } from '../source/expanded-events.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { runInitialLoad } from './initial-load-runner.js';
import { buildStatusReport, readStatusInputs } from './status-report.js';
import { preflightError, runPreflight, type PreflightReport } from './preflight.js';
import type { TimeSeriesMode } from './target-compat.js';
import { takeResumePoint } from './resume-point.js';
import { reconcileSchema } from './schema-reconcile.js';
import { setSourceWriteBlock, writeBlockCapability } from './write-block.js';
import { activeTtlHolds, holdTargetTtl, restoreCommandText, restoreHeldTtl, warnTtlHeld } from './ttl.js';
import { createApplyRateSampler, type ApplyRateSampler } from './apply-rate-sampler.js';
import type { Heartbeat } from '../observability/health.js';
import { isUnauthorized, isUserWritesBlocked } from '../db/mongo-errors.js';

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

/** How far behind the stream's tip apply may be and still count as caught up. */
const READY_LAG_MS = 2_000;

/**
 * READY_FOR_CUTOVER: what capture has made durable, apply has applied. The capture checkpoint
 * saved at `cp.updatedAt` covers events whose records were all in the stream by then; a shard's
 * `appliedThroughAt` is the time up to which every record in it is applied (its reader found the
 * tip, or the last applied batch's GetRecords call minus its MillisBehindLatest — never a batch
 * still being written). So every open shard must be applied through `cp.updatedAt` (less
 * READY_LAG_MS: under a steady write load a reader is rarely exactly at the tip), not stalled,
 * and capture current. Being read near the tip is not enough: a target that stops answering
 * leaves a shard read to its tip with nothing applied (it used to report READY so).
 * The cutover itself still waits for the barrier, so this only decides when to report READY.
 */
export function readyForCutover(
  shards: readonly Pick<ApplyShardStatus, 'state' | 'leased' | 'appliedThroughAt' | 'stalledSince'>[],
  capture: { updatedAt: Date } | null,
  nowMs: number,
): boolean {
  if (!capture || nowMs - capture.updatedAt.getTime() >= 5_000) return false;
  const need = capture.updatedAt.getTime() - READY_LAG_MS;
  return (
    shards.length > 0 &&
    shards.every(
      (s) => s.state === 'ended' || (s.leased && !s.stalledSince && s.appliedThroughAt !== undefined && s.appliedThroughAt >= need),
    )
  );
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
  private capture?: { abort: AbortController; done: Promise<CaptureProgress> };
  private apply?: { abort: AbortController; done: Promise<unknown>; status?: ApplyStatus };
  verification?: VerificationReport;

  constructor(private readonly p: FullMigrationInput) {}

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
    // For `status` in any container: its retention forecast needs what only preflight can read.
    await this.p.store
      .saveForecastInputs(this.p.migrationId, {
        ...(report.stream?.retentionHours !== undefined ? { streamRetentionHours: report.stream.retentionHours } : {}),
        ...(report.sourceHistory?.hours != null ? { sourceHistoryHours: report.sourceHistory.hours, sourceHistoryBasis: report.sourceHistory.basis } : {}),
        ...(report.sourceHistory?.changeEventsPerSecond != null ? { changeEventsPerSecond: report.sourceHistory.changeEventsPerSecond } : {}),
      })
      .catch((err: unknown) => this.p.log.warn({ err: errorMessage(err) }, 'retention forecast inputs not recorded: status cannot forecast'));
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
    if (this.capture) return;
    const abort = new AbortController();
    const stop = () => abort.abort();
    this.p.signal.addEventListener('abort', stop, { once: true });
    const rp = this.migration.resumePoint;
    const done = runCapture({
      source: this.p.source,
      store: this.p.store,
      migrationId: this.p.migrationId,
      rules: this.p.rules,
      kinesis: this.p.kinesis,
      streamName: this.p.streamName,
      start: rp ? (rp.rt ? { rt: rp.rt } : { ct: rp.ct }) : undefined,
      leaseTtlMs: this.p.leaseTtlMs,
      signal: abort.signal,
      log: this.p.log.child({ component: 'capture' }),
    });
    this.capture = { abort, done };
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
    if (this.p.withRoles) await this.recreateRoles();
    const watch = this.watchForecast();
    await this.raceWithCapture(
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
    ).finally(() => watch.stop());
    if (this.p.signal.aborted) throw new MigratorError(ExitCode.INTERRUPTED, 'Interrupted during the initial load; rerun to continue it (finished parts of the load are kept).');
    await this.setPhase('CATCHING_UP');
  }

  /**
   * During the load, once a minute: the load's last-minute throughput and the retention forecast
   * (forecast.ts, the same computation as `status`), logged; a forecast that is not ok is a
   * warning, repeated every 10 minutes while it stays so (never silent, never a flood). One
   * state-store read a minute; a failed read is skipped.
   */
  private watchForecast(intervalMs = 60_000): { stop: () => void } {
    const log = this.p.log.child({ component: 'forecast' });
    let lastWarnMs = 0;
    const tick = async () => {
      const r = buildStatusReport(await readStatusInputs(this.p.store, this.p.migrationId));
      const t = r.load?.throughput;
      if (t) log.info({ bytesPerSecond: t.bytesPerSecond, documentsPerSecond: t.documentsPerSecond, etaSeconds: r.load?.throughputEtaSeconds }, 'load throughput over the last minute');
      const f = r.forecast;
      if (f && f.ok === false && Date.now() - lastWarnMs >= 10 * intervalMs) {
        lastWarnMs = Date.now();
        for (const w of f.warnings) log.warn({ marginHours: f.marginHours, requiredHours: f.requiredHours, streamRetentionHours: f.streamRetentionHours }, `retention forecast: ${w}`);
      }
    };
    const timer = setInterval(() => void tick().catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'forecast not computed')), intervalMs);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  /** --with-roles: the custom roles of the selected databases, before their data (users-roles.ts). */
  private async recreateRoles(): Promise<void> {
    const dbs = [...new Set((this.preflight?.namespaces ?? []).map((n) => n.db))];
    try {
      const r = await recreateCustomRoles(this.p.source, this.p.target, dbs, this.p.rules);
      this.p.log.info({ created: r.created, existing: r.existing }, `custom roles on the target: ${r.created.length} created, ${r.existing.length} already there (users are not migrated)`);
    } catch (err) {
      if (err instanceof MigratorError) throw err;
      throw new MigratorError(ExitCode.PREFLIGHT_FAILED, `--with-roles: the custom roles could not be recreated on the target: ${errorMessage(err)}`, {
        hint:
          isUnauthorized(err)
            ? 'The source user needs viewRole on the selected databases, the target user createRole (role userAdmin) on the target databases; grant them, or leave out --with-roles and create the roles yourself.'
            : 'Fix the role named above on the target, or leave out --with-roles and create the roles yourself.',
        cause: err,
      });
    }
  }

  /** Apply runs in the background from its checkpoints; status feeds catch-up detection. */
  startApply(): void {
    if (this.apply) return;
    const abort = new AbortController();
    this.p.signal.addEventListener('abort', () => abort.abort(), { once: true });
    const entry: NonNullable<FullMigration['apply']> = { abort, done: Promise.resolve() };
    entry.done = runApply({
      target: this.p.target,
      store: this.p.store,
      migrationId: this.p.migrationId,
      rules: this.p.rules,
      kinesis: this.p.kinesis,
      streamName: this.p.streamName,
      ownerId: defaultOwnerId(),
      logger: this.p.log.child({ component: 'apply' }),
      signal: abort.signal,
      leaseTtlMs: this.p.leaseTtlMs,
      statusIntervalMs: 500,
      onStatus: (s) => (entry.status = s),
    });
    this.apply = entry;
  }

  /**
   * For `initial-load`'s hand-over: waits (at most `maxMs`) until the capture checkpoint has
   * reached the source's operation time as of now, so the stream holds every change made during
   * the load when capture stops. Returns false when it did not get there in time (capture far
   * behind, or a source that reports no operation time): nothing is lost then either — the next
   * capture reads the rest from the checkpoint — but the stream is not complete yet.
   */
  async waitForCaptureToReachNow(maxMs = 60_000): Promise<boolean> {
    // Best effort: a source failing over right now must not fail a load that is already done.
    const now = await retryTransient('source operation time', () => this.p.source.db('admin').command({ ping: 1 }), { retryForMs: 20_000 }).then(
      (reply) => reply.operationTime as Timestamp | undefined,
      () => undefined,
    );
    if (!now) return false;
    const deadline = Date.now() + maxMs;
    while (!this.p.signal.aborted && Date.now() < deadline) {
      const cp = await this.p.store.getCaptureCheckpoint(this.p.migrationId);
      if (cp && cp.ct.compare(now) >= 0) return true;
      await this.sleep(200);
    }
    return false;
  }

  /** Rejects as soon as capture or apply fails, so a background failure stops the orchestration. */
  private async raceWithCapture<T>(work: Promise<T>): Promise<T> {
    const failures = [this.capture?.done, this.apply?.done].filter(Boolean).map((d) =>
      d!.then(
        () => new Promise<never>(() => undefined),
        (err: unknown) => Promise.reject(err),
      ),
    );
    return Promise.race([work, ...failures]);
  }

  private async sleep(ms: number): Promise<void> {
    await this.raceWithCapture(new Promise((r) => setTimeout(r, ms)));
  }

  /** See {@link readyForCutover}. */
  private async caughtUp(): Promise<boolean> {
    const shards = await this.shardsForReadiness();
    if (shards.length === 0) return false;
    const cp = await this.p.store.getCaptureCheckpoint(this.p.migrationId);
    return readyForCutover(shards, cp, Date.now());
  }

  /**
   * Every shard as readiness sees it: this process's apply status for the shards it holds or saw
   * end; for a shard another live apply process holds (`migrator apply` beside full-migrate), what
   * that process published in the shard's state-store document (appliedThroughAt, stalledSince:
   * ApplyRunner.publishProgress). Before, only this process's own leases counted, so a shard held by
   * a second apply kept the migration in CATCHING_UP, and a cutover requested then never started.
   */
  private async shardsForReadiness(): Promise<Pick<ApplyShardStatus, 'state' | 'leased' | 'appliedThroughAt' | 'stalledSince'>[]> {
    const local = this.apply?.status?.shards ?? [];
    if (local.length === 0 || local.every((sh) => sh.leased || sh.state === 'ended')) return local;
    const now = Date.now();
    const stored = new Map((await this.p.store.listShards(this.p.migrationId)).map((d) => [d.shardId, d]));
    return local.map((sh) => {
      if (sh.leased || sh.state === 'ended') return sh;
      const d = stored.get(sh.shardId);
      if (!d?.lease.owner || d.lease.expiresAt.getTime() <= now) return sh; // nobody applies it now
      return { ...sh, leased: true, appliedThroughAt: d.appliedThroughAt?.getTime(), stalledSince: d.stalledSince };
    });
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
   * unblocking itself fails the error says so, and how to undo it.
   */
  async replicateUntilCutover(onStatus?: (text: string) => void): Promise<void> {
    try {
      await this.releaseStaleWriteBlock();
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
      throw await this.afterCutoverFailure(err);
    }
    if (this.p.signal.aborted) await this.afterCutoverStop();
  }

  private async replicateLoop(onStatus?: (text: string) => void): Promise<void> {
    const poll = this.p.pollMs ?? 500;
    let lastText = '';
    this.applyRate ??= createApplyRateSampler(this.p.store, this.p.migrationId, this.p.log);
    while (!this.p.signal.aborted) {
      this.p.heartbeat?.beat();
      await this.applyRate.tick();
      if (this.migration.phase === 'CATCHING_UP' && (await this.caughtUp())) await this.setPhase('READY_FOR_CUTOVER');
      // A stalled shard (the target stopped answering) is not ready for a cutover any more.
      else if (this.migration.phase === 'READY_FOR_CUTOVER' && (await this.shardsForReadiness()).some((sh) => sh.stalledSince)) {
        this.p.log.warn({}, 'a shard stalled: no longer ready for the cutover');
        await this.setPhase('CATCHING_UP');
      }
      const cutover = await this.p.store.getCutover(this.p.migrationId);
      const active = cutover && (cutover.state === 'requested' || cutover.state === 'barrier-sent');
      if (active && this.migration.phase === 'READY_FOR_CUTOVER') {
        await this.setPhase('CUTTING_OVER');
      }
      if (this.migration.phase === 'CUTTING_OVER') {
        if (!active) {
          // Aborted by the operator: give writes back if we blocked them.
          await this.unblockWrites();
          await this.setPhase('READY_FOR_CUTOVER');
          continue;
        }
        // A step may verify the whole migration (long, no progress reports): waiting, not wedged.
        if (await (this.p.heartbeat ? this.p.heartbeat.during('cutover step', () => this.cutoverStep()) : this.cutoverStep())) return;
      }
      const totals = this.apply?.status?.totals;
      const text = `${this.migration.phase}: applied ${totals?.events ?? 0} events${this.apply?.status?.caughtUp ? ', caught up' : ''}`;
      if (text !== lastText) onStatus?.((lastText = text));
      await this.sleep(poll);
    }
  }

  /** This process ran setUserWriteBlockMode {global: true} and has not undone it. */
  private blockedWrites = false;
  private lastWriteBlockReason: string | undefined;

  /** A block left by an earlier run whose cutover was aborted: undo it first. (An active cutover
   *  keeps its block; the loop continues it.) */
  private async releaseStaleWriteBlock(): Promise<void> {
    const c = await this.p.store.getCutover(this.p.migrationId);
    if (c?.writesBlockedByMigrator && c.state === 'aborted') {
      this.p.log.info('writes on the source are still blocked by an earlier run whose cutover is not active: unblocking them');
      await this.unblockWrites();
    }
  }

  /** After a failure before COMPLETED: unblock writes we blocked; the cutover restarts on a rerun unless it was aborted. */
  private async afterCutoverFailure(err: unknown): Promise<unknown> {
    if (this.migration.phase === 'COMPLETED') return err;
    const c = await this.p.store.getCutover(this.p.migrationId).catch(() => null);
    if (!this.blockedWrites && !c?.writesBlockedByMigrator) return err;
    try {
      await this.unblockWrites(true);
      await this.p.store.restartCutover(this.p.migrationId).catch(() => undefined);
      this.p.log.warn({ err: errorMessage(err) }, 'the cutover failed after blocking writes: writes on the source are unblocked');
      return err;
    } catch (unblockErr) {
      const code = err instanceof MigratorError ? err.exitCode : ExitCode.INTERNAL;
      return new MigratorError(code, `${errorMessage(err)} — and ${errorMessage(unblockErr)}`, { hint: (unblockErr as MigratorError).hint, cause: err });
    }
  }

  /** SIGINT/SIGTERM inside the cutover: unblock writes we blocked and put the cutover back to `requested`. */
  private async afterCutoverStop(): Promise<void> {
    if (this.migration.phase === 'COMPLETED') return;
    const c = await this.p.store.getCutover(this.p.migrationId).catch(() => null);
    if (!this.blockedWrites && !c?.writesBlockedByMigrator) return;
    try {
      await this.unblockWrites(true);
      await this.p.store.restartCutover(this.p.migrationId);
      this.p.log.info('stopped inside the cutover: writes on the source are unblocked; the cutover starts over when full-migrate runs again');
    } catch (err) {
      this.p.log.error({ err: errorMessage(err) }, 'stopped inside the cutover and could not unblock writes on the source');
    }
  }

  /**
   * Gives the source's user writes back if the migrator blocked them (state store or this
   * process says so). Throws, saying the source is still blocked and how to undo it, on failure.
   */
  private async unblockWrites(force = false): Promise<void> {
    const c = await this.p.store.getCutover(this.p.migrationId).catch((err: unknown) => {
      if (!force && !this.blockedWrites) throw err;
      return null;
    });
    if (!c?.writesBlockedByMigrator && !this.blockedWrites) return;
    const r = await setSourceWriteBlock(this.p.source, this.sourceInfo, false);
    if (!r.ok) {
      throw new MigratorError(ExitCode.CONNECTION_FAILED, `user writes on the source are STILL BLOCKED by the migrator: unblocking failed (${r.reason})`, {
        hint: 'Unblock them on the source: db.adminCommand({setUserWriteBlockMode: 1, global: false}) as a user with the setUserWriteBlockMode privilege, or rerun full-migrate (it unblocks them before anything else).',
      });
    }
    this.blockedWrites = false;
    this.p.log.info('source writes unblocked');
    // A stale "blocked" record is harmless: a later run unblocks again (idempotent), and a run
    // that finds a barrier under a block it did not set itself starts the cutover over.
    await this.p.store.setWritesBlocked(this.p.migrationId, false).catch((err: unknown) => {
      this.p.log.warn({ err: errorMessage(err) }, 'source writes unblocked, but the state store could not record it');
    });
  }

  /**
   * Blocks user writes on the source when it can do so safely (writeBlockCapability); false: the
   * cutover waits for `migrator cutover --writes-stopped` (the reason is logged once). Idempotent:
   * a rerun whose state says "blocked" blocks again, since the earlier process may have died
   * between recording the block and running it.
   */
  private async blockWrites(): Promise<boolean> {
    const id = this.p.migrationId;
    const can = await writeBlockCapability(this.p.source, this.sourceInfo);
    if (can.ok) {
      // Recorded before the command: a process killed right after blocking leaves the record a
      // rerun (or this process's failure path) uses to unblock.
      await this.p.store.setWritesBlocked(id, true);
      this.blockedWrites = true;
      const blocked = await setSourceWriteBlock(this.p.source, this.sourceInfo, true);
      if (blocked.ok) {
        this.p.log.info('user writes blocked on the source (setUserWriteBlockMode)');
        return true;
      }
      can.reason = `setUserWriteBlockMode failed: ${blocked.reason}`;
    }
    // It may have taken effect before failing (a lost reply), or an earlier run blocked: undo it.
    await this.unblockWrites();
    if (can.reason !== this.lastWriteBlockReason) {
      this.lastWriteBlockReason = can.reason;
      this.p.log.warn({ reason: can.reason }, 'the cutover does not block writes on the source: stop the applications, then run `migrator cutover --writes-stopped`');
    }
    return false;
  }

  /** One step of the cutover protocol; true once COMPLETED. */
  private async cutoverStep(): Promise<boolean> {
    const s = this.p.store;
    const id = this.p.migrationId;
    let c = (await s.getCutover(id))!;
    if (c.state === 'requested') {
      if (!c.writesStopped && !(await this.blockWrites())) return false;
      // Writes are stopped: a marker written now is after every application change.
      const barrierId = `cutover-${Date.now()}-${randomUUID().slice(0, 8)}`;
      await s.setCutoverBarrier(id, barrierId);
      await this.writeMarker(barrierId);
      return false;
    }
    c = (await s.getCutover(id))!;
    if (c.writesBlockedByMigrator && !c.writesStopped && !this.blockedWrites) {
      // A barrier sent under a block this process did not set: it cannot know the block held
      // ever since (an earlier run may have unblocked and failed to record it), so a write may
      // follow the marker. Start over: block again (idempotent) and send a new barrier.
      this.p.log.info('a barrier was sent under a write block set by an earlier run: blocking again and sending a new barrier');
      await s.restartCutover(id);
      return false;
    }
    // A process killed between recording the barrier and writing its marker left a barrier no
    // shard will ever see: the first step of every process (re)writes it. Idempotent: an upsert of
    // an existing marker changes nothing and emits no change event; a missing one is written now,
    // still after every application write (writes are stopped while the barrier is out).
    if (c.barrierId && this.markerWrittenFor !== c.barrierId) await this.writeMarker(c.barrierId);
    // INVARIANT: complete only once every shard passed the marker by lineage (shard-lineage.ts):
    // each open shard applied its copy, or descends only from shards that did. A split after the
    // marker leaves the copy in the closed parent; its children, created after it, never see one.
    const shards = await listAllShards(this.p.kinesis, this.p.streamName);
    if (shardsNotPassed(shards, c.reachedShards ?? []).length > 0) return false;

    // Every shard applied the marker: every change made before the writes stopped is on the target.
    this.p.log.info('all shards applied the cutover marker; verifying');
    await this.stopPipelines();
    // SCHEMA: indexes and collection options changed on the source after the dump read them are
    // replayed by apply where the source has expanded change events (apply/schema-replay.ts);
    // elsewhere (DocumentDB, MongoDB < 6.0) this reconcile builds/drops/changes what differs. It
    // runs on every source as a safety net (it logs a warning for any change it makes where
    // replay should have done it). Writes are stopped, so the source's schema is final.
    const expandedEvents = this.sourceInfo ? this.sourceInfo.flavor === 'mongodb' && expandedEventsSupported(this.sourceInfo.version) : false;
    // The TTL indexes held on the target (not restored yet): the reconcile compares each at its
    // recorded original; the restore follows a passing verification.
    const ttlHolds = activeTtlHolds(await s.listTtlHolds(id));
    const reconciled = await reconcileSchema({
      source: this.p.source,
      target: this.p.target,
      rules: this.p.rules,
      skipDbs: new Set([this.p.stateDb]),
      log: this.p.log,
      expandedEvents,
      ignore: this.p.ignoreSchema,
      ttl: { store: s, migrationId: id, holds: ttlHolds },
    });
    this.p.log.info({ changed: reconciled.changed.length, left: reconciled.left.length }, 'schema reconciled');
    // A schema difference left is a mismatch (exit 7) unless the user passed --ignore-schema
    // for its kind (then it is listed as a warning).
    this.verification = await verifyMigration(this.p.source, this.p.target, this.p.rules, {
      skipDbs: new Set([this.p.stateDb]),
      ignoreSchema: this.p.ignoreSchema ?? [],
      // Read again: the reconcile records the originals of the TTL indexes it built or changed.
      ttlHolds: activeTtlHolds(await s.listTtlHolds(id)),
      ttlExpiredAfterBarrier: true, // every shard applied the barrier, writes stopped (src/verify/ttl-lapse.ts)
      timeSeriesLoadOnly: this.p.timeSeries === 'load-only',
    });
    for (const d of this.verification.schema.differences) {
      this.p.log.warn(
        { kind: d.kind, source: d.source, target: d.target, name: d.name, difference: d.difference, ignored: d.ignored },
        `schema difference${d.ignored ? ' (ignored: --ignore-schema)' : ''}: ${d.detail}`,
      );
    }
    if (!this.verification.match) {
      const bad = this.verification.namespaces.filter((n) => !n.match).map((n) => n.source || n.target);
      const schema = this.verification.schema.differences.filter((d) => !d.ignored);
      const what = [
        ...(bad.length ? [`${bad.join(', ')} differ between source and target`] : []),
        ...(schema.length ? [`${schema.length} schema difference(s) (${[...new Set(schema.map((d) => d.kind))].join(', ')}: ${schema.slice(0, 3).map((d) => d.detail).join('; ')})`] : []),
      ];
      const err = new MigratorError(ExitCode.VERIFICATION_MISMATCH, `Cutover verification failed: ${what.join('; ')}.`, {
        hint: schema.length
          ? 'Run `migrator verify` for the list; fix the target (or accept the difference knowingly: rerun full-migrate with --ignore-schema indexes|options|views|all) and retry the cutover.'
          : 'Run `migrator verify` for the differing ids; rerun full-migrate to continue replicating and retry the cutover.',
      });
      await s.recordError(id, err).catch(() => undefined); // before the abort (see writeMarker)
      await s.abortCutover(id, err.message);
      throw err; // replicateUntilCutover unblocks the writes
    }
    // The target's TTL indexes get their original expireAfterSeconds back: only now, once the
    // verification passed (a mismatch aborts the cutover and the sync continues, still held).
    await restoreHeldTtl({ target: this.p.target, store: s, migrationId: id, log: this.p.log });
    await s.completeCutover(id);
    await this.setPhase('COMPLETED');
    return true;
  }

  private markerWrittenFor: string | undefined;

  /** The cutover marker on the source; capture broadcasts it to every shard as the barrier. */
  private async writeMarker(barrierId: string): Promise<void> {
    try {
      await retryTransient('cutover marker', () =>
        this.p.source
          .db(this.p.stateDb)
          .collection(MARKER_COLLECTION)
          .updateOne({ _id: barrierId as never }, { $setOnInsert: { at: new Date() } }, { upsert: true }),
      );
    } catch (err) {
      // Not transient: it fails the same way on every attempt (e.g. 371 UserWritesBlocked without
      // bypassWriteBlockingMode, 13 without readWrite on the state database). Abort the cutover
      // (replicateUntilCutover unblocks the writes) instead of leaving a barrier nobody can send.
      const privileges = isUserWritesBlocked(err) || isUnauthorized(err);
      const e = new MigratorError(
        privileges ? ExitCode.PREFLIGHT_FAILED : err instanceof MigratorError ? err.exitCode : ExitCode.INTERNAL,
        `The cutover marker could not be written to the source (${this.p.stateDb}.${MARKER_COLLECTION}): ${errorMessage(err)}`,
        {
          hint: privileges
            ? `The source user needs readWrite on ${this.p.stateDb} and, to write through the write block, bypassWriteBlockingMode (role migratorWriteBlock, README "Privileges"). The cutover was aborted; request it again after granting them.`
            : 'The cutover was aborted; rerun full-migrate and request it again.',
          cause: err,
        },
      );
      // The error first: `cutover --wait` ends on the aborted cutover and takes its exit code from
      // the recorded error; recorded after, a waiter could see the abort first and exit 10.
      await this.p.store.recordError(this.p.migrationId, e).catch(() => undefined);
      await this.p.store.abortCutover(this.p.migrationId, e.message).catch(() => undefined);
      throw e;
    }
    this.markerWrittenFor = barrierId;
    this.p.log.info({ barrier: barrierId }, 'cutover marker written to the source');
  }

  /** Stops capture and apply gracefully (each saves its checkpoint). */
  async stopPipelines(): Promise<void> {
    this.capture?.abort.abort();
    this.apply?.abort.abort();
    const results = await Promise.allSettled([this.capture?.done, this.apply?.done]);
    this.capture = undefined;
    this.apply = undefined;
    for (const r of results) if (r.status === 'rejected' && !this.p.signal.aborted) throw r.reason;
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
