/**
 * Binary framing of Kinesis record data: one record carries one payload, an aggregate of many
 * payloads (all for the same shard), or one chunk of a payload too large for a single record.
 * Payloads are opaque bytes. Pure functions (node:zlib sync codecs), no I/O.
 *
 * Frame layout, version 1 (all integers big-endian)
 * -----------------------------------------------
 *  offset size  field
 *   0      1    magic 0xF5 (a byte that never occurs in UTF-8 text, so a frame is never mistaken
 *               for a JSON record)
 *   1      1    version = 1 (decoders reject versions they do not know)
 *   2      1    kind: 1 = single payload, 2 = aggregate, 3 = chunk
 *   3      1    flags: bits 0-1 = body codec (0 none, 1 deflate-raw, 2 brotli);
 *               bit 2 = BROADCAST: the record carries a broadcast copy; bits 3-7 reserved, 0
 *   4     16    span low:  smallest hash key (uint128) of the payloads in this record
 *  20     16    span high: largest hash key (uint128) of the payloads in this record
 *               (a broadcast copy spans the whole range of the shard it is meant for).
 *               PLACEMENT RULE (readers drop other records; the producer applies the same rule to
 *               the ShardId Kinesis reports and re-sends what readers drop): a record is valid in a
 *               shard whose HashKeyRange contains its span; a BROADCAST record only in a shard whose
 *               HashKeyRange equals its span. A record breaks the rule when a reshard raced its write.
 *  36      8    record id (uint64; 0 = none): high 32 bits = the producer's random nonce, low 32 bits
 *               = its record counter. Stamped by the producer, unchanged when the same record is
 *               re-sent after a failure. A reader drops a record whose id it has just seen from the
 *               same producer in the shard (or at the end of a parent shard): the duplicate a
 *               retried write leaves when the failed attempt had in fact been stored.
 *  44      4    raw length: uncompressed body length (single: payload length; aggregate: length of
 *               the entry list; chunk: length of the whole reassembled payload)
 *  kind = single (header 48 bytes):
 *  48      …    body = codec(payload)
 *  kind = aggregate (header 52 bytes):
 *  48      4    entry count (≥ 1)
 *  52      …    body = codec(entries), entries = count × (LEB128 varint length, payload bytes)
 *  kind = chunk (header 68 bytes):
 *  48      8    payload id (uint64: producer nonce << 32 | counter; a restarted payload gets a new one)
 *  56      4    chunk index (0-based)
 *  60      4    chunk count (≥ 2)
 *  64      4    encoded length: length of codec(payload), the byte string the chunks split
 *  68      …    body = bytes [offset, offset + n) of codec(payload); the codec in flags applies to
 *               the reassembled whole, not to each chunk
 *
 * Compression: brotli quality 4 by default. Measured on Node 20 (no zstd in node:zlib before
 * v22.15) on ~290-byte BSON change events aggregated to 1.4 MB: brotli-4 ratio 0.071 at ~230 MB/s,
 * deflate-6 0.075 at ~127 MB/s, deflate-1 0.104 at ~460 MB/s, brotli-5 0.058 at ~116 MB/s; on 3 MiB of
 * random bytes brotli-4 gives up in ~9 ms where deflate takes ~70 ms. A body is compressed only
 * when it is at least `minBytes` long and the result saves at least `minSaving` of it.
 */
import zlib from 'node:zlib';
import type { HashKeyRange } from './shard-map.js';

export const FRAME_MAGIC = 0xf5;
export const FRAME_VERSION = 1;

export const FRAME_KIND_SINGLE = 1;
export const FRAME_KIND_AGGREGATE = 2;
export const FRAME_KIND_CHUNK = 3;

export const COMMON_HEADER_BYTES = 48;
export const SINGLE_HEADER_BYTES = COMMON_HEADER_BYTES;
export const AGGREGATE_HEADER_BYTES = COMMON_HEADER_BYTES + 4;
export const CHUNK_HEADER_BYTES = COMMON_HEADER_BYTES + 20;

/**
 * Readers abandon a chunked payload whose chunks span more than this much arrival time (its
 * producer died); producers restart a chunked payload taking longer than half of it.
 */
export const CHUNK_ASSEMBLY_TIMEOUT_MS = 10 * 60_000;

/** flags bit 2: the record carries a broadcast copy. */
export const FLAG_BROADCAST = 0x04;

