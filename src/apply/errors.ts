/**
 * Error classes of the apply side and the classification of driver/server errors.
 */
import type { Document } from 'mongodb';
import type { CollectionNamespace } from '../model/change-envelope.js';
import { errorCode } from '../db/transient-errors.js';
import { MongoErrorCode } from '../db/mongo-errors.js';

/** A write the target refused for a reason retrying will not fix (validation, size, auth, …). */
export class ApplyWriteError extends Error {
  override name = 'ApplyWriteError';
  constructor(
    message: string,
    readonly details: { ns?: CollectionNamespace; key?: Document; code?: number; index?: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A DDL event that cannot be reproduced on the target: e.g. a rename from an excluded namespace
 * into an included one (the documents never travelled), or a rename the target engine refuses
 * (cross-database rename on an engine without it). Needs an operator: re-run the initial load
 * of the affected collection or widen the filters.
 */
export class UnmappableDdlError extends Error {
  override name = 'UnmappableDdlError';
  constructor(
    message: string,
    readonly index: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A transient error persisted through every retry. */
export class RetriesExhaustedError extends Error {
  override name = 'RetriesExhaustedError';
  constructor(
    readonly what: string,
    readonly attempts: number,
    cause: unknown,
  ) {
    super(`${what}: still failing after ${attempts} attempts: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

export const DUPLICATE_KEY = MongoErrorCode.DuplicateKey;
export const NAMESPACE_NOT_FOUND = MongoErrorCode.NamespaceNotFound;

export { isTransientError } from '../db/transient-errors.js';

export function isNamespaceNotFound(err: unknown): boolean {
  return errorCode(err) === NAMESPACE_NOT_FOUND || /ns not found|namespace not found/i.test((err as Error)?.message ?? '');
}

export interface BulkWriteErrorEntry {
  index: number;
  code: number;
  message: string;
}

/** The per-operation errors of a MongoBulkWriteError (empty for other errors). */
export function bulkWriteErrors(err: unknown): BulkWriteErrorEntry[] {
  if ((err as Error)?.name !== 'MongoBulkWriteError') return [];
  const raw = (err as { writeErrors?: unknown }).writeErrors;
  const list = Array.isArray(raw) ? raw : raw ? [raw] : [];
  return list.map((w: { index: number; code: number; errmsg?: string }) => ({
    index: w.index,
    code: w.code,
    message: w.errmsg ?? '',
  }));
}
