/**
 * BSON value helpers of the change envelope: the read options that keep every BSON type exact,
 * the envelope's format error, and checks of values read with `promoteValues: false` (numbers may
 * arrive as Int32/Double/Long wrappers).
 */
// BSON classes come from 'mongodb' (its CommonJS copy of bson), not from the ESM 'bson' entry:
// those are two module instances, so values would serialise fine but fail `instanceof` against
// what the driver returns. Use the same import everywhere in the project.
import type { BSON, Document, Timestamp } from 'mongodb';

/**
 * BSON options that preserve every value type when reading (change stream, find) or decoding.
 * Pass them to `watch()` in capture: `coll.watch(pipeline, { ...EXACT_BSON_OPTIONS, … })`.
 */
export const EXACT_BSON_OPTIONS = {
  promoteValues: false,
  promoteLongs: false,
  promoteBuffers: false,
  bsonRegExp: true,
  useBigInt64: false,
} as const satisfies BSON.DeserializeOptions;

export class EnvelopeFormatError extends Error {
  override name = 'EnvelopeFormatError';
}

/** A number from a JS number, Int32, Double or Long (as read with `promoteValues: false`). */
export function toNumber(value: unknown, what = 'value'): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value !== null && typeof value === 'object') {
    const v = value as { _bsontype?: string; valueOf(): unknown; toNumber?: () => number };
    if (v._bsontype === 'Int32' || v._bsontype === 'Double') return Number(v.valueOf());
    if (v._bsontype === 'Long' && typeof v.toNumber === 'function') return v.toNumber();
  }
  throw new EnvelopeFormatError(`${what} is not a number`);
}

export function isTimestamp(value: unknown): value is Timestamp {
  return (
    value !== null &&
    typeof value === 'object' &&
    (value as { _bsontype?: string })._bsontype === 'Timestamp'
  );
}

export function isPlainDocument(value: unknown): value is Document {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    (value as { _bsontype?: string })._bsontype === undefined &&
    !(value instanceof Date) &&
    !(value instanceof Uint8Array)
  );
}

export function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new EnvelopeFormatError(`${what} must be a string`);
  return value;
}
