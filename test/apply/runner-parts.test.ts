/**
 * The parts the apply runner is built from, each on its own: the status model, the origin check,
 * stall detection, the load gate and the COMPLETED watch, and the mapping of failures to exit codes.
 * (The runner as a whole: test/apply/.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { MongoNetworkError, MongoServerError } from 'mongodb';
import { originEnvelope } from '../../src/model/change-envelope.js';
import { START_OF_SHARD_SEQUENCE } from '../../src/apply/apply-options.js';
import { buildApplyStatus, emptyCounters, type ShardRunView } from '../../src/apply/apply-status.js';
import { ApplyInterrupted, ShardFailure, toMigratorError } from '../../src/apply/apply-failures.js';
import { ApplyWriteError, RetriesExhaustedError, UnmappableDdlError } from '../../src/apply/errors.js';
import { CompletedWatch, waitForInitialLoad } from '../../src/apply/load-gate.js';
import { checkOrigin } from '../../src/apply/origin-check.js';
import { checkStalls } from '../../src/apply/stall-watch.js';
import type { ShardRun } from '../../src/apply/shard-batch.js';
import type { ShardStatus } from '../../src/transport/stream-consumer.js';
import type { MigrationDoc } from '../../src/state/store.js';
import { MigratorError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { createLogger, type Logger } from '../../src/util/logger.js';
import { ins } from './helpers.js';
import { Clock } from '../support/stream-positions.js';

/** A logger that keeps its lines (JSON) for assertions. */
function memoryLogger(): { log: Logger; lines: () => string[] } {
  const out: string[] = [];
  const sink = new Writable({ write: (c, _e, done) => (out.push(String(c)), done()) });
  return { log: createLogger({ format: 'json', verbose: false, out: sink }), lines: () => out.join('').split('\n').filter(Boolean) };
}

const shardStatus = (shardId: string, s: Partial<ShardStatus>): ShardStatus =>
  ({ shardId, state: 'reading', caughtUp: false, millisBehindLatest: undefined, caughtUpAt: undefined, ...s }) as ShardStatus;

const runView = (r: Partial<ShardRunView>): ShardRunView => ({
  counters: emptyCounters(),
  busySince: undefined,
  appliedThroughAt: undefined,
  stalledSince: undefined,
  sequenceNumber: undefined,
  ...r,
});

describe('apply status', () => {
  it('sums the counters of held and ended shards, and is caught up only when every shard is at its tip or ended', () => {
    const a = { ...emptyCounters(), events: 10, upserts: 7, lastClusterTime: 50, millisBehindLatest: 0 };
    const b = { ...emptyCounters(), events: 5, deletes: 5, lastClusterTime: 70, millisBehindLatest: 0 };
    const input = {
      ownerId: 'me',
      statuses: [shardStatus('s0', { caughtUp: true, millisBehindLatest: 0 }), shardStatus('s2', { state: 'ended', caughtUp: true })],
      runs: new Map([['s0', runView({ counters: a, sequenceNumber: '123' })]]),
      ended: new Map([['s1', b]]),
      holds: (id: string) => id === 's0',
      sessionEvents: 15,
    };
    const st = buildApplyStatus(input);
    assert.deepEqual(st.shards.map((s) => [s.shardId, s.state, s.leased]), [['s0', 'reading', true], ['s1', 'ended', false], ['s2', 'ended', false]]);
    assert.equal(st.totals.events, 15);
    assert.equal(st.totals.upserts, 7);
    assert.equal(st.totals.deletes, 5);
    assert.equal(st.totals.lastClusterTime, 70);
    assert.equal(st.caughtUp, true);
    assert.equal(st.shards[0]!.sequenceNumber, '123');

    const behind = buildApplyStatus({ ...input, statuses: [shardStatus('s0', { caughtUp: false, millisBehindLatest: 900 })] });
    assert.equal(behind.caughtUp, false);
    assert.equal(behind.totals.millisBehindLatest, 900);
  });

  it('shows no sequence number for a checkpoint at the start of the shard, and takes the tip time as applied only with no batch in hand', () => {
    const statuses = [shardStatus('s0', { caughtUp: true, caughtUpAt: 5_000 })];
    const base = { ownerId: 'me', statuses, ended: new Map(), holds: () => true, sessionEvents: 0 };
    const idle = buildApplyStatus({ ...base, runs: new Map([['s0', runView({ sequenceNumber: START_OF_SHARD_SEQUENCE, appliedThroughAt: 4_000 })]]) });
    assert.equal(idle.shards[0]!.sequenceNumber, undefined);
    assert.equal(idle.shards[0]!.appliedThroughAt, 5_000);
    const busy = buildApplyStatus({ ...base, runs: new Map([['s0', runView({ busySince: 1, appliedThroughAt: 4_000 })]]) });
    assert.equal(busy.shards[0]!.appliedThroughAt, 4_000, 'a batch in hand is not applied yet');
  });
});

