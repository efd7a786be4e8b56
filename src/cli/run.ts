import { readFileSync } from 'node:fs';
import yargs, { type Argv, type CommandModule, type Options } from 'yargs';
import { readConfigFile } from '../config/config-file.js';
import { sharedOptions } from '../config/options.js';
import { isTransientError } from '../db/transient-errors.js';
import { isRetryableWritesRefusal } from '../db/server-info.js';
import { MigratorError, UsageError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { printError } from '../util/output.js';
import { registerEnvSecrets, registerUriSecrets } from '../util/redact.js';
import { commands } from './commands/index.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `--config FILE` (or MIGRATOR_CONFIG) is read before yargs, so its errors are ours and precise. */
function configFilePath(argv: string[], env: NodeJS.ProcessEnv): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
  }
  return env.MIGRATOR_CONFIG || undefined;
}

function reportError(err: unknown, verbose: boolean): number {
  if (err instanceof MigratorError) {
    printError(`error: ${err.message}`);
    if (err.hint) printError(`hint: ${err.hint}`);
    if (verbose && err.cause instanceof Error && err.cause.stack) printError(err.cause.stack);
    return err.exitCode;
  }
  if (isTransientError(err)) {
    // A database outage that outlasted every retry: not a bug, and nothing is lost (progress is
    // checkpointed only after it is durable), so say so and let the operator (or a restart policy) rerun.
    printError(`error: a database stayed unavailable: ${errorMessage(err)}`);
    printError('hint: check that source, target and state store are reachable, then rerun the same command: it continues from its checkpoints.');
    if (verbose && err instanceof Error && err.stack) printError(err.stack);
    return ExitCode.CONNECTION_FAILED;
  }
  if (isRetryableWritesRefusal(err)) {
    // Amazon DocumentDB before 8.0.2: the connection settings, not a bug.
    printError(`error: a database refused retryable writes: ${errorMessage(err)}.`);
    printError(
      'hint: Amazon DocumentDB (before engine 8.0.2) needs retryWrites=false: pass --no-source-retry-writes, --no-target-retry-writes ' +
        'and --no-state-retry-writes for each DocumentDB endpoint (or put retryWrites=false in its connection string), then rerun.',
    );
    if (verbose && err instanceof Error && err.stack) printError(err.stack);
    return ExitCode.USAGE;
  }
  printError(`error: ${errorMessage(err)}`);
  if (verbose && err instanceof Error && err.stack) printError(err.stack);
  else printError('hint: rerun with --verbose for details.');
  return ExitCode.INTERNAL;
}

const camel = (k: string) => k.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** The option names a command accepts (shared + its own), read from its yargs builder. */
function optionNamesOf(cmd: CommandModule<object, never> | undefined): Set<string> {
  const names = new Set(Object.keys(sharedOptions));
  if (!cmd?.builder) return names;
  const probe = yargs([]);
  if (typeof cmd.builder === 'function') (cmd.builder as (y: Argv) => unknown)(probe as Argv);
  else probe.options(cmd.builder as Record<string, Options>);
  for (const k of Object.keys((probe as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key)) names.add(k);
  return names;
}

/**
 * MIGRATOR_* variables meant for other commands (one environment often serves every command of a
 * container) are set aside for this run, so strict parsing rejects typos in flags, not a shared
 * environment. Returns the names set aside.
 */
function commandOf(argv: string[]): CommandModule<object, never> | undefined {
  const name = argv.find((a) => !a.startsWith('-'));
  return commands.find((c) => String(c.command).split(' ')[0] === name);
}

function setAsideForeignEnv(argv: string[], env: NodeJS.ProcessEnv): string[] {
  const known = new Set([...optionNamesOf(commandOf(argv))].map(camel));
  const aside: string[] = [];
  for (const key of Object.keys(env)) {
    if (!key.startsWith('MIGRATOR_') || key === 'MIGRATOR_CONFIG') continue;
    const opt = camel(key.slice('MIGRATOR_'.length).toLowerCase().replace(/_/g, '-'));
    if (!known.has(opt)) {
      aside.push(key);
      delete env[key];
    }
  }
  return aside;
}

/** The CLI's parser: every command line, documented or run, is parsed by this one definition. */
function buildParser(argv: string[], fileConfig: Record<string, unknown>, cmds: CommandModule<object, never>[]) {
  return yargs(argv)
    .scriptName('migrator')
    .usage('$0 <command> [options]\n\nOnline migration between MongoDB-compatible databases through Amazon Kinesis.')
    .env('MIGRATOR')
    .config(fileConfig)
    .options(sharedOptions)
    .strict()
    .command(cmds)
    .demandCommand(1, 'Name a command, e.g. migrator check.')
    .version(packageVersion())
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 110))
    .exitProcess(false)
    // Throwing stops yargs: with exitProcess(false) it would otherwise still run the handler.
    .fail((msg, err) => {
      throw err ?? new UsageError(msg, 'Run migrator --help for the options.');
    });
}

