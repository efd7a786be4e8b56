/**
 * The producer's lane rebuild on a new shard map, without any Kinesis: admission order per key
 * survives splits and merges, broadcast copies are re-cut, kept plans stay byte for byte, and a
 * chunked payload continues only where readers would accept its next chunk.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LingerPolicy, resolveLingerOptions } from '../../src/transport/linger-policy.js';
import type { TagEntry } from '../../src/transport/producer-ledger.js';
import { Lane, type Item, type LargeState, type Plan } from '../../src/transport/producer-lanes.js';
import { judgeMisrouted, reroute } from '../../src/transport/producer-repartition.js';
import { MAX_HASH_KEY, ShardMap, type HashKeyRange, type ShardInfo } from '../../src/transport/shard-map.js';

const MID = MAX_HASH_KEY / 2n;
const LOW = 10n;
const HIGH = MAX_HASH_KEY - 10n;
const linger = resolveLingerOptions({});

function shard(id: string, start: bigint, end: bigint, open = true, parents: string[] = []): ShardInfo {
  return {
    shardId: id,
    hashKeyRange: { start, end },
    parentShardId: parents[0],
    adjacentParentShardId: parents[1],
    startingSequenceNumber: '1',
    endingSequenceNumber: open ? undefined : '9',
    open,
  };
}

function entry(seq: number, remaining = 1): TagEntry {
  return { seq, tag: seq, remaining, bytes: 1 };
}

function item(seq: number, span: HashKeyRange | bigint, opts: { broadcast?: boolean; entry?: TagEntry; large?: LargeState } = {}): Item {
  const s = typeof span === 'bigint' ? { start: span, end: span } : span;
  return { seq, entry: opts.entry ?? entry(seq), span: s, broadcast: opts.broadcast ?? false, payload: new Uint8Array([seq]), large: opts.large };
}

function lane(info: ShardInfo, items: Item[]): Lane {
  const l = new Lane(info, new LingerPolicy(linger, 0));
  for (const it of items) l.push(it);
  return l;
}

function plan(l: Lane, items: Item[], extra: Partial<Plan> = {}): Plan {
  return {
    lane: l,
    items,
    large: false,
    frameIndex: 0,
    entry: { Data: new Uint8Array([1]), PartitionKey: 'k', ExplicitHashKey: items[0].span.start.toString() },
    span: items[0].span,
    broadcast: false,
    ambiguous: false,
    scanFloor: undefined,
    floorAtSend: undefined,
    sentAt: 0,
    size: 1,
    rawBytes: 1,
    attempts: 1,
    compressed: false,
    ...extra,
  };
}

let payloadIds = 100n;
const freshLarge = (): LargeState => ({ frames: undefined, payloadId: payloadIds++, next: 0, chunkShardId: undefined, lastChunkSeq: undefined, startedAt: undefined });

function run(old: Lane[], map: ShardMap, lastSeq: Array<[string, bigint]> = []) {
  const restarted: Item[] = [];
  const lanes = reroute({
    lanes: new Map(old.map((l) => [l.shard.shardId, l])),
    map,
    lastSeqInShard: new Map(lastSeq),
    newLane: (s, prev) => new Lane(s, prev?.linger ?? new LingerPolicy(linger, 0)),
    freshLarge,
    restartLarge: (it) => {
      restarted.push(it);
      Object.assign(it.large!, freshLarge());
    },
  });
  const seqs = (id: string) => [...lanes.get(id)!.items].map((it) => it.seq);
  return { lanes, seqs, restarted };
}

describe('reroute (resharding without I/O)', () => {
  it('split: each key goes to the child holding it, in admission order; a broadcast copy is re-cut to each child', () => {
    const parent = shard('p', 0n, MAX_HASH_KEY, false);
    const map = new ShardMap([parent, shard('a', 0n, MID, true, ['p']), shard('b', MID + 1n, MAX_HASH_KEY, true, ['p'])]);
    const bc = item(3, { start: 0n, end: MAX_HASH_KEY }, { broadcast: true });
    const { lanes, seqs } = run([lane(parent, [item(1, LOW), item(2, HIGH), bc, item(4, LOW)])], map);
    assert.deepEqual([...lanes.keys()].sort(), ['a', 'b']);
    assert.deepEqual(seqs('a'), [1, 3, 4]);
    assert.deepEqual(seqs('b'), [2, 3]);
    const copies = [lanes.get('a')!.items.at(1)!, lanes.get('b')!.items.at(1)!];
    assert.deepEqual(
      copies.map((c) => c.span),
      [
        { start: 0n, end: MID },
        { start: MID + 1n, end: MAX_HASH_KEY },
      ],
    );
    assert.equal(bc.entry.remaining, 2, 'one copy per child to be accepted');
    assert.equal(lanes.get('a')!.pendingRaw, 3);
  });

  it('merge: the parents’ items interleave by admission order; the two copies of a broadcast become one', () => {
    const a = shard('a', 0n, MID, false);
    const b = shard('b', MID + 1n, MAX_HASH_KEY, false);
    const map = new ShardMap([a, b, shard('m', 0n, MAX_HASH_KEY, true, ['a', 'b'])]);
    const bcEntry = entry(6, 2);
    const { seqs } = run(
      [
        lane(a, [item(1, LOW), item(3, LOW + 1n), item(5, LOW), item(6, { start: 0n, end: MID }, { broadcast: true, entry: bcEntry })]),
        lane(b, [item(2, HIGH), item(4, HIGH), item(6, { start: MID + 1n, end: MAX_HASH_KEY }, { broadcast: true, entry: bcEntry }), item(7, HIGH)]),
      ],
      map,
    );
    assert.deepEqual(seqs('m'), [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(bcEntry.remaining, 1, 'one copy left to accept');
  });

  it('a shard that stays open keeps its plan byte for byte; a closed shard’s plan is dissolved back into order', () => {
    const keep = shard('keep', MID + 1n, MAX_HASH_KEY);
    const gone = shard('gone', 0n, MID, false);
    const map = new ShardMap([keep, gone, shard('a', 0n, MID / 2n, true, ['gone']), shard('b', MID / 2n + 1n, MID, true, ['gone'])]);
    const keepLane = lane(keep, [item(5, HIGH)]);
    const kept = plan(keepLane, [item(2, HIGH)]);
    keepLane.plan = kept;
    keepLane.retryAt = 1234;
    const goneLane = lane(gone, [item(4, LOW)]);
    goneLane.plan = plan(goneLane, [item(1, LOW), item(3, MID)]);
    const { lanes, seqs } = run([keepLane, goneLane], map);
    assert.equal(lanes.get('keep')!.plan, kept);
    assert.equal(kept.lane, lanes.get('keep'));
    assert.equal(lanes.get('keep')!.retryAt, 1234);
    assert.deepEqual(seqs('keep'), [5]);
    assert.deepEqual(seqs('a'), [1, 4]);
    assert.deepEqual(seqs('b'), [3]);
    assert.equal(lanes.get('a')!.plan, undefined);
  });

  it('a chunked payload continues in the shard of its first chunks only while its next chunk is our next record there', () => {
    const s = shard('s', 0n, MAX_HASH_KEY);
    const map = new ShardMap([s]);
    const large = (): LargeState => ({ frames: [new Uint8Array(1), new Uint8Array(1)], payloadId: 7n, next: 1, chunkShardId: 's', lastChunkSeq: 50n, startedAt: 0 });

    const cont = item(2, LOW, { large: large() });
    const first = run([lane(s, [cont, item(3, HIGH)])], map, [['s', 50n]]);
    assert.deepEqual(first.restarted, []);
    assert.equal(cont.large!.next, 1, 'continues with chunk 1');
    assert.equal(cont.large!.payloadId, 7n);
    assert.deepEqual(first.seqs('s'), [2, 3]);

    const moved = item(2, LOW, { large: large() });
    const second = run([lane(s, [moved])], map, [['s', 51n]]); // another record of ours landed after chunk 0
    assert.deepEqual(second.restarted, [moved]);
    assert.equal(moved.large!.next, 0, 'restarts from chunk 0');
    assert.notEqual(moved.large!.payloadId, 7n, 'under a new payload id');
  });
});

describe('judgeMisrouted (the PLACEMENT RULE, as readers apply it)', () => {
  const parent = shard('p', 0n, MAX_HASH_KEY, false);
  const map = new ShardMap([parent, shard('a', 0n, MID, true, ['p']), shard('b', MID + 1n, MAX_HASH_KEY, true, ['p'])]);
  const l = lane(parent, []);

  it('accepted where it landed when the shard holds its whole span', () => {
    assert.equal(judgeMisrouted({ plan: plan(l, [item(1, LOW), item(2, LOW + 5n)], { span: { start: LOW, end: LOW + 5n } }), shardId: 'a', seq: 1n }, map), 'accept');
  });
  it('re-sent when its span straddles the shard it landed in, or the shard is unknown', () => {
    assert.equal(judgeMisrouted({ plan: plan(l, [item(1, LOW)], { span: { start: LOW, end: HIGH } }), shardId: 'a', seq: 1n }, map), 'resend');
    assert.equal(judgeMisrouted({ plan: plan(l, [item(1, LOW)]), shardId: 'nope', seq: 1n }, map), 'resend');
  });
  it('a broadcast record is accepted only in a shard whose range is exactly its span', () => {
    const whole = { start: 0n, end: MAX_HASH_KEY };
    assert.equal(judgeMisrouted({ plan: plan(l, [item(1, whole, { broadcast: true })], { span: whole, broadcast: true }), shardId: 'a', seq: 1n }, map), 'resend');
    const half = { start: 0n, end: MID };
    assert.equal(judgeMisrouted({ plan: plan(l, [item(1, half, { broadcast: true })], { span: half, broadcast: true }), shardId: 'a', seq: 1n }, map), 'accept');
  });
  it('a later chunk that landed in another shard than chunk 0 restarts its payload', () => {
    const large: LargeState = { frames: [new Uint8Array(1), new Uint8Array(1)], payloadId: 1n, next: 1, chunkShardId: 'p', lastChunkSeq: 5n, startedAt: 0 };
    const chunk = item(1, LOW, { large });
    assert.equal(judgeMisrouted({ plan: plan(l, [chunk], { large: true, frameIndex: 1 }), shardId: 'a', seq: 9n }, map), 'restart');
    assert.equal(judgeMisrouted({ plan: plan(l, [chunk], { large: true, frameIndex: 0 }), shardId: 'a', seq: 9n }, map), 'accept');
  });
});
