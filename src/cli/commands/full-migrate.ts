import type { CommandModule } from 'yargs';
import { requireEndpoint } from '../../config/load.js';
import { loadScaleOptions } from '../../config/options.js';
import { loadScale } from '../../config/size.js';
import { FullMigration } from '../../orchestration/full-migration.js';
import { DEFAULT_LOAD_OPTIONS, type LoadOptions } from '../../initial-load/dump-restore-plan.js';
import { toolBinaries } from '../../initial-load/tool-binaries.js';
import { ExitCode } from '../../util/exit-codes.js';
import { parseDuration } from '../../util/duration.js';
import { printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources, namespaceRules } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';
import { createTasks } from '../tasks.js';
import { openTransport, transportKind } from '../transport.js';

export interface LoadArgs {
  drop?: boolean;
  'enable-change-streams'?: boolean;
  'num-parallel-collections'?: number;
  'num-insertion-workers'?: number;
  'no-index-restore'?: boolean;
  gzip?: boolean;
  'lease-ttl'?: string;
  'mongodump-path'?: string;
  'mongorestore-path'?: string;
  'with-roles'?: boolean;
  'partition-size'?: string;
  'load-parallelism'?: number;
}

/** Initial-load options shared by full-migrate and initial-load. */
export const loadOptionsBuilder = {
  drop: { type: 'boolean', default: false, describe: 'Replace target collections that already hold data' },
  'enable-change-streams': { type: 'boolean', default: false, describe: 'DocumentDB: enable change streams on the source if they are off' },
  'num-parallel-collections': { type: 'number', default: DEFAULT_LOAD_OPTIONS.numParallelCollections, describe: 'mongodump/mongorestore --numParallelCollections' },
  'num-insertion-workers': { type: 'number', default: DEFAULT_LOAD_OPTIONS.numInsertionWorkersPerCollection, describe: 'mongorestore --numInsertionWorkersPerCollection' },
  'no-index-restore': { type: 'boolean', default: false, describe: 'Do not build indexes on the target during the load' },
  gzip: { type: 'boolean', default: false, describe: 'Compress the archive between mongodump and mongorestore' },
  'lease-ttl': { type: 'string', default: '30s', describe: 'Apply shard lease time-to-live' },
  'mongodump-path': { type: 'string', describe: 'mongodump binary (default: from PATH)' },
  'mongorestore-path': { type: 'string', describe: 'mongorestore binary (default: from PATH)' },
  'with-roles': { type: 'boolean', default: false, describe: 'Recreate the custom roles of the selected databases on the target (users are never migrated: passwords cannot be read)' },
  ...loadScaleOptions,
} as const;

export function loadOptions(argv: LoadArgs): LoadOptions {
  return {
    drop: Boolean(argv.drop),
    numParallelCollections: argv['num-parallel-collections'] ?? DEFAULT_LOAD_OPTIONS.numParallelCollections,
    numInsertionWorkersPerCollection: argv['num-insertion-workers'] ?? DEFAULT_LOAD_OPTIONS.numInsertionWorkersPerCollection,
    noIndexRestore: Boolean(argv['no-index-restore']),
    gzip: Boolean(argv.gzip),
  };
}

/** Shared by full-migrate and initial-load: connect everything and build the orchestrator. */
export async function prepareMigration(argv: LoadArgs, res: Resources, signal: AbortSignal, stopAfterLoad: boolean) {
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
    withRoles: Boolean(argv['with-roles']),
    log,
    signal,
    stopAfterLoad,
    leaseTtlMs: parseDuration(argv['lease-ttl'] ?? '30s'),
  });
  return { config, log, migration, transport };
}

type Prepared = Awaited<ReturnType<typeof prepareMigration>>;

/**
 * The frame of the orchestrating commands: connect, run `body`, and on the way out stop capture
 * and apply (each saves its checkpoint). SIGINT/SIGTERM → exit 130 with the phase left for a
 * rerun; a failure is recorded in the state store (phase FAILED, last error) and rethrown.
 */
export async function runMigrationCommand(argv: LoadArgs, stopAfterLoad: boolean, body: (p: Prepared, signal: AbortSignal) => Promise<void>): Promise<void> {
  const res = new Resources();
  const shutdown = shutdownSignal();
  let migration: FullMigration | undefined;
  try {
    const prepared = await prepareMigration(argv, res, shutdown.signal, stopAfterLoad);
    migration = prepared.migration;
    await body(prepared, shutdown.signal);
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
    shutdown.dispose();
    await res.close();
  }
}

/** `migrator full-migrate`: preflight, resume point, capture, initial load, apply, cutover, verify. */
export const fullMigrateCommand: CommandModule<object, LoadArgs> = {
  command: 'full-migrate',
  describe: 'Run the whole online migration; re-run to resume. Cut over with `migrator cutover`',
  builder: (y) => y.options(loadOptionsBuilder),
  handler: (argv) =>
    runMigrationCommand(argv, false, async ({ config, migration: m }, signal) => {
      const opened = await m.open();
      if (opened.phase === 'COMPLETED') {
        printReport(`migration ${config.migrationId} is already COMPLETED`);
        return;
      }
      await createTasks(
        [
          { title: 'Preflight', task: async () => void (await m.runPreflight()) },
          { title: 'Record the resume point', task: () => m.recordResumePoint() },
          { title: 'Start capture (source change stream → Kinesis)', task: () => m.startCapture() },
          {
            title: 'Initial load (mongodump | mongorestore)',
            skip: () => !['CREATED', 'INITIAL_LOAD'].includes(m.phase) && 'already loaded',
            task: (_c, task) => m.runLoad((text) => (task.output = text)),
          },
          { title: 'Start apply (Kinesis → target)', task: () => m.startApply() },
          {
            title: 'Replicate until cutover (run `migrator cutover` to finish)',
            task: (_c, task) => m.replicateUntilCutover((text) => (task.output = text)),
          },
        ],
        { logFormat: config.logFormat },
      ).run();
      if (!signal.aborted) {
        const schemaDiffs = m.verification?.schema.differences.length ?? 0;
        printReport(
          `migration ${config.migrationId} COMPLETED: ${m.verification?.namespaces.length ?? 0} collections verified equal` +
            (schemaDiffs ? `; ${schemaDiffs} schema difference(s) (indexes, options, views) not replicated: see the warnings, or run migrator verify` : ''),
        );
      }
    }),
};
