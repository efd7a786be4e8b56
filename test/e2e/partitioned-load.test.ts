// The initial load in `_id` ranges (issue #13): a collection larger than --partition-size is
// loaded range by range; a SIGKILL at ~60 % of the ranges costs only the ranges that were running,
// and a `load-worker` in another process shares the load with full-migrate, its units taken over
// when it dies. Both end equal after the cutover.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { execa, type ResultPromise } from 'execa';
import { ObjectId, type Document } from 'mongodb';
import { useLocalStack } from '../support/local-stack.js';
import { goToolPath } from '../support/go-tools.js';
import { PROJECT_ROOT, runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { waitUntil } from '../support/wait.js';
import { StateStore, type LoadUnitDoc } from '../../src/state/store.js';
import { spawnMigrator, cutoverAndWait } from '../support/full-migrate-process.js';

const MAIN = `${PROJECT_ROOT}/src/cli/main.ts`;

type AnyDoc = Document & { _id: unknown };

/** ~2 MB in `db.items`, with `_id`s of several types (ints, strings, ObjectIds, documents), a unique index, and a small collection. */
async function seed(stack: ReturnType<typeof useLocalStack>, db: string): Promise<number> {
  const items = stack.src.db(db).collection<AnyDoc>('items');
  const pad = 'x'.repeat(900);
  const docs: AnyDoc[] = [];
  for (let i = 0; i < 1400; i++) docs.push({ _id: i, n: i, v: 0, pad });
  for (let i = 0; i < 300; i++) docs.push({ _id: `k${String(i).padStart(4, '0')}`, n: 10_000 + i, v: 0, pad });
  for (let i = 0; i < 200; i++) docs.push({ _id: ObjectId.createFromTime(1_700_000_000 + i), n: 20_000 + i, v: 0, pad });
  for (let i = 0; i < 100; i++) docs.push({ _id: { region: 'eu', seq: i }, n: 30_000 + i, v: 0, pad });
  for (let i = 0; i < docs.length; i += 500) await items.insertMany(docs.slice(i, i + 500));
  await items.createIndex({ n: 1 }, { unique: true, name: 'n_unique' });
  await stack.src.db(db).collection<AnyDoc>('small').insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i })));
  return docs.length;
}

function argsFor(stack: ReturnType<typeof useLocalStack>, id: string, stream: string, o: { leaseTtl?: string; dataDir?: string } = {}): string[] {
  return [
    '--source-uri', stack.source.uri, '--target-uri', stack.target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', stack.kinesis.endpoint,
    '--migration-id', id, '--lease-ttl', o.leaseTtl ?? '3s', '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
    '--data-dir', o.dataDir ?? `/tmp/migrator-part-${id}-${process.pid}`, '--log-format', 'json',
  ];
}

const spawn = (command: string, args: string[]): ResultPromise =>
  spawnMigrator([command, ...args]);

/**
 * A migrator as if on another machine: its own hostname (a new UTS namespace through an
 * unprivileged user namespace, `unshare -Ur --uts`), so the others cannot tell it died from its
 * pid and must wait for its leases to expire; its own process group, so a SIGKILL of the group
 * takes its mongodump/mongorestore with it, as a container's death does.
 */
const UNSHARE_SKIP = spawnSync('unshare', ['-Ur', '--uts', 'hostname', 'probe'], { stdio: 'ignore' }).status === 0 ? false : 'needs unprivileged user and UTS namespaces (unshare -Ur --uts) to run a worker as another machine';

const spawnElsewhere = (host: string, command: string, args: string[]): ResultPromise =>
  execa('unshare', ['-Ur', '--uts', 'sh', '-c', `hostname ${host} && exec "$0" "$@"`, process.execPath, '--import', 'tsx', MAIN, command, ...args], {
    cwd: PROJECT_ROOT,
    reject: false,
    stdin: 'ignore',
    env: { CI: 'true' },
    detached: true,
  });

