/**
 * The Prometheus registry of a long-running command (`--metrics-port`): every metric the migrator
 * exposes is defined here, all prefixed `migrator_`, with prom-client's default process metrics
 * (same prefix). Values are collected when scraped (`collect()` callbacks):
 *  - counters from the plain numbers the pipeline keeps (src/observability/stats.ts);
 *  - "now" gauges (leases, per-shard millisBehindLatest, load progress) from the live objects;
 *  - the migration-wide values `migrator status` shows (phase, cutover, last error, lag) from the
 *    status report, read from the state store at most once per `StatusCache` bound, never per scrape.
 *
 * LABELS ARE BOUNDED: op (the envelope's or apply's operation kinds), call (PutRecords,
 * GetRecords), shard (the stream's shard ids), namespace (source collections of the migration's
 * selection), phase / state (enumerations), kind (capture, apply). Never a document id or a value.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MIGRATION_PHASES } from '../state/store.js';
import type { StatusReport } from '../orchestration/status-report.js';
import type { MongoClient } from 'mongodb';
import { noteLoadSize, stats } from './stats.js';
import type { HealthRegistry } from './health.js';

export const METRIC_PREFIX = 'migrator_';

/** Buckets of the apply-lag histogram, seconds: sub-second steady state to an hour-long backlog. */
export const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600];

export const CUTOVER_STATES = ['none', 'requested', 'barrier-sent', 'completed', 'aborted'] as const;

export interface MetricsContext {
  command: string;
  migrationId: string;
  version: string;
  health: HealthRegistry;
  /** The command's readiness gate (see HealthRegistry.readiness). */
  gating: readonly string[];
  /** The migration's status report (cached by the caller); undefined when not available yet. */
  status: () => Promise<StatusReport | undefined>;
}

/** Sets a labelled gauge/counter from scratch (collect() runs once per scrape). */
function fill<T extends string>(m: Gauge<T> | Counter<T>, entries: Iterable<[Partial<Record<T, string | number>>, number]>): void {
  m.reset();
  for (const [labels, value] of entries) {
    if (m instanceof Counter) m.inc(labels, value);
    else m.set(labels, value);
  }
}

const ageSeconds = (atMs: number) => Math.max(0, (Date.now() - atMs) / 1000);

/** What each area's definitions need: the prefix, the registry (as prom-client's `registers`), the context. */
interface MetricDefs {
  p: string;
  registers: Registry[];
  ctx: MetricsContext;
}

export function createMetricsRegistry(ctx: MetricsContext): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: METRIC_PREFIX });
  const d: MetricDefs = { p: METRIC_PREFIX, registers: [register], ctx };
  defineHealthMetrics(d);
  defineMigrationMetrics(d);
  defineCaptureMetrics(d);
  defineKinesisMetrics(d);
  defineApplyMetrics(d);
  defineLeaseMetrics(d);
  defineLoadMetrics(d);
  return register;
}

/**
 * A gauge of one number of the migration's status report (cached; see MetricsContext.status):
 * absent while there is no report, or when `value` gives none.
 */
function statusGauge(d: MetricDefs, suffix: string, help: string, value: (r: StatusReport) => number | null | undefined): void {
  const { ctx } = d;
  new Gauge({
    name: `${d.p}${suffix}`,
    help,
    registers: d.registers,
    async collect() {
      const report = await ctx.status();
      this.reset();
      const v = report ? value(report) : undefined;
      if (v !== undefined && v !== null) this.set(v);
    },
  });
}

/** The process: info, and liveness/readiness (src/observability/health.ts). */
function defineHealthMetrics(d: MetricDefs): void {
  const { p, registers, ctx } = d;
  new Gauge({
    name: `${p}info`,
    help: 'Constant 1, labelled with the command, the migration id and the migrator version',
    labelNames: ['command', 'migration_id', 'version'],
    registers,
    collect() {
      this.reset();
      this.set({ command: ctx.command, migration_id: ctx.migrationId, version: ctx.version }, 1);
    },
  });

  new Gauge({
    name: `${p}ready`,
    help: '1 when /readyz would answer 200 for the command\'s own components (leases held, working), else 0',
    registers,
    collect() {
      this.set(ctx.health.readiness(ctx.gating).ok ? 1 : 0);
    },
  });
  new Gauge({
    name: `${p}heartbeat_age_seconds`,
    help: 'Seconds since each main loop last made progress (0 while it waits on a long step); /healthz fails past its bound',
    labelNames: ['loop'],
    registers,
    collect() {
      fill(this, ctx.health.liveness().loops.map((l) => [{ loop: l.name }, l.waitingFor ? 0 : l.sinceProgressMs / 1000]));
    },
  });
}

