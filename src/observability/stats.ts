/**
 * Process-wide counters the pipeline bumps where it already counts, read by the Prometheus
 * registry (src/observability/metrics.ts) only when it is scraped.
 *
 * PERFORMANCE (issue #16): the hot paths (capture's per-event loop, the producer's per-record
 * accounting, apply's per-batch accounting) only add to plain numbers here: no prom-client call,
 * no label hashing, no allocation. Per-operation counts are keyed by the envelope's `op` (a small,
 * closed set: insert, update, replace, delete, drop, rename, dropDatabase, barrier, origin) or by
 * apply's write kinds; nothing is ever keyed by a document id. Counters only grow (Prometheus
 * counter semantics: the process's lifetime), whichever capture/apply run in the process added
 * to them.
 *
 * LIVE STATE: gauges that describe "now" (leases held, per-shard millisBehindLatest, load progress,
 * the phase) are collected on scrape from the objects that hold it, registered here while they
 * run (`live`), so a scrape never queries a database for them.
 */

/** Counters keyed by a bounded label value (an operation type). */
export type OpCounts = Record<string, number>;

export interface LoadCollectionStats {
  /** Source namespace (bounded by the migration's selection). */
  ns: string;
  total: number | undefined;
  dumped: number;
  restored: number;
  done: boolean;
  /** The source collection's size (collStats `size`: uncompressed BSON bytes) and count, when read. */
  sizeBytes?: number;
  sizeCount?: number;
}

/** One lease holder (a LeaseKeeper) as the metrics see it. */
export interface LeaseHolderView {
  kind: 'capture' | 'apply';
  heldShards(): string[];
}

/** One running apply, as the metrics see it (ApplyRunner). */
export interface ApplyView {
  /** Per shard read by this process: millisBehindLatest of its last GetRecords (undefined: not known yet). */
  shards(): { shardId: string; millisBehindLatest: number | undefined; caughtUp: boolean; stalled: boolean }[];
  /** Every shard read by this process is at the stream's tip with nothing in hand. */
  caughtUp(): boolean;
}

export const stats = {
  capture: {
    /** Change events handed to Kinesis, by envelope op. */
    events: Object.create(null) as OpCounts,
    /** Encoded envelope bytes handed to Kinesis. */
    bytes: 0,
    /** Checkpoint saves (state store) and the wall time (ms) of the last one. */
    checkpoints: 0,
    lastCheckpointAtMs: 0,
  },
  kinesis: {
    putRecordsCalls: 0,
    /** Kinesis records acknowledged (aggregates and chunks count one each). */
    recordsSent: 0,
    /** Record bytes acknowledged (data + partition key). */
    bytesSent: 0,
    /** Payloads (events) acknowledged; a broadcast counts once per shard copy. */
    payloadsSent: 0,
    putRetries: 0,
    putThrottles: 0,
    getRecordsCalls: 0,
    recordsReceived: 0,
    bytesReceived: 0,
    getRetries: 0,
    getThrottles: 0,
    /** Wall time (ms) of the last Kinesis answer, and of the last failure that was not throttling. */
    lastOkAtMs: 0,
    lastErrorAtMs: 0,
  },
  apply: {
    /** Envelopes processed, by what apply did with them: upsert, update, delete, ddl, barrier, skipped, collapsed. */
    events: Object.create(null) as OpCounts,
    batches: 0,
    conflictRetries: 0,
    /** Lag of the newest event of the last applied batch (seconds), and when it was measured. */
    lastLagSeconds: 0,
    lastLagAtMs: 0,
    /** Per shard: wall time (ms) of this process's last checkpoint save. */
    checkpointAtMs: new Map<string, number>(),
  },
  load: {
    /** Per source namespace (bounded by the selection); replaced when a load (re)starts. */
    collections: new Map<string, LoadCollectionStats>(),
    startedAtMs: 0,
  },
  live: {
    leaseHolders: new Set<LeaseHolderView>(),
    applies: new Set<ApplyView>(),
  },
  /** Listener of each applied batch's lag: the histogram of the latest metrics registry, if any. */
  lagObserver: undefined as ((seconds: number) => void) | undefined,
};

/**
 * Records the lag of one applied batch: now − the source time (wall time, else cluster time) of
 * its newest event. Once per batch, not per event (hot path). The histogram exists only while a
 * metrics server runs (it sets `stats.lagObserver`); the current value is kept regardless.
 */
export function observeApplyLag(seconds: number): void {
  if (!(seconds >= 0)) return;
  stats.apply.lastLagSeconds = seconds;
  stats.apply.lastLagAtMs = Date.now();
  stats.lagObserver?.(seconds);
}

/** Adds `n` to the count of `key` (no allocation once the key exists). */
export function addOp(counts: OpCounts, key: string, n = 1): void {
  counts[key] = (counts[key] ?? 0) + n;
}

/** Load progress as the load reports it (one call per tool progress line, not per document). */
export function noteLoadProgress(ns: string, fields: { total?: number; dumped?: number; restored?: number; done?: boolean }): void {
  const load = stats.load;
  if (load.startedAtMs === 0) load.startedAtMs = Date.now();
  let c = load.collections.get(ns);
  if (!c) {
    c = { ns, total: undefined, dumped: 0, restored: 0, done: false };
    load.collections.set(ns, c);
  }
  if (fields.total !== undefined) c.total = fields.total;
  if (fields.dumped !== undefined) c.dumped = fields.dumped;
  if (fields.restored !== undefined) c.restored = fields.restored;
  if (fields.done !== undefined) c.done = fields.done;
}

/** Records a source collection's size for the load's byte metrics (see noteLoadSizes in metrics.ts). */
export function noteLoadSize(ns: string, sizeBytes: number, count: number): void {
  noteLoadProgress(ns, {});
  const c = stats.load.collections.get(ns)!;
  c.sizeBytes = sizeBytes;
  c.sizeCount = count;
}

/** A Kinesis answer (any call): `ok`, or a failure (throttling counts as an answer: the stream is reachable). */
export function noteKinesisAnswer(ok: boolean): void {
  if (ok) stats.kinesis.lastOkAtMs = Date.now();
  else stats.kinesis.lastErrorAtMs = Date.now();
}
