/**
 * Results of a bench run: the capacity model for real Kinesis and the markdown report.
 */
import { BSON } from 'mongodb';
import type { ProfileSummary } from './profile.js';
import { makeDoc, prng } from './workload.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface BenchResults {
  startedAt: string;
  finishedAt?: string;
  totalSeconds?: number;
  machine: Obj;
  flags: Obj;
  stackPids?: Record<string, number>;
  stack: Record<string, Obj>;
  seed: Record<string, Obj>;
  lag: Record<string, Obj>;
  load: Obj[];
  loadDocuments?: number;
  /** The `partitions` section (bench/run.ts partitionsBench). */
  partitions?: Obj;
  inproc: Record<string, Obj>;
  backlog?: Obj;
  /** Kinesis records/s per shard at steady event rates (workers/record-rate.ts), by rate */
  recordRate?: Record<string, Obj>;
  profile?: { run: Obj; file: string; summary: ProfileSummary | undefined; otherFiles: string[] };
  capacity?: Obj;
}

const MiB = 1024 * 1024;
const KINESIS = { inBytes: MiB, inRecords: 1000, outBytes: 2 * MiB, outReads: 5, readRecords: 10_000, readBytes: 10 * MiB, recordOverhead: 32 };

/** The seed's record for an insert of a `bytes` document: EJSON of doc + JSON body + metadata; key = a resume token. */
export function seedRecordBytes(bytes: number, tokenChars: number): number {
  const rand = prng(9);
  let total = 0;
  for (let i = 0; i < 50; i++) {
    const doc = makeDoc(i, bytes, rand);
    const { _id, ...body } = doc;
    const payload = { _id: String(_id), ...body, insert_body: JSON.stringify(body), operation: 'insert', coll: 'docs', timestamp: '1700000000', timestampReadable: '2023-11-14T22:13:20' };
    total += Buffer.byteLength(BSON.EJSON.stringify(payload)) + tokenChars;
  }
  return total / 50;
}

/**
 * Shards needed per workload on real Kinesis (1 MiB/s and 1000 records/s in, 2 MiB/s and 5
 * GetRecords/s out per shard; GetRecords ≤ 10,000 records / 10 MiB), from the measured bytes per
 * event and events per record:
 *  - ours: aggregated + compressed records as measured in-process (backlog-sized records);
 *  - ours without aggregation: one record per event (payload + 48 B frame header + 32 B key);
 *  - seed: one JSON record per event; its apply reads 1 record per GetRecords and only shard 0.
 */
export function capacityModel(r: BenchResults): Obj {
  const rates = [1_000, 10_000, 50_000];
  const rows: Obj[] = [];
  for (const [name, run] of Object.entries(r.inproc)) {
    const c = run.capture;
    if (!c) continue;
    const events = c.events as number;
    const payload = c.payloadBytes / events;
    const wireAgg = c.recordBytes / events;
    const perRecord = c.payloadsPerRecord as number;
    const recordBytes = c.recordBytes / c.records;
    const aggIn = Math.min(KINESIS.inBytes / wireAgg, KINESIS.inRecords * perRecord);
    const aggOut = Math.min(KINESIS.outBytes / wireAgg, KINESIS.outReads * Math.min(KINESIS.readRecords, KINESIS.readBytes / recordBytes) * perRecord);
    const plain = payload + 48 + KINESIS.recordOverhead;
    const plainIn = Math.min(KINESIS.inBytes / plain, KINESIS.inRecords);
    const plainOut = Math.min(KINESIS.outBytes / plain, KINESIS.outReads * Math.min(KINESIS.readRecords, KINESIS.readBytes / plain));
    const seedBytes = seedRecordBytes(run.bytes, 100);
    const seedIn = Math.min(KINESIS.inBytes / seedBytes, KINESIS.inRecords);
    const seedOut = KINESIS.outReads; // Limit=1
    const per = (inCap: number, outCap: number) => Math.min(inCap, outCap);
    rows.push({
      workload: `${run.bytes} B docs, mixed ops`,
      payloadBytesPerEvent: Math.round(payload),
      wireBytesPerEventAggregated: Math.round(wireAgg * 10) / 10,
      eventsPerRecord: Math.round(perRecord),
      ours: { perShardIn: Math.floor(aggIn), perShardOut: Math.floor(aggOut), shards: rates.map((x) => Math.ceil(x / per(aggIn, aggOut))) },
      oursNoAggregation: { perShardIn: Math.floor(plainIn), perShardOut: Math.floor(plainOut), shards: rates.map((x) => Math.ceil(x / per(plainIn, plainOut))) },
      seed: { recordBytes: Math.round(seedBytes), perShardIn: Math.floor(seedIn), perShardOut: seedOut, shards: rates.map((x) => (x <= seedOut ? 1 : null)) },
      name,
    });
  }
  return { rates, limits: KINESIS, rows };
}

