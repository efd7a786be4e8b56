/**
 * `migrator status`: the state of one migration, computed from the state-store documents.
 *
 * `buildStatusReport` is pure (documents + clock in, plain JSON-able report out); `formatStatusReport`
 * (status-format.ts) renders it for people. `readStatusInputs` / `requireMigration` are the only
 * I/O here: they read the documents from a StateStore. The JSON schema of `status --json` and how
 * the lag is computed: status-types.ts. Sections: status-load.ts (initial load, ETA),
 * status-forecast.ts (retention forecast).
 */
import type { CutoverDoc, MigrationDoc, ShardDoc, StateStore } from '../state/store.js';
import { activeTtlHolds } from './ttl.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { buildLoad } from './status-load.js';
import { buildForecast } from './status-forecast.js';
import { STATUS_SCHEMA_VERSION, type ApplyStatusSummary, type CaptureStatus, type CutoverStatus, type LagStatus, type ShardStatus, type StatusInputs, type StatusReport } from './status-types.js';
import { clusterTime, ejson, iso, ms, num, round1 } from './status-values.js';

export * from './status-types.js';
export { formatStatusReport } from './status-format.js';

export function isActiveCutover(c: CutoverDoc | null | undefined): boolean {
  return !!c && (c.state === 'requested' || c.state === 'barrier-sent');
}

export function waitingForWritesStopped(c: CutoverDoc | null | undefined): boolean {
  return isActiveCutover(c) && !c!.writesStopped && !c!.writesBlockedByMigrator;
}

function buildShards(shards: ShardDoc[], cutover: CutoverDoc | null, nowMs: number): ShardStatus[] {
  const reached = new Set(Array.isArray(cutover?.reachedShards) ? cutover!.reachedShards : []);
  return shards.map((s) => {
    const cp = s.checkpoint;
    const c = (cp?.counters ?? {}) as Record<string, unknown>;
    const expires = ms(s.lease?.expiresAt);
    const owner = typeof s.lease?.owner === 'string' ? s.lease.owner : null;
    const lastCt = num(c.lastClusterTime);
    const lastWall = num(c.lastWallTime);
    const behind = num(c.millisBehindLatest);
    return {
      shardId: s.shardId,
      sequenceNumber: typeof cp?.sequenceNumber === 'string' ? cp.sequenceNumber : null,
      leaseOwner: owner,
      leaseEpoch: num(s.lease?.epoch) ?? 0,
      leaseExpiresAt: owner && expires !== undefined && expires > 0 ? new Date(expires).toISOString() : null,
      leaseActive: owner !== null && expires !== undefined && expires > nowMs,
      events: num(c.events) ?? 0,
      lastClusterTime: lastCt !== undefined && lastCt > 0 ? lastCt : null,
      lastAppliedAt: lastWall !== undefined && lastWall > 0 ? new Date(lastWall).toISOString() : null,
      millisBehindLatest: behind !== undefined && behind >= 0 ? behind : null,
      ended: cp?.shardEnded === true,
      checkpointAt: iso(cp?.at),
      reachedBarrier: reached.has(s.shardId),
      // Only while a live lease holder says so: a dead process's mark is not news.
      stalledSince: owner !== null && expires !== undefined && expires > nowMs ? iso(s.stalledSince) : null,
    };
  });
}

function buildCutover(c: CutoverDoc | null, shards: ShardStatus[]): CutoverStatus | null {
  if (!c) return null;
  const reachedShards = Array.isArray(c.reachedShards) ? [...c.reachedShards].sort() : [];
  const open = shards.filter((s) => !s.ended).length;
  return {
    state: c.state,
    requestedAt: iso(c.requestedAt),
    updatedAt: iso(c.updatedAt),
    barrierId: typeof c.barrierId === 'string' ? c.barrierId : null,
    barrierSentAt: iso(c.barrierSentAt),
    shardsReached: reachedShards.length,
    // Closed (resharded) shards get no barrier; a shard that reached it stays counted.
    shardsTotal: Math.max(open, reachedShards.length),
    reachedShards,
    writesStopped: c.writesStopped === true,
    writesBlockedByMigrator: c.writesBlockedByMigrator === true,
    waitingForWritesStopped: waitingForWritesStopped(c),
    abortReason: typeof c.abortReason === 'string' ? c.abortReason : null,
    abortedAt: iso(c.abortedAt),
    completedAt: iso(c.completedAt),
  };
}

function buildLag(inputs: StatusInputs, captured: number, applied: number): LagStatus {
  const events = Math.max(0, captured - applied);
  if (events === 0) return { events, seconds: 0, basis: 'caught-up' };
  const cap = inputs.capture;
  const capWallMs = num(cap?.counters?.lastEventAtMs);
  let appliedWallMs: number | undefined;
  let appliedCt: number | undefined;
  for (const s of inputs.shards) {
    const c = (s.checkpoint?.counters ?? {}) as Record<string, unknown>;
    const w = num(c.lastWallTime);
    const t = num(c.lastClusterTime);
    if (w !== undefined && w > 0) appliedWallMs = Math.max(appliedWallMs ?? 0, w);
    if (t !== undefined && t > 0) appliedCt = Math.max(appliedCt ?? 0, t);
  }
  if (capWallMs !== undefined && capWallMs > 0 && appliedWallMs !== undefined) {
    return { events, seconds: round1(Math.max(0, capWallMs - appliedWallMs) / 1000), basis: 'wallTime' };
  }
  const capCt = clusterTime(cap?.ct)?.t;
  const fromCt = appliedCt ?? clusterTime(inputs.migration.resumePoint?.ct)?.t;
  if (capCt !== undefined && fromCt !== undefined) {
    return { events, seconds: Math.max(0, capCt - fromCt), basis: 'clusterTime' };
  }
  return { events, seconds: null, basis: null };
}

