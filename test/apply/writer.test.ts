// Integration tests of the apply writer against the MongoDB emulator and FerretDB.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BSON, Double, Int32, Long, ObjectId, type Document } from 'mongodb';
import type { Collection, MongoClient } from 'mongodb';
import { EXACT_BSON_OPTIONS, decodeEnvelope, encodeEnvelope, type ChangeEnvelope, type CollectionNamespace } from '../../src/model/change-envelope.js';
import { NamespaceRules } from '../../src/model/namespace-filter.js';
import { ApplyWriter, type ApplyResult } from '../../src/apply/writer.js';
import { ApplyWriteError, UnmappableDdlError } from '../../src/apply/errors.js';
import { storableAllTypesDocument } from '../support/bson-samples.js';
import { barrier, del, drop, dropDb, ins, rename, rep, updDelta, updFull } from './helpers.js';
import { Clock } from '../support/stream-positions.js';
import { TARGETS, prng, type TestTarget } from './targets.js';

const hex = (d: Document) => Buffer.from(BSON.serialize(d)).toString('hex');
const idHex = (id: unknown) => hex({ _id: id });

async function snapshot(coll: Collection): Promise<string[]> {
  const docs = await coll.find({}, EXACT_BSON_OPTIONS).toArray();
  return docs.map(hex).sort();
}

/** Applies envelopes in random-sized batches, through the BSON encoding like the real pipeline. */
async function applyInBatches(writer: ApplyWriter, envelopes: ChangeEnvelope[], rnd: () => number, maxBatch = 8): Promise<ApplyResult[]> {
  const results: ApplyResult[] = [];
  for (let i = 0; i < envelopes.length; ) {
    const n = 1 + Math.floor(rnd() * maxBatch);
    const batch = envelopes.slice(i, i + n).map((e) => decodeEnvelope(encodeEnvelope(e)));
    results.push(await writer.applyBatch(batch));
    i += n;
  }
  return results;
}

/** A random stream over a few documents with mixed _id types, and the source's final state. */
function randomStream(seed: number, ns: CollectionNamespace, length: number) {
  const rnd = prng(seed);
  const clock = new Clock();
  const ids: unknown[] = [1, 2, new Int32(3), 'a', 'b', new ObjectId('65a1b2c3d4e5f60718293a4b'), { k: 1, s: 'x' }, new Double(2.5), Long.fromInt(9)];
  const state = new Map<string, Document>();
  const envelopes: ChangeEnvelope[] = [];
  const value = () => {
    const r = rnd();
    if (r < 0.25) return new Int32(Math.floor(rnd() * 100));
    if (r < 0.5) return new Double(Math.floor(rnd() * 100)); // integral doubles must stay doubles
    if (r < 0.75) return `s${Math.floor(rnd() * 100)}`;
    return { nested: new Int32(Math.floor(rnd() * 10)), list: [new Int32(1), 'two'] };
  };
  const fields = ['f1', 'f2', 'f3', 'f4'];
  for (let n = 0; n < length; n++) {
    const id = ids[Math.floor(rnd() * ids.length)];
    const key = idHex(id);
    const cur = state.get(key);
    const r = rnd();
    if (!cur) {
      const doc: Document = { _id: id, f1: value(), seq: new Int32(n) };
      state.set(key, doc);
      envelopes.push(ins(clock, doc, ns));
    } else if (r < 0.2) {
      state.delete(key);
      envelopes.push(del(clock, id, ns));
    } else if (r < 0.4) {
      const doc: Document = { _id: id, [fields[Math.floor(rnd() * 4)]!]: value(), seq: new Int32(n) };
      state.set(key, doc);
      envelopes.push(rep(clock, doc, ns));
    } else if (r < 0.7) {
      const doc: Document = { ...cur, seq: new Int32(n), [fields[Math.floor(rnd() * 4)]!]: value() };
      state.set(key, doc);
      envelopes.push(updFull(clock, doc, id, ns));
    } else {
      // Delta update on top-level fields: $set (existing fields keep their place, new ones go last) and $unset.
      const setField = fields[Math.floor(rnd() * 4)]!;
      const unsetField = fields.filter((f) => f !== setField)[Math.floor(rnd() * 3)]!;
      const v = value();
      const next: Document = {};
      for (const [k, val] of Object.entries(cur)) if (k !== unsetField) next[k] = k === setField ? v : val;
      if (!(setField in cur)) next[setField] = v;
      state.set(key, next);
      envelopes.push(updDelta(clock, id, { updatedFields: { [setField]: v }, removedFields: unsetField in cur ? [unsetField] : [] }, ns));
    }
  }
  return { envelopes, final: [...state.values()].map(hex).sort() };
}

