// The migrator's long-running commands as separate processes, as a container orchestrator runs
// them: start (from source, through tsx), wait for phases, cut over, kill and restart. Shared by the
// end-to-end, chaos, image and secrets suites.
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { execa, type ResultPromise } from 'execa';
import type { Document, MongoClient } from 'mongodb';
import { PROJECT_ROOT, runMigrator, type CliResult } from './cli.js';
import { goToolPath } from './go-tools.js';
import { sleep } from './wait.js';

const MAIN = `${PROJECT_ROOT}/src/cli/main.ts`;

/**
 * Starts `migrator ARGS` (from source, through tsx) as its own process: CI=true on top of this
 * process's environment, stdin closed, never rejects (read `exitCode`). `forceKillAfterDelay`: how
 * long a SIGTERM may take before execa sends SIGKILL (docker stop's grace period).
 */
export function spawnMigrator(
  args: string[],
  opts: { env?: Record<string, string>; forceKillAfterDelay?: number; timeout?: number } = {},
): ResultPromise<{ reject: false; stdin: 'ignore' }> {
  return execa(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: PROJECT_ROOT,
    reject: false,
    stdin: 'ignore',
    env: { CI: 'true', ...opts.env },
    ...(opts.forceKillAfterDelay !== undefined ? { forceKillAfterDelay: opts.forceKillAfterDelay } : {}),
    ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}),
  });
}

/** `--mongodump-path`/`--mongorestore-path` of the Go-built tools (ensureGoTools() first). */
export function toolArgs(): string[] {
  return ['--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore')];
}

/** The last `lines` lines of a process's stderr, without the periodic apply-progress lines. */
export function stderrTail(stderr: unknown, lines = 60): string {
  return String(stderr)
    .split('\n')
    .filter((l) => !l.includes('apply progress'))
    .slice(-lines)
    .join('\n');
}

/**
 * Runs `body` while `proc` (a full-migrate) works; if `body` fails, SIGKILLs the process so no
 * migrator is left behind and rethrows. Then waits for the process to end, asserts it exited 0
 * (with its stderr tail otherwise) and returns its result (stdout, stderr).
 */
export async function whileRunning<R extends { exitCode?: number; stderr?: unknown }>(proc: PromiseLike<R> & { kill(signal?: NodeJS.Signals): boolean }, body: () => Promise<void>): Promise<R> {
  try {
    await body();
  } catch (err) {
    proc.kill('SIGKILL');
    await proc;
    throw err;
  }
  const done = await proc;
  assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
  return done;
}

/**
 * `migrator cutover … --writes-stopped --wait` (the user stopped the writes) and asserts it
 * succeeded; full-migrate then completes and exits 0.
 */
export async function cutoverAndWait(
  common: string[],
  opts: { timeout?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const timeout = opts.timeout ?? '90s';
  // The process gets 30 s more than the wait it was given (runMigrator's own default is 60 s, less
  // than a 90 s --timeout: on a loaded machine the cutover CLI was killed while still waiting).
  const seconds = /^(\d+)s$/.exec(timeout);
  const timeoutMs = opts.timeoutMs ?? (seconds ? (Number(seconds[1]) + 30) * 1000 : 150_000);
  const cut = await runMigrator(['cutover', ...common, '--writes-stopped', '--wait', '--timeout', timeout], {
    ...(opts.env ? { env: opts.env } : {}),
    timeoutMs,
  });
  assert.equal(cut.exitCode, 0, cut.all);
  return cut;
}

/** True while `pid` runs (a zombie waiting to be reaped counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/** Waits until `pid` is gone; false after `ms`. */
export async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!processAlive(pid)) return true;
    await sleep(50);
  }
  return !processAlive(pid);
}

/** Kills a leftover process (test cleanup), ignoring "already gone". */
export function killQuietly(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

// ---------------------------------------------------------------------------------------------
// End-to-end helpers


type AnyDoc = Document & { _id: number | string };

/** Seeds bar.products (2000 documents, unique index on name) and bar.orders. */
export async function seed(src: MongoClient): Promise<void> {
  const products = Array.from({ length: 2000 }, (_, i) => ({ _id: i, name: `product ${i}`, price: i % 100, legacy: true, reviews: [] }));
  await src.db('bar').collection<AnyDoc>('products').insertMany(products);
  await src.db('bar').collection('products').createIndex({ name: 1 }, { unique: true });
  await src.db('bar').collection<AnyDoc>('orders').insertOne({ _id: 'o-seed', total: 1 });
}

export { startWorkload } from './workload.js';

/** `migrator full-migrate` with nothing but the two connection strings and a data dir (+ the test's tool paths). */
export function spawnFullMigrate(sourceUri: string, targetUri: string, dataDir: string, extra: string[] = []) {
  const proc = spawnMigrator([
    'full-migrate',
    '--source-uri', sourceUri, '--target-uri', targetUri, '--data-dir', dataDir,
    ...toolArgs(),
    '--log-format', 'json', ...extra,
  ]);
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  proc.stderr!.on('data', (c: Buffer) => {
    const parts = (partial + c.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
  });
  const find = (msg: RegExp) => lines.find((l) => msg.test(String(l.msg)));
  return {
    proc,
    lines,
    find,
    /** Waits for a log line whose message matches. */
    async waitFor(msg: RegExp, ms: number): Promise<Record<string, unknown>> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const l = find(msg);
        if (l) return l;
        if (proc.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no log line ${msg} within ${ms} ms (exit ${String(proc.exitCode)}):\n${tail(lines)}`);
    },
    tail: () => tail(lines),
  };
}

function tail(lines: Record<string, unknown>[]): string {
  return lines
    .filter((l) => l.msg !== 'apply progress')
    .slice(-60)
    .map((l) => JSON.stringify(l))
    .join('\n');
}
