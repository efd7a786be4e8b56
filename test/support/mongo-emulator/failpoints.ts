// Fault injection compatible with mongod's test-only `configureFailPoint: 'failCommand'`:
// mode 'alwaysOn' | 'off' | {times: n} | {skip: n}; data {failCommands, errorCode, closeConnection,
// errorLabels, blockConnection, blockTimeMS, writeConcernError, appName}.
//
// Invariant: a failpoint fires at most `times` times (then turns itself off) and not before `skip`
// matching commands have passed; `configureFailPoint` itself is never failed.
import { isPlainObject, toNumber, type Doc } from './bson-values.js';
import { CommandError, ErrorCodes, fail } from './errors.js';

export interface FailAction {
  closeConnection: boolean;
  blockTimeMS: number;
  error?: CommandError;
  writeConcernError?: Doc;
}

interface FailPointState {
  mode: 'alwaysOn' | 'times' | 'skip';
  remaining: number;
  data: Doc;
}

/** Codes whose getMore/aggregate failures the server labels ResumableChangeStreamError. */
const RESUMABLE_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 13388, 234, 133, 43]);

export class FailPoints {
  private failCommand: FailPointState | undefined;

  configure(cmd: Doc): Doc {
    const name = cmd.configureFailPoint;
    if (name !== 'failCommand') fail(ErrorCodes.BadValue, `Cannot find failpoint: ${String(name)}`);
    const mode = cmd.mode;
    const data = isPlainObject(cmd.data) ? cmd.data : {};
    if (mode === 'off') this.failCommand = undefined;
    else if (mode === 'alwaysOn') this.failCommand = { mode: 'alwaysOn', remaining: 0, data };
    else if (isPlainObject(mode) && mode.times !== undefined) this.failCommand = { mode: 'times', remaining: toNumber(mode.times), data };
    else if (isPlainObject(mode) && mode.skip !== undefined) this.failCommand = { mode: 'skip', remaining: toNumber(mode.skip), data };
    else fail(ErrorCodes.BadValue, 'Failpoint mode must be "off", "alwaysOn", {times: n} or {skip: n}');
    if (this.failCommand?.mode === 'times' && this.failCommand.remaining <= 0) this.failCommand = undefined;
    return { count: 0 };
  }

  /** The action to take for `commandName`, consuming one activation; undefined to run normally. */
  check(commandName: string, appName: string | undefined, isChangeStream: boolean): FailAction | undefined {
    const fp = this.failCommand;
    if (!fp || commandName === 'configureFailPoint') return undefined;
    const names = Array.isArray(fp.data.failCommands) ? fp.data.failCommands : [];
    if (!names.includes(commandName)) return undefined;
    if (typeof fp.data.appName === 'string' && fp.data.appName !== appName) return undefined;
    if (fp.mode === 'skip') {
      if (fp.remaining > 0) {
        fp.remaining--;
        return undefined;
      }
    } else if (fp.mode === 'times') {
      fp.remaining--;
      if (fp.remaining <= 0) this.failCommand = undefined;
    }
    const d = fp.data;
    const action: FailAction = {
      closeConnection: d.closeConnection === true,
      blockTimeMS: d.blockConnection === true ? toNumber(d.blockTimeMS ?? 0) : 0,
    };
    if (d.errorCode !== undefined) {
      const code = toNumber(d.errorCode);
      const labels = Array.isArray(d.errorLabels) ? (d.errorLabels as string[]) : [];
      if (d.errorLabels === undefined && isChangeStream && RESUMABLE_CODES.has(code)) labels.push('ResumableChangeStreamError');
      action.error = new CommandError(code, "Failing command via 'failCommand' failpoint", {}, labels);
    }
    if (isPlainObject(d.writeConcernError)) action.writeConcernError = d.writeConcernError;
    return action;
  }
}
