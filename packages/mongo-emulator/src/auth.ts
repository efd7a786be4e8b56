// Access control (`--auth`): SCRAM-SHA-256 users, built-in and user-defined roles, privileges
// enforced per command (error 13 Unauthorized), and user write blocking (setUserWriteBlockMode,
// error 371 UserWritesBlocked).
//
// Sources:
//  - SCRAM: RFC 5802 / RFC 7677, and https://www.mongodb.com/docs/manual/core/security-scram/
//    (saslStart / saslContinue, `options.skipEmptyExchange`). `speculativeAuthenticate` in hello
//    is optional for the server: a reply without it makes the driver run saslStart itself
//    (https://github.com/mongodb/specifications/blob/master/source/auth/auth.md#speculative-authentication),
//    which is what this emulator does.
//  - Roles: https://www.mongodb.com/docs/manual/reference/built-in-roles/ (7.0 lists).
//  - Actions and their commands: https://www.mongodb.com/docs/manual/reference/privilege-actions/
//  - Change streams: https://www.mongodb.com/docs/manual/changeStreams/#access-control
//    (collection: find+changeStream on it; database: on {db, collection: ""}; deployment: on
//    {db: "", collection: ""}).
//  - listDatabases / listCollections without the action: authorizedDatabases /
//    authorizedCollections (https://www.mongodb.com/docs/manual/reference/command/listDatabases/).
//  - connectionStatus: https://www.mongodb.com/docs/manual/reference/command/connectionStatus/
//  - setUserWriteBlockMode: https://www.mongodb.com/docs/manual/reference/command/setUserWriteBlockMode/
//    (MongoDB 6.0+; the setUserWriteBlockMode action; users with bypassWriteBlockingMode keep
//    writing). Two details the page does not state come from the server's source
//    (src/mongo/db/auth/authorization_session_impl.cpp, global_user_write_block_state.cpp):
//    with access control disabled every client may bypass the block (so it blocks nobody), and
//    writes to the internal databases admin/config/local are never blocked.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { Binary } from 'bson';
import { isPlainObject, type Doc } from './bson-values.js';
import type { CommandContext, Handler } from './command-context.js';
import { CommandError, ErrorCodes, fail } from './errors.js';

export const UNAUTHORIZED = ErrorCodes.Unauthorized;
export const USER_WRITES_BLOCKED = 371;

/** A privilege resource: the cluster, a namespace pattern (db/collection "" = any), or anyResource. */
export type Resource = { cluster: true } | { db: string; collection: string } | { anyResource: true };
export interface Privilege {
  resource: Resource;
  actions: string[];
}
export interface RoleName {
  role: string;
  db: string;
}

/** A user of `startMongoEmulator({ auth: { users } })`. */
export interface EmulatorUser {
  user: string;
  pwd: string;
  /** Authentication database. Default admin. */
  db?: string;
  /** Role names (on `db`) or {role, db}. */
  roles: (string | RoleName)[];
}

/** A user-defined role (createRole). */
export interface EmulatorRole {
  role: string;
  db?: string;
  privileges: Privilege[];
  roles?: (string | RoleName)[];
}

export interface AuthOptions {
  users: EmulatorUser[];
  roles?: EmulatorRole[];
}

