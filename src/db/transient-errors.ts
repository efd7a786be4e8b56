/**
 * Which driver/server errors are transient: retrying the same idempotent operation later may
 * succeed (failover, shutdown, network, throttling). Shared by apply's writer, the lease keeper,
 * the state store and the CLI's exit-code mapping.
 */
// Server error codes worth retrying: replica-set state changes, shutdowns, network and
// timeouts, lock/write conflicts, throttling (16500: "request rate is large" on some
// MongoDB-compatible services).
const TRANSIENT_CODES = new Set<number>([
  6, // HostUnreachable
  7, // HostNotFound
  24, // LockTimeout
  46, // LockBusy
  50, // MaxTimeMSExpired
  64, // WriteConcernFailed (wtimeout)
  89, // NetworkTimeout
  91, // ShutdownInProgress
  112, // WriteConflict
  133, // FailedToSatisfyReadPreference
  134, // ReadConcernMajorityNotAvailableYet
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  16500, // TooManyRequests / request rate is large
]);

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

/**
 * The server error code. It can arrive as an Int32 wrapper (a change stream read with
 * promoteValues: false, needed to keep every BSON type exact), so wrappers compare by value.
 */
export function errorCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'number') return code;
  if (code !== null && typeof code === 'object' && (code as { _bsontype?: unknown })._bsontype === 'Int32') return Number(code);
  return undefined;
}

/** True when retrying the same (idempotent) operation later may succeed. */
export function isTransientError(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const e = err as Error & { hasErrorLabel?: (l: string) => boolean; errorLabels?: string[]; writeConcernError?: unknown; err?: unknown };
  if (TRANSIENT_ERROR_NAMES.has(e.name)) return true;
  if (typeof e.hasErrorLabel === 'function' && TRANSIENT_LABELS.some((l) => e.hasErrorLabel!(l))) return true;
  if (Array.isArray(e.errorLabels) && TRANSIENT_LABELS.some((l) => e.errorLabels!.includes(l))) return true;
  const code = errorCode(err);
  if (code !== undefined && TRANSIENT_CODES.has(code)) return true;
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
