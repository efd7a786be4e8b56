import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeAggregate, encodePayloadRecords, encodeSingle, markBroadcast, stampRecordId } from '../../src/transport/record-framing.js';
import { ShardRecordAssembler } from '../../src/transport/shard-record-assembler.js';
import { MAX_HASH_KEY, type HashKeyRange } from '../../src/transport/shard-map.js';
import { assertBytesEqual, prng, randomPayload } from './test-helpers.js';

const RANGE: HashKeyRange = { start: 1000n, end: 2000n };
const IN: HashKeyRange = { start: 1500n, end: 1500n };

let seq = 100;
const rec = (data: Uint8Array): { sequenceNumber: string; data: Uint8Array } => ({ sequenceNumber: String(seq++), data });
const text = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));
const str = (b: Uint8Array): string => Buffer.from(b).toString();

function chunks(size: number, id: bigint, span = IN): Uint8Array[] {
  const frames = encodePayloadRecords(randomPayload(prng(Number(id)), size, false), span, 1000, id, { codec: 'none' });
  assert.ok(frames.length >= 3);
  return frames;
}

describe('ShardRecordAssembler', () => {
  it('expands singles and aggregates in order; checkpoint = last record', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE });
    assert.equal(a.checkpoint, undefined);
    const r1 = rec(encodeSingle(text('a'), IN));
    assert.deepEqual(a.push(r1).map(str), ['a']);
    assert.equal(a.checkpoint, r1.sequenceNumber);
    const r2 = rec(encodeAggregate([text('b'), text('c'), text('d')], { start: 1000n, end: 2000n }));
    assert.deepEqual(a.push(r2).map(str), ['b', 'c', 'd']);
    assert.equal(a.checkpoint, r2.sequenceNumber);
  });

  it('keeps the checkpoint before the first chunk until the payload is complete', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE, startAfter: '42' });
    const before = rec(encodeSingle(text('x'), IN));
    a.push(before);
    const cs = chunks(2500, 7n).map(rec);
    for (const c of cs.slice(0, -1)) {
      assert.deepEqual(a.push(c), []);
      assert.equal(a.checkpoint, before.sequenceNumber);
      assert.ok(a.assembling);
    }
    // a duplicated chunk (retried write that had succeeded) is ignored
    assert.deepEqual(a.push({ ...cs[1], sequenceNumber: String(seq++) }), []);
    const out = a.push(cs[cs.length - 1]);
    assert.equal(out.length, 1);
    assert.equal(out[0].length, 2500);
    assert.equal(a.checkpoint, cs[cs.length - 1].sequenceNumber);
    assert.equal(a.stats.duplicateChunks, 1);
  });

  it('drops orphan chunks and abandons a payload interrupted by another record', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE });
    const c1 = chunks(2500, 8n);
    const c2 = chunks(2500, 9n);
    // orphan tail of an earlier payload
    assert.deepEqual(a.push(rec(c1[1])), []);
    assert.equal(a.stats.orphanChunks, 1);
    // start payload 9, interrupted by a single record: abandoned, the single is delivered
    a.push(rec(c2[0]));
    const single = rec(encodeSingle(text('after'), IN));
    assert.deepEqual(a.push(single).map(str), ['after']);
    assert.equal(a.checkpoint, single.sequenceNumber);
    assert.equal(a.stats.abandonedPayloads, 1);
    // a restarted payload (new id, from chunk 0) completes
    let got: Uint8Array[] = [];
    for (const c of c1) got = a.push(rec(c));
    assert.equal(got.length, 1);
    assertBytesEqual(got[0], randomPayload(prng(8), 2500, false));
    // chunk 0 of another payload while one is in progress abandons the first
    a.push(rec(c2[0]));
    a.push(rec(c2[1]));
    a.push(rec(c1[0]));
    assert.equal(a.stats.abandonedPayloads, 2);
  });

  it('other producers may interleave with a chunked payload; the same producer moving on abandons it', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE, startAfter: '1' });
    const stamp = (f: Uint8Array, producer: bigint, n: bigint): Uint8Array => {
      stampRecordId(f, (producer << 32n) | n);
      return f;
    };
    const cs = chunks(2500, 21n).map((f, i) => stamp(f, 7n, BigInt(i + 1)));
    const first = rec(cs[0]);
    a.push(first);
    // producer 9 interleaves: its payload is emitted now, the checkpoint stays before chunk 0
    assert.deepEqual(a.push(rec(stamp(encodeSingle(text('other'), IN), 9n, 1n))).map(str), ['other']);
    assert.equal(a.checkpoint, '1');
    a.push(rec(cs[1]));
    const done = a.push(rec(cs[2]));
    assert.equal(done.length, 1);
    assert.equal(a.assembling, false);
    // producer 7 starts another payload, then sends a single record: the payload is abandoned
    const ds = chunks(2500, 22n).map((f, i) => stamp(f, 7n, BigInt(i + 10)));
    a.push(rec(ds[0]));
    const single = rec(stamp(encodeSingle(text('next'), IN), 7n, 20n));
    assert.deepEqual(a.push(single).map(str), ['next']);
    assert.equal(a.assembling, false);
    assert.equal(a.checkpoint, single.sequenceNumber);
    assert.equal(a.stats.abandonedPayloads, 1);
    // per-producer duplicate detection survives interleaving
    const x = stamp(encodeSingle(text('x'), IN), 7n, 30n);
    a.push(rec(x));
    a.push(rec(stamp(encodeSingle(text('y'), IN), 9n, 2n)));
    assert.deepEqual(a.push(rec(x)), []);
    assert.equal(a.stats.duplicateRecords, 1);
  });

  it('abandons an assembly whose producer went silent for longer than the timeout (arrival time)', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE, chunkAssemblyTimeoutMs: 1000 });
    const cs = chunks(2500, 23n).map((f, i) => {
      stampRecordId(f, (5n << 32n) | BigInt(i + 1));
      return f;
    });
    const c0 = { ...rec(cs[0]), arrivalMs: 10_000 };
    a.push(c0);
    const other = encodeSingle(text('o'), IN);
    stampRecordId(other, (6n << 32n) | 1n);
    a.push({ ...rec(other), arrivalMs: 10_500 });
    assert.ok(a.assembling);
    const late = { ...rec(encodeSingle(text('late'), IN)), arrivalMs: 11_001 };
    assert.deepEqual(a.push(late).map(str), ['late']);
    assert.equal(a.assembling, false);
    assert.equal(a.checkpoint, late.sequenceNumber);
  });

  it('drops misplaced records (span outside the shard range) without blocking the checkpoint', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE });
    const mis = rec(encodeAggregate([text('m1'), text('m2')], { start: 1500n, end: 2500n }));
    assert.deepEqual(a.push(mis), []);
    assert.equal(a.stats.misplacedRecords, 1);
    assert.equal(a.checkpoint, mis.sequenceNumber);
    const edge = rec(encodeSingle(text('edge'), { start: 1000n, end: 2000n }));
    assert.deepEqual(a.push(edge).map(str), ['edge']);
    const whole = rec(encodeSingle(text('whole'), { start: 0n, end: MAX_HASH_KEY }));
    assert.deepEqual(a.push(whole), []);
  });

  it('broadcast records are valid only where the span equals the shard range', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE });
    const exact = encodeSingle(text('b1'), RANGE);
    markBroadcast(exact);
    assert.deepEqual(a.push(rec(exact)).map(str), ['b1']);
    const inner = encodeAggregate([text('x'), text('b2')], { start: 1000n, end: 1500n });
    markBroadcast(inner);
    assert.deepEqual(a.push(rec(inner)), []);
    assert.equal(a.stats.misplacedRecords, 1);
  });

  it('drops a record repeating the previous record id (stored duplicate of a retried write)', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE });
    const f = encodeAggregate([text('p'), text('q')], IN);
    stampRecordId(f, 77n);
    assert.deepEqual(a.push(rec(f)).map(str), ['p', 'q']);
    const dup = rec(f);
    assert.deepEqual(a.push(dup), []);
    assert.equal(a.checkpoint, dup.sequenceNumber);
    assert.equal(a.stats.duplicateRecords, 1);
    const other = encodeSingle(text('r'), IN);
    stampRecordId(other, 78n);
    assert.deepEqual(a.push(rec(other)).map(str), ['r']);
    // id 0 = unstamped: never treated as a duplicate
    const u = encodeSingle(text('u'), IN);
    assert.deepEqual(a.push(rec(u)).map(str), ['u']);
    assert.deepEqual(a.push(rec(u)).map(str), ['u']);
  });

  it('end of a closed shard abandons an unfinished payload and checkpoints the last record', () => {
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE });
    const cs = chunks(2500, 11n).map(rec);
    a.push(cs[0]);
    a.push(cs[1]);
    a.end(cs[1].sequenceNumber);
    assert.equal(a.checkpoint, cs[1].sequenceNumber);
    assert.equal(a.assembling, false);
    assert.equal(a.stats.abandonedPayloads, 1);
  });

  it('invalid records: throw by default, or skip', () => {
    const bad = rec(text('{"not":"a frame"} padding padding padding padding'));
    assert.throws(() => new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE }).push(bad), /bad magic/);
    const a = new ShardRecordAssembler({ shardId: 's', hashKeyRange: RANGE, onInvalidRecord: 'skip' });
    assert.deepEqual(a.push(bad), []);
    assert.equal(a.checkpoint, bad.sequenceNumber);
    assert.equal(a.stats.invalidRecords, 1);
  });
});
