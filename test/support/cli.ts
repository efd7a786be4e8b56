import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Both streams, for "appears nowhere" assertions. */
  all: string;
}

/** Runs the real CLI (from source, through tsx) as a separate process, as a user would. */
export async function runMigrator(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string; onStdout?: (chunk: string) => void } = {},
): Promise<CliResult> {
  const env: Record<string, string> = { CI: 'true' };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MIGRATOR_') && v !== undefined) env[k] = v;
  const child = execa(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...env, ...opts.env },
    extendEnv: false,
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
    stdin: 'ignore',
  });
  if (opts.onStdout) child.stdout?.on('data', (d: Buffer | string) => opts.onStdout!(String(d)));
  const r = await child;
  return {
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout),
    stderr: String(r.stderr),
    all: `${String(r.stdout)}\n${String(r.stderr)}`,
  };
}

export const PROJECT_ROOT = ROOT;
