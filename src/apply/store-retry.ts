/**
 * The apply runner's reads of the state store and of the stream's shard list, retried on
 * transient errors through the one retry loop (util/retry.ts).
 */
import { listAllShards, type ShardInfo } from '../transport/shard-map.js';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { classifyError } from '../transport/stream-errors.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { retry } from '../util/retry.js';
import { withRetry } from './retry.js';

/**
 * A state store call, retried on transient errors (8 attempts, 200 ms doubling up to 5 s).
 * Not abortable on purpose: a checkpoint save in progress at shutdown finishes (or fails) as
 * before, it is not turned into a failure by the stop.
 */
export function storeRetry<T>(log: Logger, what: string, fn: () => Promise<T>): Promise<T> {
  return withRetry(what, fn, { maxAttempts: 8, initialDelayMs: 200, maxDelayMs: 5_000 }, {
    onRetry: (info) => log.warn({ what: info.what, attempt: info.attempt, err: errorMessage(info.error) }, 'state store call failed, retrying'),
  });
}

/** The stream's shards with their lineage (for the DDL gate and the origin check), cached 2 s. */
export class StreamShardList {
  private cache: { at: number; shards: ShardInfo[] } | undefined;

  constructor(
    private readonly kinesis: KinesisClient,
    private readonly streamName: string,
    private readonly signal: AbortSignal,
  ) {}

  /** Retries all but fatal Kinesis errors (9 attempts); once `signal` aborted, rejects with its reason. */
  async get(): Promise<ShardInfo[]> {
    const now = performance.now();
    if (this.cache && now - this.cache.at < 2_000) return this.cache.shards;
    try {
      const shards = await retry(() => listAllShards(this.kinesis, this.streamName, { signal: this.signal }), {
        isRetryable: (err) => classifyError(err) !== 'fatal',
        attempts: 9,
        backoff: { baseMs: 200, maxMs: 5_000 },
        signal: this.signal,
      });
      this.cache = { at: performance.now(), shards };
      return shards;
    } catch (err) {
      if (this.signal.aborted) throw this.signal.reason ?? err;
      throw err;
    }
  }
}
