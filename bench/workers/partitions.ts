/**
 * Initial load of one large collection through the product's resumable, partitioned load
 * (`runInitialLoad`: load-plan.ts + load-worker.ts), as `full-migrate` runs it:
 *  - `partitionSize` larger than the collection: one unit, today's single pipe of the database;
 *  - a smaller one: `_id` ranges, `parallelism` of them at once (then an indexes unit, when the
 *    collection has indexes besides `_id_`).
 * The state store is a database on the target emulator (as the product's default: the target).
 *
 * `fresh`: creates the migration and loads with --drop (a first load). Otherwise the migration
 * exists (a run killed earlier, bench/run.ts `partitions` section): the rerun keeps the plan and
 * the finished units and redoes only the others, as `full-migrate` does after a crash.
 *
 * Prints `STARTED <epoch ms>` when the load starts (the orchestrator times a kill from it), then
 * the RESULT: wall seconds of the load, documents mongorestore reported for the units this process
 * finished, this process's and the tools' CPU seconds, the servers' CPU seconds, the units.
 */
import { MongoClient } from 'mongodb';
import { runInitialLoad } from '../../src/orchestration/initial-load-runner.js';
import { DEFAULT_LOAD_OPTIONS } from '../../src/initial-load/dump-restore-plan.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { cpuSecondsOf, CpuMeter } from '../lib/proc.js';
import { emitResult, quietLogger, workerArgs } from '../lib/worker-kit.js';

interface Args {
  label: string;
  sourceUri: string;
  targetUri: string;
  stateDb: string;
  migrationId: string;
  db: string;
  coll: string;
  targetDb: string;
  partitionSize: number;
  parallelism: number;
  fresh: boolean;
  workDir: string;
  mongodump: string;
  mongorestore: string;
  pids: Record<string, number>;
}

const a = workerArgs<Args>();
const source = new MongoClient(a.sourceUri);
const target = new MongoClient(a.targetUri);
const store = await StateStore.open({ client: target, dbName: a.stateDb });
if (a.fresh) await store.createMigration(a.migrationId);
const unitsBefore = await store.listLoadUnits(a.migrationId);

const others = new CpuMeter(a.pids).start();
const self0 = process.cpuUsage();
const children0 = cpuSecondsOf(process.pid, true)! - cpuSecondsOf(process.pid)!;
process.stdout.write(`STARTED ${Date.now()}\n`);
const t0 = performance.now();
const r = await runInitialLoad({
  source,
  target,
  sourceEndpoint: { uri: a.sourceUri },
  targetEndpoint: { uri: a.targetUri },
  store,
  migrationId: a.migrationId,
  rules: new NamespaceRules({ include: [`${a.db}.${a.coll}`], map: [`${a.db}:${a.targetDb}`], stateDb: a.stateDb }),
  namespaces: [{ db: a.db, coll: a.coll }],
  bins: { mongodump: a.mongodump, mongorestore: a.mongorestore },
  options: { ...DEFAULT_LOAD_OPTIONS, drop: a.fresh },
  partitionSize: a.partitionSize,
  parallelism: a.parallelism,
  workDir: a.workDir,
  log: quietLogger(),
});
const seconds = (performance.now() - t0) / 1000;
const selfCpu = (process.cpuUsage(self0).user + process.cpuUsage(self0).system) / 1e6;
const toolsCpu = cpuSecondsOf(process.pid, true)! - cpuSecondsOf(process.pid)! - children0;
const otherCpu = others.stop();

const units = await store.listLoadUnits(a.migrationId);
const doneBefore = new Set(unitsBefore.filter((u) => u.state === 'done').map((u) => u.shardId));
const result = {
  label: a.label,
  migrationId: a.migrationId,
  partitionSize: a.partitionSize,
  parallelism: a.parallelism,
  fresh: a.fresh,
  seconds,
  /** Documents mongorestore reported for the units this process finished. */
  restored: r.restored,
  ranges: units.filter((u) => u.kind === 'range').length,
  indexUnits: units.filter((u) => u.kind === 'indexes').length,
  units: units.length,
  unitsRun: units.filter((u) => !doneBefore.has(u.shardId)).length,
  unitsKept: doneBefore.size,
  selfCpuSeconds: selfCpu,
  toolsCpuSeconds: toolsCpu,
  otherCpuSeconds: otherCpu,
  sourceCount: await source.db(a.db).collection(a.coll).countDocuments(),
  targetCount: await target.db(a.targetDb).collection(a.coll).countDocuments(),
};
await Promise.all([source.close(), target.close()]);
emitResult(result);
process.exit(0);
