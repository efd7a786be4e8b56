// The least-privilege migrator users README "Privileges" lists, created on emulators started with
// access control (`npm run stack -- --auth`, the auth e2e test). The roles here are exactly the
// README's: change one, change both.
import { MongoClient } from 'mongodb';
import type { AuthOptions, MongoEmulator } from '../../packages/mongo-emulator/src/index.js';

export const ROOT_USER = { user: 'root', pwd: 'rootpw' };
export const MIGRATOR_USER = { user: 'migrator', pwd: 'migratorpw' };

/** Emulator options: access control with one root user (the test workload's admin). */
export const ROOT_ONLY: AuthOptions = { users: [{ ...ROOT_USER, roles: ['root'] }] };

/** The custom role README recommends for write blocking (MongoDB ≥ 6). */
export const WRITE_BLOCK_ROLE = {
  createRole: 'migratorWriteBlock',
  privileges: [{ resource: { cluster: true }, actions: ['setUserWriteBlockMode', 'bypassWriteBlockingMode'] }],
  roles: [],
};

/** Source: read everything (change stream, mongodump, verify), write the cutover marker, block writes. */
export function sourceRoles(stateDb = 'migrator_state', writeBlocking = true): { role: string; db: string }[] {
  const roles = [
    { role: 'readAnyDatabase', db: 'admin' },
    { role: 'readWrite', db: stateDb },
  ];
  if (writeBlocking) roles.push({ role: 'migratorWriteBlock', db: 'admin' });
  return roles;
}

/** Target (and the state store on it): write every target database and replay DDL. */
export function targetRoles(): { role: string; db: string }[] {
  return [
    { role: 'readWriteAnyDatabase', db: 'admin' },
    { role: 'dbAdminAnyDatabase', db: 'admin' },
  ];
}

export function uriAs(emu: MongoEmulator, who: { user: string; pwd: string }): string {
  return `mongodb://${encodeURIComponent(who.user)}:${encodeURIComponent(who.pwd)}@${emu.host}/?replicaSet=${encodeURIComponent(emu.replSetName)}&authSource=admin`;
}

/** Creates the migrator user (and on a source the write-block role) through the root user. */
export async function createMigratorUser(emu: MongoEmulator, side: 'source' | 'target', o: { stateDb?: string; writeBlocking?: boolean } = {}): Promise<string> {
  const admin = new MongoClient(uriAs(emu, ROOT_USER), { serverSelectionTimeoutMS: 5000 });
  try {
    const db = admin.db('admin');
    const writeBlocking = side === 'source' && (o.writeBlocking ?? emu.profile.writeBlocking);
    if (writeBlocking) await db.command(WRITE_BLOCK_ROLE);
    const roles = side === 'source' ? sourceRoles(o.stateDb, writeBlocking) : targetRoles();
    await db.command({ createUser: MIGRATOR_USER.user, pwd: MIGRATOR_USER.pwd, roles });
  } finally {
    await admin.close();
  }
  return uriAs(emu, MIGRATOR_USER);
}
