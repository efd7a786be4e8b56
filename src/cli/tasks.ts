import { Listr, ListrLogger, ProcessOutput, type ListrTask } from 'listr2';
import type { MigrationStep } from '../orchestration/migration-steps.js';
import type { LogFormat } from '../util/logger.js';
import { redactText } from '../util/redact.js';

/**
 * Which listr2 renderer to use: the animated one only for a person at a TTY;
 * a plain line renderer in CI (CI=true) or when output is piped; none with JSON logs
 * (the JSON log lines then carry the progress).
 */
export function rendererFor(opts: { logFormat: LogFormat; isTTY?: boolean; env?: NodeJS.ProcessEnv }): 'default' | 'simple' | 'silent' {
  const env = opts.env ?? process.env;
  const isTTY = opts.isTTY ?? Boolean(process.stderr.isTTY);
  if (opts.logFormat === 'json') return 'silent';
  if (!isTTY || env.CI === 'true' || env.CI === '1') return 'simple';
  return 'default';
}

/** Task progress goes to stderr: stdout is reserved for a command's report (e.g. --json). */
function stderrLogger(): ListrLogger {
  const out = redactingStream(process.stderr);
  return new ListrLogger({ processOutput: new ProcessOutput(out, out) });
}

/** The same stream, with every write passed through the redactor (task titles and errors included). */
function redactingStream(stream: NodeJS.WriteStream): NodeJS.WriteStream {
  return new Proxy(stream, {
    get(target, prop) {
      if (prop === 'write') {
        return (chunk: unknown, ...rest: unknown[]) =>
          (target.write as (...a: unknown[]) => boolean)(redactText(String(chunk)), ...rest);
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export function createTasks<Ctx>(tasks: ListrTask<Ctx>[], opts: { logFormat: LogFormat; concurrent?: boolean }): Listr<Ctx> {
  const renderer = rendererFor(opts);
  const options = {
    concurrent: opts.concurrent ?? false,
    exitOnError: true,
    registerSignalListeners: false,
    renderer,
    rendererOptions: { logger: stderrLogger(), collapseErrors: false },
  };
  return new Listr<Ctx>(tasks, options as never);
}

/** A migration's steps (src/orchestration/migration-steps.ts) as listr2 tasks: title, skip, progress line. */
export function stepTasks<Ctx>(steps: readonly MigrationStep[]): ListrTask<Ctx>[] {
  return steps.map((step) => ({
    title: step.title,
    ...(step.skip ? { skip: step.skip } : {}),
    task: (_ctx, task) => step.run((text) => (task.output = text)),
  }));
}
