/**
 * Compression options for the producer's record bodies, on aggregates of real envelopes built from
 * the benchmark's synthetic change events: ratio and MB/s of compression and decompression.
 * `npx tsx bench/compression.ts [bytes=1024] [rawKiB=1024]`
 */
import zlib from 'node:zlib';
import { BSON } from 'mongodb';
import { EXACT_BSON_OPTIONS, encodeEnvelope, envelopeFromChangeEvent } from '../src/model/change-envelope.js';
import { encodeAggregateEntries } from '../src/transport/record-framing.js';
import { ChangeEventGenerator } from './lib/change-events.js';
import { MIXES } from './lib/workload.js';

const bytes = Number(process.argv[2] ?? 1024);
const rawKiB = Number(process.argv[3] ?? 1024);
const gen = new ChangeEventGenerator(bytes, MIXES.mixed!);
const payloads: Uint8Array[] = [];
let size = 0;
while (size < rawKiB * 1024) {
  const e = BSON.deserialize(BSON.serialize(gen.next()), EXACT_BSON_OPTIONS);
  const p = encodeEnvelope(envelopeFromChangeEvent(e));
  payloads.push(p);
  size += p.length + 2;
}
const raw = encodeAggregateEntries(payloads);
const codecs: Array<[string, (b: Uint8Array) => Buffer, (b: Buffer) => Buffer]> = [
  ['brotli q4 (current)', (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }), (b) => zlib.brotliDecompressSync(b)],
  ['brotli q2', (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 2, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }), (b) => zlib.brotliDecompressSync(b)],
  ['brotli q1', (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }), (b) => zlib.brotliDecompressSync(b)],
  ['deflate-raw 1', (b) => zlib.deflateRawSync(b, { level: 1 }), (b) => zlib.inflateRawSync(b)],
  ['deflate-raw 6', (b) => zlib.deflateRawSync(b, { level: 6 }), (b) => zlib.inflateRawSync(b)],
];
console.log(`${payloads.length} envelopes of ${bytes} B documents, ${(raw.length / 1048576).toFixed(2)} MiB raw aggregate`);
for (const [name, c, d] of codecs) {
  const reps = 8;
  let out = c(raw);
  let t = performance.now();
  for (let i = 0; i < reps; i++) out = c(raw);
  const cMs = (performance.now() - t) / reps;
  t = performance.now();
  for (let i = 0; i < reps; i++) d(out);
  const dMs = (performance.now() - t) / reps;
  const mb = raw.length / 1e6;
  console.log(`${name.padEnd(20)} ratio ${(out.length / raw.length).toFixed(3)}  compress ${(mb / (cMs / 1000)).toFixed(0).padStart(4)} MB/s (${((cMs * 1000) / payloads.length).toFixed(2)} µs/event)  decompress ${(mb / (dMs / 1000)).toFixed(0).padStart(4)} MB/s (${((dMs * 1000) / payloads.length).toFixed(2)} µs/event)`);
}
