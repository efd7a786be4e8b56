/** How capture classifies a failure: reopen the change stream, stop with a documented exit code, or fail. */
import type { Document, Timestamp } from 'mongodb';
import { errorCode, isTransientError } from '../db/transient-errors.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

/**
 * The resume point left the source's change history: MongoDB ChangeStreamHistoryLost (286,
 * https://www.mongodb.com/docs/manual/reference/error-codes/), Amazon DocumentDB 136 (its change
 * stream log, kept change_stream_log_retention_duration, 3 h by default:
 * https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html).
 */
const HISTORY_LOST_CODES = new Set([286, 136]);
/**
 * The source cannot use the resume token: MongoDB InvalidResumeToken (260) and
 * ChangeStreamFatalError (280: e.g. "the resume token was not found" — the token's event is not in
 * this deployment's history; not a history loss); Amazon DocumentDB answers an unreadable token
 * with FailedToParse (9), which counts only when the stream was opened with a token.
 */
const INVALID_TOKEN_CODES = new Set([260, 280]);
const DOCDB_INVALID_TOKEN = 9;

/**
 * Errors after which reopening the stream from the last seen token is safe and useful: every
 * transient error (src/db/transient-errors.ts), plus what is specific to change streams — the
 * server's ResumableChangeStreamError label, a cursor the server forgot, stale routing on a
 * sharded source.
 */
const CHANGE_STREAM_RETRY_CODES = new Set([
  43, // CursorNotFound
  63, // StaleShardVersion
  150, // StaleEpoch
  234, // RetryChangeStream
  13388, // StaleConfig
]);
export function isReopenable(err: unknown): boolean {
  if (isTransientError(err)) return true;
  if ((err as { hasErrorLabel?: (l: string) => boolean })?.hasErrorLabel?.('ResumableChangeStreamError')) return true;
  const code = errorCode(err);
  return code !== undefined && CHANGE_STREAM_RETRY_CODES.has(code);
}

/** The failure that ends capture with a documented exit code, if `err` is one (history lost, foreign token). */
export function captureFailure(err: unknown, from: string, withToken: boolean): MigratorError | undefined {
  const code = errorCode(err);
  if (code !== undefined && HISTORY_LOST_CODES.has(code)) {
    return new MigratorError(
      ExitCode.HISTORY_LOST,
      `The source no longer has the change-stream history to resume from ${from} (error ${code}: ${errorMessage(err)}).`,
      {
        hint:
          'Changes made since then are lost to the stream: start over with a new initial load (full-migrate with a new --migration-id and --drop), ' +
          'and keep capture running or raise the oplog / DocumentDB change_stream_log_retention_duration.',
        cause: err,
      },
    );
  }
  if (code !== undefined && (INVALID_TOKEN_CODES.has(code) || (withToken && code === DOCDB_INVALID_TOKEN))) {
    return new MigratorError(
      ExitCode.STATE_CONFLICT,
      `The source rejected the resume point ${from} (error ${code}: ${errorMessage(err)}). Is it from another deployment?`,
      { hint: 'Use a resume point taken on this source, or another --migration-id.', cause: err },
    );
  }
  return undefined;
}

export function streamFailure(streamName: string, err: unknown): MigratorError {
  return new MigratorError(ExitCode.STREAM_FAILED, `Kinesis refused the change events for stream ${streamName}: ${errorMessage(err)}.`, {
    hint: 'Check that the stream still exists and is ACTIVE, and the AWS credentials (kinesis:PutRecords); rerun capture to resume from its checkpoint.',
    cause: err,
  });
}

/** Kinesis cannot be written at all (wrong stream, endpoint or credentials). */
export function streamUnreachable(streamName: string, err: unknown): MigratorError {
  if (err instanceof MigratorError) return err;
  return new MigratorError(ExitCode.STREAM_FAILED, `Cannot write to Kinesis stream ${streamName}: ${errorMessage(err)}.`, {
    hint: 'Check --kinesis-stream, --region / --kinesis-endpoint, that the stream is ACTIVE, and the AWS credentials.',
    cause: err,
  });
}

/** Where a stream starts, for messages. */
export function describeStart(opts: Document): string {
  if (opts.resumeAfter) return `token ${JSON.stringify(opts.resumeAfter)}`;
  if (opts.startAtOperationTime) {
    // As --start-at takes it (SECONDS,INCREMENT), not the Timestamp's 64-bit integer.
    const ts = opts.startAtOperationTime as Timestamp;
    return `operation time ${ts.t},${ts.i}`;
  }
  return 'now';
}
