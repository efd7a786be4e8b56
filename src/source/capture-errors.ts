/** How capture classifies a failure: reopen the change stream, stop with a documented exit code, or fail. */
import type { Document, Timestamp } from 'mongodb';
import { errorCode, isChangeStreamRetryable, isHistoryLost, isResumeTokenRejected } from '../db/mongo-errors.js';
import { isTransientError } from '../db/transient-errors.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

/**
 * Errors after which reopening the stream from the last seen token is safe and useful: every
 * transient error (src/db/transient-errors.ts), plus what is specific to change streams — the
 * server's ResumableChangeStreamError label, a cursor the server forgot, stale routing on a
 * sharded source (db/mongo-errors.ts).
 */
export function isReopenable(err: unknown): boolean {
  if (isTransientError(err)) return true;
  if ((err as { hasErrorLabel?: (l: string) => boolean })?.hasErrorLabel?.('ResumableChangeStreamError')) return true;
  return isChangeStreamRetryable(err);
}

/**
 * The failure that ends capture with a documented exit code, if `err` is one: the resume point
 * left the source's change history (the oplog, or DocumentDB's change stream log), or the source
 * cannot use the resume token (db/mongo-errors.ts: isHistoryLost, isResumeTokenRejected).
 */
export function captureFailure(err: unknown, from: string, withToken: boolean): MigratorError | undefined {
  const code = errorCode(err);
  if (isHistoryLost(err)) {
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
  if (isResumeTokenRejected(err, withToken)) {
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
