/**
 * Error classification of Kinesis calls, shared by the producer and the shard reader (the backoff
 * and the sleep are util/retry.ts's, re-exported here for them).
 */

/** How the transport reacts to a failed Kinesis call (or record). */
export type ErrorKind = 'throttle' | 'retryable' | 'fatal' | 'aborted';

const THROTTLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'Throttling',
  'LimitExceededException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'KMSThrottlingException',
  'SlowDown',
]);

/** Errors that retrying cannot fix: configuration, permissions, malformed requests. */
const FATAL_NAMES = new Set([
  'InvalidArgumentException',
  'ResourceNotFoundException',
  'ResourceInUseException',
  'AccessDeniedException',
  'ValidationException',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'MissingAuthenticationToken',
  'IncompleteSignature',
  'KMSAccessDeniedException',
  'KMSDisabledException',
  'KMSInvalidStateException',
  'KMSNotFoundException',
  'KMSOptInRequired',
  'ExpiredIteratorException', // handled explicitly by the reader; never blindly retried
]);

/** Classifies an error (SDK exception, network error, abort) or a PutRecords per-record ErrorCode. */
export function classifyError(error: unknown): ErrorKind {
  const e = error as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const name = e?.name ?? (typeof error === 'string' ? error : undefined);
  if (name === 'AbortError') return 'aborted';
  if (name && THROTTLE_NAMES.has(name)) return 'throttle';
  if (name && FATAL_NAMES.has(name)) return 'fatal';
  const status = e?.$metadata?.httpStatusCode;
  if (status === 429) return 'throttle';
  if (status !== undefined && status >= 400 && status < 500 && status !== 408) {
    // Unknown 4xx other than timeout/throttling: a client error, do not hammer it.
    return 'fatal';
  }
  // 5xx, InternalFailure, network errors (ECONNRESET, TimeoutError, ...), unknown: retry.
  return 'retryable';
}

export { backoffDelay, sleep, type BackoffOptions } from '../util/retry.js';

export function errorName(error: unknown): string {
  const e = error as { name?: string } | undefined;
  return e?.name ?? String(error);
}