export type Codec = 'none' | 'deflate-raw' | 'brotli';
const CODEC_IDS: Record<Codec, number> = { none: 0, 'deflate-raw': 1, brotli: 2 };
const CODECS_BY_ID: Codec[] = ['none', 'deflate-raw', 'brotli'];

export interface CompressionOptions {
  /** Codec tried on bodies (default 'brotli'). 'none' disables compression. */
  codec?: Codec;
  /** brotli quality 0-11 (default 4) or deflate level 0-9 (default 6). */
  level?: number;
  /** Bodies shorter than this are never compressed (default 256). */
  minBytes?: number;
  /** Keep the compressed body only when it saves at least this fraction (default 0.1). */
  minSaving?: number;
}

export class FrameError extends Error {
  override name = 'FrameError';
}

// ---------------------------------------------------------------------------------------------
// codecs

export function compress(raw: Uint8Array, codec: Codec, level?: number): Uint8Array {
  switch (codec) {
    case 'none':
      return raw;
    case 'deflate-raw':
      return zlib.deflateRawSync(raw, { level: level ?? 6 });
    case 'brotli':
      return zlib.brotliCompressSync(raw, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: level ?? 4,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
        },
      });
  }
}

/** Decompresses, refusing to produce more than `rawLength` bytes (guards against corrupt frames). */
export function decompress(encoded: Uint8Array, codec: Codec, rawLength: number): Uint8Array {
  let out: Uint8Array;
  try {
    switch (codec) {
      case 'none':
        out = encoded;
        break;
      case 'deflate-raw':
        out = zlib.inflateRawSync(encoded, { maxOutputLength: Math.max(1, rawLength) });
        break;
      case 'brotli':
        out = zlib.brotliDecompressSync(encoded, { maxOutputLength: Math.max(1, rawLength) });
        break;
    }
  } catch (err) {
    throw new FrameError(`cannot decompress ${codec} body: ${(err as Error).message}`);
  }
  if (out.length !== rawLength) throw new FrameError(`decoded body is ${out.length} bytes, header says ${rawLength}`);
  // Plain Uint8Array view (zlib returns Buffers): payloads are Uint8Array everywhere.
  return Buffer.isBuffer(out) ? new Uint8Array(out.buffer, out.byteOffset, out.length) : out;
}

/** Compresses `raw` when that helps (see {@link CompressionOptions}); otherwise returns it as is. */
export function maybeCompress(raw: Uint8Array, options: CompressionOptions = {}): { codec: Codec; body: Uint8Array } {
  const codec = options.codec ?? 'brotli';
  if (codec === 'none' || raw.length < (options.minBytes ?? 256)) return { codec: 'none', body: raw };
  const body = compress(raw, codec, options.level);
  if (body.length <= raw.length * (1 - (options.minSaving ?? 0.1))) return { codec, body };
  return { codec: 'none', body: raw };
}

// ---------------------------------------------------------------------------------------------
// low-level helpers

/** Bytes of the LEB128 varint encoding of `n` (0 ≤ n < 2^32). */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Bytes one payload occupies in an aggregate's (uncompressed) entry list. */
export function aggregateEntrySize(payloadLength: number): number {
  return varintSize(payloadLength) + payloadLength;
}

function writeVarint(buf: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[offset++] = n;
  return offset;
}

function readVarint(buf: Uint8Array, offset: number): [value: number, next: number] {
  let value = 0;
  let factor = 1;
  for (let i = 0; i < 5; i++) {
    if (offset >= buf.length) throw new FrameError('truncated varint');
    const b = buf[offset++];
    value += (b & 0x7f) * factor;
    if ((b & 0x80) === 0) return [value, offset];
    factor *= 128;
  }
  throw new FrameError('varint too long');
}

const U64_MASK = (1n << 64n) - 1n;

function writeU128(view: DataView, offset: number, v: bigint): void {
  view.setBigUint64(offset, (v >> 64n) & U64_MASK);
  view.setBigUint64(offset + 8, v & U64_MASK);
}

function readU128(view: DataView, offset: number): bigint {
  return (view.getBigUint64(offset) << 64n) | view.getBigUint64(offset + 8);
}

function writeCommonHeader(
  buf: Uint8Array,
  kind: number,
  codec: Codec,
  span: HashKeyRange,
  rawLength: number,
): DataView {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf[0] = FRAME_MAGIC;
  buf[1] = FRAME_VERSION;
  buf[2] = kind;
  buf[3] = CODEC_IDS[codec];
  writeU128(view, 4, span.start);
  writeU128(view, 20, span.end);
  view.setBigUint64(36, 0n);
  view.setUint32(44, rawLength);
  return view;
}

