// Secrets never leave the process: every command (`check`, `full-migrate`, `initial-load`,
// `capture`, `apply`, `status`, `cutover`, `verify`, and `--help`) runs with passwords in
// connection strings given as flags, MIGRATOR_* environment variables and config-file keys, and
// with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in the environment (used for
// real: every Kinesis request is signed with them). Nothing the runs print (stdout, text and JSON
// logs, --verbose, errors), no `status --json` document, no state-store document and no file
// left in --data-dir may contain any of them.
//
// The emulator refuses every SASL conversation, so a URI with a password cannot be used to connect.
//  - Failing runs: every URI carries a password and points at a closed loopback port
//    (--connect-timeout 1s), in three rotations of flag / environment / config file per URI.
//  - Successful runs: a whole migration (initial-load → full-migrate + cutover → status → verify,
//    capture → apply, check), each with the password in a URI the command does not connect to,
//    plus AWS keys in the environment; and a full-migrate whose (fake) mongodump prints the AWS keys,
//    so the error recorded in the state store and shown by `status --json` went through redaction.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { BSON, MongoClient } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { freePort } from '../support/free-port.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { PROJECT_ROOT, runMigrator, type CliResult } from '../support/cli.js';
import { StateStore } from '../../src/state/store.js';
import { ExitCode } from '../../src/util/exit-codes.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

// Every secret contains "S3cr3t" (any case): one case-insensitive search finds any of them, whole
// or in pieces. The passwords need percent-encoding ('@', ':', '/'), as real ones often do.
const PASSWORDS = { flag: 'Fl@g:S3cr3t/pw1', env: 'Env@S3cr3t:pw2', file: 'F1le/S3cr3t@pw3' } as const;
const AWS = {
  AWS_ACCESS_KEY_ID: 'AKIAMIGRATORS3CR3T01',
  AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/S3cr3tAccessKey+Migr8',
  AWS_SESSION_TOKEN: 'IQoJb3JpZ2luX2VjEMigratorS3cr3tSessionToken//AAAAB3NzaC1yc2E=',
  AWS_REGION: 'us-east-1',
};
const EXACT = [
  ...Object.values(PASSWORDS).flatMap((p) => [p, encodeURIComponent(p)]),
  AWS.AWS_ACCESS_KEY_ID,
  AWS.AWS_SECRET_ACCESS_KEY,
  AWS.AWS_SESSION_TOKEN,
];
const ANY_SECRET = /s3cr3t/i;

function assertNoSecret(text: string, where: string): void {
  assert.doesNotMatch(text, ANY_SECRET, `${where} contains a secret:\n${text}`);
  for (const s of EXACT) assert.equal(text.includes(s), false, `${where} contains ${s}`);
}

type Source = keyof typeof PASSWORDS;
const withPassword = (source: Source, port: number) =>
  `mongodb://migrator:${encodeURIComponent(PASSWORDS[source])}@127.0.0.1:${port}/?directConnection=true`;

/** Every file under a directory, as text (what a crash would leave behind for the next reader). */
function filesUnder(dir: string): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.push({ path: p, text: readFileSync(p, 'latin1') });
    }
  };
  walk(dir);
  return out;
}

