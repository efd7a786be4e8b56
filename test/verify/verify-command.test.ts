import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Decimal128, Double, Int32, Long, MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
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

  test('a unique index missing on the target is a mismatch (exit 7) unless ignored; options and views are compared too', async () => {
    const docs = Array.from({ length: 20 }, (_, i) => ({ _id: i, email: `u${i}@example.com` }));
    await src.db('shop').collection<AnyDoc>('users').insertMany(docs);
    await dst.db('shop').collection<AnyDoc>('users').insertMany(docs);
    const args = ['verify', '--source-uri', a.uri, '--target-uri', b.uri, '--include', 'shop.*'];
    assert.equal((await runMigrator(args)).exitCode, 0);

    await src.db('shop').collection('users').createIndex({ email: 1 }, { unique: true, name: 'email_1' });
    const text = await runMigrator(args);
    assert.equal(text.exitCode, ExitCode.VERIFICATION_MISMATCH, text.all);
    assert.match(text.stdout, /ok +shop\.users → shop\.users {2}source 20, target 20/); // the documents are equal
    assert.match(text.stdout, /MISMATCH indexes shop\.users → shop\.users: index email_1 .*"unique":true.* is missing on the target/);
    assert.match(text.stdout, /verification FAILED: source and target differ \(schema\)/);

    const json = await runMigrator([...args, '--json']);
    assert.equal(json.exitCode, ExitCode.VERIFICATION_MISMATCH, json.all);
    const report = JSON.parse(json.stdout) as {
      match: boolean; documentsMatch: boolean; namespaces: { match: boolean }[];
      schema: { match: boolean; ignored: string[]; differences: { kind: string; source: string; target: string; name: string; difference: string; sourceSpec: { unique?: boolean }; ignored: boolean }[] };
    };
    assert.equal(report.match, false);
    assert.equal(report.documentsMatch, true);
    assert.equal(report.namespaces[0]!.match, true);
    assert.deepEqual(
      report.schema.differences.map((d) => [d.kind, d.source, d.target, d.name, d.difference, d.sourceSpec.unique, d.ignored]),
      [['indexes', 'shop.users', 'shop.users', 'email_1', 'missing', true, false]],
    );

    // Knowingly excluded: listed, exit 0.
    const ignored = await runMigrator([...args, '--ignore-schema', 'indexes']);
    assert.equal(ignored.exitCode, 0, ignored.all);
    assert.match(ignored.stdout, /schema: 0 difference\(s\), 1 ignored \(--ignore-schema indexes\)/);
    assert.match(ignored.stdout, /ignored +indexes shop\.users/);

    // The same index on the target: equal again. A view and a collation only on the source are not.
    await dst.db('shop').collection('users').createIndex({ email: 1 }, { unique: true, name: 'email_1' });
    assert.equal((await runMigrator(args)).exitCode, 0);
    await src.db('shop').createCollection('names', { collation: { locale: 'fr', strength: 2 } });
    await dst.db('shop').createCollection('names');
    await src.db('shop').createCollection('active', { viewOn: 'users', pipeline: [{ $match: { email: { $exists: true } } }] });
    const more = await runMigrator([...args, '--json']);
    assert.equal(more.exitCode, ExitCode.VERIFICATION_MISMATCH, more.all);
    const r2 = JSON.parse(more.stdout) as typeof report;
    assert.deepEqual(
      r2.schema.differences.map((d) => [d.kind, d.target, d.name, d.difference]).sort(),
      [['options', 'shop.names', 'collation', 'missing'], ['views', 'shop.active', 'active', 'missing']],
    );
    const both = await runMigrator([...args, '--ignore-schema', 'options,views']);
    assert.equal(both.exitCode, 0, both.all);
    await dst.db('shop').createCollection('active', { viewOn: 'users', pipeline: [{ $match: { email: { $exists: true } } }] });
    assert.equal((await runMigrator([...args, '--ignore-schema', 'options'])).exitCode, 0);
    const bad = await runMigrator([...args, '--ignore-schema', 'nothing']);
    assert.equal(bad.exitCode, ExitCode.USAGE, bad.all);
  });
});
