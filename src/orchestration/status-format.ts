// Text rendering of `migrator status` (stdout for people; `status --json` prints the report itself).
import { HELD_EXPIRE_AFTER_SECONDS } from '../db/ttl-hold.js';
import { formatDuration } from '../util/duration.js';
import { restoreCommandText } from './ttl.js';
import { formatLoadIndexes, formatNamespaceIndexes } from './index-progress.js';
import type { ClusterTimeJson, StatusReport } from './status-types.js';

function ago(at: string | null, now: number): string {
  if (!at) return '';
  const d = now - new Date(at).getTime();
  return d >= 0 ? ` (${formatDuration(d)} ago)` : ` (in ${formatDuration(-d)})`;
}

function bytesText(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

const ctText = (c: ClusterTimeJson | null) => (c ? `${c.t},${c.i} (${new Date(c.t * 1000).toISOString()})` : 'unknown');

function cutoverLines(r: StatusReport, now: number): string[] {
  const c = r.cutover;
  if (!c) return ['cutover: not requested'];
  const lines: string[] = [];
  switch (c.state) {
    case 'requested':
      lines.push(`cutover: requested${ago(c.requestedAt, now)}${r.phase === 'CATCHING_UP' ? ', starts once apply has caught up' : ''}`);
      break;
    case 'barrier-sent':
      lines.push(`cutover: barrier sent${ago(c.barrierSentAt, now)}, shards reached the barrier ${c.shardsReached}/${c.shardsTotal}`);
      break;
    case 'completed':
      lines.push(`cutover: completed at ${c.completedAt ?? 'unknown'}`);
      break;
    case 'aborted':
      lines.push(`cutover: aborted at ${c.abortedAt ?? 'unknown'}${c.abortReason ? `: ${c.abortReason}` : ''}`);
      break;
  }
  if ((c.state === 'completed' || c.state === 'aborted') && c.writesBlockedByMigrator) {
    lines.push(
      c.state === 'completed'
        ? '  writes to the source: still blocked by the migrator (undo on the source: db.adminCommand({setUserWriteBlockMode: 1, global: false}))'
        : '  writes to the source: still blocked by the migrator; full-migrate unblocks them when it runs (or, on the source: db.adminCommand({setUserWriteBlockMode: 1, global: false}))',
    );
  }
  if (c.state === 'requested' || c.state === 'barrier-sent') {
    if (c.writesBlockedByMigrator) lines.push('  writes to the source: blocked by the migrator');
    else if (c.writesStopped) lines.push('  writes to the source: stopped (confirmed by the operator)');
    else {
      lines.push(
        '  waiting for --writes-stopped: stop the applications writing to the source, then run `migrator cutover --writes-stopped`',
      );
    }
  }
  return lines;
}

function applyBasisText(f: NonNullable<StatusReport['forecast']>): string {
  const over = f.applyRateWindowSeconds === null ? '' : ` ${formatDuration(f.applyRateWindowSeconds * 1000)}`;
  switch (f.applyRateBasis) {
    case 'last-minute':
      return `measured over the last${over}`;
    case 'since-apply-start':
      return `measured: average over the${over} since apply started`;
    case 'given':
      return 'given';
    default:
      return 'assumed: apply has not run yet';
  }
}

function forecastLines(f: StatusReport['forecast']): string[] {
  if (!f) return [];
  const d = (s: number | null) => (s === null ? 'unknown' : formatDuration(s * 1000));
  const verdict = f.ok === null ? 'cannot tell yet' : f.ok ? 'ok' : 'WARNING';
  const lines = [
    `retention forecast: ${verdict}; stream retention ${f.streamRetentionHours === null ? 'unknown' : `${f.streamRetentionHours} h`}, load left ${d(f.loadEtaSeconds)}, catch-up ${d(f.catchUpEtaSeconds)}` +
      (f.requiredHours !== null ? `, needs about ${f.requiredHours} h` : '') +
      (f.marginHours !== null ? `, margin ${f.marginHours} h` : ''),
  ];
  if (f.sourceHistoryHours !== null) lines.push(`  source change-stream history ${f.sourceHistoryHours} h (${f.sourceHistoryBasis ?? 'unknown basis'})`);
  for (const w of f.warnings) lines.push(`  WARNING: ${w}`);
  lines.push(`  catch-up at ${f.applyEventsPerSecond} events/s applied (${applyBasisText(f)}) against ${f.changeEventsPerSecond ?? 'unknown'} changes/s on the source`);
  if (f.assumptions.length) lines.push(`  assumed: ${f.assumptions.join('; ')}`);
  return lines;
}

function loadLines(l: StatusReport['load']): string[] {
  if (!l) return ['initial load: not started'];
  const state = l.done ? `done${l.finishedAt ? ` at ${l.finishedAt}` : ''}` : `running since ${l.startedAt ?? 'unknown'}`;
  const lines = [`initial load: ${state} (attempt ${l.attempt}), ${l.collectionsDone}/${l.collections} collections, ${l.restoredDocuments}/${l.totalDocuments} documents, ${l.percent}%`];
  if (l.units.total > 0) {
    const eta = l.etaSeconds === null || l.done ? '' : `, ETA ${formatDuration(l.etaSeconds * 1000)}`;
    lines.push(`  units: ${l.units.done}/${l.units.total} done, ${l.units.running} running, ${l.units.pending} pending; ${bytesText(l.bytes)} copied${eta}`);
    if (!l.done && l.throughput) {
      const t = l.throughput;
      const teta = l.throughputEtaSeconds === null ? 'ETA unknown (nothing copied in the window)' : `ETA ${formatDuration(l.throughputEtaSeconds * 1000)}`;
      lines.push(
        `  last ${formatDuration(t.windowSeconds * 1000)}: ${bytesText(t.bytes)} (${t.documents} documents), ${bytesText(t.bytesPerSecond)}/s; ` +
          `${bytesText(l.estimatedBytesLeft)} of ${bytesText(l.estimatedBytes)} estimated left, ${teta}`,
      );
    }
  }
  const ix = formatLoadIndexes(l.indexes);
  if (ix) lines.push(ix);
  for (const n of l.namespaces) {
    const target = n.target !== n.ns ? ` → ${n.target}` : '';
    const count = `${n.restored ?? 0}/${n.total ?? '?'}`;
    const pct = n.percent === null ? '' : ` ${n.percent}%`;
    const parts = n.partitions
      ? `, ranges ${n.partitions.done}/${n.partitions.total} (${n.partitions.running} running, ${n.partitions.pending} pending), ${bytesText(n.bytes ?? 0)}` +
        (n.throughput && !n.done ? `, ${bytesText(n.throughput.bytesPerSecond)}/s over the last ${formatDuration(n.throughput.windowSeconds * 1000)}` : '') +
        ((n.throughputEtaSeconds ?? n.etaSeconds) && !n.done ? `, ETA ${formatDuration((n.throughputEtaSeconds ?? n.etaSeconds)! * 1000)}` : '')
      : '';
    lines.push(`  ${n.ns}${target}: ${count}${pct}${parts}${formatNamespaceIndexes(n.indexes)}${n.done ? ' done' : ''}${n.loadOnly ? ' (load-only)' : ''}`);
  }
  const loadOnly = l.namespaces.filter((n) => n.loadOnly).map((n) => n.ns);
  if (loadOnly.length) {
    lines.push(`  not in sync: ${loadOnly.join(', ')} (time series, copied once by the load; change streams do not report their writes, so later writes are not migrated)`);
  }
  return lines;
}

function replicationLines(r: StatusReport, now: number): string[] {
  const lines: string[] = [];
  const c = r.capture;
  if (!c) lines.push('capture: no checkpoint yet');
  else {
    lines.push(
      `capture: ${c.events} events captured (${c.markers} cutover markers, ${bytesText(c.bytes)}), last event ${c.lastEventAt ?? 'unknown'}`,
      `  checkpoint ${ctText(c.clusterTime)}, saved ${c.checkpointAt ?? 'unknown'}${ago(c.checkpointAt, now)}`,
      `  active capture: ${c.leaseOwner && c.leaseActive ? c.leaseOwner : 'none (no current lease)'}`,
    );
  }
  const a = r.apply;
  lines.push(
    `apply: ${a.events} events applied over ${a.shards} shard${a.shards === 1 ? '' : 's'}` +
      (a.shardsEnded ? ` (${a.shardsEnded} ended)` : '') +
      (a.lastAppliedAt ? `, last applied event ${a.lastAppliedAt}` : '') +
      (a.maxMillisBehindLatest !== null ? `, ${a.maxMillisBehindLatest}ms behind the stream tip` : ''),
  );
  const lagSec = r.lag.seconds === null ? 'unknown' : formatDuration(r.lag.seconds * 1000);
  lines.push(`lag: ${r.lag.events} events, ${lagSec}${r.lag.basis && r.lag.basis !== 'caught-up' ? ` (by ${r.lag.basis})` : ''}`);
  if (r.shards.length) lines.push('shards:');
  for (const s of r.shards) {
    const parts = [`seq ${s.sequenceNumber ?? 'none (start of shard)'}`, `${s.events} events`];
    if (s.ended) parts.push('ended');
    else if (s.leaseOwner) parts.push(`lease ${s.leaseOwner} until ${s.leaseExpiresAt ?? '?'}${s.leaseActive ? '' : ' (expired)'}`);
    else parts.push('no lease holder');
    if (s.millisBehindLatest !== null && !s.ended) parts.push(`${s.millisBehindLatest}ms behind`);
    if (s.reachedBarrier) parts.push('reached the barrier');
    if (s.stalledSince) parts.push(`STALLED since ${s.stalledSince} (the target acknowledges no write)`);
    lines.push(`  ${s.shardId}: ${parts.join(', ')}`);
  }
  return lines;
}

function ttlLines(r: StatusReport): string[] {
  if (!r.ttlHeld.length) return [];
  const lines = [`TTL held on the target: ${r.ttlHeld.length} index(es) do not expire documents until the cutover restores them (expireAfterSeconds ${HELD_EXPIRE_AFTER_SECONDS}):`];
  for (const h of r.ttlHeld) lines.push(`  ${h.target} ${h.name}: original expireAfterSeconds ${h.originalExpireAfterSeconds}`);
  if (r.phase === 'FAILED' || r.phase === 'ABORTED') {
    lines.push('  to abandon the migration, restore them on the target:');
    for (const h of r.ttlHeld) {
      const [db, ...rest] = h.target.split('.');
      lines.push(`    ${restoreCommandText({ db: db!, coll: rest.join('.'), name: h.name, originalExpireAfterSeconds: h.originalExpireAfterSeconds })}`);
    }
  }
  return lines;
}

/** Human-readable status (stdout of `migrator status`). */
export function formatStatusReport(r: StatusReport): string {
  const now = new Date(r.generatedAt).getTime();
  let why = '';
  if (!r.canCutover) why = r.phase === 'READY_FOR_CUTOVER' ? ' (a cutover is already in progress)' : ` (phase ${r.phase})`;
  const rp = r.resumePoint;
  const e = r.lastError;
  return [
    `migration ${r.migrationId}: ${r.phase}, since ${r.phaseChangedAt ?? 'unknown'}${ago(r.phaseChangedAt, now)}`,
    `  created ${r.createdAt ?? 'unknown'}, updated ${r.updatedAt ?? 'unknown'}${ago(r.updatedAt, now)}`,
    `  can cut over: ${r.canCutover ? 'yes, run `migrator cutover`' : `no${why}`}`,
    ...loadLines(r.load),
    ...replicationLines(r, now),
    rp ? `resume point: ${ctText(rp.clusterTime)}, taken ${rp.takenAt ?? 'unknown'}` : 'resume point: not taken yet',
    ...cutoverLines(r, now),
    ...ttlLines(r),
    ...forecastLines(r.forecast),
    ...(e ? [`last error (${e.phase}${e.exitCode !== null ? `, exit ${e.exitCode}` : ''}, ${e.at ?? 'unknown'}): ${e.message}`] : []),
  ].join('\n');
}
