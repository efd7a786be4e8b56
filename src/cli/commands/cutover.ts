import type { CommandModule } from 'yargs';
import {
  assertCutoverRequestable,
  cutoverWaitError,
  cutoverWaitExitCode,
  waitForCutover,
  type CutoverWaitOutcome,
} from '../../orchestration/cutover-wait.js';
import {
  buildStatusReport,
  readStatusInputs,
  requireMigration,
  type StatusReport,
} from '../../orchestration/status-report.js';
import { formatDuration, parseDuration } from '../../util/duration.js';
import { MigratorError, UsageError, errorMessage } from '../../util/errors.js';
import { ExitCode } from '../../util/exit-codes.js';
import { printJson, printReport } from '../../util/output.js';
import { commandContext } from '../context.js';
import { Resources } from '../resources.js';
import { shutdownSignal } from '../shutdown.js';
import type { StateStore } from '../../state/store.js';
import type { Logger } from '../../util/logger.js';

interface CutoverArgs {
  wait?: boolean;
  timeout?: string;
  'writes-stopped'?: boolean;
  abort?: boolean;
  json?: boolean;
}

/** A progress line is repeated at least this often while --wait has nothing new to say. */
const PROGRESS_REPEAT_MS = 30_000;

export const OPERATOR_ABORT_REASON = 'aborted by the operator (migrator cutover --abort)';

type Action = 'requested' | 'already-requested' | 'aborted';

function requestText(id: string, action: Action, r: StatusReport, writesStopped: boolean): string {
  const c = r.cutover;
  const lines: string[] = [];
  if (action === 'aborted') {
    lines.push(`cutover of migration ${id} aborted; the migration keeps catching up (phase ${r.phase}).`);
    if (c?.writesBlockedByMigrator) {
      lines.push('  writes to the source are blocked by the migrator until full-migrate takes the abort in (its next step; start it if it is not running).');
    }
    return lines.join('\n');
  }
  lines.push(
    action === 'requested'
      ? `cutover of migration ${id} requested (phase ${r.phase}).`
      : `cutover of migration ${id} already requested at ${c?.requestedAt ?? 'unknown'} (state ${c?.state ?? 'unknown'}, phase ${r.phase}).`,
  );
  if (r.phase === 'CATCHING_UP' && c?.state === 'requested') lines.push('  it starts once apply has caught up.');
  if (writesStopped) lines.push('  recorded: writes to the source have stopped.');
  if (c?.waitingForWritesStopped) {
    lines.push(
      '  unless the migrator blocks writes on the source itself, stop the applications writing to the source,',
      '  then run `migrator cutover --writes-stopped`.',
    );
  }
  if (c?.state === 'completed') lines.push('  the cutover already completed.');
  lines.push(`  follow it with \`migrator status --migration-id ${id}\` or \`migrator cutover --wait\`.`);
  return lines.join('\n');
}

function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    throw new UsageError(`Invalid --${flag}: expected a duration such as 180 (seconds), 90s or 10m (got "${value}").`);
  }
  return ms;
}

/** The flags checked together, before anything is read. */
function checkFlags(argv: CutoverArgs): number | undefined {
  const timeoutMs = durationFlag('timeout', argv.timeout);
  if (timeoutMs !== undefined && argv.wait !== true) throw new UsageError('--timeout only applies with --wait.', 'Add --wait, or drop --timeout.');
  if (argv.abort && (argv.wait || argv['writes-stopped'])) {
    throw new UsageError(
      '--abort cannot be combined with --wait or --writes-stopped.',
      'Run `migrator cutover --abort` alone to withdraw the request; request it again later without --abort.',
    );
  }
  return timeoutMs;
}

type Status = () => Promise<StatusReport>;

/** --abort: withdraw a pending request (exit 10 when there is none). */
async function abortCutover(store: StateStore, id: string, status: Status, json: boolean): Promise<void> {
  if (!(await store.abortCutover(id, OPERATOR_ABORT_REASON))) {
    const c = await store.getCutover(id);
    const what = !c ? 'no cutover was requested' : c.state === 'completed' ? 'the cutover already completed' : `the cutover is ${c.state}`;
    throw new MigratorError(ExitCode.STATE_CONFLICT, `Nothing to abort for migration '${id}': ${what}.`);
  }
  const r = await status();
  if (json) printJson({ migrationId: id, action: 'aborted', phase: r.phase, cutover: r.cutover });
  else printReport(requestText(id, 'aborted', r, false));
}

