// Real change events (emulator source, read with EXACT_BSON_OPTIONS and the rules' $match) →
// envelopes → BSON → apply on a second emulator: the target documents are byte-identical.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BSON, Double, Int32, MongoClient, type ChangeStream, type Document } from 'mongodb';
import {
  EXACT_BSON_OPTIONS,
  UnsupportedChangeEventError,
  decodeEnvelope,
  encodeEnvelope,
  envelopeFromChangeEvent,
  routingKey,
  type ChangeEnvelope,
} from '../../src/model/change-envelope.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { ApplyWriter } from '../../src/apply/writer.js';
import { startMongoEmulator, type MongoEmulator } from '../../packages/mongo-emulator/src/index.js';
import { storableAllTypesDocument } from '../support/bson-samples.js';

const hex = (d: Document) => Buffer.from(BSON.serialize(d)).toString('hex');

async function take(stream: ChangeStream, n: number, timeoutMs = 5000): Promise<Document[]> {
  const out: Document[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out after ${out.length}/${n} events`);
    const ev = await stream.tryNext();
    if (ev) out.push(ev);
  }
  return out;
}

describe('change events → envelopes → target (emulators)', { timeout: 60_000 }, () => {
  let source: MongoEmulator;
  let target: MongoEmulator;
  let src: MongoClient;
  let dst: MongoClient;
  before(async () => {
    [source, target] = await Promise.all([startMongoEmulator({ port: 0 }), startMongoEmulator({ port: 0 })]);
    src = await MongoClient.connect(source.uri);
    dst = await MongoClient.connect(target.uri);
  });
  after(async () => {
    await src?.close();
    await dst?.close();
    await source?.stop();
    await target?.stop();
  });

  it('carries every BSON type exactly and filters namespaces server-side', async () => {
    const rules = new NamespaceRules({ include: ['bar.*'], exclude: ['bar.tmp'], map: ['bar:bar_new'] });
    const stream = src.watch([rules.changeStreamMatch()], { ...EXACT_BSON_OPTIONS, fullDocument: 'updateLookup' });
    assert.equal(await stream.tryNext(), null); // opens the cursor
    const products = src.db('bar').collection('products');
    const doc = storableAllTypesDocument();
    await products.insertOne(doc);
    await products.updateOne({ _id: doc._id }, { $set: { double: new Double(5), extra: new Int32(1) }, $unset: { str: '' } });
    await src.db('bar').collection('tmp').insertOne({ _id: 1 } as never); // excluded client-side
    await src.db('other').collection('x').insertOne({ _id: 1 } as never); // filtered by the server
    await products.insertOne({ _id: 'second', n: new Int32(2) } as never);
    await products.deleteOne({ _id: 'second' } as never);

    const events = await take(stream, 5);
    await stream.close();
    assert.deepEqual(events.map((e) => `${e.operationType}:${e.ns.db}.${e.ns.coll}`), [
      'insert:bar.products',
      'update:bar.products',
      'insert:bar.tmp',
      'insert:bar.products',
      'delete:bar.products',
    ]);
    const envelopes: ChangeEnvelope[] = events.map((e) => envelopeFromChangeEvent(e)).filter((e) => rules.acceptsEnvelope(e));
    assert.equal(envelopes.length, 4);
    assert.equal(routingKey(envelopes[0]!), routingKey(envelopes[1]!), 'one document, one partition key');
    const wire = envelopes.map((e) => decodeEnvelope(encodeEnvelope(e)));

    const writer = new ApplyWriter({ client: dst, rules });
    const r = await writer.applyBatch(wire);
    assert.deepEqual(r.conflicts, []);
    const sourceDocs = await products.find({}, EXACT_BSON_OPTIONS).toArray();
    const targetDocs = await dst.db('bar_new').collection('products').find({}, EXACT_BSON_OPTIONS).toArray();
    assert.equal(targetDocs.length, 1);
    assert.equal(hex(targetDocs[0]!), hex(sourceDocs[0]!));
    assert.ok(targetDocs[0]!.double instanceof Double, 'an integral double stays a double');
  });

  it('flags invalidate events of a collection stream', async () => {
    const coll = src.db('inv').collection('c');
    await coll.insertOne({ _id: 1 } as never);
    const stream = coll.watch([], EXACT_BSON_OPTIONS);
    assert.equal(await stream.tryNext(), null);
    await coll.drop();
    const events = await take(stream, 2);
    await stream.close();
    assert.equal(envelopeFromChangeEvent(events[0]!).op, 'drop');
    assert.throws(() => envelopeFromChangeEvent(events[1]!), (err: Error) => err instanceof UnsupportedChangeEventError && err.kind === 'invalidate');
  });
});