describe('origin check (no silent gap)', () => {
  const fresh = (shardId = 's0') => ({ shardId, sequenceNumber: undefined, position: undefined, originChecked: false, counters: { skipped: 0 } });
  const noParents = async () => [{ shardId: 's0' } as never];

  it('lets a fresh shard through when its first record is the origin (sent 0), and never applies origins', async () => {
    const run = fresh();
    const e = ins(new Clock(), { _id: 1 });
    const out = await checkOrigin(run, [originEnvelope(0, 'tag'), { ...e, mig: 'tag' }], 'm1', noParents);
    assert.deepEqual(out.map((x) => x.op), ['insert']);
    assert.equal(run.counters.skipped, 1);
    assert.equal(run.originChecked, true);
  });

  it('fails with HISTORY_LOST when a fresh shard starts with data or with a restart origin', async () => {
    const data = { ...ins(new Clock(), { _id: 1 }), mig: 'tag' };
    await assert.rejects(checkOrigin(fresh(), [data], 'm1', noParents), (err: MigratorError) => {
      assert.equal(err.exitCode, ExitCode.HISTORY_LOST);
      assert.match(err.message, /Shard s0: the stream no longer holds the start of migration m1/);
      return true;
    });
    await assert.rejects(checkOrigin(fresh(), [originEnvelope(12, 'tag')], 'm1', noParents), /after 12 events already sent/);
  });

  it('does not check a child shard of a reshard, nor a shard resumed from a checkpoint', async () => {
    const data = { ...ins(new Clock(), { _id: 1 }), mig: 'tag' };
    const child = async () => [{ shardId: 's0', parentShardId: 'sp' } as never];
    assert.equal((await checkOrigin(fresh(), [data], 'm1', child)).length, 1);
    assert.equal((await checkOrigin({ ...fresh(), sequenceNumber: '5' }, [data], 'm1', noParents)).length, 1);
  });
});

describe('stall detection', () => {
  const run = (r: Partial<ShardRun>): ShardRun =>
    ({ shardId: 's0', busySince: undefined, waiting: false, stalledSince: undefined, lastStallWarnAt: 0, ...r }) as ShardRun;

  it('marks a shard quiet for warnMs stalled (state store and WARN), and fails the run after failMs', async () => {
    const { log, lines } = memoryLogger();
    const stalls: (Date | null)[] = [];
    const failures: Error[] = [];
    const input = (runs: ShardRun[]) => ({
      runs: () => runs,
      keeper: { lease: () => ({ shardId: 's0' }) as never },
      store: { setShardStall: async (_l: unknown, since: Date | null) => void stalls.push(since) },
      log,
      warnMs: 1_000,
      failMs: 10_000,
      failing: () => failures.length > 0,
      fail: (_id: string, e: Error) => void failures.push(e),
    });
    const quiet = run({ busySince: Date.now() - 2_000 });
    await checkStalls(input([quiet]));
    assert.ok(quiet.stalledSince);
    assert.equal(stalls.length, 1);
    assert.match(lines().join('\n'), /shard stalled/);
    assert.equal(failures.length, 0);

    await checkStalls(input([run({ busySince: Date.now() - 20_000, waiting: true })]));
    assert.equal(failures.length, 0, 'waiting for other shards is not a stall');
    await checkStalls(input([run({ busySince: Date.now() - 20_000 })]));
    assert.equal(failures.length, 1);
    assert.equal((failures[0] as MigratorError).exitCode, ExitCode.APPLY_STALLED);
  });
});

