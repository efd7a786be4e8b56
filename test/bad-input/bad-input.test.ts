// Bad input, table-driven: every row runs the real CLI (child process) against the local stack and
// checks that the user gets ONE `error:` line naming the problem, a remedy (in that line, its
// `hint:` or the preflight `fix:` lines), the exit code of README's table (src/util/exit-codes.ts),
// no stack trace unless --verbose, nothing on stdout, and a state store left unchanged (every
// collection of the row's own --state-db is snapshotted before and after) or, where the command
// legitimately records something, in the documented consistent state.
//
// README's list of bad-input cases mirrors these rows: keep the two in step.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { CreateStreamCommand, GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { BSON, Binary, MongoClient, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startKinesisLocal, type KinesisLocal } from '../support/kinesis-local.js';
import { freePort } from '../support/free-port.js';
import { ensureGoTools, goToolPath } from '../support/go-tools.js';
import { PROJECT_ROOT, runMigrator, type CliResult } from '../support/cli.js';
import { readStreamEnvelopes } from '../support/stream-contents.js';
import { StateStore } from '../../src/state/store.js';
import { ExitCode } from '../../src/util/exit-codes.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** A change-stream token in MongoDB's own KeyString format, as a real replica set hands out. */
const MONGODB_TOKEN = JSON.stringify({
  _data: '8263A1B2C3000000012B022C0100296E5A10046D5B5A2E3F4B4C5D8E9F0A1B2C3D4E5F46645F696400646368A1B2C3D4E5F60718293A4B0004',
});

/** A stack frame as Node prints it: `    at fn (file:line:col)` / `    at file:line:col`. */
const STACK_FRAME = /^\s+at (?:.+ \()?(?:\S+):\d+:\d+\)?$|^\s+at .*\(native\)$/m;

interface Stack {
  src: MongoEmulator;
  tgt: MongoEmulator;
  /** historyLimit 5: older resume points fail with 286. */
  small: MongoEmulator;
  kl: KinesisLocal;
  /** Every CreateStream stays CREATING for 10 minutes. */
  klSlow: KinesisLocal;
  tgtClient: MongoClient;
  closedPort: number;
  dir: string;
  tools: Record<string, string>;
}

interface Row {
  name: string;
  /** README list entry: what the user did wrong. */
  args: (s: Stack, stateDb: string) => string[];
  env?: (s: Stack) => Record<string, string>;
  exit: number;
  /** Matched against the single `error:` line. */
  problem: RegExp;
  /** Matched against the error block (the `error:` line to the end: hint, preflight fix lines). */
  fix: RegExp;
  /** Checks on the state db after the run; default: byte-for-byte unchanged. */
  state?: (before: Document, after: Document) => void;
  /**
   * Upper bound of the run's wall time: a hang guard, generous because a loaded machine takes
   * seconds just to start the CLI (the message proves which timeout was applied).
   */
  maxMs?: number;
  /** With --verbose a stack trace is expected (the driver's error as cause). */
  verbose?: boolean;
  /** Extra assertions on the output. */
  also?: (r: CliResult) => void;
  /** A known product bug: the row documents the expected behaviour but does not fail the suite. */
  todo?: string;
  timeoutMs?: number;
}

const stateArgs = (s: Stack, db: string) => ['--state-uri', s.tgt.uri, '--state-db', db];
const kinesisArgs = (s: Stack, stream = 'ok') => ['--kinesis-stream', stream, '--kinesis-endpoint', s.kl.endpoint, '--region', 'us-east-1'];

