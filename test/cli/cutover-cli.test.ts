// `migrator cutover` end to end: the real CLI against a state store on the emulator; the test plays
// the orchestrator by writing the phase / error documents in the background.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { PROJECT_ROOT, runMigrator } from '../support/cli.js';
import { StateStore, type MigrationPhase } from '../../src/state/store.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { sleep } from '../support/wait.js';

const DB = 'cutover_cli_test';

describe('migrator cutover', { timeout: 180_000 }, () => {
  let emu: MongoEmulator;
  let client: MongoClient;
  let store: StateStore;
  let n = 0;
  let id = '';
  const args = (...rest: string[]) => ['cutover', '--state-uri', emu.uri, '--state-db', DB, '--migration-id', id, ...rest];

  async function migrationIn(phase: MigrationPhase): Promise<void> {
    await store.createMigration(id);
    await store.setPhase(id, phase);
  }

  /** Resolves once the CLI recorded its request (the orchestrator would now act on it). */
  async function requested(): Promise<void> {
    for (let i = 0; i < 600; i++) {
      const c = await store.getCutover(id);
      if (c && c.state !== 'aborted') return;
      await sleep(50);
    }
    throw new Error('no cutover request recorded');
  }

  before(async () => {
    emu = await startMongoEmulator({ port: 0 });
    client = await MongoClient.connect(emu.uri);
    store = await StateStore.open({ client, dbName: DB });
  });
  beforeEach(() => {
    id = `m${++n}`;
  });
  after(async () => {
    await client?.close();
    await emu?.stop();
  });

  it('refuses unknown ids and phases that forbid a cutover (exit 10)', async () => {
    const unknown = await runMigrator(args());
    assert.equal(unknown.exitCode, ExitCode.STATE_CONFLICT);
    assert.match(unknown.stderr, new RegExp(`Unknown migration id '${id}'`));

    await migrationIn('INITIAL_LOAD');
    const loading = await runMigrator(args());
    assert.equal(loading.exitCode, ExitCode.STATE_CONFLICT);
    assert.match(loading.stderr, /initial load is still running/);
    assert.equal(await store.getCutover(id), null);

    await store.setPhase(id, 'COMPLETED');
    const done = await runMigrator(args('--writes-stopped'));
    assert.equal(done.exitCode, ExitCode.STATE_CONFLICT);
    assert.match(done.stderr, /already COMPLETED/);
  });

  it('requests (idempotently), records --writes-stopped, and --abort withdraws the request', async () => {
    await migrationIn('CATCHING_UP');
    const r = await runMigrator(args());
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`cutover of migration ${id} requested \\(phase CATCHING_UP\\)`));
    assert.match(r.stdout, /starts once apply has caught up/);
    assert.match(r.stdout, /migrator cutover --writes-stopped/);
    const c = (await store.getCutover(id))!;
    assert.equal(c.state, 'requested');
    assert.equal(c.writesStopped, undefined);

    const again = await runMigrator(args('--writes-stopped', '--json'));
    assert.equal(again.exitCode, 0, again.stderr);
    const j = JSON.parse(again.stdout) as { action: string; writesStoppedRecorded: boolean; cutover: { state: string; writesStopped: boolean; waitingForWritesStopped: boolean } };
    assert.equal(j.action, 'already-requested');
    assert.equal(j.writesStoppedRecorded, true);
    assert.equal(j.cutover.writesStopped, true);
    assert.equal(j.cutover.waitingForWritesStopped, false);
    const c2 = (await store.getCutover(id))!;
    assert.equal(c2.writesStopped, true);
    assert.equal(c2.requestedAt.getTime(), c.requestedAt.getTime(), 'the same request');

    const abort = await runMigrator(args('--abort'));
    assert.equal(abort.exitCode, 0, abort.stderr);
    assert.match(abort.stdout, /aborted/);
    assert.equal((await store.getCutover(id))!.state, 'aborted');

    const nothing = await runMigrator(args('--abort'));
    assert.equal(nothing.exitCode, ExitCode.STATE_CONFLICT);
    assert.match(nothing.stderr, /Nothing to abort .*the cutover is aborted/);

    const bad = await runMigrator(args('--abort', '--wait'));
    assert.equal(bad.exitCode, ExitCode.USAGE);
  });

  it('--wait --timeout 2s exits 9 soon, saying the cutover continues', async () => {
    await migrationIn('READY_FOR_CUTOVER');
    const started = Date.now();
    const r = await runMigrator(args('--wait', '--timeout', '2s'));
    const elapsed = Date.now() - started;
    assert.equal(r.exitCode, ExitCode.TIMEOUT, r.stderr);
    assert.ok(elapsed < 15_000, `took ${elapsed} ms`);
    assert.match(r.stderr, /not finished after 2\.\ds/);
    assert.match(r.stderr, new RegExp(`continues in the background.*migrator status --migration-id ${id}`));
    assert.match(r.stderr, /cutover: phase READY_FOR_CUTOVER, cutover requested, waiting for --writes-stopped/, 'progress line');
    assert.equal((await store.getCutover(id))!.state, 'requested', 'not aborted');
  });

  it('--wait exits 0 once the migration is COMPLETED', async () => {
    await migrationIn('READY_FOR_CUTOVER');
    const run = runMigrator(args('--wait', '--timeout', '60s'));
    await requested();
    await sleep(1_000);
    await store.setPhase(id, 'CUTTING_OVER');
    await store.setPhase(id, 'COMPLETED');
    const r = await run;
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`cutover of migration ${id} completed`));
  });

  it('--wait exits with lastError.exitCode when the migration FAILED', async () => {
    await migrationIn('CUTTING_OVER');
    const run = runMigrator(args('--wait', '--json'));
    await requested();
    await sleep(1_000);
    await store.recordError(id, new MigratorError(ExitCode.VERIFICATION_MISMATCH, 'source and target differ in shop.orders'));
    await store.setPhase(id, 'FAILED');
    const r = await run;
    assert.equal(r.exitCode, ExitCode.VERIFICATION_MISMATCH, r.stderr);
    assert.match(r.stderr, new RegExp(`Migration '${id}' FAILED during the cutover: source and target differ`));
    const j = JSON.parse(r.stdout) as { phase: string; wait: { outcome: string; exitCode: number } };
    assert.equal(j.phase, 'FAILED');
    assert.deepEqual([j.wait.outcome, j.wait.exitCode], ['failed', 7]);
  });

  it('--wait exits 10 when the cutover is aborted meanwhile', async () => {
    await migrationIn('READY_FOR_CUTOVER');
    const run = runMigrator(args('--wait'));
    await requested();
    await store.abortCutover(id, 'changed our minds');
    const r = await run;
    assert.equal(r.exitCode, ExitCode.STATE_CONFLICT, r.stderr);
    assert.match(r.stderr, /was aborted: changed our minds/);
  });

  it('SIGINT during --wait exits 130 and leaves the cutover running', async () => {
    await migrationIn('READY_FOR_CUTOVER');
    const env: Record<string, string> = { CI: 'true' };
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MIGRATOR_') && v !== undefined) env[k] = v;
    const child = execa(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args('--wait')], {
      cwd: PROJECT_ROOT, env, extendEnv: false, reject: false, timeout: 60_000, stdin: 'ignore',
    });
    await requested();
    await sleep(500);
    child.kill('SIGINT');
    const r = await child;
    assert.equal(r.exitCode, ExitCode.INTERRUPTED, String(r.stderr));
    assert.match(String(r.stderr), /NOT aborted/);
    assert.equal((await store.getCutover(id))!.state, 'requested');
  });
});
