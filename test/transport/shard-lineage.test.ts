// Which open shards have not passed a broadcast (DDL or cutover barrier), by shard lineage.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shardsNotPassed, type ShardLineage } from '../../src/transport/shard-lineage.js';

const open = (shardId: string, parentShardId?: string, adjacentParentShardId?: string): ShardLineage => ({ shardId, parentShardId, adjacentParentShardId, open: true });
const closed = (shardId: string, parentShardId?: string, adjacentParentShardId?: string): ShardLineage => ({ shardId, parentShardId, adjacentParentShardId, open: false });

describe('shardsNotPassed', () => {
  it('no resharding: every open shard must reach the broadcast itself', () => {
    const shards = [open('s0'), open('s1')];
    assert.deepEqual(shardsNotPassed(shards, []), ['s0', 's1']);
    assert.deepEqual(shardsNotPassed(shards, ['s1']), ['s0']);
    assert.deepEqual(shardsNotPassed(shards, ['s0', 's1']), []);
  });

  it('a split after the broadcast: the children inherit the closed parent that reached it', () => {
    const shards = [closed('s0'), open('s1', 's0'), open('s2', 's0')];
    assert.deepEqual(shardsNotPassed(shards, []), ['s1', 's2'], 'the parent has not reached it yet');
    assert.deepEqual(shardsNotPassed(shards, ['s0']), []);
  });

  it('a split before the broadcast: the children hold their own copies, the parent none', () => {
    const shards = [closed('s0'), open('s1', 's0'), open('s2', 's0')];
    assert.deepEqual(shardsNotPassed(shards, ['s1']), ['s2']);
    assert.deepEqual(shardsNotPassed(shards, ['s1', 's2']), []);
  });

  it('one of two shards split after the broadcast: the other still has to reach it', () => {
    const shards = [closed('a'), open('b'), open('a1', 'a'), open('a2', 'a')];
    assert.deepEqual(shardsNotPassed(shards, ['b']), ['a1', 'a2']);
    assert.deepEqual(shardsNotPassed(shards, ['a']), ['b']);
    assert.deepEqual(shardsNotPassed(shards, ['a', 'b']), []);
  });

  it('a merge inherits only when both parents reached the broadcast', () => {
    const shards = [closed('p1'), closed('p2'), open('m', 'p1', 'p2')];
    assert.deepEqual(shardsNotPassed(shards, ['p1']), ['m']);
    assert.deepEqual(shardsNotPassed(shards, ['p1', 'p2']), []);
    assert.deepEqual(shardsNotPassed(shards, ['m']), [], 'or the merged shard reached its own copy');
  });

  it('inherits over generations (split, then split again)', () => {
    const shards = [closed('s0'), closed('s1', 's0'), open('s2', 's0'), open('s3', 's1'), open('s4', 's1')];
    assert.deepEqual(shardsNotPassed(shards, ['s0']), []);
    assert.deepEqual(shardsNotPassed(shards, ['s1']), ['s2']);
  });

  it('a parent no longer listed (past retention) counts as not passed', () => {
    assert.deepEqual(shardsNotPassed([open('s1', 'gone')], []), ['s1']);
    assert.deepEqual(shardsNotPassed([open('s1', 'gone')], ['s1']), []);
  });

  it('closed shards are never waited for themselves', () => {
    assert.deepEqual(shardsNotPassed([closed('old'), open('new')], ['new']), []);
  });
});
