/**
 * What the transport makes of Kinesis errors and stream states: the classification of a failed
 * call (or a PutRecords per-record ErrorCode) that every retry loop of the transport, and apply,
 * decide on; and the one check that a stream takes reads and writes.
 */
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

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

/** Worth another attempt: throttling and transient failures (not fatal, not an abort). */
export function isRetryableStreamError(error: unknown): boolean {
  const kind = classifyError(error);
  return kind === 'throttle' || kind === 'retryable';
}

export function errorName(error: unknown): string {
  const e = error as { name?: string } | undefined;
  return e?.name ?? String(error);
}

/**
 * Throws STREAM_FAILED (exit 5) unless the stream takes reads and writes: ACTIVE, or UPDATING
 * ("Shards in the stream are being merged or split. Read and write operations continue to work
 * while the stream is in the UPDATING state", StreamDescriptionSummary.StreamStatus,
 * https://docs.aws.amazon.com/kinesis/latest/APIReference/API_StreamDescriptionSummary.html).
 * CREATING and DELETING do not; a missing status (the API always returns one) is not trusted.
 */
export function assertStreamActive(streamName: string, status: string | undefined): void {
  if (status === 'ACTIVE' || status === 'UPDATING') return;
  throw new MigratorError(ExitCode.STREAM_FAILED, `Kinesis stream '${streamName}' is ${status ?? 'in an unknown state'}, not ACTIVE.`, {
    hint: 'Wait until the stream is ACTIVE, then rerun.',
  });
}
