// BSON-aware value helpers shared by every part of the emulator.
//
// Invariant: documents are stored exactly as decoded with `DECODE_OPTIONS` (numbers stay Int32 /
// Double / Long / Decimal128 wrappers, regexes stay BSONRegExp, binaries stay Binary), so that
// re-encoding a stored document yields the same types and field order the client sent.
// Comparison and equality below follow MongoDB's cross-type rules (numbers compare by value across
// Int32/Long/Double/Decimal128; type classes order MinKey < null < numbers < strings < objects <
// arrays < BinData < ObjectId < bool < Date < Timestamp < regex < code < MaxKey).
import {
  Binary,
  BSONRegExp,
  BSONSymbol,
  Code,
  DBRef,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  deserialize,
  serialize,
  type DeserializeOptions,
} from 'bson';

export type Doc = Record<string, unknown>;

export const DECODE_OPTIONS: DeserializeOptions = {
  promoteValues: false,
  promoteBuffers: false,
  promoteLongs: false,
  bsonRegExp: true,
};

export function decodeDoc(buf: Uint8Array): Doc {
  return deserialize(buf, DECODE_OPTIONS) as Doc;
}

export function encodeDoc(doc: Doc): Buffer {
  return Buffer.from(serialize(doc, { ignoreUndefined: true }));
}

export function isPlainObject(v: unknown): v is Doc {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function bsonTypeName(v: unknown): string | undefined {
  if (v !== null && typeof v === 'object' && '_bsontype' in v) return (v as { _bsontype: string })._bsontype;
  return undefined;
}

export function isNumeric(v: unknown): boolean {
  if (typeof v === 'number' || typeof v === 'bigint') return true;
  const t = bsonTypeName(v);
  return t === 'Int32' || t === 'Double' || t === 'Long' || t === 'Decimal128';
}

/** JS number for any numeric BSON value (lossy for huge Long / Decimal128); NaN for non-numbers. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  switch (bsonTypeName(v)) {
    case 'Int32':
    case 'Double':
      return (v as Int32 | Double).value;
    case 'Long':
      return (v as Long).toNumber();
    case 'Decimal128':
      return Number((v as Decimal128).toString());
    default:
      return Number.NaN;
  }
}

/** Option flags in commands (`multi: true`, `upsert: 1`, …) may come as booleans or numbers. */
export function truthy(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (isNumeric(v)) return toNumber(v) !== 0;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Type ordering and comparison

export function typeRank(v: unknown): number {
  if (v === undefined || v === null) return 2;
  switch (typeof v) {
    case 'number':
    case 'bigint':
      return 3;
    case 'string':
      return 4;
    case 'boolean':
      return 9;
  }
  if (Array.isArray(v)) return 6;
  if (v instanceof Date) return 10;
  if (v instanceof RegExp) return 12;
  switch (bsonTypeName(v)) {
    case 'MinKey':
      return 1;
    case 'Int32':
    case 'Double':
    case 'Long':
    case 'Decimal128':
      return 3;
    case 'BSONSymbol':
      return 4;
    case 'Binary':
      return 7;
    case 'ObjectId':
      return 8;
    case 'Timestamp':
      return 11;
    case 'BSONRegExp':
      return 12;
    case 'Code':
      return 14;
    case 'MaxKey':
      return 127;
  }
  return 5; // plain documents and DBRef
}

function numericCompare(a: unknown, b: unknown): number {
  if (bsonTypeName(a) === 'Long' && bsonTypeName(b) === 'Long') return (a as Long).compare(b as Long);
  const x = toNumber(a);
  const y = toNumber(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) ? (Number.isNaN(y) ? 0 : -1) : 1; // NaN sorts first
  return x < y ? -1 : x > y ? 1 : 0;
}

function stringOf(v: unknown): string {
  return typeof v === 'string' ? v : (v as BSONSymbol).toString();
}

function cmp<T>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function entriesOf(v: unknown): [string, unknown][] {
  if (v instanceof DBRef) return Object.entries(v.toJSON() as unknown as Doc);
  return Object.entries(v as Doc);
}

/** Total order over BSON values as MongoDB's index/sort comparison defines it. */
export function compareValues(a: unknown, b: unknown): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 1:
    case 2:
    case 127:
      return 0;
    case 3:
      return numericCompare(a, b);
    case 4:
      return cmp(stringOf(a), stringOf(b));
    case 5: {
      const ea = entriesOf(a);
      const eb = entriesOf(b);
      for (let i = 0; i < Math.min(ea.length, eb.length); i++) {
        const c =
          typeRank(ea[i][1]) - typeRank(eb[i][1]) || cmp(ea[i][0], eb[i][0]) || compareValues(ea[i][1], eb[i][1]);
        if (c) return c;
      }
      return ea.length - eb.length;
    }
    case 6: {
      const xa = a as unknown[];
      const xb = b as unknown[];
      for (let i = 0; i < Math.min(xa.length, xb.length); i++) {
        const c = compareValues(xa[i], xb[i]);
        if (c) return c;
      }
      return xa.length - xb.length;
    }
    case 7: {
      const ba = a as Binary;
      const bb = b as Binary;
      return ba.position - bb.position || ba.sub_type - bb.sub_type || Buffer.compare(binaryBytes(ba), binaryBytes(bb));
    }
    case 8:
      return cmp((a as ObjectId).toHexString(), (b as ObjectId).toHexString());
    case 9:
      return Number(a) - Number(b);
    case 10:
      return (a as Date).getTime() - (b as Date).getTime();
    case 11: {
      const ta = a as Timestamp;
      const tb = b as Timestamp;
      return ta.t - tb.t || ta.i - tb.i;
    }
    case 12: {
      const [pa, fa] = regexParts(a);
      const [pb, fb] = regexParts(b);
      return cmp(pa, pb) || cmp(fa, fb);
    }
    case 14:
      return cmp((a as Code).code, (b as Code).code);
  }
  return 0;
}

