import type { CommandModule } from 'yargs';
import { requireEndpoint } from '../../config/load.js';
import { loadScaleOptions } from '../../config/options.js';
import { loadScale } from '../../config/size.js';
import { FullMigration } from '../../orchestration/full-migration.js';
import { fullMigrateSteps } from '../../orchestration/migration-steps.js';
import { DEFAULT_LOAD_OPTIONS, type LoadOptions } from '../../initial-load/dump-restore-plan.js';
import { toolBinaries } from '../../initial-load/tool-binaries.js';
import { ExitCode } from '../../util/exit-codes.js';
import { parseDuration } from '../../util/duration.js';
import { UsageError } from '../../util/errors.js';
import { printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources, namespaceRules } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';
import { createTasks, stepTasks } from '../tasks.js';
import { openTransport, transportKind } from '../transport.js';
import { metricsOptions } from '../../config/options.js';
import { health, type Heartbeat } from '../../observability/health.js';
import { noteLoadSizes } from '../../observability/metrics.js';
import { startObservability, type MetricsArgs } from '../observability.js';
import { ignoreSchemaOption, ignoredKinds } from './verify.js';

export interface LoadArgs extends MetricsArgs {
  drop?: boolean;
  'enable-change-streams'?: boolean;
  'num-parallel-collections'?: number;
  'num-insertion-workers'?: number;
  /** `--no-index-restore` sets it false (yargs' boolean negation). */
  'index-restore'?: boolean;
  gzip?: boolean;
  'lease-ttl'?: string;
  'mongodump-path'?: string;
  'mongorestore-path'?: string;
  'with-roles'?: boolean;
  /** full-migrate only: schema kinds the cutover verification does not fail on. */
  'ignore-schema'?: string[];
  'partition-size'?: string;
  'load-parallelism'?: number;
  'source-change-stream-retention'?: string;
}

/** Initial-load options shared by full-migrate and initial-load. */
export const loadOptionsBuilder = {
  drop: { type: 'boolean', default: false, describe: 'Replace target collections that already hold data' },
  'enable-change-streams': { type: 'boolean', default: false, describe: 'DocumentDB: enable change streams on the source if they are off' },
  'num-parallel-collections': { type: 'number', default: DEFAULT_LOAD_OPTIONS.numParallelCollections, describe: 'mongodump/mongorestore --numParallelCollections' },
  'num-insertion-workers': { type: 'number', default: DEFAULT_LOAD_OPTIONS.numInsertionWorkersPerCollection, describe: 'mongorestore --numInsertionWorkersPerCollection' },
  // Declared positively: yargs reads `--no-X` as the negation of `X` (boolean-negation), so an option
  // named 'no-index-restore' made `--no-index-restore` an unknown 'index-restore' under .strict().
  'index-restore': { type: 'boolean', default: true, describe: 'Build the indexes on the target during the load (--no-index-restore: do not; MIGRATOR_INDEX_RESTORE=false)' },
  gzip: { type: 'boolean', default: false, describe: 'Compress the archive between mongodump and mongorestore' },
  'lease-ttl': { type: 'string', default: '30s', describe: 'Apply shard lease time-to-live' },
  'mongodump-path': { type: 'string', describe: 'mongodump binary (default: from PATH)' },
  'mongorestore-path': { type: 'string', describe: 'mongorestore binary (default: from PATH)' },
  'with-roles': { type: 'boolean', default: false, describe: 'Recreate the custom roles of the selected databases on the target (users are never migrated: passwords cannot be read)' },
  'source-change-stream-retention': {
    type: 'string',
    describe: "The source's change-stream history for the retention forecast, e.g. 24h: DocumentDB's change_stream_log_retention_duration (unreadable by a client; default 3h). MongoDB: read from the oplog",
  },
  ...loadScaleOptions,
} as const;

