/**
 * Samples how many events apply has applied (over all shards, whichever process holds them) into
 * the migration document, so `status` in any container measures apply's drain rate over the last
 * minute (forecast.ts applyRateFromSamples) for the retention forecast's catch-up time.
 *
 * Read from the state store, not from this process's apply: the shards' checkpoints
 * (`counters.events`, written by their lease holders after the target acknowledged the writes)
 * cover every apply process. Bounded: at most LOAD_UNIT_SAMPLES samples about
 * LOAD_UNIT_SAMPLE_MS apart, one read and one write per interval. Best effort: a failed read or
 * write costs the forecast its measured rate (it says so), never the migration.
 */
import type { StateStore } from '../state/store.js';
import type { Logger } from '../util/logger.js';
import { errorMessage } from '../util/errors.js';
import { LOAD_UNIT_SAMPLE_MS, addSample, type ApplySample } from './forecast.js';

export interface ApplyRateSampler {
  /** Records a sample when the last one is LOAD_UNIT_SAMPLE_MS old; cheap to call on every poll. */
  tick(): Promise<void>;
}

export function createApplyRateSampler(store: Pick<StateStore, 'listShards' | 'recordApplySamples'>, migrationId: string, log: Logger, now: () => number = Date.now): ApplyRateSampler {
  let samples: ApplySample[] = [];
  let lastTry = -Infinity;
  return {
    async tick() {
      const t = now();
      if (t - lastTry < LOAD_UNIT_SAMPLE_MS) return;
      lastTry = t;
      try {
        const shards = await store.listShards(migrationId);
        const events = shards.reduce((n, s) => n + (typeof s.checkpoint?.counters?.events === 'number' ? s.checkpoint.counters.events : 0), 0);
        const next = addSample(samples, { at: new Date(t), events });
        if (!next) return;
        await store.recordApplySamples(migrationId, next);
        samples = next;
      } catch (err) {
        log.debug({ err: errorMessage(err) }, 'apply rate sample not recorded');
      }
    },
  };
}