export function binaryBytes(b: Binary): Uint8Array {
  return b.buffer.subarray(0, b.position);
}

function regexParts(v: unknown): [string, string] {
  if (v instanceof RegExp) return [v.source, v.flags];
  const r = v as BSONRegExp;
  return [r.pattern, r.options];
}

// ---------------------------------------------------------------------------------------------
// Canonical keys: equal strings <=> equal values. `exact` distinguishes numeric types
// (MongoDB's binary equality, used for no-op detection); otherwise 1, 1.0 and 1L share a key
// (MongoDB's index equality, used for _id lookups and unique indexes).

function numericKey(v: unknown): string {
  const t = bsonTypeName(v);
  if (t === 'Long') return BigInt((v as Long).toString()).toString();
  if (t === 'Decimal128') {
    const s = (v as Decimal128).toString();
    const n = Number(s);
    if (Number.isNaN(n)) return 'NaN';
    return Number.isInteger(n) && Number.isFinite(n) ? BigInt(n).toString() : String(n);
  }
  const n = toNumber(v);
  if (Number.isNaN(n)) return 'NaN';
  if (Number.isInteger(n) && Number.isFinite(n)) return BigInt(n).toString();
  return String(n);
}

export function canonicalKey(v: unknown, exact = false): string {
  if (v === undefined || v === null) return 'N';
  switch (typeof v) {
    case 'string':
      return 's' + JSON.stringify(v);
    case 'boolean':
      return v ? 'b1' : 'b0';
    case 'number':
    case 'bigint':
      return (exact ? 'js' : 'n') + numericKey(v);
  }
  if (Array.isArray(v)) return '[' + v.map((x) => canonicalKey(x, exact)).join(',') + ']';
  if (v instanceof Date) return 'd' + v.getTime();
  if (v instanceof RegExp) return 'r' + JSON.stringify([v.source, v.flags]);
  const t = bsonTypeName(v);
  switch (t) {
    case 'Int32':
    case 'Double':
    case 'Long':
    case 'Decimal128':
      return (exact ? t : 'n') + numericKey(v);
    case 'ObjectId':
      return 'o' + (v as ObjectId).toHexString();
    case 'Binary':
      return 'x' + (v as Binary).sub_type + ':' + Buffer.from(binaryBytes(v as Binary)).toString('base64');
    case 'Timestamp':
      return 't' + (v as Timestamp).toString();
    case 'BSONRegExp':
      return 'r' + JSON.stringify(regexParts(v));
    case 'BSONSymbol':
      return (exact ? 'y' : 's') + JSON.stringify((v as BSONSymbol).toString());
    case 'MinKey':
      return 'm';
    case 'MaxKey':
      return 'M';
    case 'Code':
      return 'c' + JSON.stringify((v as Code).code) + canonicalKey((v as Code).scope ?? null, exact);
  }
  return '{' + entriesOf(v).map(([k, x]) => JSON.stringify(k) + ':' + canonicalKey(x, exact)).join(',') + '}';
}

export function valuesEqual(a: unknown, b: unknown): boolean {
  return compareValues(a, b) === 0 && canonicalKey(a) === canonicalKey(b);
}

export function valuesIdentical(a: unknown, b: unknown): boolean {
  return canonicalKey(a, true) === canonicalKey(b, true);
}

// ---------------------------------------------------------------------------------------------
// Deep copy (structural: BSON value objects are immutable and shared, containers are copied).

export function deepCopy<T>(v: T): T {
  if (Array.isArray(v)) return v.map(deepCopy) as T;
  if (isPlainObject(v)) {
    const out: Doc = {};
    for (const [k, x] of Object.entries(v)) out[k] = deepCopy(x);
    return out as T;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Paths

/** Value at a dotted path without array traversal except numeric components; undefined if absent. */
export function getPath(doc: unknown, path: string | string[]): unknown {
  const parts = typeof path === 'string' ? path.split('.') : path;
  let cur: unknown = doc;
  for (const p of parts) {
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(p)) return undefined;
      cur = cur[Number(p)];
    } else if (isPlainObject(cur)) {
      cur = Object.prototype.hasOwnProperty.call(cur, p) ? cur[p] : undefined;
    } else {
      return undefined;
    }
  }
  return cur;
}

