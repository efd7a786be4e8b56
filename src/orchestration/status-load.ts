// The initial load's section of `migrator status`: per collection and in total, documents and
// bytes copied, units done / running / pending, the rate over the last minute and the ETA.
import type { LoadUnitDoc, MigrationDoc } from '../state/store.js';
import { loadNs } from '../state/store.js';
import { bytesLeft, etaFrom, recentThroughput, unitBytes, type Throughput } from './forecast.js';
import type { LoadNamespaceStatus, LoadStatus, UnitCounts } from './status-types.js';
import { iso, ms, num, percentOf, round1 } from './status-values.js';
import { loadIndexStatus, namespaceIndexStatus } from './index-progress.js';

function unitCounts(units: LoadUnitDoc[], nowMs: number): UnitCounts {
  const c: UnitCounts = { total: units.length, done: 0, running: 0, pending: 0 };
  for (const u of units) {
    if (u.state === 'done') c.done++;
    // A unit whose holder stopped renewing is pending again: another worker takes it over.
    else if (u.state === 'running' && u.lease?.owner && (ms(u.lease.expiresAt) ?? 0) > nowMs) c.running++;
    else c.pending++;
  }
  return c;
}

/**
 * Seconds left for `units` at the rate of this load attempt: the estimated bytes (collStats) of
 * the ranges finished since `startedAt` per second, against those of the unfinished ranges. (Both
 * sides in estimated bytes: the archive bytes a pipe reports are compressed with --gzip.)
 */
function etaSeconds(units: LoadUnitDoc[], all: LoadUnitDoc[], startedMs: number | undefined, nowMs: number): number | null {
  if (startedMs === undefined || nowMs <= startedMs) return null;
  const copied = all
    .filter((u) => u.kind === 'range' && u.state === 'done' && (ms(u.finishedAt) ?? 0) >= startedMs)
    .reduce((s, u) => s + (num(u.estimatedBytes) ?? 0), 0);
  const left = units.filter((u) => u.kind === 'range' && u.state !== 'done').reduce((s, u) => s + (num(u.estimatedBytes) ?? 0), 0);
  if (left === 0) return units.some((u) => u.state !== 'done') ? null : 0;
  if (copied === 0) return null;
  return Math.round(left / (copied / ((nowMs - startedMs) / 1000)));
}

/** Bytes per second of a throughput, unrounded (the ETA divides by it). */
const rateOf = (t: Throughput | null) => (t && t.windowSeconds > 0 ? t.bytes / t.windowSeconds : null);

export function buildLoad(m: MigrationDoc, units: LoadUnitDoc[] = [], nowMs = Date.now()): LoadStatus | null {
  const load = m.load;
  if (!load || typeof load !== 'object') return null;
  const startedMs = ms(load.startedAt);
  const byNs = new Map<string, LoadUnitDoc[]>();
  for (const u of units) if (u.kind !== 'database') byNs.set(`${u.sourceDb}.${u.coll}`, [...(byNs.get(`${u.sourceDb}.${u.coll}`) ?? []), u]);
  const namespaces: LoadNamespaceStatus[] = [];
  let totalDocuments = 0;
  let restoredDocuments = 0;
  for (const [key, p] of Object.entries(load.collections ?? {})) {
    const total = num(p?.total);
    const restored = num(p?.restored);
    const done = p?.done === true;
    totalDocuments += total ?? 0;
    restoredDocuments += restored ?? 0;
    namespaces.push({
      ns: loadNs(key),
      target: typeof p?.target === 'string' ? p.target : loadNs(key),
      total: total ?? null,
      dumped: num(p?.dumped) ?? null,
      restored: restored ?? null,
      done,
      percent: percentOf(done, restored ?? 0, total),
      ...(p?.loadOnly === true ? { loadOnly: true } : {}),
      bytes: num(p?.bytes) ?? null,
      partitions: null,
      etaSeconds: null,
      estimatedBytes: null,
      throughput: null,
      throughputEtaSeconds: null,
      indexes: namespaceIndexStatus(loadNs(key), p, units, Boolean(load.finishedAt), nowMs),
    });
    const own = byNs.get(loadNs(key));
    if (own) {
      const ns = namespaces[namespaces.length - 1]!;
      const ranges = own.filter((u) => u.kind === 'range');
      ns.partitions = unitCounts(ranges, nowMs);
      ns.bytes = ranges.filter((u) => u.state === 'done').reduce((s, u) => s + (num(u.bytes) ?? 0), 0);
      ns.etaSeconds = done ? 0 : etaSeconds(own, units, startedMs, nowMs);
      ns.estimatedBytes = own.reduce((s, u) => s + unitBytes(u), 0);
      if (!done) {
        ns.throughput = recentThroughput(own, nowMs, startedMs);
        ns.throughputEtaSeconds = etaFrom(bytesLeft(own, nowMs), rateOf(ns.throughput));
      } else ns.throughputEtaSeconds = 0;
      if (!done && ns.percent === null && ranges.length) ns.percent = Math.min(99.9, round1((ns.partitions.done / ranges.length) * 100));
    }
  }
  namespaces.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
  const collectionsDone = namespaces.filter((n) => n.done).length;
  const done = load.finishedAt !== undefined && load.finishedAt !== null
    ? true
    : namespaces.length > 0 && collectionsDone === namespaces.length;
  return {
    attempt: num(load.attempt) ?? 1,
    startedAt: iso(load.startedAt),
    finishedAt: iso(load.finishedAt),
    done,
    collections: namespaces.length,
    collectionsDone,
    totalDocuments,
    restoredDocuments,
    percent: done ? 100 : totalDocuments > 0 ? Math.min(99.9, round1((restoredDocuments / totalDocuments) * 100)) : 0,
    namespaces,
    units: unitCounts(units, nowMs),
    bytes: units.filter((u) => u.state === 'done').reduce((s, u) => s + (num(u.bytes) ?? 0), 0),
    etaSeconds: done ? 0 : etaSeconds(units, units, startedMs, nowMs),
    estimatedBytes: units.reduce((s, u) => s + unitBytes(u), 0),
    estimatedBytesLeft: done ? 0 : bytesLeft(units, nowMs),
    throughput: done ? null : recentThroughput(units, nowMs, startedMs),
    throughputEtaSeconds: done ? 0 : etaFrom(bytesLeft(units, nowMs), rateOf(recentThroughput(units, nowMs, startedMs))),
    indexes: loadIndexStatus(namespaces),
  };
}
