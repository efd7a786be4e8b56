/**
 * `npm run bench [-- flags]`: the benchmarks of migrator against the seed's pipeline and plain
 * mongodump | mongorestore. Starts the local stack (source and target MongoDB emulators,
 * kinesis-local, each its own process), runs the workloads, writes bench/results/<stamp>.{json,md}
 * (and latest.{json,md}) and prints the markdown. Every workload runs in its own worker process
 * (bench/workers/*) so that CPU seconds and RSS are the migrator's alone.
 *
 * Sections (`--only` a comma list; default all):
 *   stack    capture / apply / end-to-end throughput on the stack, ours vs the seed's loop
 *   lag      end-to-end lag under a steady write rate, ours vs the seed's loop
 *   load     initial load: runDumpRestorePipe vs a shell pipe of the same binaries
 *   partitions  one large collection: single pipe vs 1/2/4 `_id` ranges at once vs a raw shell
 *            pipe, and the resume after a SIGKILL at ~60 % of the ranges vs a full reload
 *   inproc   in-process pipeline (in-memory shard log), 200 B / 1 KiB / 2 KiB documents
 *   backlog  peak RSS with a large backlog (default 1M events), in-process
 *   rate     Kinesis records/s per shard at steady 500 / 5,000 / 50,000 events/s, in-process
 *   profile  node --cpu-prof of the in-process pipeline, summarised
 * The capacity model (shards needed on real Kinesis) is computed from what was measured.
 *
 * `--smoke`: every section at tiny sizes (a check that the benchmark still runs, part of `npm test`
 * through test/bench/bench-smoke.test.ts; its figures mean nothing). It writes only smoke.{json,md}
 * into `--out` (default: a new temporary directory), never bench/results/latest.*.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { BSON, MongoClient, type Document } from 'mongodb';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ensureGoTools, goToolPath } from '../test/support/go-tools.js';
import { estimateCollection } from '../src/initial-load/partition-plan.js';
import { StateStore } from '../src/state/store.js';
import { cpuSecondsOf, CpuMeter } from './lib/proc.js';
import { summarizeProfile, type ProfileSummary } from './lib/profile.js';
import { ROOT, startStack, type Stack } from './lib/stack.js';
import { DOC_BYTES, MIXES, makeDoc, prng, writeBacklog } from './lib/workload.js';
import { capacityModel, renderMarkdown, type BenchResults } from './lib/report.js';

const argv = await yargs(hideBin(process.argv))
  .scriptName('npm run bench --')
  .option('only', { type: 'string', describe: 'Comma list of sections: stack,lag,load,partitions,inproc,backlog,rate,profile' })
  .option('small', { type: 'number', default: 20_000, describe: 'Stack backlog of 200 B documents (mixed ops)' })
  .option('medium', { type: 'number', default: 10_000, describe: 'Stack backlog of 2 KiB documents (mixed ops)' })
  .option('shards', { type: 'number', default: 1, describe: 'Shards of the stack streams (ours)' })
  .option('seed-events', { type: 'number', default: 500, describe: 'Events the seed loop processes per run (its rate is per event)' })
  .option('seed-as-written', { type: 'number', default: 30, describe: 'Events for the seed as written (with its sleep(0.1) per event); 0 = skip' })
  .option('lag-rate', { type: 'number', default: 500, describe: 'Steady write rate of the lag runs (ops/s)' })
  .option('lag-seconds', { type: 'number', default: 10, describe: 'Duration of the steady writes' })
  .option('load-small', { type: 'number', default: 100_000, describe: 'Initial load: 200 B documents' })
  .option('load-medium', { type: 'number', default: 25_000, describe: 'Initial load: 2 KiB documents' })
  .option('load-reps', { type: 'number', default: 3, describe: 'Runs of each initial-load variant (alternating; best and median reported)' })
  .option('partitions-docs', { type: 'number', default: 1_000_000, describe: 'Partitioned load: 200 B documents in the one large collection' })
  .option('partitions-ranges', { type: 'number', default: 12, describe: 'Partitioned load: about this many `_id` ranges (sets --partition-size from the collection size)' })
  .option('inproc', { type: 'number', default: 60_000, describe: 'Events per in-process run' })
  .option('inproc-shards', { type: 'number', default: 4, describe: 'Shards of the in-memory stream' })
  .option('backlog', { type: 'number', default: 1_000_000, describe: 'Events of the large-backlog (peak RSS) run' })
  .option('rates', { type: 'string', default: '500,5000,50000', describe: 'Rate section: steady event rates (events/s), comma list' })
  .option('rate-seconds', { type: 'number', default: 10, describe: 'Rate section: seconds at each rate' })
  .option('bounded-limit', { type: 'number', default: 25, describe: 'Backlog run: GetRecords Limit of the bounded apply variant' })
  .option('bounded-heap', { type: 'number', default: 192, describe: 'Backlog run: --max-old-space-size (MiB) of the bounded apply variant' })
  .option('out', { type: 'string', describe: 'Results directory (default bench/results; with --smoke a new temporary directory)' })
  .option('smoke', { type: 'boolean', default: false, describe: 'Every section at tiny sizes (overrides the size flags); writes only smoke.{json,md} to --out' })
  .strict()
  .help()
  .parseAsync();

/** Sizes of `--smoke`: each section runs its whole code path once, in seconds. */
const SMOKE = {
  small: 300,
  medium: 100,
  'seed-events': 20,
  'seed-as-written': 3,
  'lag-rate': 20,
  'lag-seconds': 2,
  'load-small': 300,
  'load-medium': 50,
  'load-reps': 1,
  'partitions-docs': 3_000,
  inproc: 500,
  backlog: 2_000,
  'rate-seconds': 1,
  'profile-events': 500,
} as const;
const sizes = argv.smoke ? { ...argv, ...SMOKE } : { ...argv, 'profile-events': Math.max(20_000, Math.round(argv.inproc * 0.6)) };