/** Migration-wide, from the status report (cached): phase, cutover, last error, lag. */
function defineMigrationMetrics(d: MetricDefs): void {
  const { p, registers, ctx } = d;
  // Each reads the report itself: prom-client collects the metrics concurrently; the cache makes it one read.
  new Gauge({
    name: `${p}phase`,
    help: 'The migration\'s phase: 1 for the current one, 0 for the others (from the state store, cached)',
    labelNames: ['phase'],
    registers,
    async collect() {
      const report = await ctx.status();
      this.reset();
      if (!report) return;
      for (const phase of MIGRATION_PHASES) this.set({ phase }, report.phase === phase ? 1 : 0);
    },
  });
  statusGauge(d, 'can_cutover', '1 when status says canCutover (READY_FOR_CUTOVER, no cutover in progress)', (r) => (r.canCutover ? 1 : 0));
  new Gauge({
    name: `${p}cutover_state`,
    help: 'The cutover\'s state: 1 for the current one (none = not requested)',
    labelNames: ['state'],
    registers,
    async collect() {
      const report = await ctx.status();
      this.reset();
      if (!report) return;
      const current = report.cutover?.state ?? 'none';
      for (const state of CUTOVER_STATES) this.set({ state }, current === state ? 1 : 0);
    },
  });
  statusGauge(d, 'cutover_shards_reached', 'Shards that applied the cutover barrier', (r) => r.cutover?.shardsReached);
  statusGauge(d, 'last_error_exit_code', 'Exit code of the last error recorded for the migration (0: none)', (r) => (r.lastError ? (r.lastError.exitCode ?? 1) : 0));
  statusGauge(d, 'last_error_timestamp_seconds', 'When the last error was recorded (Unix time; absent: none)', (r) => (r.lastError?.at ? new Date(r.lastError.at).getTime() / 1000 : undefined));
  statusGauge(d, 'migration_lag_events', 'Events captured and not yet applied, over the whole migration (status lag.events)', (r) => r.lag.events);
  statusGauge(d, 'migration_lag_seconds', 'Lag of the target behind the capture, over the whole migration (status lag.seconds)', (r) => r.lag.seconds);
}

/** Capture: events and bytes handed to Kinesis, checkpoint age. */
function defineCaptureMetrics(d: MetricDefs): void {
  const { p, registers } = d;
  new Counter({
    name: `${p}capture_events_total`,
    help: 'Change events captured and handed to Kinesis by this process, by operation type',
    labelNames: ['op'],
    registers,
    collect() {
      fill(this, Object.entries(stats.capture.events).map(([op, n]) => [{ op }, n]));
    },
  });
  new Counter({
    name: `${p}capture_bytes_total`,
    help: 'Encoded change-envelope bytes captured by this process',
    registers,
    collect() {
      this.reset();
      this.inc(stats.capture.bytes);
    },
  });
  new Gauge({
    name: `${p}capture_checkpoint_age_seconds`,
    help: 'Seconds since this process last saved the capture checkpoint (absent: none saved)',
    registers,
    collect() {
      this.reset();
      if (stats.capture.lastCheckpointAtMs > 0) this.set(ageSeconds(stats.capture.lastCheckpointAtMs));
    },
  });
}

