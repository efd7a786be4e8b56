/**
 * Test support: an HTTP proxy in front of kinesis-local that injects the faults real Kinesis
 * produces and kinesis-local never does (it neither throttles nor fails single records):
 *
 * - throttling: the whole call answered `400 ProvisionedThroughputExceededException`, nothing
 *   forwarded (PutRecords, GetRecords, or any operation);
 * - partial PutRecords failures: a seeded subset of the records is removed from the request before
 *   it is forwarded, and the response reports exactly those entries as failed
 *   (`FailedRecordCount`, per-record `ErrorCode`), as Kinesis does when a shard is over its limit;
 * - lost responses: the call is forwarded (the records ARE stored) and then the connection is
 *   destroyed, so the client sees a network error and must re-send (duplicates in the stream).
 *
 * Faults are switched on and off by the test (`set`), drawn from the PRNG passed in, and counted.
 * The proxy speaks the SDK's awsJson1_1 protocol (`X-Amz-Target: Kinesis_20131202.<Operation>`);
 * kinesis-local does not check signatures, so changing a body is transparent to it.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KinesisFaults {
  /** Probability that a call (of `throttleOps`, default PutRecords and GetRecords) is throttled. */
  throttleRate?: number;
  throttleOps?: string[];
  /** Probability that a PutRecords call has some records fail; then each record fails with `recordFailRate` (default 0.5). */
  partialRate?: number;
  recordFailRate?: number;
  /** Probability that a forwarded PutRecords call's response is lost (connection destroyed). */
  lostResponseRate?: number;
}

export interface FaultCounts {
  calls: number;
  throttled: number;
  partialCalls: number;
  failedRecords: number;
  lostResponses: number;
}

export interface KinesisFaultProxy {
  /** `http://127.0.0.1:PORT`: give this to the migrator as --kinesis-endpoint. */
  endpoint: string;
  /** Replaces the active faults; `set({})` turns them all off. */
  set(faults: KinesisFaults): void;
  readonly counts: FaultCounts;
  stop(): Promise<void>;
}

const TARGET_PREFIX = 'Kinesis_20131202.';

interface PutRecordsEntry {
  Data: string;
  PartitionKey: string;
  ExplicitHashKey?: string;
}

export async function startKinesisFaultProxy(upstream: string, rand: () => number): Promise<KinesisFaultProxy> {
  const up = new URL(upstream);
  let faults: KinesisFaults = {};
  const counts: FaultCounts = { calls: 0, throttled: 0, partialCalls: 0, failedRecords: 0, lostResponses: 0 };

  const forward = (req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
      headers['content-length'] = String(body.length);
      const r = httpRequest({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string' && k !== 'content-length' && k !== 'transfer-encoding') h[k] = v;
          resolve({ status: res.statusCode ?? 500, headers: h, body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      });
      r.on('error', reject);
      r.end(body);
    });

  const reply = (res: ServerResponse, status: number, headers: Record<string, string>, body: Buffer) => {
    res.writeHead(status, { ...headers, 'content-length': String(body.length) });
    res.end(body);
  };

  const throttle = (res: ServerResponse) => {
    counts.throttled++;
    const body = Buffer.from(JSON.stringify({ __type: 'ProvisionedThroughputExceededException', message: 'Rate exceeded for shard (injected)' }));
    reply(res, 400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ProvisionedThroughputExceededException' }, body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : target;
    const f = faults;
    counts.calls++;

    if (f.throttleRate && (f.throttleOps ?? ['PutRecords', 'GetRecords']).includes(op) && rand() < f.throttleRate) return throttle(res);

    if (op === 'PutRecords' && f.partialRate && rand() < f.partialRate) {
      const request = JSON.parse(body.toString('utf8')) as { Records: PutRecordsEntry[]; StreamName?: string; StreamARN?: string };
      const failed = request.Records.map(() => rand() < (f.recordFailRate ?? 0.5));
      if (failed.some(Boolean)) {
        counts.partialCalls++;
        const kept = request.Records.filter((_, i) => !failed[i]);
        let keptResults: { SequenceNumber: string; ShardId: string }[] = [];
        let headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1' };
        if (kept.length) {
          const r = await forward(req, Buffer.from(JSON.stringify({ ...request, Records: kept })));
          if (r.status !== 200) return reply(res, r.status, r.headers, r.body);
          keptResults = (JSON.parse(r.body.toString('utf8')) as { Records: { SequenceNumber: string; ShardId: string }[] }).Records;
          headers = r.headers;
        }
        let k = 0;
        const records = request.Records.map((_, i) => {
          if (!failed[i]) return keptResults[k++]!;
          counts.failedRecords++;
          return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard (injected)' };
        });
        const out = { FailedRecordCount: failed.filter(Boolean).length, Records: records };
        return reply(res, 200, headers, Buffer.from(JSON.stringify(out)));
      }
    }

    const r = await forward(req, body);
    if (op === 'PutRecords' && r.status === 200 && f.lostResponseRate && rand() < f.lostResponseRate) {
      counts.lostResponses++;
      res.socket?.destroy();
      return;
    }
    reply(res, r.status, r.headers, r.body);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, 502, { 'content-type': 'text/plain' }, Buffer.from(`proxy: ${String(err)}`));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    set: (next) => (faults = { ...next }),
    counts,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
