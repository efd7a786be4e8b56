// Amazon DocumentDB 4.0 / 5.0 behaviour of the `documentdb-*` profiles (profiles.ts). Each rule
// cites the AWS page it comes from; where AWS is silent the profile takes the LESS convenient
// answer ("undocumented" in the comment), so code that passes here is right on the real service.
//
// Main sources:
// - Change streams: https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html
// - Supported APIs: https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html
// - Functional differences: https://docs.aws.amazon.com/documentdb/latest/developerguide/functional-differences.html
// - Retryable writes (8.0.2+ only): https://docs.aws.amazon.com/documentdb/latest/developerguide/retryable-writes.html
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isPlainObject, type Doc } from './bson-values.js';
import type { CommandContext, Handler } from './command-context.js';
import { CommandError, ErrorCodes, fail } from './errors.js';
import type { EmulatorProfile } from './profiles.js';
import type { StorageEngine } from './storage-engine.js';

export const isDocumentDB = (p: EmulatorProfile): boolean => p.flavor === 'documentdb';

/** DocumentDB's code for a change stream whose resume point left the change stream log (the seed's scripts handle it). */
export const DOCDB_HISTORY_LOST = 136;
/** DocumentDB's answer to a resume token it cannot read: FailedToParse (9), not MongoDB's InvalidResumeToken (260). */
export const DOCDB_INVALID_TOKEN = ErrorCodes.FailedToParse;
/**
 * Retryable writes before engine 8.0.2 (both profiles): AWS documents only that `retryWrites=false`
 * is required; the error code and text are those DocumentDB is reported to answer (undocumented).
 */
export const DOCDB_RETRYABLE_WRITES_UNSUPPORTED = 301;

/**
 * Commands AWS does not list for DocumentDB 4.0/5.0 (mongo-apis.html) that a migrator may try:
 * answered like an unknown command. setUserWriteBlockMode: absent from the list, so writes cannot
 * be blocked on the server (the operator stops them: `cutover --writes-stopped`).
 */
const UNSUPPORTED_COMMANDS = new Set(['setUserWriteBlockMode']);

export function checkCommandSupported(ctx: { name: string; server: { profile: EmulatorProfile } }): void {
  if (isDocumentDB(ctx.server.profile) && UNSUPPORTED_COMMANDS.has(ctx.name)) {
    fail(ErrorCodes.CommandNotFound, `no such command: '${ctx.name}'`);
  }
}

/**
 * Any command carrying `txnNumber` outside a transaction is a retryable write: refused, as on
 * DocumentDB before 8.0.2 ("retryable writes are not supported; set retryWrites=false").
 */
export function checkRetryableWrite(profile: EmulatorProfile, cmd: Doc): void {
  if (!isDocumentDB(profile)) return;
  if (cmd.txnNumber !== undefined && cmd.autocommit === undefined) {
    fail(DOCDB_RETRYABLE_WRITES_UNSUPPORTED, 'Retryable writes are not supported');
  }
}

// ---------------------------------------------------------------------------------------------
// modifyChangeStreams: change streams are off until enabled for a collection, a database
// (collection "") or the whole cluster (database "" and collection "") — change_streams.html,
// "Enabling change streams".

// The switches are cluster settings: they survive a restart (kept beside the data with --dbpath).
const enabledByEngine = new WeakMap<StorageEngine, Set<string>>();
const SWITCHES_FILE = 'documentdb-change-streams.json';
const enabledSet = (server: { engine: StorageEngine; dbpath: string | undefined }): Set<string> => {
  let s = enabledByEngine.get(server.engine);
  if (!s) {
    const file = server.dbpath ? join(server.dbpath, SWITCHES_FILE) : undefined;
    s = new Set(file && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as string[]) : []);
    enabledByEngine.set(server.engine, s);
  }
  return s;
};
const saveSwitches = (server: { engine: StorageEngine; dbpath: string | undefined }): void => {
  if (server.dbpath) writeFileSync(join(server.dbpath, SWITCHES_FILE), JSON.stringify([...enabledSet(server)]));
};
const nsKey = (db: string, coll: string): string => `${db}\u0000${coll}`;

export function changeStreamsEnabled(server: { engine: StorageEngine; dbpath: string | undefined }, db: string, coll: string): boolean {
  const s = enabledSet(server);
  return s.has(nsKey('', '')) || s.has(nsKey(db, '')) || (coll !== '' && s.has(nsKey(db, coll)));
}