for (const kind of TARGETS) {
  describe(`ApplyWriter on ${kind.name}`, { timeout: 120_000 }, () => {
    let target: TestTarget;
    let client: MongoClient;
    before(async () => {
      target = await kind.start();
      client = target.client;
    });
    after(async () => {
      await target?.stop();
    });

    it('applies insert/replace/update/delete on the mapped namespace and is idempotent', async () => {
      const rules = new NamespaceRules({ map: ['bar:bar_new'] });
      const writer = new ApplyWriter({ client, rules });
      const c = new Clock();
      const stream = [
        ins(c, { _id: 1, name: 'one', reviews: [] }),
        ins(c, { _id: 2, name: 'two' }),
        updFull(c, { _id: 1, name: 'one', reviews: [{ stars: new Int32(5) }] }, 1),
        rep(c, { _id: 2, renamed: true }),
        ins(c, { _id: 3, name: 'three' }),
        del(c, 3),
        del(c, 404), // delete of a missing document
      ];
      const r = await writer.applyBatch(stream);
      assert.deepEqual(r.conflicts, []);
      assert.equal(r.stats.upserts, 2);
      assert.equal(r.stats.deletes, 2);
      assert.equal(r.stats.collapsed, 3);
      const coll = client.db('bar_new').collection('products');
      const docs = await coll.find({}).sort({ _id: 1 }).toArray();
      assert.deepEqual(docs, [
        { _id: 1, name: 'one', reviews: [{ stars: 5 }] },
        { _id: 2, renamed: true },
      ]);
      assert.equal(await client.db('bar').collection('products').countDocuments(), 0, 'nothing written under the source name');
      // Fields removed on the source are removed on the target (replace, not $set).
      const again = await writer.applyBatch(stream);
      assert.deepEqual(again.conflicts, []);
      assert.deepEqual(await coll.find({}).sort({ _id: 1 }).toArray(), docs);
    });

    it('writes decoded values so the target holds the identical BSON document', async () => {
      const writer = new ApplyWriter({ client, rules: new NamespaceRules() });
      const doc = storableAllTypesDocument(); // $-prefixed and empty top-level names are not replaceable everywhere
      if (kind.name === 'FerretDB') {
        // FerretDB v1 does not store these types (it rejects them): tested on the emulator only.
        for (const k of Object.keys(doc)) {
          const t = (doc[k] as { _bsontype?: string })?._bsontype;
          if (['Decimal128', 'Code', 'BSONSymbol', 'MinKey', 'MaxKey', 'DBRef'].includes(t ?? '')) delete doc[k];
        }
        for (const k of ['nan', 'inf', 'negZero', 'binFunction', 'binOld', 'binUuidOld', 'binMd5', 'binEncrypted', 'binColumn', 'binSensitive', 'binVector', 'binUser']) delete doc[k];
        doc.arr = [new Int32(1), { k: 'v' }, {}]; // nor nested arrays
        delete doc['dotted.name']; // nor dots in field names
      }
      const c = new Clock();
      const e = decodeEnvelope(encodeEnvelope(ins(c, doc, { db: 'types', coll: 'all' })));
      const r = await writer.applyBatch([e]);
      assert.equal(r.stats.upserts, 1);
      const coll = client.db('types').collection('all');
      const [stored] = await coll.find({}, EXACT_BSON_OPTIONS).toArray();
      assert.equal(hex(stored!), hex(doc));
      // A delta update carrying typed values keeps them too.
      const u = decodeEnvelope(encodeEnvelope(updDelta(c, doc._id, { updatedFields: { double: new Double(7), added: Long.fromInt(1) }, removedFields: ['str'] }, { db: 'types', coll: 'all' })));
      await writer.applyBatch([u]);
      const [after] = await coll.find({}, EXACT_BSON_OPTIONS).toArray();
      assert.ok(after!.double instanceof Double);
      assert.ok(after!.added instanceof Long);
      assert.equal('str' in after!, false);
    });

    it('replaying any suffix of a random stream leaves the same target', async () => {
      const ns = { db: 'rand', coll: 'docs' };
      const { envelopes, final } = randomStream(20240229, ns, 200);
      const writer = new ApplyWriter({ client, rules: new NamespaceRules() });
      const rnd = prng(7);
      const coll = client.db(ns.db).collection(ns.coll);
      const first = await applyInBatches(writer, envelopes, rnd);
      assert.ok(first.every((r) => r.conflicts.length === 0));
      assert.deepEqual(await snapshot(coll), final, 'target equals the source state');
      for (let round = 0; round < 6; round++) {
        const start = Math.floor(rnd() * envelopes.length);
        await applyInBatches(writer, envelopes.slice(start), rnd);
        assert.deepEqual(await snapshot(coll), final, `after replaying from #${start}`);
      }
      // A capture restart re-sends events: with the shard's last applied position, nothing regresses.
      const last = envelopes[envelopes.length - 1]!;
      const resent = await writer.applyBatch(envelopes.slice(100).map((e) => decodeEnvelope(encodeEnvelope(e))), { after: { ct: last.ct, rt: last.rt } });
      assert.equal(resent.stats.skipped, 100);
      assert.equal(resent.stats.upserts + resent.stats.deletes + resent.stats.updates, 0);
      assert.deepEqual(await snapshot(coll), final);
    });

    it('applies array truncations from update descriptions', { skip: kind.name === 'FerretDB' && 'FerretDB v1 ignores the $slice modifier of $push' }, async () => {
      const writer = new ApplyWriter({ client, rules: new NamespaceRules() });
      const c = new Clock();
      const ns = { db: 'delta', coll: 'arrays' };
      await writer.applyBatch([
        ins(c, { _id: 1, list: [1, 2, 3, 4, 5], keep: true }, ns),
        updDelta(c, 1, { updatedFields: { 'list.1': 20 }, truncatedArrays: [{ field: 'list', newSize: 3 }] }, ns),
      ]);
      assert.deepEqual(await client.db(ns.db).collection(ns.coll).findOne({ _id: 1 as never }), { _id: 1, list: [1, 20, 3], keep: true });
    });

    it('resolves a unique-value swap and reports what it cannot resolve', async () => {
      const ns = { db: 'uniq', coll: 'items' };
      const coll = client.db(ns.db).collection(ns.coll);
      await coll.createIndex({ sku: 1 }, { unique: true });
      const writer = new ApplyWriter({ client, rules: new NamespaceRules() });
      const c = new Clock();
      await writer.applyBatch([ins(c, { _id: 'A', sku: 'x' }, ns), ins(c, { _id: 'B', sku: 'y' }, ns), ins(c, { _id: 'C', sku: 'c' }, ns)]);
      if (kind.name === 'FerretDB') {
        // FerretDB v1 (SQLite) reports a unique violation as an internal error (code 1) for the
        // whole command, not as a per-op E11000: it cannot be resolved, but must surface clearly.
        await assert.rejects(
          writer.applyBatch([updFull(c, { _id: 'B', sku: 'x' }, 'B', ns)]),
          (err: Error) => err instanceof ApplyWriteError && /in uniq\.items/.test(err.message) && /UNIQUE constraint failed/.test(err.message),
        );
        return;
      }
      // Source: A x→tmp, B y→x, A tmp→y (a swap through a temporary value), C c→y2 (unrelated).
      const swap = await writer.applyBatch([
        updFull(c, { _id: 'A', sku: 'tmp' }, 'A', ns),
        updFull(c, { _id: 'B', sku: 'x' }, 'B', ns),
        updFull(c, { _id: 'A', sku: 'y' }, 'A', ns),
        updFull(c, { _id: 'C', sku: 'c2' }, 'C', ns),
      ]);
      assert.deepEqual(swap.conflicts, []);
      assert.equal(swap.stats.upserts, 3);
      assert.deepEqual(await coll.find({}).sort({ _id: 1 }).toArray(), [
        { _id: 'A', sku: 'y' },
        { _id: 'B', sku: 'x' },
        { _id: 'C', sku: 'c2' },
      ]);
      // A chain: A gives x up, B takes it (works whatever order the bulk runs in).
      const chain = await writer.applyBatch([updFull(c, { _id: 'B', sku: 'z' }, 'B', ns), updFull(c, { _id: 'A', sku: 'x' }, 'A', ns)]);
      assert.deepEqual(chain.conflicts, []);
      // D wants C's value, but C's change is not in this batch (another shard lags): reported.
      const stuck = await writer.applyBatch([ins(c, { _id: 'D', sku: 'c2' }, ns), ins(c, { _id: 'E', sku: 'e' }, ns)]);
      assert.equal(stuck.stats.upserts, 1);
      assert.equal(stuck.stats.conflicts, 1);
      assert.equal(stuck.conflicts.length, 1);
      assert.equal(stuck.conflicts[0]!.index, 0);
      assert.deepEqual(stuck.conflicts[0]!.key, { _id: 'D' });
      assert.equal(stuck.conflicts[0]!.code, 11000);
      assert.equal(stuck.conflicts[0]!.op, 'upsert');
      // Once the other shard moved C away, re-applying the batch resolves it.
      await writer.applyBatch([updFull(c, { _id: 'C', sku: 'c3' }, 'C', ns)]);
      const retried = await writer.applyBatch([ins(c, { _id: 'D', sku: 'c2' }, ns)]);
      assert.deepEqual(retried.conflicts, []);
      assert.deepEqual(await coll.findOne({ _id: 'D' as never }), { _id: 'D', sku: 'c2' });
    });

    it('applies DDL in order, idempotently, on mapped namespaces', async () => {
      const rules = new NamespaceRules({ include: ['shop.p*', 'keep.*'], map: ['shop:shop_t'] });
      const progress: number[] = [];
      const writer = new ApplyWriter({ client, rules });
      const c = new Clock();
      const p = { db: 'shop', coll: 'p' };
      const stream = [
        ins(c, { _id: 1 }, p),
        ins(c, { _id: 2 }, p),
        rename(c, p, { db: 'shop', coll: 'p2' }), // #2
        ins(c, { _id: 3 }, p), // a new 'p' after the rename
        drop(c, { db: 'shop', coll: 'pgone' }), // #4: dropping a collection the target never had
        barrier(c, 'cut-1'),
      ];
      const t = client.db('shop_t');
      const expectTarget = async () => {
        assert.deepEqual(await t.collection('p2').find({}).sort({ _id: 1 }).toArray(), [{ _id: 1 }, { _id: 2 }]);
        assert.deepEqual(await t.collection('p').find({}).toArray(), [{ _id: 3 }]);
      };
      // A crash right after the rename, before its checkpoint: the replay starts AT the rename
      // (onProgress checkpoints right before and right after each DDL, so never earlier).
      await writer.applyBatch(stream.slice(0, 3));
      const r = await writer.applyBatch(stream.slice(2), { onProgress: async (x) => void progress.push(x.upToIndex) });
      assert.deepEqual(progress, [0, 1, 2], 'after the rename, before and after the drop (indexes in the batch)');
      assert.equal(r.stats.ddl, 2);
      assert.deepEqual(r.barriers, [{ id: 'cut-1', index: 3 }]);
      await expectTarget();
      // Replaying anything after the rename gives the same target.
      for (let start = 3; start < stream.length; start++) {
        await writer.applyBatch(stream.slice(start));
        await expectTarget();
      }
      // A replaced target: the rename's dropTarget semantics.
      await writer.applyBatch([ins(c, { _id: 9 }, { db: 'shop', coll: 'p3' }), rename(c, { db: 'shop', coll: 'p2' }, { db: 'shop', coll: 'p3' })]);
      assert.deepEqual(await t.collection('p3').find({}).sort({ _id: 1 }).toArray(), [{ _id: 1 }, { _id: 2 }]);

      // Rename out of the migrated set: the collection disappears from the target.
      await writer.applyBatch([rename(c, { db: 'shop', coll: 'p' }, { db: 'other', coll: 'p' })]);
      assert.equal((await t.listCollections({ name: 'p' }).toArray()).length, 0);
      // Rename into the set from outside: the documents never travelled.
      await assert.rejects(
        writer.applyBatch([rename(c, { db: 'other', coll: 'x' }, { db: 'shop', coll: 'px' })]),
        (err: Error) => err instanceof UnmappableDdlError && /Re-run the initial load of shop\.px/.test(err.message),
      );

      // dropDatabase drops only the collections that come from the dropped database
      // (shop_t.not_ours would come from shop.not_ours, which the filter excludes).
      await t.collection('not_ours').insertOne({ _id: 1 } as never);
      const keep = { db: 'keep', coll: 'k' };
      await writer.applyBatch([ins(c, { _id: 1 }, keep), dropDb(c, 'shop')]);
      const left = (await t.listCollections({}, { nameOnly: true }).toArray()).map((x) => x.name).sort();
      assert.deepEqual(left, ['not_ours']);
      assert.equal(await client.db('keep').collection('k').countDocuments(), 1);
      // Dropping again (replay) is fine.
      await writer.applyBatch([dropDb(c, 'shop'), drop(c, { db: 'shop', coll: 'p3' })]);
    });

    it('renames across databases when a database map splits them', async () => {
      const rules = new NamespaceRules({ map: ['src1:dst1'] });
      const writer = new ApplyWriter({ client, rules });
      const c = new Clock();
      await writer.applyBatch([ins(c, { _id: 1 }, { db: 'src1', coll: 'a' })]);
      const move = writer.applyBatch([rename(c, { db: 'src1', coll: 'a' }, { db: 'src2', coll: 'a' })]);
      if (kind.name === 'FerretDB') {
        // FerretDB has no cross-database rename: a clear, typed error instead.
        await assert.rejects(move, (err: Error) => err instanceof UnmappableDdlError && /cross-database rename dst1\.a → src2\.a/.test(err.message));
        return;
      }
      await move;
      assert.deepEqual(await client.db('src2').collection('a').find({}).toArray(), [{ _id: 1 }]);
      assert.equal((await client.db('dst1').listCollections({ name: 'a' }).toArray()).length, 0);
    });

    it('skips envelopes outside the namespace filter and never writes protected namespaces', async () => {
      const writer = new ApplyWriter({ client, rules: new NamespaceRules({ include: ['only.*'] }) });
      const c = new Clock();
      const r = await writer.applyBatch([
        ins(c, { _id: 1 }, { db: 'only', coll: 'a' }),
        ins(c, { _id: 1 }, { db: 'skipme', coll: 'a' }),
        ins(c, { _id: 1 }, { db: 'migrator_state', coll: 'x' }),
        ins(c, { _id: 1 }, { db: 'only', coll: 'system.views' }),
      ]);
      assert.equal(r.stats.upserts, 1);
      assert.equal(r.stats.skipped, 3);
      assert.equal(await client.db('skipme').collection('a').countDocuments(), 0);
    });
  });
}

