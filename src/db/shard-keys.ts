/**
 * Shard keys of a sharded target (a mongos), and the filters that target a sharded collection.
 *
 * A change event's `documentKey` is the SOURCE's key (`_id`, plus the source's shard key when the
 * source is sharded). A target collection sharded on another key refuses an upsert whose filter
 * lacks the full target shard key (ShardKeyNotFound, 61: "upsert … must include the full shard key
 * in the filter", https://www.mongodb.com/docs/manual/reference/method/db.collection.replaceOne/#sharded-collections),
 * so apply adds the target's shard key values, taken from the document itself, to its upsert
 * filters. A document missing a shard key field is matched with `field: null`
 * (https://www.mongodb.com/docs/manual/core/sharding-set-missing-shard-key-fields/).
 *
 * Shard keys are read where clients read them: `config.collections` on the mongos, one document
 * per sharded collection with its `key` (https://www.mongodb.com/docs/manual/reference/config-database/#mongodb-data-config.collections;
 * 4.4 keeps dropped ones with `dropped: true`). A server whose `hello` has no `msg: 'isdbgrid'` is
 * not a mongos (https://www.mongodb.com/docs/manual/reference/command/hello/) and has no sharded
 * collections.
 */
import type { Document, MongoClient } from 'mongodb';

/** `db.coll` → shard key pattern (`{region: 1}`, `{customer: 'hashed', _id: 1}`, …). */
export type ShardKeys = ReadonlyMap<string, Document>;

export async function readShardKeys(client: MongoClient): Promise<ShardKeys> {
  const hello = await client.db('admin').command({ hello: 1 });
  if (hello.msg !== 'isdbgrid') return new Map();
  const docs = await client
    .db('config')
    .collection('collections')
    .find({ dropped: { $ne: true } }, { projection: { _id: 1, key: 1 } })
    .toArray();
  const out = new Map<string, Document>();
  for (const d of docs) if (typeof d._id === 'string' && d.key && typeof d.key === 'object') out.set(d._id, d.key as Document);
  return out;
}

/** The value at a dotted path (`a.b`) of a document; undefined when missing. */
function valueAt(doc: Document, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !(part in (cur as Document))) return undefined;
    cur = (cur as Document)[part];
  }
  return cur;
}

/** The shard key fields of `doc` as equality conditions (`_id` excluded: the filter has it already). */
export function shardKeyConditions(doc: Document, key: Document): Document {
  const out: Document = {};
  for (const field of Object.keys(key)) {
    if (field === '_id') continue;
    out[field] = valueAt(doc, field) ?? null;
  }
  return out;
}

/** The shard key fields (dotted paths) other than `_id`, for projections. */
export function shardKeyFields(key: Document): string[] {
  return Object.keys(key).filter((f) => f !== '_id');
}
