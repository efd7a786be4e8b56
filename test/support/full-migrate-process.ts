// Helpers of the embedded-transport tests.
import { readFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import type { Document, MongoClient } from 'mongodb';
import type { StateStore } from '../../src/state/store.js';
import { PROJECT_ROOT } from './cli.js';
import { goToolPath } from './go-tools.js';

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
    await new Promise((r) => setTimeout(r, 50));
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
const MAIN = `${PROJECT_ROOT}/src/cli/main.ts`;

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
  const proc = execa(
    process.execPath,
    [
      '--import', 'tsx', MAIN, 'full-migrate',
      '--source-uri', sourceUri, '--target-uri', targetUri, '--data-dir', dataDir,
      '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
      '--log-format', 'json', ...extra,
    ],
    { cwd: PROJECT_ROOT, env: { CI: 'true' }, reject: false, stdin: 'ignore' },
  );
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

export async function waitForPhase(store: StateStore, id: string, phases: string[], ms: number, proc?: ResultPromise, logTail?: () => string) {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    const m = await store.getMigration(id);
    last = m?.phase ?? 'none';
    if (phases.includes(last)) return last;
    if (proc && proc.exitCode !== null) throw new Error(`full-migrate exited ${proc.exitCode} in phase ${last}\n${logTail?.() ?? ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`phase ${last} after ${ms} ms, expected ${phases.join('/')}\n${logTail?.() ?? ''}`);
}
