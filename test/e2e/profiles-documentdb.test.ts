// End to end on Amazon DocumentDB profiles (packages/mongo-emulator/src/documentdb.ts): a full
// migration with writes during the copy and after, kill -9 of full-migrate while replicating, a
// rerun, a cutover with --writes-stopped (DocumentDB cannot block writes) and verify — for
// documentdb-5.0 → documentdb-5.0, mongodb-6.0 → documentdb-5.0 and documentdb-4.0 → mongodb-8.0.
// The migrator is run as the README tells a DocumentDB user to: --no-*-retry-writes for every
// DocumentDB endpoint, --enable-change-streams for a DocumentDB source.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator, type ProfileName } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';
import { waitForPhase } from '../support/phases.js';
import { spawnMigrator, cutoverAndWait } from '../support/full-migrate-process.js';

type AnyDoc = Document & { _id: number | string };
const isDocDB = (p: ProfileName) => p.startsWith('documentdb');

const PAIRS: [ProfileName, ProfileName][] = [
  ['documentdb-5.0', 'documentdb-5.0'],
  ['mongodb-6.0', 'documentdb-5.0'],
  ['documentdb-4.0', 'mongodb-8.0'],
];

describe('full migration on DocumentDB profiles', () => {
  let kinesis: KinesisLocal;
  before(async () => {
    await ensureGoTools();
    kinesis = await startKinesisLocal();
  });
  after(async () => kinesis.stop());

  for (const [sourceProfile, targetProfile] of PAIRS) {
    test(`${sourceProfile} → ${targetProfile}: writes during and after the copy, kill -9 while replicating, rerun, cutover --writes-stopped, verify`, { timeout: 180_000 }, async (t) => {
      const t0 = Date.now();
      const mark = (what: string) => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const id = `docdb-${sourceProfile}-${targetProfile}`.replace(/\./g, '');
      let source: MongoEmulator | undefined;
      let target: MongoEmulator | undefined;
      let src: MongoClient | undefined;
      let dst: MongoClient | undefined;
      try {
        [source, target] = await Promise.all([startMongoEmulator({ profile: sourceProfile }), startMongoEmulator({ profile: targetProfile })]);
        // Test clients follow AWS's rule too: retryWrites=false against DocumentDB.
        src = new MongoClient(source.uri, { retryWrites: !isDocDB(sourceProfile) });
        dst = new MongoClient(target.uri, { retryWrites: !isDocDB(targetProfile) });
        const store = await StateStore.open({ client: dst });
        const items = src.db('shop').collection<AnyDoc>('items');
        for (let b = 0; b < 3; b++) {
          await items.insertMany(Array.from({ length: 1000 }, (_, i) => ({ _id: b * 1000 + i, v: 0, pad: 'x'.repeat(200) })));
        }
        await src.db('shop').collection<AnyDoc>('tags').insertMany([{ _id: 'a' }, { _id: 'b' }]);
        const stream = kinesis.uniqueStreamName('docdb');
        await kinesis.createStream(stream, 2);
        const connArgs = [
          '--source-uri', source.uri, '--target-uri', target.uri,
          ...(isDocDB(sourceProfile) ? ['--no-source-retry-writes'] : []),
          ...(isDocDB(targetProfile) ? ['--no-target-retry-writes'] : []),
          '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', id,
        ];
        const args = [
          ...connArgs, '--include', 'shop.*', '--lease-ttl', '3s',
          ...(isDocDB(sourceProfile) ? ['--enable-change-streams'] : []),
          '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
          '--data-dir', `/tmp/migrator-docdb-${process.pid}-${id}`, '--log-format', 'json',
        ];
        const start = () => spawnMigrator(['full-migrate', ...args]);

        // Writes all along: updates, inserts, deletes.
        let writing = true;
        let n = 0;
        const workload = (async () => {
          while (writing) {
            await items.updateOne({ _id: n % 3000 }, { $inc: { v: 1 } });
            await items.insertOne({ _id: `new-${n}`, at: new Date() });
            if (n % 3 === 0) await items.deleteOne({ _id: 2999 - (n % 1000) });
            n++;
            await new Promise((r) => setTimeout(r, 5));
          }
        })();

        mark('seeded');
        const first = start();
        await waitForPhase(store, id, ['CATCHING_UP', 'READY_FOR_CUTOVER'], { proc: first });
        mark('replicating');
        const writesAtKill = n;
        await new Promise((r) => setTimeout(r, 1500));
        first.kill('SIGKILL');
        await first;
        assert.ok(n > writesAtKill, 'writes went on while replicating');

        mark('killed');
        const second = start();
        await waitForPhase(store, id, ['READY_FOR_CUTOVER'], { proc: second });
        mark('ready again');
        await new Promise((r) => setTimeout(r, 1000));
        writing = false;
        await workload;
        await cutoverAndWait(connArgs, { timeout: '120s' });
        mark('cut over');
        const done = await second;
        assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
        const verify = await runMigrator(['verify', ...connArgs.slice(0, connArgs.indexOf('--kinesis-stream')), '--include', 'shop.*']);
        assert.equal(verify.exitCode, 0, verify.all);
        mark('verified');
        assert.equal(await dst.db('shop').collection('items').countDocuments(), await items.countDocuments());
        assert.ok(n > 20, `workload ran (${n} rounds)`);
      } finally {
        await Promise.all([src?.close(), dst?.close()]);
        await Promise.all([source?.stop(), target?.stop()]);
      }
    });
  }
});