const sections = new Set((argv.only ?? 'stack,lag,load,partitions,inproc,backlog,rate,profile').split(',').map((s) => s.trim()));
const outDir = argv.out
  ? path.resolve(argv.out)
  : argv.smoke
    ? mkdtempSync(path.join(os.tmpdir(), 'migrator-bench-smoke-'))
    : path.join(ROOT, 'bench/results');
mkdirSync(outDir, { recursive: true });
const started = Date.now();
const say = (msg: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);

const results: BenchResults = {
  startedAt: new Date(started).toISOString(),
  machine: machineInfo(),
  // the flags as used (with --smoke, its sizes), camelCase as before
  flags: Object.fromEntries(
    Object.entries(sizes)
      .filter(([k]) => /^[a-z][a-z-]*$/.test(k))
      .map(([k, v]) => [k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), v]),
  ),
  stack: {},
  seed: {},
  lag: {},
  load: [],
  inproc: {},
};

function machineInfo() {
  const cpus = os.cpus();
  let nproc = String(cpus.length);
  try {
    nproc = execFileSync('nproc').toString().trim();
  } catch {
    // keep os.cpus()
  }
  return {
    nproc,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

// ---------------------------------------------------------------------------------------------
// workers

interface WorkerOptions {
  timeoutMs?: number;
  nodeArgs?: string[];
}

async function runWorker<T = Record<string, unknown>>(file: string, args: unknown, opts: WorkerOptions = {}): Promise<T> {
  const child = execa(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', path.join(ROOT, 'bench/workers', file), JSON.stringify(args)], {
    cwd: ROOT,
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    timeout: opts.timeoutMs ?? 10 * 60_000,
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  let result: T | undefined;
  let tail = '';
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('RESULT ')) result = JSON.parse(line.slice(7)) as T;
  });
  child.stderr!.on('data', (c: Buffer) => (tail = (tail + c.toString()).slice(-6000)));
  const r = await child;
  if (!result) throw new Error(`worker ${file} failed (exit ${String(r.exitCode)}${r.timedOut ? ', timed out' : ''}):\n${tail}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// stack helpers

async function resumeTokenNow(client: MongoClient, db: string): Promise<string> {
  const cs = client.db(db).watch([], { maxAwaitTimeMS: 10 });
  await cs.tryNext();
  const rt = cs.resumeToken as Document;
  await cs.close();
  return BSON.EJSON.stringify(rt);
}

async function createStream(stack: Stack, name: string, shards: number): Promise<string> {
  await stack.kinesis.createStream(name, shards);
  return name;
}

// ---------------------------------------------------------------------------------------------
// partitioned load (issue #13)

interface StackRefs {
  sourceUri: string;
  targetUri: string;
  pids: Record<string, number>;
}
type Obj = Record<string, unknown>;

/**
 * One large collection (`docs` × 200 B) loaded: (a) as one unit (today's single pipe:
 * --partition-size larger than the collection), (b) in about `rangesWanted` `_id` ranges with 1,
 * 2 and 4 at once, (c) by a raw `mongodump | mongorestore` in bash with the same binaries; and
 * (d) a load with 2 at once SIGKILLed when ~60 % of its ranges are done, then rerun (resume),
 * against what a full reload would cost. Every load must end with the target's count equal to
 * the source's (else the bench fails). Each target database is dropped after its run, so the
 * target emulator holds one copy at a time.
 */
async function partitionsBench(c: StackRefs, docs: number, rangesWanted: number): Promise<Obj> {
  const db = 'partbench';
  const coll = 'big';
  const stateDb = 'migrator_state_bench';
  const src = new MongoClient(c.sourceUri);
  const dst = new MongoClient(c.targetUri);
  const bins = { mongodump: goToolPath('mongodump'), mongorestore: goToolPath('mongorestore') };
  const workRoot = mkdtempSync(path.join(os.tmpdir(), 'bench-partitions-'));
  try {
    say(`partitions: inserting ${docs} × 200 B documents into the source (${db}.${coll})`);
    const rand = prng(13);
    const t = performance.now();
    for (let i = 0; i < docs; i += 1000) {
      const batch = [];
      for (let j = i; j < Math.min(docs, i + 1000); j++) batch.push(makeDoc(j, 200, rand));
      await src.db(db).collection(coll).insertMany(batch, { ordered: true });
    }
    const insertSeconds = (performance.now() - t) / 1000;
    const est = await estimateCollection(src, db, coll);
    const partitionSize = Math.max(1, Math.ceil(est.size / rangesWanted));
    const out: Obj = { documents: docs, collectionBytes: est.size, partitionSize, rangesWanted, insertSeconds };
    const checkEqual = async (x: Obj, targetDb: string) => {
      const n = await dst.db(targetDb).collection(coll).countDocuments();
      if (n !== docs) throw new Error(`partitions: ${String(x.label)} ended with ${n} documents on the target, the source has ${docs}`);
      x.targetCount = n;
      await dst.db(targetDb).dropDatabase();
      return x;
    };
    // The Database Tools' connect timeout (--dialTimeout, default 3 s) is also their heartbeat
    // timeout: a heartbeat that times out clears the driver's pool and interrupts the in-use
    // connections. A single-threaded emulator busy with a large batch can stall its other
    // connections for longer than that on a loaded machine, so every variant here, the raw pipe
    // included, gets connectTimeoutMS=30000 in its URIs (mongo-tools read it as their dial timeout).
    const slow = (uri: string) => `${uri}${uri.includes('?') ? '&' : '?'}connectTimeoutMS=30000`; // the emulators' URIs: mongodb://host:port/?replicaSet=…
    const base = { sourceUri: slow(c.sourceUri), targetUri: slow(c.targetUri), pids: c.pids, stateDb, db, coll, ...bins };
    const load = async (key: string, label: string, size: number, parallelism: number) => {
      say(`partitions: ${label}`);
      const targetDb = `${db}_${key}`;
      const x = await runWorker('partitions.ts', { ...base, label, migrationId: `pb-${key}`, targetDb, partitionSize: size, parallelism, fresh: true, workDir: path.join(workRoot, key) }, { timeoutMs: 30 * 60_000 });
      return checkEqual(x, targetDb);
    };

    // (c) the raw shell pipe (load.ts: the same arguments as the database pipe of planPipes)
    say('partitions: raw mongodump | mongorestore in bash');
    out.raw = await checkEqual(
      await runWorker('load.ts', { ...base, mode: 'shell', label: 'raw shell pipe', targetDb: `${db}_raw`, collections: [coll] }, { timeoutMs: 30 * 60_000 }),
      `${db}_raw`,
    );
    // (a) today's single pipe: one 'database' unit
    out.single = await load('single', 'single pipe (one unit)', est.size * 4 + 2 ** 20, 1);
    // (b) ranges, 1 / 2 / 4 at once
    for (const p of [1, 2, 4]) out[`p${p}`] = await load(`p${p}`, `${rangesWanted} ranges target, ${p} at once`, partitionSize, p);

    // (d) SIGKILL at ~60 % of the ranges, then a rerun that resumes
    say('partitions: 2 at once, SIGKILL of the worker at ~60 % of the ranges');
    const killId = 'pb-kill';
    const killDb = `${db}_kill`;
    const killWork = path.join(workRoot, 'kill');
    const store = await StateStore.open({ client: dst, dbName: stateDb });
    const killArgs = { ...base, label: 'killed at ~60 %', migrationId: killId, targetDb: killDb, partitionSize, parallelism: 2, fresh: true, workDir: killWork };
    const child = execa(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/workers/partitions.ts'), JSON.stringify(killArgs)], {
      cwd: ROOT,
      reject: false,
      buffer: false,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
    let tail = '';
    child.stderr!.on('data', (b: Buffer) => (tail = (tail + b.toString()).slice(-4000)));
    let startedAt = 0;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('STARTED ')) startedAt = Number(line.slice(8));
    });
    let exited = false;
    void child.then(() => (exited = true));
    const others = new CpuMeter(c.pids).start();
    let ranges: Awaited<ReturnType<StateStore['listLoadUnits']>> = [];
    for (;;) {
      if (exited) throw new Error(`partitions: the load to be killed ended first:\n${tail}`);
      ranges = (await store.listLoadUnits(killId)).filter((u) => u.kind === 'range');
      if (ranges.length > 0 && ranges.filter((u) => u.state === 'done').length >= Math.ceil(ranges.length * 0.6)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const killedAt = Date.now();
    const workerCpuAtKill = cpuSecondsOf(child.pid!) ?? 0;
    child.kill('SIGKILL');
    await child;
    const killSeconds = (killedAt - startedAt) / 1000;
    ranges = (await store.listLoadUnits(killId)).filter((u) => u.kind === 'range');
    const doneAtKill = ranges.filter((u) => u.state === 'done');
    const toolDocsAtKill = doneAtKill.reduce((s, u) => s + (u.documents ?? 0), 0);
    // The killed process's tools lose their pipe and stop; wait until the target's count is still
    // for a second (the rerun also kills any left: stale-tools.ts).
    let inTarget = -1;
    for (let i = 0; i < 20; i++) {
      const n = await dst.db(killDb).collection(coll).countDocuments();
      if (n === inTarget) break;
      inTarget = n;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const killedRun = { label: 'killed at ~60 %', parallelism: 2, seconds: killSeconds, rangesDone: doneAtKill.length, ranges: ranges.length, toolDocuments: toolDocsAtKill, targetCountAfterKill: inTarget, workerCpuSeconds: workerCpuAtKill, otherCpuSeconds: others.stop() };
    say(`partitions: killed after ${killSeconds.toFixed(1)} s with ${doneAtKill.length}/${ranges.length} ranges done; rerun (resume)`);
    const rerun = await checkEqual(await runWorker('partitions.ts', { ...killArgs, label: 'rerun (resume)', fresh: false }, { timeoutMs: 30 * 60_000 }), killDb);
    const full = out.p2 as { seconds: number };
    const rerunDocs = rerun.restored as number;
    out.resume = {
      killed: killedRun,
      rerun,
      // Documents written to the target: before the kill (finished and unfinished ranges), then by the rerun.
      work: { resume: inTarget + rerunDocs, fullReload: inTarget + docs, toolReported: toolDocsAtKill + rerunDocs },
      // The old code restarted the whole load with --drop: its second attempt costs a full load (the p2 run).
      wall: { resume: killSeconds + (rerun.seconds as number), fullReload: killSeconds + full.seconds },
    };
    await dst.db(stateDb).dropDatabase();
    await src.db(db).dropDatabase();
    return out;
  } finally {
    rmSync(workRoot, { recursive: true, force: true });
    await Promise.all([src.close(), dst.close()]);
  }
}

let stack: Stack | undefined;
const cleanup = async () => {
  await stack?.stop();
  stack = undefined;
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));

try {
  // The stack sections (stack, lag, load) share one local stack; the in-process ones (inproc,
  // backlog, profile) need none. A full run measures them one after the other, so that they do
  // not compete for the cores; --smoke runs them all at once (its figures mean nothing).
  const onStack = async () => {
    const needStack = ['stack', 'lag', 'load', 'partitions'].some((s) => sections.has(s));
    if (sections.has('load') || sections.has('partitions')) {
      say('checking the Go-built mongodump/mongorestore (npm run tools; a cold build takes ~2 min)');
      await ensureGoTools(['mongodump', 'mongorestore']);
    }
    if (needStack) {
      say('starting the stack: source + target emulators, kinesis-local');
      stack = await startStack({ historyLimit: Math.max(200_000, sizes.small + sizes.medium + 50_000) });
      results.stackPids = stack.pids;
    }
    const common = () => ({ sourceUri: stack!.source.uri, targetUri: stack!.target.uri, kinesisEndpoint: stack!.kinesis.endpoint, pids: stack!.pids });

    const stackSection = async () => {
      // ------------------------------------------------------------------------------ stack
      if (sections.has('stack')) {
        const src = new MongoClient(stack!.source.uri);
        for (const size of ['small', 'medium'] as const) {
          const count = size === 'small' ? sizes.small : sizes.medium;
          if (count <= 0) continue;
          const db = `bench_${size}`;
          // The collection exists before the start point: its `create` (an expanded event capture
          // now carries, MongoDB 6.0+) is not part of the backlog of `count` data events.
          await src.db(db).createCollection('docs').catch(() => undefined);
          const startToken = await resumeTokenNow(src, db);
          say(`${size}: writing a backlog of ${count} mixed operations (${DOC_BYTES[size]} B documents) to the source`);
          const t = performance.now();
          const ops = await writeBacklog(src.db(db).collection<{ _id: number }>('docs'), { count, bytes: DOC_BYTES[size], mix: MIXES.mixed! });
          const writeSeconds = (performance.now() - t) / 1000;
          const base = { ...common(), startToken, count, db };
          const entry: Record<string, unknown> = { count, bytes: DOC_BYTES[size], ops, writeSeconds, shards: sizes.shards };
          results.stack[size] = entry;

          say(`${size}: ours, capture of the backlog`);
          const capStream = await createStream(stack!, `ours-${size}-cap`, sizes.shards);
          entry.capture = await runWorker('stack-ours.ts', { ...base, mode: 'capture', label: `ours ${size} capture`, stream: capStream, migrationId: `cap-${size}`, targetDb: `${db}_t1` });
          say(`${size}: ours, apply of that stream`);
          entry.apply = await runWorker('stack-ours.ts', { ...base, mode: 'apply', label: `ours ${size} apply`, stream: capStream, migrationId: `cap-${size}`, targetDb: `${db}_t1` });
          say(`${size}: ours, capture + apply together (end to end)`);
          const e2eStream = await createStream(stack!, `ours-${size}-e2e`, sizes.shards);
          entry.e2e = await runWorker('stack-ours.ts', { ...base, mode: 'e2e', label: `ours ${size} e2e`, stream: e2eStream, migrationId: `e2e-${size}`, targetDb: `${db}_t2` });

          if (size === 'small' && sizes['seed-events'] > 0) {
            const k = Math.min(sizes['seed-events'], count);
            const sbase = { ...base, count: k };
            const seed: Record<string, unknown> = { count: k };
            results.seed.small = seed;
            say(`small: seed loop, capture of ${k} events (PutRecord per event + state write per event)`);
            const s1 = await createStream(stack!, 'seed-small-cap', 1);
            seed.capture = await runWorker('stack-seed.ts', { ...sbase, mode: 'capture', label: 'seed capture', stream: s1, maxSeconds: 300 });
            say(`small: seed loop, apply of ${k} events (GetRecords Limit=1 + state write per event)`);
            // apply exactly what capture put into the stream (updates whose document was deleted since have no record)
            const inStream = (seed.capture as { kinesis: { putRecordCalls: number } }).kinesis.putRecordCalls;
            seed.apply = await runWorker('stack-seed.ts', { ...sbase, count: inStream, mode: 'apply', label: 'seed apply', stream: s1, maxSeconds: 300 });
            say(`small: seed loop, capture + apply together (end to end)`);
            const s2 = await createStream(stack!, 'seed-small-e2e', 1);
            seed.e2e = await runWorker('stack-seed.ts', { ...sbase, mode: 'e2e', label: 'seed e2e', stream: s2, dbSuffix: 'e2e', maxSeconds: 300 });
            if (sizes['seed-as-written'] > 0) {
              const n = Math.min(sizes['seed-as-written'], k);
              say(`small: seed as written (sleep 0.1 s after each state write), ${n} events end to end`);
              const s3 = await createStream(stack!, 'seed-small-asis', 1);
              seed.asWritten = await runWorker('stack-seed.ts', { ...sbase, count: n, mode: 'e2e', label: 'seed as written e2e', stream: s3, asWritten: true, dbSuffix: 'asis', maxSeconds: 120 });
            }
          }
        }
        await src.close();
      }
    };

    const lagSection = async () => {
      // ------------------------------------------------------------------------------ lag
      if (sections.has('lag')) {
        const rate = sizes['lag-rate'];
        const seconds = sizes['lag-seconds'];
        say(`lag: ours, steady ${rate} ops/s for ${seconds} s`);
        const ls = await createStream(stack!, 'ours-lag', sizes.shards);
        results.lag.ours = await runWorker('stack-ours.ts', { ...common(), mode: 'lag', label: 'ours lag', stream: ls, count: 0, db: 'lag_ours', migrationId: 'lag', targetDb: 'lag_ours_target', rate, seconds });
        say(`lag: seed loop, steady ${rate} ops/s for ${seconds} s`);
        const ss = await createStream(stack!, 'seed-lag', 1);
        results.lag.seed = await runWorker('stack-seed.ts', { ...common(), mode: 'lag', label: 'seed lag', stream: ss, count: 0, db: 'lag_seed', rate, seconds });
      }
    };

    const loadSection = async () => {
      // ------------------------------------------------------------------------------ initial load
      if (sections.has('load')) {
        const src = new MongoClient(stack!.source.uri);
        const db = 'loadbench';
        say(`load: inserting ${sizes['load-small']} × 200 B + ${sizes['load-medium']} × 2 KiB documents into the source`);
        const rand = prng(3);
        const collections: string[] = [];
        for (const [coll, n, bytes] of [
          ['small', sizes['load-small'], 200],
          ['medium', sizes['load-medium'], 2048],
        ] as const) {
          if (n <= 0) continue;
          collections.push(coll);
          for (let i = 0; i < n; i += 1000) {
            const docs = [];
            for (let j = i; j < Math.min(n, i + 1000); j++) docs.push(makeDoc(j, bytes, rand));
            await src.db(db).collection(coll).insertMany(docs, { ordered: true });
          }
        }
        await src.close();
        const bins = { mongodump: goToolPath('mongodump'), mongorestore: goToolPath('mongorestore') };
        for (let rep = 0; rep < sizes['load-reps']; rep++) {
          for (const mode of rep % 2 === 0 ? (['shell', 'product'] as const) : (['product', 'shell'] as const)) {
            say(`load: ${mode} (run ${rep + 1}/${sizes['load-reps']})`);
            results.load.push(
              await runWorker('load.ts', { ...common(), mode, label: `load ${mode} #${rep + 1}`, db, targetDb: `${db}_target`, collections, ...bins }),
            );
          }
        }
        results.loadDocuments = sizes['load-small'] + sizes['load-medium'];
      }
    };

    const partitionsSection = async () => {
      // ------------------------------------------------------------------------------ partitioned load
      if (sections.has('partitions')) results.partitions = await partitionsBench(common(), sizes['partitions-docs'], sizes['partitions-ranges']);
    };

    // --smoke: the four at once on the one stack (separate databases and streams)
    if (argv.smoke) await Promise.all([stackSection(), lagSection(), loadSection(), partitionsSection()]);
    else {
      await stackSection();
      await lagSection();
      await loadSection();
      await partitionsSection();
    }
    await cleanup();
  };
  const inProcess = async () => {
    // ------------------------------------------------------------------------------ in-process
    if (sections.has('inproc')) {
      for (const [name, bytes] of [
        ['small', 200],
        ['kib', 1024],
        ['medium', 2048],
      ] as const) {
        say(`in-process: ${sizes.inproc} mixed events of ${bytes} B documents, ${sizes['inproc-shards']} shards`);
        results.inproc[name] = await runWorker('inprocess.ts', { label: `inproc ${name}`, count: sizes.inproc, bytes, mix: 'mixed', shards: sizes['inproc-shards'] });
      }
    }
    if (sections.has('backlog') && sizes.backlog > 0) {
      // The shard log runs in its own process here, so that the migrator's RSS is its own; capture
      // and apply run in separate processes (as `migrator capture` and `migrator apply` would).
      const server = execa(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/workers/memory-kinesis-server.ts'), 'bench', String(sizes['inproc-shards'])], {
        cwd: ROOT,
        stdin: 'pipe',
        stdout: 'pipe',
        stderr: 'inherit',
        buffer: false,
        reject: false,
        env: { ...process.env, NODE_NO_WARNINGS: '1' },
      });
      try {
        const endpoint = await new Promise<string>((resolve, reject) => {
          createInterface({ input: server.stdout! }).once('line', (l) => resolve((JSON.parse(l) as { endpoint: string }).endpoint));
          void server.then((r) => reject(new Error(`memory-kinesis-server exited ${String(r.exitCode)}`)));
        });
        const base = { count: sizes.backlog, bytes: 200, mix: 'mixed', shards: sizes['inproc-shards'], endpoint };
        const backlog: Record<string, unknown> = { count: sizes.backlog, bytes: 200, shards: sizes['inproc-shards'] };
        results.backlog = backlog;
        say(`backlog: capture of a ${sizes.backlog}-event backlog (200 B docs) into an in-memory shard log (separate process)`);
        const cap = await runWorker<Record<string, Record<string, unknown>>>('inprocess.ts', { ...base, label: 'backlog capture', phase: 'capture' }, { timeoutMs: 20 * 60_000 });
        backlog.capture = { ...cap.capture, baseRssBytes: cap.baseRssBytes };
        say('backlog: apply of the whole log, default settings');
        backlog.apply = await runWorker<Record<string, unknown>>('inprocess.ts', { ...base, label: 'backlog apply', phase: 'apply' }, { timeoutMs: 20 * 60_000 })
          .then((r) => r.apply)
          .catch((err: unknown) => ({ failed: String(err).slice(0, 500) }));
        say(`backlog: apply of the whole log, GetRecords Limit ${sizes['bounded-limit']} and --max-old-space-size=${sizes['bounded-heap']}`);
        backlog.applyBounded = await runWorker<Record<string, unknown>>(
          'inprocess.ts',
          { ...base, label: 'backlog apply bounded', phase: 'apply', applyLimit: sizes['bounded-limit'] },
          { timeoutMs: 20 * 60_000, nodeArgs: [`--max-old-space-size=${sizes['bounded-heap']}`] },
        )
          .then((r) => r.apply)
          .catch((err: unknown) => ({ failed: String(err).slice(0, 500) }));
        const heapCapped = await runWorker<Record<string, unknown>>(
          'inprocess.ts',
          { ...base, label: 'backlog apply default heap-capped', phase: 'apply' },
          { timeoutMs: 20 * 60_000, nodeArgs: [`--max-old-space-size=${sizes['bounded-heap'] + 64}`] },
        ).then(
          (r) => ({ ok: true, peakRssBytes: (r.apply as { peakRssBytes: number }).peakRssBytes }),
          () => ({ ok: false }),
        );
        backlog.applyDefaultHeapCapped = { heapMiB: sizes['bounded-heap'] + 64, ...heapCapped };
      } finally {
        server.stdin?.end();
        server.kill();
        await server;
      }
    }
    if (sections.has('rate')) {
      results.recordRate = {};
      for (const rate of String(sizes.rates).split(',').map(Number).filter((x) => x > 0)) {
        say(`rate: producer at a steady ${rate} events/s for ${sizes['rate-seconds']} s (200 B docs, ${sizes['inproc-shards']} shards), records per shard`);
        results.recordRate[String(rate)] = await runWorker('record-rate.ts', { label: `rate ${rate}`, rate, seconds: sizes['rate-seconds'], bytes: 200, shards: sizes['inproc-shards'] });
      }
    }
    if (sections.has('profile')) {
      const dir = path.join(outDir, 'profiles');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const n = sizes['profile-events'];
      say(`profile: V8 CPU profile of the in-process pipeline, ${n} events of 1 KiB documents`);
      const file = path.join(dir, 'inprocess.cpuprofile');
      const r = await runWorker('inprocess.ts', { label: 'profile', count: n, bytes: 1024, mix: 'mixed', shards: sizes['inproc-shards'], profile: file });
      const summary: ProfileSummary | undefined = existsSync(file) ? summarizeProfile(file, 25) : undefined;
      results.profile = { run: r, file: path.relative(ROOT, file), summary, otherFiles: [] };
    }
  };
  if (argv.smoke) await Promise.all([onStack(), inProcess()]);
  else {
    await onStack();
    await inProcess();
  }

  results.capacity = capacityModel(results);
  results.finishedAt = new Date().toISOString();
  results.totalSeconds = Math.round((Date.now() - started) / 1000);
  results.machine.loadAverageAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const md = renderMarkdown(results);
  // A smoke run's figures are meaningless: never a stamped result nor latest.*
  const stamp = argv.smoke ? 'smoke' : new Date(started).toISOString().replace(/[:.]/g, '-');
  writeFileSync(path.join(outDir, `${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(path.join(outDir, `${stamp}.md`), md);
  if (!argv.smoke) {
    writeFileSync(path.join(outDir, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
    writeFileSync(path.join(outDir, 'latest.md'), md);
  }
  process.stdout.write(md);
  say(`done in ${results.totalSeconds} s: ${path.join(outDir, `${stamp}.md`)}`);
} catch (err) {
  say(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  await cleanup();
  process.exit(1);
}
await cleanup();
process.exit(0);
