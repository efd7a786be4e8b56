// Change-stream positions for tests: a clusterTime and a resume token whose `_data` starts with that
// clusterTime the way MongoDB's KeyString tokens do ('82', t and i as 8 hex digits each), so product
// code that orders positions by `_data` or reads the clusterTime back from a token sees them as a
// server would produce them.
import { Timestamp } from 'mongodb';

const hex8 = (x: number) => x.toString(16).toUpperCase().padStart(8, '0');

export interface StreamPosition {
  ct: Timestamp;
  rt: { _data: string };
}

/** The position at clusterTime (t, i). */
export function streamPosition(t: number, i = 1): StreamPosition {
  return { ct: new Timestamp({ t, i }), rt: { _data: `82${hex8(t)}${hex8(i)}04` } };
}

/** Increasing stream positions (four per second of clusterTime), with the event's wall time. */
export class Clock {
  constructor(private n = 1_000_000) {}
  next(): StreamPosition & { wt: Date } {
    this.n++;
    const t = Math.floor(this.n / 4);
    return { ...streamPosition(t, (this.n % 4) + 1), wt: new Date(t * 1000) };
  }
}
