/**
 * The status model of apply: the counters kept in each shard's checkpoint, the per-shard and
 * process-wide status `runApply` reports (`onStatus`, its result, `status --json`), how a batch
 * adds to the counters and metrics, and the periodic 'apply progress' log line.
 */
import type { Counters } from '../state/store.js';
import type { ShardBatch } from '../transport/shard-reader.js';
import type { ShardState, ShardStatus } from '../transport/stream-consumer.js';
import type { ChangeEnvelope } from '../model/change-envelope.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { observeApplyLag } from '../observability/stats.js';
import { addOp, stats } from '../observability/stats.js';
import { START_OF_SHARD_SEQUENCE } from './apply-options.js';
import type { ApplyResult } from './writer.js';

/** Counters kept in each shard's checkpoint (cumulative over the shard's life). */
export interface ApplyCounters extends Counters {
  /** Envelopes read and processed (applied, skipped as re-sent, or filtered). */
  events: number;
  /** replaceOne upserts (insert / replace / update with a full document). */
  upserts: number;
  /** Delta updates (update without a full document). */
  updates: number;
  deletes: number;
  /** DDL run on the target by this shard (a DDL is run by one shard, the others skip it). */
  ddl: number;
  /** Not written: re-sent (at or before the last applied position), filtered out, or null post-image. */
  skipped: number;
  /** Superseded by a later event of the same document in the same batch. */
  collapsed: number;
  barriers: number;
  batches: number;
  /** Batch re-applications because of duplicate-key conflicts. */
  conflictRetries: number;
  /** clusterTime (seconds) of the last applied event; 0 = none yet. */
  lastClusterTime: number;
  /** wallTime (ms since epoch) of the last applied event that carried one; 0 = unknown. */
  lastWallTime: number;
  /** From the last GetRecords of the shard; -1 = unknown. */
  millisBehindLatest: number;
}

export function emptyCounters(): ApplyCounters {
  return {
    events: 0,
    upserts: 0,
    updates: 0,
    deletes: 0,
    ddl: 0,
    skipped: 0,
    collapsed: 0,
    barriers: 0,
    batches: 0,
    conflictRetries: 0,
    lastClusterTime: 0,
    lastWallTime: 0,
    millisBehindLatest: -1,
  };
}

const SUMMED: (keyof ApplyCounters)[] = ['events', 'upserts', 'updates', 'deletes', 'ddl', 'skipped', 'collapsed', 'barriers', 'batches', 'conflictRetries'];

export interface ApplyShardStatus {
  shardId: string;
  /** The consumer's view: reading, ended, not-owned (another process holds it), waiting-for-parents, stopped. */
  state: ShardState;
  /** This process holds the shard's lease. */
  leased: boolean;
  caughtUp: boolean;
  millisBehindLatest: number | undefined;
  /**
   * Wall-clock time (ms) up to which every record of the shard is known applied: the send time of
   * the last GetRecords call that found the shard at its tip, or of the call that produced the
   * last applied batch minus its MillisBehindLatest. Undefined until known.
   */
  appliedThroughAt: number | undefined;
  /** Since when the shard has had work in hand and no target write acknowledged (stall), if it has. */
  stalledSince: Date | undefined;
  /** Last saved checkpoint sequence number (this process's shards). */
  sequenceNumber: string | undefined;
  counters: ApplyCounters | undefined;
}

export interface ApplyStatus {
  ownerId: string;
  at: Date;
  /** Every shard is caught up (read to the tip and applied) or ended, by this process. */
  caughtUp: boolean;
  shards: ApplyShardStatus[];
  /** Sums over this process's shards (cumulative counters from their checkpoints). */
  totals: ApplyCounters;
  /** Envelopes processed by this runApply call. */
  sessionEvents: number;
}

export interface ApplyRunResult {
  /** 'completed': the migration's phase is COMPLETED (`exitWhenCompleted`). */
  stopReason: 'caught-up' | 'interrupted' | 'completed';
  status: ApplyStatus;
}

/** What the status needs of a shard being applied here (see ShardRun). */
export interface ShardRunView {
  counters: ApplyCounters;
  busySince: number | undefined;
  appliedThroughAt: number | undefined;
  stalledSince: Date | undefined;
  sequenceNumber: string | undefined;
}

export interface StatusInput {
  ownerId: string;
  /** The consumer's shards (empty when no consumer runs). */
  statuses: readonly ShardStatus[];
  runs: ReadonlyMap<string, ShardRunView>;
  /** Counters of shards that ended here. */
  ended: ReadonlyMap<string, ApplyCounters>;
  holds: (shardId: string) => boolean;
  sessionEvents: number;
}

/** Every shard the consumer knows is ended, or read to its tip. */
export function everyShardCaughtUp(statuses: readonly ShardStatus[]): boolean {
  return statuses.length > 0 && statuses.every((s) => s.state === 'ended' || (s.state === 'reading' && s.caughtUp));
}

