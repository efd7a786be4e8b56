import type { Document, MongoClient } from 'mongodb';
import type { Logger } from '../util/logger.js';
import { isNamespaceExists, isNamespaceNotFound } from '../db/mongo-errors.js';

/** Measurements per insertMany: bounds memory to one batch. */
const BATCH = 1000;

/**
 * Copies one time-series collection once (--time-series=load-only), with the driver rather than
 * mongodump | mongorestore: mongodump dumps a time-series collection as its `system.buckets.<name>`
 * collection and mongorestore inserts those buckets back (mongo-tools mongodump.go, "dump the
 * system.buckets collection"), which ties the copy to the source's internal bucket format (it
 * changed across versions: compressed buckets from 5.2 and 6.0,
 * https://www.mongodb.com/docs/manual/core/timeseries/timeseries-compression/) and to a target that
 * accepts raw bucket writes. Reading the measurements through the collection and inserting them
 * lets the target bucket them itself, whatever the two versions.
 *
 * The target collection is created with the source's time-series options (timeField, metaField,
 * granularity: https://www.mongodb.com/docs/manual/core/timeseries/timeseries-procedures/) and
 * expireAfterSeconds, then its secondary indexes. With `drop` an existing target collection is
 * dropped first (a reload starts over); it is never left half-copied as "done": the load records
 * the collection done only after this returns.
 */
export async function copyTimeSeriesOnce(p: {
  source: MongoClient;
  target: MongoClient;
  from: { db: string; coll: string };
  to: { db: string; coll: string };
  drop: boolean;
  signal?: AbortSignal;
  log: Logger;
}): Promise<number> {
  const [info] = await p.source.db(p.from.db).listCollections({ name: p.from.coll }, { nameOnly: false }).toArray();
  const options = ((info as { options?: Document } | undefined)?.options ?? {}) as Document;
  const ts = (options.timeseries ?? {}) as Document;
  const dst = p.target.db(p.to.db);
  if (p.drop) {
    await dst.collection(p.to.coll).drop().catch((err: unknown) => {
      if (!isNamespaceNotFound(err)) throw err; // nothing to drop
    });
  }
  const timeseries: Document = { timeField: ts.timeField };
  if (ts.metaField !== undefined) timeseries.metaField = ts.metaField;
  if (ts.granularity !== undefined) timeseries.granularity = ts.granularity;
  const create: Document = { create: p.to.coll, timeseries };
  if (options.expireAfterSeconds !== undefined) create.expireAfterSeconds = options.expireAfterSeconds;
  await dst.command(create).catch((err: unknown) => {
    if (!isNamespaceExists(err)) throw err; // a rerun without --drop
  });
  const indexes = (await p.source.db(p.from.db).collection(p.from.coll).listIndexes().toArray()) as Document[];
  const specs = indexes.map(({ v: _v, ns: _ns, ...spec }) => spec).filter((s) => s.name !== '_id_');
  if (specs.length) await dst.command({ createIndexes: p.to.coll, indexes: specs });

  let copied = 0;
  let batch: Document[] = [];
  const flush = async () => {
    if (!batch.length) return;
    await dst.collection(p.to.coll).insertMany(batch, { ordered: true });
    copied += batch.length;
    batch = [];
  };
  for await (const doc of p.source.db(p.from.db).collection(p.from.coll).find({}, { batchSize: BATCH })) {
    if (p.signal?.aborted) break;
    batch.push(doc);
    if (batch.length >= BATCH) await flush();
  }
  if (!p.signal?.aborted) await flush();
  p.log.info({ ns: `${p.from.db}.${p.from.coll}`, target: `${p.to.db}.${p.to.coll}`, documents: copied }, 'time-series collection copied once (load-only: not kept in sync)');
  return copied;
}
