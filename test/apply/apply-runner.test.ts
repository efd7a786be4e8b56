// runApply against the local stack: MongoDB emulator (target + state store) and kinesis-local.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Decimal128, type Document } from 'mongodb';
import { EXACT_BSON_OPTIONS, encodeEnvelope, envelopeFromChangeEvent, routingKey } from '../../src/model/change-envelope.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore, type DdlRendezvousDoc } from '../../src/state/store.js';
import { runApply, type ApplyCounters, type ApplyRunnerOptions, type ApplyStatus } from '../../src/apply/apply-runner.js';
import { createOrderedProducer } from '../../src/transport/ordered-producer.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { FAST_CONSUMER, Scenario, produce, startStack, targetDocs, testLogger, type Stack } from './runner-fixtures.js';

describe('runApply', { timeout: 120_000 }, () => {
  let stack: Stack;
  let store: StateStore;

  before(async () => {
    stack = await startStack();
    store = await StateStore.open({ client: stack.client });
  });
  after(async () => {
    await stack?.stop();
  });

  const options = (streamName: string, migrationId: string, srcDb: string, extra: Partial<ApplyRunnerOptions> = {}): ApplyRunnerOptions => ({
    target: stack.client,
    store,
    migrationId,
    rules: new NamespaceRules({ map: [`${srcDb}:${srcDb}_new`] }),
    kinesis: stack.kl.client,
    streamName,
    ownerId: `test-${migrationId}-${Math.random().toString(36).slice(2)}`,
    logger: testLogger(),
    leaseTtlMs: 5_000,
    consumer: FAST_CONSUMER,
    cdcOnly: true, // streams written by the test: no full migration behind them
    ddlPollMs: 50,
    ...extra,
  });

  async function assertTarget(s: Scenario, srcDb: string, colls: string[]) {
    for (const c of colls) {
      const got = await targetDocs(stack.client, `${srcDb}_new.${c}`);
      const want = s.expected(`${srcDb}.${c}`);
      assert.equal(got.length, want.length, `${c}: document count`);
      assert.deepEqual(got, want, `${c}: documents`);
    }
  }

  async function shardCounters(migrationId: string): Promise<Map<string, ApplyCounters>> {
    const out = new Map<string, ApplyCounters>();
    for (const d of await store.listShards(migrationId)) {
      if (d.checkpoint) out.set(d.shardId, d.checkpoint.counters as ApplyCounters);
    }
    return out;
  }
  const sum = (m: Map<string, ApplyCounters>, k: keyof ApplyCounters) => [...m.values()].reduce((n, c) => n + c[k], 0);

  it('applies a 2-shard stream (inserts, updates, replaces, deletes, a drop) to the expected final state', async () => {
    const stream = stack.kl.uniqueStreamName('apply-full');
    await stack.kl.createStream(stream, 2);
    const s = new Scenario(1)
      .data({ db: 'full', coll: 'items' }, 1500, 400)
      .data({ db: 'full', coll: 'logs' }, 500, 100)
      .drop({ db: 'full', coll: 'logs' })
      .data({ db: 'full', coll: 'logs' }, 300, 50)
      .data({ db: 'full', coll: 'items' }, 1000, 400);
    const { copies } = await produce(stack.kl.client, stream, s.envelopes);

    const started = performance.now();
    const r = await runApply(options(stream, 'full', 'full', { stopWhenCaughtUp: true }));
    const ms = performance.now() - started;
    assert.equal(r.stopReason, 'caught-up');
    await assertTarget(s, 'full', ['items', 'logs']);

    // Counters: every envelope copy processed exactly once, over both shards.
    const counters = await shardCounters('full');
    assert.equal(counters.size, 2, 'a checkpoint per shard');
    assert.equal(sum(counters, 'events'), copies);
    assert.equal(sum(counters, 'ddl'), 1, 'the drop ran once (the other shard skipped its copy)');
    assert.equal(r.status.totals.events, copies);
    assert.equal(r.status.sessionEvents, copies);
    for (const c of counters.values()) {
      assert.ok(c.lastClusterTime > 0 && c.lastWallTime > 0, 'last applied times recorded');
      assert.ok(c.millisBehindLatest >= 0);
    }
    // Leases released on a clean stop.
    for (const d of await store.listShards('full')) assert.equal(d.lease.owner, null);
    assert.ok(ms < 30_000, `took ${Math.round(ms)} ms`);
  });

  it('stops on abort with checkpoints saved, and a rerun completes without applying anything twice', async () => {
    const stream = stack.kl.uniqueStreamName('apply-restart');
    await stack.kl.createStream(stream, 2);
    const s = new Scenario(2)
      .data({ db: 'rs', coll: 'items' }, 2000, 300)
      .drop({ db: 'rs', coll: 'items' })
      .data({ db: 'rs', coll: 'items' }, 1000, 300);
    const { copies } = await produce(stack.kl.client, stream, s.envelopes, 1, 50);

    const abort = new AbortController();
    const statuses: ApplyStatus[] = [];
    const first = await runApply(
      options(stream, 'restart', 'rs', {
        signal: abort.signal,
        // Small batches (one Kinesis record each) so the abort lands in the middle.
        consumer: { ...FAST_CONSUMER, limit: 1 },
        statusIntervalMs: 20,
        onStatus: (st) => {
          statuses.push(st);
          if (st.sessionEvents >= 600) abort.abort();
        },
      }),
    );
    assert.equal(first.stopReason, 'interrupted');
    const mid = await shardCounters('restart');
    assert.equal(mid.size, 2, 'both shards checkpointed');
    const midEvents = sum(mid, 'events');
    assert.ok(midEvents >= 600 && midEvents < copies, `stopped mid-way (${midEvents} of ${copies})`);
    assert.equal(first.status.sessionEvents, midEvents, 'everything processed before the stop is checkpointed');
    for (const d of await store.listShards('restart')) {
      assert.equal(d.lease.owner, null, 'leases released');
      assert.ok(d.checkpoint?.sequenceNumber, 'checkpoint has a sequence number');
    }

    const second = await runApply(options(stream, 'restart', 'rs', { stopWhenCaughtUp: true }));
    assert.equal(second.stopReason, 'caught-up');
    await assertTarget(s, 'rs', ['items']);
    const end = await shardCounters('restart');
    assert.equal(sum(end, 'events'), copies, 'every envelope counted once over both runs');
    assert.equal(second.status.sessionEvents, copies - midEvents, 'the rerun resumed at the checkpoints');
    assert.equal(sum(end, 'ddl'), 1);
  });

  it('interrupted while waiting at a DDL: the progress before it is checkpointed and a rerun resumes from it', async () => {
    const stream = stack.kl.uniqueStreamName('apply-ddl-wait');
    await stack.kl.createStream(stream, 2);
    const s = new Scenario(4)
      .data({ db: 'dw', coll: 'items' }, 400, 100)
      .drop({ db: 'dw', coll: 'items' })
      .data({ db: 'dw', coll: 'items' }, 200, 100);
    const { copies } = await produce(stack.kl.client, stream, s.envelopes); // one record per shard
    const abort = new AbortController();
    // One shard only: it applies everything before the drop, checkpoints, and waits for the other.
    const run = runApply(options(stream, 'ddlwait', 'dw', { maxShards: 1, signal: abort.signal }));
    let waiting: string | undefined;
    const until = performance.now() + 20_000;
    while (!waiting && performance.now() < until) {
      const rv = await store.db.collection<DdlRendezvousDoc>('ddl_rendezvous').findOne({ migrationId: 'ddlwait' });
      if (rv && rv.arrived.length === 1) waiting = rv.arrived[0];
      else await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(waiting, 'one shard reached the DDL');
    const cp = await store.getApplyCheckpoint('ddlwait', waiting);
    assert.ok(cp?.pos, 'position before the DDL checkpointed');
    assert.equal(cp.sequenceNumber, '0', 'first batch: no sequence number yet (start of shard)');
    abort.abort();
    const first = await run;
    assert.equal(first.stopReason, 'interrupted');

    const second = await runApply(options(stream, 'ddlwait', 'dw', { stopWhenCaughtUp: true }));
    assert.equal(second.stopReason, 'caught-up');
    await assertTarget(s, 'dw', ['items']);
    const end = await shardCounters('ddlwait');
    assert.equal(sum(end, 'events'), copies);
    assert.equal(sum(end, 'ddl'), 1);
  });

  it('applies real change events (emulator change stream → envelopes) to a renamed database', async () => {
    const stream = stack.kl.uniqueStreamName('apply-real');
    await stack.kl.createStream(stream, 2);
    const src = stack.client.db('real');
    const cs = stack.client.watch([{ $match: { 'ns.db': 'real' } }], { ...EXACT_BSON_OPTIONS, fullDocument: 'updateLookup' });
    const events: Document[] = [];
    const reading = (async () => {
      for await (const ev of cs) {
        events.push(ev);
        if ((ev as Document).operationType === 'insert' && (ev as Document).fullDocument?._id === 'end') break;
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const items = src.collection('items');
    await items.insertMany(Array.from({ length: 200 }, (_, i) => ({ _id: i, n: i, d: new Date(1_700_000_000_000 + i), dec: Decimal128.fromString(`${i}.50`) })) as never);
    for (let i = 0; i < 200; i += 3) await items.updateOne({ _id: i } as never, { $set: { n: -i }, $unset: { d: '' } });
    await items.deleteMany({ _id: { $gte: 150 } } as never);
    await src.collection('tmp').insertMany([{ a: 1 }, { a: 2 }]);
    await src.collection('tmp').drop();
    await items.insertOne({ _id: 'end' } as never);
    await reading;
    await cs.close();
    const envelopes = events.map((e) => envelopeFromChangeEvent(e));
    assert.ok(envelopes.some((e) => e.op === 'drop'));
    await produce(stack.kl.client, stream, envelopes);
    const r = await runApply(options(stream, 'real', 'real', { stopWhenCaughtUp: true }));
    assert.equal(r.stopReason, 'caught-up');
    const exact = { promoteValues: false } as const;
    const want = await src.collection('items').find({}, exact).sort({ _id: 1 }).toArray();
    const got = await stack.client.db('real_new').collection('items').find({}, exact).sort({ _id: 1 }).toArray();
    assert.equal(got.length, 151);
    assert.deepEqual(got, want);
    assert.deepEqual(await stack.client.db('real_new').listCollections({ name: 'tmp' }).toArray(), [], 'tmp dropped on the target');
  });

  it('a payload that is not an envelope is fatal (APPLY_FAILED, naming shard and sequence number)', async () => {
    const stream = stack.kl.uniqueStreamName('apply-garbage');
    await stack.kl.createStream(stream, 1);
    const s = new Scenario(5).data({ db: 'gb', coll: 'items' }, 50, 10);
    await produce(stack.kl.client, stream, s.envelopes, 1, 25);
    const p = await createOrderedProducer({ client: stack.kl.client, streamName: stream });
    await p.send('k', new TextEncoder().encode('{"not":"bson"}'), 1);
    await p.close();
    const consumer = { ...FAST_CONSUMER, limit: 1 }; // one Kinesis record per batch
    await assert.rejects(runApply(options(stream, 'garbage', 'gb', { stopWhenCaughtUp: true, consumer })), (err: unknown) => {
      assert.ok(err instanceof MigratorError);
      assert.equal(err.exitCode, ExitCode.APPLY_FAILED);
      assert.match(err.message, /^Shard shardId-000000000000: payload 1 of 1 of the batch after sequence number \d+ .*not a valid change envelope/);
      return true;
    });
    // What came before is applied and checkpointed.
    await assertTarget(s, 'gb', ['items']);
    const [shard] = await store.listShards('garbage');
    assert.equal((shard?.checkpoint?.counters as ApplyCounters).events, 50);
  });

  it('a fatal error on one shard ends the run even while another shard waits for it at a DDL', async () => {
    const stream = stack.kl.uniqueStreamName('apply-fatal-ddl');
    await stack.kl.createStream(stream, 2);
    const s = new Scenario(6).data({ db: 'fd', coll: 'items' }, 100, 50);
    const p = await createOrderedProducer({ client: stack.kl.client, streamName: stream });
    let tag = 1;
    for (const e of s.envelopes) await p.send(routingKey(e)!, encodeEnvelope(e), tag++);
    await p.send('k', new Uint8Array([1, 2, 3]), tag++); // garbage on one shard only
    s.drop({ db: 'fd', coll: 'items' });
    await p.sendBroadcast(encodeEnvelope(s.envelopes.at(-1)!), tag);
    await p.close();
    const started = performance.now();
    await assert.rejects(runApply(options(stream, 'fataldddl', 'fd', { stopWhenCaughtUp: true })), (err: unknown) => {
      assert.ok(err instanceof MigratorError);
      assert.equal(err.exitCode, ExitCode.APPLY_FAILED);
      assert.match(err.message, /not a valid change envelope/);
      return true;
    });
    assert.ok(performance.now() - started < 10_000);
    for (const d of await store.listShards('fataldddl')) assert.equal(d.lease.owner, null, 'leases released');
  });

  it('records a cutover barrier as reached by every shard', async () => {
    const stream = stack.kl.uniqueStreamName('apply-barrier');
    await stack.kl.createStream(stream, 2);
    await store.requestCutover('barrier');
    await store.setCutoverBarrier('barrier', 'b-1');
    const s = new Scenario(7).data({ db: 'br', coll: 'items' }, 200, 50).barrier('b-1');
    const { copies } = await produce(stack.kl.client, stream, s.envelopes);
    const r = await runApply(options(stream, 'barrier', 'br', { stopWhenCaughtUp: true }));
    assert.equal(r.stopReason, 'caught-up');
    assert.equal(r.status.totals.events, copies);
    assert.equal(r.status.totals.barriers, 2);
    const cutover = await store.getCutover('barrier');
    assert.deepEqual([...(cutover?.reachedShards ?? [])].sort(), (await store.listShards('barrier')).map((d) => d.shardId).sort());
    await assertTarget(s, 'br', ['items']);
  });

  it('skips capture-replay duplicates (re-sent envelopes) without regressing documents', async () => {
    const stream = stack.kl.uniqueStreamName('apply-dups');
    await stack.kl.createStream(stream, 2);
    const ns = { db: 'dup', coll: 'items' };
    const s = new Scenario(3).data(ns, 600, 80);
    // Capture "restarts": it re-sends a suffix of what it already sent, then goes on.
    const sent = [...s.envelopes.slice(0, 400), ...s.envelopes.slice(250, 400), ...s.envelopes.slice(400)];
    await produce(stack.kl.client, stream, sent, 1, 40);
    const r1 = await runApply(options(stream, 'dups', 'dup', { stopWhenCaughtUp: true, consumer: { ...FAST_CONSUMER, limit: 2 } }));
    assert.equal(r1.stopReason, 'caught-up');
    await assertTarget(s, 'dup', ['items']);
    const c1 = await shardCounters('dups');
    assert.ok(sum(c1, 'skipped') >= 150, `re-sent envelopes skipped (${sum(c1, 'skipped')})`);

    // A later re-send of old events (after the checkpoints) is skipped too, across runs.
    await produce(stack.kl.client, stream, s.envelopes.slice(100, 600), 10_000);
    const r2 = await runApply(options(stream, 'dups', 'dup', { stopWhenCaughtUp: true }));
    assert.equal(r2.stopReason, 'caught-up');
    assert.equal(r2.status.sessionEvents, 500);
    const c2 = await shardCounters('dups');
    assert.equal(sum(c2, 'skipped') - sum(c1, 'skipped'), 500, 'all 500 re-sent envelopes skipped');
    assert.equal(sum(c2, 'upserts') + sum(c2, 'deletes'), sum(c1, 'upserts') + sum(c1, 'deletes'), 'nothing re-written');
    await assertTarget(s, 'dup', ['items']);
  });
  it('waits while the migration is still in its initial load, then applies (an apply container next to full-migrate)', async () => {
    const stream = stack.kl.uniqueStreamName('apply-gate');
    await stack.kl.createStream(stream, 1);
    const s = new Scenario(3).data({ db: 'gate', coll: 'items' }, 200, 50);
    await produce(stack.kl.client, stream, s.envelopes);
    await store.createMigration('gate', { config: { streamName: stream } });
    await store.setPhase('gate', 'INITIAL_LOAD');
    const running = runApply(options(stream, 'gate', 'gate', { stopWhenCaughtUp: true }));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await stack.client.db('gate_new').collection('items').countDocuments(), 0, 'nothing applied during the load');
    assert.equal((await store.listShards('gate')).filter((d) => d.lease?.owner).length, 0, 'no shard leased during the load');
    await store.setPhase('gate', 'CATCHING_UP');
    const r = await running;
    assert.equal(r.stopReason, 'caught-up');
    await assertTarget(s, 'gate', ['items']);
  });

  it('started before full-migrate created the migration, waits for the migration and its load; a failure recorded while FAILED keeps the gate shut', async () => {
    const stream = stack.kl.uniqueStreamName('apply-early');
    await stack.kl.createStream(stream, 1);
    const s = new Scenario(4).data({ db: 'early', coll: 'items' }, 100, 30);
    await produce(stack.kl.client, stream, s.envelopes);
    const running = runApply(options(stream, 'early', 'early', { stopWhenCaughtUp: true, cdcOnly: false }));
    const nothingYet = async (when: string) => {
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(await stack.client.db('early_new').collection('items').countDocuments(), 0, `nothing applied ${when}`);
    };
    await nothingYet('before the migration exists');
    await store.createMigration('early', { config: { streamName: stream } });
    await store.setPhase('early', 'INITIAL_LOAD');
    await store.recordError('early', new Error('mongorestore failed'));
    await store.setPhase('early', 'FAILED');
    // A second error recorded while FAILED (another container failing) must not erase where it failed.
    await store.recordError('early', new Error('apply gave up'));
    assert.equal((await store.getMigration('early'))?.lastError?.phase, 'INITIAL_LOAD');
    await nothingYet('while the load failed');
    await store.setPhase('early', 'CATCHING_UP');
    const r = await running;
    assert.equal(r.stopReason, 'caught-up');
    await assertTarget(s, 'early', ['items']);
  });

  it('an apply stopped while waiting for the load exits cleanly without touching the target', async () => {
    const stream = stack.kl.uniqueStreamName('apply-gate2');
    await stack.kl.createStream(stream, 1);
    await store.createMigration('gate2', { config: { streamName: stream } });
    const abort = new AbortController();
    const running = runApply(options(stream, 'gate2', 'gate2', { signal: abort.signal }));
    await new Promise((r) => setTimeout(r, 300));
    abort.abort();
    assert.equal((await running).stopReason, 'interrupted');
  });
});