export const modifyChangeStreams: Handler = (ctx) => {
  if (!isDocumentDB(ctx.server.profile)) fail(ErrorCodes.CommandNotFound, "no such command: 'modifyChangeStreams'");
  if (ctx.db !== 'admin') fail(ErrorCodes.Unauthorized, 'modifyChangeStreams may only be run against the admin database.');
  const { database, collection, enable } = ctx.cmd;
  if (typeof database !== 'string' || typeof collection !== 'string' || typeof enable !== 'boolean') {
    fail(ErrorCodes.BadValue, "modifyChangeStreams needs 'database' (string), 'collection' (string) and 'enable' (boolean)");
  }
  if (database === '' && collection !== '') fail(ErrorCodes.BadValue, 'a collection needs its database');
  const s = enabledSet(ctx.server);
  if (enable) s.add(nsKey(database, collection));
  else s.delete(nsKey(database, collection));
  saveSwitches(ctx.server);
  return { ok: 1 };
};

/**
 * `db.runCommand({getEngineVersion: 1})` → `{engineVersion: "…"}`: how AWS tells users to read
 * the engine patch version (release-notes.html); MongoDB has no such command, so it identifies
 * DocumentDB whatever the host name (SSH tunnel, PrivateLink).
 */
export const getEngineVersion: Handler = (ctx) => {
  if (!isDocumentDB(ctx.server.profile)) fail(ErrorCodes.CommandNotFound, "no such command: 'getEngineVersion'");
  return { engineVersion: ctx.server.profile.name === 'documentdb-4.0' ? '2.0.10' : '3.0.5100', ok: 1 };
};

// ---------------------------------------------------------------------------------------------
// Change streams

/**
 * Stages AWS lists for change stream pipelines: "$match, $project, $redact, and $addFields and
 * $replaceRoot" (change_streams.html, Supported operations). Nothing else ($set, $unset,
 * $replaceWith, $changeStreamSplitLargeEvent, …) is accepted.
 */
const DOCDB_STAGES = new Set(['$match', '$project', '$redact', '$addFields', '$replaceRoot']);
/**
 * $changeStream options: full document lookup for updates ('updateLookup'), resuming from a
 * resume token (`resumeAfter`) and from a timestamp (`startAtOperationTime`, 4.0+). `startAfter`
 * and `showExpandedEvents` are not listed, so refused; fullDocumentBeforeChange is not listed for
 * 4.0 or 5.0 either (undocumented there: refused, the less convenient answer).
 */
const DOCDB_OPTIONS = new Set(['resumeAfter', 'startAtOperationTime', 'fullDocument', 'allChangesForCluster']);

export function checkChangeStream(ctx: CommandContext, spec: Doc, stages: Doc[], target: unknown): void {
  const { profile } = ctx.server;
  if (!isDocumentDB(profile)) return;
  for (const k of Object.keys(spec)) {
    if (!DOCDB_OPTIONS.has(k)) fail(ErrorCodes.FailedToParse, `BSON field '$changeStream.${k}' is an unknown field.`);
  }
  if (spec.fullDocument !== undefined && spec.fullDocument !== 'default' && spec.fullDocument !== 'updateLookup') {
    fail(ErrorCodes.BadValue, `unsupported fullDocument option: '${String(spec.fullDocument)}'`);
  }
  for (const s of stages) {
    const name = Object.keys(s)[0];
    if (!DOCDB_STAGES.has(name)) fail(ErrorCodes.IllegalOperation, `${name} is not permitted in a $changeStream pipeline`);
  }
  // "On Amazon DocumentDB 3.6 and 4.0, change streams can only be opened from a connection to the
  // primary instance … you must specify a primary read preference" (change_streams.html,
  // Limitations). The error's code and text are undocumented.
  if (profile.name === 'documentdb-4.0') {
    const rp = ctx.cmd.$readPreference;
    const mode = isPlainObject(rp) ? rp.mode : undefined;
    if (mode !== undefined && mode !== 'primary') {
      fail(ErrorCodes.IllegalOperation, `Change streams can only be opened with read preference primary on this engine version (got '${String(mode)}')`);
    }
  }
  const db = spec.allChangesForCluster === true ? '' : ctx.db;
  const coll = typeof target === 'string' ? target : '';
  if (!changeStreamsEnabled(ctx.server, db, coll)) {
    // The text users report from DocumentDB; the code is undocumented.
    fail(ErrorCodes.OperationFailed, 'modifyChangeStreams has not been run for this collection/database/cluster');
  }
}

/**
 * DocumentDB resume tokens are its own opaque format (`{_data: "01…"}`), not MongoDB's KeyString
 * hex: nothing about them is documented, in particular not that a cluster time can be read from
 * them. The emulator scrambles its internal position into a token that decodes to nothing.
 */
