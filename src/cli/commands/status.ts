import type { CommandModule } from 'yargs';
import { sleep } from '../../util/retry.js';
import {
  TERMINAL_PHASES,
  buildStatusReport,
  formatStatusReport,
  readStatusInputs,
  type StatusReport,
} from '../../orchestration/status-report.js';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { MigratorError, UsageError, errorMessage } from '../../util/errors.js';
import { printJson, printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';

interface StatusArgs {
  json?: boolean;
  watch?: boolean;
  interval?: string;
}

const MIN_INTERVAL_MS = 100;

function print(report: StatusReport, json: boolean, watch: boolean, first: boolean): void {
  if (json) {
    // --watch: one JSON document per line (JSON Lines), so a consumer can read refresh by refresh.
    if (watch) printReport(JSON.stringify(report));
    else printJson(report);
    return;
  }
  const text = formatStatusReport(report);
  if (!watch) printReport(text);
  else if (process.stdout.isTTY) printReport(`\x1b[H\x1b[2J${text}`);
  else printReport(first ? text : `\n${text}`);
}

/**
 * `migrator status`: phase, initial-load progress, capture/apply counters and lag, shard positions,
 * cutover state and last error of one migration, read from the state store. Read-only.
 * The --json schema is documented in src/orchestration/status-report.ts (and README).
 */
export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'Show the state of a migration: phase, load progress, lag, shards, cutover (--json for machines)',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'Print the status as JSON (one line per refresh with --watch)' })
      .option('watch', { type: 'boolean', default: false, describe: 'Refresh until Ctrl-C or the migration is COMPLETED / FAILED / ABORTED' })
      .option('interval', { type: 'string', default: '2s', describe: 'Refresh interval of --watch' }),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    const watch = argv.watch === true;
    const json = argv.json === true;
    const intervalMs = parseDuration(argv.interval ?? '2s');
    if (intervalMs === undefined || intervalMs < MIN_INTERVAL_MS) {
      throw new UsageError(
        `Invalid --interval: expected a duration of at least ${formatDuration(MIN_INTERVAL_MS)}, like 2s or 1m (got "${argv.interval}").`,
      );
    }
    const res = new Resources();
    // --watch ends normally on Ctrl-C (exit 0): watching changes nothing, so nothing is interrupted.
    const shutdown = watch ? shutdownSignal() : undefined;
    try {
      const store = await res.stateStore(config);
      let first = true;
      for (;;) {
        let report: StatusReport | undefined;
        try {
          report = buildStatusReport(await readStatusInputs(store, config.migrationId));
        } catch (err) {
          // Unknown id, or the first read failing: report it. Later transient failures: keep watching.
          if (first || !watch || err instanceof MigratorError) throw err;
          log.warn({ err: errorMessage(err) }, 'cannot read the state store; retrying');
        }
        if (report) {
          print(report, json, watch, first);
          first = false;
          if (!watch || TERMINAL_PHASES.includes(report.phase)) break;
        }
        await sleep(intervalMs, shutdown?.signal);
        if (shutdown?.signal.aborted) break;
      }
    } finally {
      await res.close();
      // Signal handling ends only after the resources are closed: a SIGTERM during the close (e.g.
      // `docker stop` right after the command finished by itself) is then handled (a first one is a
      // no-op, a second exits 130) instead of killing the process by the default action (no exit 0).
      shutdown?.dispose();
    }
  },
};
