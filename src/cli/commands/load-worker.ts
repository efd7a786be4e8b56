import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { requireEndpoint } from '../../config/load.js';
import { loadScaleOptions } from '../../config/options.js';
import { loadScale } from '../../config/size.js';
import { DEFAULT_LOAD_OPTIONS } from '../../initial-load/dump-restore-plan.js';
import { killStaleTools, removeStaleToolConfigs } from '../../initial-load/stale-tools.js';
import { toolBinaries } from '../../initial-load/tool-binaries.js';
import { runLoadWorker } from '../../orchestration/load-worker.js';
import { defaultOwnerId } from '../../state/lease-owner.js';
import { LOAD_PHASES, phaseBeforeFailure } from '../../state/store.js';
import { parseDuration } from '../../util/duration.js';
import { UsageError } from '../../util/errors.js';
import { ExitCode } from '../../util/exit-codes.js';
import { printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';
import { sleep } from '../../util/retry.js';

interface LoadWorkerArgs {
  'lease-ttl'?: string;
  'num-parallel-collections'?: number;
  'num-insertion-workers'?: number;
  gzip?: boolean;
  'mongodump-path'?: string;
  'mongorestore-path'?: string;
  'partition-size'?: string;
  'load-parallelism'?: number;
}

/**
 * `migrator load-worker`: helps `full-migrate` (or `initial-load`) with the initial load of the
 * same --migration-id from another container. It waits for the load's plan, then takes units
 * (ranges of large collections, database pipes, index builds) by lease — the same units
 * full-migrate runs — until every unit is done, and exits 0. Killed, its units are taken over
 * once their leases expire (at once by a process of the same machine).
 */
export const loadWorkerCommand: CommandModule<object, LoadWorkerArgs> = {
  command: 'load-worker',
  describe: 'Share the initial load of a running full-migrate from another container (same --migration-id), then exit',
  builder: (y) =>
    y.options({
      ...loadScaleOptions,
      'lease-ttl': { type: 'string', default: '30s', describe: 'Load unit lease time-to-live: a dead worker\'s units are taken over this long after it stopped renewing' },
      'num-parallel-collections': { type: 'number', default: DEFAULT_LOAD_OPTIONS.numParallelCollections, describe: 'mongodump/mongorestore --numParallelCollections' },
      'num-insertion-workers': { type: 'number', default: DEFAULT_LOAD_OPTIONS.numInsertionWorkersPerCollection, describe: 'mongorestore --numInsertionWorkersPerCollection' },
      gzip: { type: 'boolean', default: false, describe: 'Compress the archive between mongodump and mongorestore' },
      'mongodump-path': { type: 'string', describe: 'mongodump binary (default: from PATH)' },
      'mongorestore-path': { type: 'string', describe: 'mongorestore binary (default: from PATH)' },
    }),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    const sourceEndpoint = requireEndpoint(config, 'source');
    const targetEndpoint = requireEndpoint(config, 'target');
    const { parallelism } = loadScale(argv);
    const leaseTtlMs = parseDuration(argv['lease-ttl'] ?? '30s');
    if (!leaseTtlMs || leaseTtlMs < 1000) throw new UsageError(`Invalid --lease-ttl "${argv['lease-ttl']}".`, 'Give a duration of at least 1s, e.g. 30s.');
    const res = new Resources();
    const shutdown = shutdownSignal((name) => log.info({ signal: name }, 'stopping the load worker: its units are left to the others'));
    try {
      const [source, target] = await Promise.all([res.connect('source', config, sourceEndpoint), res.connect('target', config, targetEndpoint)]);
      const store = await res.stateStore(config, target);
      // Wait for full-migrate to plan the load (it records the resume point and starts capture first).
      let waiting = false;
      for (;;) {
        if (shutdown.signal.aborted) break;
        const m = await store.getMigration(config.migrationId);
        if (m && !LOAD_PHASES.includes(phaseBeforeFailure(m))) {
          printReport(`migration ${config.migrationId} is past the initial load (phase ${m.phase}): nothing to do`);
          return;
        }
        if (m?.loadPlan) break;
        if (!waiting) log.info({ migrationId: config.migrationId }, 'waiting for full-migrate to plan the initial load');
        waiting = true;
        await sleep(1000, shutdown.signal);
      }
      if (shutdown.signal.aborted) {
        process.exitCode = ExitCode.INTERRUPTED;
        return;
      }
      const workDir = join(config.dataDir, 'load');
      mkdirSync(workDir, { recursive: true });
      const stale = killStaleTools(workDir);
      removeStaleToolConfigs(workDir);
      if (stale.length) log.warn({ pids: stale }, 'killed mongodump/mongorestore left running by an interrupted load');
      const r = await runLoadWorker({
        store,
        migrationId: config.migrationId,
        source,
        target,
        sourceEndpoint,
        targetEndpoint,
        bins: toolBinaries({ mongodump: argv['mongodump-path'], mongorestore: argv['mongorestore-path'] }),
        options: {
          ...DEFAULT_LOAD_OPTIONS,
          numParallelCollections: argv['num-parallel-collections'] ?? DEFAULT_LOAD_OPTIONS.numParallelCollections,
          numInsertionWorkersPerCollection: argv['num-insertion-workers'] ?? DEFAULT_LOAD_OPTIONS.numInsertionWorkersPerCollection,
          gzip: Boolean(argv.gzip),
        },
        parallelism,
        owner: defaultOwnerId(),
        leaseTtlMs,
        workDir,
        signal: shutdown.signal,
        log,
      });
      if (shutdown.signal.aborted) {
        process.exitCode = ExitCode.INTERRUPTED;
        return;
      }
      printReport(`initial load of ${config.migrationId}: every unit is done (${r.units} of them by this worker, ${r.documents} documents)`);
    } finally {
      await res.close();
      // Signal handling ends only after the resources are closed: a SIGTERM during the close (e.g.
      // `docker stop` right after the command finished by itself) is then handled (a first one is a
      // no-op, a second exits 130) instead of killing the process by the default action (no exit 0).
      shutdown.dispose();
    }
  },
};
