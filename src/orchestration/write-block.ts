import type { MongoClient } from 'mongodb';
import type { ServerInfo } from '../db/server-info.js';
import { missingActions, readAccess, WRITE_BLOCK_ACTIONS, WRITE_BLOCK_ROLE } from '../db/privileges.js';
import { retryTransient } from '../db/transient-retry.js';
import { errorMessage } from '../util/errors.js';

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
