import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, stateEndpoint } from '../../src/config/load.js';
import { readConfigFile } from '../../src/config/config-file.js';
import { UsageError } from '../../src/util/errors.js';

const base = {
  'state-db': 'migrator_state',
  'migration-id': 'default',
  'kinesis-http': 'auto',
  'data-dir': './migrator-data',
  'connect-timeout': '10s',
  'log-format': 'text',
  verbose: false,
};

test('a valid configuration resolves, state store defaults to the target', () => {
  const c = resolveConfig({
    ...base,
    'source-uri': 'mongodb://src:27017/?replicaSet=rs0',
    'target-uri': 'mongodb://dst:27017',
    'target-retry-writes': false,
    include: ['bar.*', 'baz.items,qux.*'],
    map: ['bar:bar_new'],
    region: 'eu-west-1',
  });
  assert.equal(stateEndpoint(c)?.uri, 'mongodb://dst:27017');
  assert.equal(c.target?.retryWrites, false);
  assert.deepEqual(c.namespaces.include, ['bar.*', 'baz.items', 'qux.*']);
  assert.deepEqual(c.namespaces.map, ['bar:bar_new']);
  assert.equal(c.connectTimeoutMs, 10_000);
});

const bad: [string, Record<string, unknown>, RegExp][] = [
  ['URI scheme', { 'source-uri': 'postgres://x' }, /--source-uri \(MIGRATOR_SOURCE_URI\).*mongodb:\/\//],
  ['namespace pattern', { include: ['bar .x'] }, /--include .*namespace pattern/],
  ['map entry', { map: ['bar'] }, /--map .*"bar"/],
  ['map twice', { map: ['a:b', 'a:c'] }, /--map /],
  ['region', { region: 'mars' }, /--region .*AWS region/],
  ['endpoint', { 'kinesis-endpoint': 'not a url' }, /--kinesis-endpoint .*URL/],
  ['timeout', { 'connect-timeout': 'soon' }, /--connect-timeout .*duration/],
  ['migration id', { 'migration-id': 'a b' }, /--migration-id/],
  ['CA file', { 'source-uri': 'mongodb://h', 'source-tls-ca-file': '/nonexistent/ca.pem' }, /CA file .*not found/],
];
for (const [name, args, message] of bad) {
  test(`bad ${name} is one UsageError naming the option`, () => {
    assert.throws(() => resolveConfig({ ...base, ...args }), (err: unknown) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, message);
      return true;
    });
  });
}

test('config files: JSON and YAML, kebab or camel keys; unknown keys and bad syntax are errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'migrator-config-'));
  const json = join(dir, 'c.json');
  writeFileSync(json, JSON.stringify({ sourceUri: 'mongodb://a', 'target-uri': 'mongodb://b' }));
  assert.deepEqual(readConfigFile(json), { 'source-uri': 'mongodb://a', 'target-uri': 'mongodb://b' });
  const yaml = join(dir, 'c.yaml');
  writeFileSync(yaml, 'source-uri: mongodb://a\ninclude:\n  - bar.*\n');
  assert.deepEqual(readConfigFile(yaml), { 'source-uri': 'mongodb://a', include: ['bar.*'] });
  writeFileSync(yaml, 'sorce-uri: mongodb://a\n');
  assert.throws(() => readConfigFile(yaml), /unknown option "sorce-uri"/);
  writeFileSync(json, '{"source-uri": ');
  assert.throws(() => readConfigFile(json), /not valid JSON/);
  assert.throws(() => readConfigFile(join(dir, 'missing.yaml')), /does not exist/);
});
