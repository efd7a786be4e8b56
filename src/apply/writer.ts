/**
 * Writes decoded envelopes of one Kinesis shard to the target.
 *
 * Invariants (each enforced where marked below):
 *  - IDEMPOTENT: every write is by document key (replaceOne upsert / deleteOne / delta update of
 *    an existing document) and every DDL checks the target first, so re-applying any suffix of a
 *    shard's stream that does not start before an already applied DDL leaves the same target.
 *    (The caller keeps that condition by checkpointing at DDL boundaries: `onProgress`.)
 *  - ORDER: a document's ops are applied in stream order (one op per document per bulk write);
 *    everything before a DDL is written before the DDL, everything after it after it.
 *  - NO SILENT LOSS: duplicate-key conflicts that survive the in-batch retries are returned in
 *    `conflicts`; other non-transient errors are thrown with the namespace and key.
 *  - NO REGRESSION ON RE-SENDS: envelopes at or before `after` (the shard's last applied
 *    position) are skipped (see dedupeEnvelopes).
 *
 * The writer does not checkpoint; the caller saves its checkpoint only after applyBatch (or an
 * `onProgress` call) returned, i.e. after the target acknowledged the writes. Configure the
 * target client with the write concern you need acknowledged (e.g. `w: 'majority'`).
 */
import type { AnyBulkWriteOperation, Collection, Document, MongoClient } from 'mongodb';
import {
  positionOf,
  type ChangeEnvelope,
  type CollectionNamespace,
  type EventPosition,
} from '../model/change-envelope.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import {
  ApplyWriteError,
  DUPLICATE_KEY,
  RetriesExhaustedError,
  bulkWriteErrors,
  isTransientError,
} from './errors.js';
import {
  dedupeEnvelopes,
  planBatch,
  rounds,
  toBulkOperation,
  type CollectionPlan,
  type DocOp,
  type DocPlan,
  type KeyFilterMode,
  type PlannedOp,
} from './plan.js';
import { DEFAULT_RETRY_POLICY, withRetry, type RetryHooks, type RetryPolicy } from './retry.js';
import { ShardKeyRouting } from './shard-key-routing.js';
import { DdlReplay } from './ddl-replay.js';
import type { SchemaReplayContext } from './schema-replay.js';
import { MongoErrorCode } from '../db/mongo-errors.js';

/** ShardKeyNotFound: the target's shard key changed since it was read (e.g. sharded meanwhile). */
const SHARD_KEY_NOT_FOUND = MongoErrorCode.ShardKeyNotFound;

export interface ApplyStats {
  /** Envelopes in the batch. */
  envelopes: number;
  /** Successful replaceOne upserts (insert/replace/update with fullDocument). */
  upserts: number;
  deletes: number;
  /** Successful delta updates (update events without fullDocument). */
  updates: number;
  /** Envelopes not written: re-sent (dedup), filtered out, or update with a null fullDocument. */
  skipped: number;
  /** Envelopes superseded by a later event of the same document in the batch. */
  collapsed: number;
  ddl: number;
  barriers: number;
  conflicts: number;
}

export interface ApplyConflict {
  /** Input index of the envelope whose op could not be applied. */
  index: number;
  target: CollectionNamespace;
  key: Document;
  op: DocOp['kind'];
  code: number;
  message: string;
}

export interface ApplyResult {
  stats: ApplyStats;
  /** Barriers reached, in stream order (everything before them in this batch is applied). */
  barriers: { id: string; index: number }[];
  /** Unresolved duplicate-key conflicts (the caller must retry or park them, not drop them). */
  conflicts: ApplyConflict[];
  /** Highest position processed (applied or skipped); `after` when nothing new. */
  lastPosition: EventPosition | undefined;
}

export interface ApplyProgress {
  /** Every envelope with an input index ≤ upToIndex has been applied, skipped or reported. */
  upToIndex: number;
  position: EventPosition | undefined;
  conflicts: readonly ApplyConflict[];
}

export interface ApplyBatchOptions {
  /** The shard's last applied position: envelopes at or before it are skipped. */
  after?: EventPosition;
  /**
   * Called right before and right after each DDL (the batch is split there), so the caller can
   * checkpoint: a replay must never start before an already applied DDL. Throwing aborts.
   */
  onProgress?: (progress: ApplyProgress) => Promise<void>;
}

