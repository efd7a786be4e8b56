/**
 * Holds this process's leases: apply's shard leases (state store `shards` collection) or capture's
 * single lease (`capture_leases`, scope 'capture', one active capture per migration).
 *
 * - `tryAcquire(shardId)`: takes the shard's lease if it is free, expired (+ grace) or not yet
 *   ours; a lease already held is kept as is (re-acquiring would bump the epoch and invalidate the
 *   lease value the shard's checkpoints are written with). Honours `maxShards`.
 * - A background timer renews every held lease every ttl/3. A renewal that returns null means the
 *   lease is LOST (another owner took it, or it expired): `onLost(shardId)` is called at once and
 *   the lease is forgotten.
 * - `waitWritable(shardId)` is the WRITE FENCE: it resolves only while the lease has more than
 *   `marginMs` (default ttl/3) left on our clock, waits (and triggers renewals) while less is left,
 *   and throws {@link LeaseLostError} once the lease is lost or expired. Every target write of a
 *   shard passes it (see fenced-target.ts).
 *
 * Why this is enough: another process can only take the shard once `expiresAt + grace` has passed
 * on its clock (StateStore.acquireLease). A write starts only while ≥ marginMs remain, so it has
 * marginMs + grace to complete before a new owner can start; the residual risk (a process frozen
 * between the fence and its write, or a write slower than that) is the one the store documents.
 */
import { isTransientError } from '../db/transient-errors.js';
import type { LeaseScope, LeaseStateStore, ShardLease } from './store.js';
import { leaseRemainingMs } from './store.js';

export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(readonly shardId: string, reason: string) {
    super(`lease of shard ${shardId} lost: ${reason}`);
  }
}

export interface LeaseKeeperLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface LeaseKeeperOptions {
  store: LeaseStateStore;
  migrationId: string;
  /** Unique per process incarnation. */
  owner: string;
  /** Which leases: apply's per-shard ones (default) or capture's. */
  scope?: LeaseScope;
  ttlMs: number;
  /** Passed to acquireLease (default: the store's, 1 s). */
  graceMs?: number;
  /** At most this many leases at once (default: no cap). */
  maxShards?: number;
  /** Writes are fenced when less than this is left on the lease (default ttl/3). */
  marginMs?: number;
  /** Renewal period (default ttl/3). */
  renewEveryMs?: number;
  /** Called once per lost lease (renewal refused, or expired before a renewal got through). */
  onLost?: (shardId: string, reason: string) => void;
  logger?: LeaseKeeperLogger;
  /** Injected in tests. */
  now?: () => Date;
}

interface Held {
  lease: ShardLease;
  /** Set while a renewal of this lease is running. */
  renewing?: Promise<void>;
}

export class LeaseKeeper {
  private readonly options: LeaseKeeperOptions;
  private readonly held = new Map<string, Held>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => Date;
  readonly marginMs: number;
  private readonly waiters = new Set<() => void>();

  constructor(options: LeaseKeeperOptions) {
    if (!(options.ttlMs > 0)) throw new Error(`lease ttl must be positive (got ${options.ttlMs})`);
    this.options = options;
    this.now = options.now ?? (() => new Date());
    this.marginMs = options.marginMs ?? Math.floor(options.ttlMs / 3);
  }

  get owner(): string {
    return this.options.owner;
  }

  /** Starts the background renewals. */
  start(): void {
    if (this.timer) return;
    const every = this.options.renewEveryMs ?? Math.max(50, Math.floor(this.options.ttlMs / 3));
    this.timer = setInterval(() => void this.renewAll(), every);
    this.timer.unref?.();
  }

  /** Stops the renewals (leases are kept until they expire unless released). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.wakeWaiters();
  }

  /** Shard ids whose lease we hold. */
  heldShards(): string[] {
    return [...this.held.keys()].sort();
  }

  lease(shardId: string): ShardLease | undefined {
    return this.held.get(shardId)?.lease;
  }

  /** True while we hold the shard's lease and it has not expired on our clock. */
  holds(shardId: string): boolean {
    const h = this.held.get(shardId);
    return h !== undefined && leaseRemainingMs(h.lease, this.now()) > 0;
  }

