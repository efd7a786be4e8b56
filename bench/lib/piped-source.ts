/**
 * A MongoClient stand-in for capture whose `watch()` cursor yields the change events a child
 * process (workers/event-generator.ts) writes as BSON to its stdout. Events are deserialised with
 * the capture's exact-BSON options, as the driver does; like the driver's batchSize (2000) the
 * reader holds at most one batch and pauses the pipe otherwise, so the backlog stays in the
 * generator, as it would stay on a server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { BSON, type Document, type MongoClient } from 'mongodb';
import { EXACT_BSON_OPTIONS } from '../../src/model/change-envelope.js';
import { ROOT } from './stack.js';

export interface PipedSource {
  client: MongoClient;
  child: ChildProcess;
  /** events handed to capture */
  delivered(): number;
  /** bytes of raw BSON events read */
  bytesRead(): number;
  done: Promise<void>;
}

export function pipedSource(count: number, bytes: number, mix: string, seed = 1): PipedSource {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/workers/event-generator.ts'), String(count), String(bytes), mix, String(seed)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const out = child.stdout!;
  const BATCH = 2000;
  const queue: Document[] = [];
  let qHead = 0;
  let pending: Buffer = Buffer.alloc(0);
  let ended = false;
  let delivered = 0;
  let bytesRead = 0;
  let wake: (() => void) | undefined;
  let lastToken: Document | undefined;
  out.on('data', (chunk: Buffer) => {
    bytesRead += chunk.length;
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let off = 0;
    while (pending.length - off >= 4) {
      const len = pending.readInt32LE(off);
      if (pending.length - off < len) break;
      queue.push(BSON.deserialize(pending.subarray(off, off + len), EXACT_BSON_OPTIONS));
      off += len;
    }
    pending = pending.subarray(off);
    if (queue.length - qHead >= BATCH) out.pause();
    wake?.();
  });
  const done = new Promise<void>((resolve) =>
    out.on('end', () => {
      ended = true;
      wake?.();
      resolve();
    }),
  );

  const cursor = {
    get resumeToken() {
      return lastToken;
    },
    async tryNext(): Promise<Document | null> {
      for (;;) {
        if (qHead < queue.length) {
          const e = queue[qHead++]!;
          if (qHead > 4096) {
            queue.splice(0, qHead);
            qHead = 0;
          }
          if (queue.length - qHead < BATCH / 2 && out.isPaused()) out.resume();
          delivered++;
          lastToken = e._id as Document;
          return e;
        }
        if (out.isPaused()) out.resume();
        if (ended) {
          await new Promise((r) => setTimeout(r, 50)); // maxAwaitTimeMS of an idle stream
          return null;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    },
    async close() {
      child.kill();
    },
  };
  const client = { watch: () => cursor } as unknown as MongoClient;
  return { client, child, delivered: () => delivered, bytesRead: () => bytesRead, done };
}
