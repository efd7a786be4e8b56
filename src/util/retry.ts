/**
 * The one retry loop of the code base, its backoff formula and its sleep.
 *
 *  - `backoffDelay`: exponential with "equal jitter" — d = min(max, base·2^attempt), wait d/2 +
 *    random(d/2). Half the delay is guaranteed (a thundering herd still spreads out), half is
 *    random (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
 *  - `sleep(ms, signal)`: resolves after `ms`, or early when `signal` aborts; it never rejects, and
 *    says which happened, so a SIGTERM during any wait is honoured at once (`docker stop` gives a
 *    process 10 s by default).
 *  - `retry(fn, options)`: calls `fn` until it succeeds, the error is not retryable, the attempts
 *    or the time budget run out, or the signal aborts; then throws the last error (or what
 *    `exhausted` makes of it). Every wait is abortable.
 *
 * Callers decide *what* is retryable (db/transient-errors.ts, transport/stream-errors.ts); this
 * module decides only *how* to wait.
 */

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. Default 100 ms. */
  baseMs?: number;
  /** Cap of the exponential delay. Default 5000 ms. */
  maxMs?: number;
}

/** The delay before retry number `attempt` (0 = the first retry), equal jitter. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = options.baseMs ?? 100;
  const max = options.maxMs ?? 5000;
  const d = Math.min(max, base * 2 ** Math.min(Math.max(0, attempt), 30));
  return d / 2 + random() * (d / 2);
}

/** Resolves after `ms`, or early (never rejecting) when `signal` aborts. True if it slept fully. */
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

export interface RetryInfo {
  /** The attempt that failed, from 1. */
  attempt: number;
  /** The wait before the next attempt. */
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  /** Whether an error is worth another attempt; anything else is thrown at once. */
  isRetryable: (error: unknown) => boolean;
  /** Total attempts including the first (default: unlimited; then set `retryForMs` or `signal`). */
  attempts?: number;
  /** Give up once the next wait would end more than this long after the first attempt started. */
  retryForMs?: number;
  /** Stops waiting and attempting: the last error is thrown. */
  signal?: AbortSignal;
  backoff?: BackoffOptions;
  /** Called before each wait (logging, metrics). */
  onRetry?: (info: RetryInfo) => void;
  /** Turns the last error into the one thrown when attempts or time ran out (default: itself). */
  exhausted?: (lastError: unknown, attempts: number) => unknown;
  /** Injected in tests. */
  random?: () => number;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<boolean>;
}

/** Runs `fn(attempt)` (attempt from 1) under the policy above. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const started = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (!options.isRetryable(error) || options.signal?.aborted) throw error;
      const delayMs = backoffDelay(attempt - 1, options.backoff, options.random);
      const outOfAttempts = options.attempts !== undefined && attempt >= options.attempts;
      const outOfTime = options.retryForMs !== undefined && now() + delayMs - started > options.retryForMs;
      if (outOfAttempts || outOfTime) throw options.exhausted ? options.exhausted(error, attempt) : error;
      options.onRetry?.({ attempt, delayMs, error });
      if (!(await wait(delayMs, options.signal))) throw error;
    }
  }
}
