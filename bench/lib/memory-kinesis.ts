/**
 * An in-memory Kinesis data stream behind the AWS SDK's HTTP handler interface: the product's
 * producer and consumer run unchanged, with the real SDK marshalling (JSON 1.1 + base64, SigV4
 * signing), and only the network and the server are replaced.
 *
 * It enforces the service limits the product must respect (PutRecords ≤ 500 records and ≤ 5 MiB,
 * a record ≤ the max record size, GetRecords ≤ 10,000 records and ≤ 10 MiB per call), and keeps
 * the stored data as the base64 strings it received (no server-side decoding), so its own CPU cost
 * is small; that cost is measured (`serverMs`) and subtracted from the pipeline's CPU in the report.
 */
import { KinesisClient } from '@aws-sdk/client-kinesis';

const decoder = new TextDecoder();
const MAX_HASH_KEY = (1n << 128n) - 1n;
const GET_RECORDS_MAX_BYTES = 10 * 1024 * 1024;
const PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024;

interface StoredRecord {
  seq: string;
  /** base64, as received */
  data: string;
  dataBytes: number;
  pk: string;
  arrival: number;
}

interface MemShard {
  id: string;
  start: bigint;
  end: bigint;
  records: StoredRecord[];
}

export interface HandlerRequest {
  headers: Record<string, string>;
  body?: unknown;
}

class KinesisFault extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export interface MemoryKinesisStats {
  putRecordsCalls: number;
  recordsIn: number;
  /** decoded record data bytes received (what Kinesis bills: data + partition key) */
  bytesIn: number;
  getRecordsCalls: number;
  recordsOut: number;
  /** wall ms spent inside the handler's synchronous code (server-side work, not the migrator's) */
  serverMs: number;
  /** base64 characters held by the log */
  storedChars: number;
}

export class MemoryKinesis {
  readonly streamName: string;
  readonly shards: MemShard[] = [];
  readonly maxRecordBytes: number;
  private seq = 10n ** 20n;
  readonly stats: MemoryKinesisStats = { putRecordsCalls: 0, recordsIn: 0, bytesIn: 0, getRecordsCalls: 0, recordsOut: 0, serverMs: 0, storedChars: 0 };

  constructor(streamName: string, shardCount: number, maxRecordBytes = 1024 * 1024) {
    this.streamName = streamName;
    this.maxRecordBytes = maxRecordBytes;
    const width = (MAX_HASH_KEY + 1n) / BigInt(shardCount);
    for (let i = 0; i < shardCount; i++) {
      const start = width * BigInt(i);
      const end = i === shardCount - 1 ? MAX_HASH_KEY : width * BigInt(i + 1) - 1n;
      this.shards.push({ id: `shardId-${String(i).padStart(12, '0')}`, start, end, records: [] });
    }
  }

  /** A KinesisClient whose requests are answered by this in-memory stream. */
  client(): KinesisClient {
    return new KinesisClient({
      region: 'us-east-1',
      endpoint: 'http://in-memory.invalid',
      credentials: { accessKeyId: 'AKIDMEMORY', secretAccessKey: 'memory' },
      maxAttempts: 1,
      requestHandler: {
        handle: async (request: HandlerRequest) => ({ response: this.answer(request) }),
        updateHttpClientConfig: () => undefined,
        httpHandlerConfigs: () => ({}),
      } as never,
    });
  }

