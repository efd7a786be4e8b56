#!/usr/bin/env -S npx tsx
// Standalone emulator process:
//   npx tsx packages/mongo-emulator/src/bin.ts --port 0 --dbpath DIR --history-limit N --repl-set rs0 [--profile mongodb-7.0]
//     [--auth [--auth-config '{"users": [...], "roles": [...]}']]   (access control; default user root:root with role root)
//     [--shard-key db.coll:field[,field2]]…   (a mongos with these collections sharded; sharding.ts)
// Prints one JSON line {"uri": "...", "port": N} when ready; exits 0 on SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { startMongoEmulator, type AuthOptions, type ProfileName } from './index.js';
import { parseShardKeys } from './sharding.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    dbpath: { type: 'string' },
    'history-limit': { type: 'string' },
    'repl-set': { type: 'string', default: 'rs0' },
    profile: { type: 'string', default: 'mongodb-7.0' },
    auth: { type: 'boolean', default: false },
    'auth-config': { type: 'string' },
    'shard-key': { type: 'string', multiple: true },
    'ttl-monitor-sleep-secs': { type: 'string' },
  },
});

const DEFAULT_AUTH: AuthOptions = { users: [{ user: 'root', pwd: 'root', roles: ['root'] }] };
const auth = values['auth-config'] ? (JSON.parse(values['auth-config']) as AuthOptions) : values.auth ? DEFAULT_AUTH : undefined;

const emu = await startMongoEmulator({
  port: Number(values.port),
  dbpath: values.dbpath,
  historyLimit: values['history-limit'] ? Number(values['history-limit']) : undefined,
  replSetName: values['repl-set'],
  profile: values.profile as ProfileName,
  auth,
  shardKeys: parseShardKeys(values['shard-key']),
  ttlMonitorSleepSecs: values['ttl-monitor-sleep-secs'] ? Number(values['ttl-monitor-sleep-secs']) : undefined,
});
process.stdout.write(JSON.stringify({ uri: emu.uri, directUri: emu.directUri, port: emu.port }) + '\n');

let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  emu.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