/**
 * Runs the CLI and returns the exit code (never calls process.exit, so tests can call it in-process).
 * Secrets from the environment are registered for redaction before anything is printed.
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  registerEnvSecrets(env);
  for (const k of ['MIGRATOR_SOURCE_URI', 'MIGRATOR_TARGET_URI', 'MIGRATOR_STATE_URI']) registerUriSecrets(env[k]);
  const verbose = argv.includes('--verbose');
  try {
    const configPath = configFilePath(argv, env);
    // A config file may hold any command's options (one file can serve every command of a
    // deployment); keys of other commands are left out of this run, typos are errors.
    const allKeys = new Set(commands.flatMap((c) => [...optionNamesOf(c)]).filter((k) => k !== 'config' && k !== 'help' && k !== 'version'));
    const thisCommand = new Set(optionNamesOf(commandOf(argv)));
    const fileConfig = Object.fromEntries(
      Object.entries(configPath ? readConfigFile(configPath, allKeys) : {}).filter(([k]) => thisCommand.has(k)),
    );
    for (const k of ['source-uri', 'target-uri', 'state-uri']) {
      if (typeof fileConfig[k] === 'string') registerUriSecrets(fileConfig[k]);
    }
    const aside = setAsideForeignEnv(argv, process.env);
    const parser = buildParser(argv, fileConfig, commands);
    if (aside.length && verbose) printError(`note: ignoring ${aside.join(', ')} (not options of this command)`);
    process.exitCode = undefined;
    await parser.parseAsync();
    // A handler that ends without an error may still set a code (e.g. INTERRUPTED, a mismatch).
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (err) {
    return reportError(err, verbose);
  }
}

/**
 * Parses a command line exactly as runCli would (same options, MIGRATOR_* environment from `env`,
 * strictness) without running the command: for tests that keep documented command lines true.
 * Throws the UsageError runCli would report (exit 2). `unknownEnv`: MIGRATOR_* variables of `env`
 * that this command would set aside (ignore), e.g. a misspelt or unknown option.
 */
export function parseOnly(argv: string[], env: NodeJS.ProcessEnv = {}): { args: Record<string, unknown>; unknownEnv: string[] } {
  const known = new Set([...optionNamesOf(commandOf(argv))].map(camel));
  const unknownEnv = Object.keys(env).filter(
    (k) => k.startsWith('MIGRATOR_') && k !== 'MIGRATOR_CONFIG' && !known.has(camel(k.slice('MIGRATOR_'.length).toLowerCase().replace(/_/g, '-'))),
  );
  // yargs reads MIGRATOR_* from process.env (the object it saw when loaded): this run's are put
  // there and the process's own put back after; parseSync awaits nothing in between.
  const mine = (e: NodeJS.ProcessEnv) => Object.entries(e).filter(([k]) => k.startsWith('MIGRATOR_'));
  const saved = mine(process.env);
  for (const [k] of saved) delete process.env[k];
  for (const [k, v] of mine(env)) if (!unknownEnv.includes(k)) process.env[k] = v;
  try {
    const noop = commands.map((c) => ({ ...c, handler: () => undefined }));
    return { args: buildParser(argv, {}, noop).parseSync() as Record<string, unknown>, unknownEnv };
  } finally {
    for (const [k] of mine(process.env)) delete process.env[k];
    for (const [k, v] of saved) process.env[k] = v;
  }
}
