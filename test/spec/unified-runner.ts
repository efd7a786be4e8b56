// A runner for MongoDB's unified-format specification tests (the JSON files in
// ../shared/spec-tests, from mongodb/specifications), written from the format's specification:
// https://github.com/mongodb/specifications/blob/master/source/unified-test-format/unified-test-format.md
//
// It runs them with the Node.js driver against the emulator (started with the profile under test,
// SPEC_PROFILE, default mongodb-7.0) or against a real server when MONGODB_URI is set. Each spec
// test is one node:test test:
// - tests whose runOnRequirements exclude the server under test are skipped ("not applicable");
// - tests on the suite's expected-failure list (emulator only) are reported as `todo` with the
//   reason; one extra test per suite fails if any of them unexpectedly passes, so the list can
//   never hide a fixed gap;
// - every other test must pass.
// Implemented: client/database/collection/session entities, command monitoring events, the CRUD,
// change-stream, cursor and runCommand operations these files use, failPoint, createEntities,
// expectResult/expectError/expectEvents/outcome with the `$$` match operators (matcher.ts).
import { after, describe, test } from 'node:test';
import { closeSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  ChangeStream,
  ClientSession,
  Collection,
  Db,
  FindCursor,
  AggregationCursor,
  MongoBulkWriteError,
  MongoClient,
  MongoServerError,
  ReadConcern,
  ReadPreference,
  WriteConcern,
  type AnyBulkWriteOperation,
  type CommandFailedEvent,
  type CommandStartedEvent,
  type CommandSucceededEvent,
  type Document,
  type MongoClientOptions,
} from 'mongodb';
import { EJSON } from 'bson';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { profileByName } from '../../packages/mongo-emulator/src/profiles.js';
import { isDocument, match, matchExactly, MatchError, matchResult, type MatchContext } from './matcher.js';

/** Verbatim copies of the JSON files (Apache-2.0, provenance in data/README.md); SPEC_TESTS_DIR overrides. */
export const SPEC_TESTS_DIR = process.env.SPEC_TESTS_DIR ?? new URL('./data/', import.meta.url).pathname;

// ---------------------------------------------------------------------------------------------
// The server under test

export interface ServerInfo {
  /** major, minor, patch */
  version: number[];
  topology: 'single' | 'replicaset' | 'sharded' | 'load-balanced';
  auth: boolean;
  serverless: boolean;
  /** Label for messages ("emulator mongodb-7.0", "MONGODB_URI 7.0.14"). */
  label: string;
  emulator: boolean;
}

export interface SpecTarget {
  uri: string;
  info: ServerInfo;
  /** The internal client: initialData, outcome, disabling fail points. */
  internal: MongoClient;
  emulator?: MongoEmulator;
  close(): Promise<void>;
}

