/**
 * In-memory Kinesis stream behind a `KinesisClient`-shaped object, for unit tests of the
 * transport: PutRecords (with injectable per-record failures, whole-call throttling/errors, and
 * "applied but the response was lost"), ListShards (paginated), DescribeStreamSummary,
 * GetShardIterator, GetRecords (closed shards end with a null NextShardIterator, injectable
 * ExpiredIterator/throttling), and resharding (split / merge, effective immediately).
 * It also checks the service limits on every PutRecords call and records violations.
 */
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordsCommand,
  type KinesisClient,
  type PutRecordsRequestEntry,
  type PutRecordsResultEntry,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { MAX_HASH_KEY, hashKeyOf, type HashKeyRange } from '../../src/transport/shard-map.js';

export interface FakeRecord {
  sequenceNumber: string;
  arrival: Date;
  data: Uint8Array;
  partitionKey: string;
  explicitHashKey: string | undefined;
}

export interface FakeShard {
  shardId: string;
  range: HashKeyRange;
  parentShardId?: string;
  adjacentParentShardId?: string;
  startingSequenceNumber: string;
  endingSequenceNumber?: string;
  records: FakeRecord[];
}

export type RecordFault = 'ProvisionedThroughputExceededException' | 'InternalFailure' | undefined;
export type CallFault = 'throttle' | 'internal' | 'network' | 'applied-then-network' | undefined;

export interface PutRecordsCallInfo {
  index: number;
  records: PutRecordsRequestEntry[];
  /** Shard each record targets (by ExplicitHashKey or MD5 of the partition key) at receipt. */
  targets: string[];
}

export function kinesisError(name: string, status: number, message = name): Error {
  const e = new Error(message) as Error & { $metadata: { httpStatusCode: number }; $fault: string };
  e.name = name;
  e.$metadata = { httpStatusCode: status };
  e.$fault = status >= 500 ? 'server' : 'client';
  return e;
}

export class FakeKinesis {
  readonly streamName: string;
  readonly shards: FakeShard[] = [];
  maxRecordSizeBytes: number;
  /** Report MaxRecordSizeInKiB in DescribeStreamSummary (kinesis-local does not by default). */
  reportMaxRecordSize: boolean;
  listShardsPageSize = 2;

  /** Latency of each PutRecords call in ms (default: next macrotask). */
  putLatencyMs: () => number = () => 0;
  getLatencyMs: () => number = () => 0;
  callFault: (call: PutRecordsCallInfo) => CallFault = () => undefined;
  recordFault: (call: PutRecordsCallInfo, recordIndex: number) => RecordFault = () => undefined;
  getRecordsFault: (shardId: string) => 'expired' | 'throttle' | undefined = () => undefined;
  /** Called just before a PutRecords call is applied (e.g. to reshard at a chosen moment). */
  beforeApply: (call: PutRecordsCallInfo) => void = () => {};
  /** Called for every record stored, in shard order. */
  onAppend: (shard: FakeShard, record: FakeRecord) => void = () => {};

  readonly violations: string[] = [];
  readonly calls: PutRecordsCallInfo[] = [];
  getRecordsCalls = 0;
  readonly getRecordsTimes = new Map<string, number[]>();
  /** Shards with a record currently inside a pending PutRecords call (by target at receipt). */
  private readonly inFlight = new Map<string, number>();
  checkOneInFlightPerShard = true;
  private seq = 49_600_000_000_000_000_000n;
  private nextShardNumber = 0;

  readonly client: KinesisClient;

  constructor(options: { streamName?: string; shardCount: number; maxRecordSizeBytes?: number; reportMaxRecordSize?: boolean }) {
    this.streamName = options.streamName ?? 'fake-stream';
    this.maxRecordSizeBytes = options.maxRecordSizeBytes ?? 1024 * 1024;
    this.reportMaxRecordSize = options.reportMaxRecordSize ?? false;
    const n = BigInt(options.shardCount);
    const width = (MAX_HASH_KEY + 1n) / n;
    for (let i = 0n; i < n; i++) {
      const start = i * width;
      const end = i === n - 1n ? MAX_HASH_KEY : (i + 1n) * width - 1n;
      this.addShard({ start, end });
    }
    this.client = { send: (command: unknown, opts?: { abortSignal?: AbortSignal }) => this.send(command, opts) } as unknown as KinesisClient;
  }

  private addShard(range: HashKeyRange, parent?: string, adjacent?: string): FakeShard {
    const shard: FakeShard = {
      shardId: `shardId-${String(this.nextShardNumber++).padStart(12, '0')}`,
      range,
      parentShardId: parent,
      adjacentParentShardId: adjacent,
      startingSequenceNumber: (this.seq++).toString(),
      records: [],
    };
    this.shards.push(shard);
    return shard;
  }

