/**
 * Checks shared by the producer/consumer tests (fake stream) and the kinesis-local integration
 * test: self-describing payloads, a live "what did Kinesis accept" tracker, and the per-key order
 * verification along each key's shard lineage.
 */
import assert from 'node:assert/strict';
import { ShardRecordAssembler } from '../../src/transport/shard-record-assembler.js';
import { hashKeyOf, rangeHolds, type HashKeyRange, type ShardInfo } from '../../src/transport/shard-map.js';

export const BROADCAST_KEY = '*broadcast*';

/**
 * `key#index#tag;` followed by filler up to `size` bytes: random bytes with `rand` (incompressible),
 * random lowercase letters with `rand` and `text` (compresses to ~60%), else a repeated letter.
 */
export function makePayload(key: string, index: number, tag: number, size: number, rand?: () => number, text = false): Uint8Array {
  const head = Buffer.from(`${key}#${index}#${tag};`, 'utf8');
  const out = new Uint8Array(Math.max(size, head.length));
  if (rand) {
    if (text) for (let i = head.length; i < out.length; i++) out[i] = 0x61 + Math.floor(rand() * 26);
    else for (let i = head.length; i < out.length; i++) out[i] = Math.floor(rand() * 256);
  } else {
    out.fill(0x61 + (index % 26), head.length);
  }
  out.set(head, 0);
  return out;
}

export function parsePayload(p: Uint8Array): { key: string; index: number; tag: number } {
  const end = p.indexOf(0x3b);
  const text = Buffer.from(p.subarray(0, end)).toString('utf8');
  const b = text.lastIndexOf('#');
  const a = text.lastIndexOf('#', b - 1);
  return { key: text.slice(0, a), index: Number(text.slice(a + 1, b)), tag: Number(text.slice(b + 1)) };
}

/**
 * Follows what a stream has accepted (fed record by record, per shard, in order) through real
 * assemblers, and checks durable-tag reports against it: a reported tag T is only legal when every
 * payload with tag ≤ T is readable, and every broadcast with tag ≤ T covers the whole hash key
 * space (the union of the ranges of the shards it was accepted in).
 */
export class AcceptanceTracker {
  private readonly assemblers = new Map<string, ShardRecordAssembler>();
  private readonly accepted = new Set<number>();
  private readonly broadcastRanges = new Map<number, HashKeyRange[]>();
  private contiguous = 0;
  lastDurable = 0;
  durableReports = 0;

  constructor(
    private readonly rangeOf: (shardId: string) => HashKeyRange,
    private readonly broadcastTags: Set<number>,
  ) {}

  append(shardId: string, sequenceNumber: string, data: Uint8Array): void {
    let a = this.assemblers.get(shardId);
    if (!a) {
      a = new ShardRecordAssembler({ shardId, hashKeyRange: this.rangeOf(shardId) });
      this.assemblers.set(shardId, a);
    }
    for (const p of a.push({ sequenceNumber, data })) {
      const { tag } = parsePayload(p);
      if (this.broadcastTags.has(tag)) {
        const list = this.broadcastRanges.get(tag) ?? [];
        list.push(this.rangeOf(shardId));
        this.broadcastRanges.set(tag, list);
      } else {
        this.accepted.add(tag);
      }
    }
  }

  private broadcastComplete(tag: number): boolean {
    const ranges = [...(this.broadcastRanges.get(tag) ?? [])].sort((x, y) => (x.start < y.start ? -1 : 1));
    let next = 0n;
    for (const r of ranges) {
      if (r.start > next) return false;
      if (r.end + 1n > next) next = r.end + 1n;
    }
    return next === 1n << 128n;
  }

  /** Call from onDurable: asserts the tag is not ahead of what was accepted. */
  onDurable(tag: number): void {
    this.durableReports++;
    assert.ok(tag > this.lastDurable, `durable tag went from ${this.lastDurable} to ${tag}`);
    this.lastDurable = tag;
    while (this.contiguous < tag) {
      const t = this.contiguous + 1;
      const ok = this.broadcastTags.has(t) ? this.broadcastComplete(t) : this.accepted.has(t);
      assert.ok(ok, `durable tag ${tag} reported but payload with tag ${t} was not accepted`);
      this.contiguous = t;
    }
  }
}

export interface OrderReport {
  keys: number;
  payloads: number;
  broadcastsPerKeyPath: number;
  /** Broadcast repeats seen on a key's path right after the same broadcast (allowed after a merge). */
  adjacentBroadcastRepeats: number;
}

