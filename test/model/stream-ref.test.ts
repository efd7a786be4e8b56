// `--kinesis-stream` as an ARN (a stream of another account): capture and apply address the
// stream by StreamARN in every call, and the ARN's region is the client's region.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { DescribeStreamSummaryCommand } from '@aws-sdk/client-kinesis';
import { MongoClient, type Timestamp } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { PROJECT_ROOT, runMigrator } from '../support/cli.js';
import { streamParams } from '../../src/model/stream-ref.js';

describe('a Kinesis stream named by its ARN', () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  before(async () => {
    [source, target, kinesis] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal()]);
  });
  after(async () => Promise.all([source.stop(), target.stop(), kinesis.stop()]));

  test('streamParams: StreamARN for an ARN, StreamName otherwise', () => {
    assert.deepEqual(streamParams('orders-cdc'), { StreamName: 'orders-cdc' });
    assert.deepEqual(streamParams('arn:aws:kinesis:eu-west-1:123456789012:stream/orders-cdc'), { StreamARN: 'arn:aws:kinesis:eu-west-1:123456789012:stream/orders-cdc' });
  });

  test('capture and apply by ARN (no --region: the ARN names it): the changes arrive on the target', { timeout: 120_000 }, async () => {
    const name = kinesis.uniqueStreamName('arn');
    await kinesis.createStream(name, 2);
    const arn = (await kinesis.client.send(new DescribeStreamSummaryCommand({ StreamName: name }))).StreamDescriptionSummary!.StreamARN!;
    assert.match(arn, /^arn:aws:kinesis:us-east-1:\d{12}:stream\//);
    const src = new MongoClient(source.uri);
    try {
      const start = (await src.db('shop').command({ insert: 'items', documents: [{ _id: 0, v: 0 }] })).operationTime as Timestamp;
      const common = ['--target-uri', target.uri, '--kinesis-stream', arn, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', 'arn'];
      const capture = execa(process.execPath, ['--import', 'tsx', `${PROJECT_ROOT}/src/cli/main.ts`, 'capture', '--source-uri', source.uri, ...common, '--start-at', `${start.t},${start.i}`], {
        cwd: PROJECT_ROOT,
        reject: false,
        stdin: 'ignore',
        env: { CI: 'true', AWS_REGION: '', AWS_DEFAULT_REGION: '' },
      });
      for (let i = 1; i <= 100; i++) await src.db('shop').collection<{ _id: number; v: number }>('items').insertOne({ _id: i, v: i });
      await src.db('shop').collection<{ _id: number; v: number }>('items').updateOne({ _id: 0 }, { $set: { v: 42 } });
      const dst = new MongoClient(target.uri);
      try {
        const deadline = Date.now() + 60_000;
        let count = 0;
        while (Date.now() < deadline) {
          const r = await runMigrator(['apply', ...common, '--cdc-only', '--until-caught-up'], { env: { AWS_REGION: '', AWS_DEFAULT_REGION: '' } });
          assert.equal(r.exitCode, 0, r.all);
          count = await dst.db('shop').collection('items').countDocuments();
          if (count === 101 && (await dst.db('shop').collection('items').findOne({ _id: 0 as never }))?.v === 42) break;
          await new Promise((res) => setTimeout(res, 500));
        }
        assert.equal(count, 101, 'every document arrived through the stream named by ARN');
      } finally {
        await dst.close();
      }
      capture.kill('SIGTERM');
      const c = await capture;
      assert.equal(c.exitCode, 0, String(c.stderr).slice(-1500));
    } finally {
      await src.close();
    }
  });
});
