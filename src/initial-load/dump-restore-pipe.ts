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
  const result: PipeResult = { restored: 0, bytes: 0, failed: 0, collections: new Map() };
  const what = job.label ?? job.sourceDb;
  const dumpTail = new LineTail();
  const restoreTail = new LineTail();
  // mongorestore's failure lines ("Failed: bar.dec: error restoring from archive …"), and the
  // namespaces they name: its "finished restoring bar.dec (0 documents, 0 failures)" line comes
  // before the error, so a finished line alone never means the collection was loaded.
  const restoreErrors: string[] = [];
  const failedNamespaces = new Set<string>();
  const onRestoreEvent = (e: ToolEvent) => {
    if (e.kind === 'error') {
      restoreErrors.push(e.message);
      const m = /^(\S+\.\S+): error /.exec(e.message);
      if (m) failedNamespaces.add(m[1]!);
    }
    if (e.kind === 'restore-finished' && e.failures > 0) failedNamespaces.add(e.ns);
    onEvent(e);
  };
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
    const queryArgs: string[] = [];
    if (job.queryJson !== undefined) {
      const queryFile = join(dir, 'query.json');
      writeFileSync(queryFile, job.queryJson, { mode: 0o600 });
      queryArgs.push(`--queryFile=${queryFile}`);
    }
    const dump = execa(bins.mongodump, [`--config=${dumpCfg}`, ...tlsArgs(source), ...job.dumpArgs, ...queryArgs], {
      ...common,
      stdin: 'ignore',
    });
    const restore = execa(bins.mongorestore, [`--config=${restoreCfg}`, ...tlsArgs(target), ...job.restoreArgs], {
      ...common,
      stdout: 'ignore',
    });
    const pidKey = recordToolPids(opts.workDir, [dump.pid, restore.pid]);
    follow(dump.stderr, dumpTail, onEvent);
    follow(restore.stderr, restoreTail, onRestoreEvent);
    dump.stdout!.on('data', (chunk: Buffer) => (result.bytes += chunk.length));
    dump.stdout!.pipe(restore.stdin!);
    // If mongorestore dies, mongodump gets EPIPE; that is reported through restore's failure.
    restore.stdin!.on('error', () => undefined);
    // INVARIANT: either tool ending ends the pipe promptly. Once mongorestore has exited nobody
    // reads the archive any more: Node unpipes on the EPIPE, mongodump blocks on the full pipe and
    // would wait forever (seen when FerretDB closed the connection on a Decimal128 and mongorestore
    // exited 1 after "finished restoring … (0 documents)"). So: mongorestore exits → drain what
    // mongodump still writes, and stop mongodump unless the restore succeeded (then the archive was
    // read to its end and mongodump is exiting anyway); mongodump fails → stop mongorestore, which
    // could only restore part of an archive.
    let stoppedDump = false;
    let stoppedRestore = false;
    let dumpExited = false;
    let restoreExited = false;
    const dumpEnd = dump.then((d) => {
      dumpExited = true;
      if ((d.exitCode !== 0 || d.failed) && !restoreExited && !opts.signal?.aborted) {
        stoppedRestore = true;
        restore.kill('SIGTERM');
      }
      return d;
    });
    const restoreEnd = restore.then((r) => {
      restoreExited = true;
      dump.stdout?.resume();
      if ((r.exitCode !== 0 || r.failed || restoreErrors.length > 0) && !dumpExited && !opts.signal?.aborted) {
        stoppedDump = true;
        dump.kill('SIGTERM');
      }
      return r;
    });
    const [d, r] = await Promise.all([dumpEnd, restoreEnd]);
    clearToolPids(opts.workDir, pidKey);
    if (opts.signal?.aborted) {
      throw new MigratorError(ExitCode.INTERRUPTED, `Initial load of ${what} was interrupted.`);
    }
    const dumpFailed = (d.exitCode !== 0 || d.failed) && !stoppedDump;
    const restoreFailed = (r.exitCode !== 0 || r.failed || restoreErrors.length > 0) && !stoppedRestore;
    if (dumpFailed || restoreFailed || stoppedDump || stoppedRestore) {
      const parts = [];
      if (restoreFailed) {
        const where = failedNamespaces.size ? ` on ${[...failedNamespaces].join(', ')}` : '';
        parts.push(`mongorestore failed${where} (exit ${r.exitCode ?? r.signal}):\n${restoreTail.text()}`);
      }
      if (dumpFailed) parts.push(`mongodump failed (exit ${d.exitCode ?? d.signal}):\n${dumpTail.text()}`);
      if (stoppedDump) parts.push('mongodump was stopped because mongorestore ended before the archive did.');
      if (stoppedRestore) parts.push('mongorestore was stopped because mongodump failed.');
      throw new MigratorError(ExitCode.TOOL_FAILED, `Initial load of ${what} → ${job.targetDb} failed. ${parts.join('\n')}`, {
        hint:
          failedNamespaces.size > 0
            ? 'The target refused data of the collection(s) named above (e.g. a BSON type it cannot store): fix or exclude them (--exclude) and rerun; the rerun redoes only the unfinished parts of the load and keeps the recorded resume point.'
            : 'Fix the cause above and rerun: the rerun redoes only the unfinished parts of the load and keeps the recorded resume point.',
      });
    }
    if (result.failed > 0) {
      throw new MigratorError(
        ExitCode.TOOL_FAILED,
        `mongorestore could not restore ${result.failed} document(s) of ${what} → ${job.targetDb}:\n${restoreTail.text()}`,
        { hint: 'Often duplicate keys in a non-empty target: rerun with --drop.' },
      );
    }
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
