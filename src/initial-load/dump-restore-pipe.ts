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
  /** Bytes of the archive that went from mongodump to mongorestore. */
  bytes: number;
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

/** What the tools said while the pipe ran: the result's counts and mongorestore's failures. */
interface PipeWatch {
  result: PipeResult;
  dumpTail: LineTail;
  restoreTail: LineTail;
  /**
   * mongorestore's failure lines ("Failed: bar.dec: error restoring from archive …"), and the
   * namespaces they name: its "finished restoring bar.dec (0 documents, 0 failures)" line comes
   * before the error, so a finished line alone never means the collection was loaded.
   */
  restoreErrors: string[];
  failedNamespaces: Set<string>;
  onDumpEvent: (e: ToolEvent) => void;
  onRestoreEvent: (e: ToolEvent) => void;
}

function watchPipe(onEvent?: (e: ToolEvent) => void): PipeWatch {
  const w: PipeWatch = {
    result: { restored: 0, bytes: 0, failed: 0, collections: new Map() },
    dumpTail: new LineTail(),
    restoreTail: new LineTail(),
    restoreErrors: [],
    failedNamespaces: new Set(),
    onDumpEvent: (e) => {
      if (e.kind === 'restore-finished') w.result.collections.set(e.ns, e.documents);
      if (e.kind === 'restore-summary') {
        w.result.restored = e.restored;
        w.result.failed = e.failed;
      }
      onEvent?.(e);
    },
    onRestoreEvent: (e) => {
      if (e.kind === 'error') {
        w.restoreErrors.push(e.message);
        const m = /^(\S+\.\S+): error /.exec(e.message);
        if (m) w.failedNamespaces.add(m[1]!);
      }
      if (e.kind === 'restore-finished' && e.failures > 0) w.failedNamespaces.add(e.ns);
      w.onDumpEvent(e);
    },
  };
  return w;
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
  // `load-<pid>-…`: a restarted process removes only the folders of processes that are gone (stale-tools.ts).
  const dir = mkdtempSync(join(opts.workDir, `load-${process.pid}-`));
  const w = watchPipe(opts.onEvent);
  try {
    const { dump, restore } = startTools(job, source, target, bins, dir, opts.signal);
    const pidKey = recordToolPids(opts.workDir, [dump.pid, restore.pid]);
    follow(dump.stderr, w.dumpTail, w.onDumpEvent);
    follow(restore.stderr, w.restoreTail, w.onRestoreEvent);
    dump.stdout!.on('data', (chunk: Buffer) => (w.result.bytes += chunk.length));
    dump.stdout!.pipe(restore.stdin!);
    // If mongorestore dies, mongodump gets EPIPE; that is reported through restore's failure.
    restore.stdin!.on('error', () => undefined);
    const ends = await bothEnds(dump, restore, () => w.restoreErrors.length > 0, opts.signal);
    clearToolPids(opts.workDir, pidKey);
    const what = job.label ?? job.sourceDb;
    if (opts.signal?.aborted) throw new MigratorError(ExitCode.INTERRUPTED, `Initial load of ${what} was interrupted.`);
    const failure = pipeFailure(job, w, ends);
    if (failure) throw failure;
    return w.result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How a tool ended (execa's result, the fields the pipe reads). */
interface ToolExit {
  exitCode?: number;
  signal?: string;
  failed: boolean;
}

/** A running tool, as the pipe handles it. */
interface Tool extends Promise<ToolExit> {
  kill(signal: NodeJS.Signals): unknown;
  readonly stdout: Readable | null;
}

/** Starts both tools, the connection strings in 0600 config files and the query in a 0600 file of `dir`. */
function startTools(job: PipeJob, source: EndpointConfig, target: EndpointConfig, bins: ToolBinaries, dir: string, signal?: AbortSignal) {
  const dumpCfg = writeToolConfig(dir, 'dump', source);
  const restoreCfg = writeToolConfig(dir, 'restore', target);
  // On a stop request the tools get 1 s to exit on SIGTERM, then SIGKILL: an interrupted unit is
  // redone from its start, so nothing they could still finish is worth waiting for.
  const common = { reject: false, cancelSignal: signal, forceKillAfterDelay: 1000, buffer: false } as const;
  const queryArgs: string[] = [];
  if (job.queryJson !== undefined) {
    const queryFile = join(dir, 'query.json');
    writeFileSync(queryFile, job.queryJson, { mode: 0o600 });
    queryArgs.push(`--queryFile=${queryFile}`);
  }
  const dump = execa(bins.mongodump, [`--config=${dumpCfg}`, ...tlsArgs(source), ...job.dumpArgs, ...queryArgs], { ...common, stdin: 'ignore' });
  const restore = execa(bins.mongorestore, [`--config=${restoreCfg}`, ...tlsArgs(target), ...job.restoreArgs], { ...common, stdout: 'ignore' });
  return { dump, restore };
}

interface PipeEnds {
  d: ToolExit;
  r: ToolExit;
  /** The pipe stopped the tool because the other one ended first (see bothEnds). */
  stoppedDump: boolean;
  stoppedRestore: boolean;
}

/**
 * Waits for both tools. INVARIANT: either tool ending ends the pipe promptly. Once mongorestore
 * has exited nobody reads the archive any more: Node unpipes on the EPIPE, mongodump blocks on the
 * full pipe and would wait forever (seen when FerretDB closed the connection on a Decimal128 and
 * mongorestore exited 1 after "finished restoring … (0 documents)"). So: mongorestore exits →
 * drain what mongodump still writes, and stop mongodump unless the restore succeeded (then the
 * archive was read to its end and mongodump is exiting anyway); mongodump fails → stop
 * mongorestore, which could only restore part of an archive.
 */
async function bothEnds(dump: Tool, restore: Tool, restoreReportedErrors: () => boolean, signal?: AbortSignal): Promise<PipeEnds> {
  const ends = { stoppedDump: false, stoppedRestore: false };
  let dumpExited = false;
  let restoreExited = false;
  const dumpEnd = dump.then((d) => {
    dumpExited = true;
    if ((d.exitCode !== 0 || d.failed) && !restoreExited && !signal?.aborted) {
      ends.stoppedRestore = true;
      restore.kill('SIGTERM');
    }
    return d;
  });
  const restoreEnd = restore.then((r) => {
    restoreExited = true;
    dump.stdout?.resume();
    if ((r.exitCode !== 0 || r.failed || restoreReportedErrors()) && !dumpExited && !signal?.aborted) {
      ends.stoppedDump = true;
      dump.kill('SIGTERM');
    }
    return r;
  });
  const [d, r] = await Promise.all([dumpEnd, restoreEnd]);
  return { d, r, ...ends };
}

/** The error of a pipe that did not load everything (a tool failed, was stopped, or documents failed), or undefined. */
function pipeFailure(job: PipeJob, w: PipeWatch, e: PipeEnds): MigratorError | undefined {
  const what = job.label ?? job.sourceDb;
  const dumpFailed = (e.d.exitCode !== 0 || e.d.failed) && !e.stoppedDump;
  const restoreFailed = (e.r.exitCode !== 0 || e.r.failed || w.restoreErrors.length > 0) && !e.stoppedRestore;
  if (dumpFailed || restoreFailed || e.stoppedDump || e.stoppedRestore) {
    const parts = [];
    if (restoreFailed) {
      const where = w.failedNamespaces.size ? ` on ${[...w.failedNamespaces].join(', ')}` : '';
      parts.push(`mongorestore failed${where} (exit ${e.r.exitCode ?? e.r.signal}):\n${w.restoreTail.text()}`);
    }
    if (dumpFailed) parts.push(`mongodump failed (exit ${e.d.exitCode ?? e.d.signal}):\n${w.dumpTail.text()}`);
    if (e.stoppedDump) parts.push('mongodump was stopped because mongorestore ended before the archive did.');
    if (e.stoppedRestore) parts.push('mongorestore was stopped because mongodump failed.');
    return new MigratorError(ExitCode.TOOL_FAILED, `Initial load of ${what} → ${job.targetDb} failed. ${parts.join('\n')}`, {
      hint:
        w.failedNamespaces.size > 0
          ? 'The target refused data of the collection(s) named above (e.g. a BSON type it cannot store): fix or exclude them (--exclude) and rerun; the rerun redoes only the unfinished parts of the load and keeps the recorded resume point.'
          : 'Fix the cause above and rerun: the rerun redoes only the unfinished parts of the load and keeps the recorded resume point.',
    });
  }
  if (w.result.failed > 0) {
    return new MigratorError(ExitCode.TOOL_FAILED, `mongorestore could not restore ${w.result.failed} document(s) of ${what} → ${job.targetDb}:\n${w.restoreTail.text()}`, {
      hint: 'Often duplicate keys in a non-empty target: rerun with --drop.',
    });
  }
  return undefined;
}
