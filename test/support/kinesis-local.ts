/**
 * Test harness: runs kinesis-local (kinesis-mock compiled to JS, devDependency) as a child
 * process on free loopback ports and hands out a product Kinesis client (HTTP/1.1) for it.
 *
 *   const kl = await startKinesisLocal();
 *   try { const s = kl.uniqueStreamName(); await kl.createStream(s, 4); ... } finally { await kl.stop(); }
 *
 * The process (ports, env, watchdog, startup wait) is the product's launcher,
 * src/transport/kinesis-local-launcher.ts, shared with the embedded transport.
 */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { tmpdir } from 'node:os';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { createStreamAndWait, launchKinesisLocal } from '../../src/transport/kinesis-local-launcher.js';

export const KINESIS_LOCAL_REGION = 'us-east-1';

export interface StartKinesisLocalOptions {
  /** Plain-HTTP port; default: a free port. */
  port?: number;
  /** Enables persistence (SHOULD_PERSIST_DATA) into this directory (PERSIST_PATH); loaded again on start. */
  persistDir?: string;
  /** PERSIST_INTERVAL in ms (default 5000 in kinesis-local). Only with persistDir. */
  persistIntervalMs?: number;
  /** SHARD_LIMIT (default 50 in kinesis-local). */
  shardLimit?: number;
  /** Duration of CREATING/UPDATING/DELETING states for all async operations; default 10 ms. */
  operationDurationMs?: number;
  /** Extra kinesis-local env vars (override everything else). */
  env?: Record<string, string>;
  /** Max wait for the server to answer ListStreams; default 30000 ms. */
  startTimeoutMs?: number;
}

export interface KinesisLocal {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  tlsPort: number;
  region: string;
  /** Product client (createKinesisClient, httpHandler 'http1'). Destroyed by stop(). */
  client: KinesisClient;
  pid: number;
  /** Spawn → first successful ListStreams, in ms. */
  startupMs: number;
  /** Creates the stream and waits until it is ACTIVE. */
  createStream(name: string, shardCount: number): Promise<void>;
  /** A stream name unique within this process (valid Kinesis name, ≤ 128 chars). */
  uniqueStreamName(prefix?: string): string;
  /** Resident set size of the child process in bytes (Linux /proc), undefined elsewhere. */
  rssBytes(): Promise<number | undefined>;
  /** Last lines of the child's stderr + stdout. */
  outputTail(): string;
  /**
   * Stops the child and waits for its exit. Idempotent. Default SIGTERM (graceful: kinesis-local
   * then writes its persistence file one last time; SIGKILL follows after 5 s). `signal: 'SIGKILL'`
   * simulates a crash (nothing is persisted since the last PERSIST_INTERVAL tick).
   */
  stop(opts?: { signal?: 'SIGTERM' | 'SIGKILL' }): Promise<void>;
}

let streamCounter = 0;

export async function startKinesisLocal(opts: StartKinesisLocalOptions = {}): Promise<KinesisLocal> {
  const persistDir = opts.persistDir === undefined ? undefined : resolvePath(opts.persistDir);
  const engine = await launchKinesisLocal({
    region: KINESIS_LOCAL_REGION,
    cwd: tmpdir(),
    port: opts.port,
    operationDurationMs: opts.operationDurationMs,
    startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    env: {
      ...(persistDir !== undefined
        ? {
            SHOULD_PERSIST_DATA: 'true',
            PERSIST_PATH: persistDir,
            LOAD_DATA_IF_EXISTS: 'true',
            ...(opts.persistIntervalMs !== undefined ? { PERSIST_INTERVAL: `${opts.persistIntervalMs}ms` } : {}),
          }
        : {}),
      ...(opts.shardLimit !== undefined ? { SHARD_LIMIT: String(opts.shardLimit) } : {}),
      ...opts.env,
    },
  });
  const { client, pid } = engine;

  const uniqueStreamName = (prefix = 'test'): string => {
    const safe = prefix.replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, 80);
    return `${safe}-${process.pid}-${Date.now().toString(36)}-${++streamCounter}`;
  };

  const rssBytes = async (): Promise<number | undefined> => {
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
      return m?.[1] !== undefined ? Number(m[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  };

  return {
    endpoint: engine.endpoint,
    port: engine.port,
    tlsPort: engine.tlsPort,
    region: KINESIS_LOCAL_REGION,
    client,
    pid,
    startupMs: engine.startupMs,
    createStream: (name, shardCount) => createStreamAndWait(client, name, shardCount),
    uniqueStreamName,
    rssBytes,
    outputTail: () => engine.outputTail(),
    stop: (stopOpts) => engine.stop({ signal: stopOpts?.signal }),
  };
}
