/**
 * Positions in the change stream: (clusterTime, resume token), their total order, and the string
 * form that keeps that order in the database.
 */
import { BSON, Timestamp, type Document } from 'mongodb';

/** Where an event sits in the change stream: (clusterTime, resume token). */
export interface EventPosition {
  ct: Timestamp;
  rt: Document;
}

/**
 * The clusterTime encoded at the front of a MongoDB resume token (`_data` hex KeyString starts
 * with type byte 0x82 followed by the 8-byte timestamp, big-endian: seconds then increment).
 * Used for `postBatchResumeToken`s, which come without a clusterTime. `undefined` for tokens of
 * another shape (e.g. other engines).
 */
export function clusterTimeFromResumeToken(token: Document | undefined): Timestamp | undefined {
  const data: unknown = token?._data;
  if (typeof data !== 'string' || data.length < 18 || !/^82[0-9a-fA-F]{16}/.test(data)) {
    return undefined;
  }
  const t = Number.parseInt(data.slice(2, 10), 16);
  const i = Number.parseInt(data.slice(10, 18), 16);
  return new Timestamp({ t, i });
}

export function positionOf(e: { ct: Timestamp; rt: Document }): EventPosition {
  return { ct: e.ct, rt: e.rt };
}

function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1;
  if (a.i !== b.i) return a.i < b.i ? -1 : 1;
  return 0;
}

function tokenData(rt: Document): string | undefined {
  return typeof rt._data === 'string' ? rt._data : undefined;
}

function tokenHex(rt: Document): string {
  return Buffer.from(BSON.serialize(rt)).toString('hex');
}

/**
 * Total order of stream positions: clusterTime first, then the resume token's `_data` (MongoDB's
 * hex KeyString, ordered like the stream for events sharing a clusterTime, e.g. one transaction).
 * Tokens without a string `_data` compare by their BSON bytes: deterministic, but not meaningful
 * for order; see {@link isAtOrBefore} for the conservative use in de-duplication.
 */
export function compareEventPosition(a: EventPosition, b: EventPosition): number {
  const byTime = compareTimestamps(a.ct, b.ct);
  if (byTime !== 0) return byTime;
  const da = tokenData(a.rt);
  const db = tokenData(b.rt);
  if (da !== undefined && db !== undefined) return da < db ? -1 : da > db ? 1 : 0;
  const ha = tokenHex(a.rt);
  const hb = tokenHex(b.rt);
  return ha < hb ? -1 : ha > hb ? 1 : 0;
}

/**
 * True when `p` is certainly at or before `last` in the stream (used to skip re-sent events).
 * When both share a clusterTime but their tokens cannot be ordered (no `_data`), only identical
 * tokens count as "at": skipping a distinct event could lose it, re-applying one is harmless.
 */
export function isAtOrBefore(p: EventPosition, last: EventPosition): boolean {
  const byTime = compareTimestamps(p.ct, last.ct);
  if (byTime !== 0) return byTime < 0;
  const dp = tokenData(p.rt);
  const dl = tokenData(last.rt);
  if (dp !== undefined && dl !== undefined) return dp <= dl;
  return tokenHex(p.rt) === tokenHex(last.rt);
}

/**
 * A string whose lexicographic order follows the stream order, for storing positions and
 * guarding writes in the database (`$lt`/`$gt` on strings work everywhere): 16 hex digits of
 * clusterTime (t then i), `/`, then the token's `_data` (empty when it has none, so positions
 * in one clusterTime without `_data` compare equal: a guard then keeps the earlier one).
 */
export function positionKey(p: EventPosition): string {
  const hex8 = (n: number) => n.toString(16).padStart(8, '0');
  return `${hex8(p.ct.t)}${hex8(p.ct.i)}/${tokenData(p.rt) ?? ''}`;
}
