/**
 * In-process pipeline: the product's runCapture and runApply, unchanged, with
 *  - the source replaced by a piped stream of synthetic change events from a child process
 *    (deserialised here with the driver's BSON library and options),
 *  - Kinesis replaced by an in-memory shard log behind the SDK's HTTP handler (MemoryKinesis:
 *    real SDK marshalling and signing, real record framing, aggregation and compression),
 *  - the state store in memory and the target a stub that BSON-serialises every write.
 * Phase 1 captures the whole backlog into the log; phase 2 applies the whole log. CPU seconds are
 * this process's (minus the in-memory log's own handler time); peak RSS is sampled per phase.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runCapture } from '../../src/source/capture-runner.js';
import { stats } from '../../src/observability/stats.js';
import { runApply } from '../../src/apply/apply-runner.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { MemoryKinesis } from '../lib/memory-kinesis.js';
import { memoryStateStore, stubTarget } from '../lib/memory-state.js';
import { pipedSource } from '../lib/piped-source.js';
import { createKinesisClient } from '../../src/transport/kinesis-client.js';
import { RssSampler, countKinesis, cpuSince, emitResult, quietLogger, sleep, workerArgs } from '../lib/worker-kit.js';

interface Args {
  label: string;
  count: number;
  bytes: number;
  mix: string;
  shards: number;
  /** skip the apply phase */
  captureOnly?: boolean;
  /** GetRecords Limit of apply (ShardReaderTuning.limit; default: the product's, 10,000) */
  applyLimit?: number;
  /** The log runs in another process (workers/memory-kinesis-server.ts) at this endpoint */
  endpoint?: string;
  /** Which phases this process runs (default both) */
  phase?: 'capture' | 'apply' | 'both';
  /** Write a V8 CPU profile of the measured window (capture + apply, not start-up) to this file */
  profile?: string;
}

const a = workerArgs<Args>();
const log = quietLogger();
const rules = new NamespaceRules({ include: ['bench.*'] });
const mem = new MemoryKinesis('bench', a.shards);
const kinesis = a.endpoint ? createKinesisClient({ region: 'us-east-1', endpoint: a.endpoint }) : mem.client();
const phase = a.phase ?? 'both';
const counters = countKinesis(kinesis);
const store = memoryStateStore();
const rss = new RssSampler(25);
const baseRss = process.memoryUsage.rss();
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
/** event-loop delay since the last call, ms */
const takeLoopDelay = () => {
  const r = { maxMs: Math.round(loopDelay.max / 1e6), p99Ms: Math.round(loopDelay.percentile(99) / 1e6) };
  loopDelay.reset();
  return r;
};

const profiler = a.profile ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 500 });
  await profiler.post('Profiler.start');
}

let capture: Record<string, unknown> | undefined;
let log1: { records: number; dataBytes: number } | undefined;
if (phase !== 'apply') {
  // ---- phase 1: capture the backlog
  const src = pipedSource(a.count, a.bytes, a.mix);
  const abort = new AbortController();
  const serverMs0 = mem.stats.serverMs;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  rss.reset();
  takeLoopDelay();
  const captureRun = runCapture({
    source: src.client,
    store,
    migrationId: 'bench',
    rules,
    kinesis,
    streamName: 'bench',
    cdcOnly: true,
    signal: abort.signal,
    log,
    checkpointIntervalMs: 1000,
  });
  const watcher = (async () => {
    // Stop once capture has handed every event to its producer (its own count), not when the log
    // holds `count` payloads: once (CI, smoke size) the log reached the count while capture had
    // counted 498 of 500, and the stop ended the run there (cause not established; a payload the
    // log received twice would do it). The stop flushes what was handed over, and apply's count
    // checks that all of it arrived.
    const admitted = () => Object.values(stats.capture.events).reduce((n, x) => n + x, 0);
    while (admitted() < a.count) await sleep(5);
    abort.abort();
  })();
  const progress = await captureRun;
  await watcher;
  const captureSeconds = (performance.now() - t0) / 1000;
  const captureServerMs = mem.stats.serverMs - serverMs0;
  const captureCpu = cpuSince(cpu0) - captureServerMs / 1000;
  const captureRss = rss.peakBytes;
  const captureRssBreakdown = rss.breakdown();
  await src.done;
  log1 = mem.summary();
  capture = {
    events: progress.events,
    payloadBytes: progress.bytes,
    seconds: captureSeconds,
    cpuSeconds: captureCpu,
    serverSeconds: captureServerMs / 1000,
    sourceBsonBytes: src.bytesRead(),
    peakRssBytes: captureRss,
    peakMemoryMiB: captureRssBreakdown,
    rssTimeline: rss.timeline,
    eventLoopDelay: takeLoopDelay(),
    putRecordsCalls: counters.putRecordsCalls,
    records: counters.records,
    recordBytes: counters.recordBytes,
    payloadsPerRecord: counters.payloads / Math.max(1, counters.records),
  };
}

let apply: Record<string, unknown> | undefined;
if (!a.captureOnly && phase !== 'capture') {
  // ---- phase 2: apply the whole log
  if (global.gc) global.gc();
  await sleep(100);
  const target = stubTarget();
  const serverMs1 = mem.stats.serverMs;
  const cpu1 = process.cpuUsage();
  const t1 = performance.now();
  rss.reset();
  takeLoopDelay();
  const result = await runApply({
    target: target.client,
    store,
    migrationId: 'bench',
    rules,
    kinesis,
    streamName: 'bench',
    ownerId: 'bench',
    cdcOnly: true,
    logger: log,
    stopWhenCaughtUp: true,
    statusIntervalMs: 100,
    ...(a.applyLimit ? { consumer: { limit: a.applyLimit } } : {}),
  });
  const applySeconds = (performance.now() - t1) / 1000;
  const applyServerMs = mem.stats.serverMs - serverMs1;
  const applyCpu = cpuSince(cpu1) - applyServerMs / 1000;
  apply = {
    events: result.status.sessionEvents,
    seconds: applySeconds,
    cpuSeconds: applyCpu,
    serverSeconds: applyServerMs / 1000,
    peakRssBytes: rss.peakBytes,
    peakMemoryMiB: rss.breakdown(),
    rssTimeline: rss.timeline,
    eventLoopDelay: takeLoopDelay(),
    limit: a.applyLimit ?? 10_000,
    targetOps: target.stats.ops,
    bulkWrites: target.stats.bulkWrites,
    getRecordsCalls: mem.stats.getRecordsCalls,
  };
}

if (profiler) {
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(a.profile!, JSON.stringify(profile));
  profiler.disconnect();
}
rss.stop();
emitResult({
  label: a.label,
  count: a.count,
  bytes: a.bytes,
  mix: a.mix,
  shards: a.shards,
  baseRssBytes: baseRss,
  capture,
  log: a.endpoint ? undefined : { records: log1?.records, dataBytes: log1?.dataBytes, storedChars: mem.stats.storedChars },
  transport: a.endpoint ? 'sidecar' : 'in-process',
  apply,
  maxRssBytes: process.resourceUsage().maxRSS * 1024,
});
process.exit(0);