/** --wait: follows the cutover until it completes, fails, times out or the process is stopped. */
async function waitLogged(store: StateStore, id: string, timeoutMs: number | undefined, log: Logger): Promise<CutoverWaitOutcome> {
  const shutdown = shutdownSignal((name) => log.info({ signal: name }, 'stopped waiting; the cutover is not aborted and continues'));
  try {
    let lastText = '';
    let lastAt = 0;
    return await waitForCutover({
      store,
      migrationId: id,
      timeoutMs,
      signal: shutdown.signal,
      onProgress: (p) => {
        const t = Date.now();
        if (p.text === lastText && t - lastAt < PROGRESS_REPEAT_MS) return;
        lastText = p.text;
        lastAt = t;
        log.info(
          { phase: p.phase, cutover: p.cutoverState, shardsReached: p.shardsReached, shardsTotal: p.shardsTotal, lagEvents: p.lagEvents },
          `cutover: ${p.text}`,
        );
      },
      onReadError: (err) => log.warn({ err: errorMessage(err) }, 'cannot read the state store; retrying'),
    });
  } finally {
    shutdown.dispose();
  }
}

/** The end of --wait: the JSON result or the completion line; then the wait's exit code (an error). */
function reportWaitOutcome(id: string, outcome: CutoverWaitOutcome, request: { action: Action; requested: StatusReport; writesStopped: boolean }, json: boolean): void {
  const { action, requested, writesStopped } = request;
  if (json) {
    printJson({
      migrationId: id,
      action,
      phase: outcome.report?.phase ?? requested.phase,
      writesStoppedRecorded: writesStopped,
      cutover: outcome.report?.cutover ?? requested.cutover,
      wait: { outcome: outcome.kind, elapsedMs: outcome.elapsedMs, exitCode: cutoverWaitExitCode(outcome) },
    });
  } else if (outcome.kind === 'completed') {
    // Time-series collections copied once (--time-series=load-only) are not on the target as they are now.
    const loadOnly = (outcome.report?.load?.namespaces ?? []).filter((n) => n.loadOnly).map((n) => n.ns);
    printReport(
      `cutover of migration ${id} completed after ${formatDuration(outcome.elapsedMs)} of waiting: the target is ready.` +
        (loadOnly.length ? `\nNOT IN SYNC: ${loadOnly.join(', ')} (time series) were copied once by the initial load and not kept in sync since.` : ''),
    );
  }
  const err = cutoverWaitError(id, outcome);
  if (err) throw err;
}

/**
 * `migrator cutover`: request the cutover of a migration (carried out by `migrator full-migrate`),
 * confirm that writes to the source stopped, withdraw a pending request, or wait for the end.
 * Exit codes of --wait: see src/orchestration/cutover-wait.ts.
 */
export const cutoverCommand: CommandModule<object, CutoverArgs> = {
  command: 'cutover',
  describe: 'Request the cutover of a migration; --writes-stopped confirms the source is quiet; --wait blocks until it completed',
  builder: (y) =>
    y
      .option('wait', { type: 'boolean', default: false, describe: 'Wait until the migration is COMPLETED (exit 0) or the cutover fails' })
      .option('timeout', {
        type: 'string',
        describe: 'With --wait: give up waiting after this long (180, 90s, 10m; exit 9, the cutover continues). Default: no limit',
      })
      .option('writes-stopped', {
        type: 'boolean',
        default: false,
        describe: 'Confirm that applications stopped writing to the source (requests the cutover if not yet requested)',
      })
      .option('abort', { type: 'boolean', default: false, describe: 'Withdraw a pending cutover request (exit 10 if there is none)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the result as JSON' }),
  handler: async (argv) => {
    const { config, log } = commandContext(argv as never);
    const id = config.migrationId;
    const json = argv.json === true;
    const wait = argv.wait === true;
    const timeoutMs = checkFlags(argv);
    const res = new Resources();
    try {
      const store = await res.stateStore(config);
      const migration = await requireMigration(store, id);
      const status = async () => buildStatusReport(await readStatusInputs(store, id));
      if (argv.abort) return await abortCutover(store, id, status, json);

      assertCutoverRequestable(id, migration.phase);
      const before = await store.getCutover(id);
      await store.requestCutover(id);
      const action: Action = !before || before.state === 'aborted' ? 'requested' : 'already-requested';
      const writesStopped = argv['writes-stopped'] === true && (await store.confirmWritesStopped(id));
      const requested = await status();
      log.debug({ migrationId: id, action, writesStopped }, 'cutover request recorded');
      if (!wait) {
        if (json) printJson({ migrationId: id, action, phase: requested.phase, writesStoppedRecorded: writesStopped, cutover: requested.cutover });
        else printReport(requestText(id, action, requested, writesStopped));
        return;
      }
      if (!json) printReport(requestText(id, action, requested, writesStopped));
      const outcome = await waitLogged(store, id, timeoutMs, log);
      reportWaitOutcome(id, outcome, { action, requested, writesStopped }, json);
    } finally {
      await res.close();
    }
  },
};