export interface ApplyLogger {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export interface ApplyWriterOptions {
  /** Target client. */
  client: MongoClient;
  rules: NamespaceRules;
  /** Filter writes by the full documentKey (default, needed for sharded targets) or `_id` only. */
  keyFilter?: KeyFilterMode;
  retryPolicy?: RetryPolicy;
  retryHooks?: RetryHooks;
  /**
   * Client-side deadline of each bulk write (default 60 s). A target that stops answering must not
   * hold a shard forever: the write fails with a timeout (transient) and is retried like any
   * transient failure (idempotent), so a wedged target ends in RetriesExhausted, not a silent hang.
   */
  writeTimeoutMs?: number;
  /**
   * Awaited before a DDL envelope runs. With several shards every shard receives the DDL; the
   * caller uses this hook to wait until all shards have applied (and checkpointed) everything
   * before it, and to run it once: see createDdlGate (ddl-gate.ts), which provides this and
   * `afterDdl`. Default: run at once (correct with one shard only).
   */
  beforeDdl?: (envelope: ChangeEnvelope, index: number) => Promise<'apply' | 'skip'>;
  /** Awaited after a DDL envelope ran on the target (not when `beforeDdl` said 'skip'). */
  afterDdl?: (envelope: ChangeEnvelope, index: number) => Promise<void>;
  logger?: ApplyLogger;
  /** Replayed schema events hold the TTL indexes they create or change (schema-replay.ts, ttl-hold.ts). */
  ttlHold?: SchemaReplayContext['ttlHold'];
}

interface Work {
  doc: DocPlan;
  planned: PlannedOp;
}

export const DEFAULT_WRITE_TIMEOUT_MS = 60_000;

/** Marks a bulk write to be re-run as a whole (a transient per-op error or write concern). */
class TransientBulkError extends Error {
  override name = 'TransientBulkError';
}

const nsName = (ns: CollectionNamespace) => `${ns.db}.${ns.coll}`;

export class ApplyWriter {
  private readonly client: MongoClient;
  private readonly rules: NamespaceRules;
  private readonly keyFilterMode: KeyFilterMode;
  private readonly retryPolicy: RetryPolicy;
  private readonly retryHooks: RetryHooks;
  private readonly writeTimeoutMs: number;
  private readonly beforeDdl?: ApplyWriterOptions['beforeDdl'];
  private readonly afterDdl?: ApplyWriterOptions['afterDdl'];
  private readonly logger?: ApplyLogger;
  private readonly ttlHold?: ApplyWriterOptions['ttlHold'];
  /** The target's sharded collections (empty unless the target is a mongos); see shard-keys.ts. */
  /** The target's shard keys (sharded targets): upsert routing and shard key moves. */
  private readonly shardKeys: ShardKeyRouting;
  private readonly ddl: DdlReplay;

  constructor(options: ApplyWriterOptions) {
    this.client = options.client;
    this.ttlHold = options.ttlHold;
    this.rules = options.rules;
    this.keyFilterMode = options.keyFilter ?? 'documentKey';
    this.retryPolicy = options.retryPolicy ?? DEFAULT_RETRY_POLICY;
    this.writeTimeoutMs = options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    this.retryHooks = {
      ...options.retryHooks,
      isTransient: (e) => e instanceof TransientBulkError || (options.retryHooks?.isTransient ?? isTransientError)(e),
      onRetry:
        options.retryHooks?.onRetry ??
        ((info) => this.logger?.warn({ what: info.what, attempt: info.attempt, delayMs: info.delayMs, err: String(info.error) }, 'transient error, retrying')),
    };
    this.beforeDdl = options.beforeDdl;
    this.afterDdl = options.afterDdl;
    this.logger = options.logger;
    this.shardKeys = new ShardKeyRouting(this.client, (what, fn) => this.retry(what, fn), this.writeTimeoutMs, this.logger);
    this.ddl = new DdlReplay({ client: this.client, rules: this.rules, retry: (what, fn) => this.retry(what, fn), logger: this.logger, ttlHold: this.ttlHold }, this.retryHooks.signal);
  }

  /** Applies one shard batch (envelopes in stream order). */
  async applyBatch(envelopes: readonly ChangeEnvelope[], options: ApplyBatchOptions = {}): Promise<ApplyResult> {
    const stats: ApplyStats = {
      envelopes: envelopes.length,
      upserts: 0,
      deletes: 0,
      updates: 0,
      skipped: 0,
      collapsed: 0,
      ddl: 0,
      barriers: 0,
      conflicts: 0,
    };
    const conflicts: ApplyConflict[] = [];
    await this.shardKeys.refresh(false);
    const dedup = dedupeEnvelopes(envelopes, options.after);
    const plan = planBatch(envelopes, dedup.keep, this.rules, { keyFilter: this.keyFilterMode });
    stats.skipped += dedup.skipped.length + plan.filtered.length;
    stats.barriers = plan.barriers.length;

    // Position reached once every envelope up to index i is processed (for onProgress).
    const positionUpTo = (i: number): EventPosition | undefined => {
      let p = options.after;
      for (const k of dedup.keep) {
        if (k > i) break;
        const e = envelopes[k]!;
        if (e.op !== 'barrier') p = positionOf(e);
      }
      return p;
    };
    const progress = async (upToIndex: number) => {
      if (options.onProgress && upToIndex >= 0) {
        await options.onProgress({ upToIndex, position: positionUpTo(upToIndex), conflicts: [...conflicts] });
      }
    };

    for (const segment of plan.segments) {
      if (segment.kind === 'data') {
        stats.collapsed += segment.collapsed;
        stats.skipped += segment.skippedNullDoc;
        for (const coll of segment.collections) await this.applyCollection(coll, stats, conflicts);
      } else {
        // Invariant: everything before the DDL is applied (and checkpointable) before it runs.
        await progress(segment.index - 1);
        const decision = this.beforeDdl ? await this.beforeDdl(segment.envelope, segment.index) : 'apply';
        if (decision === 'apply') {
          await this.ddl.apply(segment.envelope, segment.index);
          await this.afterDdl?.(segment.envelope, segment.index);
          stats.ddl++;
        } else {
          stats.skipped++;
        }
        await progress(segment.index);
      }
    }
    stats.conflicts = conflicts.length;
    if (conflicts.length > 0) {
      this.logger?.warn({ conflicts: conflicts.length, first: conflicts[0] }, 'unresolved duplicate-key conflicts');
    }
    return { stats, barriers: plan.barriers, conflicts, lastPosition: dedup.last };
  }

