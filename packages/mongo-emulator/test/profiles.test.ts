// Emulator profiles: the version a profile presents is what the driver and the migrator see.
// (Emulator-only: a real server presents its own version.) Connecting to documentdb-4.0 (wire
// version 7) is also the guard on the driver pin: the Node driver dropped MongoDB 4.0 / wire 7 in
// 6.17 ("requires at least 8 (MongoDB 4.2)"), which would lock every DocumentDB 4.0 user out, so
// package.json pins mongodb ~6.16 (compatibility table:
// https://www.mongodb.com/docs/drivers/node/current/reference/compatibility/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MongoClient } from 'mongodb';
import { PROFILE_NAMES, PROFILES, startMongoEmulator } from '../src/index.js';

test('every profile reports its version and wire version through hello and buildInfo', async () => {
  for (const name of PROFILE_NAMES) {
    const emu = await startMongoEmulator({ profile: name });
    const client = new MongoClient(emu.uri, { serverSelectionTimeoutMS: 3000 });
    try {
      const admin = client.db('admin');
      const build = await admin.command({ buildInfo: 1 });
      const hello = await admin.command({ hello: 1 });
      assert.equal(build.version, PROFILES[name].version, name);
      assert.equal(hello.maxWireVersion, PROFILES[name].maxWireVersion, name);
    } finally {
      await client.close();
      await emu.stop();
    }
  }
});

test('an unknown profile is refused with the list of valid ones', async () => {
  await assert.rejects(startMongoEmulator({ profile: 'mongodb-3.6' as never }), /unknown emulator profile 'mongodb-3.6'; one of: mongodb-4.4/);
});
