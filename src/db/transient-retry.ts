/** Retrying an operation while its error is transient (see transient-errors.ts), with backoff and a deadline. */
import { isTransientError } from './transient-errors.js';

export interface TransientRetryPolicy {
  /** Give up (rethrow the last error) after this long; default 60 s. */
  retryForMs?: number;
  /** First delay; doubles up to 2 s. Default 100 ms. */
  baseDelayMs?: number;
  onRetry?: (what: string, attempt: number, err: unknown) => void;
}

export async function retryTransient<T>(what: string, fn: () => Promise<T>, policy: TransientRetryPolicy = {}): Promise<T> {
  const deadline = Date.now() + (policy.retryForMs ?? 60_000);
  let delay = policy.baseDelayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientError(err) || Date.now() + delay > deadline) throw err;
      policy.onRetry?.(what, attempt, err);
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random() / 2)));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

