// `migrator apply` through the real CLI (child process), on the local stack.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { PROJECT_ROOT, runMigrator } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';
import type { ApplyCounters } from '../../src/apply/apply-runner.js';
import { Scenario, produce, startStack, targetDocs, type Stack } from './runner-fixtures.js';
import { waitUntil } from '../support/wait.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

describe('migrator apply', { timeout: 120_000 }, () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  const common = () => ['--target-uri', stack.emu.uri, '--kinesis-endpoint', stack.kl.endpoint, '--region', 'us-east-1'];

  it('--until-caught-up applies the stream and exits 0', async () => {
    const stream = stack.kl.uniqueStreamName('cli-apply');
    await stack.kl.createStream(stream, 2);
    const s = new Scenario(21).data({ db: 'cli', coll: 'items' }, 800, 150).drop({ db: 'cli', coll: 'gone' }).data({ db: 'cli', coll: 'other' }, 200, 40);
    const { copies } = await produce(stack.kl.client, stream, s.envelopes);
    const r = await runMigrator(['apply', ...common(), '--kinesis-stream', stream, '--map', 'cli:cli_copy', '--migration-id', 'cli1', '--cdc-only', '--until-caught-up', '--json']);
    assert.equal(r.exitCode, 0, r.all);
    for (const c of ['items', 'other']) {
      assert.deepEqual(await targetDocs(stack.client, `cli_copy.${c}`), s.expected(`cli.${c}`), c);
    }
    const report = JSON.parse(r.stdout) as { stopReason: string; totals: ApplyCounters; shards: unknown[] };
    assert.equal(report.stopReason, 'caught-up');
    assert.equal(report.totals.events, copies);
    assert.equal(report.shards.length, 2);
    const store = new StateStore({ client: stack.client });
    const shards = await store.listShards('cli1');
    assert.equal(shards.length, 2);
    for (const d of shards) {
      assert.ok(d.checkpoint?.sequenceNumber);
      assert.equal(d.lease.owner, null, 'leases released at exit');
    }
  });

  it('SIGINT: stops cleanly, checkpoints, releases the leases, exits 0', async () => {
    const stream = stack.kl.uniqueStreamName('cli-sigint');
    await stack.kl.createStream(stream, 2);
    const s = new Scenario(22).data({ db: 'sig', coll: 'items' }, 300, 100);
    await produce(stack.kl.client, stream, s.envelopes);
    const env: Record<string, string> = { CI: 'true' };
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MIGRATOR_') && v !== undefined) env[k] = v;
    const child = execa(process.execPath, ['--import', 'tsx', MAIN, 'apply', ...common(), '--kinesis-stream', stream, '--migration-id', 'sig1', '--cdc-only'], {
      cwd: PROJECT_ROOT,
      env,
      extendEnv: false,
      reject: false,
      timeout: 60_000,
      stdin: 'ignore',
    });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    await waitUntil(async () => JSON.stringify(await targetDocs(stack.client, 'sig.items')) === JSON.stringify(s.expected('sig.items')), 30_000, 'the data to be applied');
    child.kill('SIGINT');
    const r = await child;
    assert.equal(r.exitCode, 0, `${String(r.stdout)}\n${stderr}`);
    assert.match(stderr, /stopped by a signal/);
    const store = new StateStore({ client: stack.client });
    for (const d of await store.listShards('sig1')) assert.equal(d.lease.owner, null, 'leases released');
  });

  it('the migration is COMPLETED: exits 0 and says why; with --cdc-only (no phase) it keeps running', async () => {
    const stream = stack.kl.uniqueStreamName('cli-done');
    await stack.kl.createStream(stream, 1);
    const store = new StateStore({ client: stack.client });
    await store.createMigration('done1');
    await store.setPhase('done1', 'COMPLETED');
    const r = await runMigrator(['apply', ...common(), '--kinesis-stream', stream, '--migration-id', 'done1']);
    assert.equal(r.exitCode, 0, r.all);
    assert.match(r.stderr, /the migration is COMPLETED \(cut over\): nothing is left to apply/);
    assert.match(r.stdout, /the migration is COMPLETED/);

    const env: Record<string, string> = { CI: 'true' };
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MIGRATOR_') && v !== undefined) env[k] = v;
    const cdc = execa(process.execPath, ['--import', 'tsx', MAIN, 'apply', ...common(), '--kinesis-stream', stream, '--migration-id', 'done1', '--cdc-only'], {
      cwd: PROJECT_ROOT,
      env,
      extendEnv: false,
      reject: false,
      timeout: 60_000,
      stdin: 'ignore',
    });
    // Running, with the shard's lease, through several COMPLETED polls (every 2 s).
    await waitUntil(async () => (await store.listShards('done1')).some((d) => d.lease.owner !== null), 30_000, 'the --cdc-only apply to take the shard');
    await new Promise((res) => setTimeout(res, 5_000));
    assert.equal(cdc.exitCode, null, '--cdc-only keeps running');
    cdc.kill('SIGTERM');
    const end = await cdc;
    assert.equal(end.exitCode, 0, String(end.stderr));
    assert.doesNotMatch(String(end.stderr), /COMPLETED/);
  });

  it('requires --kinesis-stream (exit 2)', async () => {
    const r = await runMigrator(['apply', ...common(), '--until-caught-up']);
    assert.equal(r.exitCode, 2, r.all);
    assert.match(r.stderr, /Missing --kinesis-stream/);
  });

  it('requires --target-uri (exit 2)', async () => {
    const r = await runMigrator(['apply', '--kinesis-stream', 'x', '--kinesis-endpoint', stack.kl.endpoint]);
    assert.equal(r.exitCode, 2, r.all);
    assert.match(r.stderr, /Missing --target-uri/);
  });

  it('fails with STREAM_FAILED and a clear message on an unknown stream', async () => {
    const r = await runMigrator(['apply', ...common(), '--kinesis-stream', 'no-such-stream', '--until-caught-up']);
    assert.equal(r.exitCode, 5, r.all);
    assert.match(r.stderr, /Kinesis stream 'no-such-stream' not found/);
  });

  it('rejects a bad --lease-ttl (exit 2)', async () => {
    const r = await runMigrator(['apply', ...common(), '--kinesis-stream', 'x', '--lease-ttl', 'soon']);
    assert.equal(r.exitCode, 2, r.all);
    assert.match(r.stderr, /Invalid --lease-ttl/);
  });
});
