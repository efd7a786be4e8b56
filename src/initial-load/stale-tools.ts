import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * mongodump/mongorestore outlive a SIGKILLed parent (outside a container, where the whole process
 * tree dies with PID 1). A stale mongorestore from a killed load could still insert old documents
 * while the restarted load and apply run, so their pids are recorded under the work directory and
 * a restarted load kills whatever of them still runs before it starts.
 */
const PID_FILE = 'tool-pids.json';

export function recordToolPids(workDir: string, pids: (number | undefined)[]): void {
  writeFileSync(join(workDir, PID_FILE), JSON.stringify(pids.filter((p) => typeof p === 'number')));
}

export function clearToolPids(workDir: string): void {
  rmSync(join(workDir, PID_FILE), { force: true });
}

/** Kills recorded tool processes that still run (checked by name, so a reused pid is left alone). */
export function killStaleTools(workDir: string): number[] {
  let pids: number[];
  try {
    pids = JSON.parse(readFileSync(join(workDir, PID_FILE), 'utf8')) as number[];
  } catch {
    return [];
  }
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
  clearToolPids(workDir);
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
    rmSync(join(workDir, name), { recursive: true, force: true });
    n++;
  }
  return n;
}
