import { DescribeStreamSummaryCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { Timestamp, type Document, type MongoClient } from 'mongodb';
import { readShardKeys } from '../db/shard-keys.js';
import { describeServer, type ServerInfo } from '../db/server-info.js';
import { targetCompatibility, type CompatReport, type TimeSeriesMode } from './target-compat.js';
import { listSourceNamespaces } from '../verify/verify-migration.js';
import type { NamespaceRules } from '../model/namespace-filter.js';
import { toolVersions, type ToolBinaries, type ToolVersions } from '../initial-load/tool-binaries.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { streamParams } from '../model/stream-ref.js';
import { assertStreamActive } from '../transport/stream-errors.js';
import { retryTransient } from '../db/transient-retry.js';
import { describeShortfalls, missingActions, readAccess, shortfalls, sourceNeeds, targetNeeds, writeBlockNeed, WRITE_BLOCK_ACTIONS, WRITE_BLOCK_ROLE, type Shortfall } from '../db/privileges.js';
import { MARKER_COLLECTION } from '../source/capture-runner.js';
import { estimateCollection } from '../initial-load/partition-plan.js';
import {
  DEFAULT_LOAD_BYTES_PER_SECOND,
  DOCUMENTDB_DEFAULT_CHANGE_STREAM_RETENTION_HOURS,
  OPTIMISTIC_LOAD_BYTES_PER_SECOND,
  clearlyImpossible,
  forecastRetention,
  type RetentionForecast,
} from './forecast.js';

export interface PreflightProblem {
  check: string;
  problem: string;
  remedy: string;
}

export interface PreflightReport {
  source?: ServerInfo;
  target?: ServerInfo;
  tools?: ToolVersions;
  stream?: { status?: string; retentionHours?: number; openShards?: number };
  namespaces: { db: string; coll: string }[];
  /** Target collections already sharded (a mongos target), with their shard keys. */
  shardedTargets: { ns: string; key: Document }[];
  problems: PreflightProblem[];
  /** Things that do not stop the migration but change how it runs (logged). */
  warnings: string[];
  /** The compatibility doctor's report (absent when the target or the namespaces could not be read). */
  compat?: CompatReport;
  /** The retention forecast (forecast.ts), when the stream could be described; its warnings are in `warnings` too. */
  forecast?: RetentionForecast & { estimatedBytes: number; loadBytesPerSecond: number };
  /** The source's change-stream history and rate of changes, as far as preflight could tell. */
  sourceHistory?: { hours: number | null; basis: string; changeEventsPerSecond: number | null };
}

export interface PreflightInput {
  source: MongoClient;
  sourceUri: string;
  target: MongoClient;
  targetUri: string;
  rules: NamespaceRules;
  stateDb: string;
  kinesis?: { client: KinesisClient; streamName: string };
  /** Check mongodump/mongorestore (the initial load needs them). */
  bins?: ToolBinaries;
  /** Target collections must be empty (a fresh migration without --drop). */
  requireEmptyTarget: boolean;
  /** DocumentDB: enable change streams on the included databases when they are off. */
  enableChangeStreams: boolean;
  /** Hours of stream retention the migration needs at least (default 24). */
  minRetentionHours?: number;
  /** --time-series: a time-series collection is a problem (refuse, the default) or copied once (load-only). */
  timeSeries?: TimeSeriesMode;
  /** The initial load is still ahead (forecast its duration); default: when `bins` is given. */
  loadAhead?: boolean;
  /** Load rate for the forecast before any was measured (bytes/s; default DEFAULT_LOAD_BYTES_PER_SECOND). */
  loadBytesPerSecond?: number;
  /** --source-change-stream-retention (hours): DocumentDB's change_stream_log_retention_duration, which cannot be read. */
  sourceChangeStreamRetentionHours?: number;
}

/** A database failing over during preflight is waited out (briefly), not reported as a problem to fix. */
const PREFLIGHT_RETRY = { retryForMs: 20_000 };

/**
 * Preflight: every check runs, and all problems are reported together with their remedy, so an
 * operator fixes them in one round instead of one failed start at a time.
 */

export async function runPreflight(p: PreflightInput): Promise<PreflightReport> {
  const report: PreflightReport = { namespaces: [], shardedTargets: [], problems: [], warnings: [] };
  const problem: Problem = (check, text, remedy) => report.problems.push({ check, problem: text, remedy });
  await checkServers(p, report, problem);
  checkRetryableWrites(p, report, problem);
  await checkTools(p, report, problem);
  await checkStream(p, report, problem);
  await checkNamespaces(p, report, problem);
  await checkPrivileges(p, report, problem);
  await forecast(p, report, problem);
  await checkShardedTargets(p, report, problem);
  return report;
}

/** Reports a problem found by a check, with its remedy. */
type Problem = (check: string, text: string, remedy: string) => void;

/** Both servers answer; the source's change streams can be opened (DocumentDB: enabled on request). */
async function checkServers(p: PreflightInput, report: PreflightReport, problem: Problem): Promise<void> {
  try {
    report.source = await retryTransient('source', () => describeServer(p.source, p.sourceUri), PREFLIGHT_RETRY);
    if (!report.source.changeStreams.usable && report.source.flavor === 'documentdb' && p.enableChangeStreams) {
      await p.source.db('admin').command({ modifyChangeStreams: 1, database: '', collection: '', enable: true });
      report.source = await retryTransient('source', () => describeServer(p.source, p.sourceUri), PREFLIGHT_RETRY);
    }
    if (!report.source.changeStreams.usable) {
      problem(
        'source change streams',
        report.source.changeStreams.reason ?? 'change streams cannot be opened on the source',
        report.source.flavor === 'documentdb'
          ? 'Enable them: db.adminCommand({modifyChangeStreams: 1, database: "", collection: "", enable: true}), or pass --enable-change-streams.'
          : 'The source must be a replica set or sharded cluster, and the user needs the changeStream and find privileges.',
      );
    }
  } catch (err) {
    problem('source', errorMessage(err), 'Check the source user has clusterMonitor (buildInfo, hello) and read privileges.');
  }
  try {
    report.target = await retryTransient('target', () => describeServer(p.target, p.targetUri), PREFLIGHT_RETRY);
  } catch (err) {
    problem('target', errorMessage(err), 'Check the target user can run buildInfo and hello.');
  }

}

/** DocumentDB before 8.0.2 refuses retryable writes: the driver's effective setting must be off. */
function checkRetryableWrites(p: PreflightInput, report: PreflightReport, problem: Problem): void {
  // Retryable writes: Amazon DocumentDB before 8.0.2 refuses them, so every write (state, marker,
  // apply, mongorestore) would fail; the driver's effective setting is checked, whatever set it.
  // https://docs.aws.amazon.com/documentdb/latest/developerguide/retryable-writes.html
  for (const [role, info, client] of [['source', report.source, p.source], ['target', report.target, p.target]] as const) {
    if (info?.flavor === 'documentdb' && Number.parseInt(info.version, 10) < 8 && client.options.retryWrites) {
      problem(
        `${role} retryable writes`,
        `the ${role} is Amazon DocumentDB ${info.version}${info.engineVersion ? ` (engine ${info.engineVersion})` : ''}, which refuses retryable writes`,
        `Pass --no-${role}-retry-writes${role === 'target' ? ' (and --no-state-retry-writes for a separate state store on DocumentDB)' : ''}, or put retryWrites=false in the ${role} connection string.`,
      );
    }
  }

}

/** mongodump and mongorestore run and report their versions. */
async function checkTools(p: PreflightInput, report: PreflightReport, problem: Problem): Promise<void> {
  if (p.bins) {
    try {
      report.tools = await toolVersions(p.bins);
    } catch (err) {
      problem('mongodump/mongorestore', errorMessage(err), (err as MigratorError).hint ?? 'Install the MongoDB Database Tools.');
    }
  }

}

/** The Kinesis stream exists, is ACTIVE and keeps records long enough. */
async function checkStream(p: PreflightInput, report: PreflightReport, problem: Problem): Promise<void> {
  if (p.kinesis) {
    try {
      const out = await p.kinesis.client.send(new DescribeStreamSummaryCommand(streamParams(p.kinesis.streamName)));
      const s = out.StreamDescriptionSummary;
      report.stream = { status: s?.StreamStatus, retentionHours: s?.RetentionPeriodHours, openShards: s?.OpenShardCount };
      try {
        assertStreamActive(p.kinesis.streamName, s?.StreamStatus);
      } catch (err) {
        problem('Kinesis stream', errorMessage(err), 'Wait until it is ACTIVE, or name another stream.');
      }
      const need = p.minRetentionHours ?? 24;
      if ((s?.RetentionPeriodHours ?? 24) < need) {
        problem('Kinesis retention', `retention is ${s?.RetentionPeriodHours} h; changes made during the load must wait up to ${need} h`, 'Raise it: aws kinesis increase-stream-retention-period.');
      }
    } catch (err) {
      const name = (err as { name?: string }).name ?? '';
      problem(
        'Kinesis stream',
        name === 'ResourceNotFoundException' ? `stream ${p.kinesis.streamName} does not exist` : errorMessage(err),
        name === 'ResourceNotFoundException'
          ? 'Create it (aws kinesis create-stream --stream-name … --stream-mode-details StreamMode=ON_DEMAND), or check --region / --kinesis-endpoint.'
          : 'Check --region, --kinesis-endpoint and the AWS credentials (kinesis:DescribeStreamSummary).',
      );
    }
  }

}

/** What is selected, whether the target already holds it, and what the target cannot hold (the compatibility doctor). */
async function checkNamespaces(p: PreflightInput, report: PreflightReport, problem: Problem): Promise<void> {
  try {
    report.namespaces = await retryTransient('namespaces', () => listSourceNamespaces(p.source, p.rules, new Set([p.stateDb])), PREFLIGHT_RETRY);
    if (report.namespaces.length === 0) {
      problem(
        'namespaces',
        p.rules.includePatterns.length
          ? `no source collection matches --include ${p.rules.includePatterns.map((x) => x.text).join(' ')}`
          : 'the source has no user collections',
        'Check --include/--exclude against `migrator check`.',
      );
    }
    if (p.requireEmptyTarget) {
      const busy: string[] = [];
      for (const ns of report.namespaces) {
        const t = p.rules.target(ns);
        const n = await p.target.db(t.db).collection(t.coll).estimatedDocumentCount().catch(() => 0);
        if (n > 0) busy.push(`${t.db}.${t.coll} (${n} documents)`);
      }
      if (busy.length) {
        problem('target namespaces', `target collections already hold data: ${busy.slice(0, 5).join(', ')}${busy.length > 5 ? ', …' : ''}`, 'Pass --drop to replace them, or map to other databases with --map.');
      }
    }
    // The compatibility doctor (target-compat.ts): everything the target cannot hold, one problem
    // per item, so the operator sees all of them at once; the same report as `check --target-compat`.
    if (report.target && report.namespaces.length) {
      const compat = await retryTransient(
        'target compatibility',
        () => targetCompatibility({ source: p.source, sourceInfo: report.source, target: report.target!, namespaces: report.namespaces, rules: p.rules, timeSeries: p.timeSeries ?? 'refuse' }),
        PREFLIGHT_RETRY,
      );
      report.compat = compat;
      for (const i of compat.items) {
        if (i.blocking) problem(`${i.namespace}: ${i.item}`, i.problem, i.remedy);
        else report.warnings.push(`${i.namespace}: ${i.item}: ${i.problem}`);
      }
    }
  } catch (err) {
    problem('namespaces', errorMessage(err), 'Check the source user can listDatabases and listCollections.');
  }
}

/** A sharded target's pre-sharded collections and their shard keys. */
async function checkShardedTargets(p: PreflightInput, report: PreflightReport, problem: Problem): Promise<void> {
  if (report.target?.topology === 'sharded') {
    // Pre-sharded target collections stay sharded: apply filters on their shard key, and a load
    // with --drop empties them instead of dropping them (see initial-load-runner.ts).
    try {
      const keys = await retryTransient('target shard keys', () => readShardKeys(p.target), PREFLIGHT_RETRY);
      for (const ns of report.namespaces) {
        const t = p.rules.target(ns);
        const key = keys.get(`${t.db}.${t.coll}`);
        if (key) report.shardedTargets.push({ ns: `${t.db}.${t.coll}`, key });
      }
    } catch (err) {
      problem(
        'target shard keys',
        `cannot read the target's shard keys from config.collections: ${errorMessage(err)}`,
        'Grant the target user read on the config database (e.g. {role: "read", db: "config"}): apply must know each sharded collection\'s shard key.',
      );
    }
  }
}

/**
 * The source's change-stream history and rate of changes. MongoDB: the oplog window, from the
 * first and last entries of local.oplog.rs by natural order, and its entries per second over
 * that window (estimatedDocumentCount / window; the oplog also holds periodic no-op entries, so
 * this reads a little high, which errs on the safe side)
 * (https://www.mongodb.com/docs/manual/core/replica-set-oplog/,
 * https://www.mongodb.com/docs/manual/reference/method/rs.printReplicationInfo/ computes the
 * window the same way). Unreadable (no privilege, a sharded source, an emulator): unknown.
 * Amazon DocumentDB has no oplog access; its change stream log keeps
 * change_stream_log_retention_duration, 3 hours by default
 * (https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html#change_streams-modifying_log_retention),
 * which a client cannot read: --source-change-stream-retention, else the default, said so.
 */
export async function sourceHistory(p: Pick<PreflightInput, 'source' | 'sourceChangeStreamRetentionHours'>, flavor: string | undefined): Promise<NonNullable<PreflightReport['sourceHistory']>> {
  if (p.sourceChangeStreamRetentionHours !== undefined) {
    return { hours: p.sourceChangeStreamRetentionHours, basis: '--source-change-stream-retention', changeEventsPerSecond: null };
  }
  if (flavor === 'documentdb') {
    return {
      hours: DOCUMENTDB_DEFAULT_CHANGE_STREAM_RETENTION_HOURS,
      basis: `DocumentDB default change_stream_log_retention_duration (${DOCUMENTDB_DEFAULT_CHANGE_STREAM_RETENTION_HOURS} h; the cluster's value cannot be read: pass --source-change-stream-retention if it differs)`,
      changeEventsPerSecond: null,
    };
  }
  try {
    const oplog = p.source.db('local').collection('oplog.rs');
    const [first] = await oplog.find({}, { projection: { ts: 1 } }).sort({ $natural: 1 }).limit(1).toArray();
    const [last] = await oplog.find({}, { projection: { ts: 1 } }).sort({ $natural: -1 }).limit(1).toArray();
    const t = (d: Document | undefined) => (d?.ts instanceof Timestamp ? d.ts.t : undefined);
    const a = t(first);
    const b = t(last);
    if (a === undefined || b === undefined) return { hours: null, basis: 'oplog not readable', changeEventsPerSecond: null };
    const window = Math.max(1, b - a);
    const count = await oplog.estimatedDocumentCount();
    return { hours: Math.round((window / 3600) * 10) / 10, basis: 'oplog window (first to last entry)', changeEventsPerSecond: Math.round((count / window) * 10) / 10 };
  } catch (err) {
    return { hours: null, basis: `oplog not readable: ${errorMessage(err)}`, changeEventsPerSecond: null };
  }
}

/**
 * The retention forecast (forecast.ts) before the load: the source's estimated bytes (collStats)
 * at `loadBytesPerSecond` (default DEFAULT_LOAD_BYTES_PER_SECOND, 5 MiB/s: an assumption, said
 * so) against the stream's retention. A warning when the margin is short; a problem only when the
 * load alone outlasts the retention even at OPTIMISTIC_LOAD_BYTES_PER_SECOND.
 */
async function forecast(p: PreflightInput, report: PreflightReport, problem: Problem): Promise<void> {
  report.sourceHistory = await sourceHistory(p, report.source?.flavor);
  const retention = report.stream?.retentionHours;
  if (retention === undefined) return;
  let bytes = 0;
  if (p.loadAhead ?? Boolean(p.bins)) {
    for (const ns of report.namespaces) bytes += (await estimateCollection(p.source, ns.db, ns.coll).catch(() => ({ size: 0, count: 0 }))).size;
  }
  const rate = p.loadBytesPerSecond ?? DEFAULT_LOAD_BYTES_PER_SECOND;
  const f = forecastRetention({
    streamRetentionHours: retention,
    oldestUnreadSeconds: 0,
    loadSecondsLeft: Math.round(bytes / rate),
    loadDone: false,
    backlogEvents: 0,
    changeEventsPerSecond: report.sourceHistory.changeEventsPerSecond,
    applyEventsPerSecond: null,
    sourceHistoryHours: report.sourceHistory.hours,
    sourceHistoryBasis: report.sourceHistory.basis,
    captureLagSeconds: null,
  });
  if (p.loadBytesPerSecond === undefined && bytes > 0) f.assumptions.push(`load rate assumed ${rate / 1024 / 1024} MiB/s`);
  report.forecast = { ...f, estimatedBytes: bytes, loadBytesPerSecond: rate };
  for (const w of f.warnings) report.warnings.push(`retention forecast: ${w}`);
  if (clearlyImpossible(bytes, retention)) {
    problem(
      'Kinesis retention',
      `the source holds about ${Math.round(bytes / 1024 ** 3)} GiB: even at ${OPTIMISTIC_LOAD_BYTES_PER_SECOND / 1024 / 1024} MiB/s the load takes longer than the stream's retention of ${retention} h, so changes captured at its start would expire before apply reads them`,
      `Raise it: aws kinesis increase-stream-retention-period --retention-period-hours ${Math.min(8760, Math.ceil((bytes / OPTIMISTIC_LOAD_BYTES_PER_SECOND / 3600) * 3) + 24)}`,
    );
  }
}

/**
 * The users' privileges against what the migration needs (README "Privileges"), read with
 * connectionStatus {showPrivileges: true}: each shortfall names the role that grants it. Only
 * MongoDB is checked (DocumentDB and FerretDB have other role models), and only with access
 * control on (no authenticated user: nothing is enforced).
 *
 * Write blocking (MongoDB ≥ 6): the cutover blocks user writes with setUserWriteBlockMode and
 * then writes its marker, which the block refuses (371) unless the user also has
 * bypassWriteBlockingMode. Holding one action without the other is a problem (the cutover could
 * block the source and then not finish); holding neither means the cutover will not block and
 * waits for `migrator cutover --writes-stopped` (a warning).
 */
async function checkPrivileges(p: PreflightInput, report: PreflightReport, problem: Problem): Promise<void> {
  const dbs = [...new Set(report.namespaces.map((n) => n.db))].sort();
  if (report.source?.flavor === 'mongodb') {
    try {
      const access = await retryTransient('source privileges', () => readAccess(p.source), PREFLIGHT_RETRY);
      if (access.authenticated && access.privileges) {
        const list: Shortfall[] = shortfalls(access.privileges, sourceNeeds({ databases: dbs, stateDb: p.stateDb, markerCollection: MARKER_COLLECTION }));
        if (Number(report.source.version.split('.')[0]) >= 6) {
          const missing = missingActions(access.privileges, { cluster: true }, WRITE_BLOCK_ACTIONS);
          if (missing.length === WRITE_BLOCK_ACTIONS.length) {
            report.warnings.push(
              `the source user cannot block writes (no ${WRITE_BLOCK_ACTIONS.join(', ')}; role ${WRITE_BLOCK_ROLE}): at the cutover, stop the applications and run \`migrator cutover --writes-stopped\``,
            );
          } else if (missing.length) {
            list.push({ ...writeBlockNeed(), missing });
          }
        }
        if (list.length) {
          const d = describeShortfalls('source', list);
          problem('source privileges', d.problem, d.remedy);
        }
      }
    } catch (err) {
      report.warnings.push(`could not read the source user's privileges (connectionStatus): ${errorMessage(err)}`);
    }
  }
  if (report.target?.flavor === 'mongodb') {
    try {
      const access = await retryTransient('target privileges', () => readAccess(p.target), PREFLIGHT_RETRY);
      if (access.authenticated && access.privileges) {
        const list = shortfalls(access.privileges, targetNeeds([...new Set(report.namespaces.map((n) => p.rules.target(n).db))].sort()));
        if (list.length) {
          const d = describeShortfalls('target', list);
          problem('target privileges', d.problem, d.remedy);
        }
      }
    } catch (err) {
      report.warnings.push(`could not read the target user's privileges (connectionStatus): ${errorMessage(err)}`);
    }
  }
}

export function preflightError(report: PreflightReport): MigratorError {
  const lines = report.problems.map((p, i) => `  ${i + 1}. ${p.check}: ${p.problem}\n     fix: ${p.remedy}`);
  return new MigratorError(ExitCode.PREFLIGHT_FAILED, `Preflight found ${report.problems.length} problem(s):\n${lines.join('\n')}`);
}
