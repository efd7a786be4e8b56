// Command dispatch: looks the command up, applies the failCommand failpoint, deduplicates retried
// writes, runs the handler and decorates the reply with `ok`, `$clusterTime` and `operationTime`.
//
// Invariant: `operationTime` is the cluster time right after the command ran, which for a write
// is the Timestamp of its last change event, so `startAtOperationTime: operationTime` replays it.
import { Binary, Double, Long } from 'bson';
import { canonicalKey, isPlainObject, type Doc } from './bson-values.js';
import { adminCommands } from './commands-admin.js';
import { catalogCommands } from './commands-catalog.js';
import { crudCommands, RETRYABLE_WRITES } from './commands-crud.js';
import type { CommandContext, ConnectionInfo, Handler, ServerState } from './command-context.js';
import { CommandError, ErrorCodes } from './errors.js';
import { checkCommandSupported, checkRetryableWrite, getEngineVersion, isDocumentDB, modifyChangeStreams } from './documentdb.js';
import { authCommands, authorize, checkUserWriteBlock, filterReply } from './auth.js';

const HANDLERS: Record<string, Handler> = { ...adminCommands, ...catalogCommands, ...crudCommands, ...authCommands, modifyChangeStreams, getEngineVersion };

/** Every command name the emulator answers (for reports and listCommands). */
export const SUPPORTED_COMMANDS = Object.keys(HANDLERS).sort();

const DUMMY_SIGNATURE = { hash: new Binary(Buffer.alloc(20), 0), keyId: Long.fromNumber(0) };
const RETRY_CACHE_LIMIT = 10_000;
/** MONGO_EMULATOR_TRACE=1 logs every command (and failures) to stderr. */
const TRACE = process.env.MONGO_EMULATOR_TRACE === '1';

export class Dispatcher {
  /** Replies of executed retryable writes, keyed by lsid + txnNumber. */
  private readonly retryCache = new Map<string, Doc>();

  constructor(private readonly server: ServerState) {}

  private retryKey(cmd: Doc, name: string): string | undefined {
    if (!RETRYABLE_WRITES.has(name) || cmd.txnNumber === undefined || !isPlainObject(cmd.lsid)) return undefined;
    return `${canonicalKey(cmd.lsid.id)}:${String(cmd.txnNumber)}`;
  }

  /** The reply to send, or undefined when the connection must be closed without replying. */
  async run(cmd: Doc, db: string, conn: ConnectionInfo): Promise<Doc | undefined> {
    const name = Object.keys(cmd)[0] ?? '';
    if (TRACE) process.stderr.write(`[mongo-emulator] ${db}.${name}\n`);
    let reply: Doc;
    try {
      reply = await this.execute(cmd, name, db, conn);
    } catch (err) {
      if (err === CLOSE_CONNECTION) return undefined;
      reply = err instanceof CommandError ? err.toReply() : new CommandError(1, `internal error: ${(err as Error).stack ?? String(err)}`).toReply();
    }
    if (TRACE && reply.ok === 0) process.stderr.write(`[mongo-emulator]   -> ${String(reply.code)} ${String(reply.errmsg)}\n`);
    return this.decorate(reply);
  }

  private async execute(cmd: Doc, name: string, db: string, conn: ConnectionInfo): Promise<Doc> {
    if ('$legacyQueryOn' in cmd) throw new CommandError(ErrorCodes.IllegalOperation, 'legacy OP_QUERY queries are not supported; use OP_MSG');
    const handler = Object.prototype.hasOwnProperty.call(HANDLERS, name) ? HANDLERS[name] : undefined;
    if (!handler || (name === 'setUserWriteBlockMode' && !this.server.profile.writeBlocking)) {
      throw new CommandError(ErrorCodes.CommandNotFound, `no such command: '${name}'`);
    }
    checkCommandSupported({ name, server: this.server });
    const ctx: CommandContext = { cmd, name, db, server: this.server, conn };
    // Authorization comes before failpoints and execution, as on the server.
    authorize(ctx);
    const isChangeStream =
      name === 'getMore' ? this.server.cursors.get(cmd.getMore)?.kind === 'changeStream' : name === 'aggregate' && Array.isArray(cmd.pipeline) && isPlainObject(cmd.pipeline[0]) && '$changeStream' in cmd.pipeline[0];
    const action = this.server.failpoints.check(name, conn.appName, isChangeStream);
    if (action) {
      if (action.blockTimeMS > 0) await new Promise((r) => setTimeout(r, action.blockTimeMS));
      if (action.closeConnection) {
        conn.close();
        throw CLOSE_CONNECTION;
      }
      if (action.error) throw action.error;
    }
    if (cmd.startTransaction === true || cmd.autocommit === false) {
      throw new CommandError(ErrorCodes.IllegalOperation, 'Transactions are not supported by the mongo emulator');
    }
    checkRetryableWrite(this.server.profile, cmd);
    const key = this.retryKey(cmd, name);
    const cached = key ? this.retryCache.get(key) : undefined;
    if (cached) return { ...cached };
    checkUserWriteBlock(ctx);
    const reply = filterReply(ctx, await handler(ctx));
    if (action?.writeConcernError) reply.writeConcernError = action.writeConcernError;
    if (key) {
      this.retryCache.set(key, reply);
      if (this.retryCache.size > RETRY_CACHE_LIMIT) this.retryCache.delete(this.retryCache.keys().next().value as string);
    }
    return reply;
  }

  private decorate(reply: Doc): Doc {
    const ts = this.server.engine.clock.current();
    const ok = reply.ok === undefined || (typeof reply.ok === 'number' ? reply.ok : 1);
    reply.ok = new Double(ok ? 1 : 0);
    // DocumentDB: whether replies carry operationTime / $clusterTime is undocumented, so the
    // documentdb profiles leave them out (the less convenient answer: no resume point from a ping).
    if (isDocumentDB(this.server.profile)) return reply;
    reply.$clusterTime = { clusterTime: ts, signature: DUMMY_SIGNATURE };
    reply.operationTime = ts;
    return reply;
  }
}

const CLOSE_CONNECTION = Symbol('close connection');
