import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  DescribeStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  UpdateMaxRecordSizeCommand,
  CreateStreamCommand,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { NodeHttp2Handler, NodeHttpHandler } from '@smithy/node-http-handler';
import {
  createKinesisClient,
  describeKinesisClient,
  describeKinesisClientOptions,
  isLoopbackHost,
  resolveCredentialSource,
  resolveHttpHandlerKind,
} from '../../src/transport/kinesis-client.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';

describe('resolveHttpHandlerKind', () => {
  it('auto without endpoint (real AWS) keeps the SDK default, HTTP/2', () => {
    assert.equal(resolveHttpHandlerKind({}), 'http2');
    assert.equal(resolveHttpHandlerKind({ httpHandler: 'auto' }), 'http2');
  });

  it('auto with an http:// endpoint uses HTTP/1.1, loopback or not', () => {
    assert.equal(resolveHttpHandlerKind({ endpoint: 'http://127.0.0.1:4568' }), 'http1');
    assert.equal(resolveHttpHandlerKind({ endpoint: 'http://localhost:4568' }), 'http1');
    assert.equal(resolveHttpHandlerKind({ endpoint: 'http://kinesis:4568' }), 'http1');
    assert.equal(resolveHttpHandlerKind({ endpoint: 'http://10.0.0.5:4568/' }), 'http1');
  });

  it('auto with an https:// loopback endpoint uses HTTP/1.1', () => {
    assert.equal(resolveHttpHandlerKind({ endpoint: 'https://localhost:4567' }), 'http1');
    assert.equal(resolveHttpHandlerKind({ endpoint: 'https://127.0.0.2:4567' }), 'http1');
    assert.equal(resolveHttpHandlerKind({ endpoint: 'https://[::1]:4567' }), 'http1');
  });

  it('auto with a remote https:// endpoint keeps HTTP/2', () => {
    assert.equal(resolveHttpHandlerKind({ endpoint: 'https://kinesis.eu-west-1.amazonaws.com' }), 'http2');
    assert.equal(
      resolveHttpHandlerKind({ endpoint: 'https://vpce-0abc-kinesis.eu-west-1.vpce.amazonaws.com' }),
      'http2',
    );
    // Not loopback, despite the look of it.
    assert.equal(resolveHttpHandlerKind({ endpoint: 'https://127.0.0.1.example.com' }), 'http2');
    assert.equal(resolveHttpHandlerKind({ endpoint: 'https://localhost.example.com' }), 'http2');
  });

  it('explicit http1/http2 wins over the endpoint', () => {
    assert.equal(resolveHttpHandlerKind({ httpHandler: 'http2', endpoint: 'http://127.0.0.1:4568' }), 'http2');
    assert.equal(resolveHttpHandlerKind({ httpHandler: 'http1' }), 'http1');
    assert.equal(resolveHttpHandlerKind({ httpHandler: 'http1', endpoint: 'https://kinesis.us-east-1.amazonaws.com' }), 'http1');
  });

  it('rejects bad endpoints and handler names', () => {
    assert.throws(() => resolveHttpHandlerKind({ endpoint: '127.0.0.1:4568' }), /protocol must be http: or https:|not a URL/);
    assert.throws(() => resolveHttpHandlerKind({ endpoint: 'not a url' }), /not a URL/);
    assert.throws(() => resolveHttpHandlerKind({ endpoint: 'ftp://127.0.0.1' }), /protocol must be http: or https:/);
    assert.throws(() => resolveHttpHandlerKind({ httpHandler: 'h3' as never }), /Invalid httpHandler/);
  });
});

describe('isLoopbackHost', () => {
  it('recognises loopback names and addresses', () => {
    for (const h of ['localhost', 'LOCALHOST', 'api.localhost', '127.0.0.1', '127.255.0.9', '::1', '[::1]', '::ffff:127.0.0.1', '[::ffff:7f00:1]', 'localhost.']) {
      assert.equal(isLoopbackHost(h), true, h);
    }
    for (const h of ['10.0.0.1', '0.0.0.0', '::', 'kinesis', 'localhost.example.com', '128.0.0.1', '::ffff:10.0.0.1', 'example.com']) {
      assert.equal(isLoopbackHost(h), false, h);
    }
  });
});

