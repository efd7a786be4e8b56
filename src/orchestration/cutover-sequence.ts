import { randomUUID } from 'node:crypto';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { ServerInfo } from '../db/server-info.js';
import { retryTransient } from '../db/transient-retry.js';
import { MARKER_COLLECTION } from '../source/capture-runner.js';
import { listAllShards } from '../transport/shard-map.js';
import { shardsNotPassed } from '../transport/shard-lineage.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { VerificationReport } from '../verify/verify-migration.js';
import { verifyAndComplete, type CutoverVerificationInput } from './cutover-verification.js';
import type { SourceWriteBlock } from './write-block.js';
import { isUnauthorized, isUserWritesBlocked } from '../db/mongo-errors.js';

export interface CutoverSequenceInput extends CutoverVerificationInput {
  kinesis: KinesisClient;
  streamName: string;
}

/**
 * The cutover protocol, one step per poll of the replicate loop (state in the state store, so any
 * process continues it):
 *
 *   requested → writes stopped (blocked here, or confirmed by the operator) → barrier recorded →
 *   marker written to the source → every shard applied the marker → pipelines stopped →
 *   schema reconciled → verified → TTL restored → completed
 */
export class CutoverSequence {
  private markerWrittenFor: string | undefined;

  constructor(
    private readonly p: CutoverSequenceInput,
    private readonly writes: SourceWriteBlock,
    private readonly ctx: { sourceInfo: () => ServerInfo | undefined; stopPipelines: () => Promise<void> },
  ) {}

  /** One step of the cutover protocol; the verification report once the cutover is complete. */
  async step(): Promise<VerificationReport | undefined> {
    const s = this.p.store;
    const id = this.p.migrationId;
    let c = (await s.getCutover(id))!;
    if (c.state === 'requested') {
      await this.sendBarrier(c.writesStopped);
      return undefined;
    }
    c = (await s.getCutover(id))!;
    if (c.writesBlockedByMigrator && !c.writesStopped && !this.writes.blockedByThisProcess) {
      // A barrier sent under a block this process did not set: it cannot know the block held
      // ever since (an earlier run may have unblocked and failed to record it), so a write may
      // follow the marker. Start over: block again (idempotent) and send a new barrier.
      this.p.log.info('a barrier was sent under a write block set by an earlier run: blocking again and sending a new barrier');
      await s.restartCutover(id);
      return undefined;
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
    if (shardsNotPassed(shards, c.reachedShards ?? []).length > 0) return undefined;

    // Every shard applied the marker: every change made before the writes stopped is on the target.
    this.p.log.info('all shards applied the cutover marker; verifying');
    await this.ctx.stopPipelines();
    return verifyAndComplete(this.p, this.ctx.sourceInfo());
  }

  /** Once writes are stopped (blocked now, or confirmed by the operator): the barrier and its marker. */
  private async sendBarrier(writesStopped: boolean | undefined): Promise<void> {
    if (!writesStopped && !(await this.writes.block())) return;
    // Writes are stopped: a marker written now is after every application change.
    const barrierId = `cutover-${Date.now()}-${randomUUID().slice(0, 8)}`;
    await this.p.store.setCutoverBarrier(this.p.migrationId, barrierId);
    await this.writeMarker(barrierId);
  }

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
      throw await this.abortOnMarkerFailure(err);
    }
    this.markerWrittenFor = barrierId;
    this.p.log.info({ barrier: barrierId }, 'cutover marker written to the source');
  }

  /**
   * Not transient: it fails the same way on every attempt (e.g. 371 UserWritesBlocked without
   * bypassWriteBlockingMode, 13 without readWrite on the state database). Abort the cutover
   * (replicateUntilCutover unblocks the writes) instead of leaving a barrier nobody can send.
   */
  private async abortOnMarkerFailure(err: unknown): Promise<MigratorError> {
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
    return e;
  }
}
