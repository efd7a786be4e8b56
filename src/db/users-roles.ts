import type { MongoClient } from 'mongodb';
import { errorMessage } from '../util/errors.js';
import { isTransientError } from './transient-errors.js';
import { isUnauthorized } from './mongo-errors.js';

/**
 * Users and custom roles of the source that concern the migrated databases, for `migrator check`.
 * They are never migrated: a user's password cannot be read back (usersInfo returns credentials
 * only as salted hashes with `showCredentials`, and the migrator does not ask for them), so the
 * operator recreates users — and the custom roles they hold — on the target.
 *
 * Read with `usersInfo: 1` / `rolesInfo: 1` on each database (all users / all user-defined roles
 * of that database: https://www.mongodb.com/docs/manual/reference/command/usersInfo/,
 * https://www.mongodb.com/docs/manual/reference/command/rolesInfo/). Both need the `viewUser` /
 * `viewRole` action on the database ("Required Access"), which the migrator's least-privilege
 * source user (readAnyDatabase) does not have: then the listing says so instead of failing check.
 */

export interface SourceUser {
  user: string;
  db: string;
  /** `role@db` */
  roles: string[];
}

export interface SourceRole {
  role: string;
  db: string;
  /** Roles it inherits, `role@db`. */
  roles: string[];
}

export interface AccessListing {
  users: SourceUser[];
  roles: SourceRole[];
  /** Databases whose users or roles could not be read, with the reason (e.g. no viewUser). */
  unreadable: string[];
  /** Always true: the migrator does not create users or roles on the target. */
  migrated: false;
}

type RoleRef = { role: string; db: string };
const refText = (r: RoleRef) => `${r.role}@${r.db}`;

/**
 * Users defined in a selected database, plus users of `admin` (where most deployments keep them)
 * holding a role on a selected database or on `admin` (admin roles such as readWriteAnyDatabase
 * reach every database). Custom roles defined in a selected database or in `admin`.
 */
export async function listUsersAndRoles(client: MongoClient, selectedDbs: readonly string[]): Promise<AccessListing> {
  const out: AccessListing = { users: [], roles: [], unreadable: [], migrated: false };
  const selected = new Set(selectedDbs);
  const dbs = ['admin', ...[...selected].filter((d) => d !== 'admin').sort()];
  const attempt = async <T>(what: string, db: string, run: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await run();
    } catch (err) {
      if (isTransientError(err)) throw err;
      out.unreadable.push(isUnauthorized(err) ? `${what} of ${db}: the source user lacks ${what === 'users' ? 'viewUser' : 'viewRole'} on ${db}` : `${what} of ${db}: ${errorMessage(err)}`);
      return undefined;
    }
  };
  for (const db of dbs) {
    const u = await attempt('users', db, () => client.db(db).command({ usersInfo: 1 }));
    for (const x of (u?.users ?? []) as { user: string; db: string; roles?: RoleRef[] }[]) {
      const roles = x.roles ?? [];
      if (x.db === 'admin' && !selected.has('admin') && !roles.some((r) => selected.has(r.db) || r.db === 'admin')) continue;
      out.users.push({ user: x.user, db: x.db, roles: roles.map(refText) });
    }
    const r = await attempt('roles', db, () => client.db(db).command({ rolesInfo: 1 }));
    for (const x of (r?.roles ?? []) as { role: string; db: string; isBuiltin?: boolean; roles?: RoleRef[] }[]) {
      if (x.isBuiltin) continue;
      out.roles.push({ role: x.role, db: x.db, roles: (x.roles ?? []).map(refText) });
    }
  }
  return out;
}

/** The text `migrator check` prints under the source. */
export function formatAccessListing(a: AccessListing): string[] {
  const lines: string[] = [];
  const users = a.users.map((u) => `${u.user}@${u.db}${u.roles.length ? ` (${u.roles.join(', ')})` : ''}`);
  lines.push(`  users: ${users.length ? users.join('; ') : 'none found'}`);
  const roles = a.roles.map((r) => `${r.role}@${r.db}`);
  lines.push(`  custom roles: ${roles.length ? roles.join('; ') : 'none found'}`);
  for (const u of a.unreadable) lines.push(`  not listed: ${u}`);
  lines.push('  users and roles are not migrated (passwords cannot be read): create them on the target before pointing applications at it');
  return lines;
}

