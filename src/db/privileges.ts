/**
 * What the connected user may do, from `connectionStatus {showPrivileges: true}`
 * (https://www.mongodb.com/docs/manual/reference/command/connectionStatus/), and the privileges
 * the migrator needs on each side, each named with the role that grants it (README "Privileges").
 *
 * Resource matching follows "Resource Document"
 * (https://www.mongodb.com/docs/manual/reference/resource-document/): `{db: "", collection: ""}`
 * is every database's non-system collections, `{db: D, collection: ""}` those of D, `{cluster:
 * true}` the cluster, `{anyResource: true}` everything. Actions:
 * https://www.mongodb.com/docs/manual/reference/privilege-actions/
 */
import type { MongoClient } from 'mongodb';

export type PrivilegeResource = { cluster?: boolean; db?: string; collection?: string; anyResource?: boolean };
export interface UserPrivilege {
  resource: PrivilegeResource;
  actions: string[];
}

export interface AccessInfo {
  /** False when no user is authenticated: the server runs without access control (every command
   *  a privileged one needs would have failed otherwise), so there is nothing to check. */
  authenticated: boolean;
  users: string[];
  roles: string[];
  /** Undefined when the server does not report privileges (then checks are skipped). */
  privileges?: UserPrivilege[];
}

export async function readAccess(client: MongoClient): Promise<AccessInfo> {
  const reply = await client.db('admin').command({ connectionStatus: 1, showPrivileges: true });
  const info = (reply.authInfo ?? {}) as { authenticatedUsers?: { user: string; db: string }[]; authenticatedUserRoles?: { role: string; db: string }[]; authenticatedUserPrivileges?: UserPrivilege[] };
  const users = (info.authenticatedUsers ?? []).map((u) => `${u.user}@${u.db}`);
  return {
    authenticated: users.length > 0,
    users,
    roles: (info.authenticatedUserRoles ?? []).map((r) => `${r.role}@${r.db}`),
    privileges: Array.isArray(info.authenticatedUserPrivileges) ? info.authenticatedUserPrivileges : undefined,
  };
}

/** A resource the migrator needs: the cluster, or a namespace ("" collection = the database). */
export type NeededResource = { cluster: true } | { db: string; collection: string };

function covers(have: PrivilegeResource, want: NeededResource): boolean {
  if (have.anyResource) return true;
  if ('cluster' in want) return have.cluster === true;
  if (have.cluster) return false;
  const db = have.db ?? '';
  const coll = have.collection ?? '';
  if (db !== want.db && !(db === '' && !['local', 'config'].includes(want.db))) return false;
  if (coll === want.collection) return true;
  return coll === '' && !want.collection.startsWith('system.');
}

/** The actions of `actions` the privileges do not grant on `resource`. */
export function missingActions(privileges: UserPrivilege[], resource: NeededResource, actions: string[]): string[] {
  return actions.filter((a) => !privileges.some((p) => covers(p.resource, resource) && (p.actions.includes(a) || p.actions.includes('anyAction'))));
}

export interface Need {
  /** What it is for, e.g. "the cluster-wide change stream". */
  purpose: string;
  resource: NeededResource;
  actions: string[];
  /** The role that grants it, as the README lists it, e.g. "readAnyDatabase@admin". */
  role: string;
}

export interface Shortfall extends Need {
  missing: string[];
}

export function shortfalls(privileges: UserPrivilege[], needs: Need[]): Shortfall[] {
  const out: Shortfall[] = [];
  for (const n of needs) {
    const missing = missingActions(privileges, n.resource, n.actions);
    if (missing.length) out.push({ ...n, missing });
  }
  return out;
}

/** The custom role the README recommends for write blocking (the least privilege that does it). */
export const WRITE_BLOCK_ROLE = 'migratorWriteBlock@admin';
export const WRITE_BLOCK_ACTIONS = ['setUserWriteBlockMode', 'bypassWriteBlockingMode'];

/** What the migrator's source user needs (MongoDB; DocumentDB's roles differ and are not checked). */
export function sourceNeeds(o: { databases: string[]; stateDb: string; markerCollection: string }): Need[] {
  const needs: Need[] = [
    { purpose: 'the cluster-wide change stream', resource: { db: '', collection: '' }, actions: ['find', 'changeStream'], role: 'readAnyDatabase@admin' },
    { purpose: 'listing the databases', resource: { cluster: true }, actions: ['listDatabases'], role: 'readAnyDatabase@admin' },
  ];
  for (const db of o.databases) {
    // collStats: the load sizes each collection to decide whether to split it into _id ranges
    // (src/initial-load/partition-plan.ts); the read roles grant it
    // (https://www.mongodb.com/docs/manual/reference/built-in-roles/#mongodb-authrole-read).
    needs.push({ purpose: `reading ${db} (mongodump, verify)`, resource: { db, collection: '' }, actions: ['find', 'listCollections', 'listIndexes', 'collStats'], role: 'readAnyDatabase@admin' });
  }
  needs.push({
    purpose: `the cutover marker in ${o.stateDb}.${o.markerCollection}`,
    resource: { db: o.stateDb, collection: o.markerCollection },
    actions: ['insert', 'update'],
    role: `readWrite@${o.stateDb}`,
  });
  return needs;
}

/** Blocking writes at the cutover (MongoDB ≥ 6): the block, and writing the marker through it. */
export function writeBlockNeed(): Need {
  return { purpose: 'blocking writes at the cutover and writing the marker through the block', resource: { cluster: true }, actions: WRITE_BLOCK_ACTIONS, role: WRITE_BLOCK_ROLE };
}

/** What the migrator's target user needs on each target database. */
export function targetNeeds(databases: string[]): Need[] {
  return databases.flatMap((db): Need[] => [
    {
      purpose: `writing ${db} (mongorestore, apply)`,
      resource: { db, collection: '' },
      actions: ['find', 'insert', 'update', 'remove', 'createCollection', 'createIndex', 'dropCollection', 'dropIndex', 'listCollections', 'listIndexes'],
      role: `readWrite@${db}`,
    },
    { purpose: `replaying DDL on ${db}`, resource: { db, collection: '' }, actions: ['collMod', 'dropDatabase'], role: `dbAdmin@${db}` },
  ]);
}

/** One line per shortfall: what is missing, for what, and the role that grants it. */
export function describeShortfalls(side: string, list: Shortfall[]): { problem: string; remedy: string } {
  const roles = [...new Set(list.map((s) => s.role))];
  const problem = list.map((s) => `no ${s.missing.join(', ')} for ${s.purpose} (role ${s.role})`).join('; ');
  const grants = roles.map((r) => {
    const [role, db] = r.split('@');
    return `{ role: '${role}', db: '${db}' }`;
  });
  const custom = roles.includes(WRITE_BLOCK_ROLE)
    ? ` Create ${WRITE_BLOCK_ROLE} first: db.getSiblingDB('admin').createRole({ role: 'migratorWriteBlock', privileges: [{ resource: { cluster: true }, actions: ['setUserWriteBlockMode', 'bypassWriteBlockingMode'] }], roles: [] }).`
    : '';
  return {
    problem: `the ${side} user lacks: ${problem}`,
    remedy: `Grant the missing role${roles.length > 1 ? 's' : ''} ${roles.join(', ')} (README "Privileges"):${custom} db.getSiblingDB('admin').grantRolesToUser('<user>', [${grants.join(', ')}]).`,
  };
}