  // -------------------------------------------------------------------------------------------
  // Data

  private count(stats: ApplyStats, kind: DocOp['kind']) {
    if (kind === 'upsert') stats.upserts++;
    else if (kind === 'delete') stats.deletes++;
    else stats.updates++;
  }

  private async applyCollection(plan: CollectionPlan, stats: ApplyStats, conflicts: ApplyConflict[]) {
    const collection = this.client.db(plan.target.db).collection(plan.target.coll);
    const blocked = new Set<string>();
    const deferred: { work: Work; code: number; message: string }[] = [];
    for (const round of rounds(plan)) {
      // A document whose earlier op failed keeps its later ops back (its order must hold).
      const batch: Work[] = [];
      for (const w of round) {
        if (blocked.has(w.doc.id)) deferred.push({ work: w, code: DUPLICATE_KEY, message: 'blocked by an earlier conflict' });
        else batch.push(w);
      }
      if (batch.length === 0) continue;
      const failures = await this.bulk(collection, plan.target, batch, false);
      const failedIdx = new Set(failures.map((f) => f.i));
      batch.forEach((w, i) => {
        if (!failedIdx.has(i)) this.count(stats, w.planned.op.kind);
      });
      for (const f of failures) {
        blocked.add(batch[f.i]!.doc.id);
        deferred.push({ work: batch[f.i]!, code: f.code, message: f.message });
      }
    }
    if (deferred.length > 0) await this.resolveConflicts(collection, plan.target, deferred, stats, conflicts);
  }

  /**
   * Duplicate-key failures (a unique secondary index while documents exchange a value) are
   * resolved after the rest of the collection's batch:
   *  1. the failed ops, and the later ops of their documents they held back, are retried one at a
   *     time in stream order, in passes until a pass makes no progress (chains: A gives a value
   *     up, then B can take it);
   *  2. for the documents still failing, their whole history in this batch (superseded states
   *     included) is replayed one op at a time in stream order, then their final ops again in
   *     passes (swaps through a temporary value: A→tmp, B→x, A→y).
   * What still fails is reported in `conflicts` (e.g. the other document is in another shard
   * that has not caught up yet), never dropped.
   */
  private async resolveConflicts(
    collection: Collection,
    target: CollectionNamespace,
    deferred: { work: Work; code: number; message: string }[],
    stats: ApplyStats,
    conflicts: ApplyConflict[],
  ) {
    const uncounted = new Set(deferred.map((d) => d.work.planned));
    let pending = await this.retryInPasses(collection, target, deferred, stats, uncounted);
    if (pending.length > 0) {
      const docs = [...new Map(pending.map((p) => [p.work.doc.id, p.work.doc])).values()];
      const byIndex = (a: Work, b: Work) => a.planned.index - b.planned.index;
      const history = docs.flatMap((doc) => doc.history.map((planned) => ({ doc, planned }))).sort(byIndex);
      for (const w of history) await this.bulk(collection, target, [w], true); // intermediate failures are fine
      const finals = docs
        .flatMap((doc) => doc.ops.map((planned) => ({ doc, planned })))
        .sort(byIndex)
        .map((work) => ({ work, code: DUPLICATE_KEY, message: '' }));
      const last = new Map(pending.map((p) => [p.work.planned, p]));
      pending = (await this.retryInPasses(collection, target, finals, stats, uncounted)).map((p) => ({
        ...p,
        message: p.message || (last.get(p.work.planned)?.message ?? ''),
      }));
    }
    for (const item of pending) {
      conflicts.push({
        index: item.work.planned.index,
        target,
        key: item.work.doc.key,
        op: item.work.planned.op.kind,
        code: item.code,
        message: item.message,
      });
    }
  }

