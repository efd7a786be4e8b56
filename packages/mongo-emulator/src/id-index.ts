// The `_id` index of a collection: every collection has one, created with it
// (https://www.mongodb.com/docs/manual/indexes/#default-_id-index), a single-field ascending index
// (https://www.mongodb.com/docs/manual/core/index-single/) over values of any BSON type in the
// server's comparison order (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/).
// A real server answers `{_id: {$gte: a, $lt: b}}` from it (an index scan of that range); the
// emulator used to test every document. Here the filter's `_id` constraints become intervals of
// the index (`idIntervals`); the documents in them are the candidates, on which the whole filter
// is still evaluated, so the results are the ones a scan gives (the intervals are a superset of
// the matches), in the same order: natural order (the order a scan returns; the emulator's
// results without a sort do not change — a real server's order without a sort is unspecified).
//
// Invariants: the index holds exactly the stored documents' `_id`s (storage-engine.ts updates it
// in the same mutation as `Collection.docs`); entries are ordered by compareValues, ties (distinct
// canonical keys that compare equal, e.g. a Long and a Double both rounding to 2^53) by insertion
// sequence, which is also how the natural order is recovered.
import { ObjectId } from 'bson';
import { bsonTypeName, compareValues, isNumeric, isPlainObject, toNumber, typeRank, type Doc } from './bson-values.js';

interface Entry {
  id: unknown;
  key: string;
  /** Insertion sequence: the document's place in natural order. */
  seq: number;
}

/** One end of an interval: a value (inclusive or not), or the edge of a whole type class (`value` absent). */
export interface IdBound {
  rank: number;
  value?: unknown;
  inclusive: boolean;
}

/** The `_id`s between `lo` and `hi` in BSON order; a missing end is open. */
export interface IdInterval {
  lo?: IdBound;
  hi?: IdBound;
}

/** compareValues with the frequent `_id` types compared without conversions (same order). */
function compareIds(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number' && !Number.isNaN(a) && !Number.isNaN(b)) return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (a instanceof ObjectId && b instanceof ObjectId) return Buffer.compare(a.id, b.id);
  return compareValues(a, b);
}

const compareEntries = (a: Entry, b: Entry) => compareIds(a.id, b.id) || a.seq - b.seq;

/** Whether `id` lies below the lower end `lo`. */
function below(id: unknown, lo: IdBound | undefined): boolean {
  if (!lo) return false;
  if (lo.value === undefined) return typeRank(id) < lo.rank;
  const c = compareIds(id, lo.value);
  return c < 0 || (c === 0 && !lo.inclusive);
}

/** Whether `id` lies above the upper end `hi`. */
function above(id: unknown, hi: IdBound | undefined): boolean {
  if (!hi) return false;
  if (hi.value === undefined) return typeRank(id) > hi.rank;
  const c = compareIds(id, hi.value);
  return c > 0 || (c === 0 && !hi.inclusive);
}

/** Entries kept sorted in buckets of at most BUCKET (a B-tree of height 2): O(log n + √n) writes, O(log n + k) range reads. */
const BUCKET = 512;

export class OrderedIdIndex {
  private buckets: Entry[][] = [];
  private readonly byKey = new Map<string, Entry>();
  private nextSeq = 0;

  get size(): number {
    return this.byKey.size;
  }

  /** A stored document's `_id`: a new key is added, an existing one keeps its place (updates never change an `_id`). */
  put(key: string, id: unknown): void {
    const existing = this.byKey.get(key);
    if (existing) {
      existing.id = id;
      return;
    }
    const e: Entry = { id, key, seq: this.nextSeq++ };
    this.byKey.set(key, e);
    const last = this.buckets[this.buckets.length - 1];
    // Inserts in `_id` order (the usual load) append.
    if (!last || compareEntries(last[last.length - 1]!, e) < 0) {
      if (!last || last.length >= BUCKET) this.buckets.push([e]);
      else last.push(e);
      return;
    }
    const b = this.bucketFor(e);
    const bucket = this.buckets[b]!;
    bucket.splice(this.position(bucket, e), 0, e);
    if (bucket.length > BUCKET) this.buckets.splice(b, 1, bucket.slice(0, bucket.length >> 1), bucket.slice(bucket.length >> 1));
  }

  delete(key: string): void {
    const e = this.byKey.get(key);
    if (!e) return;
    this.byKey.delete(key);
    const b = this.bucketFor(e);
    const bucket = this.buckets[b]!;
    const i = this.position(bucket, e);
    if (bucket[i] !== e) throw new Error(`_id index out of order at ${key}`);
    bucket.splice(i, 1);
    if (bucket.length === 0) this.buckets.splice(b, 1);
  }

  /**
   * The keys of the documents whose `_id` is in any of `intervals`, in natural order; undefined
   * when `intervals` is (the filter does not narrow `_id`: the caller scans).
   */
  keysIn(intervals: IdInterval[] | undefined): string[] | undefined {
    if (!intervals) return undefined;
    const found = new Map<string, number>();
    for (const iv of intervals) for (const e of this.range(iv)) found.set(e.key, e.seq);
    return [...found].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  }

  private *range(iv: IdInterval): Generator<Entry> {
    // The first bucket whose last entry is not below the lower end, then the first entry not below it.
    let b = lowerIndex(this.buckets, (bucket) => below(bucket[bucket.length - 1]!.id, iv.lo));
    if (b >= this.buckets.length) return;
    let i = lowerIndex(this.buckets[b]!, (e) => below(e.id, iv.lo));
    for (; b < this.buckets.length; b++, i = 0) {
      const bucket = this.buckets[b]!;
      for (; i < bucket.length; i++) {
        if (above(bucket[i]!.id, iv.hi)) return;
        yield bucket[i]!;
      }
    }
  }

