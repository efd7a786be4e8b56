import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Document, MongoClient } from 'mongodb';
import { useLocalStack } from '../support/local-stack.js';
import { runMigrator } from '../support/cli.js';
import { waitForPhase } from '../support/phases.js';
import { StateStore } from '../../src/state/store.js';
import { HELD_EXPIRE_AFTER_SECONDS } from '../../src/db/ttl-hold.js';
import { sleep, waitUntil } from '../support/wait.js';
import { spawnMigrator, toolArgs, whileRunning, cutoverAndWait } from '../support/full-migrate-process.js';

const ID = 'ttl';

const ids = async (c: MongoClient) => (await c.db('app').collection<{ _id: number }>('sessions').find({}, { projection: { _id: 1 }, sort: { _id: 1 } }).toArray()).map((d) => d._id);
const ttlOf = async (c: MongoClient) => (await c.db('app').collection('sessions').listIndexes().toArray()).find((s) => s.name === 'at_ttl')?.expireAfterSeconds as unknown;

/**
 * A TTL collection whose documents expire all through the migration (issue 12, item 3). The source's
 * TTL monitor runs every 5 s, the target's every second (two servers' monitors are never in step): on
 * the old code the target deleted each document about a second after it lapsed while the source still
 * had it for up to 5 s, so the target lacked documents the source had, and the cutover's verification
 * failed whenever it met one. Now the target's TTL index is held during the sync (the source's TTL
 * deletes arrive as deletes), the cutover restores it, and documents the source expires after the
 * barrier are set aside only by proof.
 */
describe('TTL indexes during the migration', () => {
  const stack = useLocalStack(undefined, { source: { ttlMonitorSleepSecs: 5 }, target: { ttlMonitorSleepSecs: 1 } });

  test('the target does not expire documents during the sync; source TTL deletes arrive; cutover restores expireAfterSeconds and exits 0', { timeout: 300_000 }, async () => {
    const { source, target, kinesis, src, dst } = stack;
    const sessions = src.db('app').collection<{ _id: number; at?: Date; user: string }>('sessions');
    // 400 documents lapse one every 400 ms, from 20 s after now (expireAfterSeconds 1); 20 never do.
    const start = Date.now();
    const N = 400;
    await sessions.insertMany(Array.from({ length: N }, (_, i) => ({ _id: i, at: new Date(start + 19_000 + i * 400), user: `u${i}` })));
    await sessions.insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: 1000 + i, user: `keep${i}` })));
    await sessions.createIndex({ at: 1 }, { expireAfterSeconds: 1, name: 'at_ttl' });
    await src.db('app').collection<{ _id: number; name: string }>('users').insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i, name: `user ${i}` })));

    const stream = kinesis.uniqueStreamName('ttl');
    await kinesis.createStream(stream, 2);
    const common = ['--source-uri', source.uri, '--target-uri', target.uri, '--include', 'app.*', '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', ID];
    const proc = spawnMigrator(['full-migrate', ...common, '--lease-ttl', '5s', ...toolArgs(), '--data-dir', `/tmp/migrator-ttl-${process.pid}`, '--log-format', 'json']);
    const store = await StateStore.open({ client: dst });
    const done = await whileRunning(proc, async () => {
      await waitForPhase(store, ID, ['READY_FOR_CUTOVER'], { proc, timeoutMs: 150_000 });
      // During the sync the target's TTL index is held, its original recorded, and status says so.
      assert.equal(Number(await ttlOf(dst)), HELD_EXPIRE_AFTER_SECONDS);
      const holds = await store.listTtlHolds(ID);
      assert.deepEqual(holds.map((h) => [h.db, h.coll, h.name, h.originalExpireAfterSeconds, h.restoredAt]), [['app', 'sessions', 'at_ttl', 1, undefined]]);
      const status = await runMigrator(['status', '--target-uri', target.uri, '--migration-id', ID, '--json']);
      assert.equal(status.exitCode, 0, status.all);
      const ttlHeld = (JSON.parse(status.stdout) as { ttlHeld: Document[] }).ttlHeld;
      assert.deepEqual(ttlHeld.map((h) => [h.target, h.name, h.originalExpireAfterSeconds]), [['app.sessions', 'at_ttl', 1]]);
      const statusText = await runMigrator(['status', '--target-uri', target.uri, '--migration-id', ID]);
      assert.match(statusText.stdout, /TTL held on the target: 1 index\(es\)[^\n]*\n\s+app\.sessions at_ttl: original expireAfterSeconds 1/);
      // `migrator verify` during the sync compares the held index at its recorded original.
      const verifyDuring = await runMigrator(['verify', '--source-uri', source.uri, '--target-uri', target.uri, '--include', 'app.*', '--migration-id', ID, '--json']);
      const schemaDuring = (JSON.parse(verifyDuring.stdout) as { schema: { differences: Document[] } }).schema.differences;
      assert.deepEqual(schemaDuring, [], verifyDuring.all);

      // The source's TTL deletes arrive as deletes: the target (whose own TTL cannot delete anything
      // now) loses documents too.
      await waitUntil(async () => (await dst.db('app').collection('sessions').countDocuments()) <= N + 20 - 10, 120_000, 'the source TTL deletes to reach the target', 200);
      // And the target never expired a document the source still has. A document the target's TTL
      // could have taken before the hold (between mongorestore building the index and the collMod)
      // lapsed before READY, so the source (5 s monitor) has deleted it by now.
      await sleep(6_000);
      const onTarget = new Set(await ids(dst)); // target first: what the source has later, it had then
      const onSource = await ids(src);
      const lost = onSource.filter((id) => !onTarget.has(id));
      assert.deepEqual(lost, [], `the target lacks documents the source still has: ${lost.join(', ')}`);
      assert.ok(onSource.length < N + 20 && onSource.length > 20, `documents are still expiring during the cutover (${onSource.length} left)`);

      await cutoverAndWait(common, { timeout: '120s' });
    });
    assert.match(String(done.stderr), /TTL indexes on the target restored to their original expireAfterSeconds/);

    // After the cutover the target's TTL index is back at its original value and expires documents itself.
    assert.equal(Number(await ttlOf(dst)), 1);
    assert.ok((await store.listTtlHolds(ID)).every((h) => h.restoredAt instanceof Date));
    const after = await runMigrator(['status', '--target-uri', target.uri, '--migration-id', ID, '--json']);
    assert.deepEqual((JSON.parse(after.stdout) as { ttlHeld: unknown[] }).ttlHeld, []);
    // Both sides now expire by their own TTL (nothing is applied after the cutover): once the last
    // session lapsed and both monitors passed, each holds exactly the 20 that never expire. (Comparing
    // the two sides while sessions still lapse would depend on the monitors' phases.)
    const keep = JSON.stringify(Array.from({ length: 20 }, (_, i) => 1000 + i));
    const lastLapse = start + 19_000 + (N - 1) * 400 + 1_000;
    await waitUntil(
      async () => JSON.stringify(await ids(dst)) === keep && JSON.stringify(await ids(src)) === keep,
      Math.max(0, lastLapse - Date.now()) + 60_000,
      'every lapsed session to be expired by each side\'s own TTL',
      200,
    );
    const users = async (c: MongoClient) => c.db('app').collection('users').find({}, { sort: { _id: 1 } }).toArray();
    assert.deepEqual(await users(dst), await users(src));
  });
});
