import { MongoClient, type MongoClientOptions } from 'mongodb';
import type { EndpointConfig } from '../config/schema.js';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { redactUri } from '../util/redact.js';

export type Role = 'source' | 'target' | 'state store';

export function clientOptions(e: EndpointConfig, timeoutMs: number, role?: Role): MongoClientOptions {
  const o: MongoClientOptions = {
    appName: 'migrator',
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
  };
  // DURABLE BEFORE CHECKPOINTED: apply saves a checkpoint only after the target acknowledged its
  // writes, so the acknowledgement must mean "survives a failover": majority (MongoDB < 5.0 and
  // some services default to w:1, which a rollback can undo after the checkpoint moved past it).
  // The same for the state store's checkpoints, leases and phase. A `w` in the URI is respected.
  if ((role === 'target' || role === 'state store') && !uriSetsWriteConcern(e.uri)) o.writeConcern = { w: 'majority' };
  if (e.tls !== undefined) o.tls = e.tls;
  if (e.tlsCAFile) {
    o.tls = true;
    o.tlsCAFile = e.tlsCAFile;
  }
  if (e.tlsAllowInvalidHostnames !== undefined) o.tlsAllowInvalidHostnames = e.tlsAllowInvalidHostnames;
  if (e.retryWrites !== undefined) o.retryWrites = e.retryWrites;
  return o;
}

function uriSetsWriteConcern(uri: string): boolean {
  const q = uri.indexOf('?');
  return q >= 0 && /(^|&)(w|journal|wtimeoutMS)=/i.test(uri.slice(q + 1));
}

/** Classifies a driver failure to connect into one message a user can act on (no secrets). */
export function connectionFailure(role: Role, e: EndpointConfig, err: unknown, timeoutMs: number): MigratorError {
  const msg = errorMessage(err);
  const where = redactUri(e.uri);
  let problem = msg;
  let hint = `Check that the ${role} is reachable from here and the connection string is right.`;
  if (/auth|Authentication failed|SCRAM/i.test(msg)) {
    problem = 'authentication failed';
    hint = `Check the user name, password and authSource in the ${role} connection string.`;
  } else if (/Server selection timed out|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|timed out/i.test(msg)) {
    problem = `no answer within ${Math.round(timeoutMs / 1000)}s (${msg.split('\n')[0]})`;
  } else if (/certificate|SSL|TLS/i.test(msg)) {
    problem = `TLS failed (${msg})`;
    hint = `Check --${role === 'state store' ? 'state' : role}-tls-ca-file (DocumentDB: the RDS global-bundle.pem).`;
  }
  return new MigratorError(ExitCode.CONNECTION_FAILED, `Cannot connect to the ${role} at ${where}: ${problem}.`, {
    hint,
    cause: err,
  });
}

/** Connects and pings; throws a CONNECTION_FAILED MigratorError with a clear message. */
export async function connect(role: Role, e: EndpointConfig, timeoutMs: number): Promise<MongoClient> {
  let client: MongoClient;
  try {
    client = new MongoClient(e.uri, clientOptions(e, timeoutMs, role));
  } catch (err) {
    // The driver rejects malformed URIs and options synchronously.
    throw new MigratorError(
      ExitCode.USAGE,
      `Invalid ${role} connection string ${redactUri(e.uri)}: ${errorMessage(err)}.`,
      {
        hint: `Fix --${role === 'state store' ? 'state' : role}-uri: expected mongodb://HOST[:PORT][/?OPTIONS] or mongodb+srv://HOST, with a user name and password percent-encoded.`,
        cause: err,
      },
    );
  }
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
    return client;
  } catch (err) {
    await client.close().catch(() => undefined);
    throw connectionFailure(role, e, err, timeoutMs);
  }
}
