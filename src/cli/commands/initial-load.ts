import type { CommandModule } from 'yargs';
import { ExitCode } from '../../util/exit-codes.js';
import { printReport } from '../../util/output.js';
import { Resources } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';
import { createTasks } from '../tasks.js';
import { loadOptionsBuilder, prepareMigration, type LoadArgs } from './full-migrate.js';
import type { FullMigration } from '../../orchestration/full-migration.js';

/**
 * `migrator initial-load`: preflight, resume point and the copy, with capture running during the
 * copy so the changes made meanwhile wait in the stream. Then capture stops at a checkpoint:
 * continue with `migrator capture` + `migrator apply`, or `migrator full-migrate`.
 */
export const initialLoadCommand: CommandModule<object, LoadArgs> = {
  command: 'initial-load',
  describe: 'Preflight, resume point and mongodump | mongorestore (with capture during the copy), then stop',
  builder: (y) => y.options(loadOptionsBuilder),
  handler: async (argv) => {
    const res = new Resources();
    const shutdown = shutdownSignal();
    let migration: FullMigration | undefined;
    try {
      const prepared = await prepareMigration(argv, res, shutdown.signal, true);
      const m = (migration = prepared.migration);
      const opened = await m.open();
      if (!['CREATED', 'INITIAL_LOAD'].includes(opened.phase)) {
        printReport(`migration ${prepared.config.migrationId} is past the initial load (phase ${opened.phase})`);
        return;
      }
      await createTasks(
        [
          { title: 'Preflight', task: async () => void (await m.runPreflight()) },
          { title: 'Record the resume point', task: () => m.recordResumePoint() },
          { title: 'Start capture (source change stream → Kinesis)', task: () => m.startCapture() },
          { title: 'Initial load (mongodump | mongorestore)', task: (_c, task) => m.runLoad((text) => (task.output = text)) },
          { title: 'Stop capture at a checkpoint', task: () => m.stopPipelines() },
        ],
        { logFormat: prepared.config.logFormat },
      ).run();
      printReport(
        `initial load of ${prepared.config.migrationId} done; changes since the resume point are in the stream.\n` +
          'Continue with `migrator full-migrate` (same options), or run `migrator capture` and `migrator apply`.',
      );
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
  },
};
