// The cluster clock and the bounded change history (the emulator's oplog).
//
// Invariants:
// - every write gets its own cluster Timestamp from `ClusterClock.next()`: t = wall seconds
//   (never going backwards), i increments within a second; `current()` is the latest time handed
//   out (writes and idle ticks), which is what replies report as `operationTime`/`$clusterTime`;
// - history entries are appended in clock order, so their resume tokens (fixed-width hex of
//   t, i, txn op index, kind) sort lexicographically in event order;
// - once an entry is dropped for exceeding `limit`, `lostThrough` holds its token: resuming from
//   any position before it fails with ChangeStreamHistoryLost.
import { Timestamp, type Binary } from 'bson';
import type { Doc } from './bson-values.js';

export interface ChangeEntry extends Doc {
  token: string;
  ts: Timestamp;
  wall: Date;
  op: string;
  db: string;
  coll?: string;
  uuid?: Binary;
  documentKey?: Doc;
  /** insert/replace: the new document; update: the post-image. */
  fullDocument?: Doc;
  /** update/replace/delete: the pre-image. */
  preImage?: Doc;
  updateDescription?: Doc;
  to?: Doc;
  operationDescription?: Doc;
  /** Pre- and post-images were recorded (changeStreamPreAndPostImages enabled at write time). */
  images?: boolean;
}

const hex8 = (n: number): string => n.toString(16).toUpperCase().padStart(8, '0');

export const TokenKind = { event: '00', invalidate: '01', highWaterMark: 'FF' } as const;

export function makeToken(ts: Timestamp, kind: string = TokenKind.event, txnOpIndex = 0): string {
  const opIndex = kind === TokenKind.highWaterMark ? 'FFFFFFFF' : hex8(txnOpIndex);
  return `82${hex8(ts.t)}${hex8(ts.i)}${opIndex}${kind}`;
}

/** A position before every entry at or after `ts` (startAtOperationTime semantics). */
export function positionBefore(ts: Timestamp): string {
  return `82${hex8(ts.t)}${hex8(ts.i)}`;
}

const TOKEN_RE = /^82[0-9A-F]{8}[0-9A-F]{8}[0-9A-F]{8}(00|01|FF)$/;

/**
 * `opIndex` is 0 for an event's own token; the tokens of the fragments of a split event
 * (`$changeStreamSplitLargeEvent`) carry the fragment number there (1…of), so they sort after the
 * event and before the next one.
 */
export function parseToken(data: unknown): { data: string; ts: Timestamp; kind: string; opIndex: number } | undefined {
  if (typeof data !== 'string' || !TOKEN_RE.test(data)) return undefined;
  const t = parseInt(data.slice(2, 10), 16);
  const i = parseInt(data.slice(10, 18), 16);
  return { data, ts: new Timestamp({ t, i }), kind: data.slice(26, 28), opIndex: parseInt(data.slice(18, 26), 16) };
}

export class ClusterClock {
  private t = 0;
  private i = 0;

  next(): Timestamp {
    const now = Math.floor(Date.now() / 1000);
    if (now > this.t) {
      this.t = now;
      this.i = 1;
    } else {
      this.i += 1;
    }
    return new Timestamp({ t: this.t, i: this.i });
  }

  current(): Timestamp {
    return new Timestamp({ t: this.t, i: this.i });
  }

  /** Like the server's periodic no-op writer: lets idle cluster time follow the wall clock. */
  tickIdle(): void {
    const now = Math.floor(Date.now() / 1000);
    if (now > this.t) {
      this.t = now;
      this.i = 0;
    }
  }

  /** Never hand out a time at or before `ts` (used when replaying persisted history). */
  observe(ts: Timestamp): void {
    if (ts.t > this.t || (ts.t === this.t && ts.i > this.i)) {
      this.t = ts.t;
      this.i = ts.i;
    }
  }
}

export class ChangeHistory {
  private entries: ChangeEntry[] = [];
  private head = 0;
  private waiters = new Set<() => void>();
  /** Token of the newest entry dropped from the history, if any was. */
  lostThrough: string | undefined;

  constructor(readonly limit: number) {}

  append(entry: ChangeEntry): void {
    this.entries.push(entry);
    while (this.entries.length - this.head > this.limit) {
      this.lostThrough = this.entries[this.head].token;
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  /** True when events after `position` may have been dropped. */
  isLost(position: string): boolean {
    return this.lostThrough !== undefined && position < this.lostThrough;
  }

  /** Index (into `at`) of the first retained entry whose token sorts after `position`. */
  firstAfter(position: string): number {
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid].token <= position) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  at(index: number): ChangeEntry | undefined {
    return index >= this.head ? this.entries[index] : undefined;
  }

  get end(): number {
    return this.entries.length;
  }

  retained(): ChangeEntry[] {
    return this.entries.slice(this.head);
  }

  /** Resolves on the next append, after `timeoutMs`, or when `cancel` is triggered, whichever is first. */
  waitForAppend(timeoutMs: number, cancel?: { onCancel?: () => void }): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      this.waiters.add(done);
      if (cancel) cancel.onCancel = done;
    });
  }

  wakeAll(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }
}