describe('credentials and description', () => {
  it('resolveCredentialSource: explicit > loopback fakes > default chain', () => {
    const credentials = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'very-secret' };
    assert.equal(resolveCredentialSource({ credentials }), 'explicit');
    assert.equal(resolveCredentialSource({ credentials, endpoint: 'http://127.0.0.1:1' }), 'explicit');
    assert.equal(resolveCredentialSource({ endpoint: 'http://127.0.0.1:1' }), 'loopback-static-fake');
    assert.equal(resolveCredentialSource({ endpoint: 'http://localhost:1' }), 'loopback-static-fake');
    assert.equal(resolveCredentialSource({ endpoint: 'http://kinesis:4568' }), 'default-chain');
    assert.equal(resolveCredentialSource({}), 'default-chain');
  });

  it('describeKinesisClientOptions carries no secrets and strips user-info/query from the endpoint', () => {
    const d = describeKinesisClientOptions({
      region: 'eu-west-1',
      endpoint: 'https://user:pw-secret@localhost:4567/?token=q-secret#frag',
      credentials: { accessKeyId: 'AKIA-ID-SECRET', secretAccessKey: 'sk-secret', sessionToken: 'st-secret' },
      maxSockets: 16,
      requestTimeoutMs: 5000,
      maxAttempts: 5,
    });
    assert.deepEqual(d, {
      region: 'eu-west-1',
      endpoint: 'https://localhost:4567',
      endpointIsLoopback: true,
      httpHandlerRequested: 'auto',
      httpHandler: 'http1',
      maxSockets: 16,
      requestTimeoutMs: 5000,
      connectionTimeoutMs: undefined,
      retryMode: 'standard',
      maxAttempts: 5,
      credentialSource: 'explicit',
    });
    assert.doesNotMatch(JSON.stringify(d), /secret|AKIA/);
  });

  it('defaults: real AWS → http2, default chain, standard retry with 3 attempts', () => {
    const d = describeKinesisClientOptions({ region: 'us-east-1' });
    assert.equal(d.httpHandler, 'http2');
    assert.equal(d.maxSockets, undefined);
    assert.equal(d.credentialSource, 'default-chain');
    assert.equal(d.retryMode, 'standard');
    assert.equal(d.maxAttempts, 3);
    assert.equal(d.endpoint, undefined);
  });

  it('validates numeric options and region', () => {
    assert.throws(() => describeKinesisClientOptions({ region: 'us-east-1', maxAttempts: 0 }), /maxAttempts/);
    assert.throws(() => describeKinesisClientOptions({ region: 'us-east-1', maxSockets: 1.5 }), /maxSockets/);
    assert.throws(() => describeKinesisClientOptions({ region: 'us-east-1', requestTimeoutMs: -1 }), /requestTimeoutMs/);
    assert.throws(() => describeKinesisClientOptions({ region: '' }), /region/);
  });
});

/** Client config values are either plain or providers. */
async function resolved<T>(v: T | (() => Promise<T>)): Promise<T> {
  return typeof v === 'function' ? await (v as () => Promise<T>)() : v;
}