/** --source-change-stream-retention in hours (undefined: not given). */
export function sourceChangeStreamRetentionHours(argv: LoadArgs): number | undefined {
  const v = argv['source-change-stream-retention'];
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) {
    throw new UsageError(`Invalid --source-change-stream-retention: expected a duration like 3h or 7d (got "${v}").`, "Give the source's change_stream_log_retention_duration (DocumentDB), e.g. 24h.");
  }
  return ms / 3_600_000;
}

export function loadOptions(argv: LoadArgs): LoadOptions {
  return {
    drop: Boolean(argv.drop),
    numParallelCollections: argv['num-parallel-collections'] ?? DEFAULT_LOAD_OPTIONS.numParallelCollections,
    numInsertionWorkersPerCollection: argv['num-insertion-workers'] ?? DEFAULT_LOAD_OPTIONS.numInsertionWorkersPerCollection,
    noIndexRestore: argv['index-restore'] === false,
    gzip: Boolean(argv.gzip),
  };
}

/** Shared by full-migrate and initial-load: connect everything and build the orchestrator. */
export async function prepareMigration(argv: LoadArgs, res: Resources, signal: AbortSignal, stopAfterLoad: boolean, heartbeat?: Heartbeat) {
  const { config, log } = commandContext(argv as never);
  // Embedded transport (no --kinesis-stream) only for full-migrate; checked before connecting.
  const transportOptions = { allowEmbedded: !stopAfterLoad };
  transportKind(config, transportOptions);
  const sourceEndpoint = requireEndpoint(config, 'source');
  const targetEndpoint = requireEndpoint(config, 'target');
  const [source, target] = await Promise.all([
    res.connect('source', config, sourceEndpoint),
    res.connect('target', config, targetEndpoint),
  ]);
  const store = await res.stateStore(config, target);
  const transport = await openTransport(config, res, log, { ...transportOptions, store, migrationId: config.migrationId });
  const migration = new FullMigration({
    migrationId: config.migrationId,
    source,
    sourceEndpoint,
    target,
    targetEndpoint,
    store,
    stateDb: config.stateDb,
    rules: namespaceRules(config),
    kinesis: transport.client,
    streamName: transport.streamName,
    bins: toolBinaries({ mongodump: argv['mongodump-path'], mongorestore: argv['mongorestore-path'] }),
    load: loadOptions(argv),
    loadScale: loadScale(argv),
    dataDir: config.dataDir,
    enableChangeStreams: Boolean(argv['enable-change-streams']),
    sourceChangeStreamRetentionHours: sourceChangeStreamRetentionHours(argv),
    withRoles: Boolean(argv['with-roles']),
    timeSeries: config.timeSeries,
    ignoreSchema: ignoredKinds(argv['ignore-schema'] ?? []),
    log,
    signal,
    stopAfterLoad,
    leaseTtlMs: parseDuration(argv['lease-ttl'] ?? '30s'),
    heartbeat,
  });
  return { config, log, migration, transport, store, source };
}

type Prepared = Awaited<ReturnType<typeof prepareMigration>> & {
  /** The orchestrator's liveness heartbeat: steps without progress reports run inside `heartbeat.during`. */
  heartbeat: Heartbeat;
  /** With --metrics-port: reads the sizes of the collections to load, in the background (load byte metrics). */
  measureLoad(): void;
};

/**
 * The frame of the orchestrating commands: connect, run `body`, and on the way out stop capture
 * and apply (each saves its checkpoint). SIGINT/SIGTERM → exit 130 with the phase left for a
 * rerun; a failure is recorded in the state store (phase FAILED, last error) and rethrown.
 */