/** The 'range loaded' lines a process logged: each range it finished copying (unit id, documents mongorestore reported). */
function rangesLoadedInLog(stderr: unknown): { unit: string; documents: number }[] {
  const out: { unit: string; documents: number }[] = [];
  for (const line of String(stderr).split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; unit?: string; documents?: number };
      if (rec.msg === 'range loaded') out.push({ unit: String(rec.unit), documents: rec.documents ?? 0 });
    } catch {
      /* not a log line */
    }
  }
  return out;
}

const ranges = (units: LoadUnitDoc[], ns: string) => units.filter((u) => u.kind === 'range' && `${u.sourceDb}.${u.coll}` === ns);

/** Updates while the load runs (no inserts or deletes: the collection's count stays, so document counts can be compared). */
function workload(stack: ReturnType<typeof useLocalStack>, db: string) {
  let writing = true;
  let n = 0;
  const done = (async () => {
    while (writing) {
      await stack.src.db(db).collection<AnyDoc>('items').updateOne({ _id: n % 1400 } as Document, { $inc: { v: 1 } });
      n++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return { stop: async () => ((writing = false), await done), rounds: () => n };
}

async function cutoverAndVerify(stack: ReturnType<typeof useLocalStack>, args: string[], proc: ResultPromise, store: StateStore, id: string, db: string) {
  await waitForPhase(store, id, ['READY_FOR_CUTOVER'], { proc, timeoutMs: 240_000 });
  await cutoverAndWait(args.slice(0, 10), { timeout: '120s' });
  const done = await proc;
  assert.equal(done.exitCode, 0, String(done.stderr).slice(-2000));
  const verify = await runMigrator(['verify', '--source-uri', stack.source.uri, '--target-uri', stack.target.uri, '--include', `${db}.*`]);
  assert.equal(verify.exitCode, 0, verify.all);
}

describe('partitioned initial load', () => {
  const stack = useLocalStack(['mongodump', 'mongorestore']);

  test('SIGKILL at ~60 % of the ranges: the rerun copies only the unfinished ranges, and the target ends equal', { timeout: 480_000 }, async () => {
    const id = 'part-kill';
    const total = await seed(stack, 'pk');
    const stream = stack.kinesis.uniqueStreamName('pk');
    await stack.kinesis.createStream(stream, 1);
    const args = [...argsFor(stack, id, stream), '--include', 'pk.*'];
    const store = await StateStore.open({ client: stack.dst });
    const w = workload(stack, 'pk');

    const first = spawn('full-migrate', [...args, '--partition-size', '64KiB', '--load-parallelism', '2']);
    let units: LoadUnitDoc[] = [];
    await waitUntil(
      async () => {
        if (first.exitCode !== null) throw new Error(`full-migrate exited early: ${String((await first).stderr).slice(-2000)}`);
        units = await store.listLoadUnits(id);
        const r = ranges(units, 'pk.items');
        return r.length > 0 && r.filter((u) => u.state === 'done').length >= Math.ceil(r.length * 0.6);
      },
      240_000,
      '60 % of the ranges loaded',
      20,
    );
    first.kill('SIGKILL');
    await first;
    units = await store.listLoadUnits(id);
    const itemRanges = ranges(units, 'pk.items');
    assert.ok(itemRanges.length >= 10, `the collection was split (${itemRanges.length} ranges)`);
    assert.ok(ranges(units, 'pk.small').length === 0, 'a small collection stays whole');
    const doneAtKill = new Map(itemRanges.filter((u) => u.state === 'done').map((u) => [u.shardId, u]));
    assert.ok(doneAtKill.size < itemRanges.length, 'killed before the end of the load');
    const loadedAtKill = [...doneAtKill.values()].reduce((s, u) => s + (u.documents ?? 0), 0);
    const killed = await store.getMigration(id);
    assert.equal(killed?.phase, 'INITIAL_LOAD');
    // status shows the collection's ranges (the killed process's running ones until their leases expire).
    const st = await runMigrator(['status', '--target-uri', stack.target.uri, '--migration-id', id, '--json']);
    assert.equal(st.exitCode, 0, st.all);
    const itemsStatus = (JSON.parse(st.stdout) as { load: { namespaces: { ns: string; partitions: { total: number; done: number } | null; bytes: number | null }[] } }).load.namespaces.find((n) => n.ns === 'pk.items')!;
    assert.equal(itemsStatus.partitions?.total, itemRanges.length);
    assert.equal(itemsStatus.partitions?.done, doneAtKill.size);
    assert.ok((itemsStatus.bytes ?? 0) > 0);

    // The target's count never falls below what the finished ranges copied: they are not dropped.
    const targetItems = stack.dst.db('pk').collection('items');
    let lowest = Infinity;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        lowest = Math.min(lowest, await targetItems.countDocuments());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const second = spawn('full-migrate', [...args, '--partition-size', '64KiB', '--load-parallelism', '2']);
    await waitForPhase(store, id, ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc: second, timeoutMs: 240_000 });
    watching = false;
    await watcher;
    assert.ok(lowest >= loadedAtKill, `target count ${lowest} never below the ${loadedAtKill} documents of the ranges finished before the kill`);
    assert.deepEqual((await store.getMigration(id))?.resumePoint?.ct, killed?.resumePoint?.ct, 'the original resume point is kept');

    units = await store.listLoadUnits(id);
    const after = ranges(units, 'pk.items');
    assert.equal(after.length, itemRanges.length, 'the plan was kept');
    for (const u of after) {
      assert.equal(u.state, 'done');
      const before = doneAtKill.get(u.shardId);
      if (before) {
        assert.equal(u.attempts, 1, `${u.shardId}, finished before the kill, was not copied again`);
        assert.deepEqual(u.finishedAt, before.finishedAt);
      }
    }
    // Documents the tools reported, over the finished ranges: the collection once, not 1.6 times.
    const copied = after.reduce((s, u) => s + (u.documents ?? 0), 0);
    assert.equal(copied, total, `ranges copied ${copied} documents of ${total}`);
    const redone = after.filter((u) => u.attempts > 1).length;
    assert.ok(redone <= 2 + 1, `only the ranges running at the kill were redone (${redone})`);
    assert.ok((await stack.dst.db('pk').collection('items').indexes()).some((i) => i.name === 'n_unique' && i.unique), 'the unique index was built after the data');

    await w.stop();
    await cutoverAndVerify(stack, args, second, store, id, 'pk');
    assert.ok(w.rounds() > 20, `workload ran (${w.rounds()} updates)`);
  });

  test('initial-load with --map: ranges land in the renamed collection, created first with the source\'s options; a collated collection stays whole', { timeout: 300_000 }, async () => {
    const id = 'part-map';
    await stack.src.db('pm').createCollection('items', { validator: { n: { $exists: true } } });
    await stack.src.db('pm').createCollection('names', { collation: { locale: 'en', strength: 2 } });
    const total = await seed(stack, 'pm');
    await stack.src.db('pm').collection<AnyDoc>('names').insertMany(Array.from({ length: 300 }, (_, i) => ({ _id: `Name${i}`, pad: 'y'.repeat(900) })));
    const stream = stack.kinesis.uniqueStreamName('pm');
    await stack.kinesis.createStream(stream, 1);
    const r = await runMigrator(['initial-load', ...argsFor(stack, id, stream), '--include', 'pm.*', '--map', 'pm.items:pm_new.things', '--partition-size', '64KiB', '--load-parallelism', '3']);
    assert.equal(r.exitCode, 0, r.all);
    const store = await StateStore.open({ client: stack.dst });
    const units = await store.listLoadUnits(id);
    assert.ok(ranges(units, 'pm.items').length >= 10);
    assert.ok(ranges(units, 'pm.items').every((u) => u.target === 'pm_new.things'));
    assert.equal(ranges(units, 'pm.names').length, 0, 'a collection with a non-simple collation is loaded whole');
    const things = stack.dst.db('pm_new').collection<AnyDoc>('things');
    assert.equal(await things.countDocuments(), total);
    const srcIds = (await stack.src.db('pm').collection<AnyDoc>('items').find({}, { projection: { _id: 1 } }).toArray()).map((d) => JSON.stringify(d._id)).sort();
    const dstIds = (await things.find({}, { projection: { _id: 1 } }).toArray()).map((d) => JSON.stringify(d._id)).sort();
    assert.deepEqual(dstIds, srcIds, 'every _id (ints, strings, ObjectIds, documents) once');
    const info = (await stack.dst.db('pm_new').listCollections({ name: 'things' }).toArray())[0] as { options?: { validator?: unknown } };
    assert.deepEqual(info.options?.validator, { n: { $exists: true } }, 'created with the source collection\'s options');
    assert.ok((await things.indexes()).some((i) => i.name === 'n_unique'));
    const st = await runMigrator(['status', '--target-uri', stack.target.uri, '--migration-id', id, '--json']);
    assert.equal(st.exitCode, 0, st.all);
    const load = (JSON.parse(st.stdout) as { load: { indexes: unknown; namespaces: { ns: string; indexes: unknown }[] } }).load;
    assert.deepEqual(load.indexes, { total: 1, built: 1, pending: 0, building: [] }, 'every index built after the data');
    assert.deepEqual(load.namespaces.find((n) => n.ns === 'pm.items')?.indexes, { total: 1, built: 1, pending: 0, building: null });
    assert.equal(await stack.dst.db('pm').collection('names').countDocuments(), 300);
    assert.equal(await stack.dst.db('pm').collection('items').countDocuments(), 0, 'nothing under the old name');
  });

  test('a load-worker shares the load with full-migrate; killed midway, its units are taken over and the target ends equal', { timeout: 480_000 }, async () => {
    const id = 'part-workers';
    await seed(stack, 'pw');
    const stream = stack.kinesis.uniqueStreamName('pw');
    await stack.kinesis.createStream(stream, 1);
    const args = [...argsFor(stack, id, stream), '--include', 'pw.*'];
    const store = await StateStore.open({ client: stack.dst });
    const w = workload(stack, 'pw');

    const main = spawn('full-migrate', [...args, '--partition-size', '64KiB', '--load-parallelism', '1']);
    const worker = spawn('load-worker', [...argsFor(stack, id, stream), '--load-parallelism', '1']);
    const byWorker = (units: LoadUnitDoc[]) => units.filter((u) => u.ranBy?.includes(`:${worker.pid}:`));
    let units: LoadUnitDoc[] = [];
    await waitUntil(
      async () => {
        if (main.exitCode !== null) throw new Error(`full-migrate exited early: ${String((await main).stderr).slice(-2000)}`);
        if (worker.exitCode !== null) throw new Error(`load-worker exited early: ${String((await worker).stderr).slice(-2000)}\n${String((await worker).stdout)}`);
        units = await store.listLoadUnits(id);
        // Midway: the worker finished some units and holds one now.
        return byWorker(units).filter((u) => u.state === 'done').length >= 2 && byWorker(units).some((u) => u.state === 'running');
      },
      240_000,
      'the load-worker finished two units and runs a third',
      20,
    );
    worker.kill('SIGKILL');
    await worker;
    units = await store.listLoadUnits(id);
    const orphaned = byWorker(units).filter((u) => u.state === 'running').map((u) => u.shardId);
    assert.ok(orphaned.length >= 1);
    assert.ok(units.some((u) => u.state !== 'done'), 'killed before the end of the load');

    await waitForPhase(store, id, ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc: main, timeoutMs: 240_000 });
    units = await store.listLoadUnits(id);
    assert.ok(units.every((u) => u.state === 'done'), 'full-migrate waited for every unit');
    for (const shardId of orphaned) {
      const u = units.find((x) => x.shardId === shardId)!;
      assert.ok(!u.ranBy?.includes(`:${worker.pid}:`), `${shardId}, the dead worker's, was finished by full-migrate`);
      assert.ok(u.attempts >= 2);
    }
    assert.ok(byWorker(units).filter((u) => u.state === 'done').length >= 2, 'the worker\'s finished units stayed done');

    await w.stop();
    await cutoverAndVerify(stack, args, main, store, id, 'pw');
  });

  test('two load-workers (one on another machine) and full-migrate share the load; the other machine\'s worker SIGKILLed midway is taken over after its lease; each range is copied once but the killed one, and the target ends equal', { timeout: 480_000, skip: UNSHARE_SKIP }, async (t) => {
    const id = 'part-two-workers';
    const total = await seed(stack, 'p2');
    const stream = stack.kinesis.uniqueStreamName('p2');
    await stack.kinesis.createStream(stream, 1);
    // Leases long enough that no live process loses one to a slow machine (only the killed worker's expire).
    const args = [...argsFor(stack, id, stream, { leaseTtl: '8s' }), '--include', 'p2.*'];
    const store = await StateStore.open({ client: stack.dst });
    const w = workload(stack, 'p2');
    const host = `elsewhere-${process.pid}`;

    const main = spawn('full-migrate', [...args, '--partition-size', '64KiB', '--load-parallelism', '1']);
    // Worker B: same machine and --data-dir as full-migrate. Worker A: another machine, its own --data-dir.
    const workerB = spawn('load-worker', [...argsFor(stack, id, stream, { leaseTtl: '8s' }), '--load-parallelism', '1']);
    const workerA = spawnElsewhere(host, 'load-worker', [...argsFor(stack, id, stream, { leaseTtl: '8s', dataDir: `/tmp/migrator-part-${id}-a-${process.pid}` }), '--load-parallelism', '1']);
    const byA = (units: LoadUnitDoc[]) => units.filter((u) => u.ranBy?.startsWith(`${host}:`));
    const byB = (units: LoadUnitDoc[]) => units.filter((u) => u.ranBy?.includes(`:${workerB.pid}:`));
    const byMain = (units: LoadUnitDoc[]) => units.filter((u) => u.ranBy?.includes(`:${main.pid}:`));
    let units: LoadUnitDoc[] = [];
    const kill = (p: ResultPromise, group = false) => {
      if (p.exitCode !== null || p.pid === undefined) return;
      try {
        process.kill(group ? -p.pid : p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    t.after(async () => {
      for (const p of [main, workerB]) kill(p);
      kill(workerA, true);
      await w.stop();
    });
    // Kill A while it runs a unit: freeze its process group (node and tools), look, and kill it
    // if it holds a running unit, else let it go on and look again. Frozen then killed is the same
    // as killed at that instant.
    let orphaned: LoadUnitDoc[] = [];
    for (let tries = 0; orphaned.length === 0; tries++) {
      assert.ok(tries < 50, 'caught worker A running a unit');
      await waitUntil(
        async () => {
          for (const [name, p] of [['full-migrate', main], ['load-worker B', workerB], ['load-worker A', workerA]] as const) {
            if (p.exitCode !== null) throw new Error(`${name} exited early: ${String((await p).stderr).slice(-2000)}`);
          }
          units = await store.listLoadUnits(id);
          // Midway: A finished two units and holds a third; B has finished one.
          return byA(units).filter((u) => u.state === 'done').length >= 2 && byA(units).some((u) => u.state === 'running') && byB(units).some((u) => u.state === 'done');
        },
        240_000,
        'worker A finished two units and runs a third, worker B finished one',
        20,
      );
      process.kill(-workerA.pid!, 'SIGSTOP');
      units = await store.listLoadUnits(id);
      orphaned = units.filter((u) => u.state === 'running' && u.lease.owner?.startsWith(`${host}:`));
      if (orphaned.length === 0) process.kill(-workerA.pid!, 'SIGCONT');
    }
    kill(workerA, true);
    const deadA = await workerA;
    units = await store.listLoadUnits(id);
    assert.equal(orphaned.length, 1, 'worker A held one unit (--load-parallelism 1)');
    assert.ok(units.some((u) => u.state !== 'done'), 'killed before the end of the load');
    const doneByAAtKill = byA(units).filter((u) => u.state === 'done').map((u) => u.shardId);

    await waitForPhase(store, id, ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc: main, timeoutMs: 240_000 });
    const b = await workerB;
    assert.equal(b.exitCode, 0, String(b.stderr).slice(-2000));
    units = await store.listLoadUnits(id);
    assert.ok(units.every((u) => u.state === 'done'), 'full-migrate waited for every unit');
    const items = ranges(units, 'p2.items');
    assert.ok(items.length >= 10, `the collection was split into many ranges (${items.length})`);
    // Shared: full-migrate and the surviving worker both finished units, and A's finished ones stayed A's.
    assert.ok(byMain(units).length >= 1, 'full-migrate ran units');
    assert.ok(byB(units).length >= 1, 'the surviving load-worker ran units');
    assert.deepEqual(byA(units).map((u) => u.shardId).sort(), [...doneByAAtKill].sort(), 'the killed worker\'s finished units stayed done');
    // The killed worker's unit: taken over by a live process, only once its lease had expired.
    const lost = orphaned[0]!;
    const taken = units.find((u) => u.shardId === lost.shardId)!;
    assert.ok(!taken.ranBy?.startsWith(`${host}:`), `${lost.shardId} was finished by another process (${taken.ranBy})`);
    assert.equal(taken.attempts, 2, `${lost.shardId} was run twice: by A, then by its new owner`);
    assert.ok(taken.lease.epoch > lost.lease.epoch, 'under a new lease');
    assert.ok(taken.startedAt!.getTime() >= lost.lease.expiresAt.getTime(), `taken over at ${taken.startedAt?.toISOString()}, after A's lease expired at ${lost.lease.expiresAt.toISOString()}`);
    // Nothing else was copied twice: every other unit ran once.
    const twice = units.filter((u) => u.attempts > 1).map((u) => u.shardId);
    assert.deepEqual(twice, [lost.shardId], 'only the killed worker\'s running unit was redone');
    // The tools' own counts, from every process's log: each range once — but the killed one, when A
    // had finished copying it just before the kill (its unit not marked done yet).
    const loggedByA = rangesLoadedInLog(deadA.stderr).filter((r) => r.unit !== lost.shardId);
    assert.deepEqual(loggedByA.map((r) => r.unit).sort(), doneByAAtKill.filter((s) => items.some((u) => u.shardId === s)).sort(), 'A logged the ranges it finished');
    await w.stop();
    await cutoverAndVerify(stack, args, main, store, id, 'p2');
    // While apply ran, full-migrate sampled its progress for the retention forecast's measured apply rate.
    assert.ok(((await store.getMigration(id))?.applySamples ?? []).length >= 1, 'apply rate samples recorded');
    const logged = [...loggedByA, ...rangesLoadedInLog(b.stderr), ...rangesLoadedInLog((await main).stderr)];
    assert.deepEqual(logged.map((r) => r.unit).sort(), items.map((u) => u.shardId).sort(), 'each range loaded once');
    const copied = logged.reduce((s, r) => s + r.documents, 0);
    assert.equal(copied, total, `the processes copied ${copied} documents in ranges for a collection of ${total}`);
    assert.equal(items.reduce((s, u) => s + (u.documents ?? 0), 0), total);
  });
});