describe('createKinesisClient (no network)', () => {
  it('http1 → NodeHttpHandler with a keep-alive agent; retry standard; fake loopback credentials', async () => {
    const client = createKinesisClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', maxSockets: 7, maxAttempts: 4 });
    try {
      assert.ok(client.config.requestHandler instanceof NodeHttpHandler);
      assert.equal(await resolved(client.config.maxAttempts), 4);
      assert.equal(await resolved(client.config.retryMode), 'standard');
      const creds = await (client.config.credentials as () => Promise<{ accessKeyId: string }>)();
      assert.equal(typeof creds.accessKeyId, 'string');
      assert.doesNotMatch(creds.accessKeyId, /^\d{12}$/, 'a 12-digit key id would select another kinesis-local account');
      const d = describeKinesisClient(client);
      assert.equal(d.httpHandler, 'http1');
      assert.equal(d.maxSockets, 7);
      assert.equal(d.credentialSource, 'loopback-static-fake');
    } finally {
      client.destroy();
    }
  });

  it('real AWS (no endpoint) → the SDK default handler, NodeHttp2Handler', () => {
    const client = createKinesisClient({ region: 'us-east-1' });
    try {
      assert.ok(client.config.requestHandler instanceof NodeHttp2Handler);
      // Same as a bare SDK client.
      const bare = new KinesisClient({ region: 'us-east-1' });
      assert.ok(bare.config.requestHandler instanceof NodeHttp2Handler);
      bare.destroy();
    } finally {
      client.destroy();
    }
  });

  it('http2 with requestTimeoutMs still uses NodeHttp2Handler', () => {
    const client = createKinesisClient({ region: 'us-east-1', httpHandler: 'http2', requestTimeoutMs: 1000 });
    try {
      assert.ok(client.config.requestHandler instanceof NodeHttp2Handler);
    } finally {
      client.destroy();
    }
  });

  it('describeKinesisClient rejects foreign clients', () => {
    const bare = new KinesisClient({ region: 'us-east-1' });
    try {
      assert.throws(() => describeKinesisClient(bare), /not created by createKinesisClient/);
    } finally {
      bare.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Integration against kinesis-local.

/** Kinesis maps a partition key to the 128-bit unsigned integer MD5(key), big-endian. */
function hashKeyOf(partitionKey: string): bigint {
  return BigInt('0x' + createHash('md5').update(partitionKey, 'utf8').digest('hex'));
}

function shardForKey(shards: Shard[], partitionKey: string): string {
  const h = hashKeyOf(partitionKey);
  const open = shards.filter((s) => s.SequenceNumberRange?.EndingSequenceNumber === undefined);
  const hit = open.filter((s) => BigInt(s.HashKeyRange!.StartingHashKey!) <= h && h <= BigInt(s.HashKeyRange!.EndingHashKey!));
  assert.equal(hit.length, 1, `exactly one open shard must own hash key ${h}`);
  return hit[0]!.ShardId!;
}

interface ReadRecord {
  shardId: string;
  partitionKey: string;
  data: string;
  sequenceNumber: string;
}

async function readAllFromTrimHorizon(client: KinesisClient, streamName: string, shards: Shard[]): Promise<ReadRecord[]> {
  const out: ReadRecord[] = [];
  for (const shard of shards) {
    const it = await client.send(
      new GetShardIteratorCommand({ StreamName: streamName, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
    );
    let iterator = it.ShardIterator;
    // Read until an empty page at the tip (MillisBehindLatest 0) or the end of a closed shard.
    for (let page = 0; iterator !== undefined && page < 100; page++) {
      const res = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
      for (const r of res.Records ?? []) {
        out.push({
          shardId: shard.ShardId!,
          partitionKey: r.PartitionKey!,
          data: Buffer.from(r.Data!).toString('utf8'),
          sequenceNumber: r.SequenceNumber!,
        });
      }
      if ((res.Records ?? []).length === 0 && (res.MillisBehindLatest ?? 0) === 0) break;
      iterator = res.NextShardIterator;
    }
  }
  return out;
}

describe('kinesis-local integration (product client)', { timeout: 180_000 }, () => {
  let kl: KinesisLocal;

  before(async () => {
    kl = await startKinesisLocal();
  });
  after(async () => {
    await kl?.stop();
  });

  it('PutRecords of 500 records (auto → http1), read back on every shard, MD5 shard mapping', async (t) => {
    const client = createKinesisClient({ region: kl.region, endpoint: kl.endpoint }); // httpHandler: auto
    try {
      assert.equal(describeKinesisClient(client).httpHandler, 'http1');
      const stream = kl.uniqueStreamName('put500');
      await kl.createStream(stream, 4);

      // 50 partition keys × 10 records each; data unique per record.
      const entries = Array.from({ length: 500 }, (_, i) => ({
        partitionKey: `doc-${i % 50}`,
        data: JSON.stringify({ i, text: `record ${i} ✓ ünïcödé` }),
      }));
      const started = performance.now();
      const put = await client.send(
        new PutRecordsCommand({
          StreamName: stream,
          Records: entries.map((e) => ({ PartitionKey: e.partitionKey, Data: Buffer.from(e.data, 'utf8') })),
        }),
      );
      t.diagnostic(`PutRecords(500) took ${Math.round(performance.now() - started)} ms`);
      assert.equal(put.FailedRecordCount ?? 0, 0);
      assert.equal(put.Records?.length, 500);

      const listed = await client.send(new ListShardsCommand({ StreamName: stream }));
      const shards = listed.Shards ?? [];
      assert.equal(shards.length, 4);
      // The 4 ranges tile the whole 128-bit space.
      const ranges = shards
        .map((s) => [BigInt(s.HashKeyRange!.StartingHashKey!), BigInt(s.HashKeyRange!.EndingHashKey!)] as const)
        .sort((a, b) => (a[0] < b[0] ? -1 : 1));
      assert.equal(ranges[0]![0], 0n);
      assert.equal(ranges.at(-1)![1], 2n ** 128n - 1n);
      for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]![0], ranges[i - 1]![1] + 1n);

      // PutRecords result entries are in request order and name the MD5-owning shard.
      put.Records!.forEach((r, i) => assert.equal(r.ShardId, shardForKey(shards, entries[i]!.partitionKey)));

      const read = await readAllFromTrimHorizon(client, stream, shards);
      assert.equal(read.length, 500);
      assert.deepEqual(
        read.map((r) => `${r.partitionKey}|${r.data}`).sort(),
        entries.map((e) => `${e.partitionKey}|${e.data}`).sort(),
      );
      const shardsByKey = new Map<string, Set<string>>();
      for (const r of read) {
        if (!shardsByKey.has(r.partitionKey)) shardsByKey.set(r.partitionKey, new Set());
        shardsByKey.get(r.partitionKey)!.add(r.shardId);
        assert.equal(r.shardId, shardForKey(shards, r.partitionKey), `key ${r.partitionKey}`);
      }
      for (const [key, set] of shardsByKey) assert.equal(set.size, 1, `partition key ${key} spread over ${[...set].join(',')}`);
      assert.ok(new Set(read.map((r) => r.shardId)).size > 1, '50 keys should hit more than one shard');

      // Per shard, order of one partition key's records = request order (sequence numbers ascend).
      for (const key of shardsByKey.keys()) {
        const got = read.filter((r) => r.partitionKey === key).map((r) => (JSON.parse(r.data) as { i: number }).i);
        assert.deepEqual(got, [...got].sort((a, b) => a - b));
      }
    } finally {
      client.destroy();
    }
  });

  it('max record size: DescribeStreamSummary omits MaxRecordSizeInKiB unless set; 1 MiB data limit enforced', async () => {
    const client = kl.client;
    const stream = kl.uniqueStreamName('maxrec');
    await kl.createStream(stream, 1);

    const summary = (await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }))).StreamDescriptionSummary!;
    // kinesis-local 0.6.2: not reported for a stream created without it.
    assert.equal(summary.MaxRecordSizeInKiB, undefined);
    assert.equal(summary.OpenShardCount, 1);
    assert.equal(summary.StreamStatus, 'ACTIVE');
    // DescribeStream never carries it.
    const described = (await client.send(new DescribeStreamCommand({ StreamName: stream }))).StreamDescription!;
    assert.equal((described as { MaxRecordSizeInKiB?: number }).MaxRecordSizeInKiB, undefined);

    // The effective default is 1024 KiB of *data* (partition key not counted by kinesis-local).
    const ok = await client.send(new PutRecordsCommand({ StreamName: stream, Records: [{ PartitionKey: 'k', Data: Buffer.alloc(1024 * 1024, 1) }] }));
    assert.equal(ok.FailedRecordCount ?? 0, 0);
    const tooBig = await client.send(new PutRecordsCommand({ StreamName: stream, Records: [{ PartitionKey: 'k', Data: Buffer.alloc(1024 * 1024 + 1, 1) }] }));
    assert.equal(tooBig.FailedRecordCount, 1);
    assert.equal(tooBig.Records![0]!.ErrorCode, 'InvalidArgumentException');
    assert.match(tooBig.Records![0]!.ErrorMessage!, /exceeds the stream's max record size of 1048576 bytes/);
    await assert.rejects(
      client.send(new PutRecordCommand({ StreamName: stream, PartitionKey: 'k', Data: Buffer.alloc(1024 * 1024 + 1, 1) })),
      (e: Error) => e.name === 'InvalidArgumentException',
    );

    // Reported (and enforced) once set via UpdateMaxRecordSize ...
    await client.send(new UpdateMaxRecordSizeCommand({ StreamARN: summary.StreamARN, MaxRecordSizeInKiB: 2048 }));
    const after = (await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }))).StreamDescriptionSummary!;
    assert.equal(after.MaxRecordSizeInKiB, 2048);
    const bigger = await client.send(new PutRecordsCommand({ StreamName: stream, Records: [{ PartitionKey: 'k', Data: Buffer.alloc(1536 * 1024, 1) }] }));
    assert.equal(bigger.FailedRecordCount ?? 0, 0);

    // ... or at CreateStream.
    const stream2 = kl.uniqueStreamName('maxrec-create');
    await client.send(new CreateStreamCommand({ StreamName: stream2, ShardCount: 1, MaxRecordSizeInKiB: 4096 }));
    for (;;) {
      const s = (await client.send(new DescribeStreamSummaryCommand({ StreamName: stream2 }))).StreamDescriptionSummary!;
      if (s.StreamStatus === 'ACTIVE') {
        assert.equal(s.MaxRecordSizeInKiB, 4096);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('kinesis-local does not enforce the PutRecords request limits (500 entries, 5 MiB)', async () => {
    const stream = kl.uniqueStreamName('limits');
    await kl.createStream(stream, 1);
    const r501 = await kl.client.send(
      new PutRecordsCommand({ StreamName: stream, Records: Array.from({ length: 501 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.from('x') })) }),
    );
    assert.equal(r501.FailedRecordCount ?? 0, 0, 'real Kinesis rejects > 500 entries with ValidationException');
    const r6mb = await kl.client.send(
      new PutRecordsCommand({ StreamName: stream, Records: Array.from({ length: 6 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.alloc(1000 * 1024, 1) })) }),
    );
    assert.equal(r6mb.FailedRecordCount ?? 0, 0, 'real Kinesis rejects a request > 5 MiB');
  });

  it('the SDK default HTTP/2 handler fails against kinesis-local with ERR_HTTP2_ERROR (records still written)', async (t) => {
    const stream = kl.uniqueStreamName('h2');
    await kl.createStream(stream, 1);
    const batch = () => Array.from({ length: 100 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.from(`v${i}`) }));
    const count = async () => {
      const shards = (await kl.client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
      return (await readAllFromTrimHorizon(kl.client, stream, shards)).length;
    };

    // A bare SDK client: no requestHandler → NodeHttp2Handler({ disableConcurrentStreams: true }).
    const bare = new KinesisClient({
      region: kl.region,
      endpoint: kl.endpoint,
      credentials: { accessKeyId: 'AKIDLOCALFAKE', secretAccessKey: 'x' },
    });
    const product = createKinesisClient({ region: kl.region, endpoint: kl.endpoint, httpHandler: 'http2' });
    try {
      assert.ok(bare.config.requestHandler instanceof NodeHttp2Handler);
      for (const [label, client] of [['bare SDK default', bare], ["createKinesisClient httpHandler:'http2'", product]] as const) {
        const errors: Array<{ code?: string; status?: number; attempts?: number }> = [];
        const before = await count();
        let calls = 0;
        // Failure is not certain per call (small responses may get through), so try up to 30 times.
        for (; calls < 30 && errors.length === 0; calls++) {
          try {
            await client.send(new PutRecordsCommand({ StreamName: stream, Records: batch() }));
          } catch (err) {
            const e = err as Error & { code?: string; $metadata?: { httpStatusCode?: number; attempts?: number } };
            errors.push({ code: e.code, status: e.$metadata?.httpStatusCode, attempts: e.$metadata?.attempts });
          }
        }
        t.diagnostic(`${label}: ${calls} call(s), first error ${JSON.stringify(errors[0])}`);
        assert.equal(errors.length, 1, `${label}: expected an HTTP/2 failure within 30 calls`);
        assert.equal(errors[0]!.code, 'ERR_HTTP2_ERROR');
        assert.equal(errors[0]!.status, 200, 'the server answered 200; the body read fails');
        assert.equal(errors[0]!.attempts, 1, 'the SDK does not retry it (deserialization-time error)');
        // Every call, including the failed one, stored its 100 records: a blind retry would duplicate.
        assert.equal((await count()) - before, calls * 100);
      }

      // Root cause: isolated sessions (disableConcurrentStreams) close the session on the response
      // headers. A shared HTTP/2 session works against kinesis-local.
      const shared = new KinesisClient({
        region: kl.region,
        endpoint: kl.endpoint,
        credentials: { accessKeyId: 'AKIDLOCALFAKE', secretAccessKey: 'x' },
        requestHandler: new NodeHttp2Handler({ disableConcurrentStreams: false }),
        maxAttempts: 1,
      });
      try {
        for (let i = 0; i < 10; i++) {
          const r = await shared.send(new PutRecordsCommand({ StreamName: stream, Records: batch() }));
          assert.equal(r.FailedRecordCount ?? 0, 0);
        }
      } finally {
        shared.destroy();
      }
    } finally {
      bare.destroy();
      product.destroy();
    }
  });
});