// ---------------------------------------------------------------------------------------------
// encoding

/** A record holding one payload (compressed when that helps). */
export function encodeSingle(payload: Uint8Array, span: HashKeyRange, options: CompressionOptions = {}): Uint8Array {
  const { codec, body } = maybeCompress(payload, options);
  const out = new Uint8Array(SINGLE_HEADER_BYTES + body.length);
  writeCommonHeader(out, FRAME_KIND_SINGLE, codec, span, payload.length);
  out.set(body, SINGLE_HEADER_BYTES);
  return out;
}

/** The uncompressed entry list of an aggregate. */
export function encodeAggregateEntries(payloads: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const p of payloads) size += aggregateEntrySize(p.length);
  const raw = new Uint8Array(size);
  let off = 0;
  for (const p of payloads) {
    off = writeVarint(raw, off, p.length);
    raw.set(p, off);
    off += p.length;
  }
  return raw;
}

/** A record holding several payloads, all meant for one shard (the caller guarantees that). */
export function encodeAggregate(
  payloads: readonly Uint8Array[],
  span: HashKeyRange,
  options: CompressionOptions = {},
): Uint8Array {
  if (payloads.length === 0) throw new RangeError('encodeAggregate: no payload');
  const raw = encodeAggregateEntries(payloads);
  const { codec, body } = maybeCompress(raw, options);
  const out = new Uint8Array(AGGREGATE_HEADER_BYTES + body.length);
  const view = writeCommonHeader(out, FRAME_KIND_AGGREGATE, codec, span, raw.length);
  view.setUint32(48, payloads.length);
  out.set(body, AGGREGATE_HEADER_BYTES);
  return out;
}

/** Largest payload that can travel as a single uncompressed record of at most `maxDataBytes`. */
export function maxUncompressedSinglePayload(maxDataBytes: number): number {
  return maxDataBytes - SINGLE_HEADER_BYTES;
}

/**
 * Frames one payload into records of at most `maxDataBytes` each: one single record if it fits
 * (compressed if needed), else `count ≥ 2` chunk records holding consecutive slices of the
 * (compressed when that helps) payload, in order. Chunk i of n carries `payloadId`.
 */
export function encodePayloadRecords(
  payload: Uint8Array,
  span: HashKeyRange,
  maxDataBytes: number,
  payloadId: bigint,
  options: CompressionOptions = {},
): Uint8Array[] {
  if (maxDataBytes <= CHUNK_HEADER_BYTES) throw new RangeError(`maxDataBytes ${maxDataBytes} leaves no room for data`);
  // Compress once and reuse the result for either shape.
  const { codec, body } = maybeCompress(payload, options);
  if (SINGLE_HEADER_BYTES + body.length <= maxDataBytes) {
    const out = new Uint8Array(SINGLE_HEADER_BYTES + body.length);
    writeCommonHeader(out, FRAME_KIND_SINGLE, codec, span, payload.length);
    out.set(body, SINGLE_HEADER_BYTES);
    return [out];
  }
  return encodeChunks(body, codec, payload.length, span, maxDataBytes, payloadId);
}

/** Splits an encoded payload body into chunk records of at most `maxDataBytes`. */
export function encodeChunks(
  body: Uint8Array,
  codec: Codec,
  rawLength: number,
  span: HashKeyRange,
  maxDataBytes: number,
  payloadId: bigint,
): Uint8Array[] {
  const room = maxDataBytes - CHUNK_HEADER_BYTES;
  if (room <= 0) throw new RangeError(`maxDataBytes ${maxDataBytes} leaves no room for data`);
  const count = Math.max(2, Math.ceil(body.length / room));
  // Even split (so the last chunk is not a tiny tail): every chunk holds ≤ room bytes.
  const per = Math.ceil(body.length / count);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const slice = body.subarray(i * per, Math.min(body.length, (i + 1) * per));
    const rec = new Uint8Array(CHUNK_HEADER_BYTES + slice.length);
    const view = writeCommonHeader(rec, FRAME_KIND_CHUNK, codec, span, rawLength);
    view.setBigUint64(48, payloadId & U64_MASK);
    view.setUint32(56, i);
    view.setUint32(60, count);
    view.setUint32(64, body.length);
    rec.set(slice, CHUNK_HEADER_BYTES);
    out.push(rec);
  }
  return out;
}

