/**
 * Runs kinesis-local (the npm package: kinesis-mock compiled to JavaScript) as a child process on
 * free loopback ports, and waits until it answers. One launcher for the embedded transport
 * (embedded-kinesis.ts) and the test harness (test/support/kinesis-local.ts).
 *
 * Facts about kinesis-local 0.6.2 relied on here:
 *  - it always opens a TLS port besides the plain one; both get a free port;
 *  - the TLS certificate path defaults to `server.json` relative to the working directory (started
 *    anywhere else it dies with ENOENT), so it is passed explicitly (KINESIS_MOCK_CERT_PATH);
 *  - requests need a SigV4 Authorization header, not a valid signature (createKinesisClient signs
 *    loopback requests with fake static credentials);
 *  - its WARN logs and cats-effect "CPU starving" warnings go to stderr;
 *  - it has no listen-address setting and binds its ports on every interface: ENGINE_ENTRY pins
 *    it to 127.0.0.1.
 *
 * Lifetime: it is started through ENGINE_ENTRY, which exits when its stdin reaches EOF, i.e. when
 * the parent is gone however it died (SIGKILL, OOM killer: the kernel closes the pipe's write
 * end); a process 'exit' hook SIGKILLs it too (normal exit, process.exit).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { CreateStreamCommand, DescribeStreamSummaryCommand, ListStreamsCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { MigratorError, errorMessage } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import { sleep } from '../util/retry.js';
import { createKinesisClient } from './kinesis-client.js';

/**
 * The engine's entry point: loads kinesis-local's main.js (argv[1]) after
 *  - a watchdog: when stdin reaches EOF (the parent is gone, or closed it in stop()), exit at once
 *    (kinesis-local does not read stdin);
 *  - loopback only: a numeric-port listen() without a host is pinned to 127.0.0.1 (the stream
 *    carries full documents and the engine takes any SigV4 header).
 */
const ENGINE_ENTRY = [
  'const quit = () => process.exit(0);',
  "process.stdin.on('end', quit);",
  "process.stdin.on('close', quit);",
  "process.stdin.on('error', quit);",
  'process.stdin.resume();',
  "const net = require('node:net');",
  'const listen = net.Server.prototype.listen;',
  'net.Server.prototype.listen = function (...args) {',
  "  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');",
  '  return listen.apply(this, args);',
  '};',
  'require(process.argv[1]);',
].join('\n');

export interface KinesisLocalLaunchOptions {
  region: string;
  /** The engine's working directory. */
  cwd: string;
  /** Plain-HTTP port; default: a free one (then a port taken meanwhile is retried, up to 3 times). */
  port?: number;
  /** Duration of CREATING/UPDATING/DELETING for every asynchronous operation (default 10 ms). */
  operationDurationMs?: number;
  /** Extra kinesis-local environment variables (persistence, shard limit...); override the defaults. */
  env?: Record<string, string>;
  /** Own process group: a Ctrl-C at the terminal then reaches only the parent. */
  detached?: boolean;
  /** Max wait for it to answer ListStreams. */
  startTimeoutMs: number;
  /** Every chunk of its stdout and stderr (e.g. to a log file). */
  onOutput?: (chunk: Buffer) => void;
  /** Lines of output kept for error messages (default 60). */
  tailLines?: number;
  /** The error thrown when it does not start: `what` happened, with its last output lines. */
  startError?: (what: string, outputTail: string) => Error;
  /** It exited after it answered, without stop() (crash, killed from outside). */
  onExit?: (exitInfo: string) => void;
}

export interface KinesisLocalProcess {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  tlsPort: number;
  pid: number;
  /** performance.now() at the spawn. */
  spawnedAt: number;
  /** Spawn → first successful ListStreams, in ms. */
  startupMs: number;
  /** Product client (createKinesisClient, HTTP/1.1). Destroyed by stop(). */
  client: KinesisClient;
  readonly exited: boolean;
  outputTail(): string;
  /**
   * Stops it and waits for its exit. Idempotent (the first call's options count). Default SIGTERM
   * (graceful: kinesis-local writes its persistence file one last time; SIGKILL follows after
   * 5 s); `closeStdin` makes the watchdog exit at once.
   */
  stop(opts?: { signal?: 'SIGTERM' | 'SIGKILL'; closeStdin?: boolean }): Promise<void>;
}