export async function runMigrationCommand(argv: LoadArgs, stopAfterLoad: boolean, body: (p: Prepared, signal: AbortSignal) => Promise<void>): Promise<void> {
  const { config, log } = commandContext(argv as never);
  // Ready once connected (its capture and apply report their leases in /readyz, without gating it:
  // full-migrate orchestrates whether or not another process captures or applies).
  const obs = await startObservability(argv, {
    command: stopAfterLoad ? 'initial-load' : 'full-migrate',
    migrationId: config.migrationId,
    log,
    gating: ['migration'],
  });
  let state = 'connecting';
  const dropComponent = health.component('migration', () => ({ ready: state === 'running', state }));
  const heartbeat = health.register('migration');
  const res = new Resources();
  res.onConnect = obs.watchDatabase;
  const shutdown = shutdownSignal();
  let migration: FullMigration | undefined;
  try {
    const prepared = await heartbeat.during('connecting', prepareMigration(argv, res, shutdown.signal, stopAfterLoad, heartbeat));
    obs.useStore(prepared.store, config.migrationId);
    state = 'running';
    migration = prepared.migration;
    const measureLoad = () => {
      if (obs.port !== undefined) void noteLoadSizes(prepared.source, prepared.migration.preflight?.namespaces ?? []);
    };
    await body({ ...prepared, heartbeat, measureLoad }, shutdown.signal);
    if (shutdown.signal.aborted) {
      await migration.stopPipelines().catch(() => undefined);
      process.exitCode = ExitCode.INTERRUPTED;
    }
  } catch (err) {
    await migration?.stopPipelines().catch(() => undefined);
    if (shutdown.signal.aborted) {
      process.exitCode = ExitCode.INTERRUPTED;
      return;
    }
    await migration?.fail(err);
    throw err;
  } finally {
    state = 'stopping';
    health.unregister(heartbeat);
    dropComponent();
    await obs.close();
    await res.close();
    // Signal handling ends only after the resources are closed: a SIGTERM during the close (e.g.
    // `docker stop` right after the command finished by itself) is then handled (a first one is a
    // no-op, a second exits 130) instead of killing the process by the default action (no exit 0).
    shutdown.dispose();
  }
}

/** `migrator full-migrate`: preflight, resume point, capture, initial load, apply, cutover, verify. */
export const fullMigrateCommand: CommandModule<object, LoadArgs> = {
  command: 'full-migrate',
  describe: 'Run the whole online migration; re-run to resume. Cut over with `migrator cutover`',
  builder: (y) =>
    y
      .options(loadOptionsBuilder)
      .options(metricsOptions)
      .option('ignore-schema', {
        ...ignoreSchemaOption,
        describe: 'Schema differences (indexes, options, views or all) the cutover verification lists without failing; default: any schema difference fails the cutover (exit 7)',
      }),
  handler: (argv) =>
    runMigrationCommand(argv, false, async ({ config, migration: m, heartbeat: hb, measureLoad }, signal) => {
      const opened = await m.open();
      if (opened.phase === 'COMPLETED') {
        printReport(`migration ${config.migrationId} is already COMPLETED`);
        return;
      }
      await createTasks(stepTasks(fullMigrateSteps(m, { heartbeat: hb, beforeLoad: measureLoad })), { logFormat: config.logFormat }).run();
      if (!signal.aborted) {
        const schemaDiffs = m.verification?.schema.differences.length ?? 0;
        const ttlExpired = m.verification?.namespaces.reduce((n, x) => n + x.ttlExpiredCount, 0) ?? 0;
        printReport(
          `migration ${config.migrationId} COMPLETED: ${m.verification?.namespaces.length ?? 0} collections verified equal` +
            (ttlExpired ? ` (${ttlExpired} document(s) expired by the source's TTL during the verification, proven, left to the restored TTL on the target)` : '') +
            // COMPLETED with differences left only when the user accepted them (--ignore-schema).
            (schemaDiffs ? `; ${schemaDiffs} schema difference(s) accepted with --ignore-schema: see the warnings, or run migrator verify` : '') +
            (m.loadOnly.length ? `\nNOT IN SYNC: ${m.loadOnly.join(', ')} (time series) were copied once by the initial load and not kept in sync since` : ''),
        );
      }
    }),
};
