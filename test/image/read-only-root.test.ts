// The image's promise "writes only under its data directory" checked for real, without Docker:
// the compiled CLI (what the image runs) runs inside a mount namespace whose root filesystem is
// read-only except the data directory, as `docker run --read-only -v data:/data` would have it.
// A whole migration runs there: full-migrate with the embedded Kinesis (kinesis-local child
// process), mongodump | mongorestore, status, cutover, verify. Any write elsewhere fails the run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { PROJECT_ROOT } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';

const DIST_MAIN = join(PROJECT_ROOT, 'dist/cli/main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

/** Fails with how to fix it when the sandbox cannot be built (never skipped silently). */
function requireSandbox(): void {
  const probe = spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -o remount,bind,ro / && ! touch /.rw-probe 2>/dev/null'], { encoding: 'utf8' });
  assert.equal(
    probe.status,
    0,
    `This test needs unprivileged user + mount namespaces (util-linux 'unshare -rm' and 'mount', kernel.unprivileged_userns_clone=1): ${probe.error?.message ?? probe.stderr}`,
  );
  let built = 0;
  try {
    built = statSync(DIST_MAIN).mtimeMs;
  } catch {
    /* reported below */
  }
  assert.ok(built >= newestMtime(join(PROJECT_ROOT, 'src')), 'dist/ is missing or older than src/: run `npm run build` (npm ci does it too)');
}

describe('the compiled CLI on a read-only root filesystem (writes only under --data-dir)', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let dst: MongoClient;
  let store: StateStore;
  const dataDir = mkdtempSync(join(tmpdir(), 'migrator-rodata-'));

  before(async () => {
    requireSandbox();
    await ensureGoTools();
    [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    dst = new MongoClient(target.uri);
    store = await StateStore.open({ client: dst });
  });
  after(async () => {
    await dst?.close();
    await Promise.all([source?.stop(), target?.stop()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** `migrator ARGS` with / read-only and only the data directory writable. */
  const readOnly = (args: string[]): ResultPromise => {
    const script = 'mount --bind "$DATA" "$DATA" && mount -o remount,bind,ro / && exec "$@"';
    return execa('unshare', ['-rm', 'sh', '-c', script, 'sh', process.execPath, DIST_MAIN, ...args], {
      reject: false,
      stdin: 'ignore',
      env: { DATA: dataDir, MIGRATOR_DATA_DIR: dataDir, CI: 'true', HOME: '/home/nobody-writable' },
      extendEnv: true,
    });
  };

  test('full-migrate (embedded Kinesis), status, cutover, verify: all succeed, files only in the data directory', { timeout: 240_000 }, async () => {
    const src = new MongoClient(source.uri);
    try {
      await src.db('shop').collection<{ _id: number; name?: string; qty: number }>('items').insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i, name: `item ${i}`, qty: i % 7 })));
      const conn = ['--source-uri', source.uri, '--target-uri', target.uri, '--migration-id', 'ro'];
      const migrate = readOnly(['full-migrate', ...conn, '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore')]);
      const deadline = Date.now() + 180_000;
      while ((await store.getMigration('ro'))?.phase !== 'READY_FOR_CUTOVER') {
        if (migrate.exitCode !== null) assert.fail(`full-migrate exited ${migrate.exitCode}:\n${String((await migrate).stderr).slice(-3000)}`);
        assert.ok(Date.now() < deadline, 'READY_FOR_CUTOVER within 180 s');
        await src.db('shop').collection<{ _id: number; name?: string; qty: number }>('items').updateOne({ _id: Math.floor(Math.random() * 3000) }, { $inc: { qty: 1 } });
        await new Promise((r) => setTimeout(r, 200));
      }
      const status = await readOnly(['status', '--target-uri', target.uri, '--migration-id', 'ro', '--json']);
      assert.equal(status.exitCode, 0, String(status.stderr));
      assert.equal(JSON.parse(String(status.stdout)).phase, 'READY_FOR_CUTOVER');
      const cut = await readOnly(['cutover', '--target-uri', target.uri, '--migration-id', 'ro', '--writes-stopped', '--wait', '--timeout', '120s']);
      assert.equal(cut.exitCode, 0, `${String(cut.stdout)}\n${String(cut.stderr)}`);
      const done = await migrate;
      assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
      const verify = await readOnly(['verify', '--source-uri', source.uri, '--target-uri', target.uri]);
      assert.equal(verify.exitCode, 0, `${String(verify.stdout)}\n${String(verify.stderr)}`);
      assert.ok(readdirSync(dataDir).length > 0, 'the embedded stream and the load worked in the data directory');
    } finally {
      await src.close();
    }
  });
});
