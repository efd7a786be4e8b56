/**
 * State-store collections that ride out a transient outage of the database holding them
 * (failover, restart, a node refusing writes for a while): every single-shot operation is retried
 * with backoff while the error is transient, for up to `retryForMs`. Without it one refused
 * checkpoint or phase write would end a process that loses nothing by waiting.
 *
 * Safe because every store operation is idempotent when repeated after an ambiguous failure:
 * upserts with $setOnInsert, $set of absolute values, updates conditional on owner + epoch or on
 * position; the one $inc (a lease epoch) only supersedes the lease value the caller gets back.
 * Cursor reads go through {@link retryTransient} at their call sites.
 */
import type { Collection, Document } from 'mongodb';
import { isTransientError } from '../db/transient-errors.js';

export interface TransientRetryPolicy {
  /** Give up (rethrow the last error) after this long; default 60 s. */
  retryForMs?: number;
  /** First delay; doubles up to 2 s. Default 100 ms. */
  baseDelayMs?: number;
  onRetry?: (what: string, attempt: number, err: unknown) => void;
}

const RETRIED_METHODS = new Set([
  'findOne',
  'insertOne',
  'updateOne',
  'updateMany',
  'replaceOne',
  'deleteOne',
  'deleteMany',
  'findOneAndUpdate',
  'findOneAndReplace',
  'countDocuments',
  'createIndex',
]);

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

/** `coll` with its single-shot operations retried on transient errors (see the module comment). */
export function resilientCollection<T extends Document>(coll: Collection<T>, policy: TransientRetryPolicy = {}): Collection<T> {
  return new Proxy(coll, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof prop !== 'string' || !RETRIED_METHODS.has(prop) || typeof value !== 'function') return value;
      return (...args: unknown[]) =>
        retryTransient(`${target.collectionName}.${prop}`, () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args), policy);
    },
  });
}
