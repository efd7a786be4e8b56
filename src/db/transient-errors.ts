/**
 * Which driver/server errors are transient: retrying the same idempotent operation later may
 * succeed (failover, shutdown, network, throttling). Shared by apply's writer, the lease keeper,
 * the state store and the CLI's exit-code mapping. The codes themselves: db/mongo-errors.ts.
 */
import { hasTransientCode } from './mongo-errors.js';

export { errorCode } from './mongo-errors.js';

const TRANSIENT_LABELS = ['RetryableWriteError', 'TransientTransactionError', 'ResetPool', 'SystemOverloadedError'];

const TRANSIENT_ERROR_NAMES = new Set([
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoServerSelectionError',
  'MongoPoolClearedError',
  'MongoWaitQueueTimeoutError',
  'MongoOperationTimeoutError',
]);

// Network errors raised inside bulkWrite reach us wrapped in a MongoBulkWriteError (the driver
// copies their fields but not their class), so the message is the remaining clue.
const TRANSIENT_MESSAGE =
  /throttl|too many requests|request rate is large|ECONNRESET|ECONNREFUSED|EPIPE|socket hang up|connection .*closed|server selection timed out|not (writable )?primary|node is recovering/i;

/** True when retrying the same (idempotent) operation later may succeed. */
export function isTransientError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const e = err as Error & { hasErrorLabel?: (l: string) => boolean; errorLabels?: string[]; writeConcernError?: unknown; err?: unknown };
  if (TRANSIENT_ERROR_NAMES.has(e.name)) return true;
  if (typeof e.hasErrorLabel === 'function' && TRANSIENT_LABELS.some((l) => e.hasErrorLabel!(l))) return true;
  if (Array.isArray(e.errorLabels) && TRANSIENT_LABELS.some((l) => e.errorLabels!.includes(l))) return true;
  if (hasTransientCode(err)) return true;
  // A bulk write whose only problem is the write concern (e.g. wtimeout during failover).
  if (e.name === 'MongoBulkWriteError' && e.err && !hasWriteErrors(err)) return true;
  // A bulk write that failed as a whole carries the real error in errorResponse (e.g. the
  // MongoOperationTimeoutError of a target that did not answer within timeoutMS).
  const response = (err as { errorResponse?: unknown }).errorResponse;
  if (e.name === 'MongoBulkWriteError' && response instanceof Error && response !== err && !hasWriteErrors(err) && isTransientError(response)) return true;
  return TRANSIENT_MESSAGE.test(e.message ?? '');
}


function hasWriteErrors(err: unknown): boolean {
  const raw = (err as { writeErrors?: unknown }).writeErrors;
  return Array.isArray(raw) ? raw.length > 0 : Boolean(raw);
}
