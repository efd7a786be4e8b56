import { redactText } from './redact.js';

/**
 * Report output (stdout): what a command prints as its result, human text or JSON.
 * Everything goes through the redactor (see util/redact.ts for the invariant).
 */
export function printReport(text: string): void {
  process.stdout.write(redactText(text.endsWith('\n') ? text : text + '\n'));
}

export function printJson(value: unknown): void {
  printReport(JSON.stringify(value, null, 2));
}

/** Writes a user-facing error to stderr, redacted. */
export function printError(text: string): void {
  process.stderr.write(redactText(text.endsWith('\n') ? text : text + '\n'));
}
