import type { ArgumentsCamelCase } from 'yargs';
import { resolveConfig, type MigratorConfig } from '../config/load.js';
import { createLogger, type Logger } from '../util/logger.js';

/** What every command handler receives: the validated configuration and a redacting logger. */
export interface CommandContext {
  config: MigratorConfig;
  log: Logger;
  args: Record<string, unknown>;
}

export function commandContext(argv: ArgumentsCamelCase<Record<string, unknown>>): CommandContext {
  const config = resolveConfig(argv);
  const log = createLogger({ format: config.logFormat, verbose: config.verbose });
  return { config, log, args: argv };
}
