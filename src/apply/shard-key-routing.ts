/**
 * Writes to a sharded target (a mongos): the target's shard keys, read at most every 30 s (and
 * again when a write says the key changed); upserts also filter on the shard key; and a document
 * whose shard key value changed on the source is moved (deleted at its old value) before it is
 * upserted at the new one. Nothing happens on an unsharded target (no shard keys).
 */
import { BSON, type AnyBulkWriteOperation, type Collection, type Document, type MongoClient } from 'mongodb';
import { EXACT_BSON_OPTIONS, type CollectionNamespace } from '../model/change-envelope.js';
import { readShardKeys, shardKeyConditions, shardKeyFields, type ShardKeys } from '../db/shard-keys.js';
import type { DocOp, PlannedOp } from './plan.js';

/** How long the target's shard keys are trusted before they are read again. */
const SHARD_KEYS_TTL_MS = 30_000;

const nsName = (ns: CollectionNamespace) => `${ns.db}.${ns.coll}`;

export class ShardKeyRouting {
  /** The target's sharded collections (empty unless the target is a mongos); see shard-keys.ts. */
  private keys: ShardKeys = new Map();
  private readAt = 0;

  constructor(
    private readonly client: MongoClient,
    private readonly retry: <T>(what: string, fn: () => Promise<T>) => Promise<T>,
    private readonly writeTimeoutMs: number,
    private readonly logger?: { info?(obj: object, msg: string): void },
  ) {}

  /** Reads the keys again (ShardKeyNotFound); true if the collection's key is not what it was. */
  async changedOnReread(target: CollectionNamespace): Promise<boolean> {
    const before = JSON.stringify(this.keys.get(nsName(target)) ?? null);
    await this.refresh(true);
    return JSON.stringify(this.keys.get(nsName(target)) ?? null) !== before;
  }

  async refresh(force: boolean): Promise<void> {
    if (!force && Date.now() - this.readAt < SHARD_KEYS_TTL_MS) return;
    this.keys = await this.retry('read the target shard keys (hello, config.collections)', () => readShardKeys(this.client));
    this.readAt = Date.now();
  }

  /** An op as sent to a sharded target: upserts also filter on the target's shard key (shard-keys.ts). */
  routed(target: CollectionNamespace, op: DocOp): DocOp {
    const key = this.keys.get(nsName(target));
    if (!key || op.kind !== 'upsert') return op;
    return { ...op, filter: { ...op.filter, ...shardKeyConditions(op.doc, key) } };
  }

  /**
   * A document whose shard key value changed on the source cannot be upserted in place on a
   * sharded target: the filter with the NEW value misses the stored document (and on a real
   * cluster may route to another shard and create a second document with the same _id). So the
   * stored copy is deleted first, by its old shard key value. Idempotent: a replay finds the
   * document already at its new value (or absent) and deletes nothing.
   */
  async moveChanged(collection: Collection, target: CollectionNamespace, work: readonly { planned: PlannedOp }[]): Promise<void> {
    const key = this.keys.get(nsName(target));
    const fields = key ? shardKeyFields(key) : [];
    if (!key || fields.length === 0) return;
    const upserts = new Map<string, Document>();
    const idKey = (id: unknown) => Buffer.from(BSON.serialize({ id })).toString('hex');
    for (const w of work) {
      const op = w.planned.op;
      if (op.kind === 'upsert' && op.doc._id !== undefined) upserts.set(idKey(op.doc._id), op.doc);
    }
    if (upserts.size === 0) return;
    const ids = [...upserts.values()].map((d) => d._id as unknown);
    const stored = await this.retry(`find ${nsName(target)} (shard key values)`, () =>
      collection
        .find({ _id: { $in: ids } } as Document, { projection: Object.fromEntries(fields.map((f) => [f, 1])), ...EXACT_BSON_OPTIONS })
        .toArray(),
    );
    const moves: AnyBulkWriteOperation[] = [];
    for (const s of stored) {
      const next = upserts.get(idKey(s._id));
      if (!next) continue;
      const was = shardKeyConditions(s, key);
      const now = shardKeyConditions(next, key);
      if (Buffer.compare(BSON.serialize(was), BSON.serialize(now)) !== 0) moves.push({ deleteOne: { filter: { _id: s._id, ...was } } });
    }
    if (moves.length === 0) return;
    this.logger?.info?.({ ns: nsName(target), documents: moves.length }, 'shard key value changed on the source: moving the documents on the sharded target');
    await this.retry(`bulkWrite ${nsName(target)} (${moves.length} shard key moves)`, () => collection.bulkWrite(moves, { ordered: true, timeoutMS: this.writeTimeoutMs }));
  }
}
