/**
 * `migrator cutover`: which phases accept a cutover request, and `--wait`: polling the state store
 * until the orchestrator (`migrator full-migrate`) finished the cutover, gave up, or time ran out.
 *
 * Requests are accepted in CATCHING_UP (the orchestrator starts the cutover once apply has caught
 * up), READY_FOR_CUTOVER, and CUTTING_OVER (the request is already being carried out: requesting
 * again is idempotent). Any other phase is a STATE_CONFLICT (10).
 *
 * `--wait` outcomes and exit codes (`cutoverWaitExitCode`):
 *  - completed:   the migration phase became COMPLETED                     → 0
 *  - failed:      the phase became FAILED or ABORTED                       → lastError.exitCode if set, else INTERNAL (1)
 *                 (the orchestrator records the exit code of every classified failure; an error
 *                 without one is unclassified, which the orchestrator itself exits with as 1)
 *  - aborted:     the cutover request was aborted (`cutover --abort`, or the orchestrator)
 *                 → lastError.exitCode if an error was recorded since the request, else STATE_CONFLICT (10)
 *  - timeout:     `--timeout` passed                                       → TIMEOUT (9); the cutover continues
 *  - interrupted: SIGINT/SIGTERM                                           → INTERRUPTED (130); not aborted
 */
import { CUTOVER_REQUEST_PHASES, type MigrationPhase, type StateStore } from '../state/store.js';
import { formatDuration } from '../util/duration.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { buildStatusReport, readStatusInputs, type StatusReport } from './status-report.js';
import { sleep } from '../util/retry.js';

/** Phases in which `migrator cutover` may request (or confirm) a cutover (the state layer's phase vocabulary). */
export { CUTOVER_REQUEST_PHASES };

export const DEFAULT_CUTOVER_POLL_MS = 1_000;
/** How long the state store may stay unreadable during --wait before giving up. */
export const DEFAULT_MAX_READ_FAILURE_MS = 60_000;

/** Throws STATE_CONFLICT when a cutover cannot be requested in `phase`. */
export function assertCutoverRequestable(migrationId: string, phase: MigrationPhase): void {
  if (CUTOVER_REQUEST_PHASES.includes(phase)) return;
  const why: Partial<Record<MigrationPhase, string>> = {
    CREATED: 'it has not started yet',
    INITIAL_LOAD: 'the initial load is still running',
    COMPLETED: 'it is already COMPLETED',
    FAILED: 'it FAILED (see `migrator status` for the error)',
    ABORTED: 'it was ABORTED',
  };
  throw new MigratorError(
    ExitCode.STATE_CONFLICT,
    `Cannot request a cutover of migration '${migrationId}': ${why[phase] ?? `its phase is ${phase}`}.`,
    { hint: 'A cutover can be requested in phase CATCHING_UP, READY_FOR_CUTOVER or CUTTING_OVER; `migrator status` shows the phase.' },
  );
}

export type CutoverWaitOutcomeKind = 'completed' | 'failed' | 'aborted' | 'timeout' | 'interrupted';

export interface CutoverWaitOutcome {
  kind: CutoverWaitOutcomeKind;
  /** The last status read (undefined only if the first read was interrupted). */
  report?: StatusReport;
  elapsedMs: number;
}

export interface CutoverProgress {
  phase: MigrationPhase;
  cutoverState: string | null;
  shardsReached: number;
  shardsTotal: number;
  waitingForWritesStopped: boolean;
  lagEvents: number;
  /** One line for people, e.g. "phase CUTTING_OVER, barrier reached by 1/2 shards". */
  text: string;
}

export function cutoverProgress(r: StatusReport): CutoverProgress {
  const c = r.cutover;
  const parts = [`phase ${r.phase}`];
  if (!c) parts.push('no cutover request');
  else if (c.state === 'requested') {
    parts.push(r.phase === 'CATCHING_UP' ? `cutover requested, catching up (lag ${r.lag.events} events)` : 'cutover requested');
  } else if (c.state === 'barrier-sent') parts.push(`shards reached the barrier ${c.shardsReached}/${c.shardsTotal}`);
  else parts.push(`cutover ${c.state}`);
  if (c?.waitingForWritesStopped) parts.push('waiting for --writes-stopped (stop writes to the source, then run `migrator cutover --writes-stopped`)');
  return {
    phase: r.phase,
    cutoverState: c?.state ?? null,
    shardsReached: c?.shardsReached ?? 0,
    shardsTotal: c?.shardsTotal ?? 0,
    waitingForWritesStopped: c?.waitingForWritesStopped ?? false,
    lagEvents: r.lag.events,
    text: parts.join(', '),
  };
}

/** The outcome if `r` ends the wait, else undefined. */
export function settledOutcome(r: StatusReport): Exclude<CutoverWaitOutcomeKind, 'timeout' | 'interrupted'> | undefined {
  if (r.phase === 'COMPLETED') return 'completed';
  if (r.phase === 'FAILED' || r.phase === 'ABORTED') return 'failed';
  if (!r.cutover || r.cutover.state === 'aborted') return 'aborted';
  return undefined;
}

const validExit = (code: number | null | undefined): code is number =>
  typeof code === 'number' && Number.isInteger(code) && code > 0 && code < 256;

