/**
 * The producer's durability ledger: which sends are admitted, which are durable, and what waits.
 *
 *  - Admission (backpressure): a send is admitted while the payload bytes admitted and not yet
 *    durable fit `maxBufferedBytes` (an oversized payload alone into an empty buffer); otherwise it
 *    waits in a FIFO — a send never overtakes an earlier one waiting for buffer space.
 *  - One entry per admitted send, in send order, counting the copies not yet accepted by Kinesis
 *    (1, or one per shard for a broadcast).
 *  - The BROADCAST BARRIER: the seq of the oldest broadcast not yet accepted on every shard.
 *  - The durable tag, its listeners and the flush waiters.
 *
 * DURABILITY INVARIANT: an entry completes only when every copy of its payload was accepted by
 * Kinesis in a valid placement (the producer calls `complete` from its accept()), and entries are
 * popped strictly in send order, so the durable tag never runs ahead of an unacknowledged payload
 * (tags increase strictly with sends).
 */
import { FifoQueue } from './fifo-queue.js';

/** A payload's or broadcast's completion state, in send order. */
export interface TagEntry {
  seq: number;
  tag: number;
  /** Item copies not yet accepted (1, or one per shard for a broadcast). */
  remaining: number;
  bytes: number;
}

/** A send waiting for buffer space. */
export interface PendingSend {
  seq: number;
  tag: number;
  routingKey: string | undefined;
  payload: Uint8Array;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface FlushWaiter {
  seq: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class DurabilityLedger {
  private readonly entries = new FifoQueue<TagEntry>(4096);
  /** Broadcast entries in send order; the first incomplete one is the BROADCAST BARRIER. */
  private readonly broadcasts = new FifoQueue<TagEntry>();
  private readonly waiting = new FifoQueue<PendingSend>();
  private flushWaiters: FlushWaiter[] = [];
  private readonly listeners = new Set<(tag: number) => void>();
  private buffered = 0;
  private _maxBufferedSeen = 0;
  private _durableSeq = 0;
  private _durableTag: number | undefined;

  constructor(private readonly maxBufferedBytes: number) {}

  /** Payload bytes admitted and not yet durable. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  get maxBufferedBytesSeen(): number {
    return this._maxBufferedSeen;
  }

  /** Seq of the last send whose whole prefix is durable (0 before the first). */
  get durableSeq(): number {
    return this._durableSeq;
  }

  /** Highest tag T such that every payload with tag ≤ T was accepted; undefined before the first. */
  get durableTag(): number | undefined {
    return this._durableTag;
  }

  /** Someone waits: a flush, or a sender blocked on buffer space (then nothing lingers). */
  get urgent(): boolean {
    return this.flushWaiters.length > 0 || !this.waiting.isEmpty();
  }

  onDurable(listener: (tag: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** True if a send of `bytes` may be admitted right now (FIFO: nobody waits before it, and it fits). */
  mayAdmitNow(bytes: number): boolean {
    return this.waiting.isEmpty() && this.fits(bytes);
  }

  /** Queues a send that may not be admitted now. */
  wait(send: PendingSend): void {
    this.waiting.push(send);
  }

  /** The oldest waiting send if it fits now (removed from the queue), else undefined. */
  nextAdmissible(): PendingSend | undefined {
    const next = this.waiting.peek();
    if (next === undefined || !this.fits(next.payload.length)) return undefined;
    return this.waiting.shift();
  }

  /** Opens the entry of an admitted send (its `remaining` copies are counted by the caller). */
  open(seq: number, tag: number, bytes: number, broadcast: boolean): TagEntry {
    const entry: TagEntry = { seq, tag, remaining: 0, bytes };
    this.entries.push(entry);
    if (broadcast) this.broadcasts.push(entry);
    this.buffered += bytes;
    if (this.buffered > this._maxBufferedSeen) this._maxBufferedSeen = this.buffered;
    return entry;
  }

  /**
   * BROADCAST BARRIER: seq of the oldest broadcast not yet accepted on every shard (Infinity if
   * none). No item sent after it (higher seq) goes into any record until every copy is accepted.
   * So when a reshard makes a copy travel again (a merge where one parent already holds it), the
   * repeat still comes before every later payload of every key: at worst an adjacent duplicate.
   */
  get barrierSeq(): number {
    while (this.broadcasts.peek()?.remaining === 0) this.broadcasts.shift();
    return this.broadcasts.peek()?.seq ?? Infinity;
  }

  /** One copy of `entry` was accepted. True when the durable tag advanced (buffer space freed). */
  complete(entry: TagEntry): boolean {
    entry.remaining--;
    return entry.remaining === 0 && this.advance();
  }

  /** Resolves when every send up to `seq` is durable. */
  whenDurable(seq: number): Promise<void> {
    if (this._durableSeq >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => this.flushWaiters.push({ seq, resolve, reject }));
  }

  /** Rejects every waiting send and flush. */
  failAll(error: unknown): void {
    for (const w of this.waiting.clear()) w.reject(error);
    const flushes = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of flushes) w.reject(error);
  }

  /** Pops completed entries in send order; the durable tag is the last popped one's tag. */
  private advance(): boolean {
    let advanced = false;
    while (this.entries.peek()?.remaining === 0) {
      const e = this.entries.shift()!;
      this.buffered -= e.bytes;
      this._durableSeq = e.seq;
      this._durableTag = e.tag;
      advanced = true;
    }
    if (!advanced) return false;
    const tag = this._durableTag!;
    for (const l of this.listeners) {
      try {
        l(tag);
      } catch {
        // a listener's failure must not break the producer
      }
    }
    if (this.flushWaiters.length > 0) {
      const still: FlushWaiter[] = [];
      for (const w of this.flushWaiters) {
        if (w.seq <= this._durableSeq) w.resolve();
        else still.push(w);
      }
      this.flushWaiters = still;
    }
    return true;
  }

  /** A payload fits if the buffer has room; an oversized one is admitted alone into an empty buffer. */
  private fits(bytes: number): boolean {
    return this.buffered === 0 || this.buffered + bytes <= this.maxBufferedBytes;
  }
}