export interface PackOptions extends CompressionOptions {
  /**
   * Raw bytes gathered per record = (maxDataBytes - header) × packFactor. With compressible data a
   * factor > 1 fills records closer to the limit; a frame that comes out too large is re-packed
   * with fewer payloads. Default 1 (never re-packs).
   */
  packFactor?: number;
}

export interface PackResult {
  /** The record data (aggregate, or single frame when only one payload was taken). */
  frame: Uint8Array;
  /** How many payloads from the front of the input the frame holds (≥ 1). */
  count: number;
  /** Sum of the raw payload lengths taken. */
  rawBytes: number;
  codec: Codec;
}

/**
 * Packs as many payloads as possible from the front of `payloads` (in order) into one record of
 * at most `maxDataBytes`. Every payload must satisfy
 * `aggregateEntrySize(len) + AGGREGATE_HEADER_BYTES <= maxDataBytes` (callers chunk larger ones).
 * `spanOf(n)` returns the hash key span of the first n payloads.
 */
export function packRecord(
  payloads: readonly Uint8Array[],
  spanOf: (count: number) => HashKeyRange,
  maxDataBytes: number,
  options: PackOptions = {},
): PackResult {
  if (payloads.length === 0) throw new RangeError('packRecord: no payload');
  const hardRawLimit = maxDataBytes - AGGREGATE_HEADER_BYTES;
  if (aggregateEntrySize(payloads[0].length) > hardRawLimit) {
    throw new RangeError(`packRecord: payload of ${payloads[0].length} bytes does not fit a record of ${maxDataBytes}`);
  }
  const budget = Math.floor(hardRawLimit * Math.max(1, options.packFactor ?? 1));
  let count = 0;
  let raw = 0;
  while (count < payloads.length && raw + aggregateEntrySize(payloads[count].length) <= budget) {
    raw += aggregateEntrySize(payloads[count].length);
    count++;
  }
  count = Math.max(1, count);
  for (;;) {
    const frame =
      count === 1 ? encodeSingle(payloads[0], spanOf(1), options) : encodeAggregate(payloads.slice(0, count), spanOf(count), options);
    if (frame.length <= maxDataBytes) {
      let rawBytes = 0;
      for (let i = 0; i < count; i++) rawBytes += payloads[i].length;
      return { frame, count, rawBytes, codec: CODECS_BY_ID[frame[3] & 3] };
    }
    // Too large after compression: shrink proportionally. Terminates: once the raw entries fit
    // hardRawLimit the frame fits too (a compressed body is only kept when smaller than raw).
    const next = Math.max(1, Math.min(count - 1, Math.floor(count * (maxDataBytes / frame.length) * 0.95)));
    count = next;
  }
}

// ---------------------------------------------------------------------------------------------
// decoding

export interface FrameCommon {
  span: HashKeyRange;
  codec: Codec;
  rawLength: number;
  /** 0n when the producer did not stamp one. */
  recordId: bigint;
  /** The record carries a broadcast copy (placement requires span = shard range). */
  broadcast: boolean;
}
export interface SingleFrame extends FrameCommon {
  kind: 'single';
  payload: Uint8Array;
}
export interface AggregateFrame extends FrameCommon {
  kind: 'aggregate';
  payloads: Uint8Array[];
}
export interface ChunkFrame extends FrameCommon {
  kind: 'chunk';
  payloadId: bigint;
  index: number;
  count: number;
  encodedLength: number;
  /** This chunk's slice of codec(payload). */
  bytes: Uint8Array;
}
export type DecodedFrame = SingleFrame | AggregateFrame | ChunkFrame;