/** The transport: Kinesis calls, records, bytes, retries, throttles, per-shard lag. */
function defineKinesisMetrics(d: MetricDefs): void {
  const { p, registers } = d;
  const k = stats.kinesis;
  new Counter({
    name: `${p}kinesis_calls_total`,
    help: 'PutRecords / GetRecords calls made by this process',
    labelNames: ['call'],
    registers,
    collect() {
      fill(this, [[{ call: 'PutRecords' }, k.putRecordsCalls], [{ call: 'GetRecords' }, k.getRecordsCalls]]);
    },
  });
  new Counter({
    name: `${p}kinesis_records_total`,
    help: 'Kinesis records sent (acknowledged) and received',
    labelNames: ['direction'],
    registers,
    collect() {
      fill(this, [[{ direction: 'out' }, k.recordsSent], [{ direction: 'in' }, k.recordsReceived]]);
    },
  });
  new Counter({
    name: `${p}kinesis_bytes_total`,
    help: 'Kinesis record bytes sent (data + partition key, acknowledged) and received (data)',
    labelNames: ['direction'],
    registers,
    collect() {
      fill(this, [[{ direction: 'out' }, k.bytesSent], [{ direction: 'in' }, k.bytesReceived]]);
    },
  });
  new Counter({
    name: `${p}kinesis_events_sent_total`,
    help: 'Events (payloads) acknowledged by Kinesis; a broadcast (DDL, barrier) counts once per shard',
    registers,
    collect() {
      this.reset();
      this.inc(k.payloadsSent);
    },
  });
  new Gauge({
    name: `${p}kinesis_events_per_record`,
    help: 'Events per Kinesis record sent by this process, since it started (aggregation)',
    registers,
    collect() {
      this.reset();
      if (k.recordsSent > 0) this.set(k.payloadsSent / k.recordsSent);
    },
  });
  new Counter({
    name: `${p}kinesis_retries_total`,
    help: 'Kinesis calls (or PutRecords entries) retried after a failure, throttling included',
    labelNames: ['call'],
    registers,
    collect() {
      fill(this, [[{ call: 'PutRecords' }, k.putRetries], [{ call: 'GetRecords' }, k.getRetries]]);
    },
  });
  new Counter({
    name: `${p}kinesis_throttles_total`,
    help: 'Kinesis throttling answers (ProvisionedThroughputExceeded, ThrottlingException, LimitExceeded)',
    labelNames: ['call'],
    registers,
    collect() {
      fill(this, [[{ call: 'PutRecords' }, k.putThrottles], [{ call: 'GetRecords' }, k.getThrottles]]);
    },
  });
  new Gauge({
    name: `${p}kinesis_millis_behind_latest`,
    help: 'MillisBehindLatest of the last GetRecords of each shard this process reads',
    labelNames: ['shard'],
    registers,
    collect() {
      const entries: [{ shard: string }, number][] = [];
      for (const a of stats.live.applies) for (const s of a.shards()) if (s.millisBehindLatest !== undefined) entries.push([{ shard: s.shardId }, s.millisBehindLatest]);
      fill(this, entries);
    },
  });
}

/** Apply: events, batches, conflicts, lag, checkpoints, stalls. */
function defineApplyMetrics(d: MetricDefs): void {
  const { p, registers } = d;
  new Counter({
    name: `${p}apply_events_total`,
    help: 'Events processed by apply in this process, by what was done: upsert, update, delete, ddl, barrier, skipped (re-sent or filtered), collapsed',
    labelNames: ['op'],
    registers,
    collect() {
      fill(this, Object.entries(stats.apply.events).map(([op, n]) => [{ op }, n]));
    },
  });
  new Counter({
    name: `${p}apply_batches_total`,
    help: 'Batches applied to the target by this process',
    registers,
    collect() {
      this.reset();
      this.inc(stats.apply.batches);
    },
  });
  new Counter({
    name: `${p}apply_conflict_retries_total`,
    help: 'Batch re-applications because of duplicate-key conflicts',
    registers,
    collect() {
      this.reset();
      this.inc(stats.apply.conflictRetries);
    },
  });
  const lagHistogram = new Histogram({
    name: `${p}apply_lag_seconds`,
    help: 'Apply lag: when a batch is applied, now minus the source time of its newest event (one observation per batch)',
    buckets: LAG_BUCKETS,
    registers,
  });
  stats.lagObserver = (seconds) => lagHistogram.observe(seconds);
  new Gauge({
    name: `${p}apply_current_lag_seconds`,
    help: 'Current apply lag of this process: the last batch\'s lag, 0 once every shard it reads is caught up',
    registers,
    collect() {
      this.reset();
      const applies = [...stats.live.applies];
      if (applies.length > 0 && applies.every((a) => a.caughtUp())) this.set(0);
      else if (stats.apply.lastLagAtMs > 0) this.set(stats.apply.lastLagSeconds);
    },
  });
  new Gauge({
    name: `${p}apply_checkpoint_age_seconds`,
    help: 'Seconds since this process last saved each shard\'s apply checkpoint',
    labelNames: ['shard'],
    registers,
    collect() {
      // Only the shards this process holds now (a shard handed over keeps its last save here).
      const held = new Set<string>();
      for (const h of stats.live.leaseHolders) if (h.kind === 'apply') for (const sh of h.heldShards()) held.add(sh);
      fill(this, [...stats.apply.checkpointAtMs].filter(([shard]) => held.has(shard)).map(([shard, at]) => [{ shard }, ageSeconds(at)]));
    },
  });
  new Gauge({
    name: `${p}apply_shard_stalled`,
    help: '1 for a shard whose batch the target has not acknowledged for the stall bound (see status stalledSince)',
    labelNames: ['shard'],
    registers,
    collect() {
      const entries: [{ shard: string }, number][] = [];
      for (const a of stats.live.applies) for (const s of a.shards()) entries.push([{ shard: s.shardId }, s.stalled ? 1 : 0]);
      fill(this, entries);
    },
  });
}

