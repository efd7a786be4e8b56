/**
 * In-memory stand-ins for the in-process benchmark: a StateStore with the methods capture and
 * apply call (checkpoints, leases), and a target MongoClient whose bulkWrite serialises every
 * operation to BSON (the driver's main CPU cost of a write) and keeps nothing.
 * Only what the runners use is implemented; everything is cast to the product types.
 */
import { BSON, type AnyBulkWriteOperation, type Document, type MongoClient } from 'mongodb';
import type { EventPosition } from '../../src/source/change-envelope.js';
import type { ShardLease, StateStore } from '../../src/state/store.js';

export function memoryStateStore(): StateStore {
  let capture: (EventPosition & { counters: Record<string, number> }) | null = null;
  const checkpoints = new Map<string, Document>();
  const leases = new Map<string, { owner: string | null; epoch: number; expiresAt: number }>();
  const lease = (migrationId: string, shardId: string, owner: string, epoch: number, ttlMs: number): ShardLease => ({
    migrationId,
    shardId,
    owner,
    epoch,
    expiresAt: new Date(Date.now() + ttlMs),
    ttlMs,
  });
  const store = {
    getCaptureCheckpoint: async () => capture,
    saveCaptureCheckpoint: async (_id: string, pos: EventPosition, counters: Record<string, number> = {}) => {
      capture = { ...pos, counters };
      return true;
    },
    acquireLease: async (migrationId: string, shardId: string, owner: string, o: { ttlMs: number }) => {
      const l = leases.get(shardId) ?? { owner: null, epoch: 0, expiresAt: 0 };
      if (l.owner !== null && l.owner !== owner && l.expiresAt > Date.now()) return null;
      l.owner = owner;
      l.epoch++;
      l.expiresAt = Date.now() + o.ttlMs;
      leases.set(shardId, l);
      return lease(migrationId, shardId, owner, l.epoch, o.ttlMs);
    },
    renewLease: async (x: ShardLease) => {
      const l = leases.get(x.shardId);
      if (!l || l.owner !== x.owner || l.epoch !== x.epoch) return null;
      l.expiresAt = Date.now() + x.ttlMs;
      return lease(x.migrationId, x.shardId, x.owner, x.epoch, x.ttlMs);
    },
    releaseLease: async (x: ShardLease) => {
      const l = leases.get(x.shardId);
      if (l && l.owner === x.owner) l.owner = null;
      return true;
    },
    getApplyCheckpoint: async (_m: string, shardId: string) => checkpoints.get(shardId) ?? null,
    saveApplyCheckpoint: async (x: ShardLease, cp: { sequenceNumber: string; position?: EventPosition; counters?: Record<string, number>; shardEnded?: boolean }) => {
      checkpoints.set(x.shardId, { ...cp, counters: { ...cp.counters }, ct: cp.position?.ct, rt: cp.position?.rt, position: cp.position });
      return 'saved' as const;
    },
    recordError: async () => undefined,
    recordBarrierReached: async () => null,
    arriveAtDdl: async () => {
      throw new Error('DDL is not part of the benchmark workload');
    },
  };
  return store as unknown as StateStore;
}

export interface StubTargetStats {
  bulkWrites: number;
  ops: number;
  bytes: number;
}

/** A MongoClient stand-in: `db(d).collection(c).bulkWrite(ops)` serialises the ops to BSON. */
export function stubTarget(): { client: MongoClient; stats: StubTargetStats } {
  const stats: StubTargetStats = { bulkWrites: 0, ops: 0, bytes: 0 };
  const collection = () => ({
    bulkWrite: async (ops: AnyBulkWriteOperation[]) => {
      stats.bulkWrites++;
      for (const op of ops) {
        // the shape the driver sends in an update/delete command
        let wire: Document;
        if ('replaceOne' in op) wire = { q: op.replaceOne.filter, u: op.replaceOne.replacement, upsert: op.replaceOne.upsert ?? false };
        else if ('updateOne' in op) wire = { q: op.updateOne.filter, u: op.updateOne.update, upsert: op.updateOne.upsert ?? false };
        else if ('deleteOne' in op) wire = { q: op.deleteOne.filter, limit: 1 };
        else if ('insertOne' in op) wire = op.insertOne.document as Document;
        else wire = op as Document;
        stats.bytes += BSON.serialize(wire).length;
        stats.ops++;
      }
      // a real bulkWrite is socket I/O: let timers and other I/O run, as they would
      await new Promise((r) => setImmediate(r));
      return { ok: 1 };
    },
  });
  const client = { db: () => ({ collection }) };
  return { client: client as unknown as MongoClient, stats };
}