/**
 * All values reachable at a dotted path with MongoDB's implicit array traversal (arrays at
 * intermediate steps fan out; a terminal array is returned as-is). Missing paths yield nothing.
 */
export function pathValues(doc: unknown, parts: string[], out: unknown[] = []): unknown[] {
  if (parts.length === 0) {
    if (doc !== undefined) out.push(doc);
    return out;
  }
  const [head, ...rest] = parts;
  if (Array.isArray(doc)) {
    if (/^\d+$/.test(head)) pathValues(doc[Number(head)], rest, out);
    for (const el of doc) if (isPlainObject(el)) pathValues(el[head], rest, out);
    return out;
  }
  if (isPlainObject(doc) && Object.prototype.hasOwnProperty.call(doc, head)) pathValues(doc[head], rest, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Mingo bridge. mingo works on JS values: numbers must be JS numbers and regexes RegExp. A "view"
// is a converted copy used only for matching/aggregation; `restoreFromView` maps results back,
// reusing the original typed sub-objects wherever the pipeline passed them through unchanged.

export interface ViewContext {
  readonly originals: WeakMap<object, unknown>;
}

export function newViewContext(): ViewContext {
  return { originals: new WeakMap() };
}

export function toRegExp(r: BSONRegExp): RegExp {
  const flags = r.options.replace(/[^imsu]/g, '');
  // Extended mode ('x'): drop unescaped whitespace and #-comments, which JS regexes lack.
  const pattern = r.options.includes('x') ? r.pattern.replace(/(\\.)|\s+|#[^\n]*/g, (m, escaped: string | undefined) => escaped ?? '') : r.pattern;
  return new RegExp(pattern, flags);
}

export function toView(v: unknown, ctx?: ViewContext): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const out = v.map((x) => toView(x, ctx));
    ctx?.originals.set(out, v);
    return out;
  }
  if (isPlainObject(v)) {
    const out: Doc = {};
    for (const [k, x] of Object.entries(v)) out[k] = toView(x, ctx);
    ctx?.originals.set(out, v);
    return out;
  }
  switch (bsonTypeName(v)) {
    case 'Int32':
    case 'Double':
    case 'Long':
    case 'Decimal128':
      return toNumber(v);
    case 'BSONRegExp':
      return toRegExp(v as BSONRegExp);
    case 'BSONSymbol':
      return (v as BSONSymbol).toString();
  }
  return v;
}

export function restoreFromView(v: unknown, ctx?: ViewContext): unknown {
  if (v === null || v === undefined) return v;
  if (typeof v === 'number') {
    return Number.isInteger(v) && v >= -2147483648 && v <= 2147483647 && !Object.is(v, -0) ? new Int32(v) : new Double(v);
  }
  if (typeof v === 'bigint') return Long.fromBigInt(v);
  if (typeof v !== 'object') return v;
  const orig = ctx?.originals.get(v);
  if (orig !== undefined) return orig;
  if (v instanceof RegExp) return new BSONRegExp(v.source, v.flags);
  if (Array.isArray(v)) return v.map((x) => restoreFromView(x, ctx));
  if (isPlainObject(v)) {
    const out: Doc = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = restoreFromView(x, ctx);
    return out;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Formatting values like the server's error messages ("dup key: { a: 1, b: \"x\" }").

export function formatValue(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return v.length ? '[ ' + v.map(formatValue).join(', ') + ' ]' : '[]';
  if (v instanceof Date) return `new Date(${v.getTime()})`;
  switch (bsonTypeName(v)) {
    case 'Int32':
      return String(toNumber(v));
    case 'Double': {
      const n = toNumber(v);
      return Number.isInteger(n) ? n.toFixed(1) : String(n);
    }
    case 'Long':
      return (v as Long).toString();
    case 'Decimal128':
      return `${(v as Decimal128).toString()}`;
    case 'ObjectId':
      return `ObjectId('${(v as ObjectId).toHexString()}')`;
    case 'Timestamp':
      return `Timestamp(${(v as Timestamp).t}, ${(v as Timestamp).i})`;
    case 'Binary':
      return `BinData(${(v as Binary).sub_type}, ${Buffer.from(binaryBytes(v as Binary)).toString('hex').toUpperCase()})`;
    case 'BSONRegExp':
      return `/${(v as BSONRegExp).pattern}/${(v as BSONRegExp).options}`;
    case 'MinKey':
      return 'MinKey';
    case 'MaxKey':
      return 'MaxKey';
  }
  if (isPlainObject(v)) {
    const parts = Object.entries(v).map(([k, x]) => `${k}: ${formatValue(x)}`);
    return parts.length ? `{ ${parts.join(', ')} }` : '{}';
  }
  return String(v);
}

export { Binary, BSONRegExp, Code, Decimal128, Double, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp };
