/**
 * Error classification, exponential backoff with jitter, and an abortable sleep, shared by the
 * producer and the shard reader.
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

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. Default 100 ms. */
  baseMs?: number;
  /** Cap of the exponential delay. Default 5000 ms. */
  maxMs?: number;
}

/**
 * "Equal jitter" exponential backoff: d = min(max, base * 2^attempt); returns d/2 + random(d/2).
 * `attempt` counts from 0 (first retry).
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = options.baseMs ?? 100;
  const max = options.maxMs ?? 5000;
  const d = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return d / 2 + random() * (d / 2);
}

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. Returns true if it slept fully. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, Math.max(0, ms));
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function errorName(error: unknown): string {
  const e = error as { name?: string } | undefined;
  return e?.name ?? String(error);
}
