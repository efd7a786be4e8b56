/**
 * Error classes of the apply side and the classification of driver/server errors.
 */
import type { Document } from 'mongodb';
import type { CollectionNamespace } from '../source/change-envelope.js';

/** A write the target refused for a reason retrying will not fix (validation, size, auth, …). */
export class ApplyWriteError extends Error {
  override name = 'ApplyWriteError';
  constructor(
    message: string,
    readonly details: { ns?: CollectionNamespace; key?: Document; code?: number; index?: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A DDL event that cannot be reproduced on the target: e.g. a rename from an excluded namespace
 * into an included one (the documents never travelled), or a rename the target engine refuses
 * (cross-database rename on an engine without it). Needs an operator: re-run the initial load
 * of the affected collection or widen the filters.
 */
export class UnmappableDdlError extends Error {
  override name = 'UnmappableDdlError';
  constructor(
    message: string,
    readonly index: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A transient error persisted through every retry. */
export class RetriesExhaustedError extends Error {
  override name = 'RetriesExhaustedError';
  constructor(
    readonly what: string,
    readonly attempts: number,
    cause: unknown,
  ) {
    super(`${what}: still failing after ${attempts} attempts: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

export const DUPLICATE_KEY = 11000;
export const NAMESPACE_NOT_FOUND = 26;

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

function errorCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
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
  if (e.name === 'MongoBulkWriteError' && e.err && bulkWriteErrors(err).length === 0) return true;
  return TRANSIENT_MESSAGE.test(e.message ?? '');
}

export function isNamespaceNotFound(err: unknown): boolean {
  return errorCode(err) === NAMESPACE_NOT_FOUND || /ns not found|namespace not found/i.test((err as Error)?.message ?? '');
}

export interface BulkWriteErrorEntry {
  index: number;
  code: number;
  message: string;
}

/** The per-operation errors of a MongoBulkWriteError (empty for other errors). */
export function bulkWriteErrors(err: unknown): BulkWriteErrorEntry[] {
  if ((err as Error)?.name !== 'MongoBulkWriteError') return [];
  const raw = (err as { writeErrors?: unknown }).writeErrors;
  const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
  return list.map((w: { index: number; code: number; errmsg?: string }) => ({
    index: w.index,
    code: w.code,
    message: w.errmsg ?? '',
  }));
}
