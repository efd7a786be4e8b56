/**
 * The process exit codes of `migrator`: the one place they are defined.
 * README's "Exit codes" table mirrors this list; test/util/exit-codes.test.ts keeps the two in sync.
 */
export const ExitCode = {
  /** The command did what it was asked. */
  OK: 0,
  /** An unexpected internal error (a bug): rerun with --verbose and report it. */
  INTERNAL: 1,
  /** Bad command line, environment variable or config file. Nothing was changed. */
  USAGE: 2,
  /** A database (source, target or state store) could not be reached or refused the credentials. */
  CONNECTION_FAILED: 3,
  /** Preflight checks found problems that must be fixed before migrating (e.g. a missing role, or
   *  something of the selection the target cannot hold: also `check --target-compat`), or the
   *  source refused the cutover marker for lack of a privilege. */
  PREFLIGHT_FAILED: 4,
  /** The Kinesis stream is missing, not ACTIVE, or refused requests. */
  STREAM_FAILED: 5,
  /** The source no longer holds the change-stream history needed to resume (error 286 / DocumentDB 136). */
  HISTORY_LOST: 6,
  /** Verification found documents that differ between source and target. */
  VERIFICATION_MISMATCH: 7,
  /** The target refused writes that could not be resolved (e.g. unresolved unique-index conflicts). */
  APPLY_FAILED: 8,
  /** A wait (e.g. `cutover --wait --timeout`) ran out of time. */
  TIMEOUT: 9,
  /** The migration id named does not exist in the state store, or is in a phase that forbids the command. */
  STATE_CONFLICT: 10,
  /** An external tool (mongodump, mongorestore) failed or is missing, or the load's index build after data failed. */
  TOOL_FAILED: 11,
  /** A shard of apply made no progress on the target for longer than the stall bound (the target stopped answering). */
  APPLY_STALLED: 12,
  /** Interrupted by SIGINT/SIGTERM; state is consistent and the command can be rerun. */
  INTERRUPTED: 130,
} as const;

export type ExitCodeName = keyof typeof ExitCode;
export type ExitCodeValue = (typeof ExitCode)[ExitCodeName];

export function exitCodeName(code: number): ExitCodeName | undefined {
  return (Object.keys(ExitCode) as ExitCodeName[]).find((k) => ExitCode[k] === code);
}
