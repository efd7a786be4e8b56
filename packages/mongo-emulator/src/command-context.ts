// Types shared by command handlers, and the helpers several of them need (namespace resolution,
// option parsing, cursor replies).
import { Long } from 'bson';
import { isNumeric, toNumber, type Doc } from './bson-values.js';
import type { CursorRegistry } from './cursors.js';
import { DEFAULT_FIRST_BATCH, takeBatch, type QueryCursor } from './cursors.js';
import { CommandError, ErrorCodes, fail } from './errors.js';
import type { FailPoints } from './failpoints.js';
import type { EmulatorProfile } from './profiles.js';
import type { AuthState, ConnectionAuth } from './auth.js';
import type { Sharding } from './sharding.js';
import type { StorageEngine, Collection } from './storage-engine.js';
import { runViewPipeline } from './query.js';
import { Aggregator } from 'mingo';
import { toView } from './bson-values.js';

export interface ServerState {
  readonly engine: StorageEngine;
  readonly cursors: CursorRegistry;
  readonly failpoints: FailPoints;
  /** The documented server this emulator presents (profiles.ts). */
  readonly profile: EmulatorProfile;
  /** Sharded-target mode: the emulator presents a mongos (sharding.ts). */
  readonly sharding?: Sharding;
  readonly host: string;
  readonly port: number;
  readonly replSetName: string;
  readonly dbpath: string | undefined;
  readonly startedAt: Date;
  readonly electionId: unknown;
  openConnections: number;
  /** Access control (auth.ts); undefined when disabled. */
  readonly auth?: AuthState;
  /** setUserWriteBlockMode {global: true} is in force. */
  userWritesBlocked: boolean;
  /** Sessions (lsid) seen in commands, for $listLocalSessions: canonical id → {_id, lastUse}. */
  readonly localSessions: Map<string, Doc>;
}

export interface ConnectionInfo {
  readonly id: number;
  appName?: string;
  /** Users authenticated on this connection (auth.ts). */
  auth: ConnectionAuth;
  close(): void;
}

export interface CommandContext {
  readonly cmd: Doc;
  readonly name: string;
  readonly db: string;
  readonly server: ServerState;
  readonly conn: ConnectionInfo;
  /** Set for a retryable write (lsid + txnNumber outside a transaction). */
  readonly retryable?: RetryableWrite;
}

/** Thrown to close the client's connection without a reply (fail points). */
export const CLOSE_CONNECTION = Symbol('close connection');

/**
 * The statements of a retryable write already executed under this lsid + txnNumber: a retried
 * command returns their recorded results instead of executing them again, statement by statement,
 * as the server does (https://www.mongodb.com/docs/manual/core/retryable-writes/ — a retried
 * write is applied once).
 */
export interface RetryableWrite {
  executed(index: number): Doc | undefined;
  record(index: number, result: Doc): void;
}

/**
 * Runs statement `index` of a write command: a statement a previous attempt executed returns its
 * recorded result; otherwise the onPrimaryTransactionalWrite fail point may fail it (not
 * committed) or close the connection after it committed.
 */
export function retryableStatement(ctx: CommandContext, index: number, run: () => Doc): Doc {
  const r = ctx.retryable;
  if (!r) return run();
  const done = r.executed(index);
  if (done) return done;
  const fp = ctx.server.failpoints.checkTransactionalWrite();
  if (fp?.failBeforeCommitCode !== undefined) {
    if (fp.closeConnection) {
      ctx.conn.close();
      throw CLOSE_CONNECTION;
    }
    throw new CommandError(fp.failBeforeCommitCode, "Failing write for test via 'onPrimaryTransactionalWrite' failpoint");
  }
  const result = run();
  r.record(index, result);
  if (fp?.closeConnection) {
    ctx.conn.close();
    throw CLOSE_CONNECTION;
  }
  return result;
}

export type Handler = (ctx: CommandContext) => Doc | Promise<Doc>;

/** The collection name a command targets (`{find: "c"}` → "c"); fails on a non-string. */
export function targetName(ctx: CommandContext): string {
  const v = ctx.cmd[ctx.name];
  if (typeof v !== 'string' || v.length === 0) {
    fail(ErrorCodes.InvalidNamespace, `collection name has invalid type ${v === undefined ? 'missing' : typeof v}`);
  }
  return v;
}

export function optionalNumber(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isNumeric(v)) fail(ErrorCodes.TypeMismatch, `Field '${name}' should be a number`);
  return toNumber(v);
}

/** Documents of a collection or view in natural order (views evaluate their pipeline). */
export function readDocuments(engine: StorageEngine, db: string, name: string, depth = 0): Doc[] {
  const coll: Collection | undefined = engine.collection(db, name);
  if (!coll) return [];
  if (!coll.isView) return [...coll.docs.values()];
  if (depth > 20) fail(ErrorCodes.BadValue, 'View depth too deep or view cycle detected');
  const source = readDocuments(engine, db, String(coll.options.viewOn), depth + 1);
  const pipeline = Array.isArray(coll.options.pipeline) ? (coll.options.pipeline as Doc[]) : [];
  if (pipeline.length === 0) return source;
  return runViewPipeline(new Aggregator(pipeline.map((s) => toView(s) as Doc), {}), source);
}

/**
 * First batch of a query result: registers a cursor when more remains. `batchSize` 0 returns an
 * empty first batch with an open cursor, as the server does.
 */
export function cursorReply(ctx: CommandContext, ns: string, docs: Doc[], batchSize: number | undefined, singleBatch = false): Doc {
  const probe: QueryCursor = { kind: 'query', id: Long.ZERO, ns, docs, pos: 0, lastUsed: 0, killed: false };
  const firstBatch = takeBatch(probe, batchSize ?? DEFAULT_FIRST_BATCH);
  let id = Long.ZERO;
  if (!singleBatch && probe.pos < docs.length) id = ctx.server.cursors.openQuery(ns, docs, probe.pos).id;
  return { cursor: { firstBatch, id, ns }, ok: 1 };
}

/** `cursor: {batchSize}` of aggregate/listCollections/listIndexes. */
export function cursorBatchSize(ctx: CommandContext): number | undefined {
  const c = ctx.cmd.cursor;
  if (c && typeof c === 'object' && 'batchSize' in c) return optionalNumber((c as Doc).batchSize, 'batchSize');
  return undefined;
}