  get openShards(): FakeShard[] {
    return this.shards.filter((s) => s.endingSequenceNumber === undefined);
  }

  shard(shardId: string): FakeShard {
    const s = this.shards.find((x) => x.shardId === shardId);
    if (!s) throw new Error(`no shard ${shardId}`);
    return s;
  }

  openShardFor(hashKey: bigint): FakeShard {
    const s = this.openShards.find((x) => x.range.start <= hashKey && hashKey <= x.range.end);
    if (!s) throw new Error(`no open shard for ${hashKey}`);
    return s;
  }

  /** Splits an open shard at `at` (default: middle); returns the two children. */
  split(shardId: string, at?: bigint): [FakeShard, FakeShard] {
    const parent = this.shard(shardId);
    if (parent.endingSequenceNumber) throw new Error(`${shardId} is closed`);
    const mid = at ?? parent.range.start + (parent.range.end - parent.range.start) / 2n;
    parent.endingSequenceNumber = (this.seq++).toString();
    const a = this.addShard({ start: parent.range.start, end: mid }, parent.shardId);
    const b = this.addShard({ start: mid + 1n, end: parent.range.end }, parent.shardId);
    return [a, b];
  }

  /** Merges two adjacent open shards; returns the child. */
  merge(shardId: string, adjacentId: string): FakeShard {
    const a = this.shard(shardId);
    const b = this.shard(adjacentId);
    const [lo, hi] = a.range.start < b.range.start ? [a, b] : [b, a];
    if (lo.range.end + 1n !== hi.range.start) throw new Error('not adjacent');
    a.endingSequenceNumber = (this.seq++).toString();
    b.endingSequenceNumber = (this.seq++).toString();
    return this.addShard({ start: lo.range.start, end: hi.range.end }, a.shardId, b.shardId);
  }

  private async send(command: unknown, opts?: { abortSignal?: AbortSignal }): Promise<unknown> {
    if (command instanceof PutRecordsCommand) return this.putRecords(command.input.Records ?? []);
    if (command instanceof ListShardsCommand) return this.listShards(command.input);
    if (command instanceof DescribeStreamSummaryCommand) {
      return {
        StreamDescriptionSummary: {
          StreamName: this.streamName,
          StreamStatus: 'ACTIVE',
          OpenShardCount: this.openShards.length,
          MaxRecordSizeInKiB: this.reportMaxRecordSize ? this.maxRecordSizeBytes / 1024 : undefined,
        },
      };
    }
    if (command instanceof GetShardIteratorCommand) {
      const input = command.input;
      const shard = this.shard(input.ShardId!);
      let index = 0;
      if (input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER') {
        const after = BigInt(input.StartingSequenceNumber!);
        index = shard.records.findIndex((r) => BigInt(r.sequenceNumber) > after);
        if (index < 0) index = shard.records.length;
      } else if (input.ShardIteratorType === 'LATEST') {
        index = shard.records.length;
      }
      return { ShardIterator: `${shard.shardId}|${index}` };
    }
    if (command instanceof GetRecordsCommand) return this.getRecords(command.input.ShardIterator!, command.input.Limit ?? 10_000, opts?.abortSignal);
    throw new Error(`FakeKinesis: unsupported command ${(command as object).constructor.name}`);
  }

  private listShards(input: { StreamName?: string; NextToken?: string; MaxResults?: number }): unknown {
    if (input.NextToken && input.StreamName) {
      throw kinesisError('InvalidArgumentException', 400, 'NextToken and StreamName cannot be provided together.');
    }
    const start = input.NextToken ? Number(input.NextToken) : 0;
    const size = input.MaxResults ?? this.listShardsPageSize;
    const page = this.shards.slice(start, start + size);
    const shards: Shard[] = page.map((s) => ({
      ShardId: s.shardId,
      ParentShardId: s.parentShardId,
      AdjacentParentShardId: s.adjacentParentShardId,
      HashKeyRange: { StartingHashKey: s.range.start.toString(), EndingHashKey: s.range.end.toString() },
      SequenceNumberRange: { StartingSequenceNumber: s.startingSequenceNumber, EndingSequenceNumber: s.endingSequenceNumber },
    }));
    const next = start + size < this.shards.length ? String(start + size) : undefined;
    return { Shards: shards, NextToken: next };
  }