/** Reads a frame's header fields without decompressing its body. */
export function readFrameHeader(data: Uint8Array): {
  kind: number;
  codec: Codec;
  span: HashKeyRange;
  rawLength: number;
  recordId: bigint;
  broadcast: boolean;
} {
  if (data.length < COMMON_HEADER_BYTES) throw new FrameError(`record of ${data.length} bytes is shorter than a frame header`);
  if (data[0] !== FRAME_MAGIC) throw new FrameError(`bad magic 0x${data[0].toString(16)}: not a migrator transport frame`);
  if (data[1] !== FRAME_VERSION) throw new FrameError(`unsupported frame version ${data[1]}`);
  const flags = data[3];
  if ((flags & ~(3 | FLAG_BROADCAST)) !== 0) throw new FrameError(`unknown flags 0x${flags.toString(16)}`);
  const codec = CODECS_BY_ID[flags & 3];
  if (!codec) throw new FrameError(`unknown codec id ${flags & 3}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const span = { start: readU128(view, 4), end: readU128(view, 20) };
  if (span.start > span.end) throw new FrameError('span low > span high');
  return { kind: data[2], codec, span, recordId: view.getBigUint64(36), rawLength: view.getUint32(44), broadcast: (flags & FLAG_BROADCAST) !== 0 };
}

/** Sets the BROADCAST flag of an encoded frame (in place). */
export function markBroadcast(frame: Uint8Array): void {
  frame[3] |= FLAG_BROADCAST;
}

/**
 * The PLACEMENT RULE: may a record with this span / broadcast flag be read from a shard with
 * this hash key range? (Shared by readers and the producer.)
 */
export function validPlacement(shardRange: HashKeyRange, span: HashKeyRange, broadcast: boolean): boolean {
  return broadcast
    ? shardRange.start === span.start && shardRange.end === span.end
    : shardRange.start <= span.start && span.end <= shardRange.end;
}

/** Writes the record id into an encoded frame (in place). */
export function stampRecordId(frame: Uint8Array, recordId: bigint): void {
  new DataView(frame.buffer, frame.byteOffset, frame.byteLength).setBigUint64(36, recordId & U64_MASK);
}

/** The record id of an encoded frame (0n = none). */
export function recordIdOf(frame: Uint8Array): bigint {
  return new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getBigUint64(36);
}

/** Decodes one record's data. Throws {@link FrameError} on anything malformed. */
export function decodeFrame(data: Uint8Array): DecodedFrame {
  const { kind, codec, span, rawLength, recordId, broadcast } = readFrameHeader(data);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (kind) {
    case FRAME_KIND_SINGLE: {
      const payload = decompress(data.subarray(SINGLE_HEADER_BYTES), codec, rawLength);
      return { kind: 'single', span, codec, rawLength, recordId, broadcast, payload };
    }
    case FRAME_KIND_AGGREGATE: {
      if (data.length < AGGREGATE_HEADER_BYTES) throw new FrameError('truncated aggregate header');
      const count = view.getUint32(48);
      if (count < 1) throw new FrameError('aggregate with no entry');
      const raw = decompress(data.subarray(AGGREGATE_HEADER_BYTES), codec, rawLength);
      const payloads: Uint8Array[] = [];
      let off = 0;
      for (let i = 0; i < count; i++) {
        const [len, next] = readVarint(raw, off);
        if (next + len > raw.length) throw new FrameError(`aggregate entry ${i} overruns the body`);
        payloads.push(raw.subarray(next, next + len));
        off = next + len;
      }
      if (off !== raw.length) throw new FrameError(`aggregate has ${raw.length - off} trailing bytes`);
      return { kind: 'aggregate', span, codec, rawLength, recordId, broadcast, payloads };
    }
    case FRAME_KIND_CHUNK: {
      if (data.length < CHUNK_HEADER_BYTES) throw new FrameError('truncated chunk header');
      const payloadId = view.getBigUint64(48);
      const index = view.getUint32(56);
      const count = view.getUint32(60);
      const encodedLength = view.getUint32(64);
      if (count < 2 || index >= count) throw new FrameError(`bad chunk index ${index} of ${count}`);
      const bytes = data.subarray(CHUNK_HEADER_BYTES);
      if (bytes.length > encodedLength) throw new FrameError('chunk longer than the encoded payload');
      return { kind: 'chunk', span, codec, rawLength, recordId, broadcast, payloadId, index, count, encodedLength, bytes };
    }
    default:
      throw new FrameError(`unknown frame kind ${kind}`);
  }
}

/** Reassembles a payload from all its chunks, in index order 0..count-1. */
export function joinChunks(chunks: readonly ChunkFrame[]): Uint8Array {
  if (chunks.length === 0) throw new FrameError('joinChunks: no chunk');
  const first = chunks[0];
  if (chunks.length !== first.count) throw new FrameError(`joinChunks: ${chunks.length} of ${first.count} chunks`);
  let total = 0;
  chunks.forEach((c, i) => {
    if (c.payloadId !== first.payloadId || c.index !== i || c.count !== first.count || c.codec !== first.codec) {
      throw new FrameError(`joinChunks: chunk ${i} does not belong to payload ${first.payloadId} in order`);
    }
    total += c.bytes.length;
  });
  if (total !== first.encodedLength) throw new FrameError(`joinChunks: ${total} bytes, header says ${first.encodedLength}`);
  const body = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    body.set(c.bytes, off);
    off += c.bytes.length;
  }
  return decompress(body, first.codec, first.rawLength);
}