const rows: Row[] = [
  // ---- malformed connection strings --------------------------------------------------------
  {
    name: 'source URI that is not a mongodb:// URI',
    args: (s, db) => ['check', '--source-uri', 'http://localhost:27017', '--target-uri', s.tgt.uri, ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --source-uri \(MIGRATOR_SOURCE_URI\): expected a connection string/,
    fix: /mongodb:\/\/.*mongodb\+srv:\/\//,
  },
  {
    name: 'source URI with a port out of range (check must not hang while the target connects)',
    args: (s, db) => ['check', '--source-uri', 'mongodb://127.0.0.1:99999', '--target-uri', s.tgt.uri, ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid source connection string mongodb:\/\/127\.0\.0\.1:99999: /,
    fix: /^hint: Fix --source-uri: expected mongodb:\/\/HOST/m,
    maxMs: 30_000,
  },
  {
    name: 'same, with --verbose: the driver error is shown with its stack',
    args: (s, db) => ['check', '--source-uri', 'mongodb://127.0.0.1:99999', '--target-uri', s.tgt.uri, ...stateArgs(s, db), '--verbose'],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid source connection string/,
    fix: /^hint: Fix --source-uri/m,
    verbose: true,
    maxMs: 30_000,
  },
  {
    name: 'state URI with an unknown option',
    args: (_s, db) => ['status', '--state-uri', 'mongodb://127.0.0.1:1/?replicaSet=rs0&bogusOption=1', '--state-db', db],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid state store connection string .*bogusoption is not supported/,
    fix: /^hint: Fix --state-uri/m,
  },
  {
    name: 'target URI mongodb+srv:// with a port (verify)',
    args: (s, db) => ['verify', '--source-uri', s.src.uri, '--target-uri', 'mongodb+srv://cluster.example.net:27017', ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid target connection string mongodb\+srv:\/\/cluster\.example\.net:27017: .*port/,
    fix: /^hint: Fix --target-uri/m,
  },
  {
    name: "password with unescaped '@' and ':' (capture): rejected, and no piece of the password printed",
    args: (s, db) => ['capture', '--source-uri', 'mongodb://admin:Pa55@w0rd:Xyz@127.0.0.1:1', ...stateArgs(s, db), ...kinesisArgs(s)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid source connection string mongodb:\/\/admin:\*\*\*@127\.0\.0\.1:1: /,
    fix: /percent-encoded/,
    also: (r) => {
      for (const piece of ['pa55', 'w0rd', 'xyz']) assert.equal(r.all.toLowerCase().includes(piece), false, `password piece ${piece} printed:\n${r.all}`);
    },
  },
  {
    // The driver reads what follows the '@' as a host name (and prints it lowercased).
    name: "password with an unescaped '@' (status): the rest is taken for a host; no piece of the password printed",
    args: (_s, db) => ['status', '--state-uri', 'mongodb://admin:Pa55@w0rdXyz@127.0.0.1:1', '--state-db', db, '--connect-timeout', '1s'],
    exit: ExitCode.CONNECTION_FAILED,
    problem: /^error: Cannot connect to the state store at mongodb:\/\/admin:\*\*\*@127\.0\.0\.1:1: /,
    fix: /^hint: Check that the state store is reachable from here and the connection string is right\.$/m,
    maxMs: 30_000,
    also: (r) => {
      for (const piece of ['pa55', 'w0rdxyz']) assert.equal(r.all.toLowerCase().includes(piece), false, `password piece ${piece} printed:\n${r.all}`);
    },
  },
  // ---- unreachable hosts (closed loopback port, bounded by --connect-timeout) -----------------
  {
    name: 'source on a closed port (check, --connect-timeout 1s)',
    args: (s, db) => ['check', '--source-uri', `mongodb://127.0.0.1:${s.closedPort}/?directConnection=true`, '--target-uri', s.tgt.uri, '--connect-timeout', '1s', ...stateArgs(s, db)],
    exit: ExitCode.CONNECTION_FAILED,
    problem: /^error: Cannot connect to the source at mongodb:\/\/127\.0\.0\.1:\d+\/\?directConnection=true: no answer within 1s/,
    fix: /^hint: Check that the source is reachable/m,
    maxMs: 30_000,
  },
  {
    name: 'state store on a closed port (status, --connect-timeout 1s)',
    args: (s, db) => ['status', '--state-uri', `mongodb://127.0.0.1:${s.closedPort}/?replicaSet=rs0`, '--state-db', db, '--connect-timeout', '1s'],
    exit: ExitCode.CONNECTION_FAILED,
    problem: /^error: Cannot connect to the state store at mongodb:\/\/127\.0\.0\.1:\d+\/\?replicaSet=rs0: no answer within 1s/,
    fix: /^hint: Check that the state store is reachable/m,
    maxMs: 30_000,
  },
  {
    name: 'target on a closed port (apply, --connect-timeout 1s)',
    args: (s, db) => ['apply', '--target-uri', `mongodb://127.0.0.1:${s.closedPort}`, ...stateArgs(s, db), ...kinesisArgs(s), '--connect-timeout', '1s', '--until-caught-up'],
    exit: ExitCode.CONNECTION_FAILED,
    problem: /^error: Cannot connect to the target at mongodb:\/\/127\.0\.0\.1:\d+: no answer within 1s/,
    fix: /^hint: Check that the target is reachable/m,
    maxMs: 30_000,
  },
  // ---- authentication ------------------------------------------------------------------------
  {
    // The emulator refuses every SASL conversation ("authentication is not supported"), so any
    // user:password in the URI produces the driver's authentication failure.
    name: 'credentials the source refuses (check)',
    args: (s, db) => ['check', '--source-uri', `mongodb://admin:Wr0ngPassw0rd@127.0.0.1:${s.src.port}/?replicaSet=rs0`, '--target-uri', s.tgt.uri, ...stateArgs(s, db)],
    exit: ExitCode.CONNECTION_FAILED,
    problem: /^error: Cannot connect to the source at mongodb:\/\/admin:\*\*\*@127\.0\.0\.1:\d+\/\?replicaSet=rs0: authentication failed\.$/,
    fix: /^hint: Check the user name, password and authSource in the source connection string\.$/m,
    maxMs: 30_000,
    also: (r) => assert.equal(r.all.includes('Wr0ngPassw0rd'), false),
  },
  // ---- TLS -----------------------------------------------------------------------------------
  {
    name: 'TLS CA file that does not exist',
    args: (s, db) => ['check', '--source-uri', s.src.uri, '--target-uri', s.tgt.uri, '--target-tls-ca-file', '/nonexistent/global-bundle.pem', ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: TLS CA file for the target not found: \/nonexistent\/global-bundle\.pem\.$/,
    fix: /^hint: Check --target-tls-ca-file\.$/m,
  },
  // ---- Kinesis -------------------------------------------------------------------------------
  {
    name: 'unknown Kinesis stream (capture)',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), ...kinesisArgs(s, 'no-such-stream')],
    exit: ExitCode.STREAM_FAILED,
    problem: /^error: Cannot write to Kinesis stream no-such-stream: .*not found/,
    fix: /^hint: Check --kinesis-stream, --region/m,
  },
  {
    name: 'unknown Kinesis stream (apply)',
    args: (s, db) => ['apply', '--target-uri', s.tgt.uri, ...stateArgs(s, db), ...kinesisArgs(s, 'no-such-stream'), '--until-caught-up'],
    exit: ExitCode.STREAM_FAILED,
    problem: /^error: Kinesis stream 'no-such-stream' not found/,
    fix: /^hint: Check --kinesis-stream, --region and --kinesis-endpoint/m,
  },
  {
    name: 'Kinesis stream not ACTIVE yet (apply; CREATING)',
    args: (s, db) => ['apply', '--target-uri', s.tgt.uri, ...stateArgs(s, db), '--kinesis-stream', 'creating', '--kinesis-endpoint', s.klSlow.endpoint, '--until-caught-up'],
    exit: ExitCode.STREAM_FAILED,
    problem: /^error: Kinesis stream 'creating' is CREATING, not ACTIVE\.$/,
    fix: /^hint: Wait until the stream is ACTIVE, then rerun\.$/m,
  },
  {
    name: 'Kinesis stream not ACTIVE yet (capture; CREATING)',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), '--kinesis-stream', 'creating', '--kinesis-endpoint', s.klSlow.endpoint],
    exit: ExitCode.STREAM_FAILED,
    problem: /^error: Kinesis stream 'creating' is CREATING, not ACTIVE\.$/,
    fix: /^hint: Wait until the stream is ACTIVE, then rerun\.$/m,
    timeoutMs: 10_000,
  },
  {
    name: 'wrong region (the stream exists in us-east-1 only)',
    args: (s, db) => ['apply', '--target-uri', s.tgt.uri, ...stateArgs(s, db), '--kinesis-stream', 'ok', '--kinesis-endpoint', s.kl.endpoint, '--region', 'eu-west-1', '--until-caught-up'],
    exit: ExitCode.STREAM_FAILED,
    problem: /^error: Kinesis stream 'ok' not found: .*eu-west-1/,
    fix: /--region/,
  },
  {
    name: 'Kinesis endpoint on a closed port (capture)',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), '--kinesis-stream', 'ok', '--kinesis-endpoint', `http://127.0.0.1:${s.closedPort}`],
    exit: ExitCode.STREAM_FAILED,
    problem: /^error: Cannot write to Kinesis stream ok: connect ECONNREFUSED 127\.0\.0\.1:\d+\.$/,
    fix: /--kinesis-endpoint/,
    maxMs: 30_000,
  },
  {
    name: 'Kinesis endpoint on a closed port (apply)',
    args: (s, db) => ['apply', '--target-uri', s.tgt.uri, ...stateArgs(s, db), '--kinesis-stream', 'ok', '--kinesis-endpoint', `http://127.0.0.1:${s.closedPort}`, '--until-caught-up'],
    exit: ExitCode.STREAM_FAILED,
    problem: /^error: Cannot read Kinesis stream 'ok': .*ECONNREFUSED/,
    fix: /^hint: Check that Kinesis \(or --kinesis-endpoint\) is reachable/m,
    maxMs: 30_000,
  },
  {
    name: 'region that is not an AWS region name',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), '--kinesis-stream', 'ok', '--region', 'mars'],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --region \(MIGRATOR_REGION\): expected an AWS region like us-east-1\.$/,
    fix: /like us-east-1/,
  },
  {
    name: 'stream ARN that is not one (arn: prefix, no stream/NAME)',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), '--kinesis-stream', 'arn:aws:kinesis:us-east-1:123456789012:ok'],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --kinesis-stream \(MIGRATOR_KINESIS_STREAM\): "arn:aws:kinesis:us-east-1:123456789012:ok" is not a Kinesis stream ARN\.$/,
    fix: /arn:aws:kinesis:eu-west-1:123456789012:stream\/NAME/,
  },
  {
    name: 'stream ARN of another region than --region',
    args: (s, db) => ['apply', '--target-uri', s.tgt.uri, ...stateArgs(s, db), '--kinesis-stream', 'arn:aws:kinesis:eu-west-1:123456789012:stream/ok', '--region', 'us-east-1'],
    exit: ExitCode.USAGE,
    problem: /^error: --region us-east-1 does not match the region of the stream ARN \(eu-west-1\)\.$/,
    fix: /Drop --region/,
  },
  // ---- namespaces ------------------------------------------------------------------------------
  {
    name: 'include pattern with a $ in the collection name',
    args: (s, db) => ['check', '--source-uri', s.src.uri, '--target-uri', s.tgt.uri, '--include', 'bar.c$', ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --include \(MIGRATOR_INCLUDE\): "bar\.c\$": invalid namespace pattern/,
    fix: /expected <db>, <db>\.\* or <db>\.<collection>/,
  },
  {
    name: 'exclude pattern from the environment with an empty database part',
    args: (s, db) => ['check', '--source-uri', s.src.uri, '--target-uri', s.tgt.uri, ...stateArgs(s, db)],
    env: () => ({ MIGRATOR_EXCLUDE: 'bar.*,.logs' }),
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --exclude \(MIGRATOR_EXCLUDE\): "\.logs"/,
    fix: /expected <db>/,
  },
  {
    name: 'map without a ":"',
    args: (s, db) => ['check', '--source-uri', s.src.uri, '--target-uri', s.tgt.uri, '--map', 'bar', ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --map \(MIGRATOR_MAP\): "bar": invalid namespace map 'bar': exactly one ":" expected/,
    fix: /expected SRC_DB:DST_DB/,
  },
  {
    name: 'two databases mapped to one',
    args: (s, db) => ['check', '--source-uri', s.src.uri, '--target-uri', s.tgt.uri, '--map', 'bar:x', '--map', 'baz:x', ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --map \(MIGRATOR_MAP\): databases 'bar' and 'baz' are both mapped to 'x'/,
    fix: /map each to its own target database/,
  },
  {
    name: 'migration id with spaces',
    args: (s, db) => ['status', ...stateArgs(s, db), '--migration-id', 'my migration'],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --migration-id \(MIGRATOR_MIGRATION_ID\): /,
    fix: /expected 1-100 letters, digits/,
  },
  // ---- conflicting flags -------------------------------------------------------------------------
  {
    name: 'capture --resume-token and --start-at together',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), ...kinesisArgs(s), '--resume-token', MONGODB_TOKEN, '--start-at', '1700000000'],
    exit: ExitCode.USAGE,
    problem: /^error: Arguments resume-token and start-at are mutually exclusive$/,
    fix: /^hint: Run migrator --help/m,
  },
  {
    name: 'cutover --abort --wait',
    args: (s, db) => ['cutover', ...stateArgs(s, db), '--migration-id', 'other', '--abort', '--wait'],
    exit: ExitCode.USAGE,
    problem: /^error: --abort cannot be combined with --wait or --writes-stopped\.$/,
    fix: /^hint: Run `migrator cutover --abort` alone/m,
  },
  {
    name: 'cutover --timeout without --wait',
    args: (s, db) => ['cutover', ...stateArgs(s, db), '--migration-id', 'other', '--timeout', '5m'],
    exit: ExitCode.USAGE,
    problem: /^error: --timeout only applies with --wait\.$/,
    fix: /^hint: Add --wait, or drop --timeout\.$/m,
  },
  {
    name: 'capture --start-at that is not a time',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), ...kinesisArgs(s), '--start-at', 'yesterday'],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --start-at "yesterday"\.$/,
    fix: /SECONDS or SECONDS,INCREMENT/,
  },
  // ---- config file -----------------------------------------------------------------------------
  {
    name: 'config file that does not exist (MIGRATOR_CONFIG)',
    args: (s, db) => ['status', ...stateArgs(s, db)],
    env: (s) => ({ MIGRATOR_CONFIG: join(s.dir, 'missing.yaml') }),
    exit: ExitCode.USAGE,
    problem: /^error: Cannot read config file .*missing\.yaml: it does not exist\.$/,
    fix: /^hint: Pass --config with a readable JSON or YAML file\.$/m,
  },
  {
    name: 'config file that cannot be read (a directory)',
    args: (s, db) => ['status', ...stateArgs(s, db), '--config', join(s.dir, 'a-directory.yaml')],
    exit: ExitCode.USAGE,
    problem: /^error: Cannot read config file .*a-directory\.yaml: .*EISDIR/,
    fix: /^hint: Pass --config with a readable JSON or YAML file\.$/m,
  },
  {
    name: 'config file with invalid YAML',
    args: (s, db) => ['check', '--config', join(s.dir, 'broken.yaml'), ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Config file .*broken\.yaml is not valid YAML: /,
    fix: /^hint: Fix the syntax/m,
  },
  {
    name: 'config file with invalid JSON',
    args: (s, db) => ['check', '--config', join(s.dir, 'broken.json'), ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Config file .*broken\.json is not valid JSON: /,
    fix: /^hint: Fix the syntax/m,
  },
  {
    name: 'config file with an unknown key',
    args: (s, db) => ['check', '--config', join(s.dir, 'typo.json'), ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Config file .*typo\.json: unknown option "sourceUrl"\.$/,
    fix: /^hint: Valid keys: .*source-uri/m,
  },
  {
    name: 'config file with an invalid value',
    args: (s, db) => ['check', '--config', join(s.dir, 'bad-value.yaml'), ...stateArgs(s, db)],
    exit: ExitCode.USAGE,
    problem: /^error: Invalid --connect-timeout \(MIGRATOR_CONNECT_TIMEOUT\): expected a duration like 10s or 1m\.$/,
    fix: /like 10s or 1m/,
  },
  // ---- migration ids -----------------------------------------------------------------------------
  {
    name: 'status of a migration id that does not exist',
    args: (s, db) => ['status', ...stateArgs(s, db), '--migration-id', 'nope'],
    exit: ExitCode.STATE_CONFLICT,
    problem: /^error: Unknown migration id 'nope' \(.*other.*\)\.$/,
    fix: /^hint: Pass --migration-id/m,
  },
  {
    name: 'cutover of a migration id that does not exist',
    args: (s, db) => ['cutover', ...stateArgs(s, db), '--migration-id', 'nope', '--writes-stopped'],
    exit: ExitCode.STATE_CONFLICT,
    problem: /^error: Unknown migration id 'nope' \(.*other.*\)\.$/,
    fix: /^hint: Pass --migration-id/m,
  },
  // ---- change-stream positions ---------------------------------------------------------------------
  {
    // The emulator's own tokens encode nothing but the cluster time, so one taken on another
    // emulator is a valid position here; a token of another deployment's format is refused (260).
    name: 'resume token from another deployment',
    args: (s, db) => ['capture', '--source-uri', s.src.uri, ...stateArgs(s, db), ...kinesisArgs(s), '--migration-id', 'foreign', '--resume-token', MONGODB_TOKEN],
    exit: ExitCode.STATE_CONFLICT,
    problem: /^error: The source rejected the resume point token .* \(error 260: .*\)\. Is it from another deployment\?$/,
    fix: /^hint: Use a resume point taken on this source, or another --migration-id\.$/m,
  },
  {
    name: 'start time older than the source history (historyLimit 5)',
    args: (s, db) => ['capture', '--source-uri', s.small.uri, ...stateArgs(s, db), ...kinesisArgs(s), '--migration-id', 'late', '--start-at', '1700000000'],
    exit: ExitCode.HISTORY_LOST,
    problem: /^error: The source no longer has the change-stream history to resume from operation time 1700000000,0 \(error 286: /,
    fix: /^hint: .*new initial load .*--migration-id and --drop/m,
  },
  // ---- preflight -----------------------------------------------------------------------------------
  {
    name: 'target already holds data, no --drop (full-migrate)',
    args: (s, db) => [
      'full-migrate', '--source-uri', s.src.uri, '--target-uri', s.tgt.uri, ...stateArgs(s, db), ...kinesisArgs(s),
      '--include', 'busy.*', '--migration-id', 'fm-busy', '--data-dir', join(s.dir, 'data-fm'),
    ],
    env: (s) => s.tools,
    exit: ExitCode.PREFLIGHT_FAILED,
    problem: /^error: Preflight found 1 problem\(s\):$/,
    fix: /^\s+1\. target namespaces: target collections already hold data: busy\.products \(2 documents\)\n\s+fix: Pass --drop to replace them/m,
    state: (before, after) => {
      // Consistent: the migration is recorded as FAILED in preflight (a rerun with --drop starts
      // over from CREATED), with no resume point, no checkpoint and no shard.
      const m = (after.migrations as Document[]).find((d) => d._id === 'fm-busy');
      assert.ok(m, 'migration recorded');
      assert.equal(m.phase, 'FAILED');
      assert.equal(Number(m.lastError?.exitCode), ExitCode.PREFLIGHT_FAILED);
      assert.equal(m.lastError?.phase, 'CREATED');
      assert.match(m.lastError?.message, /--drop/);
      assert.equal(m.resumePoint, undefined);
      assert.deepEqual(after.capture_checkpoints ?? [], before.capture_checkpoints ?? []);
      assert.deepEqual(after.shards ?? [], before.shards ?? []);
    },
  },
];

async function snapshot(client: MongoClient, dbName: string): Promise<Document> {
  const db = client.db(dbName);
  const out: Document = {};
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  for (const n of names) out[n] = await db.collection(n).find().sort({ _id: 1 }).toArray();
  // Through EJSON: dates, timestamps and ObjectIds compare by value.
  return BSON.EJSON.parse(BSON.EJSON.stringify(out, { relaxed: false }), { relaxed: false }) as Document;
}

/** The user-facing error: exactly one `error:` line; the block is that line to the end. */
function errorBlock(r: CliResult): { line: string; block: string } {
  const lines = r.stderr.split('\n');
  const at = lines.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith('error: '));
  assert.equal(at.length, 1, `exactly one "error:" line expected:\n${r.stderr}`);
  const i = at[0]![1];
  return { line: lines[i]!, block: lines.slice(i).join('\n') };
}

describe('bad input: one clear message, the documented exit code, no stack trace, state unchanged', { timeout: 300_000, concurrency: 3 }, () => {
  let s: Stack;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    await ensureGoTools(['mongodump', 'mongorestore']);
    const [src, tgt, small, kl, klSlow, closedPort] = await Promise.all([
      startMongoEmulator(),
      startMongoEmulator(),
      startMongoEmulator({ historyLimit: 5 }),
      startKinesisLocal(),
      startKinesisLocal({ operationDurationMs: 600_000 }),
      freePort(),
    ]);
    cleanups.push(() => src.stop(), () => tgt.stop(), () => small.stop(), () => kl.stop(), () => klSlow.stop());
    const tgtClient = new MongoClient(tgt.uri);
    cleanups.unshift(() => tgtClient.close());
    await kl.createStream('ok', 1);
    await klSlow.client.send(new CreateStreamCommand({ StreamName: 'creating', ShardCount: 1 }));

    const srcClient = new MongoClient(src.uri);
    await srcClient.db('busy').collection<{ _id: number }>('products').insertMany([{ _id: 1 }, { _id: 2 }, { _id: 3 }]);
    await srcClient.close();
    await tgtClient.db('busy').collection<{ _id: number; old: boolean }>('products').insertMany([{ _id: 1, old: true }, { _id: 9, old: true }]);
    const smallClient = new MongoClient(small.uri);
    for (let i = 0; i < 20; i++) await smallClient.db('hist').collection('c').insertOne({ i });
    await smallClient.close();

    const dir = mkdtempSync(join(tmpdir(), 'migrator-bad-input-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'a-directory.yaml'));
    writeFileSync(join(dir, 'broken.yaml'), 'source-uri: [\n  - oops\nregion: us-east-1\n');
    writeFileSync(join(dir, 'broken.json'), '{"source-uri": "mongodb://127.0.0.1:1",}');
    writeFileSync(join(dir, 'typo.json'), JSON.stringify({ sourceUrl: src.uri, 'target-uri': tgt.uri }));
    writeFileSync(join(dir, 'bad-value.yaml'), `source-uri: "${src.uri}"\ntarget-uri: "${tgt.uri}"\nconnect-timeout: soon\n`);
    const tools = { MIGRATOR_MONGODUMP_PATH: goToolPath('mongodump'), MIGRATOR_MONGORESTORE_PATH: goToolPath('mongorestore') };
    s = { src, tgt, small, kl, klSlow, tgtClient, closedPort, dir, tools };
  });
  after(async () => {
    for (const c of cleanups) await c().catch(() => undefined);
  });

  rows.forEach((row, index) => {
    const stateDb = `bad_input_${index}`;
    test(row.name, { todo: row.todo }, async () => {
      // Every row gets its own, already initialised state store with one other migration in it.
      const store = await StateStore.open({ client: s.tgtClient, dbName: stateDb });
      if (!(await store.getMigration('other'))) await store.createMigration('other');
      const before = await snapshot(s.tgtClient, stateDb);

      const started = Date.now();
      const r = await runMigrator(row.args(s, stateDb), { env: row.env?.(s), timeoutMs: row.timeoutMs ?? 60_000 });
      const elapsed = Date.now() - started;

      assert.equal(r.exitCode, row.exit, `exit code ${r.exitCode}, expected ${row.exit}:\n${r.all}`);
      const { line, block } = errorBlock(r);
      assert.match(line, row.problem, 'the error line names the problem');
      assert.match(block, row.fix, `the error names the fix:\n${block}`);
      assert.equal(r.stdout.trim(), '', 'nothing on stdout (it is for reports)');
      if (row.verbose) assert.match(r.stderr, STACK_FRAME, 'with --verbose, a stack trace');
      else assert.doesNotMatch(r.all, STACK_FRAME, 'no stack trace without --verbose');
      if (row.maxMs) assert.ok(elapsed < row.maxMs, `took ${elapsed} ms (bound ${row.maxMs} ms)`);
      row.also?.(r);

      const afterSnap = await snapshot(s.tgtClient, stateDb);
      if (row.state) row.state(before, afterSnap);
      else assert.deepEqual(afterSnap, before, 'the state store is unchanged');
    });
  });

  test('a document over the stream record size (2.5 MiB, incompressible) is captured whole, in chunks', async () => {
    const stateDb = 'bad_input_bigdoc';
    const store = await StateStore.open({ client: s.tgtClient, dbName: stateDb });
    const stream = s.kl.uniqueStreamName('bigdoc');
    await s.kl.createStream(stream, 1);
    const blob = randomBytes(2.5 * 1024 * 1024);
    const src = new MongoClient(s.src.uri);
    try {
      const startAt = Math.floor(Date.now() / 1000) - 1;
      await src.db('big').collection<{ _id: string; blob: Binary; n: number }>('docs').insertOne({ _id: 'big', blob: new Binary(blob), n: 1 });
      const insertedBy = Math.floor(Date.now() / 1000);
      const proc = execa(process.execPath, ['--import', 'tsx', MAIN, 'capture', '--source-uri', s.src.uri, ...stateArgs(s, stateDb),
        '--kinesis-stream', stream, '--kinesis-endpoint', s.kl.endpoint, '--include', 'big.*', '--migration-id', 'big',
        '--start-at', String(startAt), '--checkpoint-interval', '200ms'], { cwd: PROJECT_ROOT, env: { CI: 'true' }, reject: false, stdin: 'ignore', timeout: 120_000 });
      // Durable: the checkpoint moved past the second of the insert (the tracker never runs ahead
      // of what Kinesis acknowledged).
      const deadline = Date.now() + 60_000;
      for (;;) {
        const cp = await store.getCaptureCheckpoint('big');
        if (cp && cp.ct.t > insertedBy && (cp.counters.events ?? 0) >= 1) break;
        if (Date.now() > deadline || proc.exitCode !== null) {
          proc.kill('SIGKILL');
          const r = await proc;
          assert.fail(`capture did not checkpoint the big document (exit ${r.exitCode}):\n${String(r.stderr)}`);
        }
        await new Promise((res) => setTimeout(res, 100));
      }
      proc.kill('SIGTERM');
      const r = await proc;
      assert.equal(r.exitCode, ExitCode.OK, `capture stops cleanly on SIGTERM:\n${String(r.stderr)}`);
      assert.doesNotMatch(`${String(r.stdout)}\n${String(r.stderr)}`, /^error:/m);

      const shards = await readStreamEnvelopes(s.kl.client, stream);
      const envelopes = [...shards.values()].flat().filter((e) => e.op === 'insert' && e.ns.coll === 'docs');
      assert.equal(envelopes.length, 1, 'the insert arrives once');
      const doc = envelopes[0]!.doc as Document;
      assert.equal(doc._id, 'big');
      assert.ok(Buffer.from((doc.blob as Binary).buffer).equals(blob), 'the 2.5 MiB blob arrives byte for byte');
      const cp = await store.getCaptureCheckpoint('big');
      assert.ok(cp && cp.counters.bytes >= blob.length, 'the checkpoint counts the bytes sent');
      // Chunked: the stream holds several records (each under the assumed 1 MiB record size).
      const shard = (await s.kl.client.send(new ListShardsCommand({ StreamName: stream }))).Shards![0]!.ShardId!;
      let iterator = (await s.kl.client.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shard, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
      const sizes: number[] = [];
      for (let i = 0; i < 20 && iterator; i++) {
        const out = await s.kl.client.send(new GetRecordsCommand({ ShardIterator: iterator }));
        for (const rec of out.Records ?? []) sizes.push(rec.Data!.length);
        iterator = out.NextShardIterator;
        if ((out.Records ?? []).length === 0 && out.MillisBehindLatest === 0) break;
      }
      assert.ok(sizes.length >= 3, `the 2.5 MiB event travels as at least 3 records (got ${sizes.length})`);
      assert.ok(Math.max(...sizes) <= 1024 * 1024, `every record within 1 MiB (largest ${Math.max(...sizes)})`);
    } finally {
      await src.close();
    }
  });
});
