// The README's topology: full-migrate beside a second `migrator apply` process that holds one of
// the stream's shards when full-migrate decides READY_FOR_CUTOVER. Before the fix (apply publishes
// each held shard's appliedThroughAt; full-migrate judges a shard another live apply holds by it),
// full-migrate counted only its own leases, so the phase stayed CATCHING_UP and the cutover never
// started. Deterministic by construction: `initial-load` first (the phase is CATCHING_UP, nobody
// applies yet), then the extra apply with --max-shards 1 takes one shard alone, then full-migrate,
// whose apply gets the other; the lease owners are checked before the cutover is requested.
// Afterwards the extra apply and a standby `migrator capture` exit 0 by themselves (COMPLETED).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ResultPromise } from 'execa';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore, type ShardDoc } from '../../src/state/store.js';
import { spawnMigrator, stderrTail } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number | string };
const ID = 'second-apply';

/** The pid in a lease owner id (host:pid:random, src/state/lease-owner.ts). */
const ownerPid = (owner: string | null | undefined) => (owner ? Number(owner.split(':').at(-2)) : undefined);

describe('cutover with a second apply process holding a shard', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;
  let dst: MongoClient;
  let store: StateStore;
  const dataDir = mkdtempSync(join(tmpdir(), 'migrator-second-apply-'));
  const procs: ResultPromise[] = [];

  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    [source, target, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(target.uri);
    store = await StateStore.open({ client: dst });
  });
  after(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.allSettled(procs);
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), target.stop(), kinesis.stop()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('full-migrate reports READY_FOR_CUTOVER and completes the cutover while `migrator apply` holds a shard', { timeout: 300_000 }, async () => {
    await src.db('bar').collection<AnyDoc>('products').insertMany(Array.from({ length: 200 }, (_, i) => ({ _id: i, name: `p${i}`, price: i })));
    const stream = kinesis.uniqueStreamName(ID);
    await kinesis.createStream(stream, 2);
    const common = [
      '--source-uri', source.uri, '--target-uri', target.uri, '--map', 'bar:bar_new', '--kinesis-stream', stream,
      '--kinesis-endpoint', kinesis.endpoint, '--migration-id', ID, '--log-format', 'json',
    ];
    const tools = ['--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'), '--data-dir', dataDir];
    const spawn = (args: string[]) => {
      const p = spawnMigrator(args, { forceKillAfterDelay: 15_000 });
      procs.push(p);
      return p;
    };
    const shards = () => store.listShards(ID);
    const heldBy = (docs: ShardDoc[], pid: number | undefined) =>
      docs.filter((d) => ownerPid(d.lease.owner) === pid && d.lease.expiresAt.getTime() > Date.now()).map((d) => d.shardId);
    const waitUntil = async (what: string, ok: () => Promise<boolean>, ms: number, details: () => Promise<string>) => {
      for (const end = Date.now() + ms; !(await ok()); ) {
        if (Date.now() > end) assert.fail(`${what}: not within ${ms / 1000} s\n${await details()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const tail = async (p: ResultPromise) => {
      if (p.exitCode === null) p.kill('SIGTERM'); // not SIGKILL: its last log lines would be lost
      return stderrTail((await p).stderr, 40);
    };

    // 1. The copy alone: afterwards the phase is CATCHING_UP and no apply holds a shard.
    const load = await runMigrator(['initial-load', ...common, ...tools], { timeoutMs: 180_000 });
    assert.equal(load.exitCode, 0, load.all);
    assert.equal((await store.getMigration(ID))?.phase, 'CATCHING_UP');
    // Changes after the load: they reach the target only through capture → Kinesis → apply.
    await src.db('bar').collection<AnyDoc>('products').updateMany({ _id: { $lt: 50 } }, { $set: { price: -1 } });
    await src.db('bar').collection<AnyDoc>('products').deleteMany({ _id: { $gte: 190 } });
    await src.db('bar').collection<AnyDoc>('products').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: 1000 + i, name: `new${i}` })));

    // 2. The extra apply takes one shard, with nobody competing for it.
    const extra = spawn(['apply', ...common, '--max-shards', '1', '--lease-ttl', '5s']);
    await waitUntil('the extra apply holds a shard', async () => heldBy(await shards(), extra.pid).length === 1 || extra.exitCode !== null, 60_000, () => tail(extra));
    if (extra.exitCode !== null) assert.fail(`apply exited early: ${await tail(extra)}`);

    // 3. full-migrate: its own capture, and its apply gets the other shard.
    const full = spawn(['full-migrate', ...common, ...tools, '--lease-ttl', '5s']);
    await waitUntil('full-migrate holds the other shard', async () => heldBy(await shards(), full.pid).length === 1 || full.exitCode !== null, 60_000, () => tail(full));
    if (full.exitCode !== null) assert.fail(`full-migrate exited early: ${await tail(full)}`);
    // A standby capture, as in the examples: full-migrate's capture holds the capture lease.
    await waitUntil('full-migrate holds the capture lease', async () => ownerPid((await store.getCaptureLease(ID))?.owner) === full.pid, 60_000, () => tail(full));
    const capture = spawn(['capture', ...common, '--lease-ttl', '5s']);
    try {
      await waitForPhase(store, ID, ['READY_FOR_CUTOVER'], { proc: full, timeoutMs: 120_000 });
    } catch (err) {
      const docs = await shards();
      assert.fail(`${(err as Error).message}\nshards: ${JSON.stringify(docs.map((d) => ({ shard: d.shardId, owner: d.lease.owner, appliedThroughAt: d.appliedThroughAt })))}\n${await tail(full)}`);
    }
    // Readiness was decided while the extra apply held a shard, and still does: the cutover below
    // needs its shard to pass the barrier as well.
    const held = await shards();
    assert.equal(heldBy(held, extra.pid).length, 1, `the extra apply holds a shard: ${JSON.stringify(held.map((d) => d.lease.owner))}`);
    assert.equal(heldBy(held, full.pid).length, 1, `full-migrate holds the other: ${JSON.stringify(held.map((d) => d.lease.owner))}`);

    // 4. The cutover completes, and the target equals the source.
    const cut = await runMigrator(['cutover', ...common, '--writes-stopped', '--wait', '--timeout', '120s'], { timeoutMs: 150_000 });
    if (cut.exitCode !== 0) assert.fail(`cutover exited ${cut.exitCode}: ${cut.all}\n${await tail(full)}`);
    const done = await full;
    assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
    assert.equal((await store.getMigration(ID))?.phase, 'COMPLETED');
    const verify = await runMigrator(['verify', ...common]);
    assert.equal(verify.exitCode, 0, verify.all);
    assert.equal(await dst.db('bar_new').collection('products').countDocuments({ price: -1 }), 50, 'the changes made after the load are on the target');

    // 5. The extra apply and the standby capture (which took over the capture lease when
    // full-migrate stopped its pipelines for the verification) exit 0 by themselves, saying why.
    for (const [name, p, why] of [['apply', extra, /nothing is left to apply/], ['capture', capture, /nothing is left to capture/]] as const) {
      const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
      const r = await p;
      clearTimeout(timer);
      assert.equal(r.exitCode, 0, `${name} exits 0 by itself after COMPLETED (not killed after 60 s): ${String(r.stderr).slice(-2000)}`);
      assert.match(String(r.stderr), why);
      assert.match(String(r.stderr), /the migration is COMPLETED \(cut over\)/);
    }
  });
});
