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
import { CLOSE_CONNECTION, type CommandContext, type ConnectionInfo, type Handler, type RetryableWrite, type ServerState } from './command-context.js';
import { CommandError, ErrorCodes } from './errors.js';
import { checkCommandSupported, checkRetryableWrite, getEngineVersion, isDocumentDB, modifyChangeStreams } from './documentdb.js';
import { authCommands, authorize, checkUserWriteBlock, filterReply } from './auth.js';
import { versionAtLeast } from './profiles.js';

const HANDLERS: Record<string, Handler> = { ...adminCommands, ...catalogCommands, ...crudCommands, ...authCommands, modifyChangeStreams, getEngineVersion };

/** Every command name the emulator answers (for reports and listCommands). */
export const SUPPORTED_COMMANDS = Object.keys(HANDLERS).sort();

const LET_COMMANDS = new Set(['find', 'aggregate', 'update', 'delete', 'findAndModify', 'findandmodify']);
const DUMMY_SIGNATURE = { hash: new Binary(Buffer.alloc(20), 0), keyId: Long.fromNumber(0) };
const SESSION_LIMIT = 10_000;

/** A session's latest retryable write: its txnNumber and the results of its executed statements. */
interface SessionTxn {
  txnNumber: bigint;
  statements: Map<number, Doc>;
}
/** MONGO_EMULATOR_TRACE=1 logs every command (and failures) to stderr. */
const TRACE = process.env.MONGO_EMULATOR_TRACE === '1';

export class Dispatcher {
  /** Per session (lsid): the latest retryable write's executed statements. */
  private readonly sessions = new Map<string, SessionTxn>();

  constructor(private readonly server: ServerState) {}

  /**
   * The retryable-write state of a write command with lsid + txnNumber (outside a transaction):
   * statement ids are `stmtIds[i]`, or `stmtId` + i, or i. A newer txnNumber starts afresh; an
   * older one is refused with TransactionTooOld (225), as the server does.
   */
  private retryableWrite(cmd: Doc, name: string): RetryableWrite | undefined {
    if (!RETRYABLE_WRITES.has(name) || cmd.txnNumber === undefined || !isPlainObject(cmd.lsid) || cmd.autocommit !== undefined) return undefined;
    const key = canonicalKey(cmd.lsid.id);
    const txnNumber = BigInt(String(cmd.txnNumber));
    let txn = this.sessions.get(key);
    if (txn && txnNumber < txn.txnNumber) {
      throw new CommandError(
        225,
        `Retryable write with txnNumber ${txnNumber} is prohibited on session ${key} because a newer retryable write with txnNumber ${txn.txnNumber} has already started on this session.`,
      );
    }
    if (!txn || txnNumber > txn.txnNumber) {
      txn = { txnNumber, statements: new Map() };
      this.sessions.delete(key);
      this.sessions.set(key, txn);
      if (this.sessions.size > SESSION_LIMIT) this.sessions.delete(this.sessions.keys().next().value as string);
    }
    const stmtIds = Array.isArray(cmd.stmtIds) ? cmd.stmtIds.map((x) => Number(x)) : undefined;
    const base = cmd.stmtId === undefined ? 0 : Number(cmd.stmtId);
    const stmtId = (i: number): number => stmtIds?.[i] ?? base + i;
    const statements = txn.statements;
    return {
      executed: (i) => statements.get(stmtId(i)),
      record: (i, result) => void statements.set(stmtId(i), result),
    };
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
    const retryable = cmd.txnNumber !== undefined && RETRYABLE_WRITES.has(name) && cmd.autocommit === undefined;
    const ns = typeof cmd[name] === 'string' ? `${db}.${String(cmd[name])}` : undefined;
    const action = this.server.failpoints.check(name, conn.appName, ns, retryable);
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
    if (name === 'getMore') {
      const cursor = this.server.cursors.get(cmd.getMore);
      const after = cursor ? this.server.failpoints.checkGetMore(isChangeStream) : undefined;
      if (after?.closeConnection) {
        conn.close();
        throw CLOSE_CONNECTION;
      }
      if (after?.error) throw after.error;
    }
    // `let` is new in 5.0 on find, aggregate, update, delete and findAndModify
    // (https://www.mongodb.com/docs/manual/reference/command/aggregate/#command-fields); earlier
    // servers refuse the unknown field. Codes and texts are undocumented; these are the ones
    // MongoDB's spec tests (crud/*-let.json) expect from a 4.4 server.
    if (cmd.let !== undefined && !versionAtLeast(this.server.profile, 5) && LET_COMMANDS.has(name)) {
      if (name === 'find' || name === 'aggregate') throw new CommandError(ErrorCodes.FailedToParse, `Unrecognized field 'let'`);
      const field = name === 'update' || name === 'delete' ? `${name}.let` : 'let';
      throw new CommandError(40415, `BSON field '${field}' is an unknown field.`);
    }
    if (isPlainObject(cmd.lsid) && cmd.lsid.id !== undefined) {
      const sessions = this.server.localSessions;
      const key = canonicalKey(cmd.lsid.id);
      sessions.delete(key);
      sessions.set(key, { _id: { id: cmd.lsid.id, uid: new Binary(Buffer.alloc(32), 0) }, lastUse: new Date() });
      if (sessions.size > SESSION_LIMIT) sessions.delete(sessions.keys().next().value as string);
    }
    const writeCtx: CommandContext = { ...ctx, retryable: this.retryableWrite(cmd, name) };
    checkUserWriteBlock(writeCtx);
    const reply = filterReply(writeCtx, await handler(writeCtx));
    if (action?.writeConcernError) {
      reply.writeConcernError = action.writeConcernError;
      if (action.writeConcernLabels?.length) reply.errorLabels = action.writeConcernLabels;
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
