import { Binary, Decimal128, Double, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp, BSONRegExp, BSONSymbol, Code } from 'mongodb';

/**
 * MongoDB's comparison order of BSON values (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/),
 * for values decoded with `promoteValues: false`. Verification merge-joins two `_id`-sorted cursors,
 * so it must order `_id`s exactly as the servers do.
 */
function typeRank(v: unknown): number {
  if (v instanceof MinKey) return 1;
  if (v === undefined || v === null) return 2;
  // Timestamp extends Long in the bson library: test it before the numeric types.
  if (v instanceof Timestamp) return 11;
  if (typeof v === 'number' || typeof v === 'bigint' || v instanceof Int32 || v instanceof Long || v instanceof Double || v instanceof Decimal128) return 3;
  if (typeof v === 'string' || v instanceof BSONSymbol) return 4;
  if (Array.isArray(v)) return 6;
  if (v instanceof Binary) return 7;
  if (v instanceof ObjectId) return 8;
  if (typeof v === 'boolean') return 9;
  if (v instanceof Date) return 10;
  if (v instanceof BSONRegExp || v instanceof RegExp) return 12;
  if (v instanceof Code) return 13;
  if (v instanceof MaxKey) return 100;
  return 5; // embedded document
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Long) return v.toNumber();
  if (v instanceof Int32 || v instanceof Double) return v.valueOf();
  if (v instanceof Decimal128) return Number(v.toString());
  return NaN;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

const utf8 = new TextEncoder();

export function compareBson(a: unknown, b: unknown): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 3: {
      const x = toNumber(a);
      const y = toNumber(b);
      if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) ? (Number.isNaN(y) ? 0 : -1) : 1;
      if (x === y && a instanceof Long && b instanceof Long) return a.compare(b);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    case 4:
      return compareBytes(utf8.encode(String(a)), utf8.encode(String(b)));
    case 5:
    case 6:
      return compareObjects(a as Record<string, unknown>, b as Record<string, unknown>);
    case 7: {
      const x = a as Binary;
      const y = b as Binary;
      if (x.length() !== y.length()) return x.length() - y.length();
      if (x.sub_type !== y.sub_type) return x.sub_type - y.sub_type;
      return compareBytes(x.buffer, y.buffer);
    }
    case 8:
      return compareBytes((a as ObjectId).id, (b as ObjectId).id);
    case 9:
      return Number(a) - Number(b);
    case 10:
      return (a as Date).getTime() - (b as Date).getTime();
    case 11:
      return (a as Timestamp).compare(b as Timestamp);
    case 12: {
      const x = a as BSONRegExp;
      const y = b as BSONRegExp;
      return x.pattern === y.pattern ? (x.options < y.options ? -1 : x.options > y.options ? 1 : 0) : x.pattern < y.pattern ? -1 : 1;
    }
    default:
      return 0;
  }
}

function compareObjects(a: Record<string, unknown>, b: Record<string, unknown>): number {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
    const va = a[ka[i]!];
    const vb = b[kb[i]!];
    const t = typeRank(va) - typeRank(vb);
    if (t !== 0) return t;
    if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    const c = compareBson(va, vb);
    if (c !== 0) return c;
  }
  return ka.length - kb.length;
}
