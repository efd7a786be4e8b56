import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { redactText } from './redact.js';

export type LogFormat = 'text' | 'json';
export type { Logger };

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const PINO_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'name']);

/** Renders one pino JSON line as `12:00:01 INFO  message key=value` for people at a terminal. */
export function formatTextLine(jsonLine: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const time = new Date(typeof rec.time === 'number' ? rec.time : Date.now()).toISOString().slice(11, 19);
  const level = (LEVEL_NAMES[rec.level as number] ?? String(rec.level)).toUpperCase().padEnd(5);
  const extras = Object.entries(rec)
    .filter(([k]) => !PINO_FIELDS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level} ${String(rec.msg ?? '')}${extras ? ' ' + extras : ''}\n`;
}

/**
 * A sink that redacts secrets from every line before it reaches the real output:
 * the logger cannot leak a password even if a caller logs a raw URI or driver error.
 */
class RedactingSink extends Writable {
  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly format: LogFormat,
  ) {
    super();
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const lines = chunk.toString().split('\n').filter((l) => l.length > 0);
    for (const line of lines) {
      const safe = redactText(line);
      this.out.write(this.format === 'json' ? safe + '\n' : formatTextLine(safe));
    }
    done();
  }
}

export function createLogger(opts: { format: LogFormat; verbose: boolean; out?: NodeJS.WritableStream }): Logger {
  const sink = new RedactingSink(opts.out ?? process.stderr, opts.format);
  return pino(
    {
      level: opts.verbose ? 'debug' : 'info',
      base: { name: 'migrator' },
      timestamp: pino.stdTimeFunctions.epochTime,
    },
    sink,
  );
}