/**
 * Verifies, for every key, the sequence of events read along the key's shard lineage (every shard
 * whose range holds the key's hash, parents before children): the key's payloads are exactly
 * indices 0..n-1 in order, and every broadcast appears exactly once, in tag order relative to the
 * key's payloads (a broadcast comes after everything sent before it). The only tolerated extra is a
 * broadcast repeated immediately after itself on a key's path (no payload of the key in between):
 * what a merge can cause when one parent already held the copy. `perShard` holds the payloads each
 * shard delivered, in order.
 */
export function verifyLineageOrder(
  shards: readonly ShardInfo[],
  perShard: ReadonlyMap<string, readonly Uint8Array[]>,
  sentPerKey: ReadonlyMap<string, number>,
  broadcastTags: readonly number[],
): OrderReport {
  const byId = new Map(shards.map((s) => [s.shardId, s]));
  const depthCache = new Map<string, number>();
  const depth = (id: string): number => {
    const cached = depthCache.get(id);
    if (cached !== undefined) return cached;
    const s = byId.get(id);
    const parents = s ? [s.parentShardId, s.adjacentParentShardId].filter((p): p is string => !!p && byId.has(p)) : [];
    const d = parents.length === 0 ? 0 : 1 + Math.max(...parents.map(depth));
    depthCache.set(id, d);
    return d;
  };
  // Per shard: events per key (position, tag, index) and broadcasts (position, tag).
  const index = new Map<string, { byKey: Map<string, Array<[number, number, number]>>; bcasts: Array<[number, number]> }>();
  const broadcastSet = new Set(broadcastTags);
  let total = 0;
  for (const [shardId, payloads] of perShard) {
    const byKey = new Map<string, Array<[number, number, number]>>();
    const bcasts: Array<[number, number]> = [];
    payloads.forEach((p, pos) => {
      const { key, index: i, tag } = parsePayload(p);
      if (broadcastSet.has(tag)) bcasts.push([pos, tag]);
      else {
        total++;
        const list = byKey.get(key) ?? [];
        list.push([pos, tag, i]);
        byKey.set(key, list);
      }
    });
    index.set(shardId, { byKey, bcasts });
  }
  const sortedShards = [...shards].sort((a, b) => depth(a.shardId) - depth(b.shardId));
  let expectedTotal = 0;
  let repeats = 0;
  for (const [key, n] of sentPerKey) {
    expectedTotal += n;
    const h = hashKeyOf(key);
    const path = sortedShards.filter((s) => rangeHolds(s.hashKeyRange, h));
    const events: Array<{ tag: number; index: number | undefined }> = [];
    for (const s of path) {
      const ix = index.get(s.shardId);
      if (!ix) continue;
      const own = ix.byKey.get(key) ?? [];
      let a = 0;
      let b = 0;
      while (a < own.length || b < ix.bcasts.length) {
        if (b >= ix.bcasts.length || (a < own.length && own[a][0] < ix.bcasts[b][0])) {
          events.push({ tag: own[a][1], index: own[a][2] });
          a++;
        } else {
          events.push({ tag: ix.bcasts[b][1], index: undefined });
          b++;
        }
      }
    }
    // collapse a broadcast repeated right after itself
    for (let i = events.length - 1; i > 0; i--) {
      if (events[i].index === undefined && events[i - 1].index === undefined && events[i].tag === events[i - 1].tag) {
        events.splice(i, 1);
        repeats++;
      }
    }
    const indices = events.filter((e) => e.index !== undefined).map((e) => e.index!);
    assert.equal(indices.length, n, `key ${key}: ${indices.length} payloads read, ${n} sent (path ${path.map((s) => s.shardId).join(' > ')})`);
    indices.forEach((v, i) => assert.equal(v, i, `key ${key}: payload #${i} is index ${v}`));
    const bc = events.filter((e) => e.index === undefined).map((e) => e.tag);
    assert.deepEqual(bc, [...broadcastTags].sort((x, y) => x - y), `key ${key}: broadcasts on its path`);
    for (let i = 1; i < events.length; i++) {
      assert.ok(events[i].tag > events[i - 1].tag, `key ${key}: tag ${events[i].tag} after ${events[i - 1].tag}`);
    }
  }
  assert.equal(total, expectedTotal, 'payloads read vs sent (duplicates or strays)');
  return { keys: sentPerKey.size, payloads: total, broadcastsPerKeyPath: broadcastTags.length, adjacentBroadcastRepeats: repeats };
}
