/**
 * The MongoDB server error codes the product acts on, by name, and one predicate per question.
 *
 * Names and numbers: the manual's list, https://www.mongodb.com/docs/manual/reference/error-codes/
 * (the same numbers on 4.4 through 8.0). The few codes that are not in that list say where they
 * come from next to them. Nothing outside this module compares a server error code to a number.
 */

export const MongoErrorCode = {
  HostUnreachable: 6,
  HostNotFound: 7,
  FailedToParse: 9,
  Unauthorized: 13,
  LockTimeout: 24,
  NamespaceNotFound: 26,
  IndexNotFound: 27,
  CursorNotFound: 43,
  LockBusy: 46,
  NamespaceExists: 48,
  MaxTimeMSExpired: 50,
  ShardKeyNotFound: 61,
  StaleShardVersion: 63,
  WriteConcernFailed: 64,
  IndexOptionsConflict: 85,
  IndexKeySpecsConflict: 86,
  NetworkTimeout: 89,
  ShutdownInProgress: 91,
  WriteConflict: 112,
  FailedToSatisfyReadPreference: 133,
  ReadConcernMajorityNotAvailableYet: 134,
  CappedPositionLost: 136,
  StaleEpoch: 150,
  PrimarySteppedDown: 189,
  RetryChangeStream: 234,
  InvalidResumeToken: 260,
  ExceededTimeLimit: 262,
  ChangeStreamFatalError: 280,
  ChangeStreamHistoryLost: 286,
  UserWritesBlocked: 371,
  SocketException: 9001,
  NotWritablePrimary: 10107,
  BSONObjectTooLarge: 10334,
  DuplicateKey: 11000,
  InterruptedAtShutdown: 11600,
  InterruptedDueToReplStateChange: 11602,
  StaleConfig: 13388,
  NotPrimaryNoSecondaryOk: 13435,
  NotPrimaryOrSecondary: 13436,
  /** Not in the manual's list: "request rate is large" / TooManyRequests of some MongoDB-compatible services. */
  TooManyRequests: 16500,
  /** Not in the manual's list (a location code): "Unrecognized pipeline stage name" (a stage the server does not have). */
  UnrecognizedPipelineStage: 40324,
  /** Not in the manual's list (a location code): a strict (IDL) parser's unknown field, e.g. `showExpandedEvents` before 6.0. */
  UnknownField: 40415,
} as const;

export type MongoErrorCodeName = keyof typeof MongoErrorCode;

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

/** True when `err`'s code is one of `names`. */
export function hasErrorCode(err: unknown, ...names: MongoErrorCodeName[]): boolean {
  const code = errorCode(err);
  return code !== undefined && names.some((n) => MongoErrorCode[n] === code);
}

/**
 * Codes worth retrying the same idempotent operation for: replica-set state changes, shutdowns,
 * network and timeouts, lock/write conflicts, throttling. Used by db/transient-errors.ts.
 */
export const TRANSIENT_CODES: ReadonlySet<number> = new Set<number>([
  MongoErrorCode.HostUnreachable,
  MongoErrorCode.HostNotFound,
  MongoErrorCode.LockTimeout,
  MongoErrorCode.LockBusy,
  MongoErrorCode.MaxTimeMSExpired,
  MongoErrorCode.WriteConcernFailed, // wtimeout
  MongoErrorCode.NetworkTimeout,
  MongoErrorCode.ShutdownInProgress,
  MongoErrorCode.WriteConflict,
  MongoErrorCode.FailedToSatisfyReadPreference,
  MongoErrorCode.ReadConcernMajorityNotAvailableYet,
  MongoErrorCode.PrimarySteppedDown,
  MongoErrorCode.ExceededTimeLimit,
  MongoErrorCode.SocketException,
  MongoErrorCode.NotWritablePrimary,
  MongoErrorCode.InterruptedAtShutdown,
  MongoErrorCode.InterruptedDueToReplStateChange,
  MongoErrorCode.NotPrimaryNoSecondaryOk,
  MongoErrorCode.NotPrimaryOrSecondary,
  MongoErrorCode.TooManyRequests,
]);

/** The server code is one of TRANSIENT_CODES (db/transient-errors.ts adds labels, driver classes, messages). */
export function hasTransientCode(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && TRANSIENT_CODES.has(code);
}

/**
 * Change-stream errors after which reopening from the last token read is safe and useful (beyond
 * the transient ones): a cursor the server forgot, stale routing on a sharded source, the
 * server's own "retry the change stream".
 */
export function isChangeStreamRetryable(err: unknown): boolean {
  return hasErrorCode(err, 'CursorNotFound', 'StaleShardVersion', 'StaleEpoch', 'RetryChangeStream', 'StaleConfig');
}

/**
 * The resume point left the source's change history: MongoDB ChangeStreamHistoryLost (286);
 * Amazon DocumentDB answers CappedPositionLost (136) once its change stream log, kept
 * change_stream_log_retention_duration (3 h by default), no longer holds it
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html).
 */
export function isHistoryLost(err: unknown): boolean {
  return hasErrorCode(err, 'ChangeStreamHistoryLost', 'CappedPositionLost');
}

/**
 * The source cannot use the resume token: InvalidResumeToken (260), ChangeStreamFatalError (280:
 * e.g. "the resume token was not found" — the token's event is not in this deployment's history;
 * not a history loss). Amazon DocumentDB answers an unreadable token with FailedToParse (9), which
 * counts only when the stream was opened with a token (`withToken`).
 */
export function isResumeTokenRejected(err: unknown, withToken: boolean): boolean {
  return hasErrorCode(err, 'InvalidResumeToken', 'ChangeStreamFatalError') || (withToken && hasErrorCode(err, 'FailedToParse'));
}

/** DuplicateKey (11000): a unique index refused the write. */
export function isDuplicateKey(err: unknown): boolean {
  return hasErrorCode(err, 'DuplicateKey');
}

/** NamespaceNotFound (26): no such collection (or database). */
export function isNamespaceNotFound(err: unknown): boolean {
  return hasErrorCode(err, 'NamespaceNotFound');
}

/** NamespaceExists (48): the collection (or view) is there already. */
export function isNamespaceExists(err: unknown): boolean {
  return hasErrorCode(err, 'NamespaceExists');
}

/** IndexNotFound (27). */
export function isIndexNotFound(err: unknown): boolean {
  return hasErrorCode(err, 'IndexNotFound');
}

/** IndexOptionsConflict (85) or IndexKeySpecsConflict (86): an index of that name or key exists with other options. */
export function isIndexConflict(err: unknown): boolean {
  return hasErrorCode(err, 'IndexOptionsConflict', 'IndexKeySpecsConflict');
}

/** Unauthorized (13): the user lacks a privilege. */
export function isUnauthorized(err: unknown): boolean {
  return hasErrorCode(err, 'Unauthorized');
}

/** UserWritesBlocked (371): user writes are blocked (setUserWriteBlockMode) and the write did not bypass it. */
export function isUserWritesBlocked(err: unknown): boolean {
  return hasErrorCode(err, 'UserWritesBlocked');
}

/** MaxTimeMSExpired (50): the operation's maxTimeMS ran out. */
export function isMaxTimeExpired(err: unknown): boolean {
  return hasErrorCode(err, 'MaxTimeMSExpired');
}

/** BSONObjectTooLarge (10334): a document (e.g. a change event) over 16 MiB. */
export function isBsonObjectTooLarge(err: unknown): boolean {
  return hasErrorCode(err, 'BSONObjectTooLarge');
}
