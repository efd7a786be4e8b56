import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/** The Go-built tools that scripts/build-go-tools.sh puts in .tools/bin/. */
export type GoTool = 'mongodump' | 'mongorestore' | 'ferretdb';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'scripts', 'build-go-tools.sh');
export const GO_TOOLS_BIN = path.join(ROOT, '.tools', 'bin');

const HOW_TO_BUILD =
  'Build it with `npm run tools` (= `bash scripts/build-go-tools.sh`): it needs Go and the Go ' +
  'module proxy; the first build takes about 2 minutes, later runs are instant.';

/** Absolute path of a built tool; throws, saying how to build it, when it is missing. */
export function goToolPath(name: GoTool): string {
  const file = path.join(GO_TOOLS_BIN, name);
  if (!existsSync(file)) throw new Error(`${name} is not built: ${file} does not exist. ${HOW_TO_BUILD}`);
  return file;
}

// The script builds per source module, not per binary.
const GROUP: Record<GoTool, string> = {
  mongodump: 'mongo-tools',
  mongorestore: 'mongo-tools',
  ferretdb: 'ferretdb',
};

/**
 * Runs the build script for the given tools (default: all). It is cached by a stamp, so this is
 * a few milliseconds once built; a cold build takes minutes, so a caller's hook needs no timeout
 * shorter than that. Build progress goes to this process's stderr as it happens.
 * Throws with the tail of the script's output on failure.
 */
export async function ensureGoTools(names: readonly GoTool[] = ['mongodump', 'mongorestore', 'ferretdb']): Promise<void> {
  const groups = [...new Set(names.map((n) => GROUP[n]))];
  const result = await execa('bash', [SCRIPT, ...groups], {
    reject: false,
    all: true,
    stdin: 'ignore',
    stderr: ['pipe', 'inherit'],
    timeout: 20 * 60_000,
  });
  if (result.exitCode !== 0) {
    const tail = (result.all ?? '')
      .split('\n')
      .filter((line) => !line.startsWith('go: downloading'))
      .slice(-25)
      .join('\n');
    throw new Error(
      `scripts/build-go-tools.sh ${groups.join(' ')} failed (${result.shortMessage}):\n${tail}\n${HOW_TO_BUILD}`,
    );
  }
  for (const name of names) goToolPath(name);
}
