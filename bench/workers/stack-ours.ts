/**
 * The product's capture and apply (runCapture / runApply, default settings as full-migrate uses
 * them) against the local stack: source emulator → kinesis-local → target emulator, with the state
 * store on the target (the default). Modes:
 *  - capture: read a backlog of `count` events from `startToken` into `stream`;
 *  - apply:   apply `count` events already in `stream` to the target;
 *  - e2e:     both at once from the backlog (like full-migrate after the load);
 *  - lag:     both running, then a writer process writes at `rate` ops/s for `seconds`; the latency
 *             of every insert/update from the source write to the target's acknowledgement of the
 *             apply write is recorded (command monitoring on the target client).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { BSON, MongoClient, type Document } from 'mongodb';
import { runCapture, type CaptureProgress } from '../../src/source/capture-runner.js';
import { runApply, type ApplyStatus } from '../../src/apply/apply-runner.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { StateStore } from '../../src/state/store.js';
import { createKinesisClient } from '../../src/transport/kinesis-client.js';
import { CpuMeter } from '../lib/proc.js';
import { ROOT } from '../lib/stack.js';
import { RssSampler, countKinesis, cpuSince, emitResult, quietLogger, sleep, workerArgs } from '../lib/worker-kit.js';
import { LagRecorder } from '../lib/lag.js';

interface Args {
  mode: 'capture' | 'apply' | 'e2e' | 'lag';
  label: string;
  sourceUri: string;
  targetUri: string;
  kinesisEndpoint: string;
  stream: string;
  /** EJSON of the resume token to start after */
  startToken?: string;
  count: number;
  db: string;
  migrationId: string;
  targetDb: string;
  pids: Record<string, number>;
  rate?: number;
  seconds?: number;
  bytes?: number;
}

const a = workerArgs<Args>();
const log = quietLogger();
const rules = new NamespaceRules({ include: [`${a.db}.*`], map: [`${a.db}:${a.targetDb}`] });
const source = new MongoClient(a.sourceUri);
const lag = a.mode === 'lag' ? new LagRecorder(a.targetDb) : undefined;
const target = new MongoClient(a.targetUri, lag ? { monitorCommands: true } : {});
lag?.attach(target);
await Promise.all([source.connect(), target.connect()]);
const store = await StateStore.open({ client: target });
const kinesis = createKinesisClient({ region: 'us-east-1', endpoint: a.kinesisEndpoint });
const counters = countKinesis(kinesis);
const rss = new RssSampler(50);
const others = new CpuMeter(a.pids);

const captureAbort = new AbortController();
const applyAbort = new AbortController();
let captureDone: Promise<CaptureProgress> | undefined;
let applyDone: Promise<unknown> | undefined;
let status: ApplyStatus | undefined;

const startCapture = () => {
  captureDone = runCapture({
    source,
    store,
    migrationId: a.migrationId,
    rules,
    kinesis,
    streamName: a.stream,
    start: a.startToken ? { rt: BSON.EJSON.parse(a.startToken) as Document } : undefined,
    cdcOnly: true,
    signal: captureAbort.signal,
    log,
  });
};
const startApply = () => {
  applyDone = runApply({
    target,
    store,
    migrationId: a.migrationId,
    rules,
    kinesis,
    streamName: a.stream,
    ownerId: `bench-${process.pid}`,
    cdcOnly: true,
    logger: log,
    signal: applyAbort.signal,
    statusIntervalMs: 50,
    onStatus: (s) => (status = s),
  });
};
const applied = () => status?.sessionEvents ?? 0;
async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

const result: Record<string, unknown> = { label: a.label, mode: a.mode, count: a.count };
const TIMEOUT = 15 * 60_000;
const cpu0 = process.cpuUsage();
others.start();
const t0 = performance.now();
rss.reset();

if (a.mode === 'capture') {
  startCapture();
  await until(() => counters.payloads >= a.count, TIMEOUT, 'capture of the backlog');
  result.seconds = (performance.now() - t0) / 1000;
  captureAbort.abort();
  const p = await captureDone!;
  result.events = p.events;
  result.payloadBytes = p.bytes;
} else if (a.mode === 'apply') {
  startApply();
  await until(() => applied() >= a.count, TIMEOUT, 'apply of the stream');
  result.seconds = (performance.now() - t0) / 1000;
  result.events = applied();
  result.targetOps = status?.totals;
} else if (a.mode === 'e2e') {
  startCapture();
  startApply();
  await until(() => applied() >= a.count, TIMEOUT, 'capture + apply of the backlog');
  result.seconds = (performance.now() - t0) / 1000;
  result.events = applied();
  result.captureEvents = counters.payloads;
} else {
  // lag: start both, wait until apply holds its leases and capture is reading, then write.
  startCapture();
  startApply();
  await until(() => (status?.shards.length ?? 0) > 0 && status!.shards.every((s) => s.leased), 60_000, 'apply to start');
  await sleep(1000);
  lag!.reset();
  const writer = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'bench/workers/writer.ts'), JSON.stringify({ uri: a.sourceUri, db: a.db, rate: a.rate, seconds: a.seconds, bytes: a.bytes ?? 200 })],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  writer.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((r) => writer.on('exit', r));
  if (code !== 0) throw new Error(`writer exited ${String(code)}`);
  const w = JSON.parse(out.trim().split('\n').pop()!) as { writes: number; seconds: number; achievedRate: number };
  result.writer = w;
  // drain: every write applied (one event per write), or 30 s
  const drainStart = performance.now();
  await until(() => applied() >= w.writes || performance.now() - drainStart > 30_000, 60_000, 'drain').catch(() => undefined);
  result.seconds = (performance.now() - t0) / 1000;
  result.events = counters.payloads;
  // writes without a sample were collapsed into a later write of the same document in one batch
  result.lag = { ...lag!.summary(), notApplied: Math.max(0, w.writes - applied()), collapsed: Math.max(0, Math.min(w.writes, applied()) - lag!.count) };
}

result.cpuSeconds = cpuSince(cpu0);
result.otherCpuSeconds = others.stop();
result.peakRssBytes = rss.peakBytes;
result.kinesis = { ...counters, payloadsPerRecord: counters.payloads / Math.max(1, counters.records) };
captureAbort.abort();
applyAbort.abort();
await Promise.allSettled([captureDone, applyDone]);
await Promise.allSettled([source.close(), target.close()]);
kinesis.destroy();
rss.stop();
emitResult(result);
process.exit(0);
