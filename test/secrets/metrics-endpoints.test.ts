// No secret leaves through the metrics server (--metrics-port): a capture connected with passwords
// in its connection strings (source and state store on emulators with access control) and AWS keys
// in its environment serves /metrics, /healthz, /readyz and /status, and none of them holds a
// password or key — not even when the migration's recorded last error quotes a connection string
// with its password (written raw into the state store by another program: /status must redact it).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { freePort } from '../support/free-port.js';
import { PROJECT_ROOT } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';

const MAIN = `${PROJECT_ROOT}/src/cli/main.ts`;
const PASSWORD = 'R00t@S3cr3t:pw/1';
const AWS = {
  AWS_ACCESS_KEY_ID: 'AKIAMIGRATORS3CR3T01',
  AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/S3cr3tAccessKey+Migr8',
  AWS_SESSION_TOKEN: 'IQoJb3JpZ2luX2VjEMigratorS3cr3tSessionToken//AAAAB3NzaC1yc2E=',
};
const ANY_SECRET = /s3cr3t/i;

function assertNoSecret(text: string, where: string): void {
  assert.doesNotMatch(text, ANY_SECRET, `${where} contains a secret:\n${text}`);
  for (const s of [PASSWORD, encodeURIComponent(PASSWORD), ...Object.values(AWS)]) assert.equal(text.includes(s), false, `${where} contains ${s}`);
}

describe('no secret in /metrics, /healthz, /readyz or /status', { timeout: 180_000 }, () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let kinesis: KinesisLocal;
  const auth = { users: [{ user: 'root', pwd: PASSWORD, roles: ['root'] }] };
  before(async () => {
    [source, target, kinesis] = await Promise.all([startMongoEmulator({ auth }), startMongoEmulator({ auth }), startKinesisLocal()]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop(), kinesis?.stop()]);
  });

  test('a capture with passwords in its URIs and AWS keys in its environment', async () => {
    const uri = (e: MongoEmulator) => `mongodb://root:${encodeURIComponent(PASSWORD)}@${e.host}/?replicaSet=${e.replSetName}&authSource=admin`;
    const stream = kinesis.uniqueStreamName('secrets');
    await kinesis.createStream(stream, 1);
    const port = await freePort();
    const id = 'metrics-secrets';
    const proc: ResultPromise = execa(
      process.execPath,
      ['--import', 'tsx', MAIN, 'capture', '--cdc-only', '--kinesis-stream', stream, '--kinesis-endpoint', kinesis.endpoint, '--migration-id', id, '--metrics-host', '127.0.0.1'],
      {
        cwd: PROJECT_ROOT,
        env: { CI: 'true', ...AWS, MIGRATOR_SOURCE_URI: uri(source), MIGRATOR_TARGET_URI: uri(target), MIGRATOR_METRICS_PORT: String(port) },
        extendEnv: true,
        reject: false,
        stdin: 'ignore',
      },
    );
    const client = new MongoClient(uri(target));
    try {
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        return { code: res.status, text: await res.text() };
      };
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (proc.exitCode !== null) assert.fail(`capture exited ${proc.exitCode}: ${String((await proc).stderr)}`);
        const r = await get('/readyz').catch(() => undefined);
        if (r?.code === 200) break;
        if (Date.now() > deadline) assert.fail(`capture not ready: ${r?.text}`);
        await new Promise((res) => setTimeout(res, 250));
      }
      // Another program records an error quoting the connection string, password and all.
      const store = await StateStore.open({ client });
      await store.createMigration(id, {});
      await store.recordError(id, new Error(`could not reach ${uri(source)} (AWS key ${AWS.AWS_SECRET_ACCESS_KEY})`));
      let status = await get('/status');
      for (let i = 0; i < 20 && !status.text.includes('could not reach'); i++) {
        await new Promise((res) => setTimeout(res, 250)); // the status cache is 2 s old at most
        status = await get('/status');
      }
      assert.equal(status.code, 200, status.text);
      assert.match(status.text, /could not reach mongodb:\/\/root:/, 'the error is shown, redacted');
      assertNoSecret(status.text, '/status');
      for (const path of ['/metrics', '/healthz', '/readyz', '/nope']) assertNoSecret((await get(path)).text, path);
    } finally {
      proc.kill('SIGTERM');
      const r = await proc;
      await client.close();
      assertNoSecret(`${String(r.stdout)}\n${String(r.stderr)}`, 'capture output');
    }
  });
});
