/**
 * Retry of idempotent operations on transient errors, with capped exponential backoff and
 * full jitter. Only ever used around operations that are safe to repeat.
 */
import { isTransientError, RetriesExhaustedError } from './errors.js';

export interface RetryPolicy {
  /** Total attempts including the first. */
  maxAttempts: number;
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
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Delay before attempt `attempt + 1` (attempt counts from 1): random in [0, min(max, initial·2^(attempt-1))]. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(cap * random());
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
  const sleep = hooks.sleep ?? defaultSleep;
  const transient = hooks.isTransient ?? isTransientError;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!transient(err)) throw err;
      if (attempt >= policy.maxAttempts) throw new RetriesExhaustedError(what, attempt, err);
      const delayMs = backoffDelay(policy, attempt);
      hooks.onRetry?.({ what, attempt, delayMs, error: err });
      await sleep(delayMs);
    }
  }
}
