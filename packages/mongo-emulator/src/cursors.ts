// Server-side cursors: materialized query results and change streams, addressed by a random
// positive 64-bit id. Batches respect the requested size and the 16 MiB reply limit.
//
// Invariant: a cursor id is live in the registry until exhausted, killed or idle for
// `IDLE_TIMEOUT_MS`; id 0 is never registered (it means "no more results").
import { randomInt } from 'node:crypto';
import { Long, calculateObjectSize } from 'bson';
import type { Doc } from './bson-values.js';
import type { ChangeStream } from './change-streams.js';

export const DEFAULT_FIRST_BATCH = 101;
const MAX_BATCH_BYTES = 16 * 1024 * 1024 - 16 * 1024;
const IDLE_TIMEOUT_MS = 10 * 60 * 1000;

interface CursorBase {
  id: Long;
  ns: string;
  lastUsed: number;
  killed: boolean;
  /** Cancels an in-flight awaitData wait (killCursors, shutdown). */
  cancelWait?: { onCancel?: () => void };
}

export interface QueryCursor extends CursorBase {
  kind: 'query';
  docs: Doc[];
  pos: number;
}

export interface StreamCursor extends CursorBase {
  kind: 'changeStream';
  stream: ChangeStream;
}

export type Cursor = QueryCursor | StreamCursor;

/** Takes the next batch: at most `max` documents and at most ~16 MiB (always at least one). */
export function takeBatch(cursor: QueryCursor, max: number): Doc[] {
  const out: Doc[] = [];
  let bytes = 0;
  while (cursor.pos < cursor.docs.length && out.length < max) {
    const doc = cursor.docs[cursor.pos];
    bytes += calculateObjectSize(doc);
    if (out.length > 0 && bytes > MAX_BATCH_BYTES) break;
    out.push(doc);
    cursor.pos++;
  }
  return out;
}

export class CursorRegistry {
  private readonly cursors = new Map<string, Cursor>();
  private readonly sweeper: NodeJS.Timeout;

  constructor() {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  private newId(): Long {
    for (;;) {
      const id = Long.fromBits(randomInt(1, 0x7fffffff), randomInt(1, 0x7fffffff));
      if (!this.cursors.has(id.toString())) return id;
    }
  }

  openQuery(ns: string, docs: Doc[], pos: number): QueryCursor {
    const c: QueryCursor = { kind: 'query', id: this.newId(), ns, docs, pos, lastUsed: Date.now(), killed: false };
    this.cursors.set(c.id.toString(), c);
    return c;
  }

  openStream(ns: string, stream: ChangeStream): StreamCursor {
    const c: StreamCursor = { kind: 'changeStream', id: this.newId(), ns, stream, lastUsed: Date.now(), killed: false };
    this.cursors.set(c.id.toString(), c);
    return c;
  }

  get(id: unknown): Cursor | undefined {
    const c = this.cursors.get(String(id));
    if (c) c.lastUsed = Date.now();
    return c;
  }

  close(id: Long): void {
    this.cursors.delete(id.toString());
  }

  kill(id: unknown): boolean {
    const c = this.cursors.get(String(id));
    if (!c) return false;
    c.killed = true;
    c.cancelWait?.onCancel?.();
    this.cursors.delete(String(id));
    return true;
  }

  private sweep(): void {
    const cutoff = Date.now() - IDLE_TIMEOUT_MS;
    for (const [id, c] of this.cursors) if (c.lastUsed < cutoff && !c.cancelWait) this.kill(id);
  }

  closeAll(): void {
    clearInterval(this.sweeper);
    for (const id of [...this.cursors.keys()]) this.kill(id);
  }
}
