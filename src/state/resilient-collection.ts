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
import { retryTransient, type TransientRetryPolicy } from '../db/transient-retry.js';

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