export function cutoverWaitExitCode(o: CutoverWaitOutcome): number {
  switch (o.kind) {
    case 'completed':
      return ExitCode.OK;
    case 'timeout':
      return ExitCode.TIMEOUT;
    case 'interrupted':
      return ExitCode.INTERRUPTED;
    case 'failed': {
      const code = o.report?.lastError?.exitCode;
      return validExit(code) ? code : ExitCode.INTERNAL;
    }
    case 'aborted': {
      const e = o.report?.lastError;
      const since = o.report?.cutover?.requestedAt;
      const recent = e && (!since || !e.at || e.at >= since);
      return recent && validExit(e.exitCode) ? e.exitCode : ExitCode.STATE_CONFLICT;
    }
  }
}

/** The error to exit with after the wait (null for `completed`). Messages hold no secret. */
export function cutoverWaitError(migrationId: string, o: CutoverWaitOutcome): MigratorError | null {
  const code = cutoverWaitExitCode(o) as (typeof ExitCode)[keyof typeof ExitCode];
  const status = `migrator status --migration-id ${migrationId}`;
  const err = o.report?.lastError;
  const errText = err ? `: ${err.message}` : '';
  switch (o.kind) {
    case 'completed':
      return null;
    case 'timeout':
      return new MigratorError(
        code,
        `Cutover of migration '${migrationId}' not finished after ${formatDuration(o.elapsedMs)} (${o.report ? cutoverProgress(o.report).text : 'no status read'}).`,
        { hint: `The cutover continues in the background: check it with \`${status}\`, or wait again with \`migrator cutover --wait\`.` },
      );
    case 'interrupted':
      return new MigratorError(code, `Stopped waiting for the cutover of migration '${migrationId}'; the cutover was NOT aborted and continues.`, {
        hint: `Check it with \`${status}\`; withdraw it with \`migrator cutover --abort\`.`,
      });
    case 'failed':
      return new MigratorError(code, `Migration '${migrationId}' ${o.report?.phase ?? 'FAILED'} during the cutover${errText}.`, {
        hint: `\`${status}\` shows the details.`,
      });
    case 'aborted': {
      const reason = o.report?.cutover?.abortReason;
      return new MigratorError(
        code,
        `The cutover of migration '${migrationId}' was aborted${reason ? `: ${reason}` : ''}${code !== ExitCode.STATE_CONFLICT ? errText : ''}.`,
        { hint: `The migration keeps catching up; request a new cutover with \`migrator cutover\`. \`${status}\` shows the details.` },
      );
    }
  }
}

export interface WaitForCutoverOptions {
  store: StateStore;
  migrationId: string;
  /** Undefined: no limit. */
  timeoutMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
  /** Every status read while waiting. */
  onProgress?: (p: CutoverProgress, report: StatusReport) => void;
  /** A failed read of the state store (retried until maxReadFailureMs). */
  onReadError?: (err: unknown) => void;
  maxReadFailureMs?: number;
  now?: () => number;
}

/**
 * Polls the state store until the cutover settles (completed / failed / aborted), `timeoutMs`
 * passes, or `signal` aborts. Never changes any state. An unknown migration id (e.g. deleted while
 * waiting) throws STATE_CONFLICT; a state store unreadable for longer than `maxReadFailureMs`
 * throws CONNECTION_FAILED.
 */
export async function waitForCutover(o: WaitForCutoverOptions): Promise<CutoverWaitOutcome> {
  const now = o.now ?? Date.now;
  const started = now();
  const deadline = o.timeoutMs === undefined ? Infinity : started + o.timeoutMs;
  const pollMs = o.pollMs ?? DEFAULT_CUTOVER_POLL_MS;
  const maxFail = o.maxReadFailureMs ?? DEFAULT_MAX_READ_FAILURE_MS;
  let report: StatusReport | undefined;
  let failingSince: number | undefined;
  const outcome = (kind: CutoverWaitOutcomeKind): CutoverWaitOutcome => ({ kind, report, elapsedMs: now() - started });
  for (;;) {
    if (o.signal?.aborted) return outcome('interrupted');
    try {
      report = buildStatusReport(await readStatusInputs(o.store, o.migrationId), new Date(now()));
      failingSince = undefined;
    } catch (err) {
      if (err instanceof MigratorError) throw err;
      failingSince ??= now();
      o.onReadError?.(err);
      if (now() - failingSince >= maxFail) {
        throw new MigratorError(
          ExitCode.CONNECTION_FAILED,
          `Cannot read the state store for ${formatDuration(now() - failingSince)}: ${errorMessage(err)}.`,
          { hint: 'The cutover continues in the background; check it with `migrator status` once the state store is reachable.', cause: err },
        );
      }
    }
    if (o.signal?.aborted) return outcome('interrupted');
    if (report && failingSince === undefined) {
      const settled = settledOutcome(report);
      if (settled) return outcome(settled);
      o.onProgress?.(cutoverProgress(report), report);
    }
    const remaining = deadline - now();
    if (remaining <= 0) return outcome('timeout');
    await sleep(Math.min(pollMs, remaining), o.signal);
  }
}
