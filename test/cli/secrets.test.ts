import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMigrator } from '../support/cli.js';

const PASSWORD = 'Sup3r-Secr3t_pw';
const ENCODED = 'Sup3r%2DSecr3t%5Fpw';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const closed = (pw: string) => `mongodb://admin:${pw}@127.0.0.1:9/?directConnection=true`;

function assertNoSecret(out: string, where: string) {
  for (const s of [PASSWORD, ENCODED, AWS_SECRET]) {
    assert.equal(out.includes(s), false, `${where}: output contains a secret:\n${out}`);
  }
}

const cases: [string, string[], Record<string, string>][] = [
  ['flag', ['check', '--source-uri', closed(PASSWORD), '--target-uri', closed(PASSWORD), '--connect-timeout', '1s'], {}],
  ['flag, verbose, json logs', ['check', '--source-uri', closed(PASSWORD), '--target-uri', closed(ENCODED), '--connect-timeout', '1s', '--verbose', '--log-format', 'json'], {}],
  ['environment', ['check', '--connect-timeout', '1s'], { MIGRATOR_SOURCE_URI: closed(PASSWORD), MIGRATOR_TARGET_URI: closed(PASSWORD) }],
  ['bad option next to a secret', ['check', '--source-uri', closed(PASSWORD), '--target-uri', closed(PASSWORD), '--region', 'nowhere'], {}],
  ['unknown flag next to a secret', ['check', '--source-uri', closed(PASSWORD), '--bogus'], {}],
  ['help with secrets in env', ['--help'], { MIGRATOR_SOURCE_URI: closed(PASSWORD), AWS_SECRET_ACCESS_KEY: AWS_SECRET }],
  ['AWS key in env', ['check', '--source-uri', closed(PASSWORD), '--target-uri', closed(PASSWORD), '--connect-timeout', '1s', '--verbose'], { AWS_SECRET_ACCESS_KEY: AWS_SECRET }],
];

for (const [name, args, env] of cases) {
  test(`no secret in any output: ${name}`, async () => {
    const r = await runMigrator(args, { env });
    assert.notEqual(r.all.trim(), '', 'the command printed something');
    assertNoSecret(r.all, name);
  });
}

test('no secret in any output: config file (JSON and YAML)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'migrator-secrets-'));
  const json = join(dir, 'c.json');
  writeFileSync(json, JSON.stringify({ 'source-uri': closed(PASSWORD), targetUri: closed(PASSWORD), 'connect-timeout': '1s' }));
  const yaml = join(dir, 'c.yaml');
  writeFileSync(yaml, `source-uri: "${closed(PASSWORD)}"\ntarget-uri: "${closed(PASSWORD)}"\nregion: bogus\n`);
  for (const file of [json, yaml]) {
    const r = await runMigrator(['check', '--config', file, '--verbose']);
    assert.notEqual(r.exitCode, 0);
    assertNoSecret(r.all, file);
  }
});