const MASK = 'A5C3E1F7B2D49680';
function scramble(hex: string): string {
  let out = '';
  for (let i = 0; i < hex.length; i++) out += (parseInt(hex[i], 16) ^ parseInt(MASK[i % MASK.length], 16)).toString(16);
  return out;
}
export const toDocdbToken = (internal: string): string => `01${scramble(internal)}`;
export function fromDocdbToken(data: unknown): string | undefined {
  if (typeof data !== 'string' || !/^01[0-9a-f]+$/.test(data)) return undefined;
  return scramble(data.slice(2)).toUpperCase();
}

/** Rewrites `resumeAfter` from DocumentDB's token format into the internal one; 9 for one it cannot read. */
export function internalSpec(profile: EmulatorProfile, spec: Doc): Doc {
  if (!isDocumentDB(profile) || spec.resumeAfter === undefined) return spec;
  const data = isPlainObject(spec.resumeAfter) ? spec.resumeAfter._data : undefined;
  const internal = fromDocdbToken(data);
  if (!internal) fail(DOCDB_INVALID_TOKEN, 'Unable to parse resume token');
  return { ...spec, resumeAfter: { _data: internal } };
}

/** Events as DocumentDB shows them: its token format in `_id`. */
export function externalEvents(profile: EmulatorProfile, events: Doc[]): Doc[] {
  if (!isDocumentDB(profile)) return events;
  return events.map((e) => (isPlainObject(e._id) && typeof e._id._data === 'string' ? { ...e, _id: { _data: toDocdbToken(e._id._data) } } : e));
}

/** Server errors of a change stream as DocumentDB numbers them (136 history lost; 9 bad token). */
export function docdbStreamError(profile: EmulatorProfile, err: unknown): unknown {
  if (!isDocumentDB(profile) || !(err instanceof CommandError)) return err;
  if (err.code === ErrorCodes.ChangeStreamHistoryLost) {
    return new CommandError(DOCDB_HISTORY_LOST, 'Resume of change stream was not possible, as the resume point may no longer be in the change stream log.');
  }
  if (err.code === ErrorCodes.InvalidResumeToken) return new CommandError(DOCDB_INVALID_TOKEN, `Unable to parse resume token: ${err.message}`);
  return err;
}

// ---------------------------------------------------------------------------------------------
// Collections and indexes AWS lists as unsupported (mongo-apis.html, "Indexes and index
// properties" and "Administrative Commands"; functional-differences.html).

const COLLECTION_OPTIONS_REFUSED = ['capped', 'size', 'max', 'storageEngine', 'collation', 'timeseries', 'clusteredIndex', 'changeStreamPreAndPostImages', 'viewOn'];

export function checkCreateCollection(profile: EmulatorProfile, options: Doc): void {
  if (!isDocumentDB(profile)) return;
  for (const k of COLLECTION_OPTIONS_REFUSED) {
    if (options[k] !== undefined && options[k] !== false) {
      fail(ErrorCodes.InvalidOptions, `option '${k}' is not supported${k === 'capped' ? ': capped collections are not supported' : ''}`);
    }
  }
}

/** Index options refused: collation, storageEngine, wildcardProjection, hidden; partial indexes before 5.0. */
const INDEX_OPTIONS_REFUSED = ['collation', 'storageEngine', 'wildcardProjection', 'hidden', 'bits', 'min', 'max', 'bucketSize'];

export function checkIndexSpec(profile: EmulatorProfile, spec: Doc): void {
  if (!isDocumentDB(profile)) return;
  for (const k of INDEX_OPTIONS_REFUSED) {
    if (spec[k] !== undefined) fail(ErrorCodes.InvalidOptions, `index option '${k}' is not supported`);
  }
  if (spec.partialFilterExpression !== undefined && profile.name === 'documentdb-4.0') {
    fail(ErrorCodes.InvalidOptions, "index option 'partialFilterExpression' is not supported");
  }
  const key = isPlainObject(spec.key) ? spec.key : {};
  for (const [field, type] of Object.entries(key)) {
    if (field === '$**' || field.endsWith('.$**')) fail(ErrorCodes.CannotCreateIndex, 'wildcard indexes are not supported');
    if (typeof type !== 'string') continue;
    // 2dsphere and hashed: supported (4.0, 5.0); text: 5.0 only; 2d and geoHaystack: never.
    if (type === '2d' || type === 'geoHaystack') fail(ErrorCodes.CannotCreateIndex, `index type '${type}' is not supported`);
    if (type === 'text' && profile.name === 'documentdb-4.0') fail(ErrorCodes.CannotCreateIndex, "index type 'text' is not supported");
  }
}
