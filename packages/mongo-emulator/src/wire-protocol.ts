// MongoDB wire protocol framing: OP_MSG (2013), legacy OP_QUERY (2004) requests and their
// OP_MSG / OP_REPLY (1) responses. OP_COMPRESSED is never negotiated (hello advertises no
// compressors), so it is rejected.
//
// Invariant: `MessageReader` yields whole messages in arrival order; bytes of a partial message
// stay buffered until the rest arrives.
import { decodeDoc, encodeDoc, type Doc } from './bson-values.js';

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_COMPRESSED = 2012;
export const OP_MSG = 2013;

export const MSG_CHECKSUM_PRESENT = 1;
export const MSG_MORE_TO_COME = 2;

export const MAX_MESSAGE_SIZE = 48_000_000;

export interface RawMessage {
  requestId: number;
  responseTo: number;
  opCode: number;
  body: Buffer; // bytes after the 16-byte header
}

export interface ParsedCommand {
  /** The command document with kind-1 document sequences folded in as array fields. */
  command: Doc;
  /** Database the command runs against (`$db` for OP_MSG, the `db.$cmd` prefix for OP_QUERY). */
  db: string;
  /** OP_MSG moreToCome: the client expects no reply (unacknowledged write). */
  noReply: boolean;
  legacy: boolean;
}

export class MessageReader {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): RawMessage[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const out: RawMessage[] = [];
    let buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    while (buf.length >= 4) {
      const len = buf.readInt32LE(0);
      if (len < 16 || len > MAX_MESSAGE_SIZE) throw new Error(`invalid message length ${len}`);
      if (buf.length < len) break;
      out.push({
        requestId: buf.readInt32LE(4),
        responseTo: buf.readInt32LE(8),
        opCode: buf.readInt32LE(12),
        body: buf.subarray(16, len),
      });
      buf = buf.subarray(len);
    }
    this.chunks = buf.length ? [buf] : [];
    this.size = buf.length;
    return out;
  }
}

function readCString(buf: Buffer, offset: number): [string, number] {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw new Error('unterminated cstring');
  return [buf.toString('utf8', offset, end), end + 1];
}

function docLength(buf: Buffer, offset: number): number {
  return buf.readInt32LE(offset);
}

export function parseOpMsg(body: Buffer): ParsedCommand {
  const flags = body.readUInt32LE(0);
  const end = flags & MSG_CHECKSUM_PRESENT ? body.length - 4 : body.length;
  let offset = 4;
  let command: Doc | undefined;
  const sequences: [string, Doc[]][] = [];
  while (offset < end) {
    const kind = body.readUInt8(offset);
    offset += 1;
    if (kind === 0) {
      const len = docLength(body, offset);
      command = decodeDoc(body.subarray(offset, offset + len));
      offset += len;
    } else if (kind === 1) {
      const sectionLen = body.readInt32LE(offset);
      const sectionEnd = offset + sectionLen;
      const [identifier, docsStart] = readCString(body, offset + 4);
      const docs: Doc[] = [];
      let p = docsStart;
      while (p < sectionEnd) {
        const len = docLength(body, p);
        docs.push(decodeDoc(body.subarray(p, p + len)));
        p += len;
      }
      sequences.push([identifier, docs]);
      offset = sectionEnd;
    } else {
      throw new Error(`unsupported OP_MSG section kind ${kind}`);
    }
  }
  if (!command) throw new Error('OP_MSG without a body section');
  for (const [identifier, docs] of sequences) command[identifier] = docs;
  const db = typeof command.$db === 'string' ? command.$db : 'admin';
  return { command, db, noReply: (flags & MSG_MORE_TO_COME) !== 0, legacy: false };
}

export function parseOpQuery(body: Buffer): ParsedCommand {
  let offset = 4; // flags
  const [fullCollectionName, next] = readCString(body, offset);
  offset = next + 8; // numberToSkip, numberToReturn
  const len = docLength(body, offset);
  let query = decodeDoc(body.subarray(offset, offset + len));
  // Legacy clients may wrap the command: {$query: {...}, $readPreference: ...}.
  if (query.$query && typeof query.$query === 'object') query = query.$query as Doc;
  const dot = fullCollectionName.indexOf('.');
  const db = dot >= 0 ? fullCollectionName.slice(0, dot) : fullCollectionName;
  const coll = dot >= 0 ? fullCollectionName.slice(dot + 1) : '';
  if (coll !== '$cmd') {
    query = { $legacyQueryOn: coll, ...query };
  }
  return { command: query, db, noReply: false, legacy: true };
}

function header(length: number, requestId: number, responseTo: number, opCode: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(requestId, 4);
  h.writeInt32LE(responseTo, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

let nextRequestId = 1;

export function encodeOpMsgReply(reply: Doc, responseTo: number): Buffer {
  const doc = encodeDoc(reply);
  const prefix = Buffer.alloc(5); // flagBits = 0, section kind 0
  return Buffer.concat([header(16 + 5 + doc.length, nextRequestId++, responseTo, OP_MSG), prefix, doc]);
}

export function encodeOpReply(reply: Doc, responseTo: number): Buffer {
  const doc = encodeDoc(reply);
  const fields = Buffer.alloc(20);
  fields.writeInt32LE(0, 0); // responseFlags
  fields.writeBigInt64LE(0n, 4); // cursorID
  fields.writeInt32LE(0, 12); // startingFrom
  fields.writeInt32LE(1, 16); // numberReturned
  return Buffer.concat([header(16 + 20 + doc.length, nextRequestId++, responseTo, OP_REPLY), fields, doc]);
}
