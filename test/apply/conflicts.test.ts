// Duplicate-key conflicts: retried while they may resolve, never checkpointed past, fatal after the limit.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { runApply, type ApplyCounters, type ApplyRunnerOptions } from '../../src/apply/apply-runner.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { FAST_CONSUMER, produce, startStack, targetDocs, testLogger, type Stack } from './runner-fixtures.js';
import { Clock } from '../support/stream-positions.js';
import type { ChangeEnvelope } from '../../src/model/change-envelope.js';

describe('runApply and unique-index conflicts', { timeout: 60_000 }, () => {
  let stack: Stack;
  let store: StateStore;

  before(async () => {
    stack = await startStack();
    store = await StateStore.open({ client: stack.client });
  });
  after(async () => {
    await stack?.stop();
  });

  const opts = (streamName: string, migrationId: string, extra: Partial<ApplyRunnerOptions> = {}): ApplyRunnerOptions => ({
    target: stack.client,
    store,
    migrationId,
    rules: new NamespaceRules(),
    kinesis: stack.kl.client,
    streamName,
    ownerId: `test-${migrationId}`,
    logger: testLogger(),
    leaseTtlMs: 5_000,
    consumer: FAST_CONSUMER,
    cdcOnly: true, // streams written by the test: no full migration behind them
    stopWhenCaughtUp: true,
    conflictRetryPolicy: { initialDelayMs: 20, maxDelayMs: 100 },
    ...extra,
  });

  /** Users with a unique email; the target already holds a document (not from the stream) with `taken`. */
  async function setup(db: string, taken: string): Promise<{ stream: string; envelopes: ChangeEnvelope[] }> {
    const stream = stack.kl.uniqueStreamName(`conflict-${db}`);
    await stack.kl.createStream(stream, 1);
    const users = stack.client.db(db).collection('users');
    await users.createIndex({ email: 1 }, { unique: true });
    await users.insertOne({ _id: 'intruder' as never, email: taken });
    const clock = new Clock();
    const ns = { db, coll: 'users' };
    const envelopes: ChangeEnvelope[] = [];
    for (let i = 0; i < 20; i++) {
      const doc = { _id: i, email: i === 7 ? taken : `u${i}@x` };
      envelopes.push({ v: 1, op: 'insert', ns, key: { _id: i }, doc, ...clock.next() });
    }
    await produce(stack.kl.client, stream, envelopes);
    return { stream, envelopes };
  }

  it('re-applies the batch until the conflicting value is released, then checkpoints', async () => {
    const { stream } = await setup('cres', 'dup@x');
    // The "other shard" catches up once apply has retried a few times: the value is freed.
    let freed: Promise<unknown> | undefined;
    const r = await runApply(
      opts(stream, 'cres', {
        statusIntervalMs: 50,
        onStatus: (st) => {
          if (!freed && (st.shards[0]?.counters?.conflictRetries ?? 0) >= 3) {
            freed = stack.client.db('cres').collection('users').deleteOne({ _id: 'intruder' as never });
          }
        },
      }),
    );
    assert.ok(freed, 'the conflict was retried before the value was freed');
    await freed;
    assert.equal(r.stopReason, 'caught-up');
    const docs = await targetDocs(stack.client, 'cres.users');
    assert.equal(docs.length, 20);
    assert.equal(docs.find((d) => d._id === 7)?.email, 'dup@x');
    const [shard] = await store.listShards('cres');
    const c = shard!.checkpoint!.counters as ApplyCounters;
    assert.ok(c.conflictRetries > 0, 'the batch was retried');
    assert.equal(c.upserts, 20);
  });

  it('fails with APPLY_FAILED naming the namespace and key after the limit, without checkpointing past the conflict', async () => {
    const { stream } = await setup('cfail', 'same@x');
    await store.createMigration('cfail');
    await store.setPhase('cfail', 'CATCHING_UP'); // past its initial load: apply runs (see the load gate)
    const started = performance.now();
    await assert.rejects(runApply(opts(stream, 'cfail', { conflictRetryLimitMs: 800 })), (err: unknown) => {
      assert.ok(err instanceof MigratorError);
      assert.equal(err.exitCode, ExitCode.APPLY_FAILED);
      assert.match(err.message, /duplicate-key conflict\(s\) in cfail\.users/);
      assert.match(err.message, /\{"_id":7\}/);
      return true;
    });
    assert.ok(performance.now() - started >= 800);
    const [shard] = await store.listShards('cfail');
    assert.equal(shard?.checkpoint, undefined, 'no checkpoint past the unresolved conflict');
    assert.equal(shard?.lease.owner, null, 'lease released');
    const m = await store.getMigration('cfail');
    assert.match(m?.lastError?.message ?? '', /cfail\.users/);
  });
});
