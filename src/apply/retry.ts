/**
 * Retry of idempotent target operations on transient errors: a thin wrapper over the one retry
 * loop (util/retry.ts: capped exponential backoff with equal jitter, abortable waits) that names
 * the operation and turns running out of attempts into {@link RetriesExhaustedError}. Only ever
 * used around operations that are safe to repeat.
 */
import { retry } from '../util/retry.js';
import { isTransientError, RetriesExhaustedError } from './errors.js';

export interface RetryPolicy {
  /** Total attempts including the first. */
  maxAttempts: number;
  /** Backoff before the first retry (before jitter); doubles per retry up to `maxDelayMs`. */
  initialDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 10_000 };

export interface RetryHooks {
  /** Called before each wait (for logging/metrics). */
  onRetry?: (info: { what: string; attempt: number; delayMs: number; error: unknown }) => void;
  /** Injected in tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Classification override (default {@link isTransientError}). */
  isTransient?: (err: unknown) => boolean;
  /**
   * Stops the retries: once aborted no further attempt or wait happens and the call rejects with
   * the signal's reason (the caller is stopping or lost its lease: the work is replayed later).
   */
  signal?: AbortSignal;
}

/**
 * Runs `fn`; on a transient error waits and runs it again, up to `maxAttempts`. Non-transient
 * errors are rethrown at once; exhausting the attempts throws {@link RetriesExhaustedError}.
 */
export async function withRetry<T>(
  what: string,
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  hooks: RetryHooks = {},
): Promise<T> {
  const { signal } = hooks;
  const sleep = hooks.sleep;
  try {
    return await retry(fn, {
      isRetryable: hooks.isTransient ?? isTransientError,
      attempts: policy.maxAttempts,
      backoff: { baseMs: policy.initialDelayMs, maxMs: policy.maxDelayMs },
      signal,
      onRetry: (info) => hooks.onRetry?.({ what, attempt: info.attempt, delayMs: info.delayMs, error: info.error }),
      exhausted: (error, attempts) => new RetriesExhaustedError(what, attempts, error),
      sleep: sleep ? (ms) => sleep(ms).then(() => true) : undefined,
    });
  } catch (err) {
    if (signal?.aborted && !(err instanceof RetriesExhaustedError)) throw signal.reason ?? err;
    throw err;
  }
}
