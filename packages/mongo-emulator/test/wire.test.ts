// Conformance at the wire level (raw sockets, no driver): legacy OP_QUERY handshake answered
// with OP_REPLY, and OP_MSG with a kind-1 document sequence (how the Go driver sends inserts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { BSON, type Document } from 'mongodb';
import { openTarget, type Target } from './target.js';

let target: Target;
let socket: Socket;
let pending: Buffer = Buffer.alloc(0);
let waiting: (() => void) | undefined;

before(async () => {
  target = await openTarget();
  const { hostname, port } = new URL(target.uri.replace(/^mongodb:/, 'http:').split(',')[0]);
  socket = connect(Number(port || 27017), hostname);
  socket.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    waiting?.();
  });
  await new Promise((r) => socket.once('connect', r));
});
after(async () => {
  socket.destroy();
  await target.close();
});

let requestId = 100;

function header(len: number, opCode: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeInt32LE(len, 0);
  h.writeInt32LE(requestId++, 4);
  h.writeInt32LE(0, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

async function readMessage(): Promise<{ opCode: number; body: Buffer }> {
  while (pending.length < 4 || pending.length < pending.readInt32LE(0)) await new Promise<void>((r) => (waiting = r));
  const len = pending.readInt32LE(0);
  const msg = { opCode: pending.readInt32LE(12), body: pending.subarray(16, len) };
  pending = pending.subarray(len);
  return msg;
}

test('OP_QUERY isMaster on admin.$cmd gets an OP_REPLY', async () => {
  const query = Buffer.from(BSON.serialize({ isMaster: 1, client: { application: { name: 'wire-test' } } }));
  const ns = Buffer.from('admin.$cmd\0');
  const fields = Buffer.alloc(8);
  fields.writeInt32LE(0, 0);
  fields.writeInt32LE(-1, 4);
  const flags = Buffer.alloc(4);
  const body = Buffer.concat([flags, ns, fields, query]);
  socket.write(Buffer.concat([header(16 + body.length, 2004), body]));
  const reply = await readMessage();
  assert.equal(reply.opCode, 1);
  assert.equal(reply.body.readInt32LE(16), 1); // numberReturned
  const doc = BSON.deserialize(reply.body.subarray(20));
  assert.equal(doc.ok, 1);
  assert.equal(doc.ismaster, true);
  assert.ok(doc.maxWireVersion >= 17);
});

async function opMsg(body: Document, sequence?: { id: string; docs: Document[] }): Promise<Document> {
  const parts: Buffer[] = [Buffer.alloc(4), Buffer.from([0]), Buffer.from(BSON.serialize(body))];
  if (sequence) {
    const docs = Buffer.concat(sequence.docs.map((d) => Buffer.from(BSON.serialize(d))));
    const id = Buffer.from(sequence.id + '\0');
    const size = Buffer.alloc(4);
    size.writeInt32LE(4 + id.length + docs.length);
    parts.push(Buffer.from([1]), size, id, docs);
  }
  const payload = Buffer.concat(parts);
  socket.write(Buffer.concat([header(16 + payload.length, 2013), payload]));
  const reply = await readMessage();
  assert.equal(reply.opCode, 2013);
  return BSON.deserialize(reply.body.subarray(5));
}

test('OP_MSG insert with a kind-1 documents sequence', async () => {
  const $db = target.dbName('wire');
  const res = await opMsg({ insert: 'seq', ordered: true, $db }, { id: 'documents', docs: [{ _id: 1 }, { _id: 2 }, { _id: 1 }] });
  assert.equal(res.n, 2);
  assert.equal(res.writeErrors[0].index, 2);
  assert.equal(res.writeErrors[0].code, 11000);
  const found = await opMsg({ find: 'seq', filter: {}, $db });
  assert.deepEqual(found.cursor.firstBatch, [{ _id: 1 }, { _id: 2 }]);
  const unknown = await opMsg({ noSuchCommand: 1, $db });
  assert.equal(unknown.ok, 0);
  assert.equal(unknown.code, 59);
});
