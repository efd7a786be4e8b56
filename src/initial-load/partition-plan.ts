/**
 * Splitting a large collection into `_id` ranges of about --partition-size bytes, with what every
 * supported source has (MongoDB 4.4–8.0, Amazon DocumentDB 4.0/5.0): no `splitVector` (internal,
 * and absent on DocumentDB), no `$bucketAuto` over the whole collection (it sorts every document).
 *
 * - Size and count: the `collStats` command (`size`: uncompressed data bytes, `count`)
 *   (https://www.mongodb.com/docs/manual/reference/command/collStats/ — deprecated in favour of the
 *   $collStats stage since 6.2 but present through 8.0; Amazon DocumentDB supports the command:
 *   https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html).
 * - Bounds: a random sample of `_id`s, `$sample` + `$project`
 *   (https://www.mongodb.com/docs/manual/reference/operator/aggregation/sample/: a pseudo-random
 *   cursor when it is the first stage and takes < 5 % of more than 100 documents, else a scan and
 *   random sort; Amazon DocumentDB supports $sample:
 *   https://docs.aws.amazon.com/documentdb/latest/developerguide/sample.html), sorted here in BSON
 *   order (compareBson) — the server's sort order is not needed, so `_id`s of mixed types are fine —
 *   and cut into evenly spaced quantiles (id-ranges.ts chooseBounds).
 *
 * The sample only shapes the ranges: whatever it returns, the ranges (open at both ends) cover
 * every `_id` exactly once (id-ranges.ts), so a poor sample costs balance, never correctness.
 */
import type { Document, MongoClient } from 'mongodb';
import { EXACT_BSON_OPTIONS } from '../model/change-envelope.js';
import { chooseBounds } from './id-ranges.js';

export interface CollectionEstimate {
  /** Uncompressed bytes of the documents. */
  size: number;
  count: number;
}

const num = (v: unknown) => (typeof v === 'number' ? v : Number((v as { valueOf?: () => unknown })?.valueOf?.() ?? 0)) || 0;

export async function estimateCollection(client: MongoClient, db: string, coll: string): Promise<CollectionEstimate> {
  const r = await client.db(db).command({ collStats: coll });
  return { size: num(r.size), count: num(r.count) };
}

/** Ranges for `size` bytes at `partitionSize` each (1 = keep whole). */
export function partitionCount(size: number, partitionSize: number): number {
  if (!(partitionSize > 0) || size <= partitionSize) return 1;
  return Math.ceil(size / partitionSize);
}

/** Sampled `_id`s per range: enough for even ranges, bounded (20 000 `_id`s at most in memory). */
export function sampleSize(parts: number, count: number): number {
  return Math.max(1, Math.min(count, Math.max(100, parts * 20), 20_000));
}

/** Up to `parts - 1` sorted `_id` bounds for the collection, from a `$sample` of its `_id`s. */
export async function sampleIdBounds(client: MongoClient, db: string, coll: string, parts: number, count: number): Promise<unknown[]> {
  if (parts <= 1) return [];
  const ids = await client
    .db(db)
    .collection(coll)
    .aggregate<Document>([{ $sample: { size: sampleSize(parts, count) } }, { $project: { _id: 1 } }], { ...EXACT_BSON_OPTIONS })
    .toArray();
  return chooseBounds(
    ids.map((d) => d._id),
    parts,
  );
}
