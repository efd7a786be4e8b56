// full-migrate's apply rate samples (src/orchestration/apply-rate-sampler.ts): the sum of the
// shards' applied events, read from the state store, recorded about every 10 s, bounded, best effort.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createApplyRateSampler } from '../../src/orchestration/apply-rate-sampler.js';
import { LOAD_UNIT_SAMPLES, applyRateFromSamples } from '../../src/orchestration/forecast.js';
import type { ShardDoc } from '../../src/state/store.js';
import { createLogger } from '../../src/util/logger.js';

const log = createLogger({ format: 'json', verbose: false, out: { write: () => true } as unknown as NodeJS.WritableStream });

const shard = (shardId: string, events: number | undefined): ShardDoc => ({
  _id: `m/${shardId}`,
  migrationId: 'm',
  shardId,
  lease: { owner: null, epoch: 0, expiresAt: new Date(0) },
  ...(events === undefined ? {} : { checkpoint: { sequenceNumber: '1', seqKey: '1', counters: { events }, shardEnded: false, at: new Date(0), epoch: 1 } }),
});

describe('apply rate sampler', () => {
  it('records the shards\' summed events every 10 s at most, keeps the last few, and status measures the rate from them', async () => {
    let now = Date.UTC(2026, 0, 1);
    let applied = 0;
    const written: { at: Date; events: number }[][] = [];
    let reads = 0;
    const store = {
      listShards: async () => (reads++, [shard('shardId-0', applied), shard('shardId-1', applied / 2), shard('shardId-2', undefined)]),
      recordApplySamples: async (_id: string, s: { at: Date; events: number }[]) => void written.push(s),
    };
    const sampler = createApplyRateSampler(store, 'm', log, () => now);
    for (let i = 0; i < 200; i++) {
      await sampler.tick();
      now += 1_000;
      applied += 100; // 150 events/s over both shards
    }
    assert.equal(reads, 20, 'one read per 10 s, not per poll');
    const last = written[written.length - 1]!;
    assert.equal(last.length, LOAD_UNIT_SAMPLES);
    assert.equal(applyRateFromSamples(last, now)?.eventsPerSecond, 150);
  });

  it('a failing state store costs the sample, not the migration', async () => {
    const store = {
      listShards: async () => {
        throw new Error('state store down');
      },
      recordApplySamples: async () => undefined,
    };
    await createApplyRateSampler(store, 'm', log).tick();
  });
});