/** kinesis-local's main.js and TLS certificate; STREAM_FAILED when the package is missing. */
export function kinesisLocalFiles(): { mainJs: string; certPath: string } {
  const require = createRequire(import.meta.url);
  const remedy =
    'kinesis-local is a dependency of migrator: reinstall it (`npm ci`, or `npm install kinesis-local`), ' +
    'or use a Kinesis data stream instead with --kinesis-stream (and --kinesis-endpoint for a local one).';
  let pkgJson: string;
  try {
    pkgJson = require.resolve('kinesis-local/package.json');
  } catch (err) {
    throw new MigratorError(ExitCode.STREAM_FAILED, 'The embedded Kinesis engine (npm package kinesis-local) is not installed.', { hint: remedy, cause: err });
  }
  const dir = dirname(pkgJson);
  const files = { mainJs: join(dir, 'main.js'), certPath: join(dir, 'server.json') };
  for (const f of [files.mainJs, files.certPath]) {
    if (!existsSync(f)) {
      throw new MigratorError(ExitCode.STREAM_FAILED, `The embedded Kinesis engine is incompletely installed (${f} is missing).`, { hint: remedy });
    }
  }
  return files;
}

/** A TCP port that was free on 127.0.0.1 a moment ago (the caller retries on EADDRINUSE). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = address !== null && typeof address === 'object' ? address.port : undefined;
      server.close((err) => (err || port === undefined ? reject(err ?? new Error('no port')) : resolve(port)));
    });
  });
}

class OutputTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max: number) {}
  push(chunk: Buffer | string): void {
    const parts = (this.partial + chunk.toString()).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') this.lines.push(p);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  toString(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }
}

/** Starts kinesis-local and waits until it answers ListStreams. */
export async function launchKinesisLocal(opts: KinesisLocalLaunchOptions): Promise<KinesisLocalProcess> {
  const files = kinesisLocalFiles();
  let lastError: unknown;
  for (let attempt = 0; attempt < (opts.port === undefined ? 3 : 1); attempt++) {
    try {
      return await launchOnce(opts, files);
    } catch (err) {
      lastError = err;
      // A free port can be taken between freeLoopbackPort() and the engine's bind: try other ports.
      if (!/EADDRINUSE/.test(errorMessage(err))) throw err;
    }
  }
  throw lastError;
}

function engineEnv(opts: KinesisLocalLaunchOptions, certPath: string, port: number, tlsPort: number): Record<string, string> {
  const opMs = `${opts.operationDurationMs ?? 10}ms`;
  const durations = ['CREATE_STREAM', 'DELETE_STREAM', 'REGISTER_STREAM_CONSUMER', 'DEREGISTER_STREAM_CONSUMER', 'START_STREAM_ENCRYPTION', 'STOP_STREAM_ENCRYPTION', 'MERGE_SHARDS', 'SPLIT_SHARD', 'UPDATE_SHARD_COUNT', 'UPDATE_STREAM_MODE'];
  return {
    // Not inheriting the environment: NODE_OPTIONS, INITIALIZE_STREAMS, AWS_* must not leak in.
    PATH: process.env.PATH ?? '',
    KINESIS_MOCK_PLAIN_PORT: String(port),
    KINESIS_MOCK_TLS_PORT: String(tlsPort),
    KINESIS_MOCK_CERT_PATH: certPath,
    AWS_REGION: opts.region,
    LOG_LEVEL: 'WARN',
    ROOT_LOG_LEVEL: 'ERROR',
    ...Object.fromEntries(durations.map((d) => [`${d}_DURATION`, opMs])),
    SHOULD_PERSIST_DATA: 'false',
    ...opts.env,
  };
}

