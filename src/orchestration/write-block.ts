import type { MongoClient } from 'mongodb';
import type { ServerInfo } from '../db/server-info.js';
import { missingActions, readAccess, WRITE_BLOCK_ACTIONS, WRITE_BLOCK_ROLE } from '../db/privileges.js';
import { retryTransient } from '../db/transient-retry.js';
import type { StateStore } from '../state/store.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';

/**
 * Whether the cutover can block user writes on the source and still finish. All of:
 *  - MongoDB ≥ 6.0: setUserWriteBlockMode is "New in version 6.0"
 *    (https://www.mongodb.com/docs/manual/reference/command/setUserWriteBlockMode/); DocumentDB has none.
 *  - access control on: without it every client may bypass the block (the server's
 *    authorization_session_impl.cpp), so it would stop no application — the operator must.
 *  - the user holds setUserWriteBlockMode (to block and unblock) AND bypassWriteBlockingMode: the
 *    block refuses every user write without it (error 371), the cutover marker included.
 * Checked right before blocking (privileges may have changed since preflight). Never blocks.
 */
export async function writeBlockCapability(source: MongoClient, info: ServerInfo | undefined): Promise<{ ok: boolean; reason?: string }> {
  const major = Number((info?.version ?? '0').split('.')[0]);
  if (info && (info.flavor !== 'mongodb' || major < 6)) {
    return { ok: false, reason: `${info.flavor} ${info.version} has no setUserWriteBlockMode` };
  }
  try {
    const access = await retryTransient('source privileges', () => readAccess(source), { retryForMs: 20_000 });
    if (!access.authenticated) {
      return { ok: false, reason: 'the source runs without access control, where setUserWriteBlockMode blocks no client' };
    }
    if (access.privileges) {
      const missing = missingActions(access.privileges, { cluster: true }, WRITE_BLOCK_ACTIONS);
      if (missing.length) return { ok: false, reason: `the source user lacks ${missing.join(', ')} (role ${WRITE_BLOCK_ROLE}, README "Privileges")` };
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `cannot read the source user's privileges: ${errorMessage(err)}` };
  }
}

/**
 * Blocks (or unblocks) user writes on the source with setUserWriteBlockMode (MongoDB >= 6.0).
 * Returns false when the server cannot: then the operator confirms with `cutover --writes-stopped`.
 * Transient errors (failover, dropped connection) are retried: the command is idempotent.
 */
export async function setSourceWriteBlock(source: MongoClient, info: ServerInfo | undefined, block: boolean): Promise<{ ok: boolean; reason?: string }> {
  const major = Number((info?.version ?? '0').split('.')[0]);
  if (info && (info.flavor !== 'mongodb' || major < 6)) {
    return { ok: false, reason: `${info.flavor} ${info.version} has no setUserWriteBlockMode` };
  }
  try {
    await retryTransient(block ? 'block writes' : 'unblock writes', () => source.db('admin').command({ setUserWriteBlockMode: 1, global: block }), { retryForMs: 30_000 });
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
}

/**
 * The cutover's write block on the source, as one process sees it: blocks when it safely can,
 * unblocks on every way out before COMPLETED. Its invariant (with the replicate loop's, see
 * FullMigration.replicateUntilCutover): the source is never left write-blocked by a run that ends
 * before COMPLETED. Writes are recorded as blocked (state store) *before* setUserWriteBlockMode
 * runs, so every later path knows to undo it.
 */
export class SourceWriteBlock {
  /** This process ran setUserWriteBlockMode {global: true} and has not undone it. */
  blockedByThisProcess = false;
  private lastReason: string | undefined;

  constructor(
    private readonly p: { source: MongoClient; store: StateStore; migrationId: string; log: Logger },
    /** The source's server info (known after preflight). */
    private readonly sourceInfo: () => ServerInfo | undefined,
  ) {}

  /** A block left by an earlier run whose cutover was aborted: undo it first. (An active cutover
   *  keeps its block; the loop continues it.) */
  async releaseStale(): Promise<void> {
    const c = await this.p.store.getCutover(this.p.migrationId);
    if (c?.writesBlockedByMigrator && c.state === 'aborted') {
      this.p.log.info('writes on the source are still blocked by an earlier run whose cutover is not active: unblocking them');
      await this.unblock();
    }
  }

  /** After a failure before COMPLETED: unblock writes we blocked; the cutover restarts on a rerun unless it was aborted. */
  async afterFailure(err: unknown): Promise<unknown> {
    const c = await this.p.store.getCutover(this.p.migrationId).catch(() => null);
    if (!this.blockedByThisProcess && !c?.writesBlockedByMigrator) return err;
    try {
      await this.unblock(true);
      await this.p.store.restartCutover(this.p.migrationId).catch(() => undefined);
      this.p.log.warn({ err: errorMessage(err) }, 'the cutover failed after blocking writes: writes on the source are unblocked');
      return err;
    } catch (unblockErr) {
      const code = err instanceof MigratorError ? err.exitCode : ExitCode.INTERNAL;
      return new MigratorError(code, `${errorMessage(err)} — and ${errorMessage(unblockErr)}`, { hint: (unblockErr as MigratorError).hint, cause: err });
    }
  }

  /** SIGINT/SIGTERM inside the cutover: unblock writes we blocked and put the cutover back to `requested`. */
  async afterStop(): Promise<void> {
    const c = await this.p.store.getCutover(this.p.migrationId).catch(() => null);
    if (!this.blockedByThisProcess && !c?.writesBlockedByMigrator) return;
    try {
      await this.unblock(true);
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
  async unblock(force = false): Promise<void> {
    const c = await this.p.store.getCutover(this.p.migrationId).catch((err: unknown) => {
      if (!force && !this.blockedByThisProcess) throw err;
      return null;
    });
    if (!c?.writesBlockedByMigrator && !this.blockedByThisProcess) return;
    const r = await setSourceWriteBlock(this.p.source, this.sourceInfo(), false);
    if (!r.ok) {
      throw new MigratorError(ExitCode.CONNECTION_FAILED, `user writes on the source are STILL BLOCKED by the migrator: unblocking failed (${r.reason})`, {
        hint: 'Unblock them on the source: db.adminCommand({setUserWriteBlockMode: 1, global: false}) as a user with the setUserWriteBlockMode privilege, or rerun full-migrate (it unblocks them before anything else).',
      });
    }
    this.blockedByThisProcess = false;
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
  async block(): Promise<boolean> {
    const can = await writeBlockCapability(this.p.source, this.sourceInfo());
    if (can.ok) {
      // Recorded before the command: a process killed right after blocking leaves the record a
      // rerun (or this process's failure path) uses to unblock.
      await this.p.store.setWritesBlocked(this.p.migrationId, true);
      this.blockedByThisProcess = true;
      const blocked = await setSourceWriteBlock(this.p.source, this.sourceInfo(), true);
      if (blocked.ok) {
        this.p.log.info('user writes blocked on the source (setUserWriteBlockMode)');
        return true;
      }
      can.reason = `setUserWriteBlockMode failed: ${blocked.reason}`;
    }
    // It may have taken effect before failing (a lost reply), or an earlier run blocked: undo it.
    await this.unblock();
    if (can.reason !== this.lastReason) {
      this.lastReason = can.reason;
      this.p.log.warn({ reason: can.reason }, 'the cutover does not block writes on the source: stop the applications, then run `migrator cutover --writes-stopped`');
    }
    return false;
  }
}
