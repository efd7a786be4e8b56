// Time-series collections (issue #12, item 4): change streams do not report their writes, so one
// in the selection stops preflight with a clear choice (exclude it, or --time-series=load-only);
// with load-only it is copied once by the initial load, verify reports it as load-only instead of
// failing, and the cutover completes while the log, the final report and `status` say it is not
// in sync.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Document } from 'mongodb';
import { useLocalStack } from '../support/local-stack.js';
import { goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore } from '../../src/state/store.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { spawnMigrator, cutoverAndWait } from '../support/full-migrate-process.js';


describe('time-series collections', () => {
  const stack = useLocalStack();

  test('preflight offers the choice; --time-series=load-only copies once and the cutover says it is not in sync', { timeout: 240_000 }, async () => {
    const { source, target, kinesis, src, dst } = stack;
    const shop = src.db('shop');
    await shop.collection('items').insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i, v: i }) as Document));
    await shop.createCollection('cpu', { timeseries: { timeField: 't', metaField: 'host', granularity: 'minutes' } });
    const t0 = Date.UTC(2026, 0, 1);
    await shop.collection('cpu').insertMany(Array.from({ length: 3 }, (_, i) => ({ t: new Date(t0 + i * 60_000), host: 'h1', load: i })));
    const stream = kinesis.uniqueStreamName('ts');
    await kinesis.createStream(stream, 1);
    const conn = ['--source-uri', source.uri, '--target-uri', target.uri];
    const common = [...conn, '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', 'ts'];
    const tools = ['--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'), '--data-dir', `/tmp/migrator-ts-${process.pid}`];

    // Without a choice: preflight stops before anything is copied, naming both options.
    const refused = await runMigrator(['full-migrate', ...common, ...tools, '--include', 'shop.*'], { timeoutMs: 90_000 });
    assert.equal(refused.exitCode, ExitCode.PREFLIGHT_FAILED, refused.all);
    assert.match(refused.stderr, /shop\.cpu: time-series collection: change streams do not report writes to time-series collections/);
    assert.match(refused.stderr, /--exclude 'shop\.cpu'/);
    assert.match(refused.stderr, /--time-series=load-only/);
    assert.equal(await dst.db('shop').collection('items').countDocuments(), 0);

    // load-only, chosen through the environment (MIGRATOR_TIME_SERIES), as a container would.
    const proc = spawnMigrator(['full-migrate', ...common, ...tools, '--include', 'shop.*', '--lease-ttl', '5s', '--log-format', 'json'], { env: { MIGRATOR_TIME_SERIES: 'load-only' } });
    const store = await StateStore.open({ client: dst });
    try {
      await waitForPhase(store, 'ts', ['READY_FOR_CUTOVER'], { proc, timeoutMs: 150_000 });
      // Written after the load: the item arrives, the measurement cannot (no change event).
      await shop.collection('items').insertOne({ _id: 100, v: 100 } as Document);
      await shop.collection('cpu').insertOne({ t: new Date(t0 + 10 * 60_000), host: 'h1', load: 9 });
      const status = await runMigrator(['status', ...common]);
      assert.equal(status.exitCode, 0, status.all);
      assert.match(status.stdout, /shop\.cpu: 3\/3 100% done \(load-only\)/);
      assert.match(status.stdout, /not in sync: shop\.cpu \(time series, copied once/);
      const cut = await cutoverAndWait(common);
      assert.match(cut.stdout, /completed[^\n]*\nNOT IN SYNC: shop\.cpu \(time series\) were copied once/);
    } catch (err) {
      proc.kill('SIGKILL');
      await proc;
      throw err;
    }
    const done = await proc;
    assert.equal(done.exitCode, 0, String(done.stderr).slice(-3000));
    assert.match(String(done.stdout), /COMPLETED[^\n]*\nNOT IN SYNC: shop\.cpu \(time series\) were copied once/);
    assert.match(String(done.stderr), /"msg":"cut over; NOT IN SYNC: shop\.cpu/);

    // The copy: the target collection is a time-series collection with the source's options and
    // the three measurements of the load; the item written later arrived through CDC.
    const [info] = await dst.db('shop').listCollections({ name: 'cpu' }).toArray();
    assert.equal((info as { type?: string }).type, 'timeseries');
    assert.deepEqual(
      { ...((info as { options?: Document }).options?.timeseries as Document), bucketMaxSpanSeconds: undefined },
      { timeField: 't', metaField: 'host', granularity: 'minutes', bucketMaxSpanSeconds: undefined },
    );
    const loads = (await dst.db('shop').collection('cpu').find({}, { sort: { t: 1 } }).toArray()).map((d) => d.load as number);
    assert.deepEqual(loads, [0, 1, 2]);
    assert.equal(await dst.db('shop').collection('items').countDocuments({ _id: 100 as never }), 1);

    const after = await runMigrator(['status', ...common]);
    assert.match(after.stdout, /COMPLETED/);
    assert.match(after.stdout, /not in sync: shop\.cpu/);

    // verify: with load-only it reports the collection instead of failing; without, it differs.
    const verify = await runMigrator(['verify', ...conn, '--include', 'shop.*', '--time-series', 'load-only']);
    assert.equal(verify.exitCode, 0, verify.all);
    assert.match(verify.stdout, /load-only shop\.cpu → shop\.cpu {2}source 4, target 3 \(time series: copied once, not kept in sync, not compared\)/);
    const strict = await runMigrator(['verify', ...conn, '--include', 'shop.*']);
    assert.equal(strict.exitCode, ExitCode.VERIFICATION_MISMATCH, strict.all);
  });
});
