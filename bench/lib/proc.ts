/**
 * Process accounting from /proc (Linux): CPU seconds and RSS of any pid, so the bench can say
 * where the time went (migrator process vs emulators vs kinesis-local vs the Go tools).
 */
import { readFileSync } from 'node:fs';

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64/arm64

/** utime + stime of a pid in seconds (children that were waited for included when `withChildren`). */
export function cpuSecondsOf(pid: number, withChildren = false): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces/parens: split after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is state (field 3); utime = field 14, stime = 15, cutime = 16, cstime = 17
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const cutime = Number(fields[13]);
    const cstime = Number(fields[14]);
    return (utime + stime + (withChildren ? cutime + cstime : 0)) / CLK_TCK;
  } catch {
    return undefined;
  }
}

export function rssBytesOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export function peakRssBytesOf(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds used by a set of named pids between `start()` and `stop()`. */
export class CpuMeter {
  private readonly before = new Map<string, number>();
  constructor(private readonly pids: Record<string, number>) {}
  start(): this {
    for (const [name, pid] of Object.entries(this.pids)) this.before.set(name, cpuSecondsOf(pid) ?? 0);
    return this;
  }
  stop(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids)) out[name] = round3((cpuSecondsOf(pid) ?? 0) - (this.before.get(name) ?? 0));
    return out;
  }
}

export const round3 = (x: number) => Math.round(x * 1000) / 1000;
