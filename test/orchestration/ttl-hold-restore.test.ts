// Holding the target's TTL indexes during the sync and restoring them at the cutover
// (src/orchestration/ttl.ts), the cutover verification's TTL proof (src/verify/ttl-lapse.ts) and
// status's ttlHeld, on emulators with a real state store.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { StateStore } from '../../src/state/store.js';
import { holdTargetTtl, restoreHeldTtl } from '../../src/orchestration/ttl.js';
import { HELD_EXPIRE_AFTER_SECONDS } from '../../src/db/ttl-hold.js';
import { verifyMigration } from '../../src/verify/verify-migration.js';
import { buildStatusReport, formatStatusReport } from '../../src/orchestration/status-report.js';
import { createLogger } from '../../src/util/logger.js';

const log = createLogger({ format: 'json', verbose: false, out: { write: () => true } as unknown as NodeJS.WritableStream });
const sel = {
  includes: (ns: { db: string }) => ns.db === 'app',
  target: (ns: { db: string; coll: string }) => ns,
  sourceOf: (ns: { db: string; coll: string }) => ns,
};

let source: MongoEmulator;
let target: MongoEmulator;
let src: MongoClient;
let dst: MongoClient;
let store: StateStore;

before(async () => {
  [source, target] = await Promise.all([startMongoEmulator(), startMongoEmulator()]);
  [src, dst] = await Promise.all([MongoClient.connect(source.uri), MongoClient.connect(target.uri)]);
  store = await StateStore.open({ client: dst });
});
after(async () => {
  await Promise.all([src.close(), dst.close()]);
  await Promise.all([source.stop(), target.stop()]);
});

const ttlOf = async (coll: string, name: string) =>
  (await dst.db('app').collection(coll).listIndexes().toArray()).find((s) => s.name === name)?.expireAfterSeconds as unknown;

describe('hold and restore', () => {
  test('hold records the original first and is idempotent; restore puts it back once; a re-hold after a restore holds again', async () => {
    const s = dst.db('app').collection('sessions');
    await s.createIndex({ at: 1 }, { expireAfterSeconds: 3600, name: 'at_ttl' });
    await s.createIndex({ user: 1 }, { name: 'user_1' });
    const targets = [{ db: 'app', coll: 'sessions' }, { db: 'app', coll: 'absent' }];

    const first = await holdTargetTtl({ target: dst, store, migrationId: 'm1', targets, log });
    assert.deepEqual(first, { held: [{ ns: 'app.sessions', name: 'at_ttl', originalExpireAfterSeconds: 3600 }], failed: [] });
    assert.equal(await ttlOf('sessions', 'at_ttl'), HELD_EXPIRE_AFTER_SECONDS);
    // A rerun (crash after the hold) must not record the held value as the original.
    assert.deepEqual(await holdTargetTtl({ target: dst, store, migrationId: 'm1', targets, log }), { held: [], failed: [] });
    const holds = await store.listTtlHolds('m1');
    assert.deepEqual(holds.map((h) => [h._id, h.originalExpireAfterSeconds, h.keyPattern, h.restoredAt]), [['m1/app.sessions/at_ttl', 3600, { at: 1 }, undefined]]);

    const restored = await restoreHeldTtl({ target: dst, store, migrationId: 'm1', log });
    assert.deepEqual(restored, { restored: [{ ns: 'app.sessions', name: 'at_ttl', expireAfterSeconds: 3600 }], skipped: [] });
    assert.equal(await ttlOf('sessions', 'at_ttl'), 3600);
    assert.ok((await store.listTtlHolds('m1'))[0]!.restoredAt instanceof Date);
    // Rerun of the restore (crash after it): nothing left to do.
    assert.deepEqual(await restoreHeldTtl({ target: dst, store, migrationId: 'm1', log }), { restored: [], skipped: [] });

    // The cutover did not complete after the restore (crash, then the sync resumed): held again.
    await holdTargetTtl({ target: dst, store, migrationId: 'm1', targets, log });
    assert.equal(await ttlOf('sessions', 'at_ttl'), HELD_EXPIRE_AFTER_SECONDS);
    assert.equal((await store.listTtlHolds('m1'))[0]!.restoredAt, undefined);
    await restoreHeldTtl({ target: dst, store, migrationId: 'm1', log });
    assert.equal(await ttlOf('sessions', 'at_ttl'), 3600);
  });

  test('a crash between recording and the collMod leaves the index as it was; restore changes nothing and says why', async () => {
    const c = dst.db('app').collection('crash');
    await c.createIndex({ at: 1 }, { expireAfterSeconds: 60, name: 'at_ttl' });
    await store.recordTtlHold('m2', { db: 'app', coll: 'crash', name: 'at_ttl', keyPattern: { at: 1 }, originalExpireAfterSeconds: 60 });
    await store.recordTtlHold('m2', { db: 'app', coll: 'gone', name: 'x_ttl', keyPattern: { x: 1 }, originalExpireAfterSeconds: 5 });
    const r = await restoreHeldTtl({ target: dst, store, migrationId: 'm2', log });
    assert.deepEqual(r.restored, []);
    assert.deepEqual(r.skipped, [
      { ns: 'app.crash', name: 'at_ttl', note: 'expireAfterSeconds is 60 on the target, not the held value: left as it is' },
      { ns: 'app.gone', name: 'x_ttl', note: 'the index is no longer on the target' },
    ]);
    assert.equal(await ttlOf('crash', 'at_ttl'), 60);
  });
});

