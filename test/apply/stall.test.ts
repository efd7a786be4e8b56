// Issue #11, defect 12: a target that stops answering must not stall apply silently. Writes to the
// target have a timeout; a shard whose batch gets no write acknowledged for a bound says so (WARN,
// `stalledSince` in the store and in onStatus), and fails with APPLY_STALLED when it persists.
// The emulator's failCommand with blockConnection holds the target's answer, as a wedged server does
// (https://github.com/mongodb/mongo/wiki/The-%22failCommand%22-fail-point).
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { MongoClient } from 'mongodb';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { runApply, type ApplyRunnerOptions, type ApplyStatus } from '../../src/apply/apply-runner.js';
import { readyForCutover } from '../../src/orchestration/full-migration.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { createLogger } from '../../src/util/logger.js';
import { FAST_CONSUMER, Scenario, produce, startStack, targetDocs, type Stack } from './runner-fixtures.js';
import { waitUntil } from '../support/wait.js';

const APP = 'stall-test-target';

describe('apply against a target that stops answering', { timeout: 180_000 }, () => {
  let stack: Stack;
  let store: StateStore;
  let target: MongoClient;

  before(async () => {
    stack = await startStack();
    store = await StateStore.open({ client: stack.client });
    // The target's own client (its appName is what the fail point holds); the state store is not held.
    target = await MongoClient.connect(stack.emu.uri, { appName: APP });
  });
  after(async () => {
    await target?.close();
    await stack?.stop();
  });

  const hold = (mode: unknown, commands: string[]) =>
    stack.client.db('admin').command({
      configureFailPoint: 'failCommand',
      mode,
      data: { appName: APP, failCommands: commands, blockConnection: true, blockTimeMS: 600_000 },
    });
  const release = () => stack.client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });

  function capturingLogger() {
    const lines: Record<string, unknown>[] = [];
    const out = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    return { logger: createLogger({ format: 'json', verbose: false, out }), lines };
  }

  const options = (stream: string, id: string, extra: Partial<ApplyRunnerOptions>): ApplyRunnerOptions => ({
    target,
    store,
    migrationId: id,
    rules: new NamespaceRules({ map: [`${id}:${id}_new`] }),
    kinesis: stack.kl.client,
    streamName: stream,
    ownerId: `stall-${id}-${Math.random().toString(36).slice(2)}`,
    logger: capturingLogger().logger,
    leaseTtlMs: 5_000,
    consumer: FAST_CONSUMER,
    cdcOnly: true,
    ...extra,
  });

  it('a write the target never answers times out and is retried: the batch lands without waiting for the target', async () => {
    const stream = stack.kl.uniqueStreamName('stall-timeout');
    await stack.kl.createStream(stream, 1);
    const s = new Scenario(7).data({ db: 'wt', coll: 'items' }, 300, 100);
    await produce(stack.kl.client, stream, s.envelopes);
    await hold({ times: 1 }, ['update', 'delete', 'insert']); // the first write is held (10 min), the retry is not
    try {
      const r = await runApply(
        options(stream, 'wt', { stopWhenCaughtUp: true, writer: { writeTimeoutMs: 1_500, retryPolicy: { maxAttempts: 5, initialDelayMs: 10, maxDelayMs: 100 } } }),
      );
      assert.equal(r.stopReason, 'caught-up');
      assert.deepEqual(await targetDocs(stack.client, 'wt_new.items'), s.expected('wt.items'));
    } finally {
      await release();
    }
  });

  it('a shard held longer than the stall bound: WARN, stalledSince in the store and status, not ready, then APPLY_STALLED', async () => {
    const stream = stack.kl.uniqueStreamName('stall-fail');
    await stack.kl.createStream(stream, 2);
    const s = new Scenario(8).data({ db: 'st', coll: 'items' }, 400, 150);
    await produce(stack.kl.client, stream, s.envelopes);
    await hold('alwaysOn', ['update', 'delete', 'insert']);
    const { logger, lines } = capturingLogger();
    const statuses: ApplyStatus[] = [];
    let storeSawStall = false;
    try {
      const run = runApply(
        options(stream, 'st', {
          logger,
          statusIntervalMs: 100,
          onStatus: (st) => statuses.push(st),
          stall: { warnMs: 1_000, failMs: 6_000 },
          writer: { writeTimeoutMs: 1_000, retryPolicy: { maxAttempts: 1_000, initialDelayMs: 10, maxDelayMs: 200 } },
        }),
      );
      const watching = waitUntil(
        async () => (storeSawStall = (await store.listShards('st')).some((d) => d.stalledSince instanceof Date)),
        60_000,
        'a stalledSince in the state store',
      );
      const err = await run.then(
        () => assert.fail('apply kept running'),
        (e: unknown) => e,
      );
      await watching.catch(() => undefined);
      assert.ok(err instanceof MigratorError, String(err));
      assert.equal(err.exitCode, ExitCode.APPLY_STALLED, err.message);
      assert.match(err.message, /acknowledged no write/);
    } finally {
      await release();
    }
    assert.ok(storeSawStall, 'the shard document carried stalledSince while the lease holder was stalled');
    assert.ok(
      lines.some((l) => l.level === 40 && /shard stalled/.test(String(l.msg))),
      'a WARN line says the shard stalled',
    );
    const stalled = statuses.filter((st) => st.shards.some((sh) => sh.stalledSince));
    assert.ok(stalled.length > 0, 'onStatus reported stalledSince');
    // While stalled, the shard is read (to its tip) but not applied: never ready for a cutover.
    for (const st of stalled) {
      assert.equal(readyForCutover(st.shards, { updatedAt: st.at }, st.at.getTime()), false);
    }
    assert.equal((await stack.client.db('st_new').collection('items').countDocuments()), 0, 'nothing was applied');
  });
});

describe('readyForCutover', () => {
  const now = Date.UTC(2026, 0, 1, 12);
  const capture = { updatedAt: new Date(now - 500) };
  const shard = (over: Partial<Parameters<typeof readyForCutover>[0][number]>) => ({
    state: 'reading' as const,
    leased: true,
    appliedThroughAt: now - 100,
    stalledSince: undefined,
    ...over,
  });

  it('needs every open shard applied through the capture checkpoint (not merely read to the tip)', () => {
    assert.equal(readyForCutover([shard({}), shard({})], capture, now), true);
    assert.equal(readyForCutover([shard({}), shard({ appliedThroughAt: undefined })], capture, now), false, 'read, nothing applied');
    assert.equal(readyForCutover([shard({}), shard({ appliedThroughAt: now - 10_000 })], capture, now), false, 'applied only up to 10 s ago');
    assert.equal(readyForCutover([shard({}), shard({ stalledSince: new Date(now - 90_000) })], capture, now), false, 'stalled');
    assert.equal(readyForCutover([shard({}), shard({ state: 'ended', appliedThroughAt: undefined })], capture, now), true, 'ended shards count');
    assert.equal(readyForCutover([shard({ leased: false })], capture, now), false, 'a shard nobody here applies');
    assert.equal(readyForCutover([shard({})], { updatedAt: new Date(now - 60_000) }, now), false, 'capture not current');
    assert.equal(readyForCutover([shard({})], null, now), false);
  });
});
