/**
 * Test harness: runs kinesis-local (kinesis-mock compiled to JS, devDependency) as a child
 * process on free loopback ports and hands out a product Kinesis client (HTTP/1.1) for it.
 *
 *   const kl = await startKinesisLocal();
 *   try { const s = kl.uniqueStreamName(); await kl.createStream(s, 4); ... } finally { await kl.stop(); }
 *
 * Facts about kinesis-local 0.6.2 this harness relies on:
 * - It always opens a TLS port besides the plain one, so both get a free port.
 * - The TLS certificate path defaults to `server.json` relative to the *working directory*; started
 *   from anywhere but its package dir it dies with `ENOENT ... server.json`. We pass
 *   KINESIS_MOCK_CERT_PATH explicitly.
 * - Requests must carry a SigV4 Authorization header (signature not verified).
 * - Its own WARN logs and cats-effect "CPU starving" warnings go to stderr.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  ListStreamsCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../src/transport/kinesis-client.js';
import { freePort } from './free-port.js';

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

function kinesisLocalMain(): { mainJs: string; certPath: string } {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve('kinesis-local/package.json');
  } catch {
    throw new Error('kinesis-local is not installed (it is a devDependency of migrator): run `npm ci` in the repository root');
  }
  const dir = dirname(pkgJson);
  const mainJs = join(dir, 'main.js');
  const certPath = join(dir, 'server.json');
  for (const f of [mainJs, certPath]) {
    if (!existsSync(f)) throw new Error(`kinesis-local install is incomplete (${f} missing): run \`npm ci\``);
  }
  return { mainJs, certPath };
}

class OutputTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max = 60) {}
  push(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') this.lines.push(p);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  toString(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }
}

let streamCounter = 0;

export async function startKinesisLocal(opts: StartKinesisLocalOptions = {}): Promise<KinesisLocal> {
  // A free port can be taken by someone else between freePort() and the child's bind: retry then.
  const attempts = opts.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      lastError = err;
      if (!(err instanceof Error && /EADDRINUSE/.test(err.message))) throw err;
    }
  }
  throw lastError;
}

async function startOnce(opts: StartKinesisLocalOptions): Promise<KinesisLocal> {
  const { mainJs, certPath } = kinesisLocalMain();
  const port = opts.port ?? (await freePort());
  let tlsPort = await freePort();
  while (tlsPort === port) tlsPort = await freePort();
  const opMs = `${opts.operationDurationMs ?? 10}ms`;
  const persistDir = opts.persistDir === undefined ? undefined : resolvePath(opts.persistDir);

  const env: Record<string, string> = {
    // Not inheriting the parent environment: stray INITIALIZE_STREAMS / AWS_* must not leak in.
    PATH: process.env.PATH ?? '',
    KINESIS_MOCK_PLAIN_PORT: String(port),
    KINESIS_MOCK_TLS_PORT: String(tlsPort),
    KINESIS_MOCK_CERT_PATH: certPath,
    AWS_REGION: KINESIS_LOCAL_REGION,
    LOG_LEVEL: 'WARN',
    ROOT_LOG_LEVEL: 'ERROR',
    CREATE_STREAM_DURATION: opMs,
    DELETE_STREAM_DURATION: opMs,
    REGISTER_STREAM_CONSUMER_DURATION: opMs,
    DEREGISTER_STREAM_CONSUMER_DURATION: opMs,
    START_STREAM_ENCRYPTION_DURATION: opMs,
    STOP_STREAM_ENCRYPTION_DURATION: opMs,
    MERGE_SHARDS_DURATION: opMs,
    SPLIT_SHARD_DURATION: opMs,
    UPDATE_SHARD_COUNT_DURATION: opMs,
    UPDATE_STREAM_MODE_DURATION: opMs,
    SHOULD_PERSIST_DATA: persistDir !== undefined ? 'true' : 'false',
    ...(persistDir !== undefined
      ? {
          PERSIST_PATH: persistDir,
          LOAD_DATA_IF_EXISTS: 'true',
          ...(opts.persistIntervalMs !== undefined ? { PERSIST_INTERVAL: `${opts.persistIntervalMs}ms` } : {}),
        }
      : {}),
    ...(opts.shardLimit !== undefined ? { SHARD_LIMIT: String(opts.shardLimit) } : {}),
    ...opts.env,
  };

  const tail = new OutputTail();
  const started = performance.now();
  const child: ResultPromise = execa(process.execPath, [mainJs], {
    env,
    extendEnv: false,
    cwd: tmpdir(),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    cleanup: true, // killed if the test process exits
    forceKillAfterDelay: 5000,
  });
  child.stdout?.on('data', (c: Buffer) => tail.push(c));
  child.stderr?.on('data', (c: Buffer) => tail.push(c));
  let exited = false;
  let exitInfo = '';
  const exitPromise = child.then((r) => {
    exited = true;
    exitInfo = `exit code ${String(r.exitCode)}${r.signal ? `, signal ${r.signal}` : ''}`;
  });
  if (child.pid === undefined) {
    await exitPromise;
    throw new Error(`kinesis-local failed to spawn (${exitInfo}):\n${tail.toString()}`);
  }
  const pid = child.pid;

  const endpoint = `http://127.0.0.1:${port}`;
  const client = createKinesisClient({ region: KINESIS_LOCAL_REGION, endpoint, httpHandler: 'http1' });
  const probe = createKinesisClient({
    region: KINESIS_LOCAL_REGION,
    endpoint,
    httpHandler: 'http1',
    maxAttempts: 1,
    requestTimeoutMs: 2000,
    connectionTimeoutMs: 1000,
  });

  let stopped = false;
  const stop = async (stopOpts?: { signal?: 'SIGTERM' | 'SIGKILL' }): Promise<void> => {
    if (stopped) {
      await exitPromise;
      return;
    }
    stopped = true;
    client.destroy();
    probe.destroy();
    if (!exited) child.kill(stopOpts?.signal ?? 'SIGTERM');
    await exitPromise;
  };

  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const deadline = started + startTimeoutMs;
  let lastErr: string | undefined;
  try {
    for (;;) {
      if (exited) {
        throw new Error(`kinesis-local exited during startup (${exitInfo}); ports plain=${port} tls=${tlsPort}. Output tail:\n${tail.toString()}`);
      }
      try {
        await probe.send(new ListStreamsCommand({}));
        break;
      } catch (err) {
        lastErr = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      }
      if (performance.now() > deadline) {
        throw new Error(
          `kinesis-local did not answer ListStreams on ${endpoint} within ${startTimeoutMs} ms (last error: ${lastErr ?? 'none'}). Output tail:\n${tail.toString()}`,
        );
      }
      await sleep(100);
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    probe.destroy();
  }
  const startupMs = Math.round(performance.now() - started);

  const createStream = async (name: string, shardCount: number): Promise<void> => {
    await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
    const until = performance.now() + 30_000;
    for (;;) {
      const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
      const status = out.StreamDescriptionSummary?.StreamStatus;
      if (status === 'ACTIVE') return;
      if (performance.now() > until) throw new Error(`stream ${name} not ACTIVE after 30 s (status ${String(status)})`);
      await sleep(20);
    }
  };

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
    endpoint,
    port,
    tlsPort,
    region: KINESIS_LOCAL_REGION,
    client,
    pid,
    startupMs,
    createStream,
    uniqueStreamName,
    rssBytes,
    outputTail: () => tail.toString(),
    stop,
  };
}
