import type { CommandModule } from 'yargs';
import { captureCommand } from './capture.js';
import { checkCommand } from './check.js';

/** Commands listed in --help. A command is added here only once it really works. */
export const commands: CommandModule<object, never>[] = [
  checkCommand as CommandModule<object, never>,
  captureCommand as CommandModule<object, never>,
];
