// The databases the apply writer is tested against: the MongoDB emulator and FerretDB.
import { MongoClient } from 'mongodb';
import { startMongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { startFerretDB } from '../support/ferretdb.js';
import { ensureGoTools } from '../support/go-tools.js';

export interface TestTarget {
  uri: string;
  client: MongoClient;
  stop(): Promise<void>;
}

export interface TargetKind {
  name: 'emulator' | 'FerretDB';
  start(): Promise<TestTarget>;
}

async function connect(uri: string, stop: () => Promise<void>): Promise<TestTarget> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 });
  await client.connect();
  return {
    uri,
    client,
    async stop() {
      await client.close();
      await stop();
    },
  };
}

export const TARGETS: TargetKind[] = [
  {
    name: 'emulator',
    async start() {
      const emu = await startMongoEmulator({ port: 0 });
      return connect(emu.uri, () => emu.stop());
    },
  },
  {
    name: 'FerretDB',
    async start() {
      await ensureGoTools(['ferretdb']); // cached: instant once built
      const f = await startFerretDB();
      return connect(f.uri, () => f.stop());
    },
  },
];

import { prng } from '../support/prng.js';

export { prng };