interface StoredUser {
  user: string;
  db: string;
  roles: RoleName[];
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

interface StoredRole {
  role: string;
  db: string;
  privileges: Privilege[];
  roles: RoleName[];
}

/** Per-connection authentication state. */
export interface ConnectionAuth {
  users: { user: string; db: string }[];
  conversation?: { id: number; user: StoredUser; clientFirstBare: string; serverFirst: string; nonce: string; done: boolean };
}

const ITERATIONS = 15_000; // MongoDB's scramSHA256IterationCount default

// ---------------------------------------------------------------------------------------------
// Built-in roles (https://www.mongodb.com/docs/manual/reference/built-in-roles/)

const READ = ['changeStream', 'collStats', 'dbHash', 'dbStats', 'find', 'killCursors', 'listCollections', 'listIndexes', 'listSearchIndexes'];
const READ_WRITE = [
  ...READ, 'convertToCapped', 'createCollection', 'createIndex', 'createSearchIndexes', 'dropCollection', 'dropIndex', 'dropSearchIndex',
  'insert', 'remove', 'renameCollectionSameDB', 'update', 'updateSearchIndex',
];
const DB_ADMIN = [
  'bypassDocumentValidation', 'collMod', 'collStats', 'compact', 'convertToCapped', 'createCollection', 'createIndex', 'createSearchIndexes',
  'dbStats', 'dropCollection', 'dropDatabase', 'dropIndex', 'dropSearchIndex', 'enableProfiler', 'listCollections', 'listIndexes',
  'listSearchIndexes', 'planCacheIndexFilter', 'planCacheRead', 'planCacheWrite', 'reIndex', 'renameCollectionSameDB', 'updateSearchIndex', 'validate',
];
const USER_ADMIN = ['changeCustomData', 'changePassword', 'createRole', 'createUser', 'dropRole', 'dropUser', 'grantRole', 'revokeRole', 'setAuthenticationRestriction', 'viewRole', 'viewUser'];
const CLUSTER_MONITOR = [
  'connPoolStats', 'getCmdLineOpts', 'getDefaultRWConcern', 'getLog', 'getParameter', 'getShardMap', 'hostInfo', 'inprog', 'listClusterCatalog',
  'listDatabases', 'listSessions', 'listShards', 'replSetGetConfig', 'replSetGetStatus', 'serverStatus', 'shardingState', 'top',
];
const CLUSTER_MANAGER = [
  'addShard', 'appendOplogNote', 'applicationMessage', 'checkMetadataConsistency', 'cleanupOrphaned', 'flushRouterConfig', 'getClusterParameter',
  'getDefaultRWConcern', 'listSessions', 'listShards', 'removeShard', 'replSetConfigure', 'replSetGetConfig', 'replSetGetStatus',
  'replSetStateChange', 'resync', 'setClusterParameter', 'setDefaultRWConcern', 'setFeatureCompatibilityVersion',
];
const HOST_MANAGER = [
  'applicationMessage', 'closeAllDatabases', 'connPoolSync', 'flushRouterConfig', 'fsync', 'invalidateUserCache', 'killAnyCursor', 'killAnySession',
  'killop', 'logRotate', 'oidReset', 'resync', 'setParameter', 'shutdown', 'touch', 'unlock',
];
const RESTORE_COLLECTION = [
  'bypassDocumentValidation', 'changeCustomData', 'changePassword', 'collMod', 'convertToCapped', 'createCollection', 'createIndex', 'createRole',
  'createSearchIndexes', 'createUser', 'dropCollection', 'dropRole', 'dropUser', 'grantRole', 'insert', 'revokeRole', 'updateSearchIndex', 'viewRole', 'viewUser',
];

const ANY_DB = { db: '', collection: '' };
const CLUSTER = { cluster: true as const };

/** Privileges of a built-in role on database `db`; undefined when the name is not built in. */
function builtinRole(role: string, db: string): Privilege[] | undefined {
  const onDb = (actions: string[]): Privilege => ({ resource: { db, collection: '' }, actions });
  switch (role) {
    case 'read':
      return [onDb(READ)];
    case 'readWrite':
      return [onDb(READ_WRITE)];
    case 'dbAdmin':
      return [onDb(DB_ADMIN)];
    case 'userAdmin':
      return [onDb(USER_ADMIN)];
    case 'dbOwner':
      return [onDb([...new Set([...READ_WRITE, ...DB_ADMIN, ...USER_ADMIN])])];
  }
  if (db !== 'admin') return undefined; // the remaining built-in roles exist only on admin
  switch (role) {
    case 'readAnyDatabase':
      return [{ resource: ANY_DB, actions: READ }, { resource: CLUSTER, actions: ['listDatabases'] }];
    case 'readWriteAnyDatabase':
      return [{ resource: ANY_DB, actions: READ_WRITE }, { resource: CLUSTER, actions: ['listDatabases'] }];
    case 'dbAdminAnyDatabase':
      return [{ resource: ANY_DB, actions: DB_ADMIN }, { resource: CLUSTER, actions: ['listDatabases'] }];
    case 'userAdminAnyDatabase':
      return [{ resource: ANY_DB, actions: USER_ADMIN }, { resource: CLUSTER, actions: ['authSchemaUpgrade', 'invalidateUserCache', 'listDatabases'] }];
    case 'clusterMonitor':
      return [{ resource: CLUSTER, actions: CLUSTER_MONITOR }, { resource: ANY_DB, actions: ['collStats', 'dbStats', 'indexStats', 'useUUID'] }];
    case 'clusterManager':
      return [
        { resource: CLUSTER, actions: CLUSTER_MANAGER },
        { resource: ANY_DB, actions: ['analyzeShardKey', 'clearJumboFlag', 'configureQueryAnalyzer', 'enableSharding', 'moveChunk', 'refineCollectionShardKey', 'reshardCollection'] },
      ];
    case 'hostManager':
      return [{ resource: CLUSTER, actions: HOST_MANAGER }, { resource: ANY_DB, actions: ['killCursors'] }];
    case 'clusterAdmin':
      return [
        ...builtinRole('clusterManager', db)!,
        ...builtinRole('clusterMonitor', db)!,
        ...builtinRole('hostManager', db)!,
        { resource: ANY_DB, actions: ['dropDatabase'] },
      ];
    case 'backup':
      // setUserWriteBlockMode since 6.0 (the command does not exist before).
      return [
        { resource: { anyResource: true }, actions: ['listCollections', 'listDatabases', 'listIndexes', 'listSearchIndexes'] },
        { resource: CLUSTER, actions: ['appendOplogNote', 'getParameter', 'listDatabases', 'serverStatus', 'setUserWriteBlockMode'] },
        { resource: ANY_DB, actions: ['find'] },
      ];
    case 'restore':
      // bypassWriteBlockingMode and setUserWriteBlockMode since 6.0. No find/update/remove on user collections.
      return [
        { resource: CLUSTER, actions: ['getParameter', 'bypassWriteBlockingMode', 'setUserWriteBlockMode'] },
        { resource: ANY_DB, actions: RESTORE_COLLECTION },
        { resource: { anyResource: true }, actions: ['listCollections'] },
      ];
    case 'root':
      // "full privileges on all resources"
      return [{ resource: { anyResource: true }, actions: ['anyAction'] }];
  }
  return undefined;
}

export const BUILTIN_ROLE_NAMES = [
  'read', 'readWrite', 'dbAdmin', 'userAdmin', 'dbOwner', 'readAnyDatabase', 'readWriteAnyDatabase', 'dbAdminAnyDatabase', 'userAdminAnyDatabase',
  'clusterMonitor', 'clusterManager', 'hostManager', 'clusterAdmin', 'backup', 'restore', 'root',
];

// ---------------------------------------------------------------------------------------------
// SCRAM-SHA-256 (RFC 5802 / 7677)

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const hmac = (key: Buffer, s: string | Buffer): Buffer => createHmac('sha256', key).update(s).digest();

function scramCredentials(pwd: string): Pick<StoredUser, 'salt' | 'iterations' | 'storedKey' | 'serverKey'> {
  // SASLprep of ASCII passwords is the identity; passwords here are test passwords.
  const salt = randomBytes(28);
  const salted = pbkdf2Sync(pwd.normalize('NFKC'), salt, ITERATIONS, 32, 'sha256');
  return { salt, iterations: ITERATIONS, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') };
}

function parseScram(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

const unescapeName = (s: string): string => s.replace(/=2C/g, ',').replace(/=3D/g, '=');
const payloadText = (v: unknown): string => (v instanceof Binary ? Buffer.from(v.buffer).toString('utf8') : typeof v === 'string' ? v : '');
const authFailed = (): never => fail(18, 'Authentication failed.');

// ---------------------------------------------------------------------------------------------

export class AuthState {
  private readonly users = new Map<string, StoredUser>();
  private readonly roles = new Map<string, StoredRole>();
  private nextConversation = 1;

  constructor(options: AuthOptions) {
    for (const r of options.roles ?? []) this.createRole(r.role, r.db ?? 'admin', r.privileges, r.roles ?? []);
    for (const u of options.users) this.createUser(u.user, u.db ?? 'admin', u.pwd, u.roles);
  }

  private static key(name: string, db: string): string {
    return `${db}.${name}`;
  }

  private static roleNames(roles: unknown[], db: string): RoleName[] {
    return roles.map((r) => {
      if (typeof r === 'string') return { role: r, db };
      if (isPlainObject(r) && typeof r.role === 'string' && typeof r.db === 'string') return { role: r.role, db: r.db };
      return fail(ErrorCodes.BadValue, 'role names must be strings or {role, db} documents');
    });
  }

  private checkRolesExist(roles: RoleName[]): void {
    for (const r of roles) {
      if (!builtinRole(r.role, r.db) && !this.roles.has(AuthState.key(r.role, r.db))) fail(31, `Role ${r.role}@${r.db} does not exist`); // RoleNotFound
    }
  }

  createUser(user: string, db: string, pwd: string, roles: unknown[]): void {
    if (this.users.has(AuthState.key(user, db))) fail(51003, `User "${user}@${db}" already exists`);
    const names = AuthState.roleNames(roles, db);
    this.checkRolesExist(names);
    this.users.set(AuthState.key(user, db), { user, db, roles: names, ...scramCredentials(pwd) });
  }

  createRole(role: string, db: string, privileges: Privilege[], roles: unknown[]): void {
    if (builtinRole(role, db) || this.roles.has(AuthState.key(role, db))) fail(51002, `Role "${role}@${db}" already exists`);
    const names = AuthState.roleNames(roles, db);
    this.checkRolesExist(names);
    this.roles.set(AuthState.key(role, db), { role, db, privileges, roles: names });
  }

  getUser(user: string, db: string): StoredUser | undefined {
    return this.users.get(AuthState.key(user, db));
  }

  usersOf(db: string): StoredUser[] {
    return [...this.users.values()].filter((u) => u.db === db);
  }

  customRolesOf(db: string): StoredRole[] {
    return [...this.roles.values()].filter((r) => r.db === db);
  }

  dropUser(user: string, db: string): boolean {
    return this.users.delete(AuthState.key(user, db));
  }

  grantRoles(user: string, db: string, roles: unknown[]): void {
    const u = this.getUser(user, db) ?? fail(11, `Could not find user "${user}@${db}"`); // UserNotFound
    const names = AuthState.roleNames(roles, db);
    this.checkRolesExist(names);
    for (const n of names) if (!u.roles.some((r) => r.role === n.role && r.db === n.db)) u.roles.push(n);
  }

  /** Direct and inherited roles of the users. */
  allRoles(users: { user: string; db: string }[]): RoleName[] {
    const seen = new Map<string, RoleName>();
    const visit = (r: RoleName): void => {
      const k = AuthState.key(r.role, r.db);
      if (seen.has(k)) return;
      seen.set(k, r);
      for (const sub of this.roles.get(k)?.roles ?? []) visit(sub);
    };
    for (const u of users) for (const r of this.getUser(u.user, u.db)?.roles ?? []) visit(r);
    return [...seen.values()];
  }

  privileges(users: { user: string; db: string }[]): Privilege[] {
    const out: Privilege[] = [];
    for (const r of this.allRoles(users)) {
      out.push(...(builtinRole(r.role, r.db) ?? this.roles.get(AuthState.key(r.role, r.db))?.privileges ?? []));
    }
    return out;
  }

  roleInfo(r: RoleName): Doc | undefined {
    const builtin = builtinRole(r.role, r.db);
    const custom = this.roles.get(AuthState.key(r.role, r.db));
    if (!builtin && !custom) return undefined;
    return {
      role: r.role,
      db: r.db,
      isBuiltin: Boolean(builtin),
      roles: custom?.roles ?? [],
      privileges: builtin ?? custom!.privileges,
    };
  }

  // SCRAM conversation --------------------------------------------------------------------

  saslStart(conn: ConnectionAuth, db: string, cmd: Doc): Doc {
    if (cmd.mechanism !== 'SCRAM-SHA-256') fail(334, `Received authentication for mechanism ${String(cmd.mechanism)} which is not enabled`); // MechanismUnavailable
    const text = payloadText(cmd.payload);
    if (!text.startsWith('n,')) authFailed(); // no channel binding ("n,,")
    const clientFirstBare = text.slice(text.indexOf(',', 2) + 1);
    const attrs = parseScram(clientFirstBare);
    const name = unescapeName(attrs.get('n') ?? '');
    const clientNonce = attrs.get('r') ?? '';
    const user = this.getUser(name, db);
    if (!user || !clientNonce) authFailed();
    const nonce = clientNonce + randomBytes(24).toString('base64');
    const serverFirst = `r=${nonce},s=${user!.salt.toString('base64')},i=${user!.iterations}`;
    const id = this.nextConversation++;
    conn.conversation = { id, user: user!, clientFirstBare, serverFirst, nonce, done: false };
    return { conversationId: id, done: false, payload: new Binary(Buffer.from(serverFirst)), ok: 1 };
  }

  saslContinue(conn: ConnectionAuth, cmd: Doc): Doc {
    const conv = conn.conversation;
    if (!conv || Number(cmd.conversationId) !== conv.id) fail(17, 'No SASL session state found'); // ProtocolError
    if (conv!.done) {
      // The final empty exchange (clients that do not ask for skipEmptyExchange).
      conn.conversation = undefined;
      return { conversationId: conv!.id, done: true, payload: new Binary(Buffer.alloc(0)), ok: 1 };
    }
    const text = payloadText(cmd.payload);
    const attrs = parseScram(text);
    const proof = attrs.get('p');
    if (attrs.get('r') !== conv!.nonce || !proof) {
      conn.conversation = undefined;
      authFailed();
    }
    const withoutProof = text.slice(0, text.lastIndexOf(',p='));
    const authMessage = `${conv!.clientFirstBare},${conv!.serverFirst},${withoutProof}`;
    const clientSignature = hmac(conv!.user.storedKey, authMessage);
    const proofBytes = Buffer.from(proof!, 'base64');
    if (proofBytes.length !== clientSignature.length) authFailed();
    const clientKey = Buffer.alloc(proofBytes.length);
    for (let i = 0; i < proofBytes.length; i++) clientKey[i] = proofBytes[i]! ^ clientSignature[i]!;
    if (!timingSafeEqual(sha256(clientKey), conv!.user.storedKey)) {
      conn.conversation = undefined;
      authFailed();
    }
    const u = conv!.user;
    if (!conn.users.some((x) => x.user === u.user && x.db === u.db)) conn.users.push({ user: u.user, db: u.db });
    const serverFinal = `v=${hmac(u.serverKey, authMessage).toString('base64')}`;
    const skipEmpty = isPlainObject(cmd.options) && cmd.options.skipEmptyExchange === true;
    conv!.done = true;
    if (skipEmpty) conn.conversation = undefined;
    return { conversationId: conv!.id, done: skipEmpty, payload: new Binary(Buffer.from(serverFinal)), ok: 1 };
  }
}

// ---------------------------------------------------------------------------------------------
// Privilege checks

interface Requirement {
  resource: { cluster: true } | { db: string; collection: string };
  actions: string[];
}

function resourceCovers(have: Resource, want: Requirement['resource']): boolean {
  if ('anyResource' in have) return true;
  if ('cluster' in want) return 'cluster' in have;
  if ('cluster' in have) return false;
  const dbOk = have.db === want.db || (have.db === '' && !['local', 'config'].includes(want.db));
  if (!dbOk) return false;
  if (have.collection === want.collection) return true;
  // {collection: ""} covers every non-system collection (and the database itself).
  return have.collection === '' && !want.collection.startsWith('system.');
}

export function isAuthorized(privileges: Privilege[], req: Requirement): boolean {
  return req.actions.every((a) => privileges.some((p) => resourceCovers(p.resource, req.resource) && (p.actions.includes(a) || p.actions.includes('anyAction'))));
}

/** Commands that run without authentication (MongoDB: requiresAuth() is false for them). */
const NO_AUTH = new Set([
  'hello', 'isMaster', 'ismaster', 'saslStart', 'saslContinue', 'authenticate', 'logout', 'ping', 'buildInfo', 'buildinfo', 'connectionStatus',
  'endSessions', 'whatsmyuri', 'getnonce',
]);
/** Commands any authenticated user may run (their own sessions and cursors). */
const AUTHENTICATED_ONLY = new Set(['startSession', 'refreshSessions', 'killSessions', 'getMore', 'killCursors', 'usersInfo', 'rolesInfo', 'getLastError']);

const CLUSTER_ACTION: Record<string, string> = {
  serverStatus: 'serverStatus',
  hostInfo: 'hostInfo',
  getCmdLineOpts: 'getCmdLineOpts',
  replSetGetStatus: 'replSetGetStatus',
  replSetGetConfig: 'replSetGetConfig',
  getParameter: 'getParameter',
  setParameter: 'setParameter',
  getLog: 'getLog',
  currentOp: 'inprog',
  killOp: 'killop',
  fsync: 'fsync',
  appendOplogNote: 'appendOplogNote',
  setFeatureCompatibilityVersion: 'setFeatureCompatibilityVersion',
  setUserWriteBlockMode: 'setUserWriteBlockMode',
  killAllSessions: 'killAnySession',
  killAllSessionsByPattern: 'killAnySession',
  getFreeMonitoringStatus: 'checkFreeMonitoringStatus',
};

const COLLECTION_ACTIONS: Record<string, string[]> = {
  find: ['find'],
  count: ['find'],
  distinct: ['find'],
  insert: ['insert'],
  delete: ['remove'],
  create: ['createCollection'],
  drop: ['dropCollection'],
  createIndexes: ['createIndex'],
  dropIndexes: ['dropIndex'],
  listIndexes: ['listIndexes'],
  collMod: ['collMod'],
  collStats: ['collStats'],
  collstats: ['collStats'],
  validate: ['validate'],
};

/** What the command needs: 'none', 'authenticated', or privileges. */
function requirements(ctx: CommandContext): 'none' | 'authenticated' | Requirement[] {
  const { name, cmd, db } = ctx;
  if (NO_AUTH.has(name)) return 'none';
  if (AUTHENTICATED_ONLY.has(name)) return 'authenticated';
  const coll = typeof cmd[name] === 'string' ? (cmd[name] as string) : '';
  const ns = (actions: string[], c = coll, d = db): Requirement => ({ resource: { db: d, collection: c }, actions });
  const cluster = (...actions: string[]): Requirement => ({ resource: CLUSTER, actions });
  if (name in CLUSTER_ACTION) return [cluster(CLUSTER_ACTION[name]!)];
  if (name in COLLECTION_ACTIONS) return [ns(COLLECTION_ACTIONS[name]!)];
  switch (name) {
    case 'update': {
      const upsert = Array.isArray(cmd.updates) && cmd.updates.some((u) => isPlainObject(u) && u.upsert === true);
      return [ns(upsert ? ['update', 'insert'] : ['update'])];
    }
    case 'findAndModify':
    case 'findandmodify': {
      const actions = ['find', cmd.remove === true ? 'remove' : 'update'];
      if (cmd.upsert === true) actions.push('insert');
      return [ns(actions)];
    }
    case 'aggregate': {
      const pipeline = Array.isArray(cmd.pipeline) ? cmd.pipeline : [];
      const first = pipeline[0];
      if (isPlainObject(first) && isPlainObject(first.$changeStream)) {
        const whole = first.$changeStream.allChangesForCluster === true;
        if (whole) return [ns(['find', 'changeStream'], '', '')];
        return [ns(['find', 'changeStream'])]; // aggregate: 1 → coll "" = the whole database
      }
      const reqs = [ns(['find'])];
      const last = pipeline[pipeline.length - 1];
      if (isPlainObject(last) && typeof last.$out === 'string') reqs.push(ns(['insert', 'remove'], last.$out));
      return reqs;
    }
    case 'listCollections':
      return [ns(['listCollections'], '')];
    case 'listDatabases':
      return 'authenticated'; // filtered by filterReply when the user lacks the action
    case 'dropDatabase':
      return [ns(['dropDatabase'], '')];
    case 'dbStats':
    case 'dbstats':
      return [ns(['dbStats'], '')];
    case 'renameCollection': {
      const [fromDb = '', ...fromRest] = String(cmd.renameCollection).split('.');
      const [toDb = '', ...toRest] = String(cmd.to).split('.');
      if (fromDb === toDb) return [ns(['renameCollectionSameDB'], fromRest.join('.'), fromDb), ns(['renameCollectionSameDB'], toRest.join('.'), toDb)];
      return [ns(['find', 'dropCollection'], fromRest.join('.'), fromDb), ns(['insert', 'createIndex'], toRest.join('.'), toDb)];
    }
    case 'createUser':
      return [ns(['createUser'], '')];
    case 'dropUser':
      return [ns(['dropUser'], '')];
    case 'grantRolesToUser':
      return [ns(['grantRole'], '')];
    case 'createRole':
      return [ns(['createRole'], '')];
  }
  // Anything else (test-only commands such as configureFailPoint): root only.
  return [cluster('anyAction')];
}

/** Throws 13 when the connection may not run the command. */
export function authorize(ctx: CommandContext): void {
  const auth = ctx.server.auth;
  if (!auth) return;
  const req = requirements(ctx);
  if (req === 'none') return;
  const users = ctx.conn.auth.users;
  if (users.length === 0) fail(UNAUTHORIZED, `Command ${ctx.name} requires authentication`);
  if (req === 'authenticated') return;
  const privileges = auth.privileges(users);
  for (const r of req) {
    if (!isAuthorized(privileges, r)) {
      const where = 'cluster' in r.resource ? 'the cluster' : r.resource.db ? r.resource.db : 'all databases';
      throw new CommandError(UNAUTHORIZED, `not authorized on ${where} to execute command { ${ctx.name}: ${JSON.stringify(ctx.cmd[ctx.name])} } (needs ${r.actions.join(', ')})`);
    }
  }
}

/** listDatabases / listCollections without their action list only what the user has privileges on. */
export function filterReply(ctx: CommandContext, reply: Doc): Doc {
  const auth = ctx.server.auth;
  if (!auth || ctx.name !== 'listDatabases' || !Array.isArray(reply.databases)) return reply;
  const privileges = auth.privileges(ctx.conn.auth.users);
  if (isAuthorized(privileges, { resource: CLUSTER, actions: ['listDatabases'] })) return reply;
  if (ctx.cmd.authorizedDatabases === false) fail(UNAUTHORIZED, 'not authorized on admin to execute command { listDatabases: 1 }');
  const visible = (dbName: string) =>
    privileges.some((p) => 'anyResource' in p.resource || ('db' in p.resource && (p.resource.db === dbName || (p.resource.db === '' && !['local', 'config'].includes(dbName)))));
  reply.databases = reply.databases.filter((d) => isPlainObject(d) && visible(String(d.name)));
  return reply;
}

// ---------------------------------------------------------------------------------------------
// User write blocking

/** Writes that setUserWriteBlockMode blocks (user writes and DDL). */
const WRITE_COMMANDS = new Set([
  'insert', 'update', 'delete', 'findAndModify', 'findandmodify', 'create', 'drop', 'dropDatabase', 'createIndexes', 'dropIndexes', 'collMod', 'renameCollection',
]);
const INTERNAL_DBS = new Set(['admin', 'config', 'local']);

/** Throws 371 when user writes are blocked and this connection may not bypass the block. */
export function checkUserWriteBlock(ctx: CommandContext): void {
  if (!ctx.server.userWritesBlocked) return;
  let isWrite = WRITE_COMMANDS.has(ctx.name);
  if (ctx.name === 'aggregate' && Array.isArray(ctx.cmd.pipeline)) {
    const last = ctx.cmd.pipeline[ctx.cmd.pipeline.length - 1];
    isWrite = isPlainObject(last) && ('$out' in last || '$merge' in last);
  }
  if (!isWrite || INTERNAL_DBS.has(ctx.db)) return;
  const auth = ctx.server.auth;
  if (!auth) return; // access control disabled: every client may bypass (server source, see top)
  const privileges = auth.privileges(ctx.conn.auth.users);
  if (isAuthorized(privileges, { resource: CLUSTER, actions: ['bypassWriteBlockingMode'] })) return;
  fail(USER_WRITES_BLOCKED, 'User writes blocked');
}

// ---------------------------------------------------------------------------------------------
// Commands

const requireAuthOn = (ctx: CommandContext): AuthState => ctx.server.auth ?? fail(ErrorCodes.IllegalOperation, 'access control is not enabled on this emulator (start it with auth)');

const connectionStatus: Handler = (ctx) => {
  const users = ctx.conn.auth.users;
  const auth = ctx.server.auth;
  const authInfo: Doc = {
    authenticatedUsers: users.map((u) => ({ user: u.user, db: u.db })),
    authenticatedUserRoles: auth ? auth.allRoles(users) : [],
  };
  if (ctx.cmd.showPrivileges === true) authInfo.authenticatedUserPrivileges = auth ? auth.privileges(users) : [];
  return { authInfo, ok: 1 };
};

/** The number 1 of any numeric BSON type (not a user or role named "1"). */
const isOne = (v: unknown): boolean => typeof v !== 'string' && !isPlainObject(v) && !Array.isArray(v) && Number(v) === 1;

export const authCommands: Record<string, Handler> = {
  saslStart: (ctx) => requireAuthOn(ctx).saslStart(ctx.conn.auth, ctx.db, ctx.cmd),
  saslContinue: (ctx) => requireAuthOn(ctx).saslContinue(ctx.conn.auth, ctx.cmd),
  logout: (ctx) => {
    ctx.conn.auth.users = [];
    return { ok: 1 };
  },
  connectionStatus,
  createUser: (ctx) => {
    const auth = requireAuthOn(ctx);
    if (typeof ctx.cmd.createUser !== 'string' || typeof ctx.cmd.pwd !== 'string') fail(ErrorCodes.BadValue, 'createUser needs a user name and pwd');
    auth.createUser(ctx.cmd.createUser as string, ctx.db, ctx.cmd.pwd as string, Array.isArray(ctx.cmd.roles) ? ctx.cmd.roles : []);
    return { ok: 1 };
  },
  dropUser: (ctx) => {
    if (!requireAuthOn(ctx).dropUser(String(ctx.cmd.dropUser), ctx.db)) fail(11, `User '${String(ctx.cmd.dropUser)}@${ctx.db}' not found`);
    return { ok: 1 };
  },
  grantRolesToUser: (ctx) => {
    requireAuthOn(ctx).grantRoles(String(ctx.cmd.grantRolesToUser), ctx.db, Array.isArray(ctx.cmd.roles) ? ctx.cmd.roles : []);
    return { ok: 1 };
  },
  createRole: (ctx) => {
    const privileges = Array.isArray(ctx.cmd.privileges) ? (ctx.cmd.privileges as Privilege[]) : fail(ErrorCodes.BadValue, 'createRole needs privileges');
    requireAuthOn(ctx).createRole(String(ctx.cmd.createRole), ctx.db, privileges, Array.isArray(ctx.cmd.roles) ? ctx.cmd.roles : []);
    return { ok: 1 };
  },
  usersInfo: (ctx) => {
    // `usersInfo: 1`: every user of this database; needs viewUser on it
    // (https://www.mongodb.com/docs/manual/reference/command/usersInfo/, "Required Access").
    // Without access control there are no users here to list (a real server would list those it
    // holds; an emulator without auth holds none).
    if (isOne(ctx.cmd.usersInfo)) {
      const auth = ctx.server.auth;
      if (!auth) return { users: [], ok: 1 };
      if (!isAuthorized(auth.privileges(ctx.conn.auth.users), { resource: { db: ctx.db, collection: '' }, actions: ['viewUser'] })) {
        fail(UNAUTHORIZED, `not authorized on ${ctx.db} to execute command { usersInfo: 1 }`);
      }
      return { users: auth.usersOf(ctx.db).map((u) => ({ _id: `${u.db}.${u.user}`, user: u.user, db: u.db, roles: u.roles, mechanisms: ['SCRAM-SHA-256'] })), ok: 1 };
    }
    const auth = requireAuthOn(ctx);
    const want = ctx.cmd.usersInfo;
    const names: { user: string; db: string }[] =
      typeof want === 'string' ? [{ user: want, db: ctx.db }] : isPlainObject(want) ? [{ user: String(want.user), db: String(want.db) }] : [];
    const self = ctx.conn.auth.users;
    const mayView = isAuthorized(auth.privileges(self), { resource: { db: ctx.db, collection: '' }, actions: ['viewUser'] });
    // Users may always view themselves; anyone else needs viewUser (13 otherwise).
    if (!mayView && names.some((n) => !self.some((x) => x.user === n.user && x.db === n.db))) {
      fail(UNAUTHORIZED, `not authorized on ${ctx.db} to execute command { usersInfo: ${JSON.stringify(want)} }`);
    }
    const users = names
      .map((n) => auth.getUser(n.user, n.db))
      .filter((u) => u !== undefined)
      .map((u) => ({ _id: `${u.db}.${u.user}`, user: u.user, db: u.db, roles: u.roles, mechanisms: ['SCRAM-SHA-256'] }));
    return { users, ok: 1 };
  },
  rolesInfo: (ctx) => {
    // `rolesInfo: 1`: the user-defined roles of this database (built-in ones only with
    // showBuiltinRoles); needs viewRole on it
    // (https://www.mongodb.com/docs/manual/reference/command/rolesInfo/, "Required Access").
    if (isOne(ctx.cmd.rolesInfo)) {
      const auth = ctx.server.auth;
      if (!auth) return { roles: [], ok: 1 };
      if (!isAuthorized(auth.privileges(ctx.conn.auth.users), { resource: { db: ctx.db, collection: '' }, actions: ['viewRole'] })) {
        fail(UNAUTHORIZED, `not authorized on ${ctx.db} to execute command { rolesInfo: 1 }`);
      }
      // showPrivileges adds each role's privileges (rolesInfo page, "showPrivileges").
      const show = ctx.cmd.showPrivileges === true;
      return { roles: auth.customRolesOf(ctx.db).map((r) => ({ role: r.role, db: r.db, isBuiltin: false, roles: r.roles, ...(show ? { privileges: r.privileges } : {}) })), ok: 1 };
    }
    const auth = requireAuthOn(ctx);
    const want = ctx.cmd.rolesInfo;
    const names: RoleName[] = typeof want === 'string' ? [{ role: want, db: ctx.db }] : isPlainObject(want) ? [{ role: String(want.role), db: String(want.db) }] : [];
    return { roles: names.map((n) => auth.roleInfo(n)).filter(Boolean), ok: 1 };
  },
  setUserWriteBlockMode: (ctx) => {
    // MongoDB 6.0+ only (profiles.ts `writeBlocking`); admin database only.
    if (!ctx.server.profile.writeBlocking) fail(ErrorCodes.CommandNotFound, "no such command: 'setUserWriteBlockMode'");
    if (ctx.db !== 'admin') fail(ErrorCodes.Unauthorized, 'setUserWriteBlockMode may only be run against the admin database.');
    if (typeof ctx.cmd.global !== 'boolean') fail(ErrorCodes.BadValue, "BSON field 'setUserWriteBlockMode.global' is missing but a required field");
    ctx.server.userWritesBlocked = ctx.cmd.global as boolean;
    return { ok: 1 };
  },
};

/** hello's `saslSupportedMechs: "db.user"`: the mechanisms of that user (absent when unknown). */
export function saslSupportedMechs(ctx: CommandContext): string[] | undefined {
  const auth = ctx.server.auth;
  const v = ctx.cmd.saslSupportedMechs;
  if (!auth || typeof v !== 'string') return undefined;
  const dot = v.indexOf('.');
  return auth.getUser(v.slice(dot + 1), v.slice(0, dot)) ? ['SCRAM-SHA-256'] : undefined;
}
