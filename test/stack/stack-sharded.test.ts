// `npm run stack -- --target-shard-key db.coll:field`: the emulator target is a mongos with the
// collection sharded (the emulator's sharded-target mode).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { MongoClient } from 'mongodb';
import { PROJECT_ROOT } from '../support/cli.js';

test('npm run stack -- --target-shard-key shop.orders:region presents a mongos with shop.orders sharded on {region: 1}', { timeout: 120_000 }, async () => {
  const child = execa(process.execPath, ['--import', 'tsx', 'scripts/stack.ts', '--target-profile', 'mongodb-6.0', '--target-shard-key', 'shop.orders:region'], {
    cwd: PROJECT_ROOT,
    reject: false,
    stdin: 'ignore',
  });
  try {
    const lines = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      void child.then((r) => reject(new Error(`stack exited early (${r.exitCode}): ${String(r.stderr)}`)));
    });
    const info = JSON.parse(first) as { targetUri: string };
    const client = new MongoClient(info.targetUri, { serverSelectionTimeoutMS: 5000 });
    try {
      const hello = await client.db('admin').command({ hello: 1 });
      assert.equal(hello.msg, 'isdbgrid');
      const meta = await client.db('config').collection('collections').findOne({ _id: 'shop.orders' as never });
      assert.deepEqual(meta?.key, { region: 1 });
    } finally {
      await client.close();
    }
  } finally {
    child.kill('SIGTERM');
    const result = await child;
    assert.equal(result.exitCode, 0, `clean exit; stderr: ${String(result.stderr)}`);
  }
});
