/**
 * `_id` ranges of a partitioned collection, as query filters that split EVERY `_id` value — of any
 * BSON type — into exactly one range.
 *
 * Ranges follow MongoDB's comparison order of BSON types
 * (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/): MinKey < null <
 * numbers < strings < objects < binData < ObjectId < bool < Date < Timestamp < regex < MaxKey.
 * A query operator only compares values of the operand's own type class ("type bracketing":
 * https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#type-bracketing), so
 * `{_id: {$gte: ObjectId(…), $lt: "m"}}` matches NOTHING, not "the ObjectIds ≥ a, then every
 * string < m". A range whose bounds lie in different type classes is therefore a `$or` of
 *   - `{_id: {$gte: lower}}` (the lower bound's class, from the bound up),
 *   - `{_id: {$type: T}}` for every class strictly between the two,
 *   - `{_id: {$lt: upper}}` (the upper bound's class, below the bound),
 * and the first/last range reaches down/up to MinKey/MaxKey the same way. Bounds are only taken
 * from classes with an order inside the class (numbers, strings, objects, binData, ObjectId, bool,
 * Date, Timestamp); a single-valued class (MinKey, null, MaxKey) and the rarer ones (regex,
 * JavaScript) only ever appear as a whole `$type` clause.
 *
 * NaN: it sorts below every number (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/#numeric-types),
 * but whether a range operator matches it (`$gte: 5` or `$lt: 5` on NaN) is undocumented. So the
 * filter does not depend on it: NaN belongs to the range that starts below the number class and
 * ends inside it, which adds `{_id: NaN}` (equality), and every clause with a numeric lower bound
 * excludes it (`$ne: NaN`). NaN is never a bound. Whatever a server answers for `$lt: x` on NaN,
 * it can only add NaN to the range that holds it anyway (a `$or` is a union).
 *
 * The same filter selects the range on the source (mongodump --query) and removes it from the
 * target before a range is loaded again (deleteMany): both evaluate it with the same rules.
 * A collection with a non-simple default collation is never partitioned (see partition-plan.ts):
 * its string comparisons follow the collation, not the binary order the bounds are sorted in.
 */
import { BSON, Decimal128, Double, type Document } from 'mongodb';

const { EJSON } = BSON;
import { compareBson, typeRank } from '../model/bson-order.js';

/** The type classes in comparison order, each with the `$type` aliases of its BSON types (https://www.mongodb.com/docs/manual/reference/operator/query/type/#available-types). */
const CLASSES: readonly { rank: number; types: readonly string[] }[] = [
  { rank: 1, types: ['minKey'] },
  { rank: 2, types: ['null'] },
  { rank: 3, types: ['double', 'int', 'long', 'decimal'] },
  { rank: 4, types: ['string', 'symbol'] },
  { rank: 5, types: ['object'] },
  // rank 6 (arrays) cannot be an _id (https://www.mongodb.com/docs/manual/core/document/#the-_id-field).
  { rank: 7, types: ['binData'] },
  { rank: 8, types: ['objectId'] },
  { rank: 9, types: ['bool'] },
  { rank: 10, types: ['date'] },
  { rank: 11, types: ['timestamp'] },
  { rank: 12, types: ['regex'] },
  { rank: 13, types: ['javascript', 'javascriptWithScope'] },
  { rank: 100, types: ['maxKey'] },
];
const NUMBER_RANK = 3;

/** Classes whose values can bound a range (ordered inside the class). */
const BOUNDABLE = new Set([3, 4, 5, 7, 8, 9, 10, 11]);

/** One `_id` range: lower bound included, upper excluded; a missing bound is open (MinKey / MaxKey). */
export interface IdRange {
  lower?: unknown;
  upper?: unknown;
}

const isNaNValue = (v: unknown) =>
  (typeof v === 'number' && Number.isNaN(v)) ||
  (v instanceof Double && Number.isNaN(v.value)) ||
  (v instanceof Decimal128 && /nan/i.test(v.toString()));

const hasDollarKey = (v: unknown): boolean =>
  v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype && Object.entries(v).some(([k, x]) => k.startsWith('$') || hasDollarKey(x));