describe('load gate and COMPLETED watch', () => {
  const migration = (phase: string) => ({ _id: 'm1', phase }) as unknown as MigrationDoc;

  it('waits while the migration is missing or loading, then opens', async () => {
    const phases: (MigrationDoc | null)[] = [null, migration('INITIAL_LOAD'), migration('CATCHING_UP')];
    const waiting: boolean[] = [];
    const open = await waitForInitialLoad({
      store: { getMigration: async () => phases.shift() ?? null },
      migrationId: 'm1',
      cdcOnly: false,
      log: memoryLogger().log,
      signal: new AbortController().signal,
      beat: () => undefined,
      completed: () => false,
      setWaiting: (w) => void waiting.push(w),
      pollMs: 1,
    });
    assert.equal(open, true);
    assert.deepEqual(waiting, [true, true, false]);
  });

  it('opens at once for plain CDC without a migration, and stays shut when stopped', async () => {
    const base = {
      store: { getMigration: async () => null },
      migrationId: 'm1',
      log: memoryLogger().log,
      beat: () => undefined,
      completed: () => false,
      setWaiting: () => undefined,
      pollMs: 1,
    };
    assert.equal(await waitForInitialLoad({ ...base, cdcOnly: true, signal: new AbortController().signal }), true);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 20);
    assert.equal(await waitForInitialLoad({ ...base, cdcOnly: false, signal: abort.signal }), false);
  });

  it('the COMPLETED watch stops apply once (and only with exitWhenCompleted)', async () => {
    const { log, lines } = memoryLogger();
    let reason: string | undefined;
    const watch = new CompletedWatch({
      store: { getMigration: async () => migration('COMPLETED') },
      migrationId: 'm1',
      exitWhenCompleted: true,
      log,
      onCompleted: () => reason === undefined && (reason = 'completed') === 'completed',
    });
    let stops = 0;
    await watch.poll(() => stops++);
    await watch.poll(() => stops++);
    assert.equal(stops, 2);
    assert.equal(reason, 'completed');
    assert.equal(lines().filter((l) => l.includes('is COMPLETED')).length, 1, 'says why once');
    const cdc = new CompletedWatch({ store: { getMigration: async () => migration('COMPLETED') }, migrationId: 'm1', exitWhenCompleted: false, log, onCompleted: () => true });
    assert.equal(cdc.completed(migration('COMPLETED')), false);
  });
});

describe('apply failures → exit codes', () => {
  const code = (e: unknown) => toMigratorError(new ShardFailure('s0', e), 'stream-x').exitCode;

  it('maps each kind of shard failure to its documented exit code', () => {
    assert.equal(code(new UnmappableDdlError('rename', 3)), ExitCode.APPLY_FAILED);
    assert.equal(code(new ApplyWriteError('refused', {})), ExitCode.APPLY_FAILED);
    assert.equal(code(new RetriesExhaustedError('bulkWrite', 10, new Error('x'))), ExitCode.CONNECTION_FAILED);
    assert.equal(code(new MongoNetworkError('closed')), ExitCode.CONNECTION_FAILED);
    assert.equal(code(new MongoServerError({ message: 'bad', code: 2 })), ExitCode.APPLY_FAILED);
    assert.equal(code(new ApplyInterrupted('x')), ExitCode.INTERNAL);
    const own = new MigratorError(ExitCode.HISTORY_LOST, 'lost');
    assert.equal(toMigratorError(new ShardFailure('s0', own), 'stream-x'), own, 'a MigratorError passes through');
    const notFound = Object.assign(new Error('no stream'), { name: 'ResourceNotFoundException' });
    const e = toMigratorError(notFound, 'stream-x');
    assert.equal(e.exitCode, ExitCode.STREAM_FAILED);
    assert.match(e.message, /Kinesis stream 'stream-x' not found/);
  });
});
