// Fault injection compatible with mongod's test-only `configureFailPoint` command, as the unified
// test format documents it ("Server Fail Points",
// https://github.com/mongodb/specifications/blob/master/source/unified-test-format/unified-test-format.md#server-fail-points):
// mode 'alwaysOn' | 'off' | {times: n} | {skip: n}, and three fail points:
// - failCommand: data {failCommands, errorCode, closeConnection, errorLabels, blockConnection,
//   blockTimeMS, writeConcernError, appName, namespace}. The command fails before it runs.
//   `errorLabels`, when given, "overrides the server's normal behavior for adding error labels"
//   (an empty array suppresses them): exactly those labels are attached. Otherwise the server's
//   normal labelling applies, which for a retryable write (txnNumber outside a transaction) adds
//   RetryableWriteError to a retryable code or write concern error code (4.4+; the codes are the
//   retryable writes spec's list,
//   https://github.com/mongodb/specifications/blob/master/source/retryable-writes/retryable-writes.md#determining-retryable-errors).
//   It never adds ResumableChangeStreamError: the command failed before any change-stream cursor
//   was checked out (see failGetMoreAfterCursorCheckout).
// - failGetMoreAfterCursorCheckout: data {errorCode, closeConnection}. A getMore fails after its
//   cursor was found; for a change-stream cursor the server labels a resumable code
//   ResumableChangeStreamError (the change streams spec's resumable errors,
//   https://github.com/mongodb/specifications/blob/master/source/change-streams/change-streams.md#resumable-error;
//   the spec tests' change-streams-resume-errorLabels.json rely on exactly this).
// - onPrimaryTransactionalWrite: data {closeConnection (default true), failBeforeCommitExceptionCode}.
//   Fires per statement of a retryable write: the statement is committed unless
//   failBeforeCommitExceptionCode is set, then the connection is closed before any reply.
//
// Invariant: a fail point fires at most `times` times (then turns itself off) and not before `skip`
// matching events have passed; `configureFailPoint` itself is never failed.
import { isPlainObject, toNumber, type Doc } from './bson-values.js';
import { CommandError, ErrorCodes, fail } from './errors.js';

export interface FailAction {
  closeConnection: boolean;
  blockTimeMS: number;
  error?: CommandError;
  writeConcernError?: Doc;
  /** Labels for the reply's top level when only a write concern error is injected. */
  writeConcernLabels?: string[];
}

export interface TransactionalWriteAction {
  closeConnection: boolean;
  /** Set: the statement is not committed and fails with this code. */
  failBeforeCommitCode?: number;
}

interface FailPointState {
  mode: 'alwaysOn' | 'times' | 'skip';
  remaining: number;
  data: Doc;
}

const NAMES = ['failCommand', 'failGetMoreAfterCursorCheckout', 'onPrimaryTransactionalWrite'] as const;
type FailPointName = (typeof NAMES)[number];

/** Codes the change streams spec lists as resumable (server-labelled ResumableChangeStreamError). */
const RESUMABLE_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 13388, 234, 133, 43]);
/** Retryable write error codes (retryable writes spec, "Determining Retryable Errors"). */
export const RETRYABLE_WRITE_CODES = new Set([11600, 11602, 10107, 13435, 13436, 189, 91, 7, 6, 89, 9001, 262]);

export class FailPoints {
  private readonly points = new Map<FailPointName, FailPointState>();

  configure(cmd: Doc): Doc {
    const name = cmd.configureFailPoint as FailPointName;
    if (!NAMES.includes(name)) fail(ErrorCodes.BadValue, `Cannot find failpoint: ${String(name)}`);
    const mode = cmd.mode;
    const data = isPlainObject(cmd.data) ? cmd.data : {};
    let state: FailPointState | undefined;
    if (mode === 'off') state = undefined;
    else if (mode === 'alwaysOn') state = { mode: 'alwaysOn', remaining: 0, data };
    else if (isPlainObject(mode) && mode.times !== undefined) state = { mode: 'times', remaining: toNumber(mode.times), data };
    else if (isPlainObject(mode) && mode.skip !== undefined) state = { mode: 'skip', remaining: toNumber(mode.skip), data };
    else fail(ErrorCodes.BadValue, 'Failpoint mode must be "off", "alwaysOn", {times: n} or {skip: n}');
    if (state?.mode === 'times' && state.remaining <= 0) state = undefined;
    if (state) this.points.set(name, state);
    else this.points.delete(name);
    return { count: 0 };
  }

