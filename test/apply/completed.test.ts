// An apply beside full-migrate (`exitWhenCompleted`, what `migrator apply` sets without --cdc-only)
// stops by itself once the migration is COMPLETED: nothing is left to apply after the cutover, and
// applying source changes after it would overwrite what the applications now write to the target.
// Plain CDC (--cdc-only: no phase) keeps running whatever a migration document says.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { runApply, type ApplyRunnerOptions } from '../../src/apply/apply-runner.js';
import { FAST_CONSUMER, Scenario, produce, startStack, targetDocs, testLogger, type Stack } from './runner-fixtures.js';
import { waitUntil } from '../support/wait.js';

describe('runApply and a COMPLETED migration', { timeout: 120_000 }, () => {
  let stack: Stack;
  let store: StateStore;

  before(async () => {
    stack = await startStack();
    store = await StateStore.open({ client: stack.client });
  });
  after(async () => {
    await stack?.stop();
  });

  const options = (migrationId: string, stream: string, extra: Partial<ApplyRunnerOptions>): ApplyRunnerOptions => ({
    target: stack.client,
    store,
    migrationId,
    rules: new NamespaceRules({ map: [`${migrationId}:${migrationId}_new`] }),
    kinesis: stack.kl.client,
    streamName: stream,
    ownerId: `owner-${migrationId}`,
    logger: testLogger(),
    leaseTtlMs: 3_000,
    consumer: FAST_CONSUMER,
    ddlPollMs: 50,
    ...extra,
  });
  const matches = async (id: string, s: Scenario) =>
    JSON.stringify(await targetDocs(stack.client, `${id}_new.items`)) === JSON.stringify(s.expected(`${id}.items`));

  it('exitWhenCompleted: applies while the migration replicates, stops with "completed" once it is COMPLETED, leases released', async () => {
    const id = 'done1';
    const stream = stack.kl.uniqueStreamName(id);
    await stack.kl.createStream(stream, 2);
    await store.createMigration(id);
    await store.setPhase(id, 'READY_FOR_CUTOVER');
    const s = new Scenario(31).data({ db: id, coll: 'items' }, 300, 80);
    await produce(stack.kl.client, stream, s.envelopes);
    const abort = new AbortController();
    const run = runApply(options(id, stream, { exitWhenCompleted: true, signal: abort.signal }));
    let result: Awaited<typeof run> | undefined;
    void run.then((r) => (result = r), () => undefined);
    try {
      await waitUntil(() => matches(id, s), 30_000, 'the stream to be applied');
      // Phases before COMPLETED (CUTTING_OVER included) keep it applying.
      await store.setPhase(id, 'CUTTING_OVER');
      await new Promise((r) => setTimeout(r, 4_500)); // two polls (every 2 s)
      assert.equal(result, undefined, 'still running while CUTTING_OVER');
      await store.setPhase(id, 'COMPLETED');
      await waitUntil(() => result !== undefined, 20_000, 'apply to stop after COMPLETED');
      assert.equal(result!.stopReason, 'completed');
      for (const d of await store.listShards(id)) {
        assert.equal(d.lease.owner, null, `${d.shardId}: lease released`);
        assert.ok(d.checkpoint?.sequenceNumber, `${d.shardId}: checkpointed`);
      }
    } finally {
      abort.abort();
      await run.catch(() => undefined);
    }
  });

  it('exitWhenCompleted, started after COMPLETED: stops at once, applies nothing, takes no lease', async () => {
    const id = 'done2';
    const stream = stack.kl.uniqueStreamName(id);
    await stack.kl.createStream(stream, 2);
    await store.createMigration(id);
    await store.setPhase(id, 'COMPLETED');
    await produce(stack.kl.client, stream, new Scenario(32).data({ db: id, coll: 'items' }, 50, 20).envelopes);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 20_000);
    try {
      const r = await runApply(options(id, stream, { exitWhenCompleted: true, signal: abort.signal }));
      assert.equal(r.stopReason, 'completed', 'not stopped by the 20 s fallback abort');
      assert.equal(r.status.sessionEvents, 0);
      assert.deepEqual(await store.listShards(id), [], 'no lease taken');
      assert.equal(await stack.client.db(`${id}_new`).collection('items').countDocuments(), 0, 'nothing applied');
    } finally {
      clearTimeout(timer);
    }
  });

  it('plain CDC (cdcOnly, no exitWhenCompleted): a COMPLETED document of the same id does not stop it', async () => {
    const id = 'done3';
    const stream = stack.kl.uniqueStreamName(id);
    await stack.kl.createStream(stream, 2);
    await store.createMigration(id);
    await store.setPhase(id, 'COMPLETED');
    const s = new Scenario(33).data({ db: id, coll: 'items' }, 200, 50);
    await produce(stack.kl.client, stream, s.envelopes);
    const abort = new AbortController();
    const run = runApply(options(id, stream, { cdcOnly: true, signal: abort.signal }));
    let result: Awaited<typeof run> | undefined;
    void run.then((r) => (result = r), () => undefined);
    try {
      await waitUntil(() => matches(id, s), 30_000, 'the stream to be applied');
      await new Promise((r) => setTimeout(r, 4_500));
      assert.equal(result, undefined, 'still running');
    } finally {
      abort.abort();
    }
    assert.equal((await run).stopReason, 'interrupted');
  });
});