function parseVersion(v: string): number[] {
  const parts = v.split('-')[0].split('.').map((x) => Number(x) || 0);
  while (parts.length < 3) parts.push(0);
  return parts.slice(0, 3);
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** Starts the emulator (profile SPEC_PROFILE, default mongodb-7.0) or connects to MONGODB_URI. */
export async function openSpecTarget(): Promise<SpecTarget> {
  const realUri = process.env.MONGODB_URI;
  if (realUri) {
    const internal = new MongoClient(realUri, { serverSelectionTimeoutMS: 10_000 });
    await internal.connect();
    const admin = internal.db('admin');
    const build = await admin.command({ buildInfo: 1 });
    const hello = await admin.command({ hello: 1 });
    const status = await admin.command({ connectionStatus: 1 }).catch(() => ({ authInfo: { authenticatedUsers: [] } }));
    const topology = hello.msg === 'isdbgrid' ? 'sharded' : hello.setName ? 'replicaset' : hello.serviceId ? 'load-balanced' : 'single';
    const version = Array.isArray(build.versionArray) ? (build.versionArray as number[]).slice(0, 3).map(Number) : parseVersion(String(build.version));
    return {
      uri: realUri,
      internal,
      info: {
        version,
        topology,
        auth: ((status.authInfo?.authenticatedUsers as unknown[]) ?? []).length > 0,
        serverless: process.env.MONGODB_SERVERLESS === '1',
        label: `MONGODB_URI (server ${version.join('.')}, ${topology})`,
        emulator: false,
      },
      close: () => internal.close(),
    };
  }
  const profile = profileByName(process.env.SPEC_PROFILE);
  const emulator = await startMongoEmulator({ profile: profile.name });
  const internal = new MongoClient(emulator.uri, { serverSelectionTimeoutMS: 10_000 });
  await internal.connect();
  return {
    uri: emulator.uri,
    internal,
    emulator,
    // The emulator is a single-node replica set primary without auth (see its README).
    info: { version: parseVersion(profile.version), topology: 'replicaset', auth: false, serverless: false, label: `emulator ${profile.name}`, emulator: true },
    async close() {
      await internal.close();
      await emulator.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// runOnRequirements

type Requirement = Document;

const parameterCache = new Map<string, unknown>();

/** Why `req` is not met by the server, or undefined when it is. */
async function unmetRequirement(req: Requirement, target: SpecTarget): Promise<string | undefined> {
  const { info } = target;
  if (req.minServerVersion && compareVersions(info.version, parseVersion(String(req.minServerVersion))) < 0) return `needs server >= ${req.minServerVersion}`;
  if (req.maxServerVersion && compareVersions(info.version, parseVersion(String(req.maxServerVersion))) > 0) return `needs server <= ${req.maxServerVersion}`;
  if (Array.isArray(req.topologies)) {
    const ok = (req.topologies as string[]).some((t) => t === info.topology || (t === 'sharded-replicaset' && info.topology === 'sharded'));
    if (!ok) return `needs topology ${(req.topologies as string[]).join('|')}`;
  }
  if (req.serverless === 'require' && !info.serverless) return 'needs serverless';
  if (req.serverless === 'forbid' && info.serverless) return 'not on serverless';
  if (req.auth === true && !info.auth) return 'needs auth';
  if (req.auth === false && info.auth) return 'needs no auth';
  if (req.csfle !== undefined && req.csfle !== false) return 'needs CSFLE';
  if (req.authMechanism) return `needs auth mechanism ${req.authMechanism}`;
  if (isDocument(req.serverParameters)) {
    for (const [name, wanted] of Object.entries(req.serverParameters)) {
      const key = `${target.uri}\0${name}`;
      if (!parameterCache.has(key)) {
        const got = await target.internal
          .db('admin')
          .command({ getParameter: 1, [name]: 1 })
          .then((r) => r[name])
          .catch(() => undefined);
        parameterCache.set(key, got);
      }
      try {
        match(wanted, parameterCache.get(key), name, false);
      } catch {
        return `needs server parameter ${name}=${EJSON.stringify(wanted)}`;
      }
    }
  }
  return undefined;
}

/** Why none of `reqs` is met (undefined when there are none or one is met). */
async function unmet(reqs: unknown, target: SpecTarget): Promise<string | undefined> {
  if (!Array.isArray(reqs) || reqs.length === 0) return undefined;
  const reasons: string[] = [];
  for (const r of reqs as Requirement[]) {
    const why = await unmetRequirement(r, target);
    if (!why) return undefined;
    reasons.push(why);
  }
  return reasons.join(' or ');
}

// ---------------------------------------------------------------------------------------------
// Entities

interface ObservedEvent {
  type: 'commandStartedEvent' | 'commandSucceededEvent' | 'commandFailedEvent';
  commandName: string;
  databaseName: string;
  command?: Document;
  reply?: Document;
}

class ClientEntity {
  readonly events: ObservedEvent[] = [];
  constructor(
    readonly client: MongoClient,
    readonly observe: Set<string>,
    readonly ignore: Set<string>,
  ) {}
}

/** Driver objects, or any BSON value saved with saveResultAsEntity. */
type Entity = unknown;

/** Commands whose monitoring events the format always ignores (command-logging-and-monitoring "Security"). */
const SENSITIVE = new Set(['authenticate', 'saslstart', 'saslcontinue', 'getnonce', 'createuser', 'updateuser', 'copydbgetnonce', 'copydbsaslstart', 'copydb']);

function isIgnored(entity: ClientEntity, name: string, command?: Document): boolean {
  if (name === 'configureFailPoint' || entity.ignore.has(name) || SENSITIVE.has(name.toLowerCase())) return true;
  // hello/legacy hello are sensitive only with speculativeAuthenticate; the driver then redacts them.
  if (['hello', 'ismaster'].includes(name.toLowerCase()) && command && Object.keys(command).length === 0) return true;
  return false;
}

function readConcernOf(v: unknown): ReadConcern | undefined {
  return isDocument(v) ? new ReadConcern(v.level) : undefined;
}

function writeConcernOf(v: unknown): WriteConcern | undefined {
  return isDocument(v) ? (WriteConcern.fromOptions({ writeConcern: { w: v.w, journal: v.journal, wtimeoutMS: v.wtimeoutMS } }) ?? undefined) : undefined;
}

function readPreferenceOf(v: unknown): ReadPreference | undefined {
  if (!isDocument(v)) return undefined;
  return new ReadPreference(v.mode, v.tagSets, { maxStalenessSeconds: v.maxStalenessSeconds, hedge: v.hedge });
}

function namespaceOptions(v: unknown): Document {
  if (!isDocument(v)) return {};
  const out: Document = {};
  if (v.readConcern) out.readConcern = readConcernOf(v.readConcern);
  if (v.writeConcern) out.writeConcern = writeConcernOf(v.writeConcern);
  if (v.readPreference) out.readPreference = readPreferenceOf(v.readPreference);
  if (v.timeoutMS !== undefined) out.timeoutMS = v.timeoutMS;
  return out;
}

/** URI options of a client entity as MongoClient options (the driver takes the same names). */
function clientOptions(uriOptions: unknown): MongoClientOptions {
  const out: Document = {};
  if (isDocument(uriOptions)) {
    for (const [k, v] of Object.entries(uriOptions)) {
      if (k === 'appname') out.appName = v;
      else if (k === 'w') out.writeConcern = { ...(out.writeConcern ?? {}), w: v };
      else if (k === 'journal') out.writeConcern = { ...(out.writeConcern ?? {}), journal: v };
      else if (k === 'wtimeoutMS') out.writeConcern = { ...(out.writeConcern ?? {}), wtimeoutMS: v };
      else out[k] = v;
    }
  }
  return out as MongoClientOptions;
}

class EntityMap implements MatchContext {
  private readonly map = new Map<string, Entity>();

  constructor(private readonly target: SpecTarget) {}

  set(name: string, value: Entity): void {
    if (this.map.has(name)) throw new Error(`entity ${name} already exists`);
    this.map.set(name, value);
  }

  get(name: string): Entity {
    if (!this.map.has(name)) throw new Error(`no entity named ${name}`);
    return this.map.get(name);
  }

  client(name: string): ClientEntity {
    const e = this.get(name);
    if (!(e instanceof ClientEntity)) throw new Error(`entity ${name} is not a client`);
    return e;
  }

  session(name: string): ClientSession {
    const e = this.get(name);
    if (!(e instanceof ClientSession)) throw new Error(`entity ${name} is not a session`);
    return e;
  }

  entity(name: string): unknown {
    return this.get(name);
  }

  sessionLsid(name: string): Document {
    const id = this.session(name).id;
    if (!id) throw new Error(`session ${name} has no lsid`);
    return id;
  }

  clients(): ClientEntity[] {
    return [...this.map.values()].filter((e): e is ClientEntity => e instanceof ClientEntity);
  }

  async create(defs: Document[]): Promise<void> {
    for (const def of defs) {
      const [kind] = Object.keys(def);
      const spec = def[kind] as Document;
      const id = String(spec.id);
      switch (kind) {
        case 'client': {
          const observe = new Set<string>((spec.observeEvents as string[] | undefined) ?? []);
          const client = new MongoClient(this.target.uri, {
            serverSelectionTimeoutMS: 10_000,
            // "MAY specify a reduced value for heartbeatFrequencyMS (and minHeartbeatFrequencyMS if
            // possible)" so the client rediscovers the server quickly after an injected failure.
            heartbeatFrequencyMS: 500,
            minHeartbeatFrequencyMS: 50,
            ...clientOptions(spec.uriOptions),
            monitorCommands: observe.size > 0,
            ...(isDocument(spec.serverApi) ? { serverApi: { version: spec.serverApi.version, strict: spec.serverApi.strict, deprecationErrors: spec.serverApi.deprecationErrors } } : {}),
          });
          const entity = new ClientEntity(client, observe, new Set<string>((spec.ignoreCommandMonitoringEvents as string[] | undefined) ?? []));
          // Succeeded/failed events carry no database name in this driver: take the started one's.
          const dbOf = new Map<number, string>();
          client.on('commandStarted', (e: CommandStartedEvent) => {
            dbOf.set(e.requestId, e.databaseName);
            if (observe.has('commandStartedEvent') && !isIgnored(entity, e.commandName, e.command)) {
              entity.events.push({ type: 'commandStartedEvent', commandName: e.commandName, databaseName: e.databaseName, command: e.command });
            }
          });
          if (observe.has('commandSucceededEvent')) {
            client.on('commandSucceeded', (e: CommandSucceededEvent) => {
              if (!isIgnored(entity, e.commandName)) entity.events.push({ type: 'commandSucceededEvent', commandName: e.commandName, databaseName: dbOf.get(e.requestId) ?? '', reply: e.reply as Document });
            });
          }
          if (observe.has('commandFailedEvent')) {
            client.on('commandFailed', (e: CommandFailedEvent) => {
              if (!isIgnored(entity, e.commandName)) entity.events.push({ type: 'commandFailedEvent', commandName: e.commandName, databaseName: dbOf.get(e.requestId) ?? '' });
            });
          }
          await client.connect();
          this.set(id, entity);
          break;
        }
        case 'database':
          this.set(id, this.client(String(spec.client)).client.db(String(spec.databaseName), namespaceOptions(spec.databaseOptions)));
          break;
        case 'collection': {
          const db = this.get(String(spec.database));
          if (!(db instanceof Db)) throw new Error(`entity ${spec.database} is not a database`);
          this.set(id, db.collection(String(spec.collectionName), namespaceOptions(spec.collectionOptions)));
          break;
        }
        case 'session': {
          const opts: Document = { ...((spec.sessionOptions as Document | undefined) ?? {}) };
          this.set(id, this.client(String(spec.client)).client.startSession(opts));
          break;
        }
        default:
          throw new Error(`unsupported entity type ${kind}`);
      }
    }
  }

  async close(): Promise<void> {
    for (const e of this.map.values()) {
      if (e instanceof ChangeStream || e instanceof FindCursor || e instanceof AggregationCursor) await e.close().catch(() => undefined);
    }
    for (const e of this.map.values()) if (e instanceof ClientSession) await e.endSession().catch(() => undefined);
    for (const e of this.map.values()) if (e instanceof ClientEntity) await e.client.close().catch(() => undefined);
    this.map.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Operations

interface OperationContext {
  entities: EntityMap;
  target: SpecTarget;
  /** Fail points to disable after the test: [client, name]. */
  failPoints: [MongoClient, string][];
}

/** Operation arguments as driver options: session resolved, concerns converted. */
function driverOptions(args: Document, ctx: OperationContext, omit: string[]): Document {
  const out: Document = {};
  for (const [k, v] of Object.entries(args)) {
    if (omit.includes(k)) continue;
    if (k === 'session') out.session = ctx.entities.session(String(v));
    else if (k === 'readConcern') out.readConcern = readConcernOf(v);
    else if (k === 'writeConcern') out.writeConcern = writeConcernOf(v);
    else if (k === 'readPreference') out.readPreference = readPreferenceOf(v);
    else if (k === 'returnDocument') {
      const rd = String(v).toLowerCase();
      if (rd !== 'before' && rd !== 'after') throw new Error(`returnDocument must be Before or After, got ${String(v)}`);
      out.returnDocument = rd;
    } else out[k] = v;
  }
  return out;
}

function bulkResultDoc(r: unknown): Document {
  const x = r as Document;
  return {
    deletedCount: x.deletedCount,
    insertedCount: x.insertedCount,
    insertedIds: x.insertedIds,
    matchedCount: x.matchedCount,
    modifiedCount: x.modifiedCount,
    upsertedCount: x.upsertedCount,
    upsertedIds: x.upsertedIds,
  };
}

function updateResultDoc(r: Document): Document {
  const out: Document = { matchedCount: r.matchedCount, modifiedCount: r.modifiedCount, upsertedCount: r.upsertedCount };
  if (r.upsertedId !== null && r.upsertedId !== undefined) out.upsertedId = r.upsertedId;
  return out;
}

/** A bulkWrite request of the format ({insertOne: {document}} …) as the driver's model. */
function writeModel(request: Document): AnyBulkWriteOperation<Document> {
  const [kind] = Object.keys(request);
  return { [kind]: request[kind] } as unknown as AnyBulkWriteOperation<Document>;
}

type ChangeStreamSource = MongoClient | Db | Collection<Document>;

async function createChangeStream(source: ChangeStreamSource, args: Document, ctx: OperationContext): Promise<ChangeStream> {
  const { pipeline = [], ...rest } = args;
  const stream = source.watch(pipeline as Document[], driverOptions(rest, ctx, []));
  // The format requires the server-side cursor to exist when the operation returns (the
  // driver's watch() is lazy); cursorInit is the hook the driver exposes for this.
  await (stream as unknown as { cursor: { cursorInit(): Promise<void> } }).cursor.cursorInit();
  return stream;
}

async function collectionOperation(coll: Collection<Document>, name: string, args: Document, ctx: OperationContext): Promise<unknown> {
  const o = (omit: string[] = []): Document => driverOptions(args, ctx, omit);
  switch (name) {
    case 'insertOne': {
      const r = await coll.insertOne(args.document as Document, o(['document']));
      return { insertedId: r.insertedId };
    }
    case 'insertMany': {
      const r = await coll.insertMany(args.documents as Document[], o(['documents']));
      return { insertedCount: r.insertedCount, insertedIds: r.insertedIds };
    }
    case 'updateOne':
      return updateResultDoc(await coll.updateOne(args.filter as Document, args.update as Document, o(['filter', 'update'])));
    case 'updateMany':
      return updateResultDoc(await coll.updateMany(args.filter as Document, args.update as Document, o(['filter', 'update'])));
    case 'replaceOne':
      return updateResultDoc(await coll.replaceOne(args.filter as Document, args.replacement as Document, o(['filter', 'replacement'])));
    case 'deleteOne':
      return { deletedCount: (await coll.deleteOne(args.filter as Document, o(['filter']))).deletedCount };
    case 'deleteMany':
      return { deletedCount: (await coll.deleteMany(args.filter as Document, o(['filter']))).deletedCount };
    case 'findOneAndDelete':
      return coll.findOneAndDelete(args.filter as Document, o(['filter']));
    case 'findOneAndReplace':
      return coll.findOneAndReplace(args.filter as Document, args.replacement as Document, o(['filter', 'replacement']));
    case 'findOneAndUpdate':
      return coll.findOneAndUpdate(args.filter as Document, args.update as Document, o(['filter', 'update']));
    case 'bulkWrite':
      return bulkResultDoc(await coll.bulkWrite((args.requests as Document[]).map(writeModel), o(['requests'])));
    case 'find':
      return coll.find((args.filter as Document) ?? {}, o(['filter'])).toArray();
    case 'findOne':
      return coll.findOne((args.filter as Document) ?? {}, o(['filter']));
    case 'createFindCursor': {
      const cursor = coll.find((args.filter as Document) ?? {}, o(['filter']));
      await (cursor as unknown as { cursorInit(): Promise<void> }).cursorInit();
      return cursor;
    }
    case 'aggregate':
      return coll.aggregate(args.pipeline as Document[], o(['pipeline'])).toArray();
    case 'countDocuments':
      return coll.countDocuments((args.filter as Document) ?? {}, o(['filter']));
    case 'count':
      return coll.count((args.filter as Document) ?? {}, o(['filter']));
    case 'estimatedDocumentCount':
      return coll.estimatedDocumentCount(o());
    case 'distinct':
      return coll.distinct(String(args.fieldName), (args.filter as Document) ?? {}, o(['fieldName', 'filter']));
    case 'createChangeStream':
      return createChangeStream(coll, args, ctx);
    case 'createIndex':
      return coll.createIndex(args.keys as Document, o(['keys']));
    case 'dropIndex':
      return coll.dropIndex(String(args.name), o(['name']));
    case 'rename':
      await coll.rename(String(args.to), o(['to']));
      return undefined;
    case 'drop':
      return coll.drop(o());
    default:
      throw new Error(`unsupported collection operation ${name}`);
  }
}

async function databaseOperation(db: Db, name: string, args: Document, ctx: OperationContext): Promise<unknown> {
  const o = (omit: string[] = []): Document => driverOptions(args, ctx, omit);
  switch (name) {
    case 'runCommand': {
      const opts = o(['command', 'commandName']);
      return db.command(args.command as Document, opts);
    }
    case 'createChangeStream':
      return createChangeStream(db, args, ctx);
    case 'aggregate':
      return db.aggregate(args.pipeline as Document[], o(['pipeline'])).toArray();
    case 'dropCollection':
      return db.dropCollection(String(args.collection), o(['collection']));
    case 'createCollection':
      await db.createCollection(String(args.collection), o(['collection']));
      return undefined;
    case 'modifyCollection': {
      const { collection, ...rest } = o();
      return db.command({ collMod: collection, ...rest });
    }
    case 'listCollections':
      return db.listCollections((args.filter as Document) ?? {}, o(['filter'])).toArray();
    case 'listCollectionNames':
      return (await db.listCollections((args.filter as Document) ?? {}, { ...o(['filter']), nameOnly: true }).toArray()).map((c) => c.name);
    default:
      throw new Error(`unsupported database operation ${name}`);
  }
}

/** A Map of per-model results as the format's document keyed by model index. */
function mapToDoc(m: ReadonlyMap<number, unknown> | undefined): Document | undefined {
  if (!m) return undefined;
  const out: Document = {};
  for (const [k, v] of m) {
    // didUpsert is this driver's own field, not the spec's UpdateResult.
    const { didUpsert: _didUpsert, ...rest } = v as Document;
    out[String(k)] = rest;
  }
  return out;
}

function clientBulkResultDoc(r: Document | undefined): Document | undefined {
  if (!r) return undefined;
  return {
    insertedCount: r.insertedCount,
    upsertedCount: r.upsertedCount,
    matchedCount: r.matchedCount,
    modifiedCount: r.modifiedCount,
    deletedCount: r.deletedCount,
    insertResults: mapToDoc(r.insertResults),
    updateResults: mapToDoc(r.updateResults),
    deleteResults: mapToDoc(r.deleteResults),
  };
}

async function clientOperation(client: MongoClient, name: string, args: Document, ctx: OperationContext): Promise<unknown> {
  switch (name) {
    case 'clientBulkWrite': {
      // The format nests each model under its kind ({insertOne: {namespace, document}}); the
      // driver takes {name: 'insertOne', namespace, document}.
      const models = (args.models as Document[]).map((m) => {
        const [kind] = Object.keys(m);
        return { name: kind, ...(m[kind] as Document) };
      });
      const r = await client.bulkWrite(models as unknown as Parameters<MongoClient['bulkWrite']>[0], driverOptions(args, ctx, ['models']));
      return clientBulkResultDoc(r as unknown as Document);
    }
    case 'createChangeStream':
      return createChangeStream(client, args, ctx);
    case 'listDatabases':
      return (await client.db('admin').admin().listDatabases(driverOptions(args, ctx, []))).databases;
    case 'close':
      await client.close();
      return undefined;
    default:
      throw new Error(`unsupported client operation ${name}`);
  }
}

async function cursorOperation(cursor: ChangeStream | FindCursor | AggregationCursor, name: string): Promise<unknown> {
  switch (name) {
    case 'iterateUntilDocumentOrError':
      for (;;) {
        const doc = await cursor.next();
        if (doc !== null || cursor.closed) return doc;
      }
    case 'iterateOnce':
      return cursor.tryNext();
    case 'close':
      await cursor.close().catch(() => undefined);
      return undefined;
    default:
      throw new Error(`unsupported cursor operation ${name}`);
  }
}

async function testRunnerOperation(name: string, args: Document, ctx: OperationContext): Promise<void> {
  switch (name) {
    case 'failPoint': {
      const client = ctx.entities.client(String(args.client)).client;
      const fp = args.failPoint as Document;
      await client.db('admin').command(fp);
      ctx.failPoints.push([ctx.target.internal, String(fp.configureFailPoint)]);
      return;
    }
    case 'targetedFailPoint': {
      // Only meaningful with several mongoses; with one server it is a plain fail point.
      const fp = args.failPoint as Document;
      await ctx.target.internal.db('admin').command(fp);
      ctx.failPoints.push([ctx.target.internal, String(fp.configureFailPoint)]);
      return;
    }
    case 'createEntities':
      await ctx.entities.create(args.entities as Document[]);
      return;
    case 'assertCollectionExists':
    case 'assertCollectionNotExists': {
      const names = (await ctx.target.internal.db(String(args.databaseName)).listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
      const exists = names.includes(String(args.collectionName));
      if (exists !== (name === 'assertCollectionExists')) throw new MatchError(`${name}: ${args.databaseName}.${args.collectionName} exists=${exists}`);
      return;
    }
    case 'wait':
      await new Promise((r) => setTimeout(r, Number(args.ms)));
      return;
    default:
      throw new Error(`unsupported testRunner operation ${name}`);
  }
}

async function runOperation(op: Document, ctx: OperationContext): Promise<unknown> {
  const args = (op.arguments as Document | undefined) ?? {};
  if (op.object === 'testRunner') return testRunnerOperation(String(op.name), args, ctx);
  const entity = ctx.entities.get(String(op.object));
  const name = String(op.name);
  if (entity instanceof ClientEntity) return clientOperation(entity.client, name, args, ctx);
  if (entity instanceof Db) return databaseOperation(entity, name, args, ctx);
  if (entity instanceof Collection) return collectionOperation(entity, name, args, ctx);
  if (entity instanceof ChangeStream || entity instanceof FindCursor || entity instanceof AggregationCursor) return cursorOperation(entity, name);
  throw new Error(`unsupported operation ${name} on ${String(op.object)}`);
}

// ---------------------------------------------------------------------------------------------
// Expected errors

/** Numeric codes of the code names the test files assert (error_codes.yml). */
const CODE_NAMES: Record<string, number> = { DuplicateKey: 11000, InvalidOptions: 72, FailedToParse: 9, BadValue: 2, Location40324: 40324, UnrecognizedCommandField: 40415 };

function errorMessages(err: Document): string[] {
  const out = [String(err.message ?? '')];
  if (err.cause instanceof Error) out.push(err.cause.message);
  if (err instanceof MongoBulkWriteError) {
    for (const we of err.writeErrors ? (Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors]) : []) out.push(String((we as Document).errmsg ?? ''));
  }
  if (isDocument(err.errorResponse)) out.push(String(err.errorResponse.errmsg ?? ''));
  return out;
}

function errorCodes(err: Document): number[] {
  const out: number[] = [];
  if (typeof err.code === 'number') out.push(err.code);
  // MongoClient.bulkWrite: a top-level error is the cause of the bulk error ("error" in the spec).
  if (err.cause && typeof (err.cause as Document).code === 'number') out.push((err.cause as Document).code as number);
  if (err instanceof MongoBulkWriteError) {
    for (const we of Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors]) if (we) out.push(Number((we as Document).code));
    if (err.result?.getWriteConcernError?.()) out.push(Number(err.result.getWriteConcernError()?.code));
  }
  if (isDocument(err.errorResponse) && typeof err.errorResponse.code === 'number') out.push(err.errorResponse.code);
  return out;
}

function checkError(expected: Document, err: unknown, ctx: OperationContext): void {
  if (!(err instanceof Error)) throw new MatchError(`expected an error, got ${String(err)}`);
  const e = err as unknown as Document;
  const isServer = err instanceof MongoServerError;
  if (expected.isClientError !== undefined && expected.isClientError === isServer) {
    throw new MatchError(`expected ${expected.isClientError ? 'a client' : 'a server'} error, got ${err.name}: ${err.message}`);
  }
  if (expected.isTimeoutError === true && err.name !== 'MongoOperationTimeoutError') throw new MatchError(`expected a timeout error, got ${err.name}: ${err.message}`);
  if (expected.errorContains !== undefined) {
    const want = String(expected.errorContains).toLowerCase();
    if (!errorMessages(e).some((m) => m.toLowerCase().includes(want))) throw new MatchError(`expected the error to contain "${expected.errorContains}", got: ${err.message}`);
  }
  if (expected.errorCode !== undefined) {
    if (!isServer) throw new MatchError(`expected server error code ${expected.errorCode}, got ${err.name}: ${err.message}`);
    if (!errorCodes(e).includes(Number(expected.errorCode))) throw new MatchError(`expected error code ${expected.errorCode}, got ${errorCodes(e).join(',')}: ${err.message}`);
  }
  if (expected.errorCodeName !== undefined) {
    const want = String(expected.errorCodeName).toLowerCase();
    const names = [e.codeName, isDocument(e.errorResponse) ? e.errorResponse.codeName : undefined].filter(Boolean).map((n) => String(n).toLowerCase());
    const byCode = CODE_NAMES[String(expected.errorCodeName)];
    if (!names.includes(want) && !(byCode !== undefined && errorCodes(e).includes(byCode))) {
      throw new MatchError(`expected code name ${expected.errorCodeName}, got ${names.join(',') || errorCodes(e).join(',')}: ${err.message}`);
    }
  }
  // MongoClient.bulkWrite reports a top-level error as the bulk error's cause.
  const labelled = (x: unknown, l: string): boolean => x instanceof Error && typeof (x as Document).hasErrorLabel === 'function' && ((x as Document).hasErrorLabel as (l: string) => boolean).call(x, l);
  const hasLabel = (l: string): boolean => labelled(err, l) || labelled(e.cause, l);
  for (const l of (expected.errorLabelsContain as string[] | undefined) ?? []) if (!hasLabel(l)) throw new MatchError(`expected error label ${l}, got [${(e.errorLabels ?? []).join(', ')}]: ${err.message}`);
  for (const l of (expected.errorLabelsOmit as string[] | undefined) ?? []) if (hasLabel(l)) throw new MatchError(`expected no error label ${l}: ${err.message}`);
  if (expected.errorResponse !== undefined) {
    const response = (e.cause as Document | undefined)?.errorResponse ?? e.errorResponse ?? e;
    match(expected.errorResponse, response, 'errorResponse', true, ctx.entities);
  }
  if (expected.writeErrors !== undefined) {
    const got = e.writeErrors instanceof Map ? mapToDoc(e.writeErrors as Map<number, unknown>) : undefined;
    if (!got) throw new MatchError(`expected writeErrors, got ${err.name}: ${err.message}`);
    const want = expected.writeErrors as Document;
    if (Object.keys(got).sort().join() !== Object.keys(want).sort().join()) throw new MatchError(`expected write errors at ${Object.keys(want)}, got ${Object.keys(got)}`);
    for (const k of Object.keys(want)) match(want[k], got[k], `writeErrors.${k}`, true, ctx.entities);
  }
  if (expected.writeConcernErrors !== undefined) {
    const got = (e.writeConcernErrors as Document[] | undefined) ?? [];
    const want = expected.writeConcernErrors as Document[];
    if (got.length !== want.length) throw new MatchError(`expected ${want.length} write concern error(s), got ${got.length}`);
    want.forEach((w, i) => match(w, got[i], `writeConcernErrors[${i}]`, true, ctx.entities));
  }
  if (expected.expectResult !== undefined) {
    // insertedIds is optional for drivers (the format asserts it with $$unsetOrMatches); this
    // driver lists the ids of every insert it attempted, committed or not, so a failed bulk
    // write's result leaves it unset.
    const result = err instanceof MongoBulkWriteError ? { ...bulkResultDoc(err.result), insertedIds: undefined } : clientBulkResultDoc(e.partialResult as Document | undefined);
    match(expected.expectResult, result, 'error.result', true, ctx.entities);
  }
}

// ---------------------------------------------------------------------------------------------
// A test

async function executeTest(file: Document, t: Document, target: SpecTarget): Promise<void> {
  const internal = target.internal;
  for (const data of (file.initialData as Document[] | undefined) ?? []) {
    const db = internal.db(String(data.databaseName));
    const wc = { writeConcern: { w: 'majority' as const } };
    await db.dropCollection(String(data.collectionName), wc).catch(() => undefined);
    if (isDocument(data.createOptions) || (data.documents as Document[]).length === 0) {
      await db.createCollection(String(data.collectionName), { ...((data.createOptions as Document | undefined) ?? {}), ...wc });
    }
    if ((data.documents as Document[]).length) await db.collection(String(data.collectionName)).insertMany(data.documents as Document[], wc);
  }
  const entities = new EntityMap(target);
  const ctx: OperationContext = { entities, target, failPoints: [] };
  try {
    await entities.create((file.createEntities as Document[] | undefined) ?? []);
    for (const [i, op] of (t.operations as Document[]).entries()) {
      const where = `operation ${i} (${String(op.name)} on ${String(op.object)})`;
      let result: unknown;
      let error: unknown;
      try {
        result = await runOperation(op, ctx);
      } catch (err) {
        error = err;
      }
      try {
        if (op.ignoreResultAndError) continue;
        if (op.expectError) {
          if (error === undefined) throw new MatchError(`expected an error, got result ${safeShow(result)}`);
          checkError(op.expectError as Document, error, ctx);
          continue;
        }
        if (error !== undefined) throw error;
        if (op.expectResult !== undefined) matchResult(op.expectResult, result, String(op.name), entities);
        if (op.saveResultAsEntity) entities.set(String(op.saveResultAsEntity), result);
      } catch (err) {
        if (err instanceof Error) err.message = `${where}: ${err.message}`;
        throw err;
      }
    }
    for (const ee of (t.expectEvents as Document[] | undefined) ?? []) {
      if ((ee.eventType ?? 'command') !== 'command') throw new Error(`unsupported eventType ${ee.eventType}`);
      const client = entities.client(String(ee.client));
      checkEvents(ee, client.events, entities);
    }
  } finally {
    for (const [client, name] of ctx.failPoints) await client.db('admin').command({ configureFailPoint: name, mode: 'off' }).catch(() => undefined);
    await entities.close();
  }
  for (const data of (t.outcome as Document[] | undefined) ?? []) {
    const docs = await internal
      .db(String(data.databaseName))
      .collection(String(data.collectionName))
      .find({}, { sort: { _id: 1 }, readPreference: ReadPreference.primary, readConcern: new ReadConcern('local') })
      .toArray();
    matchExactly(data.documents, docs, `outcome ${data.databaseName}.${data.collectionName}`);
  }
}

function safeShow(v: unknown): string {
  try {
    return EJSON.stringify(v as Document, { relaxed: true });
  } catch {
    return String(v);
  }
}

function checkEvents(ee: Document, actual: ObservedEvent[], ctx: MatchContext): void {
  const expected = ee.events as Document[];
  const summary = (): string => actual.map((a) => `${a.type.replace('Event', '')}:${a.commandName}`).join(', ');
  if (ee.ignoreExtraEvents ? actual.length < expected.length : actual.length !== expected.length) {
    throw new MatchError(`expected ${expected.length} event(s) for ${ee.client}, got ${actual.length}: [${summary()}]`);
  }
  expected.forEach((exp, i) => {
    const [type] = Object.keys(exp);
    const want = exp[type] as Document;
    const got = actual[i];
    const where = `event ${i} of ${ee.client}`;
    if (got.type !== type) throw new MatchError(`${where}: expected ${type}, got ${got.type} (${got.commandName}); events: [${summary()}]`);
    if (want.commandName !== undefined && want.commandName !== got.commandName) throw new MatchError(`${where}: expected command ${want.commandName}, got ${got.commandName}; events: [${summary()}]`);
    if (want.databaseName !== undefined && want.databaseName !== got.databaseName) throw new MatchError(`${where}: expected database ${want.databaseName}, got ${got.databaseName}`);
    try {
      if (want.command !== undefined) match(want.command, got.command, 'command', true, ctx);
      if (want.reply !== undefined) match(want.reply, got.reply, 'reply', true, ctx);
    } catch (err) {
      if (err instanceof Error) err.message = `${where} (${got.commandName}): ${err.message}`;
      throw err;
    }
    for (const k of Object.keys(want)) {
      if (!['command', 'commandName', 'databaseName', 'reply', 'hasServiceId', 'hasServerConnectionId'].includes(k)) throw new Error(`unsupported event assertion ${k}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Suites

export interface ExpectedFailure {
  /** The test file's name without `.json`; `test` is a test's description, or `*` for all of them. */
  file: string;
  test: string;
  reason: string;
}

export interface SuiteOptions {
  /** Directory under ../shared/spec-tests. */
  dir: string;
  /** Only these files (basenames); all when absent. */
  files?: string[];
  expectedFailures: ExpectedFailure[];
  /** Passing tests the suite must reach on the default emulator profile (the issue's target). */
  minPassing?: number;
}

export function loadSpecFiles(dir: string, files?: string[]): { name: string; json: Document }[] {
  const full = join(SPEC_TESTS_DIR, dir);
  const names = (files ?? readdirSync(full).filter((f) => f.endsWith('.json'))).sort();
  return names.map((name) => ({ name, json: EJSON.parse(readFileSync(join(full, name), 'utf8'), { relaxed: true }) as Document }));
}

/**
 * A real server is shared by every suite (fail points are server-wide, database names are the
 * spec's), so suites against MONGODB_URI take turns: an exclusive lock file, freed on exit or
 * when its holder's process is gone. Each emulator suite has its own server and needs none.
 */
async function exclusiveServerLock(): Promise<() => void> {
  const path = `${tmpdir()}/migrator-spec-tests.lock`;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      const release = (): void => {
        try {
          if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
      process.once('exit', release);
      return release;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(path, 'utf8'));
        process.kill(holder, 0);
      } catch {
        if (holder) {
          try {
            unlinkSync(path); // stale: its process is gone
          } catch {
            // someone else removed it
          }
          continue;
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Registers one describe per file and one test per spec test (top-level await for the target). */
export async function registerSuite(options: SuiteOptions): Promise<void> {
  const release = process.env.MONGODB_URI ? await exclusiveServerLock() : () => undefined;
  const target = await openSpecTarget();
  after(async () => {
    await target.close();
    release();
  });
  // Emulator gaps apply to the emulator; a reason starting "driver:" (the driver, not the server,
  // departs from the spec) applies to real servers too.
  const xfails = options.expectedFailures.filter((x) => target.info.emulator || x.reason.startsWith('driver:'));
  const xfailFor = (file: string, testName: string): ExpectedFailure | undefined =>
    xfails.find((x) => x.file === file && (x.test === testName || x.test === '*'));
  const unexpectedPasses: string[] = [];
  const counts = { passed: 0, failed: 0, expectedFailures: 0, notApplicable: 0 };
  const files = loadSpecFiles(options.dir, options.files);
  for (const { name, json } of files) {
    const fileUnmet = await unmet(json.runOnRequirements, target);
    const schema = parseVersion(String(json.schemaVersion));
    describe(`${options.dir}/${basename(name, '.json')}`, () => {
      for (const t of json.tests as Document[]) {
        const testName = String(t.description);
        const xfail = xfailFor(basename(name, '.json'), testName);
        test(testName, { timeout: 20_000 }, async (ctx) => {
          const why = fileUnmet ?? (await unmet(t.runOnRequirements, target)) ?? (t.skipReason ? `skipReason: ${t.skipReason}` : undefined);
          if (why) {
            counts.notApplicable++;
            ctx.skip(`not applicable on ${target.info.label}: ${why}`);
            return;
          }
          if (schema[0] !== 1) throw new Error(`unsupported schemaVersion ${json.schemaVersion}`);
          if (!xfail) {
            try {
              await executeTest(json, t, target);
              counts.passed++;
            } catch (err) {
              counts.failed++;
              throw err;
            }
            return;
          }
          try {
            await executeTest(json, t, target);
          } catch (err) {
            counts.expectedFailures++;
            ctx.todo(`expected failure (${xfail.reason}): ${(err as Error).message.split('\n')[0]}`);
            return;
          }
          unexpectedPasses.push(`${basename(name, '.json')} › ${testName}`);
          counts.passed++;
        });
      }
    });
  }
  describe(`${options.dir}: summary`, () => {
    test('no expected failure passes (remove fixed ones from the list)', () => {
      if (unexpectedPasses.length) throw new Error(`these tests on the expected-failure list now pass:\n  ${unexpectedPasses.join('\n  ')}`);
    });
    test('every expected-failure entry names a test of these files', () => {
      const known = new Set(
        files.flatMap(({ name, json }) => {
          const file = basename(name, '.json');
          return [`${file}\0*`, ...(json.tests as Document[]).map((t) => `${file}\0${t.description}`)];
        }),
      );
      const stale = xfails.filter((x) => !known.has(`${x.file}\0${x.test}`));
      if (stale.length) throw new Error(`unknown expected-failure entries: ${stale.map((x) => `${x.file} › ${x.test}`).join('; ')}`);
    });
    test(`counts (${target.info.label})`, (ctx) => {
      ctx.diagnostic(
        `${options.dir}: ${counts.passed} passed, ${counts.expectedFailures} expected failures, ${counts.failed} failed, ${counts.notApplicable} not applicable`,
      );
      if (options.minPassing !== undefined && target.info.emulator && !process.env.SPEC_PROFILE && !options.files) {
        if (counts.passed < options.minPassing) throw new Error(`${counts.passed} passing, the target is ${options.minPassing}`);
      }
    });
  });
}