  /** The bucket an entry belongs in: the first whose last entry is not below it (else the last). */
  private bucketFor(e: Entry): number {
    return Math.min(this.buckets.length - 1, lowerIndex(this.buckets, (bucket) => compareEntries(bucket[bucket.length - 1]!, e) < 0));
  }

  private position(bucket: Entry[], e: Entry): number {
    return lowerIndex(bucket, (x) => compareEntries(x, e) < 0);
  }
}

/** The first index of `arr` for which `isBefore` is false (it holds for a prefix of `arr`). */
function lowerIndex<T>(arr: readonly T[], isBefore: (x: T) => boolean): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (isBefore(arr[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------
// Filters → intervals

const NUMBER_RANK = 3;

/** `$type` aliases and codes (https://www.mongodb.com/docs/manual/reference/operator/query/type/#available-types) → the emulator's type class (typeRank). */
const TYPE_RANKS: Record<string, number> = {
  minKey: 1, '-1': 1, null: 2, '10': 2, undefined: 2, '6': 2,
  double: 3, '1': 3, int: 3, '16': 3, long: 3, '18': 3, decimal: 3, '19': 3, number: 3,
  string: 4, '2': 4, symbol: 4, '14': 4, object: 5, '3': 5, binData: 7, '5': 7, objectId: 8, '7': 8,
  bool: 9, '8': 9, date: 10, '9': 10, timestamp: 11, '17': 11, regex: 12, '11': 12,
  javascript: 14, '13': 14, javascriptWithScope: 14, '15': 14, maxKey: 127, '127': 127,
};

const wholeClass = (rank: number): IdInterval => ({ lo: { rank, inclusive: true }, hi: { rank, inclusive: true } });
const point = (v: unknown): IdInterval => ({ lo: { rank: typeRank(v), value: v, inclusive: true }, hi: { rank: typeRank(v), value: v, inclusive: true } });
const isNaNValue = (v: unknown) => typeRank(v) === NUMBER_RANK && Number.isNaN(toNumber(v));
const isRegex = (v: unknown) => v instanceof RegExp || bsonTypeName(v) === 'BSONRegExp';
/** MinKey and MaxKey as operands, and NaN: left unnarrowed (how a range operator treats them is not the plain BSON order). */
const unorderedOperand = (v: unknown) => typeRank(v) === 1 || typeRank(v) === 127 || isNaNValue(v);

/** The intervals holding every `_id` value the operator object `ops` can match; undefined: any. */
function operatorIntervals(ops: Doc): IdInterval[] | undefined {
  const lower = ops.$gte !== undefined ? { v: ops.$gte, inclusive: true } : ops.$gt !== undefined ? { v: ops.$gt, inclusive: false } : undefined;
  const upper = ops.$lte !== undefined ? { v: ops.$lte, inclusive: true } : ops.$lt !== undefined ? { v: ops.$lt, inclusive: false } : undefined;
  if ((lower && unorderedOperand(lower.v)) || (upper && unorderedOperand(upper.v))) return undefined;
  if (lower || upper) {
    // Type bracketing: a range operator matches values of its operand's type class only
    // (https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#type-bracketing).
    const lo: IdBound = lower ? { rank: typeRank(lower.v), value: lower.v, inclusive: lower.inclusive } : { rank: typeRank(upper!.v), inclusive: true };
    const hi: IdBound = upper ? { rank: typeRank(upper.v), value: upper.v, inclusive: upper.inclusive } : { rank: lo.rank, inclusive: true };
    // The query engine (mingo) also matches NaN with a numeric lower bound; NaN sorts below every number.
    return lower && lo.rank === NUMBER_RANK ? [{ lo, hi }, point(NaN)] : [{ lo, hi }];
  }
  if ('$eq' in ops) return Array.isArray(ops.$eq) || isRegex(ops.$eq) ? undefined : [point(ops.$eq)];
  if (Array.isArray(ops.$in)) return ops.$in.some((x) => Array.isArray(x) || isRegex(x)) ? undefined : ops.$in.map(point);
  if ('$type' in ops) {
    const ranks = (Array.isArray(ops.$type) ? ops.$type : [ops.$type]).map((t) => TYPE_RANKS[String(toTypeKey(t))]);
    return ranks.every((r) => r !== undefined) ? ranks.map((r) => wholeClass(r!)) : undefined;
  }
  return undefined;
}

const toTypeKey = (t: unknown) => (isNumeric(t) ? String(toNumber(t)) : String(t));

/** The intervals of an `_id` field's condition (a value, or an operator object). */
function fieldIntervals(v: unknown): IdInterval[] | undefined {
  if (isRegex(v) || Array.isArray(v)) return undefined;
  if (isPlainObject(v) && Object.keys(v).some((k) => k.startsWith('$'))) return operatorIntervals(v);
  return [point(v)];
}

/**
 * Intervals of the `_id` index that hold every document `filter` can match, or undefined when
 * its `_id` is not constrained (then every document is a candidate). A conjunction takes one
 * constrained part (a superset of their intersection); a `$or` the union of its branches (each
 * must constrain `_id`).
 */
export function idIntervals(filter: unknown): IdInterval[] | undefined {
  if (!isPlainObject(filter)) return undefined;
  for (const [k, v] of Object.entries(filter)) {
    let part: IdInterval[] | undefined;
    if (k === '_id') part = fieldIntervals(v);
    else if (k === '$and' && Array.isArray(v)) part = v.map(idIntervals).find((x) => x !== undefined);
    else if (k === '$or' && Array.isArray(v) && v.length > 0) {
      const branches = v.map(idIntervals);
      part = branches.every((x) => x !== undefined) ? branches.flat() as IdInterval[] : undefined;
    }
    if (part) return part;
  }
  return undefined;
}
