import { createHash } from 'node:crypto';
import { BSON, type Collection, type Document } from 'mongodb';
import { compareBson } from '../model/bson-order.js';

export interface CollectionDiff {
  sourceCount: number;
  targetCount: number;
  /** _ids on the source but not the target (first `maxIds`). */
  missing: unknown[];
  /** _ids on the target but not the source (first `maxIds`). */
  extra: unknown[];
  /** _ids present on both sides whose documents differ (first `maxIds`). */
  different: unknown[];
  missingCount: number;
  extraCount: number;
  differentCount: number;
  /**
   * _ids on one side only that the source's TTL provably expired during the cutover's verification
   * (src/verify/ttl-lapse.ts; first `maxIds`): not counted as missing or extra, and not a mismatch.
   */
  ttlExpired: unknown[];
  ttlExpiredCount: number;
  /** SHA-256 over the canonical bytes of all source documents in _id order. */
  sourceHash: string;
  targetHash: string;
}

interface RawDoc {
  id: unknown;
  bytes: Buffer;
}

const DECODE = { promoteValues: false, promoteLongs: false, promoteBuffers: false, bsonRegExp: true } as const;

/**
 * Documents of a collection in `_id` order as raw BSON: the bytes the server stores, so a
 * comparison sees every type and field order (Int32 vs Double, Long, Decimal128 … all differ).
 * Memory stays bounded: one cursor batch at a time.
 */
async function* rawDocs(coll: Collection, side: string): AsyncGenerator<RawDoc> {
  // A collection created with a default collation sorts (and compares) strings by it, not by
  // compareBson's binary order: mixed-case string _ids came back "out of order". Sort under the
  // simple (binary) collation then, named explicitly: "To specify simple binary comparison,
  // specify locale value of "simple"" (https://www.mongodb.com/docs/manual/reference/collation/).
  // Only then: engines without collations (Amazon DocumentDB lists none) compare binary anyway and
  // need not accept the option.
  const options: Document = await coll.options().catch(() => ({})); // a missing collection has none
  const defaultCollation = options.collation as Document | undefined;
  const collation = defaultCollation && defaultCollation.locale !== 'simple' ? { collation: { locale: 'simple' } } : {};
  const cursor = coll.find({}, { sort: { _id: 1 }, batchSize: 1000, raw: true, ...collation });
  let prev: unknown;
  let first = true;
  for await (const raw of cursor as unknown as AsyncIterable<Buffer>) {
    const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    const id = (BSON.deserialize(bytes, DECODE) as Document)._id;
    // The merge join is only sound if both servers sort _ids as compareBson does.
    if (!first && compareBson(prev, id) > 0) {
      throw new Error(`${side} ${coll.namespace} returns _ids out of MongoDB's order; cannot merge-compare`);
    }
    first = false;
    prev = id;
    yield { id, bytes };
  }
}

export interface CompareOptions {
  /**
   * Only from the cutover's verification (the proof's first condition, src/verify/ttl-lapse.ts):
   * whether the document (raw BSON of the copy that exists) was provably expired by the source's TTL.
   */
  expiredByTtl?: (raw: Buffer) => Promise<boolean>;
}

/** Merge-joins both sides by `_id`, counting and listing what is missing, extra or different. */
export async function compareCollections(source: Collection, target: Collection, maxIds = 10, options: CompareOptions = {}): Promise<CollectionDiff> {
  const diff: CollectionDiff = {
    sourceCount: 0, targetCount: 0, missing: [], extra: [], different: [],
    missingCount: 0, extraCount: 0, differentCount: 0, ttlExpired: [], ttlExpiredCount: 0, sourceHash: '', targetHash: '',
  };
  const expired = async (raw: Buffer, id: unknown) => {
    if (!options.expiredByTtl || !(await options.expiredByTtl(raw))) return false;
    diff.ttlExpiredCount++;
    if (diff.ttlExpired.length < maxIds) diff.ttlExpired.push(id);
    return true;
  };
  const sh = createHash('sha256');
  const th = createHash('sha256');
  const s = rawDocs(source, 'source');
  const t = rawDocs(target, 'target');
  let a = await s.next();
  let b = await t.next();
  const note = (list: unknown[], id: unknown) => {
    if (list.length < maxIds) list.push(id);
  };
  while (!a.done || !b.done) {
    const c = a.done ? 1 : b.done ? -1 : compareBson(a.value.id, b.value.id);
    if (c < 0 && !a.done) {
      diff.sourceCount++;
      sh.update(a.value.bytes);
      if (!(await expired(a.value.bytes, a.value.id))) {
        diff.missingCount++;
        note(diff.missing, a.value.id);
      }
      a = await s.next();
    } else if (c > 0 && !b.done) {
      diff.targetCount++;
      th.update(b.value.bytes);
      if (!(await expired(b.value.bytes, b.value.id))) {
        diff.extraCount++;
        note(diff.extra, b.value.id);
      }
      b = await t.next();
    } else if (!a.done && !b.done) {
      diff.sourceCount++;
      diff.targetCount++;
      sh.update(a.value.bytes);
      th.update(b.value.bytes);
      if (!a.value.bytes.equals(b.value.bytes)) {
        diff.differentCount++;
        note(diff.different, a.value.id);
      }
      a = await s.next();
      b = await t.next();
    }
  }
  diff.sourceHash = sh.digest('hex');
  diff.targetHash = th.digest('hex');
  return diff;
}

export function collectionsMatch(d: CollectionDiff): boolean {
  return d.missingCount === 0 && d.extraCount === 0 && d.differentCount === 0;
}
