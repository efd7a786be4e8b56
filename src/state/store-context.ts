/**
 * What every aggregate module of the state store shares: the database, the clock, how transient
 * errors are ridden out, and the few helpers their writes have in common. Internal to src/state.
 */
import type { Collection, Db, Document } from 'mongodb';
import type { TransientRetryPolicy } from '../db/transient-retry.js';
import { resilientCollection } from './resilient-collection.js';
import { isDuplicateKey } from '../db/mongo-errors.js';

/** The state store's collections (all keyed by migration id; see store.ts). */
export const COLLECTIONS = {
  migrations: 'migrations',
  captureCheckpoints: 'capture_checkpoints',
  shards: 'shards',
  captureLeases: 'capture_leases',
  cutovers: 'cutovers',
  ddlRendezvous: 'ddl_rendezvous',
  loadUnits: 'load_partitions',
  ttlHolds: 'ttl_holds',
  meta: 'meta',
} as const;

export interface StoreContext {
  readonly db: Db;
  readonly now: () => Date;
  readonly retry: TransientRetryPolicy;
  /** A handle on `name` whose single-shot operations ride out transient errors (resilient-collection.ts). */
  collection<T extends Document>(name: string): Collection<T>;
}

export function storeContext(db: Db, now: () => Date, retry: TransientRetryPolicy): StoreContext {
  // Every collection handle retries transient errors: a store outage pauses callers, not ends them.
  return { db, now, retry, collection: <T extends Document>(name: string) => resilientCollection(db.collection<T>(name), retry) };
}


/**
 * Runs an upsert of shared state so that losing a creation race is not an error. Two processes
 * upserting the same `_id` at once (capture and apply starting together on a fresh store) both
 * miss in the filter and both insert; one insert loses with E11000. MongoDB (4.2+) retries such an
 * upsert as an update itself when the filter is an equality on the unique key
 * (https://www.mongodb.com/docs/manual/reference/method/db.collection.updateOne/#upsert-with-unique-index),
 * and otherwise documents that "applications may retry the operation which will succeed as an
 * update". Other engines need not retry (FerretDB does not; DocumentDB: undocumented), so we do:
 * once, since the document now exists. A second E11000 means the stored document does not match
 * the filter (a conditional upsert such as "only if pos is smaller"): `onConflict`'s answer.
 */
export async function upsertTolerantOfRace<T, U>(op: () => Promise<T>, onConflict: () => U | Promise<U>): Promise<T | U> {
  try {
    return await op();
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
  try {
    return await op();
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return onConflict();
  }
}

/**
 * Kinesis sequence numbers are decimal strings (API pattern `0|([1-9]\d{0,128})`); zero-padded to
 * a fixed width, string order is numeric order, which the checkpoint guard relies on.
 */
export function sequenceKey(sequenceNumber: string): string {
  if (!/^\d{1,129}$/.test(sequenceNumber)) throw new Error(`invalid Kinesis sequence number '${sequenceNumber}'`);
  return sequenceNumber.replace(/^0+(?=\d)/, '').padStart(129, '0');
}

/** `_id` of a shard, capture lease or load unit document. */
export const shardDocId = (migrationId: string, shardId: string) => `${migrationId}/${shardId}`;
