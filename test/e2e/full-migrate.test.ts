import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';

type AnyDoc = Document & { _id: number | string };
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { startFerretDB } from '../support/ferretdb.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { StateStore, type MigrationPhase } from '../../src/state/store.js';
import { startWorkload } from '../support/workload.js';
import { spawnMigrator, stderrTail, cutoverAndWait } from '../support/full-migrate-process.js';
import { waitForPhase } from '../support/phases.js';


interface Target {
  uri: string;
  stop(): Promise<void>;
}

for (const kind of ['emulator', 'ferretdb'] as const) {
  describe(`full-migrate end to end (target: ${kind})`, () => {
    let source: MongoEmulator;
    let target: Target;
    let kinesis: KinesisLocal;
    let src: MongoClient;
    let dst: MongoClient;
    let store: StateStore;

    before(async () => {
      await ensureGoTools();
      [source, kinesis] = await Promise.all([startMongoEmulator(), startKinesisLocal()]);
      target = kind === 'emulator' ? await startMongoEmulator() : await startFerretDB();
      src = new MongoClient(source.uri);
      dst = new MongoClient(target.uri);
      store = await StateStore.open({ client: dst });
    });
    after(async () => {
      await Promise.all([src.close(), dst.close()]);
      await Promise.all([source.stop(), target.stop(), kinesis.stop()]);
    });

    test('writes during and after the copy, cutover --wait, verify equal', { timeout: 240_000 }, async () => {
      const products = Array.from({ length: 2000 }, (_, i) => ({ _id: i, name: `product ${i}`, price: i % 100, legacy: true, reviews: [] }));
      await src.db('bar').collection<AnyDoc>('products').insertMany(products);
      await src.db('bar').collection('products').createIndex({ name: 1 }, { unique: true });
      await src.db('bar').collection<AnyDoc>('orders').insertOne({ _id: 'o-seed', total: 1 });
      const stream = kinesis.uniqueStreamName('e2e');
      await kinesis.createStream(stream, 2);
      const common = [
        '--source-uri', source.uri, '--target-uri', target.uri, '--map', 'bar:bar_new',
        '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', `e2e-${kind}`,
      ];
      const env = { MIGRATOR_MONGODUMP_PATH: goToolPath('mongodump'), MIGRATOR_MONGORESTORE_PATH: goToolPath('mongorestore'), CI: 'true', MIGRATOR_DATA_DIR: `/tmp/migrator-e2e-${kind}-${process.pid}` };
      // FerretDB (SQLite) writes are ~20 ms each: a smaller workload keeps the test within minutes.
      const workload = startWorkload(src, { maxIterations: kind === 'ferretdb' ? 150 : 5000 });
      const proc = spawnMigrator(['full-migrate', ...common, '--lease-ttl', '5s', '--log-format', 'json', '--verbose'], { env });
      const phase = async (phases: MigrationPhase[], ms: number) => {
        try {
          await waitForPhase(store, `e2e-${kind}`, phases, { proc, timeoutMs: ms, pollMs: 200 });
        } catch (err) {
          proc.kill('SIGKILL');
          const r = await proc;
          throw new Error(`${(err as Error).message}\n--- full-migrate stderr (tail) ---\n${stderrTail(r.stderr)}`, { cause: err });
        }
      };
      await phase(['CATCHING_UP', 'READY_FOR_CUTOVER'], 120_000);
      await new Promise((r) => setTimeout(r, 1500)); // writes after the copy too
      const { ops } = await workload.stop();
      assert.ok(ops > 0);
      await phase(['READY_FOR_CUTOVER'], 120_000);

      await cutoverAndWait(common, { env });
      const result = await proc;
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-3000));
      assert.match(String(result.stdout), /COMPLETED/);

      const verify = await runMigrator(['verify', ...common], { env });
      assert.equal(verify.exitCode, 0, verify.all);
      const n = await dst.db('bar_new').collection('products').countDocuments();
      assert.equal(n, await src.db('bar').collection('products').countDocuments());
      assert.ok((await store.getMigration(`e2e-${kind}`))?.phase === 'COMPLETED');
    });
  });
}
