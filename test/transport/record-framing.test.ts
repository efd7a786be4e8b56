import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AGGREGATE_HEADER_BYTES,
  CHUNK_HEADER_BYTES,
  FRAME_MAGIC,
  FRAME_VERSION,
  FrameError,
  SINGLE_HEADER_BYTES,
  aggregateEntrySize,
  compress,
  decodeFrame,
  decompress,
  encodeAggregate,
  encodePayloadRecords,
  encodeSingle,
  joinChunks,
  maybeCompress,
  packRecord,
  recordIdOf,
  markBroadcast,
  stampRecordId,
  validPlacement,
  varintSize,
  type ChunkFrame,
  type Codec,
} from '../../src/transport/record-framing.js';
import { MAX_HASH_KEY, type HashKeyRange } from '../../src/transport/shard-map.js';
import { assertBytesEqual, prng, randInt, randomPayload } from './test-helpers.js';

const SPAN: HashKeyRange = { start: 123n, end: MAX_HASH_KEY - 5n };

describe('record framing: header layout', () => {
  it('writes magic, version, kind, codec flags, span and raw length at the documented offsets', () => {
    const payload = new Uint8Array([1, 2, 3]);
    const f = encodeSingle(payload, { start: 1n, end: MAX_HASH_KEY });
    assert.equal(f.length, SINGLE_HEADER_BYTES + 3);
    assert.equal(f[0], FRAME_MAGIC);
    assert.equal(f[0], 0xf5);
    assert.equal(f[1], FRAME_VERSION);
    assert.equal(f[2], 1); // single
    assert.equal(f[3], 0); // not compressed (too small)
    const view = new DataView(f.buffer, f.byteOffset, f.byteLength);
    assert.equal(view.getBigUint64(4), 0n);
    assert.equal(view.getBigUint64(12), 1n);
    assert.equal(view.getBigUint64(20), 0xffffffffffffffffn);
    assert.equal(view.getBigUint64(28), 0xffffffffffffffffn);
    assert.equal(view.getBigUint64(36), 0n); // record id: none until stamped
    assert.equal(view.getUint32(44), 3);
    assert.deepEqual([...f.subarray(48)], [1, 2, 3]);
    stampRecordId(f, 0x1122334455667788n);
    assert.equal(view.getBigUint64(36), 0x1122334455667788n);
    assert.equal(recordIdOf(f), 0x1122334455667788n);
    assert.equal(decodeFrame(f).recordId, 0x1122334455667788n);
  });

  it('aggregate: count at 48, varint-length entries', () => {
    const f = encodeAggregate([new Uint8Array([9]), new Uint8Array(200)], SPAN, { codec: 'none' });
    assert.equal(f[2], 2);
    const view = new DataView(f.buffer, f.byteOffset, f.byteLength);
    assert.equal(view.getUint32(48), 2);
    assert.equal(view.getUint32(44), 1 + 1 + 2 + 200);
    assert.equal(f.length, AGGREGATE_HEADER_BYTES + 204);
    assert.deepEqual([...f.subarray(52, 55)], [1, 9, 0xc8]); // len 1, byte 9, varint(200) = c8 01
    assert.equal(f[55], 0x01);
  });

  it('chunk: payload id, index, count, encoded length', () => {
    const payload = randomPayload(prng(1), 5000, false);
    const frames = encodePayloadRecords(payload, SPAN, 2000, 0xdeadbeef12345678n, { codec: 'none' });
    assert.equal(frames.length, 3);
    frames.forEach((f, i) => {
      assert.ok(f.length <= 2000);
      assert.equal(f[2], 3);
      const view = new DataView(f.buffer, f.byteOffset, f.byteLength);
      assert.equal(view.getBigUint64(48), 0xdeadbeef12345678n);
      assert.equal(view.getUint32(56), i);
      assert.equal(view.getUint32(60), 3);
      assert.equal(view.getUint32(64), 5000);
      assert.equal(view.getUint32(44), 5000);
    });
    assert.equal(CHUNK_HEADER_BYTES, 68);
  });

  it('broadcast flag (bit 2 of flags) and the placement rule', () => {
    const f = encodeSingle(new Uint8Array(300).fill(7), SPAN);
    assert.equal(decodeFrame(f).broadcast, false);
    markBroadcast(f);
    assert.equal(f[3] & 0x04, 0x04);
    assert.equal(decodeFrame(f).broadcast, true);
    const shard = { start: 100n, end: 200n };
    assert.ok(validPlacement(shard, { start: 100n, end: 150n }, false));
    assert.ok(!validPlacement(shard, { start: 99n, end: 150n }, false));
    assert.ok(!validPlacement(shard, { start: 100n, end: 150n }, true));
    assert.ok(validPlacement(shard, { start: 100n, end: 200n }, true));
  });

  it('varint sizes', () => {
    assert.equal(varintSize(0), 1);
    assert.equal(varintSize(127), 1);
    assert.equal(varintSize(128), 2);
    assert.equal(varintSize(16383), 2);
    assert.equal(varintSize(16384), 3);
    assert.equal(varintSize(16 * 1024 * 1024), 4);
    assert.equal(aggregateEntrySize(200), 202);
  });
});

