import { Binary, Decimal128, Double, Int32, Long, MaxKey, MinKey, ObjectId, Timestamp, BSONRegExp, BSONSymbol, Code } from 'mongodb';

/**
 * MongoDB's comparison order of BSON values (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/),
 * for values decoded with `promoteValues: false`. Verification merge-joins two `_id`-sorted cursors,
 * so it must order `_id`s exactly as the servers do.
 */
export function typeRank(v: unknown): number {
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

/**
 * A number as the server compares it: exactly, across types (Int32, Long, Double, Decimal128 are
 * one type class and compare by value: https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/#numeric-types).
 * Finite values become an exact fraction `num / den` (BigInts; den a power of 2 or 10), so a Long
 * beyond 2^53 or a 34-digit Decimal128 is not rounded to a double first. NaN sorts below every
 * other number (the server's order for NaN in sorts); -0 equals 0.
 */
type ExactNumber = { kind: 'nan' } | { kind: 'inf'; sign: 1 | -1 } | { kind: 'finite'; num: bigint; den: bigint };

const FLOAT = new DataView(new ArrayBuffer(8));

function exactDouble(x: number): ExactNumber {
  if (Number.isNaN(x)) return { kind: 'nan' };
  if (!Number.isFinite(x)) return { kind: 'inf', sign: x > 0 ? 1 : -1 };
  if (Number.isInteger(x)) return { kind: 'finite', num: BigInt(x), den: 1n };
  // x = mantissa * 2^exp exactly (IEEE 754 binary64).
  FLOAT.setFloat64(0, x);
  const bits = FLOAT.getBigUint64(0);
  const sign = bits >> 63n ? -1n : 1n;
  const e = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & 0xfffffffffffffn;
  const mantissa = e === 0 ? frac : frac | (1n << 52n);
  const exp = (e === 0 ? 1 : e) - 1075; // non-integers have exp < 0
  return { kind: 'finite', num: sign * mantissa, den: 1n << BigInt(-exp) };
}

function exactDecimal(text: string): ExactNumber {
  if (/^-?NaN$/i.test(text)) return { kind: 'nan' };
  if (/^-?Inf(inity)?$/i.test(text)) return { kind: 'inf', sign: text.startsWith('-') ? -1 : 1 };
  const m = /^([+-])?(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return { kind: 'nan' };
  const digits = BigInt(`${m[2]}${m[3] ?? ''}`) * (m[1] === '-' ? -1n : 1n);
  const exp = Number(m[4] ?? 0) - (m[3]?.length ?? 0);
  return exp >= 0 ? { kind: 'finite', num: digits * 10n ** BigInt(exp), den: 1n } : { kind: 'finite', num: digits, den: 10n ** BigInt(-exp) };
}

function exactNumber(v: unknown): ExactNumber {
  if (typeof v === 'number') return exactDouble(v);
  if (typeof v === 'bigint') return { kind: 'finite', num: v, den: 1n };
  if (v instanceof Long) return { kind: 'finite', num: BigInt(v.toString()), den: 1n };
  if (v instanceof Int32 || v instanceof Double) return exactDouble(v.valueOf());
  if (v instanceof Decimal128) return exactDecimal(v.toString());
  return { kind: 'nan' };
}

function compareNumbers(a: unknown, b: unknown): number {
  const x = exactNumber(a);
  const y = exactNumber(b);
  const rank = (n: ExactNumber) => (n.kind === 'nan' ? 0 : n.kind === 'inf' ? (n.sign < 0 ? 1 : 3) : 2);
  if (rank(x) !== rank(y)) return rank(x) - rank(y);
  if (x.kind !== 'finite' || y.kind !== 'finite') return 0;
  const l = x.num * y.den;
  const r = y.num * x.den;
  return l < r ? -1 : l > r ? 1 : 0;
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
    case 3:
      return compareNumbers(a, b);
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
