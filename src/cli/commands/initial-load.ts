import type { CommandModule } from 'yargs';
import { printReport } from '../../util/output.js';
import { createTasks, stepTasks } from '../tasks.js';
import { initialLoadSteps } from '../../orchestration/migration-steps.js';
import { loadOptionsBuilder, runMigrationCommand, type LoadArgs } from './full-migrate.js';
import { metricsOptions } from '../../config/options.js';
import { LOAD_PHASES } from '../../state/phases.js';

/**
 * `migrator initial-load`: preflight, resume point and the copy, with capture running during the
 * copy so the changes made meanwhile wait in the stream. Then capture stops at a checkpoint:
 * continue with `migrator capture` + `migrator apply`, or `migrator full-migrate`.
 */
export const initialLoadCommand: CommandModule<object, LoadArgs> = {
  command: 'initial-load',
  describe: 'Preflight, resume point and mongodump | mongorestore (with capture during the copy), then stop',
  builder: (y) => y.options(loadOptionsBuilder).options(metricsOptions),
  handler: (argv) =>
    runMigrationCommand(argv, true, async ({ config, migration: m, heartbeat: hb, measureLoad }, signal) => {
      const opened = await m.open();
      if (!LOAD_PHASES.includes(opened.phase)) {
        printReport(`migration ${config.migrationId} is past the initial load (phase ${opened.phase})`);
        return;
      }
      const { steps, captureComplete } = initialLoadSteps(m, { heartbeat: hb, beforeLoad: measureLoad });
      await createTasks(stepTasks(steps), { logFormat: config.logFormat }).run();
      if (signal.aborted) return;
      const complete = captureComplete();
      const ttl = await m.heldTtlRestoreCommands();
      printReport(
        (complete
          ? `initial load of ${config.migrationId} done; the changes since the resume point are in the stream.\n`
          : `initial load of ${config.migrationId} done; capture stopped before it had read every change made since then (nothing is lost: ` +
            'the next capture continues from its checkpoint).\n') +
          'Continue with `migrator full-migrate` (same options), or run `migrator capture` and `migrator apply`.' +
          (m.loadOnly.length ? `\nNOT IN SYNC: ${m.loadOnly.join(', ')} (time series) were copied once and will not follow later writes.` : '') +
          (ttl.length
            ? `\nTTL HELD: ${ttl.length} TTL index(es) on the target do not expire documents during the sync; full-migrate's cutover gives them ` +
              'their original expireAfterSeconds back. With `capture` + `apply` (no cutover), run these on the target once you switched over:\n' +
              ttl.map((c) => `  ${c}`).join('\n')
            : ''),
      );
    }),
};
