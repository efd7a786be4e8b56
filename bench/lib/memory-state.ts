/**
 * In-memory stand-ins for the in-process benchmark: a state store with the methods capture and
 * apply call (checkpoints, leases, barriers), and a target MongoClient whose bulkWrite serialises
 * every operation to BSON (the driver's main CPU cost of a write) and keeps nothing.
 *
 * The store is typed as the product's CaptureStateStore & ApplyStateStore (src/state/store.ts)
 * with no cast: when capture or apply start calling another store method, `npm run typecheck`
 * fails here instead of the benchmark failing at run time.
 */
import { BSON, type AnyBulkWriteOperation, type Document, type MongoClient } from 'mongodb';
import { positionKey, type EventPosition } from '../../src/model/change-envelope.js';
import {
  sequenceKey,
  type ApplyCheckpoint,
  type ApplyStateStore,
  type CaptureCheckpointDoc,
  type CaptureStateStore,
  type Counters,
  type DdlRendezvousDoc,
  type LeaseScope,
  type ShardLease,
} from '../../src/state/store.js';

export type MemoryStateStore = CaptureStateStore & ApplyStateStore;

export function memoryStateStore(): MemoryStateStore {
  let capture: CaptureCheckpointDoc | null = null;
  const checkpoints = new Map<string, ApplyCheckpoint>();
  const leases = new Map<string, { owner: string | null; epoch: number; expiresAt: number }>();
  const leaseKey = (shardId: string, scope?: LeaseScope) => `${scope ?? 'shard'}/${shardId}`;
  const lease = (migrationId: string, shardId: string, owner: string, epoch: number, ttlMs: number, scope?: LeaseScope): ShardLease => ({
    migrationId,
    shardId,
    scope,
    owner,
    epoch,
    expiresAt: new Date(Date.now() + ttlMs),
    ttlMs,
  });
  return {
    // the benchmark runs plain CDC (cdcOnly): no migration document
    getMigration: async () => null,
    getCaptureCheckpoint: async () => capture,
    saveCaptureCheckpoint: async (id: string, pos: EventPosition, counters: Counters = {}) => {
      capture = { _id: id, ct: pos.ct, rt: pos.rt, pos: positionKey(pos), counters, updatedAt: new Date() };
      return true;
    },
    acquireLease: async (migrationId, shardId, owner, o) => {
      const key = leaseKey(shardId, o.scope);
      const l = leases.get(key) ?? { owner: null, epoch: 0, expiresAt: 0 };
      if (l.owner !== null && l.owner !== owner && l.expiresAt > Date.now()) return null;
      l.owner = owner;
      l.epoch++;
      l.expiresAt = Date.now() + o.ttlMs;
      leases.set(key, l);
      return lease(migrationId, shardId, owner, l.epoch, o.ttlMs, o.scope);
    },
    renewLease: async (x) => {
      const l = leases.get(leaseKey(x.shardId, x.scope));
      if (!l || l.owner !== x.owner || l.epoch !== x.epoch) return null;
      l.expiresAt = Date.now() + x.ttlMs;
      return lease(x.migrationId, x.shardId, x.owner, x.epoch, x.ttlMs, x.scope);
    },
    releaseLease: async (x) => {
      const l = leases.get(leaseKey(x.shardId, x.scope));
      if (!l || l.owner !== x.owner) return false;
      l.owner = null;
      return true;
    },
    getCaptureLease: async (migrationId) => {
      const l = leases.get(leaseKey('capture', 'capture'));
      return l?.owner ? lease(migrationId, 'capture', l.owner, l.epoch, 0, 'capture') : null;
    },
    getApplyCheckpoint: async (_m, shardId) => {
      const cp = checkpoints.get(shardId);
      if (!cp) return null;
      return cp.ct && cp.rt ? { ...cp, position: { ct: cp.ct, rt: cp.rt } } : { ...cp };
    },
    saveApplyCheckpoint: async (x, cp) => {
      checkpoints.set(x.shardId, {
        sequenceNumber: cp.sequenceNumber,
        seqKey: sequenceKey(cp.sequenceNumber),
        counters: { ...cp.counters },
        shardEnded: cp.shardEnded ?? false,
        at: new Date(),
        epoch: x.epoch,
        ...(cp.position ? { ct: cp.position.ct, rt: cp.position.rt, pos: positionKey(cp.position) } : {}),
        // the reader's checkpoint is kept whole, as the product's store does (src/state/shards.ts)
        ...(cp.lastRecordIds ? { lastRecordIds: [...cp.lastRecordIds] } : {}),
      });
      return 'saved' as const;
    },
    // the benchmark's in-memory target never stalls
    setShardStall: async () => undefined,
    setShardAppliedThrough: async () => undefined,
    recordTtlHold: async () => undefined,
    recordError: async () => undefined,
    // no cutover in the benchmark workload
    recordBarrierReached: async () => null,
    arriveAtDdl: async (): Promise<DdlRendezvousDoc> => {
      throw new Error('DDL is not part of the benchmark workload');
    },
    getDdlRendezvous: async () => null,
    markDdlApplied: async () => undefined,
  };
}

export interface StubTargetStats {
  bulkWrites: number;
  ops: number;
  bytes: number;
}

/**
 * A MongoClient stand-in: `db(d).collection(c).bulkWrite(ops)` serialises the ops to BSON. The
 * driver's MongoClient is a class with hundreds of members, so this one is cast; the smoke run in
 * `npm test` (test/bench/bench-smoke.test.ts) is what catches apply calling anything else.
 */
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
  // `hello` without msg 'isdbgrid': a replica set, so apply reads no shard keys (shard-keys.ts).
  const command = async () => ({ isWritablePrimary: true, ok: 1 });
  const client = { db: () => ({ collection, command }) };
  return { client: client as unknown as MongoClient, stats };
}
