// Handshake, server-information and session commands, presenting a single-node replica set
// primary of the profile's server (profiles.ts; MongoDB 7.0, wire version 21, by default).
import { hostname, cpus, totalmem, platform, release, arch } from 'node:os';
import { Long, UUID } from 'bson';
import { isPlainObject, type Doc } from './bson-values.js';
import type { CommandContext, Handler } from './command-context.js';
import { ErrorCodes, fail } from './errors.js';
import { saslSupportedMechs } from './auth.js';

function lastWrite(ctx: CommandContext): Doc {
  const ts = ctx.server.engine.clock.current();
  const opTime = { ts, t: Long.fromNumber(1) };
  const date = new Date(ts.t * 1000);
  return { opTime, lastWriteDate: date, majorityOpTime: opTime, majorityWriteDate: date };
}

/** hello / isMaster: `legacy` replies use `ismaster` instead of `isWritablePrimary`. */
function helloReply(ctx: CommandContext, legacy: boolean): Doc {
  const { server, cmd } = ctx;
  if (isPlainObject(cmd.client) && isPlainObject(cmd.client.application) && typeof cmd.client.application.name === 'string') {
    ctx.conn.appName = cmd.client.application.name;
  }
  const reply: Doc = {};
  if (cmd.helloOk === true) reply.helloOk = true;
  const mechs = saslSupportedMechs(ctx);
  if (mechs) reply.saslSupportedMechs = mechs;
  // A mongos answers without replica-set fields and with msg: 'isdbgrid'
  // (https://www.mongodb.com/docs/manual/reference/command/hello/#sharded-instances).
  const topology: Doc = server.sharding
    ? { msg: 'isdbgrid' }
    : {
        hosts: [server.host],
        setName: server.replSetName,
        setVersion: 1,
        secondary: false,
        primary: server.host,
        me: server.host,
        electionId: server.electionId,
        lastWrite: lastWrite(ctx),
      };
  Object.assign(reply, {
    ...(legacy ? { ismaster: true } : { isWritablePrimary: true }),
    ...topology,
    maxBsonObjectSize: 16 * 1024 * 1024,
    maxMessageSizeBytes: 48_000_000,
    maxWriteBatchSize: 100_000,
    localTime: new Date(),
    logicalSessionTimeoutMinutes: 30,
    connectionId: ctx.conn.id,
    minWireVersion: 0,
    maxWireVersion: server.profile.maxWireVersion,
    readOnly: false,
    ok: 1,
  });
  return reply;
}

const buildInfo: Handler = (ctx) => ({
  version: ctx.server.profile.version,
  gitVersion: '0000000000000000000000000000000000000000',
  modules: [],
  allocator: 'system',
  javascriptEngine: 'none',
  sysInfo: 'deprecated',
  versionArray: ctx.server.profile.version.split('.').map(Number).concat(0),
  openssl: { running: 'disabled', compiled: 'disabled' },
  buildEnvironment: {},
  bits: 64,
  debug: false,
  maxBsonObjectSize: 16 * 1024 * 1024,
  storageEngines: ['wiredTiger'],
  ok: 1,
});

const PARAMETERS: Record<string, unknown> = {
  authenticationMechanisms: ['SCRAM-SHA-1', 'SCRAM-SHA-256'],
  internalQueryMaxBlockingSortMemoryUsageBytes: 104857600,
  maxBSONDepth: 200,
  transactionLifetimeLimitSeconds: 60,
  periodicNoopIntervalSecs: 1,
};

const getParameter: Handler = (ctx) => {
  const all = ctx.cmd.getParameter === '*' || (isPlainObject(ctx.cmd.getParameter) && ctx.cmd.getParameter.allParameters === true);
  const reply: Doc = {};
  const params: Record<string, unknown> = { ...PARAMETERS };
  if (ctx.server.profile.fcv) params.featureCompatibilityVersion = { version: ctx.server.profile.fcv };
  for (const [k, v] of Object.entries(params)) if (all || k in ctx.cmd) reply[k] = v;
  const unknown = Object.keys(ctx.cmd).filter((k) => k !== 'getParameter' && !k.startsWith('$') && k !== 'lsid' && !(k in params));
  if (!all && unknown.length && Object.keys(reply).length === 0) fail(ErrorCodes.InvalidOptions, 'no option found to get');
  reply.ok = 1;
  return reply;
};

const serverStatus: Handler = (ctx) => ({
  host: ctx.server.host,
  version: ctx.server.profile.version,
  process: ctx.server.sharding ? 'mongos' : 'mongod',
  pid: Long.fromNumber(process.pid),
  uptime: (Date.now() - ctx.server.startedAt.getTime()) / 1000,
  uptimeMillis: Long.fromNumber(Date.now() - ctx.server.startedAt.getTime()),
  localTime: new Date(),
  connections: { current: ctx.server.openConnections, available: 1000, totalCreated: ctx.conn.id },
  storageEngine: { name: 'wiredTiger', supportsCommittedReads: true, persistent: ctx.server.dbpath !== undefined },
  repl: { setName: ctx.server.replSetName, isWritablePrimary: true, secondary: false, hosts: [ctx.server.host], primary: ctx.server.host, me: ctx.server.host },
  ok: 1,
});