/** Leases this process holds (capture lease, apply shard leases). */
function defineLeaseMetrics(d: MetricDefs): void {
  const { p, registers } = d;
  new Gauge({
    name: `${p}lease_held`,
    help: 'Leases this process holds: 1 per lease (kind capture: the one capture lease; kind apply: one per shard)',
    labelNames: ['kind', 'shard'],
    registers,
    collect() {
      const entries: [{ kind: string; shard: string }, number][] = [];
      for (const h of stats.live.leaseHolders) for (const shard of h.heldShards()) entries.push([{ kind: h.kind, shard }, 1]);
      fill(this, entries);
    },
  });
  new Gauge({
    name: `${p}leases_held`,
    help: 'Number of leases this process holds, by kind (0: standing by)',
    labelNames: ['kind'],
    registers,
    collect() {
      const n = { capture: 0, apply: 0 };
      for (const h of stats.live.leaseHolders) n[h.kind] += h.heldShards().length;
      fill(this, [[{ kind: 'capture' }, n.capture], [{ kind: 'apply' }, n.apply]]);
    },
  });
}

/** The initial load: per-collection progress and the ETA. */
function defineLoadMetrics(d: MetricDefs): void {
  const { p, registers } = d;
  const loadGauge = (suffix: string, help: string, value: (c: (typeof stats.load.collections extends Map<string, infer V> ? V : never)) => number | undefined) =>
    new Gauge({
      name: `${p}load_${suffix}`,
      help,
      labelNames: ['namespace'],
      registers,
      collect() {
        const entries: [{ namespace: string }, number][] = [];
        for (const c of stats.load.collections.values()) {
          const v = value(c);
          if (v !== undefined) entries.push([{ namespace: c.ns }, v]);
        }
        fill(this, entries);
      },
    });
  loadGauge('documents_expected', 'Documents mongodump announced for the collection (source namespace)', (c) => c.total);
  loadGauge('documents_dumped', 'Documents mongodump has read of the collection', (c) => c.dumped);
  loadGauge('documents_restored', 'Documents mongorestore reported restored (set when the collection finishes)', (c) => c.restored);
  loadGauge('collection_done', '1 once the collection is loaded', (c) => (c.done ? 1 : 0));
  loadGauge('bytes_expected', 'Size of the source collection when the load started (collStats size: uncompressed BSON bytes)', (c) => c.sizeBytes);
  loadGauge('bytes_dumped', 'Estimated bytes mongodump has read: documents read × the collection\'s average document size', (c) =>
    c.sizeBytes === undefined ? undefined : c.done ? c.sizeBytes : Math.round(c.sizeBytes * Math.min(1, c.dumped / Math.max(1, c.total ?? c.sizeCount ?? 1))),
  );
  new Gauge({
    name: `${p}load_eta_seconds`,
    help: 'Estimated seconds until the initial load has read every document (documents left / rate so far); absent before the first progress',
    registers,
    collect() {
      this.reset();
      const load = stats.load;
      let total = 0;
      let done = 0;
      for (const c of load.collections.values()) {
        const t = c.total ?? c.dumped;
        total += t;
        done += c.done ? t : Math.min(c.dumped, t);
      }
      const elapsed = (Date.now() - load.startedAtMs) / 1000;
      if (load.startedAtMs === 0 || total === 0) return;
      if (done >= total) this.set(0);
      else if (done > 0 && elapsed > 0) this.set(((total - done) * elapsed) / done);
    },
  });
}

/**
 * Reads the size of each collection about to be loaded, for the load's byte metrics (the tools
 * report documents only). Best effort, one `collStats` at a time, only when metrics are served:
 * a refusal or an error leaves the byte metrics out, nothing else. `collStats` is documented for
 * MongoDB (https://www.mongodb.com/docs/manual/reference/command/collStats/, `size`: "the total
 * uncompressed size in memory of all records in a collection"; deprecated since 6.2 in favour of
 * $collStats, still served) and listed as supported by Amazon DocumentDB
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html); the least
 * privileged source user's `readAnyDatabase` grants its action.
 */
export async function noteLoadSizes(source: MongoClient, namespaces: readonly { db: string; coll: string }[]): Promise<void> {
  for (const { db, coll } of namespaces) {
    try {
      const r = await source.db(db).command({ collStats: coll });
      const size = Number(r.size);
      const count = Number(r.count);
      if (Number.isFinite(size) && size >= 0) noteLoadSize(`${db}.${coll}`, size, Number.isFinite(count) ? count : 0);
    } catch {
      // Best effort: no byte metrics for this collection.
    }
  }
}