/** The status of a migration from its state documents (pure). */
export function buildStatusReport(inputs: StatusInputs, now: Date = new Date()): StatusReport {
  const m = inputs.migration;
  const nowMs = now.getTime();
  const shards = buildShards(inputs.shards, inputs.cutover, nowMs);
  const cap = inputs.capture;
  const capCounters = (cap?.counters ?? {}) as Record<string, unknown>;
  const capLastEventMs = num(capCounters.lastEventAtMs);
  const capture: CaptureStatus | null = cap
    ? {
        events: num(capCounters.events) ?? 0,
        markers: num(capCounters.markers) ?? 0,
        bytes: num(capCounters.bytes) ?? 0,
        lastEventAt: capLastEventMs !== undefined && capLastEventMs > 0 ? new Date(capLastEventMs).toISOString() : null,
        clusterTime: clusterTime(cap.ct),
        checkpointAt: iso(cap.updatedAt),
        leaseOwner: inputs.captureLease?.owner ?? null,
        leaseActive: Boolean(inputs.captureLease && inputs.captureLease.expiresAt.getTime() > nowMs),
      }
    : null;
  const appliedEvents = shards.reduce((n, s) => n + s.events, 0);
  const lastCts = shards.map((s) => s.lastClusterTime).filter((x): x is number => x !== null);
  const lastWalls = shards.map((s) => s.lastAppliedAt).filter((x): x is string => x !== null).sort();
  const behinds = shards.filter((s) => !s.ended).map((s) => s.millisBehindLatest).filter((x): x is number => x !== null);
  const apply: ApplyStatusSummary = {
    events: appliedEvents,
    shards: shards.length,
    shardsEnded: shards.filter((s) => s.ended).length,
    lastClusterTime: lastCts.length ? Math.max(...lastCts) : null,
    lastAppliedAt: lastWalls.length ? lastWalls[lastWalls.length - 1]! : null,
    maxMillisBehindLatest: behinds.length ? Math.max(...behinds) : null,
    stalledShards: shards.filter((s) => s.stalledSince !== null).length,
  };
  const rp = m.resumePoint;
  const le = m.lastError;
  const load = buildLoad(m, inputs.loadUnits ?? [], nowMs);
  const lag = buildLag(inputs, capture?.events ?? 0, appliedEvents);
  return {
    schemaVersion: STATUS_SCHEMA_VERSION,
    migrationId: m._id,
    phase: m.phase,
    canCutover: m.phase === 'READY_FOR_CUTOVER' && !isActiveCutover(inputs.cutover),
    createdAt: iso(m.createdAt),
    updatedAt: iso(m.updatedAt),
    phaseChangedAt: iso(m.phaseChangedAt),
    generatedAt: now.toISOString(),
    resumePoint: rp ? { clusterTime: clusterTime(rp.ct), resumeToken: ejson(rp.rt), takenAt: iso(rp.takenAt) } : null,
    load,
    capture,
    apply,
    lag,
    shards,
    cutover: buildCutover(inputs.cutover, shards),
    lastError: le
      ? { message: String(le.message ?? ''), at: iso(le.at), phase: String(le.phase ?? ''), exitCode: num(le.exitCode) ?? null }
      : null,
    ttlHeld: activeTtlHolds(inputs.ttlHolds ?? []).map((h) => ({
      target: `${h.db}.${h.coll}`,
      name: h.name,
      originalExpireAfterSeconds: h.originalExpireAfterSeconds,
      heldSince: iso(h.recordedAt),
    })),
    forecast: buildForecast(inputs, load, capture, lag, nowMs),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading the documents (the only I/O of this module)

/** The STATE_CONFLICT error for an unknown migration id, naming the ones that exist. */
export function unknownMigrationError(id: string, existing: readonly string[]): MigratorError {
  const known = existing.length ? `existing migrations: ${existing.join(', ')}` : 'the state store holds no migration';
  return new MigratorError(ExitCode.STATE_CONFLICT, `Unknown migration id '${id}' (${known}).`, {
    hint: 'Pass --migration-id (MIGRATOR_MIGRATION_ID), and the same --state-uri / --state-db as the migration.',
  });
}

export async function requireMigration(store: StateStore, id: string): Promise<MigrationDoc> {
  const m = await store.getMigration(id);
  if (m) return m;
  const all = await store.listMigrations();
  throw unknownMigrationError(id, all.map((x) => x._id));
}

/** Reads every document the status is computed from; STATE_CONFLICT when the migration is unknown. */
export async function readStatusInputs(store: StateStore, id: string): Promise<StatusInputs> {
  const migration = await requireMigration(store, id);
  // The load's units only while it runs: afterwards their counts are final in `load` and the read
  // would only slow every status (and cutover --wait) poll.
  const loading = Boolean(migration.load && !migration.load.finishedAt);
  const [capture, shards, cutover, captureLease, loadUnits, ttlHolds] = await Promise.all([
    store.getCaptureCheckpoint(id),
    store.listShards(id),
    store.getCutover(id),
    store.getCaptureLease(id),
    loading ? store.listLoadUnits(id) : Promise.resolve([]),
    store.listTtlHolds(id),
  ]);
  return { migration, capture, shards, cutover, captureLease, loadUnits, ttlHolds };
}
