import type { CommandModule } from 'yargs';
import { applyCommand } from './apply.js';
import { captureCommand } from './capture.js';
import { checkCommand } from './check.js';
import { cutoverCommand } from './cutover.js';
import { statusCommand } from './status.js';
import { fullMigrateCommand } from './full-migrate.js';
import { initialLoadCommand } from './initial-load.js';
import { loadWorkerCommand } from './load-worker.js';
import { verifyCommand } from './verify.js';

/** Commands listed in --help. A command is added here only once it really works. */
export const commands: CommandModule<object, never>[] = [
  checkCommand as CommandModule<object, never>,
  fullMigrateCommand as CommandModule<object, never>,
  initialLoadCommand as CommandModule<object, never>,
  loadWorkerCommand as CommandModule<object, never>,
  captureCommand as CommandModule<object, never>,
  verifyCommand as CommandModule<object, never>,
  applyCommand as CommandModule<object, never>,
  statusCommand as CommandModule<object, never>,
  cutoverCommand as CommandModule<object, never>,
];