describe('a target that refuses the collMod', () => {
  test('the hold is a WARN, not a failure; the record stays and the restore leaves the index as it is', async () => {
    const c = dst.db('app').collection('refused');
    await c.createIndex({ at: 1 }, { expireAfterSeconds: 30, name: 'at_ttl' });
    // failCommand (https://github.com/mongodb/mongo/wiki/The-%22failCommand%22-fail-point): collMod fails once, as CommandNotFound.
    await dst.db('admin').command({ configureFailPoint: 'failCommand', mode: { times: 1 }, data: { failCommands: ['collMod'], errorCode: 59 } });
    const lines: string[] = [];
    const warnLog = createLogger({ format: 'json', verbose: false, out: { write: (l: string) => lines.push(l) > 0 } as unknown as NodeJS.WritableStream });
    const r = await holdTargetTtl({ target: dst, store, migrationId: 'm3', targets: [{ db: 'app', coll: 'refused' }], log: warnLog });
    assert.deepEqual(r.held, []);
    assert.deepEqual(r.failed.map((f) => [f.ns, f.name]), [['app.refused', 'at_ttl']]);
    assert.ok(lines.some((l) => /could not hold the TTL index on the target/.test(l) && /"level":40/.test(l)), lines.join(''));
    assert.equal(await ttlOf('refused', 'at_ttl'), 30);
    const restored = await restoreHeldTtl({ target: dst, store, migrationId: 'm3', log });
    assert.deepEqual(restored.restored, []);
    assert.equal(await ttlOf('refused', 'at_ttl'), 30);
  });
});

describe('status', () => {
  test('ttlHeld lists the holds not restored; the text says so, with the restore commands once FAILED', async () => {
    const now = new Date('2026-12-05T12:00:00Z');
    const base = { _id: 'm', phase: 'CATCHING_UP' as const, createdAt: now, updatedAt: now, phaseChangedAt: now };
    const ttlHolds = [
      { _id: 'm/app.s/at_ttl', migrationId: 'm', db: 'app', coll: 's', name: 'at_ttl', keyPattern: { at: 1 }, originalExpireAfterSeconds: 60, recordedAt: now, updatedAt: now },
      { _id: 'm/app.t/x', migrationId: 'm', db: 'app', coll: 't', name: 'x', keyPattern: { x: 1 }, originalExpireAfterSeconds: 5, recordedAt: now, updatedAt: now, restoredAt: now },
    ];
    const r = buildStatusReport({ migration: base, capture: null, shards: [], cutover: null, ttlHolds }, now);
    assert.deepEqual(r.ttlHeld, [{ target: 'app.s', name: 'at_ttl', originalExpireAfterSeconds: 60, heldSince: now.toISOString() }]);
    const text = formatStatusReport(r);
    assert.match(text, /TTL held on the target: 1 index\(es\) do not expire documents until the cutover restores them \(expireAfterSeconds 2147483647\):\n {2}app\.s at_ttl: original expireAfterSeconds 60/);
    assert.doesNotMatch(text, /runCommand/);
    const failed = formatStatusReport(buildStatusReport({ migration: { ...base, phase: 'FAILED' }, capture: null, shards: [], cutover: null, ttlHolds }, now));
    assert.match(failed, /to abandon the migration, restore them on the target:\n {4}db\.getSiblingDB\("app"\)\.runCommand\(\{"collMod":"s","index":\{"name":"at_ttl","expireAfterSeconds":60\}\}\)/);
    assert.deepEqual(buildStatusReport({ migration: base, capture: null, shards: [], cutover: null }, now).ttlHeld, []);
  });
});

