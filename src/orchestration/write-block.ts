import type { MongoClient } from 'mongodb';
import type { ServerInfo } from '../db/server-info.js';
import { errorMessage } from '../util/errors.js';

/**
 * Blocks (or unblocks) user writes on the source with setUserWriteBlockMode (MongoDB >= 6.0).
 * Returns false when the server cannot: then the operator confirms with `cutover --writes-stopped`.
 */
export async function setSourceWriteBlock(source: MongoClient, info: ServerInfo | undefined, block: boolean): Promise<{ ok: boolean; reason?: string }> {
  const major = Number((info?.version ?? '0').split('.')[0]);
  if (info && (info.flavor !== 'mongodb' || major < 6)) {
    return { ok: false, reason: `${info.flavor} ${info.version} has no setUserWriteBlockMode` };
  }
  try {
    await source.db('admin').command({ setUserWriteBlockMode: 1, global: block });
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
}