describe('record framing: compression', () => {
  it('compresses compressible bodies, keeps small or incompressible ones raw', () => {
    const rand = prng(2);
    const text = randomPayload(rand, 10_000, true);
    const noise = randomPayload(rand, 10_000, false);
    assert.equal(maybeCompress(new Uint8Array(100).fill(1)).codec, 'none'); // below minBytes
    const c = maybeCompress(text);
    assert.equal(c.codec, 'brotli');
    assert.ok(c.body.length < text.length / 2);
    assert.equal(maybeCompress(noise).codec, 'none');
    assert.equal(maybeCompress(text, { codec: 'deflate-raw' }).codec, 'deflate-raw');
    assert.equal(maybeCompress(text, { codec: 'none' }).codec, 'none');
  });

  for (const codec of ['none', 'deflate-raw', 'brotli'] as Codec[]) {
    it(`${codec}: decompress(compress(x)) = x, and the raw length is enforced`, () => {
      const x = randomPayload(prng(3), 4096, true);
      const y = compress(x, codec);
      assertBytesEqual(decompress(y, codec, x.length), x);
      assert.throws(() => decompress(y, codec, x.length - 1), FrameError);
    });
  }
});

describe('record framing: decoding rejects malformed frames', () => {
  const good = encodeAggregate([new Uint8Array(10), new Uint8Array(20)], SPAN, { codec: 'none' });
  const mutate = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = new Uint8Array(good);
    f(b);
    return b;
  };
  const cases: Array<[string, Uint8Array]> = [
    ['too short', good.subarray(0, 10)],
    ['bad magic', mutate((b) => (b[0] = 0x7b))],
    ['unknown version', mutate((b) => (b[1] = 2))],
    ['unknown kind', mutate((b) => (b[2] = 9))],
    ['reserved flag bits', mutate((b) => (b[3] = 0x80))],
    ['unknown codec', mutate((b) => (b[3] = 3))],
    ['wrong raw length', mutate((b) => (b[47] = b[47] + 1))],
    ['wrong count', mutate((b) => (b[51] = 3))],
    ['truncated body', good.subarray(0, good.length - 1)],
    ['span low > high', mutate((b) => b.fill(0xff, 4, 20))],
  ];
  for (const [name, data] of cases) {
    it(name, () => assert.throws(() => decodeFrame(data), FrameError));
  }
  it('JSON text is not a frame', () => assert.throws(() => decodeFrame(Buffer.from(JSON.stringify({ a: 'x'.repeat(60) }))), /bad magic/));
  it('joinChunks refuses incomplete or out-of-order chunk lists', () => {
    const frames = encodePayloadRecords(randomPayload(prng(4), 3000, false), SPAN, 1200, 7n, { codec: 'none' }).map(
      (f) => decodeFrame(f) as ChunkFrame,
    );
    assert.ok(frames.length >= 3);
    assert.throws(() => joinChunks(frames.slice(0, -1)), FrameError);
    assert.throws(() => joinChunks([frames[1], frames[0], ...frames.slice(2)]), FrameError);
  });
});