  /** Answers one request (the x-amz-target header names the operation). */
  answer(request: HandlerRequest) {
    const t0 = performance.now();
    try {
      const target = request.headers['x-amz-target'] ?? request.headers['X-Amz-Target'] ?? '';
      const op = target.slice(target.indexOf('.') + 1);
      const body = request.body;
      const bodyText =
        typeof body === 'string' ? body : body instanceof Uint8Array ? decoder.decode(new Uint8Array(body.buffer, body.byteOffset, body.byteLength)) : '';
      const input = JSON.parse(bodyText || '{}') as Record<string, unknown>;
      const out = this.dispatch(op, input);
      return { statusCode: 200, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: Buffer.from(JSON.stringify(out)) };
    } catch (err) {
      const type = err instanceof KinesisFault ? err.type : 'InternalFailure';
      return {
        statusCode: err instanceof KinesisFault ? 400 : 500,
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type },
        body: Buffer.from(JSON.stringify({ __type: type, message: (err as Error).message })),
      };
    } finally {
      this.stats.serverMs += performance.now() - t0;
    }
  }

  private dispatch(op: string, input: Record<string, unknown>): unknown {
    switch (op) {
      case 'DescribeStreamSummary':
        return {
          StreamDescriptionSummary: {
            StreamName: this.streamName,
            StreamARN: `arn:aws:kinesis:us-east-1:000000000000:stream/${this.streamName}`,
            StreamStatus: 'ACTIVE',
            RetentionPeriodHours: 24,
            StreamCreationTimestamp: 1_700_000_000,
            EnhancedMonitoring: [],
            OpenShardCount: this.shards.length,
            ConsumerCount: 0,
          },
        };
      case 'ListShards':
        return {
          Shards: this.shards.map((s) => ({
            ShardId: s.id,
            HashKeyRange: { StartingHashKey: s.start.toString(), EndingHashKey: s.end.toString() },
            SequenceNumberRange: { StartingSequenceNumber: '0' },
          })),
        };
      case 'PutRecords':
        return this.putRecords(input.Records as Array<{ Data: string; PartitionKey: string; ExplicitHashKey?: string }>);
      case 'GetShardIterator':
        return { ShardIterator: this.iterator(input) };
      case 'GetRecords':
        return this.getRecords(String(input.ShardIterator), Number(input.Limit ?? 10_000));
      default:
        throw new KinesisFault('InvalidArgumentException', `in-memory Kinesis: unsupported operation ${op}`);
    }
  }

  private shardFor(hashKey: bigint): MemShard {
    for (const s of this.shards) if (hashKey >= s.start && hashKey <= s.end) return s;
    throw new Error('hash key out of range');
  }

  private putRecords(records: Array<{ Data: string; PartitionKey: string; ExplicitHashKey?: string }>) {
    if (records.length > 500) throw new KinesisFault('InvalidArgumentException', `${records.length} records > 500`);
    this.stats.putRecordsCalls++;
    let callBytes = 0;
    const now = Date.now() / 1000;
    const results = records.map((r) => {
      const dataBytes = base64Length(r.Data);
      const size = dataBytes + Buffer.byteLength(r.PartitionKey);
      if (size > this.maxRecordBytes) throw new KinesisFault('InvalidArgumentException', `record of ${size} bytes > ${this.maxRecordBytes}`);
      callBytes += size;
      if (r.ExplicitHashKey === undefined) throw new KinesisFault('InvalidArgumentException', 'in-memory Kinesis routes by ExplicitHashKey only');
      const shard = this.shardFor(BigInt(r.ExplicitHashKey));
      const seq = (this.seq++).toString();
      shard.records.push({ seq, data: r.Data, dataBytes, pk: r.PartitionKey, arrival: now });
      this.stats.recordsIn++;
      this.stats.bytesIn += size;
      this.stats.storedChars += r.Data.length;
      return { SequenceNumber: seq, ShardId: shard.id };
    });
    if (callBytes > PUT_RECORDS_MAX_BYTES) throw new KinesisFault('InvalidArgumentException', `PutRecords of ${callBytes} bytes > 5 MiB`);
    return { FailedRecordCount: 0, Records: results };
  }

  private iterator(input: Record<string, unknown>): string {
    const shard = this.shards.find((s) => s.id === input.ShardId);
    if (!shard) throw new KinesisFault('ResourceNotFoundException', `no shard ${String(input.ShardId)}`);
    let index = 0;
    if (input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER' || input.ShardIteratorType === 'AT_SEQUENCE_NUMBER') {
      const seq = BigInt(String(input.StartingSequenceNumber));
      index = shard.records.findIndex((r) => BigInt(r.seq) > seq || (input.ShardIteratorType === 'AT_SEQUENCE_NUMBER' && BigInt(r.seq) === seq));
      if (index < 0) index = shard.records.length;
    } else if (input.ShardIteratorType === 'LATEST') {
      index = shard.records.length;
    }
    return `${shard.id}:${index}`;
  }

  private getRecords(iterator: string, limit: number) {
    this.stats.getRecordsCalls++;
    const [id, at] = iterator.split(':');
    const shard = this.shards.find((s) => s.id === id)!;
    const start = Number(at);
    const out: Array<{ SequenceNumber: string; ApproximateArrivalTimestamp: number; Data: string; PartitionKey: string }> = [];
    let bytes = 0;
    let i = start;
    for (; i < shard.records.length && out.length < Math.min(limit, 10_000); i++) {
      const r = shard.records[i];
      if (out.length > 0 && bytes + r.dataBytes > GET_RECORDS_MAX_BYTES) break;
      bytes += r.dataBytes;
      out.push({ SequenceNumber: r.seq, ApproximateArrivalTimestamp: r.arrival, Data: r.data, PartitionKey: r.pk });
    }
    this.stats.recordsOut += out.length;
    const next = shard.records[i];
    const behind = next ? Math.max(0, Date.now() - next.arrival * 1000) : 0;
    return { Records: out, NextShardIterator: `${shard.id}:${i}`, MillisBehindLatest: Math.round(behind) };
  }

  /** Records and their decoded data bytes, per shard. */
  summary(): { records: number; dataBytes: number } {
    let records = 0;
    let dataBytes = 0;
    for (const s of this.shards) {
      records += s.records.length;
      for (const r of s.records) dataBytes += r.dataBytes;
    }
    return { records, dataBytes };
  }
}

function base64Length(s: string): number {
  let pad = 0;
  if (s.endsWith('==')) pad = 2;
  else if (s.endsWith('=')) pad = 1;
  return (s.length / 4) * 3 - pad;
}

/**
 * Serves a MemoryKinesis over HTTP/1.1 on 127.0.0.1 (for workers in other processes, so that the
 * log's memory and CPU are not the migrator process's). Returns the endpoint.
 */
export async function serveMemoryKinesis(mem: MemoryKinesis, port = 0): Promise<{ endpoint: string; close(): Promise<void> }> {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
      const out = mem.answer({ headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(out.statusCode, { ...out.headers, 'content-length': String(out.body.length) });
      res.end(out.body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { endpoint: `http://127.0.0.1:${address.port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}
