import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import type { EndpointConfig } from '../config/schema.js';
import { MigratorError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { redactText } from '../util/redact.js';
import type { PipeJob } from './dump-restore-plan.js';
import { tlsArgs, toolUri } from './dump-restore-plan.js';
import type { ToolBinaries } from './tool-binaries.js';
import { clearToolPids, recordToolPids } from './stale-tools.js';
import { LineTail, parseToolLine, type ToolEvent } from './tool-progress.js';

export interface PipeResult {
  restored: number;
  failed: number;
  collections: Map<string, number>;
}

/**
 * The connection string goes to the tools in a YAML config file readable only by us, never on
 * the command line: `ps` shows every process's arguments to every user.
 */
function writeToolConfig(dir: string, name: string, e: EndpointConfig): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, `uri: ${JSON.stringify(toolUri(e))}\n`, { mode: 0o600 });
  return path;
}

function follow(stream: Readable | null, tail: LineTail, onEvent: (e: ToolEvent) => void) {
  if (!stream) return;
  createInterface({ input: stream }).on('line', (line) => {
    tail.push(redactText(line));
    const ev = parseToolLine(line);
    if (ev) onEvent(ev);
  });
}

/**
 * Runs `mongodump --archive | mongorestore --archive` for one job, with no temporary data files.
 * Resolves when both tools exited 0; otherwise throws TOOL_FAILED with the stderr tail of each.
 */
export async function runDumpRestorePipe(
  job: PipeJob,
  source: EndpointConfig,
  target: EndpointConfig,
  bins: ToolBinaries,
  opts: { workDir: string; signal?: AbortSignal; onEvent?: (e: ToolEvent) => void },
): Promise<PipeResult> {
  const dir = mkdtempSync(join(opts.workDir, 'load-'));
  const result: PipeResult = { restored: 0, failed: 0, collections: new Map() };
  const dumpTail = new LineTail();
  const restoreTail = new LineTail();
  const onEvent = (e: ToolEvent) => {
    if (e.kind === 'restore-finished') result.collections.set(e.ns, e.documents);
    if (e.kind === 'restore-summary') {
      result.restored = e.restored;
      result.failed = e.failed;
    }
    opts.onEvent?.(e);
  };
  try {
    const dumpCfg = writeToolConfig(dir, 'dump', source);
    const restoreCfg = writeToolConfig(dir, 'restore', target);
    // On a stop request the tools get 1 s to exit on SIGTERM, then SIGKILL: an interrupted load is
    // redone from the start (with --drop), so nothing they could still finish is worth waiting for.
    const common = { reject: false, cancelSignal: opts.signal, forceKillAfterDelay: 1000, buffer: false } as const;
    const dump = execa(bins.mongodump, [`--config=${dumpCfg}`, ...tlsArgs(source), ...job.dumpArgs], {
      ...common,
      stdin: 'ignore',
    });
    const restore = execa(bins.mongorestore, [`--config=${restoreCfg}`, ...tlsArgs(target), ...job.restoreArgs], {
      ...common,
      stdout: 'ignore',
    });
    recordToolPids(opts.workDir, [dump.pid, restore.pid]);
    follow(dump.stderr, dumpTail, onEvent);
    follow(restore.stderr, restoreTail, onEvent);
    dump.stdout!.pipe(restore.stdin!);
    // If mongorestore dies, mongodump gets EPIPE; that is reported through restore's failure.
    restore.stdin!.on('error', () => undefined);
    const [d, r] = await Promise.all([dump, restore]);
    clearToolPids(opts.workDir);
    if (opts.signal?.aborted) {
      throw new MigratorError(ExitCode.INTERRUPTED, `Initial load of ${job.sourceDb} was interrupted.`);
    }
    if (d.exitCode !== 0 || r.exitCode !== 0 || d.failed || r.failed) {
      const parts = [];
      if (d.exitCode !== 0 || d.failed) parts.push(`mongodump exited ${d.exitCode ?? d.signal}:\n${dumpTail.text()}`);
      if (r.exitCode !== 0 || r.failed) parts.push(`mongorestore exited ${r.exitCode ?? r.signal}:\n${restoreTail.text()}`);
      throw new MigratorError(ExitCode.TOOL_FAILED, `Initial load of ${job.sourceDb} → ${job.targetDb} failed. ${parts.join('\n')}`, {
        hint: 'Fix the cause above and rerun: the load restarts with --drop and keeps the recorded resume point.',
      });
    }
    if (result.failed > 0) {
      throw new MigratorError(
        ExitCode.TOOL_FAILED,
        `mongorestore could not restore ${result.failed} document(s) of ${job.sourceDb} → ${job.targetDb}:\n${restoreTail.text()}`,
        { hint: 'Often duplicate keys in a non-empty target: rerun with --drop.' },
      );
    }
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
