import type { MongoClient } from 'mongodb';
import { errorMessage } from '../util/errors.js';
import { isTransientError } from './transient-errors.js';

export type Topology = 'replicaSet' | 'sharded' | 'standalone';

export interface ServerInfo {
  /** Version the server reports (DocumentDB reports the MongoDB API version it emulates). */
  version: string;
  flavor: 'mongodb' | 'documentdb' | 'ferretdb';
  /** DocumentDB's engine (patch) version, from getEngineVersion. */
  engineVersion?: string;
  topology: Topology;
  replicaSetName?: string;
  changeStreams: { usable: boolean; reason?: string };
}

/**
 * What the server is, from what it answers rather than its host name (SSH tunnels, PrivateLink
 * and custom DNS hide `docdb.amazonaws.com`): Amazon DocumentDB answers `getEngineVersion`
 * (`db.runCommand({getEngineVersion: 1})`, how AWS tells users to read the engine version:
 * https://docs.aws.amazon.com/documentdb/latest/developerguide/release-notes.html); MongoDB has
 * no such command. The host name remains a hint for a user not allowed to run it.
 */
export function detectFlavor(uri: string, buildInfo: Record<string, unknown>, engineVersion?: string): ServerInfo['flavor'] {
  if (buildInfo.ferretdb || buildInfo.ferretdbFeatures) return 'ferretdb';
  if (engineVersion !== undefined) return 'documentdb';
  if (/docdb(-elastic)?\.amazonaws\.com/i.test(uri) || /docdb/i.test(String(buildInfo.gitVersion ?? ''))) {
    return 'documentdb';
  }
  return 'mongodb';
}

/**
 * A server refusing retryable writes: Amazon DocumentDB before engine 8.0.2 ("Retryable writes are
 * not supported", https://docs.aws.amazon.com/documentdb/latest/developerguide/retryable-writes.html),
 * also MongoDB's "Transaction numbers are only allowed on …" (code 20) for servers without sessions.
 */
export function isRetryableWritesRefusal(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : '';
  return /Retryable writes are not supported|Transaction numbers are only allowed/i.test(msg);
}

/** DocumentDB's engine version (`getEngineVersion`), undefined on servers without the command. */
export async function documentDbEngineVersion(client: MongoClient): Promise<string | undefined> {
  try {
    const r = await client.db('admin').command({ getEngineVersion: 1 });
    return typeof r.engineVersion === 'string' ? r.engineVersion : undefined;
  } catch (err) {
    if (isTransientError(err)) throw err;
    return undefined;
  }
}

/** Reads what a server is: version, flavor, topology and whether a change stream can be opened. */
export async function describeServer(client: MongoClient, uri: string): Promise<ServerInfo> {
  const admin = client.db('admin');
  const buildInfo = await admin.command({ buildInfo: 1 });
  const hello = await admin.command({ hello: 1 }).catch(() => admin.command({ isMaster: 1 }));
  const topology: Topology = hello.msg === 'isdbgrid' ? 'sharded' : hello.setName ? 'replicaSet' : 'standalone';
  const engineVersion = buildInfo.ferretdb || buildInfo.ferretdbFeatures ? undefined : await documentDbEngineVersion(client);
  const info: ServerInfo = {
    version: String(buildInfo.version ?? 'unknown'),
    flavor: detectFlavor(uri, buildInfo, engineVersion),
    ...(engineVersion !== undefined ? { engineVersion } : {}),
    topology,
    replicaSetName: hello.setName,
    changeStreams: { usable: false },
  };
  info.changeStreams = await probeChangeStream(client, topology);
  return info;
}

/** Opens a deployment-wide change stream and reads one (possibly empty) batch. */
async function probeChangeStream(client: MongoClient, topology: Topology): Promise<ServerInfo['changeStreams']> {
  if (topology === 'standalone') {
    return { usable: false, reason: 'a standalone server has no change streams; it must be a replica set' };
  }
  // Primary read preference: DocumentDB 4.0 opens change streams on the primary only
  // (https://docs.aws.amazon.com/documentdb/latest/developerguide/change_streams.html, Limitations).
  const stream = client.watch([], { maxAwaitTimeMS: 1, batchSize: 1, readPreference: 'primary' });
  try {
    await stream.tryNext();
    return { usable: true };
  } catch (err) {
    // A failover or a dropped connection says nothing about change streams: the caller retries.
    if (isTransientError(err)) throw err;
    const msg = errorMessage(err);
    const reason = /modifyChangeStreams|not enabled/i.test(msg)
      ? 'change streams are not enabled (DocumentDB: run modifyChangeStreams, or pass --enable-change-streams)'
      : msg;
    return { usable: false, reason };
  } finally {
    await stream.close().catch(() => undefined);
  }
}

export interface DatabaseSummary {
  name: string;
  collections: { name: string; documents: number }[];
}

const SYSTEM_DBS = new Set(['admin', 'local', 'config']);

/** User databases with their collections and estimated document counts. */
export async function summarizeDatabases(client: MongoClient, skip: Set<string> = new Set()): Promise<DatabaseSummary[]> {
  const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
  const out: DatabaseSummary[] = [];
  for (const { name } of databases) {
    if (SYSTEM_DBS.has(name) || skip.has(name)) continue;
    const db = client.db(name);
    const colls = await db.listCollections({}, { nameOnly: true }).toArray();
    const collections = [];
    for (const c of colls) {
      if (c.name.startsWith('system.') || (c as { type?: string }).type === 'view') continue;
      const documents = await db.collection(c.name).estimatedDocumentCount();
      collections.push({ name: c.name, documents });
    }
    collections.sort((a, b) => a.name.localeCompare(b.name));
    out.push({ name, collections });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
