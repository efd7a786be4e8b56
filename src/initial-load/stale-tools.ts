import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * mongodump/mongorestore outlive a SIGKILLed parent (outside a container, where the whole process
 * tree dies with PID 1). A stale mongorestore from a killed load could still insert old documents
 * while the restarted load and apply run, so their pids are recorded under the work directory and
 * a restarted load kills whatever of them still runs before it starts.
 *
 * One file per pipe, `tool-pids-<pid of the migrator>-<random>.json`: a process runs several pipes
 * at once, and several processes (full-migrate, load-worker) may share a --data-dir; a starting
 * process only kills the tools of migrator processes that no longer run.
 */
const PID_FILE = /^tool-pids(?:-(\d+)-[0-9a-f]+)?\.json$/;

/** Records a pipe's tool pids; returns the key to clear them with. */
export function recordToolPids(workDir: string, pids: (number | undefined)[]): string {
  const key = `tool-pids-${process.pid}-${randomBytes(4).toString('hex')}.json`;
  writeFileSync(join(workDir, key), JSON.stringify(pids.filter((p) => typeof p === 'number')));
  return key;
}

export function clearToolPids(workDir: string, key: string): void {
  rmSync(join(workDir, key), { force: true });
}

/** True when `pid` is another process that runs (not this one). */
function otherProcessRuns(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills recorded tool processes that still run (checked by name, so a reused pid is left alone). */
export function killStaleTools(workDir: string): number[] {
  const killed: number[] = [];
  for (const name of readdirSync(workDir)) {
    const m = PID_FILE.exec(name);
    if (!m) continue;
    // Pipes of a live migrator (another process on the same --data-dir) are not stale.
    if (m[1] !== undefined && otherProcessRuns(Number(m[1]))) continue;
    let pids: number[];
    try {
      pids = JSON.parse(readFileSync(join(workDir, name), 'utf8')) as number[];
    } catch {
      pids = [];
    }
    killed.push(...killPids(pids));
    rmSync(join(workDir, name), { force: true });
  }
  return killed;
}

function killPids(pids: number[]): number[] {
  const killed: number[] = [];
  for (const pid of pids) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone
    }
    if (!/mongodump|mongorestore/.test(cmd)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* already exited */
    }
  }
  return killed;
}

/**
 * The tools' 0600 config files (they hold the connection strings) live in `load-*` folders that a
 * normal run removes; after a SIGKILL they stay, so a restarted load removes them first.
 */
export function removeStaleToolConfigs(workDir: string): number {
  let n = 0;
  for (const name of readdirSync(workDir)) {
    if (!name.startsWith('load-')) continue;
    const owner = /^load-(\d+)-/.exec(name);
    if (owner && otherProcessRuns(Number(owner[1]))) continue;
    rmSync(join(workDir, name), { recursive: true, force: true });
    n++;
  }
  return n;
}