  /**
   * Holds the shard's lease afterwards (true) or not (false: another live owner, or the cap).
   * Never re-acquires a lease we hold.
   */
  async tryAcquire(shardId: string): Promise<boolean> {
    const h = this.held.get(shardId);
    if (h) {
      if (leaseRemainingMs(h.lease, this.now()) > 0) return true;
      this.lose(shardId, 'expired before it could be renewed');
    }
    const cap = this.options.maxShards;
    if (cap !== undefined && this.held.size >= cap) return false;
    const { store, migrationId, owner, ttlMs, graceMs } = this.options;
    let lease: ShardLease | null;
    try {
      lease = await store.acquireLease(migrationId, shardId, owner, { ttlMs, graceMs, scope: this.options.scope });
    } catch (err) {
      if (!isTransientError(err)) throw err;
      this.options.logger?.warn({ shardId, err: String(err) }, 'could not reach the state store to acquire a lease; will retry');
      return false;
    }
    if (!lease) return false;
    // Another call may have raced us (ownsShard is called from discovery only, but be safe).
    if (this.held.has(shardId)) return true;
    if (cap !== undefined && this.held.size >= cap) {
      await store.releaseLease(lease).catch(() => undefined);
      return false;
    }
    this.held.set(shardId, { lease });
    this.options.logger?.info({ shardId, epoch: lease.epoch }, 'shard lease acquired');
    return true;
  }

  /**
   * The write fence: resolves when the lease has more than `marginMs` left; waits for a renewal
   * while less is left; throws LeaseLostError when the lease is lost or expired.
   */
  async waitWritable(shardId: string, signal?: AbortSignal): Promise<void> {
    for (;;) {
      const h = this.held.get(shardId);
      if (!h) throw new LeaseLostError(shardId, 'not held');
      const remaining = leaseRemainingMs(h.lease, this.now());
      if (remaining <= 0) {
        this.lose(shardId, 'expired before it could be renewed');
        throw new LeaseLostError(shardId, 'expired before it could be renewed');
      }
      if (remaining > this.marginMs) return;
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      // Low on time: renew now (if not already renewing) and wait for news.
      void this.renew(shardId);
      const waiters = this.waiters;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          waiters.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(200, remaining));
        waiters.add(done);
      });
    }
  }

  /** Gives the shard's lease up (e.g. the shard ended). */
  async release(shardId: string): Promise<void> {
    const h = this.held.get(shardId);
    if (!h) return;
    this.held.delete(shardId);
    await h.renewing?.catch(() => undefined);
    try {
      // releaseLease matches owner + epoch, which renewals do not change.
      await this.options.store.releaseLease(h.lease);
      this.options.logger?.debug({ shardId }, 'shard lease released');
    } catch (err) {
      this.options.logger?.warn({ shardId, err: String(err) }, 'could not release the shard lease (it expires on its own)');
    }
    this.wakeWaiters();
  }

  async releaseAll(): Promise<void> {
    await Promise.all(this.heldShards().map((s) => this.release(s)));
  }

  /** Forgets every lease without releasing it (they expire on their own): a crash, for tests. */
  abandonAll(): void {
    this.held.clear();
    this.wakeWaiters();
  }

  // -------------------------------------------------------------------------------------------

  private async renewAll(): Promise<void> {
    await Promise.all(this.heldShards().map((s) => this.renew(s)));
  }

  private renew(shardId: string): Promise<void> {
    const h = this.held.get(shardId);
    if (!h) return Promise.resolve();
    if (h.renewing) return h.renewing;
    h.renewing = (async () => {
      try {
        const renewed = await this.options.store.renewLease(h.lease);
        if (this.held.get(shardId) !== h) return; // released meanwhile
        if (renewed) {
          h.lease = renewed;
        } else {
          this.lose(shardId, 'renewal refused (taken over or expired)');
        }
      } catch (err) {
        // State store unreachable: keep the lease value; the fence stops writes when time runs
        // short and the next renewal (or tryAcquire) notices the expiry.
        this.options.logger?.warn({ shardId, err: String(err) }, 'shard lease renewal failed; will retry');
        if (this.held.get(shardId) === h && leaseRemainingMs(h.lease, this.now()) <= 0) {
          this.lose(shardId, 'expired while the state store was unreachable');
        }
      } finally {
        h.renewing = undefined;
        this.wakeWaiters();
      }
    })();
    return h.renewing;
  }

  private lose(shardId: string, reason: string): void {
    if (!this.held.delete(shardId)) return;
    this.options.logger?.warn({ shardId, reason }, 'shard lease lost: stopping the shard');
    this.wakeWaiters();
    this.options.onLost?.(shardId, reason);
  }

  private wakeWaiters(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }
}