describe('ApplyWriter error handling (emulator failpoints)', { timeout: 60_000 }, () => {
  let target: TestTarget;
  before(async () => {
    target = await TARGETS.find((t) => t.name === 'emulator')!.start();
  });
  after(async () => {
    await target?.stop();
  });
  const failCommand = (mode: unknown, data: Document) =>
    target.client.db('admin').command({ configureFailPoint: 'failCommand', mode, data });

  it('retries transient errors (primary step-down, dropped connection) with backoff', async () => {
    const writer = new ApplyWriter({
      client: target.client,
      rules: new NamespaceRules(),
      retryPolicy: { maxAttempts: 6, initialDelayMs: 1, maxDelayMs: 5 },
    });
    const c = new Clock();
    const ns = { db: 'flaky', coll: 'c' };
    await failCommand({ times: 3 }, { failCommands: ['update'], errorCode: 10107, errorLabels: ['RetryableWriteError'] });
    const r = await writer.applyBatch([ins(c, { _id: 1, v: 1 }, ns), ins(c, { _id: 2, v: 1 }, ns)]);
    assert.equal(r.stats.upserts, 2);
    // Retried by the driver (with a client-side timeoutMS it retries a retryable write for as long
    // as the timeout allows) or by the writer after the driver gave up: either way it landed once.
    await failCommand({ times: 2 }, { failCommands: ['delete'], closeConnection: true });
    const d = await writer.applyBatch([del(c, 1, ns)]);
    assert.equal(d.stats.deletes, 1);
    assert.deepEqual(await target.client.db(ns.db).collection(ns.coll).find({}).toArray(), [{ _id: 2, v: 1 }]);
  });

  it('surfaces non-transient errors with the namespace, and gives up on endless transient ones', async () => {
    // The driver itself retries a retryable error (91 carries RetryableWriteError) for as long as
    // the write timeout allows: each of the writer's attempts is bounded by it.
    const writer = new ApplyWriter({
      client: target.client,
      rules: new NamespaceRules(),
      retryPolicy: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 },
      writeTimeoutMs: 1_000,
    });
    const c = new Clock();
    const ns = { db: 'flaky', coll: 'd' };
    await failCommand({ times: 1 }, { failCommands: ['update'], errorCode: 13, errmsg: 'not authorized' });
    await assert.rejects(writer.applyBatch([ins(c, { _id: 1 }, ns)]), (err: Error) => err instanceof ApplyWriteError && /flaky\.d/.test(err.message));
    await failCommand('alwaysOn', { failCommands: ['update'], errorCode: 91 });
    try {
      await assert.rejects(writer.applyBatch([ins(c, { _id: 2 }, ns)]), /still failing after 3 attempts/);
    } finally {
      await failCommand('off', {});
    }
  });
});