describe('no secret in any output, status document or state document, for every command', { timeout: 300_000, concurrency: 4 }, () => {
  let src: MongoEmulator;
  let tgt: MongoEmulator;
  let kl: KinesisLocal;
  let tgtClient: MongoClient;
  let closed: number;
  let dir: string;
  let tools: Record<string, string>;
  /** Both streams of a run, checked at once. */
  const record = (where: string, r: CliResult | { stdout: unknown; stderr: unknown }) => {
    const text = `${String(r.stdout)}\n${String(r.stderr)}`;
    assertNoSecret(text, where);
    return text;
  };

  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    [src, tgt, kl, closed] = await Promise.all([startMongoEmulator(), startMongoEmulator(), startKinesisLocal(), freePort()]);
    tgtClient = new MongoClient(tgt.uri);
    await Promise.all(['sec-main', 'sec-cap', 'sec-tool'].map((s) => kl.createStream(s, 1)));
    const c = new MongoClient(src.uri);
    await c.db('sec').collection<{ _id: number; name: string }>('items').insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i, name: `item ${i}` })));
    await c.close();
    dir = mkdtempSync(join(tmpdir(), 'migrator-secrets-'));
    tools = { MIGRATOR_MONGODUMP_PATH: goToolPath('mongodump'), MIGRATOR_MONGORESTORE_PATH: goToolPath('mongorestore') };
  });
  after(async () => {
    await tgtClient?.close();
    await Promise.all([src?.stop(), tgt?.stop(), kl?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // ---- successful runs (first: the longest test) ----------------------------------------------
  test('a whole migration and every command succeeding, with AWS keys in use and passwords in unused URIs', async () => {
    const run = async (where: string, args: string[], env: Record<string, string> = {}, expect: number = ExitCode.OK) => {
      const r = await runMigrator(args, { env: { ...AWS, ...tools, ...env }, timeoutMs: 150_000 });
      record(where, r);
      assert.equal(r.exitCode, expect, `${where}:\n${r.all}`);
      return r;
    };
    const pw = (s: Source) => withPassword(s, closed);
    const fileWith = (name: string, values: Record<string, string>) => {
      const p = join(dir, name);
      writeFileSync(p, JSON.stringify(values));
      return p;
    };
    const kinesis = (stream: string) => ['--kinesis-stream', stream, '--kinesis-endpoint', kl.endpoint];
    const store = await StateStore.open({ client: tgtClient });

    // check: the state URI (never used by check) holds a password, as a flag.
    const check = await run('check --json', ['check', '--source-uri', src.uri, '--target-uri', tgt.uri, '--state-uri', pw('flag'), '--json', '--verbose', '--log-format', 'json']);
    assert.equal((JSON.parse(check.stdout) as { source: { databases: { name: string }[] } }).source.databases.some((d) => d.name === 'sec'), true);

    // initial-load, then full-migrate to the cutover: every URI is used, so only the AWS keys.
    const migrate = ['--source-uri', src.uri, '--target-uri', tgt.uri, '--include', 'sec.*', ...kinesis('sec-main'), '--migration-id', 'sec'];
    await run('initial-load', ['initial-load', ...migrate, '--data-dir', join(dir, 'data-load'), '--verbose', '--log-format', 'json']);
    const full = execa(process.execPath, ['--import', 'tsx', MAIN, 'full-migrate', ...migrate, '--data-dir', join(dir, 'data-full'), '--lease-ttl', '5s', '--verbose'], {
      cwd: PROJECT_ROOT, env: { CI: 'true', ...AWS, ...tools }, extendEnv: true, reject: false, stdin: 'ignore', timeout: 240_000,
    });
    try {
      const until = Date.now() + 120_000;
      while ((await store.getMigration('sec'))?.phase !== 'READY_FOR_CUTOVER') {
        if (Date.now() > until || full.exitCode !== null) assert.fail(`full-migrate did not reach READY_FOR_CUTOVER (exit ${String(full.exitCode)})`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // cutover: source and target URIs (unused: cutover only talks to the state store) with passwords, from the environment.
      await run('cutover --wait', ['cutover', '--state-uri', tgt.uri, '--migration-id', 'sec', '--writes-stopped', '--wait', '--timeout', '120s'], {
        MIGRATOR_SOURCE_URI: pw('env'),
        MIGRATOR_TARGET_URI: pw('env'),
      });
    } finally {
      const fr = await full;
      record('full-migrate', fr);
      assert.equal(fr.exitCode, ExitCode.OK, String(fr.stderr).slice(-3000));
    }

    // status --json: source and target URIs (unused) with passwords, as flags.
    const status = await run('status --json', ['status', '--json', '--state-uri', tgt.uri, '--migration-id', 'sec', '--source-uri', pw('flag'), '--target-uri', pw('flag')]);
    assert.equal((JSON.parse(status.stdout) as { phase: string }).phase, 'COMPLETED');

    // verify: the state URI (unused) with a password, from a config file.
    const verifyConfig = fileWith('verify.json', { 'state-uri': pw('file') });
    await run('verify', ['verify', '--source-uri', src.uri, '--target-uri', tgt.uri, '--include', 'sec.*', '--config', verifyConfig, '--json']);

    // capture: the target URI (unused when --state-uri is given) with a password, from a config file.
    const captureConfig = fileWith('capture.json', { 'target-uri': pw('file') });
    const startAt = String(Math.floor(Date.now() / 1000) - 1);
    const capture = execa(process.execPath, ['--import', 'tsx', MAIN, 'capture', '--source-uri', src.uri, '--state-uri', tgt.uri, '--config', captureConfig,
      ...kinesis('sec-cap'), '--include', 'sec2.*', '--migration-id', 'sec-cap', '--start-at', startAt, '--checkpoint-interval', '200ms', '--verbose', '--log-format', 'json'], {
      cwd: PROJECT_ROOT, env: { CI: 'true', ...AWS }, reject: false, stdin: 'ignore', timeout: 120_000,
    });
    const s = new MongoClient(src.uri);
    try {
      await s.db('sec2').collection<{ _id: number; v: string }>('c').insertMany([{ _id: 1, v: 'a' }, { _id: 2, v: 'b' }]);
      const inserted = Math.floor(Date.now() / 1000);
      const until = Date.now() + 60_000;
      for (;;) {
        const cp = await store.getCaptureCheckpoint('sec-cap');
        if (cp && cp.ct.t > inserted && cp.counters.events >= 2) break;
        if (Date.now() > until || capture.exitCode !== null) {
          capture.kill('SIGKILL');
          assert.fail(`capture did not checkpoint: ${String((await capture).stderr)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await s.close();
      capture.kill('SIGTERM');
      const cr = await capture;
      record('capture', cr);
      assert.equal(cr.exitCode, ExitCode.OK, String(cr.stderr));
    }

    // apply: the source URI (unused) with a password, as a flag.
    await run('apply --until-caught-up', ['apply', '--target-uri', tgt.uri, '--source-uri', pw('flag'), ...kinesis('sec-cap'), '--migration-id', 'sec-cap', '--cdc-only', '--until-caught-up', '--verbose', '--log-format', 'json', '--json']);
    assert.equal(await tgtClient.db('sec2').collection('c').countDocuments(), 2);

    // A tool failure whose output carries the AWS keys: the error, the state and status --json are redacted.
    const fake = join(dir, 'fake-mongotool.sh');
    writeFileSync(fake, '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "mongodump version: 100.12.2"; exit 0; fi\n' +
      'echo "Failed: connecting as $AWS_ACCESS_KEY_ID with $AWS_SECRET_ACCESS_KEY and $AWS_SESSION_TOKEN" >&2\nexit 1\n');
    chmodSync(fake, 0o755);
    await run('full-migrate (tool prints the AWS keys)', ['full-migrate', '--source-uri', src.uri, '--target-uri', tgt.uri, '--include', 'sec.*', '--map', 'sec:sec_tool',
      ...kinesis('sec-tool'), '--migration-id', 'sec-tool', '--data-dir', join(dir, 'data-tool'), '--log-format', 'json'],
    { MIGRATOR_MONGODUMP_PATH: fake, MIGRATOR_MONGORESTORE_PATH: fake }, ExitCode.TOOL_FAILED);
    const failed = await run('status --json (failed migration)', ['status', '--json', '--state-uri', tgt.uri, '--migration-id', 'sec-tool']);
    const report = JSON.parse(failed.stdout) as { phase: string; lastError: { message: string; exitCode: number } | null };
    assert.equal(report.phase, 'FAILED');
    assert.equal(report.lastError?.exitCode, ExitCode.TOOL_FAILED);
    assert.match(report.lastError!.message, /connecting as \*\*\* with \*\*\* and \*\*\*/, 'the tool output reached the error, redacted');

    // Every file the runs left in their data directories (our own inputs aside).
    for (const f of filesUnder(dir)) {
      if (!f.path.slice(dir.length).includes('data-')) continue;
      assertNoSecret(f.text, f.path);
    }

    // Every document the runs wrote to the state store.
    const db = tgtClient.db('migrator_state');
    for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) {
      const docs = await db.collection(name).find().toArray();
      assertNoSecret(BSON.EJSON.stringify(docs), `state store collection ${name}`);
    }
  });

  // ---- failing runs: every URI has a password, on a closed port ---------------------------------
  const rotations: { name: string; uri: Record<'source' | 'target' | 'state', Source>; flags: string[] }[] = [
    { name: 'source=flag target=env state=file, --verbose --log-format json', uri: { source: 'flag', target: 'env', state: 'file' }, flags: ['--verbose', '--log-format', 'json'] },
    { name: 'source=env target=file state=flag, --verbose', uri: { source: 'env', target: 'file', state: 'flag' }, flags: ['--verbose'] },
    { name: 'source=file target=flag state=env', uri: { source: 'file', target: 'flag', state: 'env' }, flags: [] },
  ];
  const commands: { cmd: string[]; extra?: boolean }[] = [
    { cmd: ['check'] },
    { cmd: ['full-migrate'], extra: true },
    { cmd: ['initial-load'], extra: true },
    { cmd: ['capture'], extra: true },
    { cmd: ['apply', '--until-caught-up'], extra: true },
    { cmd: ['status', '--json'] },
    { cmd: ['cutover', '--writes-stopped', '--wait', '--timeout', '5s'] },
    { cmd: ['verify'] },
  ];
  rotations.forEach((rot, ri) => {
    for (const { cmd, extra } of commands) {
      test(`${cmd[0]} fails to connect: ${rot.name}`, async () => {
        const flags: string[] = [];
        const env: Record<string, string> = { ...AWS };
        const file: Record<string, string> = { 'connect-timeout': '1s' };
        for (const role of ['source', 'target', 'state'] as const) {
          const from = rot.uri[role];
          const uri = withPassword(from, closed);
          if (from === 'flag') flags.push(`--${role}-uri`, uri);
          else if (from === 'env') env[`MIGRATOR_${role.toUpperCase()}_URI`] = uri;
          else file[`${role}-uri`] = uri;
        }
        const config = join(dir, `rotation-${ri}-${cmd[0]!.replace(/^-+/, '')}.yaml`);
        writeFileSync(config, Object.entries(file).map(([k, v]) => `${k}: "${v}"`).join('\n') + '\n');
        const kinesis = extra ? ['--kinesis-stream', 'sec-main', '--kinesis-endpoint', kl.endpoint] : [];
        const dataDir = extra ? ['--data-dir', join(dir, `data-fail-${ri}-${cmd[0]}`)] : [];
        const r = await runMigrator([...cmd, ...flags, '--config', config, ...kinesis, ...dataDir, ...rot.flags], { env: { ...env, ...tools } });
        const text = record(`${cmd.join(' ')} (${rot.name})`, r);
        assertNoSecret(text, `${cmd.join(' ')} (${rot.name})`);
        assert.equal(r.exitCode, ExitCode.CONNECTION_FAILED, r.all);
        // The URI was printed, redacted: the check above is not vacuous.
        assert.match(r.stderr, /^error: Cannot connect to the (source|target|state store) at mongodb:\/\/migrator:\*\*\*@127\.0\.0\.1:\d+/m, r.all);
      });
    }
  });

  test('--help and full-migrate --help, with secrets in flags, environment and config file', async () => {
    const config = join(dir, 'help.yaml');
    writeFileSync(config, `target-uri: "${withPassword('file', closed)}"\n`);
    for (const args of [['--help'], ['full-migrate', '--help']]) {
      const r = await runMigrator([...args, '--source-uri', withPassword('flag', closed), '--config', config, '--verbose'], {
        env: { ...AWS, MIGRATOR_STATE_URI: withPassword('env', closed) },
      });
      record(args.join(' '), r);
      assert.equal(r.exitCode, 0, r.all);
      assert.match(r.stdout, /--source-uri/);
    }
  });

});
