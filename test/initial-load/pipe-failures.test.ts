// A tool that fails ends the load promptly with TOOL_FAILED and the tool's stderr tail, whatever
// the other tool is doing. Stand-in tools (shell scripts) replay what the real ones did in the
// field: mongorestore refused by FerretDB mid-archive while mongodump still had data to write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDumpRestorePipe } from '../../src/initial-load/dump-restore-pipe.js';
import { DEFAULT_LOAD_OPTIONS, planPipes } from '../../src/initial-load/dump-restore-plan.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';

const dir = mkdtempSync(join(tmpdir(), 'pipe-failures-'));

/** A stand-in tool; `exec` at the end so a SIGTERM reaches the long-running command itself. */
function tool(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

const [job] = planPipes([{ db: 'bar', coll: 'dec' }], new Map([['bar', ['dec']]]), () => 'bar', DEFAULT_LOAD_OPTIONS);
const endpoint = { uri: 'mongodb://127.0.0.1:9/' };

// The exact lines mongorestore 100.x printed when FerretDB closed the connection on a Decimal128.
const FERRET_RESTORE_FAILURE = [
  'preparing collections to restore from',
  'reading metadata for bar.dec from archive on stdin',
  'restoring bar.dec from archive on stdin',
  'finished restoring bar.dec (0 documents, 0 failures)',
  'Failed: bar.dec: error restoring from archive on stdin: connection(127.0.0.1:44389[-3]) socket was unexpectedly closed: EOF',
  '0 document(s) restored successfully. 0 document(s) failed to restore.',
]
  .map((l) => `echo "2026-12-05T16:53:45.943+0000\t${l}" >&2`)
  .join('\n');

async function expectToolFailed(p: Promise<unknown>): Promise<MigratorError> {
  const err = await p.then(
    () => assert.fail('the load succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MigratorError, String(err));
  assert.equal(err.exitCode, ExitCode.TOOL_FAILED);
  return err;
}

test('mongorestore failing mid-archive while mongodump still writes: TOOL_FAILED naming the collection, not a hang', { timeout: 60_000 }, async () => {
  const workDir = mkdtempSync(join(dir, 'work-'));
  const mongodump = tool('dump-endless', 'echo "writing bar.dec to archive on stdout" >&2\nexec cat /dev/zero');
  const mongorestore = tool('restore-refused', `head -c 70000 >/dev/null\n${FERRET_RESTORE_FAILURE}\nexit 1`);
  const finished: string[] = [];
  const err = await expectToolFailed(
    runDumpRestorePipe(job!, endpoint, endpoint, { mongodump, mongorestore }, {
      workDir,
      onEvent: (e) => e.kind === 'restore-finished' && finished.push(e.ns),
    }),
  );
  assert.match(err.message, /mongorestore failed on bar\.dec/);
  assert.match(err.message, /socket was unexpectedly closed/, 'the stderr tail is in the message');
  assert.match(err.message, /mongodump was stopped/);
  assert.match(err.hint ?? '', /--exclude/);
  assert.deepEqual(finished, ['bar.dec'], 'the misleading "finished restoring" line was seen, and still the load failed');
  assert.deepEqual(readdirSync(workDir).filter((f) => f.startsWith('tool-pids')), [], 'both tools have exited');
});

test('mongorestore exiting 0 but printing a Failed: line is a failure too', { timeout: 60_000 }, async () => {
  const mongodump = tool('dump-small', 'head -c 1000 /dev/zero');
  const mongorestore = tool('restore-failed-exit0', `cat >/dev/null\n${FERRET_RESTORE_FAILURE}\nexit 0`);
  const err = await expectToolFailed(
    runDumpRestorePipe(job!, endpoint, endpoint, { mongodump, mongorestore }, { workDir: mkdtempSync(join(dir, 'work-')) }),
  );
  assert.match(err.message, /mongorestore failed on bar\.dec/);
});

test('mongodump failing while mongorestore waits: TOOL_FAILED with mongodump\'s stderr, mongorestore stopped', { timeout: 60_000 }, async () => {
  const mongodump = tool('dump-fails', 'head -c 5000 /dev/zero\necho "2026-12-05T16:53:45.943+0000\tFailed: error writing data for collection bar.dec to disk: source went away" >&2\nexit 1');
  // Reads the truncated archive, then never exits by itself.
  const mongorestore = tool('restore-stuck', 'cat >/dev/null\nexec sleep 600');
  const err = await expectToolFailed(
    runDumpRestorePipe(job!, endpoint, endpoint, { mongodump, mongorestore }, { workDir: mkdtempSync(join(dir, 'work-')) }),
  );
  assert.match(err.message, /mongodump failed \(exit 1\)[\s\S]*source went away/);
  assert.match(err.message, /mongorestore was stopped because mongodump failed/);
});
