/**
 * Initial load, two ways on the same data and the same binaries:
 *  - product: the product's runDumpRestorePipe with the PipeJob planPipes builds (default load
 *    options + --drop), i.e. what `migrator initial-load` runs per database;
 *  - shell:   `mongodump … | mongorestore …` in bash (pipefail) with the same arguments, as by hand.
 * Reports wall seconds, documents restored, this process's and the tools' CPU seconds.
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runDumpRestorePipe } from '../../src/initial-load/dump-restore-pipe.js';
import { DEFAULT_LOAD_OPTIONS, planPipes } from '../../src/initial-load/dump-restore-plan.js';
import { cpuSecondsOf, CpuMeter } from '../lib/proc.js';
import { emitResult, workerArgs } from '../lib/worker-kit.js';

interface Args {
  mode: 'product' | 'shell';
  label: string;
  sourceUri: string;
  targetUri: string;
  db: string;
  targetDb: string;
  collections: string[];
  mongodump: string;
  mongorestore: string;
  pids: Record<string, number>;
}

const a = workerArgs<Args>();
const [job] = planPipes(
  a.collections.map((coll) => ({ db: a.db, coll })),
  new Map([[a.db, a.collections]]),
  () => a.targetDb,
  { ...DEFAULT_LOAD_OPTIONS, drop: true },
);
const others = new CpuMeter(a.pids).start();
const self0 = process.cpuUsage();
const children0 = cpuSecondsOf(process.pid, true)! - cpuSecondsOf(process.pid)!;
const t0 = performance.now();
let restored: number;
const workDir = mkdtempSync(path.join(tmpdir(), 'bench-load-'));
try {
  if (a.mode === 'product') {
    const r = await runDumpRestorePipe(job!, { uri: a.sourceUri }, { uri: a.targetUri }, { mongodump: a.mongodump, mongorestore: a.mongorestore }, { workDir });
    restored = r.restored;
  } else {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const cmd = [q(a.mongodump), q(`--uri=${a.sourceUri}`), ...job!.dumpArgs.map(q), '|', q(a.mongorestore), q(`--uri=${a.targetUri}`), ...job!.restoreArgs.map(q)].join(' ');
    const r = await execa('bash', ['-o', 'pipefail', '-c', cmd], { reject: false, all: true });
    if (r.exitCode !== 0) throw new Error(`shell pipe failed (${String(r.exitCode)}): ${String(r.all).slice(-2000)}`);
    const m = /(\d+) document\(s\) restored successfully/.exec(String(r.all));
    restored = m ? Number(m[1]) : 0;
  }
} finally {
  rmSync(workDir, { recursive: true, force: true });
}
const seconds = (performance.now() - t0) / 1000;
const selfCpu = (process.cpuUsage(self0).user + process.cpuUsage(self0).system) / 1e6;
const toolsCpu = cpuSecondsOf(process.pid, true)! - cpuSecondsOf(process.pid)! - children0;
emitResult({ label: a.label, mode: a.mode, seconds, restored, selfCpuSeconds: selfCpu, toolsCpuSeconds: toolsCpu, otherCpuSeconds: others.stop(), dumpArgs: job!.dumpArgs, restoreArgs: job!.restoreArgs });
process.exit(0);