// ---------------------------------------------------------------------------------------------
// formatting

const fmt = (x: number | undefined, digits = 0): string => {
  if (x === undefined || x === null || Number.isNaN(x)) return 'n/a';
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
};
const rate = (events: number | undefined, seconds: number | undefined) => (events && seconds ? events / seconds : undefined);
const mib = (b: number | undefined) => (b === undefined ? undefined : b / MiB);
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? a / b : undefined);

function cpuPer100k(run: Obj | undefined, events?: number): number | undefined {
  if (!run) return undefined;
  return (run.cpuSeconds / (events ?? run.events)) * 100_000;
}

export function renderMarkdown(r: BenchResults): string {
  const L: string[] = [];
  const m = r.machine;
  const s = r.stack.small ?? {};
  const md = r.stack.medium ?? {};
  const seed = r.seed.small ?? {};
  const ip = r.inproc;
  const ipRate = (x: Obj | undefined) => (x?.apply ? x.capture.events / (x.capture.cpuSeconds + x.apply.cpuSeconds) : undefined);

  L.push(`## Benchmarks`, '');
  L.push(
    `Measured ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC on ${m.nproc} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}; ` +
      `load average ${m.loadAverageAtStart?.join(' / ')} at start, ${m.loadAverageAtEnd?.join(' / ') ?? 'n/a'} at end. Total run ${fmt(r.totalSeconds)} s.`,
    '',
  );
  L.push('| figure | migrator | seed loop | ratio · target |', '|---|---:|---:|---|');
  const e2eOurs = rate(s.e2e?.events, s.e2e?.seconds);
  const e2eSeed = rate(seed.e2e?.events, seed.e2e?.seconds);
  const asWritten = rate(seed.asWritten?.events, seed.asWritten?.seconds);
  const target50 = (x: number | undefined) => (x === undefined ? '' : x >= 50 ? ' ✅ (≥ 50×)' : ' ❌ (target ≥ 50×)');
  if (s.capture) {
    L.push(`| capture, 200 B docs (stack) | ${fmt(rate(s.capture.events, s.capture.seconds))} ev/s · ${fmt(mib(s.capture.payloadBytes / s.capture.seconds), 2)} MiB/s payload · ${fmt(mib(s.capture.kinesis.recordBytes / s.capture.seconds), 2)} MiB/s to Kinesis | ${fmt(rate(seed.capture?.events, seed.capture?.seconds))} ev/s | ${fmt(ratio(rate(s.capture.events, s.capture.seconds), rate(seed.capture?.events, seed.capture?.seconds)), 1)}× |`);
  }
  if (md.capture) {
    L.push(`| capture, 2 KiB docs (stack) | ${fmt(rate(md.capture.events, md.capture.seconds))} ev/s · ${fmt(mib(md.capture.payloadBytes / md.capture.seconds), 2)} MiB/s payload · ${fmt(mib(md.capture.kinesis.recordBytes / md.capture.seconds), 2)} MiB/s to Kinesis | | |`);
  }
  if (s.apply) L.push(`| apply, 200 B docs (stack) | ${fmt(rate(s.apply.events, s.apply.seconds))} ev/s | ${fmt(rate(seed.apply?.events, seed.apply?.seconds))} ev/s | ${fmt(ratio(rate(s.apply.events, s.apply.seconds), rate(seed.apply?.events, seed.apply?.seconds)), 1)}× |`);
  if (md.apply) L.push(`| apply, 2 KiB docs (stack) | ${fmt(rate(md.apply.events, md.apply.seconds))} ev/s | | |`);
  if (s.e2e) {
    L.push(`| **capture + apply end to end**, 200 B docs (stack) | **${fmt(e2eOurs)} ev/s** | ${fmt(e2eSeed)} ev/s (as written, with its sleep(0.1): ${fmt(asWritten, 1)} ev/s) | **${fmt(ratio(e2eOurs, e2eSeed), 1)}×**${target50(ratio(e2eOurs, e2eSeed))}; ${fmt(ratio(e2eOurs, asWritten))}× vs as written |`);
  }
  if (md.e2e) L.push(`| capture + apply end to end, 2 KiB docs (stack) | ${fmt(rate(md.e2e.events, md.e2e.seconds))} ev/s | | |`);
  const lo = r.lag.ours?.lag;
  const ls = r.lag.seed?.lag;
  if (lo) {
    const rateTxt = `${fmt(r.lag.ours.writer?.achievedRate)} ops/s`;
    const seedTxt = ls ? `${fmt(ls.p50Ms)} / ${fmt(ls.p99Ms)} ms${ls.notApplied ? ` of the writes it applied; ${fmt(ls.notApplied)} of ${fmt(r.lag.seed.writer?.writes)} not applied 5 s after the writes stopped` : ''}` : 'n/a';
    L.push(`| end-to-end lag p50 / p99 at a steady ${rateTxt} | ${fmt(lo.p50Ms)} / ${fmt(lo.p99Ms)} ms | ${seedTxt} | |`);
  }
  const ppr = s.capture?.kinesis?.payloadsPerRecord;
  const pprSteady = r.lag.ours?.kinesis?.payloadsPerRecord;
  const pprIn = ip.small?.capture?.payloadsPerRecord;
  if (ppr !== undefined) {
    L.push(`| events per Kinesis record, 200 B docs | ${fmt(ppr, 1)} (stack backlog) · ${fmt(pprIn, 1)} (in-process) · ${fmt(pprSteady, 1)} (steady ${fmt(r.lag.ours?.writer?.achievedRate)} ops/s) | 1 | ${ppr >= 20 && (pprSteady === undefined || pprSteady >= 20) ? '✅' : '⚠️'} target ≥ 20 |`);
  }
  const ptl = r.partitions;
  if (ptl?.single && ptl.p1 && ptl.p2 && ptl.p4) {
    const rateOf = (x: Obj) => ptl.documents / x.seconds;
    const sp = (x: Obj) => `${fmt(ptl.single.seconds / x.seconds, 2)}×`;
    const saving = ptl.resume ? ` · resume after a kill at ~60 %: ${fmt((1 - ptl.resume.wall.resume / ptl.resume.wall.fullReload) * 100, 0)}% less time, ${fmt((1 - ptl.resume.work.resume / ptl.resume.work.fullReload) * 100, 0)}% fewer documents written than a full reload` : '';
    L.push(
      `| initial load of one ${fmt(ptl.documents)}-document collection, ${fmt(ptl.p2.ranges)} \`_id\` ranges, 1 / 2 / 4 at once | ${fmt(rateOf(ptl.p1))} / ${fmt(rateOf(ptl.p2))} / ${fmt(rateOf(ptl.p4))} docs/s (single pipe ${fmt(rateOf(ptl.single))}, raw shell pipe ${ptl.raw ? fmt(rateOf(ptl.raw)) : 'n/a'}) | | ${sp(ptl.p1)} / ${sp(ptl.p2)} / ${sp(ptl.p4)} vs the single pipe${saving} |`,
    );
  }
  const loads = summarizeLoads(r);
  if (loads) {
    const diff = loads.slowerPct >= 0 ? `${fmt(loads.slowerPct, 1)}% slower` : `${fmt(-loads.slowerPct, 1)}% faster`;
    L.push(`| initial load (${fmt(r.loadDocuments)} docs; best of ${loads.reps}) | runDumpRestorePipe ${fmt(loads.product.docsPerSec)} docs/s (median ${fmt(loads.productMedian)}) | shell pipe ${fmt(loads.shell.docsPerSec)} docs/s (median ${fmt(loads.shellMedian)}) | ${diff} ${loads.slowerPct <= 10 ? '✅' : '❌'} (target ≤ 10% slower) |`);
  }
  if (ip.kib) {
    const per = ['small', 'kib', 'medium'].map((k) => fmt(ipRate(ip[k]))).join(' / ');
    L.push(`| in-process pipeline, events per CPU-second, 200 B / 1 KiB / 2 KiB | ${per} | | ${(ipRate(ip.kib) ?? 0) >= 30_000 ? '✅' : '❌'} target ≥ 30,000 for 1 KiB |`);
  }
  const b = r.backlog;
  if (b?.capture) {
    const capPeak = b.capture.peakRssBytes;
    const appPeak = b.apply?.peakRssBytes;
    const bnd = b.applyBounded;
    const ok = (x: number | undefined) => (x !== undefined && x < 300 * MiB ? '✅' : '❌');
    L.push(
      `| peak RSS, ${fmt(b.count)}-event backlog (200 B docs; migrator process, shard log in another process) | capture ${fmt(mib(capPeak))} MiB ${ok(capPeak)} · apply ${appPeak ? `${fmt(mib(appPeak))} MiB ${ok(appPeak)}` : 'failed'} (defaults) · apply ${bnd?.peakRssBytes ? `${fmt(mib(bnd.peakRssBytes))} MiB ${ok(bnd.peakRssBytes)}` : 'failed'} (GetRecords Limit ${fmt(bnd?.limit)}, --max-old-space-size=${r.flags.boundedHeap ?? r.flags['bounded-heap']}) | | target < 300 MiB |`,
    );
  }
  const stackCpu = (x: Obj | undefined) => {
    if (!x) return undefined;
    const o = x.otherCpuSeconds ?? {};
    return ((x.cpuSeconds + (o.source ?? 0) + (o.target ?? 0) + (o.kinesis ?? 0)) / x.events) * 100_000;
  };
  if (s.e2e && seed.e2e) {
    const a = stackCpu(s.e2e);
    const b2 = stackCpu(seed.e2e);
    L.push(`| CPU seconds per 100k events end to end, whole stack (migrator + emulators + kinesis-local) | ${fmt(a, 1)} | ${fmt(b2, 1)} | ${fmt(ratio(b2, a), 1)}× less CPU per event${(ratio(b2, a) ?? 0) >= 50 ? ' (≥ 50×)' : ''} |`);
  }
  const cpuE2e = cpuPer100k(s.e2e);
  const cpuSeed = cpuPer100k(seed.e2e);
  if (cpuE2e !== undefined || ip.kib) {
    const inproc = ip.kib ? (100_000 * (ip.kib.capture.cpuSeconds + ip.kib.apply.cpuSeconds)) / ip.kib.capture.events : undefined;
    L.push(`| CPU seconds per 100k events | ${fmt(cpuE2e, 1)} (stack e2e, 200 B, migrator process) · ${fmt(inproc, 1)} (in-process, 1 KiB) | ${fmt(cpuSeed, 1)} (stack e2e, seed process) | |`);
  }
  L.push('');

  // ---- stack details
  const stackRows: string[] = [];
  const addRow = (label: string, x: Obj | undefined) => {
    if (!x) return;
    const o = x.otherCpuSeconds ?? {};
    stackRows.push(
      `| ${label} | ${fmt(x.events)} | ${fmt(x.seconds, 2)} | ${fmt(rate(x.events, x.seconds))} | ${fmt(x.cpuSeconds, 2)} | ${fmt(o.source, 2)} | ${fmt(o.target, 2)} | ${fmt(o.kinesis, 2)} | ${fmt(mib(x.peakRssBytes))} | ${x.kinesis ? fmt(x.kinesis.putRecordsCalls + x.kinesis.putRecordCalls) : ''} | ${x.kinesis?.records ? fmt(x.kinesis.payloads / x.kinesis.records, 1) : ''} |`,
    );
  };
  addRow('ours capture, 200 B', s.capture);
  addRow('ours apply, 200 B', s.apply);
  addRow('ours e2e, 200 B', s.e2e);
  addRow('ours capture, 2 KiB', md.capture);
  addRow('ours apply, 2 KiB', md.apply);
  addRow('ours e2e, 2 KiB', md.e2e);
  addRow('seed capture, 200 B', seed.capture);
  addRow('seed apply, 200 B', seed.apply);
  addRow('seed e2e, 200 B', seed.e2e);
  addRow('seed e2e as written, 200 B', seed.asWritten);
  addRow('ours, steady writes (lag run)', r.lag.ours);
  addRow('seed, steady writes (lag run)', r.lag.seed);
  if (stackRows.length > 0) {
    L.push('### On the local stack', '');
    L.push(
      `Backlogs written to the source emulator before each run: ${fmt(s.count)} operations on 200 B documents, ${fmt(md.count)} on 2 KiB documents, ` +
        `60% inserts / 30% updates / 10% deletes (events are read with fullDocument: updateLookup). Streams: ${r.flags.shards} shard(s) for ours, 1 for the seed ` +
        `(its apply reads shard 0 only). The seed loop processes the first ${fmt(seed.count)} events of the same backlog. CPU seconds per process over the run window; ` +
        `the emulators and kinesis-local are separate processes on the same ${m.nproc} cores.`,
      '',
    );
    L.push('| run | events | s | events/s | migrator CPU s | source emu CPU s | target emu CPU s | kinesis-local CPU s | peak RSS MiB | Put calls | events/record |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    L.push(...stackRows, '');
  }
  if (lo) {
    L.push(
      `Lag: a writer process inserts/updates documents at a steady rate (70/30), each carrying its wall-clock write time; the lag of a write is the time until the ` +
        `target acknowledged the apply write carrying it (command monitoring on apply's target client). Ours: p50 ${fmt(lo.p50Ms)} ms, p90 ${fmt(lo.p90Ms)} ms, p99 ${fmt(lo.p99Ms)} ms, max ${fmt(lo.maxMs)} ms over ${fmt(lo.samples)} writes (${fmt(lo.collapsed)} more were superseded by a later write of the same document in the same batch, ${fmt(lo.notApplied)} not applied)` +
        (ls ? `; seed: p50 ${fmt(ls.p50Ms)} ms, p90 ${fmt(ls.p90Ms)} ms, p99 ${fmt(ls.p99Ms)} ms, max ${fmt(ls.maxMs)} ms over ${fmt(ls.samples)} applied writes${ls.notApplied ? `, ${fmt(ls.notApplied)} not applied within 5 s after the writes stopped (it applies ~${fmt(rate(r.lag.seed.events, r.lag.seed.seconds))} events/s)` : ''}.` : '.'),
      '',
    );
  }

  // ---- initial load
  if (loads) {
    L.push('### Initial load', '');
    L.push(`Same data (${fmt(r.loadDocuments)} documents: 200 B and 2 KiB collections), same binaries (mongo-tools built by \`npm run tools\`), same arguments: \`mongodump ${loads.product.dumpArgs.join(' ')}\` | \`mongorestore ${loads.product.restoreArgs.join(' ')}\`; runs alternate; the summary compares the best run of each (medians alongside).`, '');
    L.push('| run | s | docs/s | migrator CPU s | tools CPU s | source emu CPU s | target emu CPU s |', '|---|---:|---:|---:|---:|---:|---:|');
    for (const x of r.load) {
      L.push(`| ${x.label} | ${fmt(x.seconds, 2)} | ${fmt(x.restored / x.seconds)} | ${fmt(x.selfCpuSeconds, 2)} | ${fmt(x.toolsCpuSeconds, 2)} | ${fmt(x.otherCpuSeconds?.source, 2)} | ${fmt(x.otherCpuSeconds?.target, 2)} |`);
    }
    L.push('');
  }

  // ---- partitioned load
  const pt = r.partitions;
  if (pt) {
    L.push('### Initial load of one large collection: `_id` ranges in parallel, and the resume after a kill', '');
    L.push(
      `${fmt(pt.documents)} documents of 200 B in one collection (${fmt(mib(pt.collectionBytes), 1)} MiB by collStats), loaded by the product's \`runInitialLoad\` (what \`full-migrate\` runs) into an empty target database: ` +
        `as one unit (today's single pipe: --partition-size larger than the collection), and with --partition-size ${fmt(pt.partitionSize / 1024, 0)} KiB (about ${fmt(pt.rangesWanted)} \`_id\` ranges, each a \`mongodump --query\` | \`mongorestore\` pipe) run 1, 2 and 4 at once (--load-parallelism); ` +
        'and by a raw `mongodump | mongorestore` in bash with the same binaries and the arguments of the single pipe. Every load ended with the target count equal to the source count. ' +
        'Migrator CPU = the process running the load; tools = its mongodump/mongorestore children (bash and its children for the raw pipe). The emulators are single-threaded Node processes on 2 shared cores, so the absolute rates are modest; the ratios are the point.',
      '',
    );
    const single = pt.single as Obj | undefined;
    const raw = pt.raw as Obj | undefined;
    L.push('| run | units | s | docs/s | speedup vs single pipe | vs raw pipe | migrator CPU s | tools CPU s | source emu CPU s | target emu CPU s |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const key of ['raw', 'single', 'p1', 'p2', 'p4']) {
      const x = pt[key] as Obj | undefined;
      if (!x) continue;
      const units = key === 'raw' ? '1 (bash)' : key === 'single' ? '1' : `${fmt(x.ranges)} ranges${x.indexUnits ? ' + indexes' : ''}`;
      const vsSingle = single && x !== single ? `${fmt(single.seconds / x.seconds, 2)}×` : '';
      const d = raw ? (x.seconds / raw.seconds - 1) * 100 : 0;
      const vsRaw = raw && x !== raw ? `${fmt(Math.abs(d), 1)}% ${d >= 0 ? 'slower' : 'faster'}` : '';
      const docs = (x.restored as number) || pt.documents;
      L.push(`| ${x.label} | ${units} | ${fmt(x.seconds, 2)} | ${fmt(docs / x.seconds)} | ${vsSingle} | ${vsRaw} | ${fmt(x.selfCpuSeconds, 2)} | ${fmt(x.toolsCpuSeconds, 2)} | ${fmt(x.otherCpuSeconds?.source, 2)} | ${fmt(x.otherCpuSeconds?.target, 2)} |`);
    }
    L.push('');
    const rs = pt.resume as Obj | undefined;
    if (rs) {
      const k = rs.killed;
      L.push(
        `Resume: the load with 2 ranges at once was killed (SIGKILL of its process) with ${fmt(k.rangesDone)} of ${fmt(k.ranges)} ranges done, ${fmt(k.seconds, 1)} s in, and rerun. ` +
          'The rerun kept the finished ranges, removed the documents of the unfinished ones from the target and loaded those again. ' +
          "A full reload (what the load did before: restart with --drop) costs the kill's time plus a whole load (the 2-at-once run above). " +
          'Documents written = the target count after the kill (finished and half-done ranges) + what the second attempt restored; tool-reported = the documents mongorestore reported for the finished ranges of the killed run + those of the rerun.',
        '',
      );
      L.push('| | documents written | × collection | wall s | |', '|---|---:|---:|---:|---|');
      L.push(`| killed run | ${fmt(k.targetCountAfterKill)} | ${fmt(k.targetCountAfterKill / pt.documents, 2)} | ${fmt(k.seconds, 2)} | ${fmt(k.rangesDone)}/${fmt(k.ranges)} ranges done |`);
      L.push(`| rerun (resume) | ${fmt(rs.rerun.restored)} | ${fmt(rs.rerun.restored / pt.documents, 2)} | ${fmt(rs.rerun.seconds, 2)} | ${fmt(rs.rerun.unitsRun)} units run, ${fmt(rs.rerun.unitsKept)} kept |`);
      L.push(`| **total with resume** | ${fmt(rs.work.resume)} | ${fmt(rs.work.resume / pt.documents, 2)} | ${fmt(rs.wall.resume, 2)} | tool-reported ${fmt(rs.work.toolReported)} (${fmt(rs.work.toolReported / pt.documents, 2)}×) |`);
      L.push(`| total with a full reload | ${fmt(rs.work.fullReload)} | ${fmt(rs.work.fullReload / pt.documents, 2)} | ${fmt(rs.wall.fullReload, 2)} | |`);
      L.push(`| **saving** | ${fmt((1 - rs.work.resume / rs.work.fullReload) * 100, 0)}% | | ${fmt((1 - rs.wall.resume / rs.wall.fullReload) * 100, 0)}% | |`);
      L.push('');
    }
  }

  // ---- in-process
  const ipRows = Object.entries(ip);
  if (ipRows.length > 0 || b) {
    L.push('### In-process (transport = in-memory shard log)', '');
    L.push(
      'runCapture and runApply unchanged; the source is a child process streaming synthetic change events as BSON (deserialised here with the driver\'s options), ' +
        'Kinesis is an in-memory shard log behind the AWS SDK\'s HTTP handler (real SDK marshalling and SigV4, real framing, aggregation and brotli; the log\'s own handler time is subtracted), ' +
        `the state store is in memory and the target a stub that BSON-serialises each write. ${r.flags.inprocShards ?? r.flags['inproc-shards'] ?? 4} shards. Capture of the whole backlog first, then apply of the whole log, in one process ` +
        '(so its RSS includes the log and both phases; the large-backlog runs below measure RSS properly). CPU figures exclude start-up.',
      '',
    );
    L.push('| run | events | capture ev/CPU-s | apply ev/CPU-s | pipeline ev/CPU-s | capture wall ev/s | events/record | record bytes / payload bytes | peak RSS capture / apply MiB |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, x] of ipRows) {
      const c = x.capture;
      const a = x.apply;
      L.push(
        `| ${name} (${x.bytes} B docs) | ${fmt(c.events)} | ${fmt(c.events / c.cpuSeconds)} | ${a ? fmt(a.events / a.cpuSeconds) : ''} | ${fmt(ipRate(x))} | ${fmt(c.events / c.seconds)} | ${fmt(c.payloadsPerRecord, 1)} | ${fmt(c.recordBytes / c.payloadBytes, 3)} | ${fmt(mib(c.peakRssBytes))} / ${fmt(mib(a?.peakRssBytes))} |`,
      );
    }
    L.push('');
  }
  if (b?.capture) {
    L.push(`#### Large backlog: ${fmt(b.count)} events (200 B docs, mixed ops, ${b.shards} shards)`, '');
    L.push(
      'Capture reads the whole backlog from the piped source into the shard log; then apply (a new process) applies the whole log. The shard log runs in its own process ' +
        '(loopback HTTP), so RSS is the migrator process\'s own, including ~' + fmt(mib(b.capture.baseRssBytes ?? r.backlog?.baseRssBytes)) + ' MiB of Node + tsx + modules at start. Event-loop delay from perf_hooks.',
      '',
    );
    L.push('| run | events/s (wall) | events/CPU-s | peak RSS MiB | heap used at peak MiB | array buffers at peak MiB | max event-loop delay ms |', '|---|---:|---:|---:|---:|---:|---:|');
    const row = (label: string, x: Obj | undefined) => {
      if (!x) return;
      if (x.failed) return L.push(`| ${label} | failed: ${String(x.failed).split('\n')[0].slice(0, 120)} | | | | | |`);
      L.push(`| ${label} | ${fmt(x.events / x.seconds)} | ${fmt(x.events / x.cpuSeconds)} | ${fmt(mib(x.peakRssBytes))} | ${fmt(x.peakMemoryMiB?.heapUsed)} | ${fmt(x.peakMemoryMiB?.arrayBuffers)} | ${fmt(x.eventLoopDelay?.maxMs)} |`);
    };
    row('capture, defaults', b.capture);
    row('apply, defaults (GetRecords Limit 10,000)', b.apply);
    row(`apply, GetRecords Limit ${fmt(b.applyBounded?.limit)} + --max-old-space-size=${r.flags.boundedHeap ?? r.flags['bounded-heap']}`, b.applyBounded);
    const hc = b.applyDefaultHeapCapped;
    if (hc) L.push('', `Apply with default settings under --max-old-space-size=${hc.heapMiB}: ${hc.ok ? `completed, peak RSS ${fmt(mib(hc.peakRssBytes))} MiB` : 'ran out of heap (JavaScript heap out of memory)'}.`);
    L.push('');
  }

  // ---- records per shard at steady event rates
  const rr = Object.values(r.recordRate ?? {});
  if (rr.length > 0) {
    L.push('### Kinesis records per second per shard at a steady event rate (in-process)', '');
    L.push(
      'The product\'s producer (aggregation, brotli, adaptive linger) sends change-event payloads at a steady rate into the in-memory shard log for a few seconds. ' +
        'Kinesis accepts 1,000 records/s and 1 MiB/s per shard (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html); the adaptive linger keeps each shard near its budget (50 records/s by default). ' +
        '"busiest second" = the most records any shard received in one second. "send → durable" = how long a payload waited from `send` until Kinesis acknowledged it (linger + call).',
      '',
    );
    L.push('| target events/s | achieved events/s | shards | records/s per shard (mean) | busiest second, one shard | events/record | send → durable p50 / p99 ms |', '|---:|---:|---:|---:|---:|---:|---:|');
    for (const x of rr) {
      L.push(
        `| ${fmt(x.targetRate)} | ${fmt(x.eventsPerSecond)} | ${x.shards} | ${fmt(x.recordsPerShardSecond, 1)} | ${fmt(x.maxRecordsPerShardSecond)} | ${fmt(x.eventsPerRecord, 1)} | ${fmt(x.durableWaitMs?.p50)} / ${fmt(x.durableWaitMs?.p99)} |`,
      );
    }
    L.push('');
  }

  // ---- capacity
  const cap = r.capacity;
  if (cap?.rows?.length) {
    L.push('### Capacity model: shards needed on real Kinesis', '');
    L.push(
      'Per shard: 1 MiB/s and 1,000 records/s in; 2 MiB/s and 5 GetRecords/s out (≤ 10,000 records / 10 MiB each). Bytes per event and events per record as measured in-process (backlog-sized records); ' +
        '"no aggregation" = one record per event (payload + 48 B header + 32 B key); the seed sends one JSON record per event (~100-char resume-token key) and reads 1 record per GetRecords, from shard 0 only, so it cannot apply more than 5 events/s however many shards.',
      '',
    );
    L.push(`| workload | bytes/event (payload → on the wire) | events/record | ours: events/s per shard (in / out) | shards for ${cap.rates.map((x: number) => fmt(x)).join(' / ')} ev/s | no aggregation: per shard | shards | seed: per shard (in / out) |`);
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const row of cap.rows) {
      L.push(
        `| ${row.workload} | ${fmt(row.payloadBytesPerEvent)} → ${fmt(row.wireBytesPerEventAggregated, 1)} | ${fmt(row.eventsPerRecord)} | ${fmt(row.ours.perShardIn)} / ${fmt(row.ours.perShardOut)} | ${row.ours.shards.join(' / ')} | ${fmt(row.oursNoAggregation.perShardIn)} / ${fmt(row.oursNoAggregation.perShardOut)} | ${row.oursNoAggregation.shards.join(' / ')} | ${fmt(row.seed.perShardIn)} / ${fmt(row.seed.perShardOut)} (none of these rates) |`,
      );
    }
    L.push('');
  }

  // ---- profile
  const p = r.profile?.summary;
  if (p) {
    L.push('### Profile of the in-process pipeline (V8 CPU profile, 1 KiB documents)', '');
    L.push(`\`${r.profile!.file}\` (inspector profile of the measured window: capture of ${fmt(r.profile!.run.count)} events, then apply), ${fmt(p.totalMs / 1000, 1)} s of samples. Stages are disjoint (a sample counts for the outermost stage on its stack; natives are charged to their caller).`, '');
    L.push('| stage | ms | % |', '|---|---:|---:|');
    for (const st of p.stages.slice(0, 16)) L.push(`| ${st.stage} | ${fmt(st.ms)} | ${fmt(st.pct, 1)} |`);
    L.push('', '| hottest functions (self time) | where | % |', '|---|---|---:|');
    for (const f of p.functions.slice(0, 12)) L.push(`| ${f.fn} | ${f.where} | ${fmt(f.pct, 1)} |`);
    L.push('');
  }
  return L.join('\n') + '\n';
}

function summarizeLoads(r: BenchResults) {
  if (r.load.length === 0) return undefined;
  const best = (mode: string) => {
    const runs = r.load.filter((x) => x.mode === mode);
    const x: Obj = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    return { ...x, docsPerSec: (x.restored as number) / (x.seconds as number) } as Obj;
  };
  const median = (mode: string) => {
    const v = r.load.filter((x) => x.mode === mode).map((x) => x.restored / x.seconds).sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const product = best('product');
  const shell = best('shell');
  const reps = r.load.filter((x) => x.mode === 'product').length;
  return { product, shell, reps, productMedian: median('product'), shellMedian: median('shell'), slowerPct: (product.seconds / shell.seconds - 1) * 100 };
}
