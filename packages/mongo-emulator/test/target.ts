// Test target for the conformance suite: the emulator by default, or a real replica set when
// MONGODB_URI is set (then every test uses unique database names and emulator-only tests skip).
import { randomBytes } from 'node:crypto';
import { MongoClient, type ObjectId, type ChangeStream, type ChangeStreamDocument, type Document } from 'mongodb';
import { startMongoEmulator, type MongoEmulator, type MongoEmulatorOptions, type ProfileName } from '../src/index.js';

import { tryNextCachingToken } from '../../../src/db/change-stream-compat.js';

export const REAL_SERVER_URI = process.env.MONGODB_URI;
/** Tests that need their own server (history limit, restarts, the bin) only run on the emulator. */
export const emulatorOnly = REAL_SERVER_URI ? 'needs the emulator (MONGODB_URI is set)' : false;
/**
 * The profile a real server under test is (`MONGODB_PROFILE=documentdb-5.0 MONGODB_URI=…`):
 * profile conformance tests run against it when it is theirs. Default mongodb-7.0.
 */
export const REAL_SERVER_PROFILE = (process.env.MONGODB_PROFILE ?? 'mongodb-7.0') as ProfileName;

/**
 * `skip` option for a conformance test of one profile's documented behaviour: runs on the
 * emulator (started with that profile by `openTarget({ profile })`) and on a real server whose
 * MONGODB_PROFILE is that profile; says why otherwise.
 */
export function onProfile(profile: ProfileName): string | false {
  return REAL_SERVER_URI && REAL_SERVER_PROFILE !== profile ? `needs a ${profile} server (MONGODB_PROFILE is ${REAL_SERVER_PROFILE})` : false;
}

export interface Target {
  uri: string;
  client: MongoClient;
  emulator?: MongoEmulator;
  /** A database name unique to this run. */
  dbName(label: string): string;
  close(): Promise<void>;
}

export async function openTarget(options: MongoEmulatorOptions = {}): Promise<Target> {
  const emulator = REAL_SERVER_URI ? undefined : await startMongoEmulator(options);
  const uri = REAL_SERVER_URI ?? emulator!.uri;
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  const run = randomBytes(3).toString('hex');
  const created: string[] = [];
  return {
    uri,
    client,
    emulator,
    dbName(label) {
      const name = `emu_${label}_${run}`;
      created.push(name);
      return name;
    },
    async close() {
      if (REAL_SERVER_URI) for (const name of created) await client.db(name).dropDatabase().catch(() => undefined);
      await client.close();
      await emulator?.stop();
    },
  };
}

/** Reads exactly `n` events (or fails after `timeoutMs`). */
export async function nextEvents<T extends Document = Document>(
  stream: ChangeStream<T, ChangeStreamDocument<T>>,
  n: number,
  timeoutMs = 5000,
): Promise<ChangeStreamDocument<T>[]> {
  const out: ChangeStreamDocument<T>[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out after ${out.length}/${n} events: ${JSON.stringify(out.map((e) => e.operationType))}`);
    // As capture reads (caching each event's resume token; see src/db/change-stream-compat.ts).
    const ev = await tryNextCachingToken(stream);
    if (ev) out.push(ev);
    if (stream.closed) break;
  }
  return out;
}

/** Opens the stream's server cursor now (watch() is lazy) so later writes are captured. */
export async function started<T extends ChangeStream>(stream: T): Promise<T> {
  const first = await stream.tryNext();
  if (first) throw new Error(`unexpected event on a fresh stream: ${JSON.stringify(first)}`);
  return stream;
}

/** Schema for test collections whose _id is not an ObjectId. */
export type AnyDoc = Document & { _id?: number | string | ObjectId };
