/**
 * A first-in first-out queue with O(1) amortised `shift`: an array and a head index; the consumed
 * prefix is cut off once it is both long and most of the array (so memory stays proportional to
 * what is queued). The producer keeps its pending sends, its durability entries, its broadcast
 * entries and each shard's items in one of these.
 */
export class FifoQueue<T> implements Iterable<T> {
  private items: T[] = [];
  private head = 0;

  /** `compactAfter`: how many consumed slots may pile up before the array is cut (tuning only). */
  constructor(private readonly compactAfter = 1024) {}

  get length(): number {
    return this.items.length - this.head;
  }

  isEmpty(): boolean {
    return this.head === this.items.length;
  }

  /** The oldest element (the next `shift`), undefined when empty. */
  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  /** The `i`-th element from the front (0 = `peek()`), undefined out of range. */
  at(i: number): T | undefined {
    return i >= 0 && i < this.length ? this.items[this.head + i] : undefined;
  }

  /** The newest element, undefined when empty. */
  last(): T | undefined {
    return this.isEmpty() ? undefined : this.items[this.items.length - 1];
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.isEmpty()) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined as T; // no reference kept to a consumed element
    this.head++;
    this.compact();
    return item;
  }

  /** Puts `items` (in their order) before everything queued. */
  unshiftAll(items: readonly T[]): void {
    if (items.length === 0) return;
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }

  /** Removes and returns everything queued, oldest first. */
  clear(): T[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i];
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > this.compactAfter && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