describe('cutover verification: documents the source TTL expired after the barrier', () => {
  test('counted as ttlExpired only when lapsed by the source index and clock; otherwise missing/extra', async () => {
    const hour = 3600_000;
    const old = new Date(Date.now() - 2 * hour); // lapsed under expireAfterSeconds 3600
    const fresh = new Date(Date.now() + hour); // not lapsed
    // Source: its TTL index (3600 s) and monitor (the default 60 s: never runs during this test)
    // already "removed" 1 (lapsed) and 2 (not lapsed: no TTL can explain it); 3 is lapsed and still
    // on the source while the target lacks it; 4 is equal on both sides.
    await src.db('app').collection('lapse').createIndex({ at: 1 }, { expireAfterSeconds: 3600, name: 'at_ttl' });
    await src.db('app').collection<{ _id: number; at: Date }>('lapse').insertMany([{ _id: 3, at: old }, { _id: 4, at: fresh }]);
    await dst.db('app').collection('lapse').createIndex({ at: 1 }, { expireAfterSeconds: HELD_EXPIRE_AFTER_SECONDS, name: 'at_ttl' });
    await dst.db('app').collection<{ _id: number; at: Date }>('lapse').insertMany([{ _id: 1, at: old }, { _id: 2, at: fresh }, { _id: 4, at: fresh }]);
    const holds = [{ db: 'app', coll: 'lapse', name: 'at_ttl', originalExpireAfterSeconds: 3600 }];
    const only = (r: Awaited<ReturnType<typeof verifyMigration>>) => r.namespaces.find((n) => n.source === 'app.lapse')!;

    const atCutover = only(await verifyMigration(src, dst, sel, { skipDbs: new Set(['migrator_state']), ttlHolds: holds, ttlExpiredAfterBarrier: true }));
    assert.deepEqual(
      [atCutover.ttlExpiredCount, atCutover.ttlExpired.map(Number), atCutover.extraCount, atCutover.extra.map(Number), atCutover.missingCount, atCutover.match],
      [2, [1, 3], 1, [2], 0, false],
    );
    // Standalone verify (no barrier to vouch for the first condition) proves nothing.
    const standalone = await verifyMigration(src, dst, sel, { skipDbs: new Set(['migrator_state']), ttlHolds: holds });
    const n = only(standalone);
    assert.deepEqual([n.ttlExpiredCount, n.extra.map(Number), n.missing.map(Number)], [0, [1, 2], [3]]);
    // The held index compares as its recorded original: no schema difference for it…
    assert.deepEqual(standalone.schema.differences.filter((d) => d.source === 'app.lapse'), []);
    // …and without the record it is a difference.
    const unrecorded = await verifyMigration(src, dst, sel, { skipDbs: new Set(['migrator_state']) });
    assert.match(unrecorded.schema.differences.find((d) => d.source === 'app.lapse')!.detail, /expireAfterSeconds: source 3600, target 2147483647/);

    // Once the extra non-lapsed document is gone, the cutover verification matches.
    await dst.db('app').collection<{ _id: number }>('lapse').deleteOne({ _id: 2 });
    assert.equal(only(await verifyMigration(src, dst, sel, { skipDbs: new Set(['migrator_state']), ttlHolds: holds, ttlExpiredAfterBarrier: true })).match, true);
  });
});
