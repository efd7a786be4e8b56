// TCP server speaking the wire protocol: one Dispatcher for all connections; per connection,
// messages are handled strictly in arrival order (a reply is written before the next message
// of that connection is processed), as a real mongod does for a non-pipelining client.
import { createServer, type Server, type Socket } from 'node:net';
import { ObjectId } from 'bson';
import { Dispatcher } from './command-dispatch.js';
import type { ConnectionInfo, ServerState } from './command-context.js';
import { CursorRegistry } from './cursors.js';
import { FailPoints } from './failpoints.js';
import { StorageEngine } from './storage-engine.js';
import type { EmulatorProfile } from './profiles.js';
import { AuthState, type AuthOptions } from './auth.js';
import { Sharding } from './sharding.js';
import type { Doc } from './bson-values.js';
import {
  MessageReader,
  OP_MSG,
  OP_QUERY,
  encodeOpMsgReply,
  encodeOpReply,
  parseOpMsg,
  parseOpQuery,
  type RawMessage,
} from './wire-protocol.js';

export interface EmulatorServerOptions {
  port: number;
  host: string;
  dbpath?: string;
  historyLimit: number;
  replSetName: string;
  profile: EmulatorProfile;
  auth?: AuthOptions;
  /** Present a mongos with these collections sharded (`{'db.coll': {field: 1}}`); see sharding.ts. */
  shardKeys?: Record<string, Doc>;
  /** Seconds between TTL monitor passes (the server's ttlMonitorSleepSecs, default 60). */
  ttlMonitorSleepSecs?: number;
}

export class EmulatorServer {
  private readonly tcp: Server;
  private readonly sockets = new Set<Socket>();
  private state!: ServerState;
  private dispatcher!: Dispatcher;
  private nextConnectionId = 1;
  private ttlTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: EmulatorServerOptions) {
    this.tcp = createServer((socket) => this.onConnection(socket));
  }

  get port(): number {
    const addr = this.tcp.address();
    return typeof addr === 'object' && addr ? addr.port : this.options.port;
  }

  async start(): Promise<void> {
    const engine = new StorageEngine({ dbpath: this.options.dbpath, historyLimit: this.options.historyLimit });
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen(this.options.port, this.options.host, () => {
        this.tcp.off('error', reject);
        resolve();
      });
    });
    let sharding: Sharding | undefined;
    if (this.options.shardKeys) {
      sharding = new Sharding(engine, this.options.profile);
      for (const [ns, key] of Object.entries(this.options.shardKeys)) sharding.shardCollection(ns, key, false);
    }
    this.state = {
      engine,
      sharding,
      cursors: new CursorRegistry(),
      failpoints: new FailPoints(),
      profile: this.options.profile,
      host: `${this.options.host}:${this.port}`,
      port: this.port,
      replSetName: this.options.replSetName,
      dbpath: this.options.dbpath,
      startedAt: new Date(),
      electionId: new ObjectId('7fffffff0000000000000001'),
      openConnections: 0,
      auth: this.options.auth ? new AuthState(this.options.auth) : undefined,
      userWritesBlocked: false,
      localSessions: new Map(),
    };
    this.dispatcher = new Dispatcher(this.state);
    // The TTL monitor: a background pass every ttlMonitorSleepSecs (60 by default, as the
    // server's: https://www.mongodb.com/docs/manual/core/index-ttl/#timing-of-the-delete-operation).
    const every = (this.options.ttlMonitorSleepSecs ?? 60) * 1000;
    this.ttlTimer = setInterval(() => {
      try {
        engine.expireTtl(Date.now());
      } catch {
        // A pass that fails (e.g. journal closed during stop) is retried by the next one.
      }
    }, every);
    this.ttlTimer.unref();
  }

  get engine(): StorageEngine {
    return this.state.engine;
  }

  private onConnection(socket: Socket): void {
    socket.setNoDelay(true);
    this.sockets.add(socket);
    this.state.openConnections++;
    const reader = new MessageReader();
    const conn: ConnectionInfo = { id: this.nextConnectionId++, auth: { users: [] }, close: () => socket.destroy() };
    let queue: Promise<void> = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      let messages: RawMessage[];
      try {
        messages = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const msg of messages) queue = queue.then(() => this.handle(socket, conn, msg));
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.state.openConnections--;
    });
  }

  private async handle(socket: Socket, conn: ConnectionInfo, msg: RawMessage): Promise<void> {
    if (socket.destroyed) return;
    if (msg.opCode !== OP_MSG && msg.opCode !== OP_QUERY) {
      socket.destroy(); // OP_COMPRESSED is never negotiated; other legacy opcodes are unsupported
      return;
    }
    let parsed;
    try {
      parsed = msg.opCode === OP_MSG ? parseOpMsg(msg.body) : parseOpQuery(msg.body);
    } catch {
      socket.destroy();
      return;
    }
    const reply = await this.dispatcher.run(parsed.command, parsed.db, conn);
    if (!reply || parsed.noReply || socket.destroyed) return;
    socket.write(parsed.legacy ? encodeOpReply(reply, msg.requestId) : encodeOpMsgReply(reply, msg.requestId));
  }

  async stop(): Promise<void> {
    clearInterval(this.ttlTimer);
    this.state.cursors.closeAll();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    this.state.engine.close();
  }
}
