import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { MongoClient } from 'mongodb';
import { ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../src/transport/kinesis-client.js';
import { PROJECT_ROOT } from '../support/cli.js';

async function connectable(uri: string): Promise<boolean> {
  const c = new MongoClient(uri, { serverSelectionTimeoutMS: 1500 });
  try {
    await c.db('admin').command({ ping: 1 });
    return true;
  } catch {
    return false;
  } finally {
    await c.close().catch(() => undefined);
  }
}

for (const target of ['emulator', 'ferretdb']) {
  test(`npm run stack (--target ${target}) prints its JSON line, serves, and stops cleanly on SIGTERM`, { timeout: 180_000 }, async () => {
    const child = execa(process.execPath, ['--import', 'tsx', 'scripts/stack.ts', '--target', target, '--stream', 'demo:2'], {
      cwd: PROJECT_ROOT,
      reject: false,
      stdin: 'ignore',
    });
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      void child.then((r) => reject(new Error(`stack exited early (${r.exitCode}): ${String(r.stderr)}`)));
    });
    const info = JSON.parse(first) as { sourceUri: string; targetUri: string; kinesisEndpoint: string; streams: string[] };
    assert.match(info.sourceUri, /^mongodb:\/\/127\.0\.0\.1:\d+/);
    assert.match(info.targetUri, /^mongodb:\/\/127\.0\.0\.1:\d+/);
    assert.match(info.kinesisEndpoint, /^http:\/\/127\.0\.0\.1:\d+$/);

    assert.equal(await connectable(info.sourceUri), true, 'source answers');
    assert.equal(await connectable(info.targetUri), true, 'target answers');
    const kinesis = createKinesisClient({ region: 'us-east-1', endpoint: info.kinesisEndpoint });
    const streams = await kinesis.send(new ListStreamsCommand({}));
    assert.ok(streams.StreamNames?.includes('demo'), 'the requested stream exists');
    kinesis.destroy();

    child.kill('SIGTERM');
    const result = await child;
    assert.equal(result.exitCode, 0, `clean exit; stderr: ${String(result.stderr)}`);
    assert.equal(await connectable(info.sourceUri), false, 'source stopped');
    assert.equal(await connectable(info.targetUri), false, 'target stopped');
  });
}
