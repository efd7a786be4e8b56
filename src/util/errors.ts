import { ExitCode, type ExitCodeValue } from './exit-codes.js';

/**
 * An error the user can act on: one message naming the problem, an optional remedy,
 * and the exit code of its failure class. Messages must already be free of secrets;
 * the CLI still passes them through the redactor before printing.
 */
export class MigratorError extends Error {
  readonly exitCode: ExitCodeValue;
  readonly hint?: string;

  constructor(exitCode: ExitCodeValue, message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MigratorError';
    this.exitCode = exitCode;
    this.hint = options?.hint;
  }
}

export class UsageError extends MigratorError {
  constructor(message: string, hint?: string) {
    super(ExitCode.USAGE, message, { hint });
    this.name = 'UsageError';
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