  private async putRecords(records: PutRecordsRequestEntry[]): Promise<unknown> {
    const targets = records.map((r) => {
      const h = r.ExplicitHashKey !== undefined ? BigInt(r.ExplicitHashKey) : hashKeyOf(r.PartitionKey ?? '');
      return this.openShardFor(h).shardId;
    });
    const call: PutRecordsCallInfo = { index: this.calls.length, records, targets };
    this.calls.push(call);
    // Service limits.
    if (records.length > 500) this.violations.push(`call ${call.index}: ${records.length} records`);
    let total = 0;
    records.forEach((r, i) => {
      const pk = r.PartitionKey ?? '';
      const size = (r.Data?.length ?? 0) + Buffer.byteLength(pk, 'utf8');
      total += size;
      if (pk.length < 1 || pk.length > 256) this.violations.push(`call ${call.index} record ${i}: partition key length ${pk.length}`);
      if (size > this.maxRecordSizeBytes) this.violations.push(`call ${call.index} record ${i}: ${size} bytes > ${this.maxRecordSizeBytes}`);
    });
    if (total > 5 * 1024 * 1024) this.violations.push(`call ${call.index}: ${total} bytes`);
    if (this.checkOneInFlightPerShard) {
      const seen = new Set<string>();
      for (const t of targets) {
        if (seen.has(t) || (this.inFlight.get(t) ?? 0) > 0) this.violations.push(`call ${call.index}: two records in flight for ${t}`);
        seen.add(t);
      }
    }
    for (const t of targets) this.inFlight.set(t, (this.inFlight.get(t) ?? 0) + 1);
    try {
      await new Promise((r) => setTimeout(r, this.putLatencyMs()));
      const fault = this.callFault(call);
      if (fault === 'throttle') throw kinesisError('ProvisionedThroughputExceededException', 400, 'Rate exceeded for stream');
      if (fault === 'internal') throw kinesisError('InternalFailure', 500);
      if (fault === 'network') throw Object.assign(new Error('socket hang up'), { name: 'Error', code: 'ECONNRESET' });
      this.beforeApply(call);
      const results: PutRecordsResultEntry[] = [];
      let failed = 0;
      records.forEach((r, i) => {
        const rf = this.recordFault(call, i);
        if (rf) {
          failed++;
          results.push({ ErrorCode: rf, ErrorMessage: rf });
          return;
        }
        const h = r.ExplicitHashKey !== undefined ? BigInt(r.ExplicitHashKey) : hashKeyOf(r.PartitionKey ?? '');
        const shard = this.openShardFor(h); // routed at apply time: after a reshard, to a child
        const rec: FakeRecord = {
          sequenceNumber: (this.seq++).toString(),
          arrival: new Date(),
          data: new Uint8Array(r.Data!),
          partitionKey: r.PartitionKey!,
          explicitHashKey: r.ExplicitHashKey,
        };
        shard.records.push(rec);
        this.onAppend(shard, rec);
        results.push({ SequenceNumber: rec.sequenceNumber, ShardId: shard.shardId });
      });
      if (fault === 'applied-then-network') throw Object.assign(new Error('read ECONNRESET'), { name: 'Error', code: 'ECONNRESET' });
      return { FailedRecordCount: failed, Records: results };
    } finally {
      for (const t of targets) this.inFlight.set(t, this.inFlight.get(t)! - 1);
    }
  }

  private async getRecords(iterator: string, limit: number, signal?: AbortSignal): Promise<unknown> {
    const [shardId, indexText] = iterator.split('|');
    const shard = this.shard(shardId);
    this.getRecordsCalls++;
    const times = this.getRecordsTimes.get(shardId) ?? [];
    times.push(performance.now());
    this.getRecordsTimes.set(shardId, times);
    const latency = this.getLatencyMs();
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    if (signal?.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
    const fault = this.getRecordsFault(shardId);
    if (fault === 'expired') throw kinesisError('ExpiredIteratorException', 400, 'Iterator expired');
    if (fault === 'throttle') throw kinesisError('ProvisionedThroughputExceededException', 400, 'Rate exceeded for shard');
    const index = Number(indexText);
    const records = shard.records.slice(index, index + limit);
    const nextIndex = index + records.length;
    const ended = shard.endingSequenceNumber !== undefined && nextIndex >= shard.records.length;
    return {
      Records: records.map((r) => ({ SequenceNumber: r.sequenceNumber, Data: r.data, PartitionKey: r.partitionKey, ApproximateArrivalTimestamp: r.arrival })),
      NextShardIterator: ended ? undefined : `${shardId}|${nextIndex}`,
      MillisBehindLatest: nextIndex < shard.records.length ? 1000 : 0,
    };
  }
}
