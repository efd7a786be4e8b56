/**
 * `npm run stack`: the local stack for tests, demos and trying migrator without any cloud:
 * a source MongoDB emulator (replica set with change streams), a target (another emulator, or
 * FerretDB with `--target ferretdb`), and kinesis-local. Prints ONE JSON line
 * `{"sourceUri", "targetUri", "kinesisEndpoint", ...}` when everything is ready, runs until
 * SIGINT/SIGTERM, then stops everything it started and exits 0.
 *
 * `--auth`: the emulators run with access control; `sourceUri` / `targetUri` are then the
 * least-privilege migrator user with exactly the roles README "Privileges" lists
 * (test/support/migrator-users.ts), and `sourceAdminUri` / `targetAdminUri` a root user for test
 * workloads. (A FerretDB target keeps no users: its URIs stay as they are.)
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PROFILE_NAMES, startMongoEmulator } from '../packages/mongo-emulator/src/index.js';
import { startKinesisLocal } from '../test/support/kinesis-local.js';
import { startFerretDB } from '../test/support/ferretdb.js';
import { ensureGoTools } from '../test/support/go-tools.js';
import { ROOT_ONLY, ROOT_USER, createMigratorUser, uriAs } from '../test/support/migrator-users.js';
import { parseShardKeys } from '../packages/mongo-emulator/src/sharding.js';

interface Stoppable {
  name: string;
  stop(): Promise<void>;
}

const args = await yargs(hideBin(process.argv))
  .scriptName('npm run stack --')
  .option('target', { choices: ['emulator', 'ferretdb'] as const, default: 'emulator' as const, describe: 'Target engine' })
  .option('source-profile', { choices: PROFILE_NAMES, default: 'mongodb-7.0' as const, describe: 'Server the source emulator presents' })
  .option('target-profile', { choices: PROFILE_NAMES, default: 'mongodb-7.0' as const, describe: 'Server the target emulator presents (emulator target only)' })
  .option('target-shard-key', { type: 'string', array: true, describe: 'Emulator target as a mongos with db.coll sharded on field(s): db.coll:field[,field2] (repeatable)' })
  .option('source-port', { type: 'number', default: 0, describe: 'Source port (0 = a free one)' })
  .option('target-port', { type: 'number', default: 0, describe: 'Target port (0 = a free one)' })
  .option('kinesis-port', { type: 'number', default: 0, describe: 'kinesis-local port (0 = a free one)' })
  .option('data-dir', { type: 'string', describe: 'Persist source, target and Kinesis data under this directory' })
  .option('auth', { type: 'boolean', default: false, describe: 'Access control: least-privilege migrator URIs, plus root URIs for workloads' })
  .option('state-db', { type: 'string', default: 'migrator_state', describe: 'With --auth: the state database the source user may write (the cutover marker)' })
  .option('stream', { type: 'string', array: true, describe: 'Create a stream, NAME or NAME:SHARDS (repeatable)' })
  .strict()
  .help()
  .parseAsync();

const started: Stoppable[] = [];
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (stopping) process.exit(code);
  stopping = true;
  // Reverse start order; a failure to stop one must not leave the others running.
  for (const s of started.reverse()) {
    await s.stop().catch((err: unknown) => process.stderr.write(`stack: stopping ${s.name} failed: ${String(err)}\n`));
  }
  process.exit(code);
}

process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

try {
  const dataDir = args['data-dir'] ? resolve(args['data-dir']) : undefined;
  const sub = (name: string) => {
    if (!dataDir) return undefined;
    const d = join(dataDir, name);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const auth = args.auth ? ROOT_ONLY : undefined;
  const source = await startMongoEmulator({ port: args['source-port'], dbpath: sub('source'), profile: args['source-profile'], auth });
  started.push({ name: 'source emulator', stop: () => source.stop() });
  const uris: Record<string, string> = {};
  if (args.auth) {
    uris.sourceAdminUri = uriAs(source, ROOT_USER);
    uris.sourceUri = await createMigratorUser(source, 'source', { stateDb: args['state-db'] });
  }

  let targetUri: string;
  if (args.target === 'ferretdb') {
    await ensureGoTools();
    const target = await startFerretDB({ port: args['target-port'] || undefined, dataDir: sub('target') });
    started.push({ name: 'FerretDB', stop: () => target.stop() });
    targetUri = target.uri;
  } else {
    const target = await startMongoEmulator({
      port: args['target-port'],
      dbpath: sub('target'),
      profile: args['target-profile'],
      auth,
      shardKeys: parseShardKeys(args['target-shard-key']),
    });
    started.push({ name: 'target emulator', stop: () => target.stop() });
    targetUri = target.uri;
    if (args.auth) {
      uris.targetAdminUri = uriAs(target, ROOT_USER);
      targetUri = await createMigratorUser(target, 'target');
    }
  }

  const kinesis = await startKinesisLocal({ port: args['kinesis-port'] || undefined, persistDir: sub('kinesis') });
  started.push({ name: 'kinesis-local', stop: () => kinesis.stop() });
  const streams: string[] = [];
  for (const spec of args.stream ?? []) {
    const [name, shards] = spec.split(':');
    await kinesis.createStream(name!, shards ? Number(shards) : 1);
    streams.push(name!);
  }

  process.stdout.write(
    JSON.stringify({ sourceUri: uris.sourceUri ?? source.uri, targetUri, ...(args.auth ? { sourceAdminUri: uris.sourceAdminUri, targetAdminUri: uris.targetAdminUri ?? targetUri } : {}), kinesisEndpoint: kinesis.endpoint, target: args.target, sourceProfile: args['source-profile'], targetProfile: args.target === 'emulator' ? args['target-profile'] : null, streams, pid: process.pid }) +
      '\n',
  );
} catch (err) {
  process.stderr.write(`stack: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  await stopAll(1);
}
