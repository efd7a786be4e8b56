/**
 * The crash and fault suite: `full-migrate` on the local stack under a continuous write workload,
 * with an extra `apply` and an extra `capture` container beside it (apply shares the shards by
 * lease; one capture is active, the other stands by), while a seeded chaos loop SIGKILLs the
 * orchestrator (and with it its capture and apply) and the two containers at random moments, restarts the
 * source, fails source commands (network errors, resumable error codes), throttles Kinesis and fails
 * single PutRecords entries, and has the target refuse writes for a while. Then: cutover (with one
 * more kill in the middle of it), `migrator verify`, and an independent document-by-document
 * comparison: target equals source, nothing lost, nothing extra.
 *
 *   npm test                      bounded run (seed 20261125, >= 20 kills): part of CI
 *   npm run test:chaos            longer run with a fresh seed (CHAOS_PROFILE=long)
 *   CHAOS_SEED=123 npm run test:chaos   replays a seed (the choices; timings still vary)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EJSON } from 'bson';
import { MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { startKinesisFaultProxy, type KinesisFaultProxy } from '../support/kinesis-fault-proxy.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { runMigrator } from '../support/cli.js';
import { prng } from '../support/prng.js';
import { REPLICATING_PHASES, StateStore } from '../../src/state/store.js';
import { COLLECTIONS, seedSource, startChaosWorkload } from './chaos-workload.js';
import { Supervised } from './supervisor.js';
import { sleep } from '../support/wait.js';

const LONG = process.env.CHAOS_PROFILE === 'long';
const SEED = Number(process.env.CHAOS_SEED ?? (LONG ? Math.floor(Math.random() * 1e9) : 20261125));
const MIN_KILLS = Number(process.env.CHAOS_KILLS ?? (LONG ? 60 : 20));
const MIN_SECONDS = LONG ? 300 : 45;
/** The chaos phase must reach its kill count within this, or the system is not making progress. */
const MAX_SECONDS = LONG ? 1200 : 300;
const DOCS_PER_COLLECTION = LONG ? 5000 : 2500;
const ID = 'chaos';
const REPLICATING = REPLICATING_PHASES;


/** Documents of a collection as canonical EJSON (keys sorted), keyed by canonical _id. */
async function snapshot(client: MongoClient, ns: string): Promise<Map<string, string>> {
  const [db, coll] = ns.split('.') as [string, string];
  const sortKeys = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Document)[k])]));
    return v;
  };
  const out = new Map<string, string>();
  for (const d of await client.db(db).collection(coll).find({}).toArray()) {
    const canonical = EJSON.serialize(d, { relaxed: false });
    out.set(JSON.stringify(canonical._id), JSON.stringify(sortKeys(canonical)));
  }
  return out;
}

