import type { MongoClient } from 'mongodb';
import { errorMessage } from '../util/errors.js';
import { isTransientError } from './transient-errors.js';

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
      const code = (err as { code?: number }).code;
      out.unreadable.push(code === 13 ? `${what} of ${db}: the source user lacks ${what === 'users' ? 'viewUser' : 'viewRole'} on ${db}` : `${what} of ${db}: ${errorMessage(err)}`);
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
