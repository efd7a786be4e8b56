import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  MAX_HASH_KEY,
  ShardMap,
  hashKeyOf,
  listAllShards,
  loadShardMap,
  rangeContains,
  rangeHolds,
  rangeIntersection,
  type ShardInfo,
} from '../../src/transport/shard-map.js';
import { FakeKinesis } from './fake-kinesis.js';
import { prng } from './test-helpers.js';

function shard(id: string, start: bigint, end: bigint, open = true, parent?: string): ShardInfo {
  return {
    shardId: id,
    hashKeyRange: { start, end },
    parentShardId: parent,
    adjacentParentShardId: undefined,
    startingSequenceNumber: '1',
    endingSequenceNumber: open ? undefined : '2',
    open,
  };
}

describe('hash keys', () => {
  it('are the MD5 of the UTF-8 key as a 128-bit big-endian integer', () => {
    // MD5("") = d41d8cd98f00b204e9800998ecf8427e
    assert.equal(hashKeyOf(''), 0xd41d8cd98f00b204e9800998ecf8427en);
    assert.equal(hashKeyOf('a'), BigInt('0x' + createHash('md5').update('a').digest('hex')));
    // non-ASCII keys hash their UTF-8 bytes
    assert.equal(hashKeyOf('é'), BigInt('0x' + createHash('md5').update(Buffer.from([0xc3, 0xa9])).digest('hex')));
    const rand = prng(1);
    for (let i = 0; i < 1000; i++) {
      const h = hashKeyOf(`k${rand()}`);
      assert.ok(h >= 0n && h <= MAX_HASH_KEY);
    }
  });

  it('range helpers', () => {
    assert.ok(rangeHolds({ start: 1n, end: 5n }, 5n));
    assert.ok(!rangeHolds({ start: 1n, end: 5n }, 6n));
    assert.ok(rangeContains({ start: 1n, end: 5n }, { start: 2n, end: 5n }));
    assert.ok(!rangeContains({ start: 1n, end: 5n }, { start: 0n, end: 3n }));
    assert.deepEqual(rangeIntersection({ start: 1n, end: 5n }, { start: 4n, end: 9n }), { start: 4n, end: 5n });
    assert.equal(rangeIntersection({ start: 1n, end: 5n }, { start: 6n, end: 9n }), undefined);
  });
});

describe('ShardMap', () => {
  const q = (MAX_HASH_KEY + 1n) / 4n;
  const four = [
    shard('s0', 0n, q - 1n),
    shard('s1', q, 2n * q - 1n),
    shard('s2', 2n * q, 3n * q - 1n),
    shard('s3', 3n * q, MAX_HASH_KEY),
  ];

  it('routes a hash key to the open shard whose inclusive range holds it (boundaries included)', () => {
    const map = new ShardMap([...four].reverse());
    assert.deepEqual(map.openShards.map((s) => s.shardId), ['s0', 's1', 's2', 's3']);
    assert.equal(map.shardForHashKey(0n).shardId, 's0');
    assert.equal(map.shardForHashKey(q - 1n).shardId, 's0');
    assert.equal(map.shardForHashKey(q).shardId, 's1');
    assert.equal(map.shardForHashKey(3n * q).shardId, 's3');
    assert.equal(map.shardForHashKey(MAX_HASH_KEY).shardId, 's3');
    assert.throws(() => map.shardForHashKey(MAX_HASH_KEY + 1n), RangeError);
    const rand = prng(2);
    for (let i = 0; i < 2000; i++) {
      const key = `ns.coll|${Math.floor(rand() * 1e9)}`;
      const h = hashKeyOf(key);
      const expected = four.find((s) => s.hashKeyRange.start <= h && h <= s.hashKeyRange.end)!;
      assert.equal(map.shardForRoutingKey(key).shardId, expected.shardId);
    }
  });

  it('ignores closed shards for routing but keeps them for lineage', () => {
    const map = new ShardMap([
      shard('p', 0n, MAX_HASH_KEY, false),
      shard('c1', 0n, q - 1n, true, 'p'),
      shard('c2', q, MAX_HASH_KEY, true, 'p'),
    ]);
    assert.deepEqual(map.openShards.map((s) => s.shardId), ['c1', 'c2']);
    assert.equal(map.get('p')?.open, false);
    assert.equal(map.allShards.length, 3);
    assert.equal(map.shardForHashKey(5n).shardId, 'c1');
  });

  it('broadcast targets: one ExplicitHashKey (the starting hash key) per open shard', () => {
    const map = new ShardMap(four);
    const t = map.broadcastTargets();
    assert.equal(t.length, 4);
    for (const { shardId, explicitHashKey } of t) assert.equal(map.shardForHashKey(BigInt(explicitHashKey)).shardId, shardId);
  });

  it('overlapping open shards of a range', () => {
    const map = new ShardMap(four);
    const parts = map.openShardsOverlapping({ start: q - 10n, end: 2n * q + 3n });
    assert.deepEqual(parts.map((p) => p.shard.shardId), ['s0', 's1', 's2']);
    assert.deepEqual(parts[0].overlap, { start: q - 10n, end: q - 1n });
    assert.deepEqual(parts[2].overlap, { start: 2n * q, end: 2n * q + 3n });
  });

  it('rejects shard lists whose open shards do not tile the hash key space', () => {
    assert.throws(() => new ShardMap([four[0], four[2], four[3]]), /tile/);
    assert.throws(() => new ShardMap([four[0], four[1], four[2]]), /2\^128-1/);
    assert.throws(() => new ShardMap([]), /no open shard/);
  });
});

describe('ListShards loading', () => {
  it('paginates with NextToken (without StreamName) and reads lineage', async () => {
    const fake = new FakeKinesis({ shardCount: 3 });
    fake.listShardsPageSize = 2;
    fake.split('shardId-000000000001');
    const shards = await listAllShards(fake.client, fake.streamName);
    assert.equal(shards.length, 5);
    const children = shards.filter((s) => s.parentShardId === 'shardId-000000000001');
    assert.equal(children.length, 2);
    assert.equal(shards.find((s) => s.shardId === 'shardId-000000000001')?.open, false);
    const map = await loadShardMap(fake.client, fake.streamName);
    assert.equal(map.openShards.length, 4);
  });
});
