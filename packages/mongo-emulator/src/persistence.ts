// On-disk persistence: an append-only journal of BSON mutation records in `<dbpath>/journal.bson`.
//
// Invariants:
// - a write is appended with one synchronous write(2) before the command is acknowledged, so a
//   SIGKILL of the process never loses an acknowledged write (the page cache survives the kill);
// - replay ignores a torn trailing record (a write interrupted by the kill, never acknowledged)
//   and truncates it away;
// - on open, the journal is compacted: the replayed state is rewritten to a temporary file which
//   then atomically replaces the journal.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { decodeDoc, encodeDoc, type Doc } from './bson-values.js';

const JOURNAL = 'journal.bson';

export class Journal {
  private fd: number | undefined;

  constructor(readonly dbpath: string) {
    mkdirSync(dbpath, { recursive: true });
  }

  private get path(): string {
    return join(this.dbpath, JOURNAL);
  }

  /** Records persisted by earlier runs, in order. */
  readAll(): Doc[] {
    if (!existsSync(this.path)) return [];
    const buf = readFileSync(this.path);
    const out: Doc[] = [];
    let offset = 0;
    while (offset + 4 <= buf.length) {
      const len = buf.readInt32LE(offset);
      if (len < 5 || offset + len > buf.length) break;
      try {
        out.push(decodeDoc(buf.subarray(offset, offset + len)));
      } catch {
        break;
      }
      offset += len;
    }
    if (offset < buf.length) truncateSync(this.path, offset);
    return out;
  }

  /** Atomically replaces the journal with `records` and opens it for appending. */
  rewrite(records: Iterable<Doc>): void {
    this.close();
    const tmp = this.path + '.tmp';
    const fd = openSync(tmp, 'w');
    let batch: Buffer[] = [];
    let size = 0;
    const flush = (): void => {
      if (batch.length) writeSync(fd, Buffer.concat(batch, size));
      batch = [];
      size = 0;
    };
    for (const r of records) {
      const b = encodeDoc(r);
      batch.push(b);
      size += b.length;
      if (size > 4 << 20) flush();
    }
    flush();
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    this.fd = openSync(this.path, 'a');
  }

  append(records: Doc[]): void {
    if (this.fd === undefined) this.fd = openSync(this.path, 'a');
    const bufs = records.map(encodeDoc);
    writeSync(this.fd, bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));
  }

  close(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
