// Issue #11, defect 11: FerretDB v1 cannot store Decimal128; its mongorestore fails mid-archive
// and exits while mongodump still has data to write. full-migrate must end with TOOL_FAILED naming
// the collection, promptly, and never count that collection as loaded (it used to wait forever
// in INITIAL_LOAD after logging "collection loaded documents=0").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Decimal128, MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startFerretDB, type FerretDB } from '../support/ferretdb.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';
import { ExitCode } from '../../src/util/exit-codes.js';

type AnyDoc = Document & { _id: number };

describe('full-migrate into a FerretDB target that cannot store the data', () => {
  let source: MongoEmulator;
  let ferret: FerretDB;
  let src: MongoClient;
  let dst: MongoClient;

  before(async () => {
    await ensureGoTools();
    [source, ferret] = await Promise.all([startMongoEmulator(), startFerretDB()]);
    src = new MongoClient(source.uri);
    dst = new MongoClient(ferret.uri);
  });
  after(async () => {
    await Promise.all([src.close(), dst.close()]);
    await Promise.all([source.stop(), ferret.stop()]);
  });

  test('Decimal128 documents: exit TOOL_FAILED naming bar.prices, the collection not counted as loaded', { timeout: 180_000 }, async () => {
    // Enough data that mongodump is still writing when mongorestore gives up (the pipe fills).
    const filler = 'x'.repeat(500);
    await src.db('bar').collection<AnyDoc>('plain').insertMany(Array.from({ length: 20_000 }, (_, i) => ({ _id: i, filler })));
    await src.db('bar').collection<AnyDoc>('prices').insertMany(
      Array.from({ length: 20_000 }, (_, i) => ({ _id: i, price: Decimal128.fromString(`${i}.25`), filler })),
    );
    const id = 'ferret-refused';
    const r = await runMigrator(
      ['full-migrate', '--source-uri', source.uri, '--target-uri', ferret.uri, '--include', 'bar.*', '--migration-id', id],
      {
        env: {
          MIGRATOR_MONGODUMP_PATH: goToolPath('mongodump'),
          MIGRATOR_MONGORESTORE_PATH: goToolPath('mongorestore'),
          MIGRATOR_DATA_DIR: `/tmp/migrator-ferret-refused-${process.pid}`,
        },
        // Generous for a loaded machine: the old code never exited at all.
        timeoutMs: 150_000,
      },
    );
    assert.equal(r.exitCode, ExitCode.TOOL_FAILED, r.all.slice(-3000));
    assert.match(r.stderr, /mongorestore failed on bar\.prices/);
    assert.match(r.stderr, /socket was unexpectedly closed|error restoring/, 'the tool\'s stderr tail is shown');

    const store = await StateStore.open({ client: dst });
    const m = await store.getMigration(id);
    assert.equal(m?.phase, 'FAILED');
    assert.equal(m?.lastError?.exitCode, ExitCode.TOOL_FAILED);
    const loaded = Object.values(m?.load?.collections ?? {}).filter((c) => c.done);
    assert.deepEqual(loaded, [], 'no collection of the failed pipe counts as loaded');
    assert.doesNotMatch(r.stderr, /collection loaded/);
  });
});
