import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runMigrator } from '../support/cli.js';
import { ExitCode } from '../../src/util/exit-codes.js';

test('--help lists the shared option groups and the check command', async () => {
  const r = await runMigrator(['--help']);
  assert.equal(r.exitCode, 0);
  for (const s of ['migrator check', 'Source:', 'Target:', 'State store:', 'Kinesis:', 'Namespaces:', '--source-uri',
    '--target-uri', '--state-uri', '--state-db', '--migration-id', '--include', '--exclude', '--map', '--kinesis-stream',
    '--kinesis-endpoint', '--region', '--data-dir', '--log-format', '--verbose', '--config']) {
    assert.ok(r.stdout.includes(s), `--help mentions ${s}`);
  }
});

test('--version prints the package version', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const r = await runMigrator(['--version']);
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('unknown command or flag is a usage error (exit 2) with one message', async () => {
  const a = await runMigrator(['frobnicate']);
  assert.equal(a.exitCode, ExitCode.USAGE);
  assert.match(a.stderr, /error: Unknown argument: frobnicate/);
  const b = await runMigrator(['check', '--sorce-uri', 'mongodb://x']);
  assert.equal(b.exitCode, ExitCode.USAGE);
  assert.match(b.stderr, /Unknown argument/);
});

test('check without a source is a usage error naming the flag, env var and config key', async () => {
  const r = await runMigrator(['check', '--target-uri', 'mongodb://127.0.0.1:1']);
  assert.equal(r.exitCode, ExitCode.USAGE);
  assert.match(r.stderr, /Missing --source-uri/);
  assert.match(r.stderr, /MIGRATOR_SOURCE_URI/);
  assert.doesNotMatch(r.all, /\n\s+at /, 'no stack trace without --verbose');
});

test('check against a host that does not answer fails within its timeout with the connection exit code', async () => {
  const started = Date.now();
  // 192.0.2.0/24 is never routed? No: only loopback may be targeted here, so use a closed loopback port.
  const r = await runMigrator([
    'check',
    '--source-uri', 'mongodb://127.0.0.1:9/?directConnection=true',
    '--target-uri', 'mongodb://127.0.0.1:9/?directConnection=true',
    '--connect-timeout', '2s',
  ]);
  const elapsed = Date.now() - started;
  assert.equal(r.exitCode, ExitCode.CONNECTION_FAILED);
  assert.match(r.stderr, /Cannot connect to the (source|target) at mongodb:\/\/127\.0\.0\.1:9/);
  assert.match(r.stderr, /no answer within 2s/);
  assert.ok(elapsed < 30_000, `gave up in ${elapsed} ms`);
});

test('a malformed connection string is a usage error', async () => {
  const r = await runMigrator(['check', '--source-uri', 'mongodb://', '--target-uri', 'mongodb://127.0.0.1:9']);
  assert.equal(r.exitCode, ExitCode.USAGE);
  assert.match(r.stderr, /--source-uri/);
});

test('one config file serves every command: options of other commands are ignored, typos are errors', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'migrator-cfg-'));
  const shared = join(dir, 'shared.yaml');
  writeFileSync(shared, 'target-uri: mongodb://127.0.0.1:9/?directConnection=true\nlease-ttl: 10s\ndrop: true\nconnect-timeout: 1s\n');
  const r = await runMigrator(['check', '--config', shared, '--source-uri', 'mongodb://127.0.0.1:9/?directConnection=true']);
  assert.equal(r.exitCode, ExitCode.CONNECTION_FAILED, r.all);
  const typo = join(dir, 'typo.yaml');
  writeFileSync(typo, 'lease-tll: 10s\n');
  const t = await runMigrator(['apply', '--config', typo]);
  assert.equal(t.exitCode, ExitCode.USAGE);
  assert.match(t.stderr, /unknown option "lease-tll"/);
});
