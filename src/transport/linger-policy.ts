/**
 * Adaptive linger of one producer lane (one shard): how long the lane's oldest pending payload may
 * wait for more payloads to aggregate before a record that is not full goes out.
 *
 * Kinesis accepts at most 1,000 records/s and 1 MiB/s per shard (writes, "Kinesis Data Streams
 * quotas and limits": https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html);
 * beyond that PutRecords answers ProvisionedThroughputExceededException. Bytes are bounded by the
 * record size; records per second are bounded here, with a token bucket per lane:
 *
 * - tokens refill at `recordsPerSecond` (the per-shard budget, default 50 = 5% of the limit) up
 *   to `burst`; every record the lane sends takes one (full records and flushes too, which may
 *   drive the bucket negative, down to one second of debt);
 * - a record that is not full may go once its oldest payload waited `floorMs` AND a token is
 *   there: while the lane's record rate is well under the budget the linger is the floor (low
 *   latency at low rates); as the rate approaches the budget the linger grows to the time the
 *   next token takes, never beyond `maxMs` (latency stays bounded even after bursts of full
 *   records or flushes);
 * - a lane may ride along in another lane's PutRecords call only with a token in hand.
 * So linger-driven records of a lane stay ≤ `recordsPerSecond` (+ `burst`) in any second; records
 * sent early because they are full carry ≥ one record's worth of bytes each (bounded by the byte
 * limit), and flushes are rare (close, checkpoints on demand).
 *
 * Pure: the caller passes `now` (performance.now() milliseconds).
 */

export interface LingerPolicyOptions {
  /** Minimum wait of the oldest payload of a record that is not full (default 5 ms). */
  floorMs?: number;
  /** Maximum wait, whatever the record rate (default 250 ms). */
  maxMs?: number;
  /** Record budget per second per shard (default 50; Kinesis' limit is 1,000). */
  recordsPerSecond?: number;
  /** Records the lane may send back to back after a quiet period (default: a tenth of a second's budget, ≥ 1). */
  burst?: number;
}

export const DEFAULT_LINGER_FLOOR_MS = 5;
export const DEFAULT_LINGER_MAX_MS = 250;
export const DEFAULT_RECORDS_PER_SHARD_SECOND = 50;

export interface ResolvedLingerOptions {
  floorMs: number;
  maxMs: number;
  recordsPerSecond: number;
  burst: number;
}

export function resolveLingerOptions(o: LingerPolicyOptions = {}): ResolvedLingerOptions {
  const floorMs = Math.max(0, o.floorMs ?? DEFAULT_LINGER_FLOOR_MS);
  const maxMs = Math.max(floorMs, o.maxMs ?? DEFAULT_LINGER_MAX_MS);
  const recordsPerSecond = o.recordsPerSecond ?? DEFAULT_RECORDS_PER_SHARD_SECOND;
  if (!(recordsPerSecond > 0)) throw new RangeError(`recordsPerSecond must be > 0, got ${recordsPerSecond}`);
  const burst = Math.max(1, o.burst ?? Math.ceil(recordsPerSecond / 10));
  return { floorMs, maxMs, recordsPerSecond, burst };
}

export class LingerPolicy {
  private tokens: number;
  private at: number;

  constructor(
    private readonly o: ResolvedLingerOptions,
    now: number,
  ) {
    this.tokens = o.burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.o.burst, this.tokens + ((now - this.at) / 1000) * this.o.recordsPerSecond);
      this.at = now;
    }
  }

  /** Tokens in the bucket at `now` (may be negative after full records or flushes). */
  tokensAt(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  /** The lane sent a record (of any kind) at `now`. */
  noteRecord(now: number): void {
    this.refill(now);
    // At most one second of debt: a burst of full records delays later ones, not forever.
    this.tokens = Math.max(-this.o.recordsPerSecond, this.tokens - 1);
  }

  /** Current linger: how long a payload arriving in an empty lane at `now` would wait. */
  lingerMs(now: number): number {
    return this.readyAt(now, now) - now;
  }

  /** When a record that is not full, whose oldest payload arrived at `oldestAt`, may go. */
  readyAt(oldestAt: number, now: number): number {
    const tokens = this.tokensAt(now);
    const tokenAt = tokens >= 1 ? now : now + ((1 - tokens) / this.o.recordsPerSecond) * 1000;
    const wait = Math.min(this.o.maxMs, Math.max(this.o.floorMs, tokenAt - oldestAt));
    return oldestAt + wait;
  }

  /** May the lane ride along in another lane's call now (it has a token)? */
  mayRideAlong(now: number): boolean {
    return this.tokensAt(now) >= 1;
  }
}
