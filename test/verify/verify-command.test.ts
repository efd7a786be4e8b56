import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Decimal128, Double, Int32, Long, MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../support/mongo-emulator/index.js';
import { runMigrator } from '../support/cli.js';
import { ExitCode } from '../../src/util/exit-codes.js';

type AnyDoc = { _id: number | string; [k: string]: unknown };

describe('migrator verify', () => {
  let a: MongoEmulator;
  let b: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  before(async () => {
    [a, b] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
    src = new MongoClient(a.uri);
    dst = new MongoClient(b.uri);
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([a.stop(), b.stop()]);
  });

  test('equal data (with a database map) verifies; a type change, a missing and an extra document do not', async () => {
    const docs = Array.from({ length: 300 }, (_, i) => ({ _id: i, v: new Int32(i), l: Long.fromNumber(i), d: new Decimal128(String(i)) }));
    await src.db('bar').collection<AnyDoc>('products').insertMany(docs);
    await dst.db('bar_new').collection<AnyDoc>('products').insertMany(docs);
    await src.db('bar').collection<AnyDoc>('skipped').insertOne({ _id: 1 });
    const args = ['verify', '--source-uri', a.uri, '--target-uri', b.uri, '--map', 'bar:bar_new', '--exclude', 'bar.skipped'];
    const ok = await runMigrator(args);
    assert.equal(ok.exitCode, 0, ok.all);
    assert.match(ok.stdout, /verified: 1 collections match/);

    await dst.db('bar_new').collection<AnyDoc>('products').updateOne({ _id: 5 }, { $set: { v: new Double(5) } }); // Int32 → Double
    await dst.db('bar_new').collection<AnyDoc>('products').deleteOne({ _id: 7 });
    await dst.db('bar_new').collection<AnyDoc>('products').insertOne({ _id: 1000 });
    const text = await runMigrator(args);
    assert.match(text.stdout, /missing on target: 1 \(first: 7\)/);
    assert.match(text.stdout, /different: 1 \(first: 5\)/);
    const bad = await runMigrator([...args, '--json']);
    assert.equal(bad.exitCode, ExitCode.VERIFICATION_MISMATCH, bad.all);
    const report = JSON.parse(bad.stdout) as { match: boolean; namespaces: { missing: number[]; extra: number[]; different: number[] }[] };
    assert.equal(report.match, false);
    assert.deepEqual(report.namespaces[0]!.missing, [7]);
    assert.deepEqual(report.namespaces[0]!.extra, [1000]);
    assert.deepEqual(report.namespaces[0]!.different, [5]);
  });
});