export function buildApplyStatus(input: StatusInput): ApplyStatus {
  const byId = new Map(input.statuses.map((s) => [s.shardId, s]));
  const ids = new Set<string>([...byId.keys(), ...input.runs.keys(), ...input.ended.keys()]);
  const shards: ApplyShardStatus[] = [...ids].sort().map((shardId) => {
    const s = byId.get(shardId);
    const run = input.runs.get(shardId);
    const counters = run?.counters ?? input.ended.get(shardId);
    // A reader found at its tip has handed over every earlier record, and the one batch it
    // hands at a time is not in progress (busySince), so all of them are applied.
    const tipAt = s?.caughtUpAt !== undefined && run?.busySince === undefined ? s.caughtUpAt : undefined;
    const through = [run?.appliedThroughAt, tipAt].filter((x): x is number => x !== undefined);
    return {
      shardId,
      state: s?.state ?? (input.ended.has(shardId) ? 'ended' : 'stopped'),
      leased: input.holds(shardId),
      caughtUp: s?.caughtUp ?? input.ended.has(shardId),
      millisBehindLatest: s?.millisBehindLatest,
      appliedThroughAt: through.length ? Math.max(...through) : undefined,
      stalledSince: run?.stalledSince,
      sequenceNumber: run?.sequenceNumber === START_OF_SHARD_SEQUENCE ? undefined : run?.sequenceNumber,
      counters: counters ? { ...counters } : undefined,
    };
  });
  return {
    ownerId: input.ownerId,
    at: new Date(),
    caughtUp: everyShardCaughtUp(input.statuses),
    shards,
    totals: sumCounters(shards),
    sessionEvents: input.sessionEvents,
  };
}

function sumCounters(shards: readonly ApplyShardStatus[]): ApplyCounters {
  const totals = emptyCounters();
  for (const sh of shards) {
    if (!sh.counters) continue;
    for (const k of SUMMED) totals[k] += sh.counters[k];
    totals.lastClusterTime = Math.max(totals.lastClusterTime, sh.counters.lastClusterTime);
    totals.lastWallTime = Math.max(totals.lastWallTime, sh.counters.lastWallTime);
    if (sh.millisBehindLatest !== undefined) totals.millisBehindLatest = Math.max(totals.millisBehindLatest, sh.millisBehindLatest);
  }
  return totals;
}

/** Adds an applied batch to the shard's counters and to the process metrics. */
export function countBatch(c: ApplyCounters, batch: ShardBatch, envelopes: readonly ChangeEnvelope[], result: ApplyResult): void {
  const s = result.stats;
  c.events += s.envelopes;
  c.upserts += s.upserts;
  c.updates += s.updates;
  c.deletes += s.deletes;
  c.ddl += s.ddl;
  c.skipped += s.skipped;
  c.collapsed += s.collapsed;
  c.barriers += s.barriers;
  c.batches += 1;
  if (result.lastPosition) c.lastClusterTime = result.lastPosition.ct.getHighBits();
  for (let i = envelopes.length - 1; i >= 0; i--) {
    const wt = envelopes[i]!.wt;
    if (wt && envelopes[i]!.op !== 'barrier') {
      c.lastWallTime = wt.getTime();
      break;
    }
  }
  c.millisBehindLatest = batch.millisBehindLatest ?? -1;
  // Metrics (per batch, plain additions; src/observability/stats.ts).
  const a = stats.apply;
  a.batches++;
  addOp(a.events, 'upsert', s.upserts);
  addOp(a.events, 'update', s.updates);
  addOp(a.events, 'delete', s.deletes);
  addOp(a.events, 'ddl', s.ddl);
  addOp(a.events, 'barrier', s.barriers);
  addOp(a.events, 'skipped', s.skipped);
  addOp(a.events, 'collapsed', s.collapsed);
  // Lag of the batch's newest event, when it wrote something (re-sent events say nothing of lag).
  if (s.upserts + s.updates + s.deletes + s.ddl > 0) {
    let newestMs: number | undefined;
    for (let i = envelopes.length - 1; i >= 0 && newestMs === undefined; i--) {
      const e = envelopes[i]!;
      if (e.op !== 'barrier' && e.op !== 'origin') newestMs = e.wt ? e.wt.getTime() : e.ct.getHighBits() * 1000;
    }
    if (newestMs !== undefined && newestMs > 0) observeApplyLag(Math.max(0, Date.now() - newestMs) / 1000);
  }
}

export function compactTotals(t: ApplyCounters): Record<string, number> {
  return { events: t.events, upserts: t.upserts, updates: t.updates, deletes: t.deletes, ddl: t.ddl, skipped: t.skipped };
}

/** onStatus gets every report; the 'apply progress' log line comes only every `logEveryMs`. */
export class StatusReporter {
  private lastReport: { at: number; events: number } | undefined;

  constructor(
    private readonly status: () => ApplyStatus,
    private readonly log: Logger,
    private readonly logEveryMs: number,
    private readonly onStatus?: (status: ApplyStatus) => void,
  ) {}

  report(): void {
    try {
      const status = this.status();
      const now = performance.now();
      this.onStatus?.(status);
      if (this.lastReport && now - this.lastReport.at < this.logEveryMs - 50) return;
      const rate = this.lastReport ? ((status.sessionEvents - this.lastReport.events) * 1000) / Math.max(1, now - this.lastReport.at) : undefined;
      this.lastReport = { at: now, events: status.sessionEvents };
      const behind: Record<string, number | string> = {};
      for (const s of status.shards) behind[s.shardId] = s.leased ? (s.millisBehindLatest ?? 'unknown') : s.state;
      this.log.info(
        {
          events: status.sessionEvents,
          eventsPerSecond: rate === undefined ? undefined : Math.round(rate),
          shards: status.shards.filter((s) => s.leased).length,
          millisBehindLatest: behind,
          caughtUp: status.caughtUp,
        },
        'apply progress',
      );
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'status report failed');
    }
  }
}
