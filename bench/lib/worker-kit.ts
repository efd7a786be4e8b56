/** Helpers shared by the benchmark worker processes. */
import { Writable } from 'node:stream';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { createLogger, type Logger } from '../../src/util/logger.js';

export function workerArgs<T>(): T {
  const raw = process.argv[2];
  if (!raw) throw new Error('worker: missing JSON argument');
  return JSON.parse(raw) as T;
}

/** One line `RESULT {json}` on stdout: the orchestrator parses it. */
export function emitResult(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** The product's logger at warn level, to stderr (the orchestrator keeps the tail for errors). */
export function quietLogger(): Logger {
  const out = new Writable({
    write(chunk, _enc, cb) {
      const line = chunk.toString();
      if (/"level":(40|50|60)/.test(line)) process.stderr.write(line);
      cb();
    },
  });
  return createLogger({ format: 'json', verbose: false, out: out as unknown as NodeJS.WritableStream });
}

/** Samples this process's RSS every `everyMs` (peak since the last reset). */
export class RssSampler {
  private peak = 0;
  /** process.memoryUsage() at the peak */
  atPeak: NodeJS.MemoryUsage | undefined;
  /** [seconds since reset, rss MiB, heapUsed MiB] every second */
  timeline: Array<[number, number, number]> = [];
  private since = performance.now();
  private lastTimeline = 0;
  private timer: NodeJS.Timeout;
  constructor(everyMs = 50) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }
  sample(): number {
    const rss = process.memoryUsage.rss();
    if (rss > this.peak) {
      this.peak = rss;
      this.atPeak = process.memoryUsage();
    }
    const now = performance.now();
    if (now - this.lastTimeline >= 1000) {
      this.lastTimeline = now;
      this.timeline.push([Math.round((now - this.since) / 100) / 10, Math.round(rss / 1048576), Math.round(process.memoryUsage().heapUsed / 1048576)]);
    }
    return rss;
  }
  reset(): void {
    this.peak = 0;
    this.timeline = [];
    this.since = performance.now();
    this.lastTimeline = 0;
    this.sample();
  }
  /** MiB figures of the peak sample */
  breakdown(): Record<string, number> | undefined {
    const m = this.atPeak;
    if (!m) return undefined;
    const f = (x: number) => Math.round(x / 1048576);
    return { rss: f(m.rss), heapTotal: f(m.heapTotal), heapUsed: f(m.heapUsed), external: f(m.external), arrayBuffers: f(m.arrayBuffers) };
  }
  get peakBytes(): number {
    this.sample();
    return this.peak;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** CPU seconds (user + system) of this process since `from`. */
export function cpuSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

export interface KinesisCounters {
  putRecordsCalls: number;
  /** records acknowledged */
  records: number;
  /** payloads (events) in the acknowledged records, from the frame headers */
  payloads: number;
  /** acknowledged record bytes: data + partition key */
  recordBytes: number;
  putRecordCalls: number;
  getRecordsCalls: number;
}

/**
 * Wraps `client.send` to count what Kinesis acknowledged: PutRecords calls, records, record bytes,
 * and the payloads inside them (read from the record-framing header: single = 1, aggregate = its
 * entry count, chunk = 1 on the last chunk). Also counts PutRecord (the seed's call) and GetRecords.
 */
export function countKinesis(client: KinesisClient): KinesisCounters {
  const c: KinesisCounters = { putRecordsCalls: 0, records: 0, payloads: 0, recordBytes: 0, putRecordCalls: 0, getRecordsCalls: 0 };
  const send = client.send.bind(client) as (cmd: unknown, opts?: unknown) => Promise<unknown>;
  (client as unknown as { send: typeof send }).send = async (cmd: unknown, opts?: unknown) => {
    const name = (cmd as { constructor: { name: string } }).constructor.name;
    const out = await send(cmd, opts);
    if (name === 'PutRecordsCommand') {
      c.putRecordsCalls++;
      const entries = (cmd as { input: { Records: Array<{ Data: Uint8Array; PartitionKey: string }> } }).input.Records;
      const results = (out as { Records?: Array<{ ErrorCode?: string }> }).Records ?? [];
      entries.forEach((e, i) => {
        if (results[i]?.ErrorCode) return;
        c.records++;
        c.recordBytes += e.Data.length + e.PartitionKey.length;
        c.payloads += payloadsInFrame(e.Data);
      });
    } else if (name === 'PutRecordCommand') {
      const e = (cmd as { input: { Data: Uint8Array; PartitionKey: string } }).input;
      c.putRecordCalls++;
      c.records++;
      c.payloads++;
      c.recordBytes += e.Data.length + e.PartitionKey.length;
    } else if (name === 'GetRecordsCommand') {
      c.getRecordsCalls++;
    }
    return out;
  };
  return c;
}

function payloadsInFrame(data: Uint8Array): number {
  if (data.length < 48 || data[0] !== 0xf5) return 1;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (data[2]) {
    case 1:
      return 1;
    case 2:
      return view.getUint32(48);
    case 3:
      return view.getUint32(56) === view.getUint32(60) - 1 ? 1 : 0;
    default:
      return 1;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
