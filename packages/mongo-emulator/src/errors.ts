// Server errors with MongoDB's numeric codes and code names. A thrown CommandError becomes an
// `{ok: 0, errmsg, code, codeName}` reply (plus `errorLabels` when set).
import type { Doc } from './bson-values.js';

export const ErrorCodes = {
  BadValue: 2,
  FailedToParse: 9,
  Unauthorized: 13,
  TypeMismatch: 14,
  IllegalOperation: 20,
  NamespaceNotFound: 26,
  IndexNotFound: 27,
  PathNotViable: 28,
  ConflictingUpdateOperators: 40,
  CursorNotFound: 43,
  NamespaceExists: 48,
  ShardKeyNotFound: 61,
  MaxTimeMSExpired: 50,
  DollarPrefixedFieldName: 52,
  InvalidIdField: 53,
  CommandNotFound: 59,
  ImmutableField: 66,
  CannotCreateIndex: 67,
  InvalidOptions: 72,
  InvalidNamespace: 73,
  IndexOptionsConflict: 85,
  IndexKeySpecsConflict: 86,
  OperationFailed: 96,
  CommandNotSupportedOnView: 166,
  CursorKilled: 237,
  InvalidResumeToken: 260,
  ChangeStreamFatalError: 280,
  ChangeStreamHistoryLost: 286,
  Location40324: 40324,
  Location40415: 40415,
  BSONObjectTooLarge: 10334,
  DuplicateKey: 11000,
} as const;

const codeNames = new Map<number, string>(Object.entries(ErrorCodes).map(([name, code]) => [code, name]));

export function codeName(code: number): string {
  return codeNames.get(code) ?? `Location${code}`;
}

export class CommandError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly extra: Doc = {},
    readonly errorLabels: string[] = [],
  ) {
    super(message);
  }

  toReply(): Doc {
    const reply: Doc = { ok: 0, errmsg: this.message, code: this.code, codeName: codeName(this.code), ...this.extra };
    if (this.errorLabels.length) reply.errorLabels = this.errorLabels;
    return reply;
  }
}

export function fail(code: number, message: string, extra?: Doc): never {
  throw new CommandError(code, message, extra);
}
