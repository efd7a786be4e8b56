/**
 * Tests of the kinesis-local harness, plus executable documentation of what kinesis-local
 * (kinesis-mock 0.6.2 compiled to JS) does and does not simulate.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  ListStreamsCommand,
  MergeShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  SplitShardCommand,
  UpdateShardCountCommand,
  type KinesisClient,
  type Shard,
} from '@aws-sdk/client-kinesis';
import { freePort } from './free-port.js';
import { startKinesisLocal, type KinesisLocal } from './kinesis-local.js';

const MiB = 1024 * 1024;

async function waitActive(client: KinesisClient, stream: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const s = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    if (s.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${stream} not ACTIVE`);
}

async function listShards(client: KinesisClient, stream: string): Promise<Shard[]> {
  return (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
}

const isOpen = (s: Shard) => s.SequenceNumberRange?.EndingSequenceNumber === undefined;

async function readShard(client: KinesisClient, stream: string, shardId: string) {
  const it = await client.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }));
  return client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator, Limit: 10_000 }));
}

describe('freePort', () => {
  it('returns distinct bindable loopback ports', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    for (const p of ports) assert.ok(Number.isInteger(p) && p > 0 && p < 65536);
    const server: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ports[0], '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe('startKinesisLocal', { timeout: 240_000 }, () => {
  let kl: KinesisLocal;

  before(async () => {
    kl = await startKinesisLocal();
  });
  after(async () => {
    await kl?.stop();
  });

  it('starts on free loopback ports and answers ListStreams; reports startup time and memory', async (t) => {
    assert.match(kl.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(kl.endpoint, `http://127.0.0.1:${kl.port}`);
    assert.notEqual(kl.port, kl.tlsPort);
    const out = await kl.client.send(new ListStreamsCommand({}));
    assert.ok(Array.isArray(out.StreamNames));
    const rss = await kl.rssBytes();
    t.diagnostic(`kinesis-local startupMs=${kl.startupMs} rssMiB=${rss === undefined ? 'n/a' : (rss / MiB).toFixed(0)}`);
    assert.ok(kl.startupMs > 0 && kl.startupMs < 30_000);
  });

  it('createStream waits for ACTIVE; uniqueStreamName is unique and valid', async () => {
    const names = new Set(Array.from({ length: 100 }, () => kl.uniqueStreamName('x y/z')));
    assert.equal(names.size, 100);
    for (const n of names) assert.match(n, /^[a-zA-Z0-9_.-]{1,128}$/);
    const name = kl.uniqueStreamName();
    await kl.createStream(name, 3);
    const s = await kl.client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    assert.equal(s.StreamDescriptionSummary?.StreamStatus, 'ACTIVE');
    assert.equal(s.StreamDescriptionSummary?.OpenShardCount, 3);
  });

  it('two instances run side by side; stop() is idempotent and frees the port', async () => {
    const other = await startKinesisLocal();
    try {
      assert.notEqual(other.port, kl.port);
      await other.client.send(new ListStreamsCommand({}));
    } finally {
      await other.stop();
      await other.stop();
    }
    // The process is gone.
    assert.throws(() => process.kill(other.pid, 0), /ESRCH/);
    // Its port is bindable again.
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(other.port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('fails clearly, with the child output, when the requested port is taken', async () => {
    const port = await freePort();
    // Drop connections at once (the readiness probe connects to it); an idle accepted socket that
    // is never read would also keep blocker.close() waiting forever.
    const blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', () => resolve()));
    try {
      await assert.rejects(startKinesisLocal({ port }), (e: Error) => {
        assert.match(e.message, /kinesis-local exited during startup/);
        assert.match(e.message, /EADDRINUSE/);
        return true;
      });
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('shardLimit maps to SHARD_LIMIT (LimitExceededException)', async () => {
    const small = await startKinesisLocal({ shardLimit: 2 });
    try {
      await assert.rejects(small.createStream(small.uniqueStreamName(), 3), (e: Error) => {
        assert.equal(e.name, 'LimitExceededException');
        assert.match(e.message, /shard limit of 2/);
        return true;
      });
    } finally {
      await small.stop();
    }
  });

  // -------------------------------------------------------------------------------------------
  // Facts about kinesis-local.

  it('resharding: UpdateShardCount (UNIFORM_SCALING) works, parents closed, children link ParentShardId', async () => {
    const c = kl.client;
    const stream = kl.uniqueStreamName('usc');
    await kl.createStream(stream, 2);
    await c.send(new PutRecordsCommand({ StreamName: stream, Records: Array.from({ length: 20 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.from(`a${i}`) })) }));
    const res = await c.send(new UpdateShardCountCommand({ StreamName: stream, TargetShardCount: 4, ScalingType: 'UNIFORM_SCALING' }));
    assert.equal(res.CurrentShardCount, 2);
    assert.equal(res.TargetShardCount, 4);
    await waitActive(c, stream);
    const shards = await listShards(c, stream);
    assert.equal(shards.length, 6, 'ListShards returns 2 closed parents + 4 open children');
    const open = shards.filter(isOpen);
    assert.equal(open.length, 4);
    for (const child of open) assert.match(child.ParentShardId ?? '', /^shardId-00000000000[01]$/);
    const sum = await c.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    assert.equal(sum.StreamDescriptionSummary?.OpenShardCount, 4);
    // Reading a closed parent to its end: records, then no NextShardIterator and ChildShards.
    let total = 0;
    for (const parent of shards.filter((s) => !isOpen(s))) {
      const r = await readShard(c, stream, parent.ShardId!);
      total += r.Records?.length ?? 0;
      assert.equal(r.NextShardIterator, undefined);
      assert.equal(r.ChildShards?.length, 2);
    }
    assert.equal(total, 20);
  });

  it('resharding: SplitShard and MergeShards work', async () => {
    const c = kl.client;
    const stream = kl.uniqueStreamName('split');
    await kl.createStream(stream, 1);
    await c.send(new PutRecordCommand({ StreamName: stream, PartitionKey: 'p', Data: Buffer.from('before-split') }));
    await c.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: 'shardId-000000000000', NewStartingHashKey: (2n ** 127n).toString() }));
    await waitActive(c, stream);
    let shards = await listShards(c, stream);
    assert.deepEqual(
      shards.map((s) => [s.ShardId, s.ParentShardId ?? null, isOpen(s)]),
      [
        ['shardId-000000000000', null, false],
        ['shardId-000000000001', 'shardId-000000000000', true],
        ['shardId-000000000002', 'shardId-000000000000', true],
      ],
    );
    assert.equal(shards[1]!.HashKeyRange?.EndingHashKey, (2n ** 127n - 1n).toString());
    assert.equal(shards[2]!.HashKeyRange?.StartingHashKey, (2n ** 127n).toString());
    const parent = await readShard(c, stream, 'shardId-000000000000');
    assert.equal(parent.Records?.length, 1);
    assert.deepEqual(parent.ChildShards?.map((x) => x.ShardId).sort(), ['shardId-000000000001', 'shardId-000000000002']);

    await c.send(new MergeShardsCommand({ StreamName: stream, ShardToMerge: 'shardId-000000000001', AdjacentShardToMerge: 'shardId-000000000002' }));
    await waitActive(c, stream);
    shards = await listShards(c, stream);
    assert.deepEqual(shards.filter(isOpen).map((s) => s.ShardId), ['shardId-000000000003']);
  });

  it('no ProvisionedThroughputExceeded simulation: >1 MiB/s and >5 GetRecords/s on one shard all succeed', async (t) => {
    const c = kl.client;
    const stream = kl.uniqueStreamName('throttle');
    await kl.createStream(stream, 1);
    // Timing-independent: one PutRecords carrying 2 MiB for a single shard. Real Kinesis accepts at
    // most 1 MiB/s per shard, so part of this request would come back ProvisionedThroughputExceeded.
    const twoMiB = await c.send(
      new PutRecordsCommand({ StreamName: stream, Records: Array.from({ length: 512 }, () => ({ PartitionKey: 'one-shard', Data: Buffer.alloc(4096, 1) })) }),
    );
    assert.equal(twoMiB.FailedRecordCount ?? 0, 0);
    assert.ok(twoMiB.Records?.every((r) => r.ErrorCode === undefined));

    // Sustained: 30 × 100 KiB PutRecord calls back to back.
    const payload = Buffer.alloc(100 * 1024, 7);
    const started = performance.now();
    let errors = 0;
    for (let i = 0; i < 30; i++) {
      try {
        await c.send(new PutRecordCommand({ StreamName: stream, PartitionKey: 'one-shard', Data: payload }));
      } catch {
        errors++;
      }
    }
    const writeSec = (performance.now() - started) / 1000;
    t.diagnostic(`write: 30 × 100 KiB in ${writeSec.toFixed(2)} s = ${((30 * payload.length) / MiB / writeSec).toFixed(1)} MiB/s to one shard, errors=${errors}`);
    assert.equal(errors, 0);

    // Reads on a stream of small records (large responses are slow in kinesis-local, ~2-3 MB/s).
    const small = kl.uniqueStreamName('throttle-read');
    await kl.createStream(small, 1);
    await c.send(new PutRecordsCommand({ StreamName: small, Records: Array.from({ length: 50 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.from(`v${i}`) })) }));
    const it0 = await c.send(new GetShardIteratorCommand({ StreamName: small, ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }));
    const readStart = performance.now();
    for (let i = 0; i < 20; i++) await c.send(new GetRecordsCommand({ ShardIterator: it0.ShardIterator, Limit: 5 }));
    const perSec = 20 / ((performance.now() - readStart) / 1000);
    t.diagnostic(`read: ${perSec.toFixed(0)} GetRecords/s on one shard, no errors`);
    assert.ok(perSec > 5, 'test must exceed the 5 GetRecords/s shard limit');
  });

  it('memory after a workload (diagnostic only)', async (t) => {
    const rss = await kl.rssBytes();
    t.diagnostic(`kinesis-local rssMiB after the tests above=${rss === undefined ? 'n/a' : (rss / MiB).toFixed(0)}`);
  });
});

describe('kinesis-local persistence (SHOULD_PERSIST_DATA)', { timeout: 120_000 }, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function writeSome(kl: KinesisLocal) {
    const stream = kl.uniqueStreamName('persist');
    await kl.createStream(stream, 2);
    const put = await kl.client.send(
      new PutRecordsCommand({ StreamName: stream, Records: [1, 2, 3, 4].map((i) => ({ PartitionKey: `p${i}`, Data: Buffer.from(`r${i}`) })) }),
    );
    return { stream, sequenceNumbers: put.Records!.map((r) => r.SequenceNumber!).sort() };
  }

  async function readSeqs(kl: KinesisLocal, stream: string): Promise<string[]> {
    const out: string[] = [];
    for (const s of await listShards(kl.client, stream)) {
      const r = await readShard(kl.client, stream, s.ShardId!);
      out.push(...(r.Records ?? []).map((x) => x.SequenceNumber!));
    }
    return out.sort();
  }

  it('graceful stop (SIGTERM) persists immediately; restart restores streams, records, sequence numbers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinesis-local-persist-'));
    dirs.push(dir);
    // Interval far longer than the test: only the shutdown hook can have written the data.
    const kl = await startKinesisLocal({ persistDir: dir, persistIntervalMs: 600_000 });
    const { stream, sequenceNumbers } = await writeSome(kl);
    await kl.stop();
    assert.deepEqual(await readdir(dir), ['kinesis-data.json']);

    const again = await startKinesisLocal({ persistDir: dir, persistIntervalMs: 600_000 });
    try {
      const streams = (await again.client.send(new ListStreamsCommand({}))).StreamNames;
      assert.deepEqual(streams, [stream]);
      const sum = await again.client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
      assert.equal(sum.StreamDescriptionSummary?.StreamStatus, 'ACTIVE');
      assert.deepEqual(await readSeqs(again, stream), sequenceNumbers);
      // A consumer checkpoint (AFTER_SEQUENCE_NUMBER) from before the restart still resolves.
      const shard0 = (await listShards(again.client, stream))[0]!.ShardId!;
      const first = (await readShard(again.client, stream, shard0)).Records?.[0];
      if (first) {
        const it = await again.client.send(
          new GetShardIteratorCommand({ StreamName: stream, ShardId: shard0, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: first.SequenceNumber }),
        );
        assert.ok(it.ShardIterator);
      }
      // Writable after restart.
      await again.client.send(new PutRecordCommand({ StreamName: stream, PartitionKey: 'p1', Data: Buffer.from('after') }));
      assert.equal((await readSeqs(again, stream)).length, sequenceNumbers.length + 1);
    } finally {
      await again.stop();
    }
  });

  it('crash (SIGKILL) loses everything since the last PERSIST_INTERVAL tick', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kinesis-local-persist-'));
    dirs.push(dir);
    const kl = await startKinesisLocal({ persistDir: dir, persistIntervalMs: 600_000 });
    await writeSome(kl);
    // The file is written once at startup (empty state), then every interval.
    await kl.stop({ signal: 'SIGKILL' });
    const again = await startKinesisLocal({ persistDir: dir });
    try {
      assert.deepEqual((await again.client.send(new ListStreamsCommand({}))).StreamNames, []);
    } finally {
      await again.stop();
    }

    const dir2 = await mkdtemp(join(tmpdir(), 'kinesis-local-persist-'));
    dirs.push(dir2);
    const kl2 = await startKinesisLocal({ persistDir: dir2, persistIntervalMs: 200 });
    const { stream, sequenceNumbers } = await writeSome(kl2);
    await new Promise((r) => setTimeout(r, 1000)); // several ticks
    assert.ok((await stat(join(dir2, 'kinesis-data.json'))).size > 500);
    await kl2.stop({ signal: 'SIGKILL' });
    const again2 = await startKinesisLocal({ persistDir: dir2 });
    try {
      assert.deepEqual(await readSeqs(again2, stream), sequenceNumbers);
    } finally {
      await again2.stop();
    }
  });

  it('without persistDir nothing survives a restart', async () => {
    const kl = await startKinesisLocal();
    await writeSome(kl);
    const port = kl.port;
    await kl.stop();
    const again = await startKinesisLocal({ port });
    try {
      assert.deepEqual((await again.client.send(new ListStreamsCommand({}))).StreamNames, []);
    } finally {
      await again.stop();
    }
  });
});