/** Whether a value may bound a range (its class is ordered; not NaN; an object without `$` keys, which a query would read as operators). */
export function canBound(v: unknown): boolean {
  const r = typeRank(v);
  if (!BOUNDABLE.has(r) || isNaNValue(v)) return false;
  return r !== 5 || !hasDollarKey(v);
}

/** The filter on `_id` selecting exactly the values in `range` (see the module comment). */
export function rangeFilter(range: IdRange): Document {
  const hasLower = range.lower !== undefined;
  const hasUpper = range.upper !== undefined;
  if (!hasLower && !hasUpper) return {};
  for (const b of [range.lower, range.upper]) {
    if (b !== undefined && !canBound(b)) throw new Error(`not a range bound: ${EJSON.stringify(b as Document)}`);
  }
  const lo = hasLower ? typeRank(range.lower) : -Infinity;
  const hi = hasUpper ? typeRank(range.upper) : Infinity;
  if (lo > hi || (hasLower && hasUpper && compareBson(range.lower, range.upper) >= 0)) throw new Error('empty or inverted _id range');
  const notNaN = lo === NUMBER_RANK ? { $ne: NaN } : {};
  if (lo === hi) return { _id: { $gte: range.lower, $lt: range.upper, ...notNaN } };
  const or: Document[] = [];
  if (hasLower) or.push({ _id: { $gte: range.lower, ...notNaN } });
  for (const c of CLASSES) {
    if (c.rank > lo && c.rank < hi) for (const t of c.types) or.push({ _id: { $type: t } });
  }
  if (hasUpper) {
    or.push({ _id: { $lt: range.upper } });
    if (hi === NUMBER_RANK) or.push({ _id: NaN });
  }
  return or.length === 1 ? or[0]! : { $or: or };
}

/**
 * Up to `parts - 1` bounds splitting `sample` (sampled `_id`s) into `parts` ranges of about equal
 * counts: sorted in BSON order, deduplicated, evenly spaced quantiles. Fewer when the sample has
 * fewer distinct boundable values. Sorted, strictly increasing.
 */
export function chooseBounds(sample: readonly unknown[], parts: number): unknown[] {
  const vals = sample.filter(canBound).sort(compareBson);
  const distinct: unknown[] = [];
  for (const v of vals) if (distinct.length === 0 || compareBson(distinct[distinct.length - 1], v) !== 0) distinct.push(v);
  if (parts <= 1 || distinct.length === 0) return [];
  const bounds: unknown[] = [];
  for (let i = 1; i < parts; i++) {
    const v = distinct[Math.min(distinct.length - 1, Math.floor((i * distinct.length) / parts))];
    if (bounds.length === 0 || compareBson(bounds[bounds.length - 1], v) < 0) bounds.push(v);
  }
  // The lowest sampled value as a bound would leave an (almost) empty first range: drop it.
  if (bounds.length && compareBson(bounds[0], distinct[0]) === 0) bounds.shift();
  return bounds;
}

/** The ranges between consecutive bounds, open at both ends: together they cover every `_id`. */
export function rangesFromBounds(bounds: readonly unknown[]): IdRange[] {
  if (bounds.length === 0) return [{}];
  const out: IdRange[] = [{ upper: bounds[0] }];
  for (let i = 1; i < bounds.length; i++) out.push({ lower: bounds[i - 1], upper: bounds[i] });
  out.push({ lower: bounds[bounds.length - 1] });
  return out;
}

/**
 * A bound as stored in the state store and handed to mongodump: canonical Extended JSON v2, which
 * keeps every BSON type (Int32 vs Int64 vs Double, Decimal128, binData subtype…)
 * (https://www.mongodb.com/docs/manual/reference/mongodb-extended-json/).
 */
export const encodeBound = (v: unknown): string => EJSON.stringify({ v } as Document, { relaxed: false });
export const decodeBound = (s: string): unknown => (EJSON.parse(s, { relaxed: false }) as { v: unknown }).v;

/**
 * mongodump's --query/--queryFile text for a range: "a JSON document as a query … in Extended
 * JSON v2 format (either relaxed or canonical/strict mode)"
 * (https://www.mongodb.com/docs/database-tools/mongodump/#std-option-mongodump.--query); canonical,
 * so every bound keeps its exact type.
 */
export const rangeQueryJson = (range: IdRange): string => EJSON.stringify(rangeFilter(range), { relaxed: false });
