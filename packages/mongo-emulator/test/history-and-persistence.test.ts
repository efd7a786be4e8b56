// Emulator-only: bounded change history (ChangeStreamHistoryLost), persistence across restarts
// and SIGKILL, and the standalone bin.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Decimal128, Int32, Long, MongoClient, MongoServerError, type Document, type ResumeToken } from 'mongodb';
import { startMongoEmulator } from '../src/index.js';
import { emulatorOnly, nextEvents, started, type AnyDoc } from './target.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mongo-emu-'));
  dirs.push(d);
  return d;
}
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const BIN = resolve(import.meta.dirname, '../src/bin.ts');

function spawnBin(args: string[]): { child: ChildProcess; ready: Promise<{ uri: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<{ uri: string }>((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolveReady(JSON.parse(line)));
    child.once('exit', (code) => reject(new Error(`bin exited early with ${code}`)));
  });
  return { child, ready };
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
}

describe('change history limit', { skip: emulatorOnly }, () => {
  test('resuming from a token or time older than the history fails with 286', async () => {
    const emu = await startMongoEmulator({ historyLimit: 5 });
    const client = new MongoClient(emu.uri);
    try {
      const coll = client.db('h').collection<AnyDoc>('c');
      const lagging = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
      const stream = await started(coll.watch([], { maxAwaitTimeMS: 100 }));
      const first = await client.db('h').command({ insert: 'c', documents: [{ _id: 0 }] });
      const [ev] = await nextEvents(stream, 1);
      for (let i = 1; i <= 10; i++) await coll.insertOne({ _id: i });
      const resumed = coll.watch([], { resumeAfter: ev._id as ResumeToken });
      await assert.rejects(resumed.tryNext(), (e: MongoServerError) => e.code === 286 && e.codeName === 'ChangeStreamHistoryLost');
      await resumed.close();
      const atTime = coll.watch([], { startAtOperationTime: first.operationTime });
      await assert.rejects(atTime.tryNext(), (e: MongoServerError) => e.code === 286 && /no longer be in the oplog/.test(e.message));
      await atTime.close();
      await assert.rejects(lagging.tryNext(), (e: MongoServerError) => e.code === 286);
      await lagging.close();
      await stream.close();
    } finally {
      await client.close();
      await emu.stop();
    }
  });
});

describe('persistence', { skip: emulatorOnly }, () => {
  test('data, indexes and change history survive stop + restart', async () => {
    const dbpath = tempDir();
    const docs = [
      { _id: 1, i: new Int32(1), l: Long.fromString('12345678901234'), d: Decimal128.fromString('1.10'), when: new Date(0), nested: { z: 1, a: [1, 'x'] } },
      { _id: 2, email: 'a@x' },
    ];
    let emu = await startMongoEmulator({ dbpath });
    let client = new MongoClient(emu.uri);
    const coll = () => client.db('p').collection<AnyDoc>('c');
    const stream = await started(coll().watch([], { maxAwaitTimeMS: 100 }));
    await coll().createIndex({ email: 1 }, { unique: true, sparse: true });
    await coll().insertMany(docs);
    await coll().updateOne({ _id: 1 }, { $set: { updated: true } });
    const before = await nextEvents(stream, 3);
    await stream.close();
    await client.close();
    await emu.stop();

    emu = await startMongoEmulator({ dbpath });
    client = new MongoClient(emu.uri);
    try {
      const raw = await coll().find({}, { promoteValues: false, promoteLongs: false }).toArray();
      assert.equal(raw.length, 2);
      assert.ok(raw[0].i instanceof Int32);
      assert.deepEqual(await coll().findOne({ _id: 1 }, { projection: { updated: 1 } }), { _id: 1, updated: true });
      assert.deepEqual((await coll().listIndexes().toArray()).map((i) => i.name), ['_id_', 'email_1']);
      await assert.rejects(coll().insertOne({ _id: 3, email: 'a@x' }), (e: MongoServerError) => e.code === 11000);
      const resumed = coll().watch([], { resumeAfter: before[0]._id as ResumeToken, maxAwaitTimeMS: 100 });
      const again = await nextEvents(resumed, 2);
      assert.deepEqual(again.map((e) => (e._id as Document)._data), before.slice(1).map((e) => (e._id as Document)._data));
      await coll().insertOne({ _id: 4 });
      const [fresh] = await nextEvents(resumed, 1);
      assert.ok((fresh._id as Document)._data > (before[2]._id as Document)._data);
      await resumed.close();
    } finally {
      await client.close();
      await emu.stop();
    }
  });

  test('bin: prints its URI, acknowledged writes survive SIGKILL, exits cleanly on SIGTERM', async () => {
    const dbpath = tempDir();
    const first = spawnBin(['--port', '0', '--dbpath', dbpath, '--history-limit', '1000']);
    const { uri } = await first.ready;
    assert.match(uri, /^mongodb:\/\/127\.0\.0\.1:\d+\/\?replicaSet=rs0$/);
    let client = new MongoClient(uri);
    await client.db('k').collection<AnyDoc>('c').insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i })));
    await client.close();
    const killed = exited(first.child);
    first.child.kill('SIGKILL');
    assert.equal((await killed).signal, 'SIGKILL');

    const second = spawnBin(['--port', '0', '--dbpath', dbpath]);
    client = new MongoClient((await second.ready).uri);
    assert.equal(await client.db('k').collection<AnyDoc>('c').countDocuments(), 500);
    await client.close();
    const stopped = exited(second.child);
    second.child.kill('SIGTERM');
    assert.equal((await stopped).code, 0);
  });
});
