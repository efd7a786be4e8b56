import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { MongoClient } from 'mongodb';
import { goToolPath } from './go-tools.js';

export interface FerretDB {
  /** mongodb://127.0.0.1:PORT/ — no auth, no TLS, not a replica set (so no change streams). */
  uri: string;
  port: number;
  dataDir: string;
  /** Kills the server, waits for it to exit, and deletes the data dir if startFerretDB made it. */
  stop(): Promise<void>;
}

export interface FerretDBOptions {
  /** SQLite directory (one .sqlite file per database); default: a fresh temp dir, deleted on stop. */
  dataDir?: string;
  /** Default (or 0): a free loopback port. */
  port?: number;
}

const READY_TIMEOUT_MS = 30_000;
const KEPT_OUTPUT_CHARS = 8_000;

/** Starts the built ferretdb (v1, SQLite backend) on 127.0.0.1 and waits until it answers ping. */
export async function startFerretDB(opts: FerretDBOptions = {}): Promise<FerretDB> {
  const bin = goToolPath('ferretdb');
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'ferretdb-')));
  // A port we picked can be taken by someone else before ferretdb binds it: then pick another.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port || (await freePort());
    try {
      const stop = await launch(bin, dataDir, port);
      return {
        uri: uriFor(port),
        port,
        dataDir,
        stop: async () => {
          await stop();
          if (ownDir) await rm(dataDir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      const portTaken = /address already in use/.test((err as Error).message);
      if (opts.port || !portTaken || attempt === 3) {
        if (ownDir) await rm(dataDir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

const uriFor = (port: number) => `mongodb://127.0.0.1:${port}/`;

/** Runs ferretdb until it answers ping; returns its stop function. */
async function launch(bin: string, dataDir: string, port: number): Promise<() => Promise<void>> {
  const proc = execa(
    bin,
    [
      '--handler=sqlite',
      // SQLite URI of a directory: the trailing slash is required.
      `--sqlite-url=file:${dataDir}/`,
      `--listen-addr=127.0.0.1:${port}`,
      // '-' disables each: no metrics/pprof HTTP port to collide on, no state.json in the cwd.
      '--debug-addr=-',
      '--state-dir=-',
      '--telemetry=disable',
      '--log-level=warn',
    ],
    // Our own output tail instead of execa's buffer: a buffer limit would kill a long-lived server.
    { buffer: false, stdin: 'ignore', reject: false, cleanup: true },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-KEPT_OUTPUT_CHARS);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  let exited = false;
  const exit = proc.then(() => {
    exited = true;
  });
  const stop = async () => {
    if (!exited) proc.kill('SIGTERM');
    // execa sends SIGKILL if SIGTERM has not ended it within 5 s (forceKillAfterDelay).
    await exit;
  };

  try {
    await waitForPing(uriFor(port), () => exited);
  } catch (err) {
    await stop();
    throw new Error(
      `ferretdb did not start on port ${port}: ${(err as Error).message}\n--- ferretdb output ---\n${output}`,
      { cause: err },
    );
  }
  return stop;
}

async function waitForPing(uri: string, hasExited: () => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    if (hasExited()) throw new Error('the process exited');
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 500, connectTimeoutMS: 500 });
    try {
      await client.db('admin').command({ ping: 1 });
      return;
    } catch (err) {
      last = err;
    } finally {
      await client.close();
    }
    await sleep(100);
  }
  throw new Error(`no answer to ping within ${READY_TIMEOUT_MS} ms (last error: ${String(last)})`);
}

/** A port that was free on 127.0.0.1 a moment ago (the kernel picks it for a bind to port 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