  /** Consumes one activation of `name` if it is on; returns its data when it fires. */
  private fire(name: FailPointName, applies: (data: Doc) => boolean): Doc | undefined {
    const fp = this.points.get(name);
    if (!fp || !applies(fp.data)) return undefined;
    if (fp.mode === 'skip') {
      if (fp.remaining > 0) {
        fp.remaining--;
        return undefined;
      }
    } else if (fp.mode === 'times') {
      fp.remaining--;
      if (fp.remaining <= 0) this.points.delete(name);
    }
    return fp.data;
  }

  /**
   * failCommand: the action to take for `commandName` before it runs, consuming one activation;
   * undefined to run normally. `retryableWrite`: the command is a retryable write (for labels).
   */
  check(commandName: string, appName: string | undefined, ns: string | undefined, retryableWrite: boolean): FailAction | undefined {
    if (commandName === 'configureFailPoint') return undefined;
    const d = this.fire('failCommand', (data) => {
      const names = Array.isArray(data.failCommands) ? data.failCommands : [];
      if (!names.includes(commandName)) return false;
      if (typeof data.appName === 'string' && data.appName !== appName) return false;
      if (typeof data.namespace === 'string' && data.namespace !== ns) return false;
      return true;
    });
    if (!d) return undefined;
    const action: FailAction = {
      closeConnection: d.closeConnection === true,
      blockTimeMS: d.blockConnection === true ? toNumber(d.blockTimeMS ?? 0) : 0,
    };
    const given = Array.isArray(d.errorLabels) ? (d.errorLabels as string[]) : undefined;
    if (d.errorCode !== undefined) {
      const code = toNumber(d.errorCode);
      const labels = given ?? (retryableWrite && RETRYABLE_WRITE_CODES.has(code) ? ['RetryableWriteError'] : []);
      action.error = new CommandError(code, "Failing command via 'failCommand' failpoint", {}, [...labels]);
    }
    if (isPlainObject(d.writeConcernError)) {
      action.writeConcernError = d.writeConcernError;
      const wceCode = toNumber(d.writeConcernError.code);
      action.writeConcernLabels = given ?? (retryableWrite && RETRYABLE_WRITE_CODES.has(wceCode) ? ['RetryableWriteError'] : []);
    }
    return action;
  }

  /** failGetMoreAfterCursorCheckout: fires for a getMore whose cursor exists. */
  checkGetMore(isChangeStream: boolean): FailAction | undefined {
    const d = this.fire('failGetMoreAfterCursorCheckout', () => true);
    if (!d) return undefined;
    const action: FailAction = { closeConnection: d.closeConnection === true, blockTimeMS: 0 };
    if (d.errorCode !== undefined) {
      const code = toNumber(d.errorCode);
      const labels = Array.isArray(d.errorLabels)
        ? (d.errorLabels as string[])
        : isChangeStream && RESUMABLE_CODES.has(code)
          ? ['ResumableChangeStreamError']
          : [];
      action.error = new CommandError(code, "Failing command via 'failGetMoreAfterCursorCheckout' failpoint", {}, [...labels]);
    }
    return action;
  }

  /** onPrimaryTransactionalWrite: fires for one statement of a retryable write. */
  checkTransactionalWrite(): TransactionalWriteAction | undefined {
    const d = this.fire('onPrimaryTransactionalWrite', () => true);
    if (!d) return undefined;
    return {
      closeConnection: d.closeConnection !== false,
      failBeforeCommitCode: d.failBeforeCommitExceptionCode === undefined ? undefined : toNumber(d.failBeforeCommitExceptionCode),
    };
  }
}