describe(`chaos: full-migrate under kills and faults (seed ${SEED})`, () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  let proxy: KinesisFaultProxy;
  let src: MongoClient;
  let dst: MongoClient;
  let store: StateStore;
  const dbpath = mkdtempSync(join(tmpdir(), 'migrator-chaos-src-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'migrator-chaos-data-'));

  before(async () => {
    console.log(`chaos seed ${SEED} (replay: CHAOS_SEED=${SEED}${LONG ? ' CHAOS_PROFILE=long' : ''}), at least ${MIN_KILLS} kills`);
    await ensureGoTools();
    [source, target, kinesis] = await Promise.all([startMongoEmulator({ dbpath }), startMongoEmulator(), startKinesisLocal()]);
    proxy = await startKinesisFaultProxy(kinesis.endpoint, prng(SEED ^ 0x5eed));
    src = new MongoClient(source.uri, { serverSelectionTimeoutMS: 20_000 });
    dst = new MongoClient(target.uri);
    store = await StateStore.open({ client: dst });
  });
  after(async () => {
    await Promise.all([src?.close(), dst?.close()]);
    await proxy?.stop();
    await Promise.all([source?.stop(), target?.stop(), kinesis?.stop()]);
    rmSync(dbpath, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('kills, source/Kinesis/target faults; then cutover and verify: target equals source', { timeout: (MAX_SECONDS + 600) * 1000 }, async () => {
    const rand = prng(SEED);
    await seedSource(src, DOCS_PER_COLLECTION, prng(SEED + 1));
    const stream = kinesis.uniqueStreamName('chaos');
    await kinesis.createStream(stream, 2);
    const common = [
      '--source-uri', source.uri, '--target-uri', target.uri, '--kinesis-stream', stream, '--kinesis-endpoint', proxy.endpoint,
      '--migration-id', ID, '--map', 'shop:shop_new', '--log-format', 'json',
    ];
    const orchestrator = new Supervised('full-migrate', [
      'full-migrate', ...common, '--lease-ttl', '3s', '--data-dir', dataDir,
      '--mongodump-path', goToolPath('mongodump'), '--mongorestore-path', goToolPath('mongorestore'),
    ]);
    const applier = new Supervised('apply', ['apply', ...common, '--lease-ttl', '3s']);
    const capturer = new Supervised('capture', ['capture', ...common, '--lease-ttl', '3s', '--checkpoint-interval', '300ms']);
    const faults = { sourceCommandFailures: 0, sourceRestarts: 0, kinesisThrottleWindows: 0, kinesisPartialWindows: 0, targetRefusals: 0 };
    const killsDuring = { load: 0, replication: 0, cutover: 0 };
    const phase = async () => (await store.getMigration(ID))?.phase;

    const workload = startChaosWorkload(src, DOCS_PER_COLLECTION, prng(SEED + 2));
    // A failing assertion must not leave the supervised processes restarting forever (the test file
    // would never exit): whatever happens, stop them and the workload.
    try {
      // The extra containers come up first, as they may under an orchestrator: before full-migrate
      // has created the migration, they must wait for it (not apply to the target, not capture "now").
      applier.start();
      capturer.start();
      await sleep(2500);
      orchestrator.start();

      const killOne = async (which: Supervised) => {
        const p = await phase();
        if (!(await which.kill())) return;
        if (p === 'CUTTING_OVER') killsDuring.cutover++;
        else if (p && REPLICATING.includes(p)) killsDuring.replication++;
        else killsDuring.load++;
      };

      // The first kill lands in the middle of the initial load.
      const loadDeadline = Date.now() + 120_000;
      while ((await phase()) !== 'INITIAL_LOAD') {
        assert.ok(Date.now() < loadDeadline, `no INITIAL_LOAD within 120 s: ${orchestrator.exitTails.join('\n')}`);
        await sleep(20);
      }
      await sleep(Math.floor(rand() * 800));
      await killOne(orchestrator);

      const failPoint = (client: MongoClient, mode: unknown, data: Document) =>
        client.db('admin').command({ configureFailPoint: 'failCommand', mode, data: { appName: 'migrator', ...data } });

      const started = Date.now();
      const kills = () => orchestrator.kills + applier.kills + capturer.kills;
      for (;;) {
        const p = await phase();
        const elapsed = (Date.now() - started) / 1000;
        if (kills() >= MIN_KILLS && killsDuring.replication >= MIN_KILLS / 2 && elapsed >= MIN_SECONDS && p && REPLICATING.includes(p)) break;
        assert.ok(elapsed < MAX_SECONDS, `chaos phase over ${MAX_SECONDS} s (phase ${p}, ${kills()} kills):\n${orchestrator.exitTails.slice(-5).join('\n')}`);
        await sleep(400 + Math.floor(rand() * 1600));
        const r = rand();
        const windowMs = 1000 + Math.floor(rand() * 2500);
        if (r < 0.22) await killOne(orchestrator);
        else if (r < 0.4) await killOne(applier);
        else if (r < 0.55) await killOne(capturer);
        else if (r < 0.65) {
          // Change stream / query failures on the source: connection drops or resumable error codes.
          const closeConnection = rand() < 0.5;
          const errorCode = [91, 11600, 10107, 189][Math.floor(rand() * 4)];
          await failPoint(src, { times: 1 + Math.floor(rand() * 3) }, { failCommands: ['getMore', 'aggregate', 'find'], ...(closeConnection ? { closeConnection } : { errorCode }) });
          faults.sourceCommandFailures++;
        } else if (r < 0.72) {
          // The source goes away and comes back (same port, same data, same change history).
          await source.stop();
          await sleep(300 + Math.floor(rand() * 1200));
          source = await startMongoEmulator({ port: source.port, dbpath });
          faults.sourceRestarts++;
        } else if (r < 0.8) {
          proxy.set({ throttleRate: 0.4, throttleOps: ['PutRecords', 'GetRecords', 'ListShards', 'GetShardIterator'] });
          await sleep(windowMs);
          proxy.set({});
          faults.kinesisThrottleWindows++;
        } else if (r < 0.9) {
          proxy.set({ partialRate: 0.6, recordFailRate: 0.5, lostResponseRate: 0.15 });
          await sleep(windowMs);
          proxy.set({});
          faults.kinesisPartialWindows++;
        } else {
          // The target (and the state store on it) refuses the migrator's writes for a while.
          await failPoint(dst, 'alwaysOn', { failCommands: ['insert', 'update', 'delete', 'findAndModify'], errorCode: 10107, errorLabels: ['RetryableWriteError'] });
          await sleep(windowMs);
          await failPoint(dst, 'off', {});
          faults.targetRefusals++;
        }
      }

      // Calm: faults off, writes stop, then the staged cutover, with one more kill in the middle of it.
      proxy.set({});
      await failPoint(src, 'off', {});
      await failPoint(dst, 'off', {});
      const written = await workload.stop();
      while ((await phase()) !== 'READY_FOR_CUTOVER') await sleep(100);
      const cutover = runMigrator(['cutover', ...common.slice(0, 10), '--writes-stopped', '--wait', '--timeout', '240s'], { timeoutMs: 300_000 });
      const cutDeadline = Date.now() + 60_000;
      while ((await phase()) !== 'CUTTING_OVER' && Date.now() < cutDeadline) await sleep(10);
      await killOne(orchestrator);
      const cut = await cutover;
      assert.equal(cut.exitCode, 0, `cutover: ${cut.all.slice(-2000)}\n${orchestrator.exitTails.slice(-5).join('\n')}`);
      const done = await orchestrator.finished();
      assert.equal(done?.exitCode, 0, `full-migrate ends 0 after COMPLETED: ${String(done?.stderr).slice(-1500)}`);
      for (const s of [applier, capturer]) {
        const end = await s.stop('SIGTERM');
        assert.equal(end?.exitCode, 0, `${s.name} stops cleanly on SIGTERM: ${String(end?.stderr).slice(-1500)}`);
      }

      const verify = await runMigrator(['verify', '--source-uri', source.uri, '--target-uri', target.uri, '--map', 'shop:shop_new']);
      assert.equal(verify.exitCode, 0, `verify: ${verify.all.slice(-3000)}`);

      // Independently of the product's verify: every document equal, none missing, none extra.
      let documents = 0;
      for (const ns of COLLECTIONS) {
        const want = await snapshot(src, ns);
        const got = await snapshot(dst, ns.replace(/^shop\./, 'shop_new.'));
        const missing = [...want.keys()].filter((k) => !got.has(k));
        const extra = [...got.keys()].filter((k) => !want.has(k));
        const differ = [...want.keys()].filter((k) => got.has(k) && got.get(k) !== want.get(k));
        assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), differ: differ.slice(0, 5) }, { missing: [], extra: [], differ: [] }, `${ns}: ${missing.length} missing, ${extra.length} extra, ${differ.length} differ`);
        documents += want.size;
      }
      const targetDbs = (await dst.db('admin').admin().listDatabases()).databases.map((d) => d.name).sort();
      assert.deepEqual(targetDbs.filter((d) => !['admin', 'local', 'config', 'migrator_state'].includes(d)), ['crm', 'shop_new'], 'no extra database on the target');

      let applied = 0;
      for (const s of await store.listShards(ID)) applied += Number((s.checkpoint?.counters as { events?: number } | undefined)?.events ?? 0);
      const selfExits = [orchestrator, applier, capturer].map((s) => `${s.name}: ${JSON.stringify(Object.fromEntries(s.exits))}`).join(', ');
      console.log(
        `chaos seed ${SEED}: ${kills()} kills (full-migrate ${orchestrator.kills}, apply ${applier.kills}, capture ${capturer.kills}; during load ${killsDuring.load}, ` +
          `replication ${killsDuring.replication}, cutover ${killsDuring.cutover}); faults ${JSON.stringify(faults)}; ` +
          `Kinesis proxy ${JSON.stringify(proxy.counts)}; workload ops ${JSON.stringify(written)}; ${applied} change events applied; ` +
          `${documents} documents equal; exits by choice ${selfExits}`,
      );
      assert.ok(kills() >= MIN_KILLS, `${kills()} kills`);
      assert.ok(killsDuring.cutover >= 1, 'killed during the cutover');
      for (const s of [orchestrator, applier, capturer]) {
        assert.ok(!s.exits.has(1), `${s.name} never ends with an internal error (exit 1):\n${s.exitTails.filter((t) => t.includes('exited 1')).join('\n')}`);
      }
    } finally {
      await Promise.all([workload.stop(), ...[orchestrator, applier, capturer].map((x) => x.stop('SIGKILL'))]);
    }
  });
});