const hostInfo: Handler = () => ({
  system: {
    currentTime: new Date(),
    hostname: hostname(),
    cpuAddrSize: 64,
    memSizeMB: Long.fromNumber(Math.floor(totalmem() / 1048576)),
    numCores: cpus().length,
    cpuArch: arch(),
    numaEnabled: false,
  },
  os: { type: platform() === 'linux' ? 'Linux' : platform(), name: platform(), version: release() },
  extra: {},
  ok: 1,
});

const getCmdLineOpts: Handler = (ctx) => ({
  argv: ['mongod', '--replSet', ctx.server.replSetName, '--port', String(ctx.server.port)],
  parsed: {
    net: { port: ctx.server.port, bindIp: '127.0.0.1' },
    replication: { replSet: ctx.server.replSetName },
    storage: ctx.server.dbpath ? { dbPath: ctx.server.dbpath } : {},
  },
  ok: 1,
});

const replSetGetStatus: Handler = (ctx) => {
  const ts = ctx.server.engine.clock.current();
  const opTime = { ts, t: Long.fromNumber(1) };
  return {
    set: ctx.server.replSetName,
    date: new Date(),
    myState: 1,
    term: Long.fromNumber(1),
    members: [
      { _id: 0, name: ctx.server.host, health: 1, state: 1, stateStr: 'PRIMARY', uptime: 1, optime: opTime, optimeDate: new Date(ts.t * 1000), self: true },
    ],
    optimes: { lastCommittedOpTime: opTime, appliedOpTime: opTime, durableOpTime: opTime },
    ok: 1,
  };
};

const replSetGetConfig: Handler = (ctx) => ({
  config: { _id: ctx.server.replSetName, version: 1, term: 1, members: [{ _id: 0, host: ctx.server.host, arbiterOnly: false, hidden: false, priority: 1, votes: 1 }], protocolVersion: Long.fromNumber(1) },
  ok: 1,
});

const ok: Handler = () => ({ ok: 1 });

/** shardCollection / enableSharding: mongos only (https://www.mongodb.com/docs/manual/reference/command/shardCollection/). */
const shardCollection: Handler = (ctx) => {
  if (!ctx.server.sharding) fail(ErrorCodes.CommandNotFound, "no such command: 'shardCollection'");
  if (ctx.db !== 'admin') fail(ErrorCodes.Unauthorized, 'shardCollection may only be run against the admin database.');
  return ctx.server.sharding.shardCollection(String(ctx.cmd.shardCollection), ctx.cmd.key as Doc, ctx.cmd.unique === true);
};
const enableSharding: Handler = (ctx) => {
  if (!ctx.server.sharding) fail(ErrorCodes.CommandNotFound, "no such command: 'enableSharding'");
  return { ok: 1 };
};

const configureFailPoint: Handler = (ctx) => {
  if (ctx.db !== 'admin') fail(ErrorCodes.Unauthorized, 'configureFailPoint may only be run against the admin database.');
  return { ...ctx.server.failpoints.configure(ctx.cmd), ok: 1 };
};

const notSupported = (what: string): Handler => () => fail(ErrorCodes.IllegalOperation, `${what} is not supported by the mongo emulator`);

export const adminCommands: Record<string, Handler> = {
  hello: (ctx) => helloReply(ctx, false),
  isMaster: (ctx) => helloReply(ctx, true),
  ismaster: (ctx) => helloReply(ctx, true),
  ping: ok,
  buildInfo,
  buildinfo: buildInfo,
  getParameter,
  setParameter: ok,
  serverStatus,
  hostInfo,
  getCmdLineOpts,
  replSetGetStatus,
  replSetGetConfig,
  connectionStatus: () => ({ authInfo: { authenticatedUsers: [], authenticatedUserRoles: [] }, ok: 1 }),
  whatsmyuri: () => ({ you: '127.0.0.1:0', ok: 1 }),
  getLog: () => ({ totalLinesWritten: 0, log: [], ok: 1 }),
  getFreeMonitoringStatus: () => ({ state: 'disabled', ok: 1 }),
  startSession: () => ({ id: { id: new UUID() }, timeoutMinutes: 30, ok: 1 }),
  endSessions: ok,
  refreshSessions: ok,
  killSessions: ok,
  killAllSessions: ok,
  killAllSessionsByPattern: ok,
  currentOp: () => ({ inprog: [], ok: 1 }),
  killOp: ok,
  fsync: () => ({ numFiles: 1, ok: 1 }),
  appendOplogNote: ok,
  setFeatureCompatibilityVersion: ok,
  validate: (ctx) => ({ ns: `${ctx.db}.${String(ctx.cmd.validate)}`, valid: true, errors: [], warnings: [], ok: 1 }),
  configureFailPoint,
  shardCollection,
  shardcollection: shardCollection,
  enableSharding,
  enablesharding: enableSharding,
  saslStart: notSupported('authentication'),
  authenticate: notSupported('authentication'),
  commitTransaction: notSupported('Transactions'),
  abortTransaction: notSupported('Transactions'),
  explain: notSupported('explain'),
};