// ------------------------------------------------------------------------------------------------
// --with-roles: the custom roles of the selected databases, recreated on the target

interface RoleDefinition {
  role: string;
  db: string;
  privileges: { resource: Record<string, unknown>; actions: string[] }[];
  roles: RoleRef[];
}

/** Where a source database / collection lands on the target (`--map`). */
export interface RoleMapping {
  targetDb(db: string): string;
  target(ns: { db: string; coll: string }): { db: string; coll: string };
}

const canonicalRole = (d: Pick<RoleDefinition, 'privileges' | 'roles'>) =>
  JSON.stringify({
    privileges: d.privileges
      .map((p) => JSON.stringify({ resource: Object.fromEntries(Object.entries(p.resource).sort(([a], [b]) => a.localeCompare(b))), actions: [...p.actions].sort() }))
      .sort(),
    roles: d.roles.map(refText).sort(),
  });

/**
 * Recreates the user-defined roles of the selected databases (not `admin`'s, which may hold
 * cluster-wide privileges a target of another kind refuses) on the target: `rolesInfo: 1,
 * showPrivileges: true` on the source, `createRole` on the target
 * (https://www.mongodb.com/docs/manual/reference/command/createRole/), database and collection
 * names in privileges and inherited roles mapped as `--map` maps the data. Inherited custom roles
 * are created first. Idempotent: a role the target already holds with the same privileges and
 * inherited roles is left alone (a rerun); one with another definition is not overwritten — the
 * error names it. The target user needs the `createRole` action (role `userAdmin`) on those
 * databases. Returns the target roles created and those already there.
 */
export async function recreateCustomRoles(
  source: MongoClient,
  target: MongoClient,
  selectedDbs: readonly string[],
  map: RoleMapping,
): Promise<{ created: string[]; existing: string[] }> {
  const selected = new Set(selectedDbs.filter((d) => d !== 'admin'));
  const defs: RoleDefinition[] = [];
  for (const db of [...selected].sort()) {
    const r = await source.db(db).command({ rolesInfo: 1, showPrivileges: true });
    for (const x of (r.roles ?? []) as (RoleDefinition & { isBuiltin?: boolean })[]) {
      if (x.isBuiltin) continue;
      defs.push({
        role: x.role,
        db: map.targetDb(x.db),
        privileges: (x.privileges ?? []).map((p) => ({ resource: mapResource(p.resource, selected, map), actions: p.actions })),
        roles: (x.roles ?? []).map((i) => ({ role: i.role, db: selected.has(i.db) ? map.targetDb(i.db) : i.db })),
      });
    }
  }
  const out = { created: [] as string[], existing: [] as string[] };
  const done = new Set<string>();
  const byKey = new Map(defs.map((d) => [refText(d), d]));
  const create = async (d: RoleDefinition, path: Set<string>): Promise<void> => {
    const key = refText(d);
    if (done.has(key) || path.has(key)) return;
    path.add(key);
    for (const i of d.roles) {
      const dep = byKey.get(refText(i));
      if (dep) await create(dep, path); // an inherited role must exist before the role naming it
    }
    const have = await target.db(d.db).command({ rolesInfo: { role: d.role, db: d.db }, showPrivileges: true });
    const existing = ((have.roles ?? []) as RoleDefinition[])[0];
    if (existing) {
      if (canonicalRole({ privileges: existing.privileges ?? [], roles: existing.roles ?? [] }) !== canonicalRole(d)) {
        throw new Error(`role ${key} already exists on the target with other privileges or inherited roles; drop it there, or leave out --with-roles`);
      }
      out.existing.push(key);
    } else {
      await target.db(d.db).command({ createRole: d.role, privileges: d.privileges, roles: d.roles });
      out.created.push(key);
    }
    done.add(key);
  };
  for (const d of defs) await create(d, new Set());
  return out;
}

function mapResource(resource: Record<string, unknown>, selected: Set<string>, map: RoleMapping): Record<string, unknown> {
  const db = resource.db;
  const coll = resource.collection;
  if (typeof db !== 'string' || db === '' || !selected.has(db)) return resource; // cluster, anyResource, every database, or not migrated
  if (typeof coll === 'string' && coll !== '') {
    const t = map.target({ db, coll });
    return { ...resource, db: t.db, collection: t.coll };
  }
  return { ...resource, db: map.targetDb(db) };
}
