/**
 * How the apply runner's shards stop and fail: its internal signals (interrupted, a shard's fatal
 * failure, conflicts pending before a DDL), and the mapping of any failure to the MigratorError
 * (exit code, message, hint) `runApply` rejects with.
 */
import { BSON } from 'mongodb';
import { LeaseLostError } from '../state/lease-keeper.js';
import { classifyError } from '../transport/stream-errors.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { ApplyWriteError, RetriesExhaustedError, UnmappableDdlError, isTransientError } from './errors.js';
import { streamError } from './stream-preflight.js';
import type { ApplyConflict } from './writer.js';

/** The process is stopping (signal): the shard's work is cut short, to be replayed. */
export class ApplyInterrupted extends Error {
  override name = 'ApplyInterrupted';
}

/** A fatal failure of one shard's batch (wraps the cause). */
export class ShardFailure extends Error {
  override name = 'ShardFailure';
  constructor(
    readonly shardId: string,
    readonly error: unknown,
  ) {
    super(`shard ${shardId}: ${errorMessage(error)}`, { cause: error });
  }
}

/** onProgress saw unresolved conflicts before a DDL: abort the batch, retry it later. */
export class PendingConflicts extends Error {
  override name = 'PendingConflicts';
  constructor(readonly conflicts: readonly ApplyConflict[]) {
    super(`${conflicts.length} unresolved duplicate-key conflict(s)`);
  }
}

/** The first error of `err`'s cause chain (10 deep) that `is` accepts. */
export function findCause<T>(err: unknown, is: (e: unknown) => e is T): T | undefined {
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    if (is(e)) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export const isLeaseLost = (e: unknown): e is LeaseLostError => e instanceof LeaseLostError;
export const isInterrupted = (e: unknown): e is ApplyInterrupted => e instanceof ApplyInterrupted;

/** The MigratorError `runApply` rejects with for `err` (a shard's failure, or reading the stream). */
export function toMigratorError(err: unknown, streamName: string): MigratorError {
  if (err instanceof MigratorError) return err;
  if (!(err instanceof ShardFailure)) return streamError(err, streamName); // anything else comes from reading the stream
  const cause = err.error;
  if (cause instanceof MigratorError) return cause;
  const where = `Shard ${err.shardId}`;
  if (cause instanceof UnmappableDdlError) {
    return new MigratorError(ExitCode.APPLY_FAILED, `${where}: ${cause.message}`, {
      hint: 'Fix the namespace filters or re-run the initial load of the collection, then rerun apply.',
      cause,
    });
  }
  if (cause instanceof ApplyWriteError) {
    return new MigratorError(ExitCode.APPLY_FAILED, `${where}: ${cause.message}`, {
      hint: 'The target refused a write that retrying cannot fix; rerunning resumes from the last checkpoint.',
      cause,
    });
  }
  if (cause instanceof RetriesExhaustedError || isTransientError(cause)) {
    return new MigratorError(ExitCode.CONNECTION_FAILED, `${where}: the target or the state store keeps failing: ${errorMessage(cause)}`, {
      hint: 'Check that the target and the state store are reachable; rerunning resumes from the last checkpoint.',
      cause,
    });
  }
  if ((cause as Error)?.name === 'MongoServerError') {
    return new MigratorError(ExitCode.APPLY_FAILED, `${where}: ${errorMessage(cause)}`, { cause });
  }
  if (classifyError(cause) === 'fatal' && (cause as { $metadata?: unknown })?.$metadata) return streamError(cause, streamName);
  return new MigratorError(ExitCode.INTERNAL, `${where}: ${errorMessage(cause)}`, { cause });
}

const ejson = (v: unknown) => BSON.EJSON.stringify(v as BSON.Document, { relaxed: true });

export function describeConflict(c: ApplyConflict): string {
  return `${c.target.db}.${c.target.coll} ${ejson(c.key)} (${c.op}): ${c.message || `code ${c.code}`}`;
}

/** APPLY_FAILED for a batch whose duplicate-key conflicts outlived the conflict retries. */
export function conflictFailure(shardId: string, conflicts: readonly ApplyConflict[], elapsedMs: number): MigratorError {
  const shown = conflicts.slice(0, 10).map(describeConflict);
  const more = conflicts.length > shown.length ? `; and ${conflicts.length - shown.length} more` : '';
  const namespaces = [...new Set(conflicts.map((c) => `${c.target.db}.${c.target.coll}`))].join(', ');
  return new MigratorError(
    ExitCode.APPLY_FAILED,
    `Shard ${shardId}: ${conflicts.length} duplicate-key conflict(s) in ${namespaces} still unresolved after ` +
      `${Math.round(elapsedMs / 1000)} s of retries: ${shown.join('; ')}${more}.`,
    {
      hint:
        'A unique index on the target rejects these documents. If the source has no such index, drop it on the target ' +
        '(re-create it after cutover); otherwise check that every shard of the stream is being applied. Rerunning resumes from the last checkpoint.',
    },
  );
}

/** STALLED: the target acknowledged no write of the shard's batch for `quietMs`. */
export function stallFailure(shardId: string, quietMs: number, since: Date): MigratorError {
  return new MigratorError(
    ExitCode.APPLY_STALLED,
    `Shard ${shardId}: the target acknowledged no write for ${Math.round(quietMs / 1000)} s (since ${since.toISOString()}).`,
    {
      hint:
        'The target stopped answering writes (check its health and load; a FerretDB/SQLite target can lock up under ' +
        'concurrent writers). Rerunning resumes from the last checkpoint.',
    },
  );
}
