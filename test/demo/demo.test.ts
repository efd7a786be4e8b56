// `npm run demo` end to end: a small catalogue, a short live workload, cutover, verify.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execa, type ResultPromise } from 'execa';
import { ensureGoTools } from '../support/go-tools.js';
import { PROJECT_ROOT } from '../support/cli.js';

const TIMEOUT_MS = 180_000;

let demo: ResultPromise | undefined;

/**
 * npx does not pass SIGTERM on to its children: the demo runs in its own process group, and a
 * timeout or an early end of the test signals the whole group (the demo then stops everything it
 * started).
 */
function stopDemo(signal: NodeJS.Signals): void {
  if (demo?.pid !== undefined && demo.exitCode === null) {
    try {
      process.kill(-demo.pid, signal);
    } catch {
      // already gone
    }
  }
}

// A cold build of mongodump/mongorestore takes minutes: not part of the demo's time budget.
before(() => ensureGoTools(['mongodump', 'mongorestore']));
after(() => stopDemo('SIGKILL'));

test('npm run demo: migrates, cuts over, verifies equal and exits 0', { timeout: TIMEOUT_MS + 15_000 }, async (t) => {
  const started = Date.now();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MIGRATOR_') && v !== undefined) env[k] = v;
  demo = execa('npx', ['tsx', 'scripts/demo.ts', '--products', '500', '--duration', '3s'], {
    cwd: PROJECT_ROOT,
    env: { ...env, CI: 'true', NO_COLOR: '1' },
    extendEnv: false,
    all: true,
    reject: false,
    stdin: 'ignore',
    detached: true,
  });
  const timer = setTimeout(() => stopDemo('SIGTERM'), TIMEOUT_MS);
  const r = await demo.finally(() => clearTimeout(timer));
  const output = String(r.all);
  const tail = `--- demo output (tail) ---\n${output.split('\n').slice(-80).join('\n')}`;

  assert.equal(r.exitCode, 0, `demo exited with ${r.exitCode}${r.signal ? ` (${r.signal})` : ''} after ${Date.now() - started} ms\n${tail}`);
  assert.match(output, /verified: 2 collections match/, tail);
  assert.match(output, /migration demo COMPLETED/, tail);
  assert.match(output, /phase\s+COMPLETED/, tail);
  // The workload wrote during the migration, and those writes went through Kinesis.
  assert.match(output, /events\s+[1-9][\d,]* captured into Kinesis, [1-9][\d,]* applied/, tail);
  // Counts on both sides in the summary are equal.
  for (const coll of ['products', 'orders']) {
    const m = new RegExp(`bar\\.${coll}\\s+([\\d,]+) documents\\s+→\\s+bar_new\\.${coll}\\s+([\\d,]+) documents`).exec(output);
    assert.ok(m, `no summary line for bar.${coll}\n${tail}`);
    assert.equal(m[2], m[1], `bar.${coll}: source ${m[1]}, target ${m[2]}`);
  }
  t.diagnostic(`demo took ${Date.now() - started} ms`);
});
