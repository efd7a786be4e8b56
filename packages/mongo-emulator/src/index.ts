// Public entry point of the MongoDB emulator used by tests (see README-like notes in the report):
//   const emu = await startMongoEmulator({ port: 0, dbpath, historyLimit, replSetName });
//   ... new MongoClient(emu.uri) ...
//   await emu.stop();
import { EmulatorServer } from './server.js';
import type { StorageEngine } from './storage-engine.js';
import { profileByName, type EmulatorProfile, type ProfileName } from './profiles.js';
import type { AuthOptions } from './auth.js';

export interface MongoEmulatorOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free port. */
  port?: number;
  /** Directory for on-disk persistence; in-memory only when absent. */
  dbpath?: string;
  /** Change events kept for resuming; older resume points fail with ChangeStreamHistoryLost (286). Default 100000. */
  historyLimit?: number;
  /** Replica set name reported by hello. Default "rs0". */
  replSetName?: string;
  /** The server presented (profiles.ts). Default mongodb-7.0. */
  profile?: ProfileName;
  /**
   * Access control: SCRAM-SHA-256 users and roles (auth.ts). Every command but the handshake
   * needs an authenticated user holding the privileges the command needs (error 13 otherwise).
   * Users and user-defined roles live in memory (not persisted with dbpath).
   */
  auth?: AuthOptions;
  /**
   * Sharded-target mode: present a mongos (`hello.msg: 'isdbgrid'`) with these collections
   * sharded, e.g. `{'bar.products': {region: 1}}` (`{}`: a mongos with nothing sharded yet;
   * `shardCollection` shards more). See sharding.ts. `uri` then has no replicaSet option.
   */
  shardKeys?: Record<string, Record<string, unknown>>;
  /** Seconds between TTL monitor passes (default 60, as the server's ttlMonitorSleepSecs); tests use 1. */
  ttlMonitorSleepSecs?: number;
}

export interface MongoEmulator {
  /** mongodb://127.0.0.1:PORT/?replicaSet=NAME — for the Node driver and mongodump/mongorestore --uri. */
  readonly uri: string;
  /** mongodb://127.0.0.1:PORT/?directConnection=true */
  readonly directUri: string;
  readonly host: string;
  readonly port: number;
  readonly replSetName: string;
  readonly profile: EmulatorProfile;
  /** Internal state, for white-box assertions in tests. */
  readonly engine: StorageEngine;
  stop(): Promise<void>;
}

export const DEFAULT_HISTORY_LIMIT = 100_000;

export async function startMongoEmulator(options: MongoEmulatorOptions = {}): Promise<MongoEmulator> {
  const replSetName = options.replSetName ?? 'rs0';
  const profile = profileByName(options.profile);
  const server = new EmulatorServer({
    port: options.port ?? 0,
    host: '127.0.0.1',
    dbpath: options.dbpath,
    historyLimit: options.historyLimit ?? DEFAULT_HISTORY_LIMIT,
    replSetName,
    profile,
    auth: options.auth,
    shardKeys: options.shardKeys,
    ttlMonitorSleepSecs: options.ttlMonitorSleepSecs,
  });
  await server.start();
  const port = server.port;
  let stopped: Promise<void> | undefined;
  return {
    uri: options.shardKeys ? `mongodb://127.0.0.1:${port}/` : `mongodb://127.0.0.1:${port}/?replicaSet=${encodeURIComponent(replSetName)}`,
    directUri: `mongodb://127.0.0.1:${port}/?directConnection=true`,
    host: `127.0.0.1:${port}`,
    port,
    replSetName,
    profile,
    engine: server.engine,
    stop: () => (stopped ??= server.stop()),
  };
}

export { SUPPORTED_COMMANDS } from './command-dispatch.js';
export { ErrorCodes } from './errors.js';
export type { AuthOptions, EmulatorUser, EmulatorRole, Privilege } from './auth.js';
export { PROFILE_NAMES, PROFILES, type ProfileName, type EmulatorProfile } from './profiles.js';
