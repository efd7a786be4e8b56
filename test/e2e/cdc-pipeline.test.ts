// capture → Kinesis (2 shards) → apply as separate `migrator` processes, under a write workload that
// covers every operation type and _id type, with kill -9 of capture and apply at seeded random
// moments; afterwards `migrator verify` must find the target equal to the source.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ResultPromise } from 'execa';
import { Binary, Decimal128, Int32, Long, MongoClient, ObjectId, Timestamp, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { runMigrator } from '../support/cli.js';
import { prng } from '../transport/test-helpers.js';
import { spawnMigrator, stderrTail } from '../support/full-migrate-process.js';

type Id = ObjectId | string | number | Int32 | Long | Document;
type AnyDoc = { _id: Id; [k: string]: unknown };

const idKinds: ((i: number) => Id)[] = [
  (i) => new ObjectId(i.toString(16).padStart(24, '0')),
  (i) => `str-${i}`,
  (i) => new Int32(i),
  (i) => Long.fromNumber(1e12 + i),
  (i) => ({ tenant: 't' + (i % 3), seq: new Int32(i) }),
];

describe('capture and apply processes under kill -9', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let src: MongoClient;

  before(async () => {
    [source, target, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal()]);
    src = new MongoClient(source.uri);
  });
  after(async () => {
    await src.close();
    await Promise.all([source.stop(), target.stop(), kinesis.stop()]);
  });

  test('every operation and _id type, a 1.5 MiB document, bar → bar_new; target equals source', { timeout: 300_000 }, async () => {
    const seed = Number(process.env.CDC_SEED ?? 7);
    const rand = prng(seed);
    const stream = kinesis.uniqueStreamName('cdc');
    await kinesis.createStream(stream, 2);
    const start = (await src.db('admin').command({ ping: 1 })).operationTime as Timestamp;
    const common = [
      '--source-uri', source.uri, '--target-uri', target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint,
      '--map', 'bar:bar_new', '--migration-id', 'cdc', '--log-format', 'json',
    ];
    const spawn = (cmd: string, extra: string[]) =>
      spawnMigrator([cmd, ...common, ...extra]);
    // The same flags on every (re)start, as a container would have: --start-at applies only while
    // capture has no checkpoint of its own.
    const captureArgs = ['--start-at', `${start.t},${start.i}`, '--checkpoint-interval', '200ms'];
    const procs: Record<'capture' | 'apply', ResultPromise | undefined> = {
      capture: spawn('capture', captureArgs),
      apply: spawn('apply', ['--lease-ttl', '3s', '--cdc-only']),
    };
    let kills = 0;

    const coll = src.db('bar').collection<AnyDoc>('items');
    const raw = src.db('bar').collection('items');
    const ops = { insert: 0, update: 0, unset: 0, truncate: 0, replace: 0, delete: 0 };
    const ids: Id[] = [];
    for (let round = 0; round < 12; round++) {
      for (let k = 0; k < 40; k++) {
        const id = idKinds[(round * 40 + k) % idKinds.length]!(round * 40 + k);
        await coll.insertOne({ _id: id, n: new Int32(k), price: new Decimal128(`${k}.5`), tags: ['a', 'b', 'c', 'd'], legacy: true, bin: new Binary(Buffer.from([k])) });
        ids.push(id);
        ops.insert++;
      }
      for (let k = 0; k < 60; k++) {
        const f = { _id: ids[Math.floor(rand() * ids.length)]! } as Document;
        const r = rand();
        if (r < 0.35) {
          await raw.updateOne(f, { $set: { n: new Int32(k), at: new Date() } });
          ops.update++;
        } else if (r < 0.5) {
          await raw.updateOne(f, { $unset: { legacy: '' } });
          ops.unset++;
        } else if (r < 0.65) {
          await raw.updateOne(f, { $pop: { tags: 1 } });
          ops.truncate++;
        } else if (r < 0.8) {
          await raw.replaceOne(f, { replaced: true, k: new Int32(k) });
          ops.replace++;
        } else {
          await raw.deleteOne(f);
          ops.delete++;
        }
      }
      if (round === 3) await src.db('bar').collection<AnyDoc>('big').insertOne({ _id: 'big', blob: new Binary(Buffer.alloc(1536 * 1024, 7)) });
      if (round === 5) {
        await src.db('bar').collection<AnyDoc>('tmp').insertMany([{ _id: 1 }, { _id: 2 }]);
        await src.db('bar').collection('tmp').drop();
      }
      // Seeded kills: capture or apply, at a random point of some rounds.
      if (rand() < 0.5) {
        const which = rand() < 0.5 ? 'capture' : 'apply';
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 400)));
        procs[which]!.kill('SIGKILL');
        await procs[which];
        kills++;
        procs[which] = which === 'capture' ? spawn('capture', captureArgs) : spawn('apply', ['--lease-ttl', '3s', '--cdc-only']);
      }
    }
    assert.ok(kills >= 3, `seed ${seed} killed ${kills} times`);

    // Converge: wait until verify passes (apply catches up), then stop both cleanly.
    const end = Date.now() + 120_000;
    let last = await runMigrator(['verify', ...common.slice(0, 4), '--map', 'bar:bar_new']);
    while (last.exitCode !== 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 2000));
      last = await runMigrator(['verify', ...common.slice(0, 4), '--map', 'bar:bar_new']);
    }
    for (const p of Object.values(procs)) p!.kill("SIGTERM");
    const results = await Promise.all(Object.values(procs).map((p) => p!));
    const tail = (r: { stderr: unknown }) => stderrTail(r.stderr, 25);
    assert.equal(last.exitCode, 0, `seed ${seed}, ${kills} kills, ops ${JSON.stringify(ops)}:\n${last.stdout}\n--- capture ---\n${tail(results[0]!)}\n--- apply ---\n${tail(results[1]!)}`);
    for (const r of results) assert.equal(r.exitCode, 0, `clean stop on SIGTERM: ${String(r.stderr).slice(-1500)}`);
    assert.ok(Object.values(ops).every((n) => n > 0), `every operation ran: ${JSON.stringify(ops)}`);
  });
});
