/** Retrying an operation while its error is transient (see transient-errors.ts), with backoff and a deadline. */
import { retry } from '../util/retry.js';
import { isTransientError } from './transient-errors.js';

export interface TransientRetryPolicy {
  /** Give up (rethrow the last error) after this long; default 60 s. */
  retryForMs?: number;
  /** First delay; doubles up to 2 s. Default 100 ms. */
  baseDelayMs?: number;
  onRetry?: (what: string, attempt: number, err: unknown) => void;
  /** Stops the retries at once (the last error is thrown). */
  signal?: AbortSignal;
}

/** Retries `fn` while its error is transient (db/transient-errors.ts), through util/retry.ts. */
export function retryTransient<T>(what: string, fn: () => Promise<T>, policy: TransientRetryPolicy = {}): Promise<T> {
  return retry(() => fn(), {
    isRetryable: isTransientError,
    retryForMs: policy.retryForMs ?? 60_000,
    backoff: { baseMs: policy.baseDelayMs ?? 100, maxMs: 2_000 },
    signal: policy.signal,
    onRetry: ({ attempt, error }) => policy.onRetry?.(what, attempt, error),
  });
}
