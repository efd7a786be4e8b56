// The embedded Kinesis engine: a fresh one-shard stream, and a process that never outlives its parent.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { GetRecordsCommand, GetShardIteratorCommand, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { pino } from 'pino';
import { PROJECT_ROOT } from '../support/cli.js';
import { startEmbeddedKinesis, EMBEDDED_STREAM_NAME } from '../../src/transport/embedded-kinesis.js';
import { killQuietly, processAlive, waitGone } from '../support/full-migrate-process.js';

const log = pino({ level: 'silent' });

/** Local addresses (hex, as in /proc/net/tcp*) listening on `port`; undefined without /proc. */
function listeningAddresses(port: number): string[] | undefined {
  const found: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) return undefined;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== '0A') continue; // LISTEN
      const [addr, hexPort] = (cols[1] ?? '').split(':');
      if (parseInt(hexPort ?? '', 16) === port) found.push(addr!);
    }
  }
  return found;
}

describe('embedded Kinesis engine', { timeout: 120_000 }, () => {
  it('starts with a fresh ACTIVE one-shard stream, logs under the data dir, and stops', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'migrator-embedded-'));
    const engine = await startEmbeddedKinesis({ dataDir, log });
    try {
      assert.equal(engine.streamName, EMBEDDED_STREAM_NAME);
      assert.deepEqual(engine.shardIds, ['shardId-000000000000']);
      assert.ok(existsSync(join(dataDir, 'kinesis', 'kinesis-local.log')));
      assert.ok(processAlive(engine.pid));
      const listeners = listeningAddresses(Number(new URL(engine.endpoint).port));
      if (listeners) assert.deepEqual(listeners, ['0100007F'], 'listens on 127.0.0.1 only');
      const put = await engine.client.send(new PutRecordCommand({ StreamName: engine.streamName, PartitionKey: 'k', Data: Buffer.from('x') }));
      const it = await engine.client.send(
        new GetShardIteratorCommand({ StreamName: engine.streamName, ShardId: put.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }),
      );
      const got = await engine.client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator! }));
      assert.equal(got.Records?.length, 1);
    } finally {
      await engine.stop();
      await engine.stop(); // idempotent
    }
    assert.ok(await waitGone(engine.pid, 2_000), 'engine stopped');

    // A second start is a new, empty stream (no persistence).
    const again = await startEmbeddedKinesis({ dataDir, log });
    try {
      const it = await again.client.send(
        new GetShardIteratorCommand({ StreamName: again.streamName, ShardId: again.shardIds[0]!, ShardIteratorType: 'TRIM_HORIZON' }),
      );
      const got = await again.client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator! }));
      assert.equal(got.Records?.length, 0);
    } finally {
      await again.stop();
    }
  });

  it('dies with its parent, even when the parent is SIGKILLed', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'migrator-embedded-'));
    const script = `
      import { pino } from 'pino';
      import { startEmbeddedKinesis } from './src/transport/embedded-kinesis.ts';
      const e = await startEmbeddedKinesis({ dataDir: ${JSON.stringify(dataDir)}, log: pino({ level: 'silent' }) });
      console.log('PID ' + e.pid);
      setInterval(() => {}, 1000);
    `;
    const parent = execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: PROJECT_ROOT, reject: false, stdin: 'ignore' });
    let pid: number | undefined;
    try {
      pid = await new Promise<number>((resolve, reject) => {
        let out = '';
        parent.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /PID (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        void parent.then((r) => reject(new Error(`parent exited: ${String(r.stderr)}`)));
      });
      assert.ok(processAlive(pid));
      parent.kill('SIGKILL');
      await parent;
      assert.ok(await waitGone(pid, 5_000), `kinesis-local (pid ${pid}) outlived its SIGKILLed parent`);
    } finally {
      parent.kill('SIGKILL');
      killQuietly(pid);
    }
  });
});
