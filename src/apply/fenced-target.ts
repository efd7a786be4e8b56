/**
 * A view of the target MongoClient whose WRITES first pass a fence (the shard's lease check,
 * LeaseKeeper.waitWritable): a shard's writer stops writing as soon as its lease is lost or runs
 * short, even in the middle of a batch, not only between batches. Reads pass through.
 *
 * Implemented with proxies over the driver's MongoClient → Db → Collection objects (the driver
 * classes keep their state in ordinary properties, so forwarding calls to the real objects is
 * transparent). Only the writer's entry points are wrapped: `client.db()`, `db.collection()`.
 */
import type { Collection, Db, MongoClient } from 'mongodb';

export type Fence = () => Promise<void>;
/** Called after each fenced write the target acknowledged (stall detection). */
export type OnWriteAcknowledged = () => void;

const COLLECTION_WRITES = new Set([
  'bulkWrite',
  'insertOne',
  'insertMany',
  'updateOne',
  'updateMany',
  'replaceOne',
  'deleteOne',
  'deleteMany',
  'findOneAndUpdate',
  'findOneAndReplace',
  'findOneAndDelete',
  'drop',
  'rename',
  'createIndex',
  'createIndexes',
  'dropIndex',
  'dropIndexes',
]);

const DB_WRITES = new Set(['command', 'dropDatabase', 'dropCollection', 'createCollection', 'renameCollection', 'createIndex']);

function fencedObject<T extends object>(
  target: T,
  writes: Set<string>,
  fence: Fence,
  wrap: Record<string, (value: unknown) => unknown> = {},
  onAck?: OnWriteAcknowledged,
): T {
  return new Proxy(target, {
    get(obj, prop) {
      const value: unknown = Reflect.get(obj, prop, obj);
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (writes.has(prop)) {
        return async (...args: unknown[]) => {
          await fence();
          const result: unknown = await fn.apply(obj, args);
          onAck?.();
          return result;
        };
      }
      const post = wrap[prop];
      if (post) return (...args: unknown[]) => post(fn.apply(obj, args));
      return fn.bind(obj);
    },
  });
}

function fencedCollection(coll: Collection, fence: Fence, onAck?: OnWriteAcknowledged): Collection {
  return fencedObject(coll, COLLECTION_WRITES, fence, {}, onAck);
}

function fencedDb(db: Db, fence: Fence, onAck?: OnWriteAcknowledged): Db {
  return fencedObject(db, DB_WRITES, fence, { collection: (c) => fencedCollection(c as Collection, fence, onAck) }, onAck);
}

/** The client to give a shard's ApplyWriter: every write awaits `fence()` first, and reports its acknowledgement to `onAck`. */
export function fencedClient(client: MongoClient, fence: Fence, onAck?: OnWriteAcknowledged): MongoClient {
  return fencedObject(client, new Set(), fence, { db: (d) => fencedDb(d as Db, fence, onAck) });
}