async function launchOnce(opts: KinesisLocalLaunchOptions, files: { mainJs: string; certPath: string }): Promise<KinesisLocalProcess> {
  const port = opts.port ?? (await freeLoopbackPort());
  let tlsPort = await freeLoopbackPort();
  while (tlsPort === port) tlsPort = await freeLoopbackPort();
  const tail = new OutputTail(opts.tailLines ?? 60);
  const startError = opts.startError ?? ((what: string, out: string) => new Error(`kinesis-local ${what}. Output tail:\n${out}`));
  const spawnedAt = performance.now();
  const child = spawnEngine(opts, files, port, tlsPort, tail);
  const state = { exited: false, stopping: false, answered: false, exitInfo: '' };
  const exitPromise = child.then((r) => {
    state.exited = true;
    state.exitInfo = `exit code ${String(r.exitCode)}${r.signal ? `, signal ${r.signal}` : ''}`;
    if (state.answered && !state.stopping) opts.onExit?.(state.exitInfo);
  });
  const killHard = (): void => {
    try {
      if (!state.exited) child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', killHard);
  if (child.pid === undefined) {
    state.stopping = true;
    await exitPromise;
    process.off('exit', killHard);
    throw startError(`failed to start (${state.exitInfo})`, tail.toString());
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const client = createKinesisClient({ region: opts.region, endpoint, httpHandler: 'http1' });
  let stopPromise: Promise<void> | undefined;
  const stop = (o: { signal?: 'SIGTERM' | 'SIGKILL'; closeStdin?: boolean } = {}): Promise<void> =>
    (stopPromise ??= (async () => {
      state.stopping = true;
      client.destroy();
      if (!state.exited) {
        if (o.closeStdin) child.stdin?.end(); // the watchdog exits on EOF…
        child.kill(o.signal ?? 'SIGTERM'); // …and the signal (SIGKILL after 5 s) if it does not
      }
      await exitPromise;
      process.off('exit', killHard);
    })());
  try {
    await waitUntilAnswering(endpoint, opts, state, spawnedAt + opts.startTimeoutMs, (what) => startError(what, tail.toString()), `ports ${port}, ${tlsPort}`);
  } catch (err) {
    await stop();
    throw err;
  }
  state.answered = true;
  const startupMs = Math.round(performance.now() - spawnedAt);
  return {
    endpoint,
    port,
    tlsPort,
    pid: child.pid,
    spawnedAt,
    startupMs,
    client,
    get exited() {
      return state.exited;
    },
    outputTail: () => tail.toString(),
    stop,
  };
}

function spawnEngine(opts: KinesisLocalLaunchOptions, files: { mainJs: string; certPath: string }, port: number, tlsPort: number, tail: OutputTail): ResultPromise {
  const child = execa(process.execPath, ['-e', ENGINE_ENTRY, files.mainJs], {
    env: engineEnv(opts, files.certPath, port, tlsPort),
    extendEnv: false,
    cwd: opts.cwd,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    detached: opts.detached ?? false,
    forceKillAfterDelay: 5000,
  });
  const onData = (c: Buffer): void => {
    tail.push(c);
    opts.onOutput?.(c);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.stdin?.on('error', () => undefined);
  return child;
}

/** Polls ListStreams until it answers, the process exits or the deadline passes. */
async function waitUntilAnswering(
  endpoint: string,
  opts: KinesisLocalLaunchOptions,
  state: { exited: boolean; exitInfo: string },
  deadline: number,
  fail: (what: string) => Error,
  ports: string,
): Promise<void> {
  const probe = createKinesisClient({ region: opts.region, endpoint, httpHandler: 'http1', maxAttempts: 1, requestTimeoutMs: 2000, connectionTimeoutMs: 1000 });
  try {
    let lastErr = 'none';
    for (;;) {
      if (state.exited) throw fail(`exited during startup (${state.exitInfo}; ${ports})`);
      try {
        await probe.send(new ListStreamsCommand({}));
        return;
      } catch (err) {
        lastErr = `${(err as Error).name}: ${errorMessage(err)}`;
      }
      if (performance.now() > deadline) throw fail(`did not answer on ${endpoint} within ${Math.round(opts.startTimeoutMs / 1000)} s (last error: ${lastErr})`);
      await sleep(100);
    }
  } finally {
    probe.destroy();
  }
}

/** Creates a stream and waits until it is ACTIVE (CREATING lasts `operationDurationMs`). */
export async function createStreamAndWait(client: KinesisClient, name: string, shardCount: number, timeoutMs = 30_000): Promise<void> {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
  const until = performance.now() + timeoutMs;
  for (;;) {
    const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    const status = out.StreamDescriptionSummary?.StreamStatus;
    if (status === 'ACTIVE') return;
    if (performance.now() > until) throw new Error(`stream ${name} not ACTIVE after ${Math.round(timeoutMs / 1000)} s (status ${String(status)})`);
    await sleep(20);
  }
}
