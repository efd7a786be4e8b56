// --metrics-port / --metrics-host as a user gives them: flag, MIGRATOR_METRICS_PORT, config-file key;
// a bad or busy port is one clear usage error (exit 2) before anything connects; commands that do
// not run long neither take the flag nor trip over the variable in a shared environment.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runMigrator } from '../support/cli.js';

// Nothing listens there: a command that got as far as connecting would fail with exit 3, not 2.
const CLOSED = 'mongodb://127.0.0.1:1/?directConnection=true';

describe('metrics options', { concurrency: 3, timeout: 120_000 }, () => {
  test('an invalid --metrics-port: exit 2 naming the flag and the variable', async () => {
    const r = await runMigrator(['capture', '--source-uri', CLOSED, '--kinesis-stream', 's', '--metrics-port', '70000', '--connect-timeout', '1s']);
    assert.equal(r.exitCode, 2, r.all);
    assert.match(r.stderr, /Invalid --metrics-port \(MIGRATOR_METRICS_PORT\): expected a port number 0-65535 \(got 70000\)/);
  });

  test('a port in use (MIGRATOR_METRICS_PORT): exit 2 before connecting, with the fix', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await runMigrator(['apply', '--target-uri', CLOSED, '--kinesis-stream', 's', '--metrics-host', '127.0.0.1', '--connect-timeout', '1s'], {
        env: { MIGRATOR_METRICS_PORT: String(port) },
      });
      assert.equal(r.exitCode, 2, r.all);
      assert.match(r.stderr, new RegExp(`Cannot serve metrics on 127\\.0\\.0\\.1:${port}: the port is in use`));
      assert.match(r.stderr, /hint: Choose another --metrics-port/);
    } finally {
      busy.close();
    }
  });

  test('"metrics-port" is a config-file key of the long-running commands', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'migrator-metrics-cfg-'));
    const file = join(dir, 'migrator.yaml');
    writeFileSync(file, 'metrics-port: -1\n');
    const r = await runMigrator(['full-migrate', '--source-uri', CLOSED, '--target-uri', CLOSED, '--kinesis-stream', 's', '--config', file]);
    assert.equal(r.exitCode, 2, r.all);
    assert.match(r.stderr, /Invalid --metrics-port/);
  });

  test('status does not take --metrics-port, and ignores MIGRATOR_METRICS_PORT of a shared environment', async () => {
    const flag = await runMigrator(['status', '--state-uri', CLOSED, '--metrics-port', '9464']);
    assert.equal(flag.exitCode, 2, flag.all);
    assert.match(flag.stderr, /Unknown arguments?: metrics-port/i);
    const env = await runMigrator(['status', '--state-uri', CLOSED, '--connect-timeout', '1s'], { env: { MIGRATOR_METRICS_PORT: '9464' } });
    assert.equal(env.exitCode, 3, env.all);
  });
});