describe('record framing: randomized round trips (property style)', () => {
  it('single / aggregate / chunked payloads decode to the input, every record within the size limit', () => {
    const seed = Number(process.env.FRAMING_SEED ?? 20240601);
    const rand = prng(seed);
    for (let iter = 0; iter < 150; iter++) {
      const maxData = randInt(rand, 300, 40_000);
      const codec = (['none', 'deflate-raw', 'brotli'] as Codec[])[randInt(rand, 0, 2)];
      const options = { codec, minBytes: randInt(rand, 0, 512) };
      const compressible = rand() < 0.5;
      const ctx = `seed=${seed} iter=${iter} maxData=${maxData} codec=${codec}`;
      // one payload of any size, framed as single or chunks
      const size = rand() < 0.3 ? randInt(rand, 0, 64) : randInt(rand, 0, maxData * 4);
      const p = randomPayload(rand, size, compressible);
      const frames = encodePayloadRecords(p, SPAN, maxData, BigInt(iter), options);
      for (const f of frames) assert.ok(f.length <= maxData, `${ctx}: frame ${f.length} > ${maxData}`);
      const decoded = frames.map((f) => decodeFrame(f));
      if (decoded.length === 1) {
        assert.equal(decoded[0].kind, 'single', ctx);
        assertBytesEqual((decoded[0] as { payload: Uint8Array }).payload, p, ctx);
      } else {
        assert.ok(decoded.every((d) => d.kind === 'chunk'), ctx);
        assertBytesEqual(joinChunks(decoded as ChunkFrame[]), p, ctx);
      }
      for (const d of decoded) assert.deepEqual(d.span, SPAN, ctx);

      // a run of payloads packed into records in order
      const maxEach = maxData - AGGREGATE_HEADER_BYTES - 4;
      const list = Array.from({ length: randInt(rand, 1, 200) }, () =>
        randomPayload(rand, rand() < 0.8 ? randInt(rand, 0, Math.min(400, maxEach)) : randInt(rand, 0, maxEach), compressible),
      );
      const out: Uint8Array[] = [];
      let rest = list;
      const packFactor = rand() < 0.5 ? 1 : 1 + rand() * 7;
      while (rest.length > 0) {
        const r = packRecord(rest, (n) => ({ start: BigInt(n), end: BigInt(n) }), maxData, { ...options, packFactor });
        assert.ok(r.count >= 1 && r.count <= rest.length, ctx);
        assert.ok(r.frame.length <= maxData, `${ctx}: packed ${r.frame.length} > ${maxData}`);
        const d = decodeFrame(r.frame);
        assert.deepEqual(d.span, { start: BigInt(r.count), end: BigInt(r.count) }, ctx);
        const got = d.kind === 'single' ? [d.payload] : d.kind === 'aggregate' ? d.payloads : assert.fail('chunk from packRecord');
        assert.equal(got.length, r.count, ctx);
        out.push(...got);
        rest = rest.slice(r.count);
      }
      assert.equal(out.length, list.length, ctx);
      out.forEach((x, i) => assertBytesEqual(x, list[i], `${ctx} payload ${i}`));
    }
  });

  it('packs many small compressible payloads into one record (aggregation)', () => {
    const rand = prng(9);
    const list = Array.from({ length: 5000 }, () => randomPayload(rand, 200, true));
    const one = packRecord(list, () => SPAN, 1024 * 1024 - 32, { packFactor: 1 });
    assert.ok(one.count >= 4000, `count ${one.count}`);
    assert.equal(one.codec, 'brotli');
    const dense = packRecord(list, () => SPAN, 256 * 1024, { packFactor: 8 });
    assert.ok(dense.count > (256 * 1024) / 202, `packFactor should fit more than the raw budget: ${dense.count}`);
    assert.ok(dense.frame.length <= 256 * 1024);
  });

  it('a payload that compresses below the limit travels as one record', () => {
    const p = randomPayload(prng(5), 3 * 1024 * 1024, true);
    const frames = encodePayloadRecords(p, SPAN, 1024 * 1024 - 32, 1n);
    assert.equal(frames.length, 1);
    assertBytesEqual((decodeFrame(frames[0]) as { payload: Uint8Array }).payload, p);
  });

  it('a 16 MiB incompressible payload splits into ordered chunks within 1 MiB records', () => {
    const p = randomPayload(prng(6), 16 * 1024 * 1024, false);
    const frames = encodePayloadRecords(p, SPAN, 1024 * 1024 - 32, 99n);
    assert.equal(frames.length, 17);
    assert.ok(frames.every((f) => f.length <= 1024 * 1024 - 32));
    assertBytesEqual(joinChunks(frames.map((f) => decodeFrame(f) as ChunkFrame)), p);
  });
});
