import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Document } from 'mongodb';
import { useLocalStack } from '../support/local-stack.js';
import { goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';
import { readStreamEnvelopes } from '../support/stream-contents.js';
import { ExitCode } from '../../src/util/exit-codes.js';

type AnyDoc = Document & { _id: number | string };

describe('migrator initial-load', () => {
  const stack = useLocalStack(['mongodump', 'mongorestore']);

  test('copies the data, leaves the changes made meanwhile in the stream, and hands over at CATCHING_UP', { timeout: 120_000 }, async () => {
    const { source, target, kinesis, src, dst } = stack;
    await src.db('bar').collection<AnyDoc>('products').insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i, n: i })));
    await src.db('bar').collection('products').createIndex({ at: 1 }, { name: 'at_ttl', expireAfterSeconds: 3600 });
    const stream = kinesis.uniqueStreamName('il');
    await kinesis.createStream(stream, 1);
    const args = [
      'initial-load', '--source-uri', source.uri, '--target-uri', target.uri, '--map', 'bar:bar_new', '--migration-id', 'il',
      '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint,
      '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'), '--data-dir', `/tmp/migrator-il-${process.pid}`,
    ];
    let writing = true;
    let writes = 0;
    const workload = (async () => {
      while (writing) {
        await src.db('bar').collection<AnyDoc>('products').insertOne({ _id: `w${writes++}` });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const r = await runMigrator(args);
    writing = false;
    await workload;
    assert.equal(r.exitCode, 0, r.all);
    assert.match(r.stdout, /initial load of il done; the changes since the resume point are in the stream/);
    // The target's TTL index is held until a cutover; without full-migrate (capture + apply) there is
    // none, so the report gives the command that restores it.
    const ttlOnTarget = async () => (await dst.db('bar_new').collection('products').listIndexes().toArray()).find((x) => x.name === 'at_ttl')?.expireAfterSeconds as unknown;
    assert.equal(Number(await ttlOnTarget()), 2147483647);
    assert.match(r.stdout, /TTL HELD: 1 TTL index\(es\)/);
    const restore = r.stdout.split('\n').find((l) => l.includes('"collMod":"products"'));
    assert.ok(restore?.includes('db.getSiblingDB("bar_new")') && restore.includes('"expireAfterSeconds":3600'), r.stdout);
    await dst.db('bar_new').command({ collMod: 'products', index: { name: 'at_ttl', expireAfterSeconds: 3600 } });
    assert.equal(Number(await ttlOnTarget()), 3600);
    assert.ok((await dst.db('bar_new').collection('products').countDocuments()) >= 3000);
    const store = await StateStore.open({ client: dst });
    const m = await store.getMigration('il');
    assert.equal(m?.phase, 'CATCHING_UP');
    assert.ok(m?.load?.finishedAt, 'load finished recorded');
    assert.ok(await store.getCaptureCheckpoint('il'), 'capture checkpoint saved');
    // Indexes after data: the pipe restored none, the collection's own unit built its TTL index.
    const units = await store.listLoadUnits('il');
    assert.deepEqual(units.map((u) => [u.kind, u.noIndexRestore ?? null, u.state]), [['database', true, 'done'], ['indexes', null, 'done']]);
    const st = await runMigrator(['status', '--target-uri', target.uri, '--migration-id', 'il', '--json']);
    assert.equal(st.exitCode, 0, st.all);
    const load = (JSON.parse(st.stdout) as { load: { indexes: unknown; namespaces: { ns: string; indexes: unknown }[] } }).load;
    assert.deepEqual(load.indexes, { total: 1, built: 1, pending: 0, building: [] });
    assert.deepEqual(load.namespaces.find((n) => n.ns === 'bar.products')?.indexes, { total: 1, built: 1, pending: 0, building: null });
    const inStream = [...(await readStreamEnvelopes(kinesis.client, stream)).values()].flat();
    assert.ok(inStream.length > 0, 'changes made during the copy wait in the stream');
    // The workload's writes since the resume point are there without a gap (those before it are in the copy).
    const ids = new Set(inStream.map((e) => String(e.key?._id)));
    const ns = [...ids].filter((k) => /^w\d+$/.test(k)).map((k) => Number(k.slice(1)));
    const [from, upTo] = [Math.min(...ns), Math.max(...ns)];
    for (let i = from; i <= upTo; i++) assert.ok(ids.has(`w${i}`), `w${i} (of w${from}..w${upTo}) is in the stream`);

    const again = await runMigrator(args);
    assert.equal(again.exitCode, 0);
    assert.match(again.stdout, /past the initial load/);
  });

  test('needs a real stream: the embedded one would end with the process', async () => {
    const { source, target } = stack;
    const r = await runMigrator(['initial-load', '--source-uri', source.uri, '--target-uri', target.uri]);
    assert.equal(r.exitCode, ExitCode.USAGE, r.all);
    assert.match(r.stderr, /--kinesis-stream/);
  });
});