  /** One op at a time in stream order, repeated while a pass makes progress; returns what still fails. */
  private async retryInPasses(
    collection: Collection,
    target: CollectionNamespace,
    items: { work: Work; code: number; message: string }[],
    stats: ApplyStats,
    uncounted: Set<PlannedOp>,
  ): Promise<{ work: Work; code: number; message: string }[]> {
    let pending = [...items].sort((a, b) => a.work.planned.index - b.work.planned.index);
    let progress = true;
    while (pending.length > 0 && progress) {
      progress = false;
      const stillBlocked = new Set<string>(); // a document's later ops wait for its earlier ones
      const next: typeof pending = [];
      for (const item of pending) {
        if (stillBlocked.has(item.work.doc.id)) {
          next.push(item);
          continue;
        }
        const [failure] = await this.bulk(collection, target, [item.work], true);
        if (failure) {
          stillBlocked.add(item.work.doc.id);
          next.push({ work: item.work, code: failure.code, message: failure.message });
        } else {
          if (uncounted.delete(item.work.planned)) this.count(stats, item.work.planned.op.kind);
          progress = true;
        }
      }
      pending = next;
    }
    return pending;
  }

  /**
   * One bulk write (retried as a whole on transient errors: all its ops are idempotent).
   * Returns the duplicate-key failures (index into `work`); throws on other write errors.
   */
  private async bulk(
    collection: Collection,
    target: CollectionNamespace,
    work: Work[],
    ordered: boolean,
  ): Promise<{ i: number; code: number; message: string }[]> {
    const ops = () => work.map((w) => toBulkOperation(this.shardKeys.routed(target, w.planned.op)));
    try {
      // Every bulk (first rounds, conflict retries, history replays) moves documents whose shard
      // key value changed before upserting them at the new value.
      await this.shardKeys.moveChanged(collection, target, work);
      return await this.bulkWithRetry(collection, target, work, ops, ordered);
    } catch (err) {
      if (err instanceof ApplyWriteError || err instanceof RetriesExhaustedError) throw err;
      const first = work[0]!;
      throw new ApplyWriteError(
        `target refused a bulk write of ${work.length} op(s) in ${nsName(target)} (first: ${first.planned.op.kind}, envelope #${first.planned.index}): ${(err as Error).message}`,
        { ns: target, key: work.length === 1 ? first.doc.key : undefined, code: (err as { code?: number }).code, index: first.planned.index },
        { cause: err },
      );
    }
  }

  private bulkWithRetry(
    collection: Collection,
    target: CollectionNamespace,
    work: Work[],
    ops: () => AnyBulkWriteOperation[],
    ordered: boolean,
  ): Promise<{ i: number; code: number; message: string }[]> {
    let reread = false;
    return withRetry(
      `bulkWrite ${nsName(target)} (${work.length} ops)`,
      async () => {
        try {
          // timeoutMS (the driver's client-side operation timeout, experimental in driver 6.x): the
          // driver gives up waiting and closes the connection, so a target that stops answering
          // yields MongoOperationTimeoutError (transient) instead of a wait without end.
          await collection.bulkWrite(ops(), { ordered, timeoutMS: this.writeTimeoutMs });
          return [];
        } catch (err) {
          const errors = bulkWriteErrors(err);
          if (!reread && errors.some((e) => e.code === SHARD_KEY_NOT_FOUND)) {
            // Sharded since the keys were read: read them again and resend (the ops are idempotent).
            reread = true;
            if (await this.shardKeys.changedOnReread(target)) {
              throw new TransientBulkError(`the shard key of ${nsName(target)} changed: resending with it`);
            }
          }
          if (errors.length === 0) throw err; // whole-command failure: transient or not
          if ((err as { err?: unknown }).err) throw new TransientBulkError(`write concern error: ${(err as Error).message}`);
          const other = errors.filter((e) => e.code !== DUPLICATE_KEY);
          if (other.some((e) => isTransientError({ code: e.code, message: e.message }))) {
            throw new TransientBulkError(`transient write error: ${other[0]!.message}`);
          }
          if (other.length > 0) {
            const e = other[0]!;
            const w = work[e.index]!;
            throw new ApplyWriteError(
              `target refused ${w.planned.op.kind} in ${nsName(target)} (envelope #${w.planned.index}): ` +
                `code ${e.code}: ${e.message}`,
              { ns: target, key: w.doc.key, code: e.code, index: w.planned.index },
              { cause: err },
            );
          }
          return errors.map((e) => ({ i: e.index, code: e.code, message: e.message }));
        }
      },
      this.retryPolicy,
      this.retryHooks,
    );
  }

  private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return withRetry(what, fn, this.retryPolicy, this.retryHooks);
  }
}
